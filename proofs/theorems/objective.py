"""The training objective (spec/objective.py): micro-batch accumulation with the whole batch's
denominator equals the full batch, in the loss and in its gradient; the mean of per-micro-batch
means does not, as soon as the micro-batches count different numbers of tokens."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import sympy
from hypothesis import strategies as st

from proofs.core import Kind, Scope, for_all, require, require_zero, theorem, witness_check
from reference.objective import logits_vjp
from spec.objective import REDUCTIONS, Objective

IGNORE = -100
theta = sympy.Symbol("theta", real=True)
"""A parameter: the token losses are arbitrary differentiable functions ℓ_bt(θ)."""

MAX_SEQUENCES = 3
MAX_LENGTH = 3


def _losses(lengths: Sequence[int]) -> list[list[sympy.Expr]]:
    """ℓ_bt(θ): an undefined function per token, so nothing about the losses is assumed."""
    return [[sympy.Function(f"ell_{b}_{t}")(theta) for t in range(T)] for b, T in enumerate(lengths)]


def _label_patterns(T: int) -> Iterator[list[int]]:
    """Every labels sequence of length T up to which positions are ignored (the ids themselves do
    not change the weights): position t ≥ 1 is 0 (counted) or ι; position 0 is never a target."""
    for ignored in itertools.product([False, True], repeat=T - 1):
        yield [0] + [IGNORE if flag else 0 for flag in ignored]


def _partitions(n: int) -> Iterator[list[list[int]]]:
    """Every way to split sequences 0 … n−1 into non-empty micro-batches (set partitions)."""
    if n == 0:
        yield []
        return
    for rest in _partitions(n - 1):
        for i in range(len(rest)):
            yield rest[:i] + [rest[i] + [n - 1]] + rest[i + 1 :]
        yield rest + [[n - 1]]


def _batches() -> Iterator[tuple[list[int], list[list[int]]]]:
    for B in range(1, MAX_SEQUENCES + 1):
        for lengths in itertools.product(range(1, MAX_LENGTH + 1), repeat=B):
            for labels in itertools.product(*(list(_label_patterns(T)) for T in lengths)):
                yield list(lengths), [list(lam) for lam in labels]


@functools.lru_cache(maxsize=4096)
def _gradient(expr: sympy.Expr) -> sympy.Expr:
    """∂/∂θ of a micro-batch's loss (remembered: the same micro-batch recurs in many partitions)."""
    return sympy.diff(expr, theta)


def _defined(objective: Objective, labels: Sequence[Sequence[int]]) -> bool:
    counts = [int(objective.counted(lam).sum()) for lam in labels]
    return sum(counts) > 0 if objective.reduction == "mean" else (all(counts) if objective.reduction == "sequence" else True)


# -- accumulation with the batch's denominator ----------------------------------------------


def _witness_accumulation(examples: int) -> None:
    def check(case: tuple[int, str, list[int], list[bool]]) -> None:
        seed, reduction, lengths, cuts = case
        rng = np.random.default_rng(seed)
        objective = Objective(label_smoothing=0.1, z_loss=1e-4, reduction=reduction)  # type: ignore[arg-type]
        logits = [3.0 * rng.standard_normal((T, 7)) for T in lengths]
        labels = [np.where(rng.random(T) < 0.3, IGNORE, rng.integers(0, 7, T)) for T in lengths]
        for lam in labels:
            lam[-1] = 1  # every sequence counts its last target
        D = objective.denominator(labels)
        bounds = [0] + [i + 1 for i, cut in enumerate(cuts[: len(lengths) - 1]) if cut] + [len(lengths)]
        parts = list(zip(bounds, bounds[1:]))
        accumulated = math.fsum(objective.micro_batch_loss(logits[a:b], labels[a:b], D) for a, b in parts)
        whole = objective.loss(logits, labels)
        witness_check(abs(accumulated - whole) <= 1e-13 * max(1.0, abs(whole)), f"Σ_j L_j={accumulated!r} vs L={whole!r}")
        b = int(rng.integers(0, len(lengths)))  # what sequence b's micro-batch sends back vs ∂L/∂z_b of the whole batch
        g = logits_vjp(objective, logits[b], labels[b], D)
        index = (int(rng.integers(0, lengths[b])), int(rng.integers(0, 7)))
        h, sides = 1e-6, []
        for sign in (1.0, -1.0):
            moved = [z.copy() for z in logits]
            moved[b][index] += sign * h
            sides.append(objective.loss(moved, labels))
        fd = (sides[0] - sides[1]) / (2 * h)
        witness_check(abs(float(g[index]) - fd) <= 1e-7, f"micro-batch ∂L_j/∂z_b{list(index)}={g[index]!r} vs ∂L/∂z_b of the batch {fd!r}")

    lengths = st.lists(st.integers(2, 6), min_size=1, max_size=5)
    cases = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from(REDUCTIONS), lengths, st.lists(st.booleans(), min_size=4, max_size=4))
    for_all(cases, examples, check)


