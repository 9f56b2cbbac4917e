"""Model-level examples and how each is judged: padded batches, incremental decoding, greedy
generation (docs/verify.md, "What is drawn" and "Conventions").

A :class:`Case` is self-contained and printable — the architecture's config, the θ draw and the
batch — so a failing case is reproduced from its ``repr`` alone (the counterexample script).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from gptspec.verify.compare import Comparison, compare
from gptspec.verify.conventions import EmptyRows, padded_violation
from gptspec.verify.draws import MAGNITUDES, ThetaDraw, draw_theta
from gptspec.verify.oracle import ORACLE, Oracle, content_key
from gptspec.verify.tolerance import DEFAULT, VERIFY, Policy, dtype_name, longest_reduction
from spec.graph import Architecture


@dataclass(frozen=True)
class Batch:
    """A padded batch: each row's real tokens (empty: a fully padded row) and padding side, the
    width, and the seed of the ids on padded slots (random ids: they must not matter)."""

    tokens: tuple[tuple[int, ...], ...]
    left_padded: tuple[bool, ...]
    width: int
    pad_seed: int = 0

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.tokens)

    def arrays(self, n_vocab: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """ids (B, width) and valid (B, width)."""
        rng = np.random.default_rng(self.pad_seed)
        ids = rng.integers(0, n_vocab, size=(len(self.tokens), self.width)).astype(np.int64)
        valid = np.zeros((len(self.tokens), self.width), dtype=bool)
        for b, (row, left) in enumerate(zip(self.tokens, self.left_padded, strict=True)):
            n = len(row)
            at = slice(self.width - n, self.width) if left else slice(0, n)
            valid[b, at] = True
            ids[b, at] = row
        return ids, valid

    def describe(self) -> str:
        def one(n: int, left: bool) -> str:
            if n == 0:
                return "fully padded"
            return f"{n} tokens" + ("" if n == self.width else " left-padded" if left else " right-padded")

        return f"B={len(self.tokens)}, T={self.width}: " + ", ".join(one(n, left) for n, left in zip(self.lengths, self.left_padded))


def random_batch(rng: np.random.Generator, lengths: tuple[int, ...], left: tuple[bool, ...], width: int, n_vocab: int) -> Batch:
    return Batch(tuple(tuple(int(t) for t in rng.integers(0, n_vocab, size=n)) for n in lengths), left, width, int(rng.integers(2**31)))


@dataclass(frozen=True)
class Case:
    """One model-level example: the config of the architecture, a θ draw (None: θ is the
    run's, given — ``gptspec check``'s preset or checkpoint θ, ``verify --weights``), a batch,
    for generation the number of new tokens (0 otherwise), and for an encoder–decoder the
    source batch (as many rows as ``batch``; None for a decoder-only model)."""

    config: Any
    draw: ThetaDraw | None
    batch: Batch
    new_tokens: int = 0
    source: Batch | None = None

    def describe(self, dtype: str) -> str:
        extra = f", {self.new_tokens} new tokens" if self.new_tokens else ""
        source = "" if self.source is None else f"; source {self.source.describe()}"
        return f"{self.batch.describe()}{extra}{source}; {'θ given' if self.draw is None else self.draw.describe(dtype)}"

    def context(self, arch: Architecture) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]]:
        """An encoder–decoder's other inputs by name, (ids, valid) each: the source batch, its
        padded slots' ids within the source vocabulary (empty for a decoder-only model)."""
        from spec.seq2seq import SOURCE, vocabulary

        return {} if self.source is None else {SOURCE: self.source.arrays(vocabulary(arch, SOURCE))}


@dataclass
class Verdict:
    """One case's judgement: the worst real-position comparison against its budget, or a
    convention violation on padded positions (``note``)."""

    comparison: Comparison
    budget: float
    e_store: float
    note: str = ""
    padding: bool = False

    @property
    def passed(self) -> bool:
        return self.comparison.max_abs <= self.budget

    @property
    def ratio(self) -> float:
        if self.comparison.max_abs == 0:
            return 0.0
        return self.comparison.max_abs / self.budget if self.budget > 0 else float("inf")

    @property
    def kind(self) -> str:
        return "padding" if self.padding else "values"

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        at = ", ".join(map(str, self.comparison.where))
        text = (f"{verdict}: max |Δ| = {self.comparison.max_abs:.3g} at [{at}] (got {self.comparison.got:.9g}, want {self.comparison.want:.9g}), "
                f"budget {self.budget:.3g} (e_store {self.e_store:.3g}, scale {self.comparison.scale:.3g})")
        return text + (f"; {self.note}" if self.note else "")