@theorem(
    name="accumulation_equals_full_batch",
    title="micro-batches normalised by the whole batch's count accumulate to the batch's loss and gradient",
    statement="Split a batch into micro-batches of whole sequences in any way; if each micro-batch's weighted sum of token "
    "losses is divided by the whole batch's denominator D (N counted tokens for the token mean, B sequences for the "
    "sequence mean, 1 for the sum), the micro-batch losses sum to the batch's loss and their gradients to its gradient, "
    "whatever the token losses are.",
    latex=r"\sum_{j} \frac{1}{D} \sum_{b \in j} s_b(\theta) = \frac{1}{D}\sum_b s_b(\theta) = L(\theta), \qquad "
    r"\sum_j \nabla_\theta L_j = \nabla_\theta L",
    hypotheses=(
        "micro-batches partition the batch's sequences (each sequence in exactly one)",
        "D is computed from the whole batch's labels (Objective.denominator), not from the micro-batch's",
        "the reduction is defined on the batch (N ≥ 1; under 'sequence', N_b ≥ 1 for every b)",
    ),
    scope=Scope(
        Kind.EXHAUSTIVE,
        f"every reduction, every batch of ≤ {MAX_SEQUENCES} sequences of length ≤ {MAX_LENGTH}, every pattern of ignored "
        "labels, every set partition into micro-batches; the token losses are arbitrary functions ℓ_bt(θ)",
    ),
    witness=_witness_accumulation,
    derived_from="`Objective.exact_weights`, `Objective.denominator` and `Objective.micro_batch_expression` (spec/objective.py), "
    "the code micro_batch_loss and the reference's logits_vjp weigh with; token losses are undefined sympy functions of θ",
)
def accumulation_equals_full_batch() -> None:
    """For each configuration, the full batch's L = micro_batch_expression(all, D) and Σ_j micro_batch_expression(j, D) are
    built from the objective's own weights with symbolic ℓ_bt(θ); their difference and the difference of their θ-derivatives
    simplify to 0. The weights do not depend on θ, which is why the gradient follows the loss."""
    checked = 0
    for reduction in REDUCTIONS:
        objective = Objective(reduction=reduction)  # type: ignore[arg-type]
        for lengths, labels in _batches():
            if not _defined(objective, labels):
                continue
            losses = _losses(lengths)
            D = objective.denominator(labels)
            full = objective.micro_batch_expression(losses, labels, D)
            require(full.has(theta) or all(w == 0 for lam in labels for w in objective.exact_weights(lam, D)), "L reads the token losses")
            full_gradient = _gradient(full)
            for partition in _partitions(len(lengths)):
                parts = [objective.micro_batch_expression([losses[b] for b in part], [labels[b] for b in part], D) for part in partition]
                accumulated = sympy.Add(*parts)
                # both sides are rational combinations of the ℓ_bt(θ) (and of their derivatives): expanding decides equality
                require(sympy.expand(accumulated - full) == 0, f"Σ_j L_j − L = 0 [{reduction}, labels {labels}, micro-batches {partition}]")
                gradient_gap = sympy.expand(sympy.Add(*(_gradient(part) for part in parts)) - full_gradient)
                require(gradient_gap == 0, f"Σ_j ∇L_j − ∇L = 0 [{reduction}, {labels}, {partition}]")
                checked += 1
    require(checked > 1000, f"the enumeration covers the configurations ({checked} checked)")


# -- the per-micro-batch mean ---------------------------------------------------------------


def _per_micro_batch_mean(objective: Objective, losses: list[list[sympy.Expr]], labels: list[list[int]], partition: list[list[int]]) -> sympy.Expr:
    """(1/k) Σ_j L_j with each L_j normalised by its own count: what a loop that averages the
    micro-batches' mean losses computes."""
    terms = []
    for part in partition:
        own = [labels[b] for b in part]
        terms.append(objective.micro_batch_expression([losses[b] for b in part], own, objective.denominator(own)))
    return sympy.Add(*terms) / len(partition)