PASS = Verdict(Comparison(0.0, 0.0, (), 0.0, 0.0), 0.0, 0.0)


def max_score(arch: Architecture, values: Mapping[str, np.ndarray]) -> float:
    """The largest |attention score| among a sequence's reference values (0 if none)."""
    from gptspec.verify.structure import structure

    return max((float(np.max(np.abs(values[p]), initial=0.0)) for p in structure(arch).score_params if p in values), default=0.0)


@dataclass
class Context:
    """What a check needs besides the case: the architecture built from the case's config, the
    dtype, the policy, the empty-row convention, the reference cache, and optionally θ given
    instead of drawn (the user's weights, or an ablation probe's θ) with its cache key."""

    arch: Architecture
    dtype: str
    policy: Policy = VERIFY
    empty_rows: EmptyRows = "any-finite"
    oracle: Oracle = ORACLE
    theta: Mapping[str, np.ndarray] | None = None
    theta_key: Hashable | None = None

    def budget(self, e_store: float, scale: float, values: Mapping[str, np.ndarray]) -> float:
        """The policy's budget for a value of a sequence whose reference values are ``values``
        (their largest attention score enters the budget: Policy.budget)."""
        return self.policy.budget(self.dtype, e_store, scale, max_score(self.arch, values), longest_reduction(self.arch))

    def theta_for(self, case: Case) -> tuple[Mapping[str, np.ndarray], Hashable]:
        if self.theta is not None:
            return self.theta, self.theta_key
        if case.draw is None:
            from spec.errors import ConfigError

            raise ConfigError("case draw=None (θ given), but expected the run to give θ [gptspec verify]; "
                              "a case without a draw is judged by a Context holding θ (check_context)")
        return draw_theta(self.arch, case.draw, self.dtype), case.draw.key(self.arch, self.dtype)


def check_context(
    dtype: object, arch: Architecture, theta: Mapping[str, np.ndarray], policy: Policy = DEFAULT, key: Hashable | None = None,
    empty_rows: EmptyRows = "zero",
) -> Context:
    """``check``'s settings as a verify :class:`Context`: the implementation's dtype, the policy, the ``zero``
    empty-row convention (what fast/ meets), θ given and named by its content (``key``; computed
    when None: :func:`gptspec.verify.oracle.content_key`)."""
    return Context(arch, dtype_name(dtype), policy, empty_rows, ORACLE, theta, content_key(arch, theta) if key is None else key)