def _witness_counter(examples: int) -> None:
    def check(case: tuple[int, int, int]) -> None:
        seed, n_a, n_b = case
        rng = np.random.default_rng(seed)
        objective = Objective()
        logits = [3.0 * rng.standard_normal((n_a + 1, 5)), 3.0 * rng.standard_normal((n_b + 1, 5))]
        labels = [rng.integers(0, 5, n_a + 1), rng.integers(0, 5, n_b + 1)]
        D = objective.denominator(labels)
        wrong = 0.5 * (objective.micro_batch_loss(logits[:1], labels[:1], objective.denominator(labels[:1]))
                       + objective.micro_batch_loss(logits[1:], labels[1:], objective.denominator(labels[1:])))
        right = objective.loss(logits, labels)
        g_wrong = 0.5 * logits_vjp(objective, logits[0], labels[0], objective.denominator(labels[:1]))
        g_right = logits_vjp(objective, logits[0], labels[0], D)
        if n_a == n_b:
            witness_check(abs(wrong - right) <= 1e-13 * max(1.0, abs(right)), "equal counts: the two rules agree")
        else:  # the first micro-batch's gradient is scaled by (N/2)/N_a instead of 1
            witness_check(np.allclose(g_wrong, g_right * (D / 2) / n_a, rtol=1e-12, atol=0), "∇ of the per-micro-batch mean")

    for_all(st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 6)), examples, check)


@theorem(
    name="per_micro_batch_mean_is_not_the_batch_mean",
    title="averaging the micro-batches' mean losses is not the batch's mean loss (unequal token counts)",
    statement="Under the token mean, averaging the k micro-batches' own means, (1/k) Σ_j (1/N_j) Σ_{t ∈ j} ℓ_t, weighs a "
    "token of micro-batch j by 1/(k N_j) instead of 1/N: the loss and its gradient differ from the batch's as soon as "
    "two micro-batches count different numbers of tokens — witness: one micro-batch counting 1 token and one counting 3, "
    "where the lone token weighs 1/2 instead of 1/4. With equal counts (N_j = N/k) the two agree.",
    latex=r"\frac{1}{k}\sum_j \frac{1}{N_j}\sum_{t\in j}\ell_t \ne \frac{1}{N}\sum_t \ell_t \ \text{ for } "
    r"N_1 = 1,\ N_2 = 3:\ \tfrac12 \ell_1 + \tfrac16(\ell_2+\ell_3+\ell_4) \ne \tfrac14(\ell_1+\ell_2+\ell_3+\ell_4)",
    hypotheses=("reduction 'mean' (the token mean of the whole batch is the objective)", "k ≥ 2 micro-batches"),
    scope=Scope(
        Kind.EXHAUSTIVE,
        f"the explicit witness, plus every batch of ≤ {MAX_SEQUENCES} sequences of length ≤ {MAX_LENGTH} and every "
        "partition: the two rules agree exactly when every micro-batch counts N/k tokens",
    ),
    witness=_witness_counter,
    derived_from="`Objective.micro_batch_expression`, `Objective.exact_weights` and `Objective.denominator` (spec/objective.py) "
    "applied per micro-batch (the faulty rule) and to the whole batch; token losses are undefined sympy functions of θ",
    refutes="a training loop may average the micro-batches' mean losses (Hugging Face Trainer's gradient accumulation "
    "before transformers 4.46)",
)
def per_micro_batch_mean_is_not_the_batch_mean() -> None:
    """The witness: labels [0, 0] and [0, 0, 0, 0] (1 and 3 counted targets) in two micro-batches; the faulty rule minus the
    batch loss is ℓ_00/4 − (ℓ_10 + ℓ_11 + ℓ_12)/12 ≠ 0, and so is its θ-derivative. Then, exhaustively, the two rules agree
    exactly on the configurations whose micro-batches all count N/k tokens and differ on every other."""
    objective = Objective()
    labels = [[0, 0], [0, 0, 0, 0]]
    losses = _losses([2, 4])
    full = objective.micro_batch_expression(losses, labels, objective.denominator(labels))
    faulty = _per_micro_batch_mean(objective, losses, labels, [[0], [1]])
    difference = sympy.expand(faulty - full)
    want = losses[0][0] / 4 - (losses[1][0] + losses[1][1] + losses[1][2]) / 12
    require_zero(difference - want, "faulty − L = ℓ_00/4 − (ℓ_10 + ℓ_11 + ℓ_12)/12")
    require(sympy.diff(difference, theta) != 0, "the gradients differ: ∇(faulty − L) ≠ 0")
    for lengths, labels_ in _batches():
        if not _defined(objective, labels_) or len(lengths) < 2:
            continue
        losses_ = _losses(lengths)
        full_ = objective.micro_batch_expression(losses_, labels_, objective.denominator(labels_))
        for partition in _partitions(len(lengths)):
            counts = [sum(int(objective.counted(labels_[b]).sum()) for b in part) for part in partition]
            if len(partition) < 2 or 0 in counts:
                continue
            gap = sympy.expand(_per_micro_batch_mean(objective, losses_, labels_, partition) - full_)
            if len(set(counts)) == 1:
                require(gap == 0, f"equal counts {counts}: the two rules agree [{labels_}, {partition}]")
            else:
                require(gap != 0, f"unequal counts {counts}: the two rules differ [{labels_}, {partition}]")