def judge_rows(
    ctx: Context, theta: Mapping[str, np.ndarray], key: Hashable, got: np.ndarray, ids: np.ndarray, valid: np.ndarray,
    context: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Verdict:
    """The one row judge of ``check`` and ``verify``: each row's real positions of ``got``
    (B, T, n_vocab) against the reference on its real tokens (``key`` names θ by content for the
    oracle; budget by the policy, e_store measured on that row); padded positions by the
    empty-row convention. ``context``: an encoder–decoder's other inputs by name, (B, S) ids
    and valid, each row's real ones given to the reference with the row."""
    context = context or {}
    worst = PASS
    for b in range(ids.shape[0]):
        where = np.flatnonzero(valid[b])
        if where.size:
            real = ids[b, valid[b]]
            inputs: np.ndarray | dict[str, np.ndarray] = real
            if context:
                name = next(n for n in ctx.arch.inputs if n not in context)
                inputs = {name: real} | {n: a[b, v[b]] for n, (a, v) in context.items()}
            values = ctx.oracle.values(ctx.arch, theta, key, inputs)
            want = values["logits"]
            stored = ctx.oracle.logits(ctx.arch, theta, key, inputs, ctx.dtype)
            c = compare(got[b, where], want)
            e_store = compare(stored, want).max_abs
            c = Comparison(c.max_abs, c.scale, (b, int(where[c.where[0]]), c.where[1]) if c.where else (b,), c.got, c.want)
            verdict = Verdict(c, ctx.budget(e_store, c.scale, values), e_store)
            if not verdict.passed:
                return verdict
            if verdict.ratio >= worst.ratio:
                worst = verdict
    for b in range(ids.shape[0]):
        padded = got[b, ~valid[b]]
        violation = padded_violation(padded, ctx.empty_rows)
        if violation is not None:
            magnitude, message = violation
            t = int(np.flatnonzero(~valid[b])[0])
            return Verdict(Comparison(magnitude, 0.0, (b, t), magnitude, 0.0), 0.0, 0.0, message, padding=True)
    return worst


Sources = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""An encoder–decoder's other inputs by name: (B, S) ids and valid each (:meth:`Case.context`)."""


def model_verdict(impl: Any, ctx: Context, batch: Batch, theta: Mapping[str, np.ndarray], key: Hashable, context: Sources | None = None) -> Verdict:
    """``impl.model`` on a padded batch, judged by :func:`judge_rows` (``check``'s and ``verify``'s
    padded-batch component). ``context``: an encoder–decoder's source, given to the implementation
    (``model(…, context=…)``) and to the reference with each row."""
    ids, valid = batch.arrays(ctx.arch.dim("n_vocab"))
    extra = {"context": context} if context else {}
    got = np.asarray(impl.model(ctx.arch, theta, ids, valid, **extra), dtype=np.float64)
    return judge_rows(ctx, theta, key, got, ids, valid, context)


def decode_verdict(impl: Any, ctx: Context, batch: Batch, theta: Mapping[str, np.ndarray], key: Hashable, context: Sources | None = None) -> Verdict:
    """``impl.decode``: the batch prefilled halfway (:func:`decode_prefix`), then decoded one
    position at a time (a KV cache; an encoder–decoder's source given once, at the prefill),
    judged like :func:`model_verdict`."""
    ids, valid = batch.arrays(ctx.arch.dim("n_vocab"))
    extra = {"context": context} if context else {}
    got = np.asarray(impl.decode(ctx.arch, theta, ids, valid, decode_prefix(batch), **extra), dtype=np.float64)
    return judge_rows(ctx, theta, key, got, ids, valid, context)


def run_model(impl: Any, ctx: Context, case: Case) -> Verdict:
    return model_verdict(impl, ctx, case.batch, *ctx.theta_for(case), case.context(ctx.arch))


def decode_prefix(case: Case | Batch) -> int:
    """How many positions a decode check prefills: half the width (at least 1)."""
    batch = case.batch if isinstance(case, Case) else case
    return max(1, batch.width // 2)


def run_decode(impl: Any, ctx: Context, case: Case) -> Verdict:
    return decode_verdict(impl, ctx, case.batch, *ctx.theta_for(case), case.context(ctx.arch))


def greedy_tokens(impl: Any, ctx: Context, theta: Mapping[str, np.ndarray], ids: np.ndarray, valid: np.ndarray, n_new: int) -> np.ndarray:
    """The target's greedy continuation of a left-padded batch: its own ``generate`` when it
    has one, else argmax of ``model`` appended one token at a time."""
    can = getattr(impl, "can_generate", None)
    if callable(getattr(impl, "generate", None)) and (can is None or can(ctx.arch)):
        return np.asarray(impl.generate(ctx.arch, theta, ids, valid, n_new), dtype=np.int64)
    out = []
    for _ in range(n_new):
        logits = np.asarray(impl.model(ctx.arch, theta, ids, valid), dtype=np.float64)
        nxt = np.argmax(logits[:, -1], axis=-1).astype(np.int64)
        out.append(nxt)
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
        valid = np.concatenate([valid, np.ones((ids.shape[0], 1), dtype=bool)], axis=1)
    return np.stack(out, axis=1) if out else np.zeros((ids.shape[0], 0), dtype=np.int64)


def run_generate(impl: Any, ctx: Context, case: Case) -> Verdict:
    """Greedy generation: each new token must be an argmax of the reference's logits at its
    position, up to the budget (a near-tie within the budget may go either way; the reference
    then follows the target's choice, so one step's tie does not fail the next)."""
    ids, valid = case.batch.arrays(ctx.arch.dim("n_vocab"))
    theta, key = ctx.theta_for(case)
    tokens = greedy_tokens(impl, ctx, theta, ids, valid, case.new_tokens)
    if tokens.shape != (ids.shape[0], case.new_tokens):
        from spec.errors import ConfigError

        raise ConfigError(f"generation gave tokens of shape {tokens.shape}, but expected {(ids.shape[0], case.new_tokens)} [gptspec verify]")
    n_vocab = ctx.arch.dim("n_vocab")
    worst = PASS
    for b in range(ids.shape[0]):
        real = ids[b, valid[b]]
        if real.size == 0:
            continue
        bad = np.flatnonzero((tokens[b] < 0) | (tokens[b] >= n_vocab))
        if bad.size:
            j = int(bad[0])
            return Verdict(Comparison(float("inf"), 0.0, (b, int(real.size + j)), float(tokens[b, j]), 0.0), 0.0, 0.0, f"generated id {int(tokens[b, j])} is outside the vocabulary")
        seq = np.concatenate([real, tokens[b]])
        values = ctx.oracle.values(ctx.arch, theta, key, seq)
        want = values["logits"]
        stored = ctx.oracle.logits(ctx.arch, theta, key, seq, ctx.dtype)
        e_store = compare(stored, want).max_abs
        for j, token in enumerate(tokens[b]):
            p = real.size - 1 + j
            row = want[p]
            gap = float(np.max(row) - row[token])
            scale = float(np.max(np.abs(row)))
            c = Comparison(gap, scale, (b, p + 1, int(token)), float(row[token]), float(np.max(row)))
            verdict = Verdict(c, ctx.budget(e_store, scale, values), e_store,
                              f"generated token {int(token)} at position {p + 1}, but the reference's argmax is {int(np.argmax(row))} (logit gap {gap:.3g})" if gap > 0 else "")
            if not verdict.passed:
                return verdict
            if verdict.ratio >= worst.ratio:
                worst = verdict
    return worst


# -- the examples a run draws ------------------------------------------------------------


def model_cases(config: Any, n_ctx: int, n_vocab: int, *, examples: int, seed: int, max_len: int, max_batch: int = 4) -> list[Case]:
    """The padded-batch cases: first the hard ones by construction — a full-length row, a
    batch with left, right and fully padded rows, each magnitude — then random batches (1 to
    ``max_batch`` rows, lengths 0 to the width, either side, widths up to ``max_len``)."""
    rng = np.random.default_rng([seed, 101])
    width = max(1, min(max_len, n_ctx))
    cases: list[Case] = []

    def add(lengths: tuple[int, ...], left: tuple[bool, ...], w: int, magnitude: str) -> None:
        k = len(cases)
        cases.append(Case(config, ThetaDraw(seed * 1000 + k, magnitude), random_batch(rng, lengths, left, w, n_vocab)))

    add((width,), (False,), width, "plain")
    add((max(1, width - 3), max(1, width // 2), 0), (True, False, True), width, "plain")
    add((width, max(1, width - 2)), (False, True), width, "large")
    add((max(1, width // 2), width), (True, False), width, "medium")
    while len(cases) < examples:
        B = int(rng.integers(1, max_batch + 1))
        w = int(rng.integers(1, width + 1)) if rng.random() < 0.6 else width
        lengths = tuple(int(rng.integers(0, w + 1)) for _ in range(B))
        if max(lengths) == 0:
            lengths = (w, *lengths[1:])
        left = tuple(bool(rng.random() < 0.5) for _ in range(B))
        add(lengths, left, w, MAGNITUDES[len(cases) % len(MAGNITUDES)])
    return cases[:examples]


def with_sources(cases: list[Case], n_ctx: int, n_vocab: int, *, seed: int, max_len: int) -> list[Case]:
    """``cases`` with a source batch each, for an encoder–decoder: as many rows as the case's
    batch, each 1 to the width long (the first case's full width), padded left or right, its
    ids drawn from ``seed`` (the same sources for the same cases, sharded or not)."""
    rng = np.random.default_rng([seed, 303])
    width = max(1, min(max_len, n_ctx))
    out = []
    for k, case in enumerate(cases):
        rows = len(case.batch.tokens)
        w = width if k == 0 else int(rng.integers(1, width + 1))
        lengths = tuple(w if k == 0 else int(rng.integers(1, w + 1)) for _ in range(rows))
        left = tuple(bool(rng.random() < 0.5) for _ in range(rows))
        out.append(replace(case, source=random_batch(rng, lengths, left, w, n_vocab)))
    return out


def generation_cases(config: Any, n_ctx: int, n_vocab: int, *, examples: int, seed: int, max_len: int) -> list[Case]:
    """Left-padded prompts (generation extends each row on the right) and how many tokens to
    generate, so prompt plus continuation stays within n_ctx."""
    rng = np.random.default_rng([seed, 202])
    width = max(2, min(max_len, n_ctx))
    out = []
    for k in range(examples):
        prompt = int(rng.integers(1, width // 2 + 1)) if k else max(1, width // 2)
        new = min(width - prompt, int(rng.integers(2, 6)))
        B = int(rng.integers(1, 4))
        lengths = tuple(int(rng.integers(1, prompt + 1)) for _ in range(B - 1)) + (prompt,)
        batch = random_batch(rng, lengths, (True,) * B, prompt, n_vocab)
        out.append(Case(config, ThetaDraw(seed * 1000 + 500 + k, MAGNITUDES[k % 2]), batch, max(1, new)))
    return out


def with_config(case: Case, config: Any) -> Case:
    return replace(case, config=config)
