"""fast/'s batched backward (fast/backward.py) equals the reference's (reference/backward.py).

* every primitive has a batched VJP (``FAST_VJP``), and each equals the reference VJP applied
  sequence by sequence, on the op's own examples (every mask family, partial rotary, soft caps);
* the batched reverse pass gives the reference's ∂L/∂θ on a tiny GPT and a tiny Llama (GQA, tied),
  op by op and with every head fused (no T × T value kept between the passes);
* the fused head's backward, which recomputes the probabilities one tile × key block at a time,
  equals the reference's scores → masked softmax → weighted sum VJPs composed, rows with no allowed
  key and soft caps included, for every block size;
* ``value_and_grad`` (``fast.Program.value_and_grad``) on padded batches — left, right, holes;
  ignored labels, label smoothing, z-loss, every reduction — equals the reference's
  ``value_and_grad`` on each sequence's real tokens (loss, ∂L/∂θ, logits, ∂L/∂E); what a padded
  position holds changes nothing; micro-batches over the batch's denominator sum to the batch;
* every instance of every registered family (derived from ``FAMILIES``) differentiates through
  fast/ equal to the reference in float64 and within the gradient policy in float32 and bfloat16;
  random θ, batches and objectives in float32, float16 and bfloat16 within the policy; and the
  policy fails a layer norm backward missing its mean term.

float64: max|fast − reference| ≤ 1e-12 · max(1, max|reference|), the same formulas summed in other
orders. Lower precisions: the gradient policy ``GRAD`` (docs/tolerances.md, "fast/'s backward
against the reference").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
from fast.backward import (
    FAST_VJP,
    allowed_matrix,
    attention_backward,
    attention_forward,
    backward,
    full_batch,
    fused_heads,
    value_and_grad,
)
from gptspec.verify.grad import GRAD
from gptspec.verify.tolerance import longest_reduction, storer
from reference.backward import backward as reference_backward
from reference.backward import value_and_grad as reference_value_and_grad
from reference.interpreter import evaluate, forward
from reference.objective import logits_vjp
from reference.ops import VJP
from spec import GPTConfig, build_gpt
from spec.architectures import LlamaConfig, build_llama
from spec.architectures.registry import FAMILIES, Family
from spec.errors import ConfigError, ShapeError, TokenError
from spec.graph import Architecture
from spec.masks import Causal, Full, Intersection, KeyPadding, Relation, Window
from spec.objective import Objective
from spec.op import PRIMITIVES
from spec.ops import AttentionScores, MaskedSoftmax, WeightedSum
from spec.theta import random_theta
from spec.types import Axis, Element
from tests.test_vjp import vjp_cases

TOLERANCE = 1e-12
EXAMPLES = max(3, settings.default.max_examples // 2)
"""Examples per op for the batched-vs-reference VJPs: 12 under the ``ci`` profile."""


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    bound = TOLERANCE * max(1.0, float(np.max(np.abs(want), initial=0.0)))
    worst = float(np.max(np.abs(got - want), initial=0.0))
    assert got.shape == want.shape and worst <= bound, f"max|fast − reference| of {what}={worst:.3e}, but should be ≤ {bound:.3e}"


def test_every_primitive_has_a_batched_vjp() -> None:
    assert not FAST_VJP.missing(), f"primitives without a batched VJP={FAST_VJP.missing()}, but should be [] [fast/backward.py]"


@pytest.mark.parametrize("kind", list(PRIMITIVES))
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_batched_vjp_equals_the_reference_vjp(kind: str, data: st.DataObject) -> None:
    """A batch of two sequences: the same op, the second sequence's arrays a copy scaled by −½."""
    case = data.draw(vjp_cases(kind, max_rows=3), label=kind)
    op = case.op
    declared = op.inputs()
    T = next((int(t.shape[0]) for t in [*declared.values(), op.output()] if t.axes and t.axes[0] is Axis.POSITION), 0)
    keys = [int(t.shape[1]) for t in [*declared.values(), op.output()] if len(t.axes) > 1 and t.axes[1] is Axis.KEY]
    if keys and keys[0] != T:
        return  # fast/ runs self-attention only: scores are T × T
    two = {n: np.stack([a, -0.5 * a]) if declared[n].element is not Element.TOKEN else np.stack([a, a]) for n, a in case.inputs.items()}
    g2 = np.stack([case.g, 2.0 * case.g])
    batch = full_batch(2, T)
    out = FAST_VJP[kind](op, batch, g2, **two, **case.params)
    per_sequence = [VJP[kind](op, g2[b], **{n: a[b] for n, a in two.items()}, **case.params) for b in range(2)]
    for name in per_sequence[0]:
        if name in case.params:
            _close(np.asarray(out[name]), per_sequence[0][name] + per_sequence[1][name], f"∂L/∂{name} [{kind}]")
        else:
            _close(np.asarray(out[name]), np.stack([per_sequence[0][name], per_sequence[1][name]]), f"∂L/∂{name} [{kind}]")


@pytest.mark.parametrize(
    "arch",
    [build_gpt(GPTConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=2)),
     build_llama(LlamaConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=12, tied=True))],
    ids=["gpt", "llama-gqa-tied"],
)
@pytest.mark.parametrize("fused", [True, False], ids=["fused-heads", "op-by-op"])
def test_batched_backward_equals_the_reference_backward(arch: Architecture, fused: bool) -> None:
    theta = random_theta(arch, seed=7, std=0.4)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, (3, 6))
    g = rng.standard_normal((3, 6, 11))
    outputs: dict[str, str] = {}
    heads = fused_heads(list(arch.expand(outputs=outputs)), set(outputs.values()))
    assert len(heads) == arch.dim("n_layers") * arch.dim("n_heads"), f"{len(heads)} heads recognised for fusion"
    logits, grads = backward(arch, theta, ids, g, fused=fused)
    _close(logits, np.stack([forward(arch, theta, row) for row in ids]), "logits")
    want = {name: np.zeros_like(v) for name, v in theta.items()}
    for b in range(3):
        result = reference_backward(arch, theta, {"ids": ids[b]}, {"logits": g[b]})
        for name in want:
            want[name] += result.theta[name]
    for name in want:
        _close(grads[name], want[name], f"∂L/∂{name}")


MASKS: list[Relation] = [Causal(), Full(), Window(-2, 0), Intersection((Causal(), KeyPadding((False, True, True, False, True, True, True))))]


@pytest.mark.parametrize("mask", MASKS, ids=["causal", "full", "window", "causal-padded-empty-row"])
@pytest.mark.parametrize("softcap", [None, 0.7])
@pytest.mark.parametrize("block", [1, 3, 128])
def test_fused_head_backward_equals_the_composed_reference_vjps(mask: Relation, softcap: float | None, block: int) -> None:
    B, T, d = 2, 7, 3
    rng = np.random.default_rng(block)
    Q, K, V, dO = (rng.standard_normal((B, T, d)) for _ in range(4))
    scale = 1 / np.sqrt(d)
    allowed = allowed_matrix(mask, B, T, T)
    saved = attention_forward(Q, K, V, allowed, scale, softcap, block)
    dQ, dK, dV = attention_backward(Q, K, V, allowed, scale, saved, dO, softcap, block)
    scores_op = AttentionScores(d, 1 / sympy.sqrt(d), T, T, softcap)
    softmax_op, sum_op = MaskedSoftmax(mask, T, T), WeightedSum(d, T, T)
    from reference.ops import REFERENCE

    for b in range(B):
        a = REFERENCE["attention_scores"](scores_op, Q[b], K[b])
        p = REFERENCE["masked_softmax"](softmax_op, a)
        _close(saved.O[b], REFERENCE["weighted_sum"](sum_op, p, V[b]), "O")
        g_sum = VJP["weighted_sum"](sum_op, dO[b], p, V[b])
        g_a = VJP["masked_softmax"](softmax_op, g_sum["A"], a)["x"]
        g_qk = VJP["attention_scores"](scores_op, g_a, Q[b], K[b])
        _close(dV[b], g_sum["V"], "∂L/∂V")
        _close(dQ[b], g_qk["Q"], "∂L/∂Q")
        _close(dK[b], g_qk["K"], "∂L/∂K")
    if isinstance(mask, Intersection):
        assert np.all(dQ[:, 0] == 0.0), "the row with no allowed key gets no cotangent"


# --- the objective on padded batches, every precision, every family (fast.Program.value_and_grad) ---


TINY_GPT = build_gpt(GPTConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=2))
TINY_LLAMA = build_llama(LlamaConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=12, tied=True))


def reference_gradients(
    arch: Architecture, theta: dict[str, np.ndarray], sequences: list[np.ndarray], objective: Objective,
    labels: list[np.ndarray] | None = None, store: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """∂L/∂θ from the reference, sequence by sequence; with ``store`` the reference computed in
    float64 but storing θ, every value and every cotangent in a lower precision (e_store)."""
    if store is None:
        return reference_value_and_grad(arch, theta, sequences, objective, labels).theta
    kept = {name: store(np.asarray(v, dtype=np.float64)) for name, v in theta.items()}
    targets = sequences if labels is None else labels
    D = objective.denominator(targets)
    total = {name: np.zeros_like(v) for name, v in kept.items()}
    for ids, lam in zip(sequences, targets):
        values = evaluate(arch, kept, {"ids": ids}, store=store, keep="all")
        g = store(logits_vjp(objective, values["logits"], lam, D))
        result = reference_backward(arch, kept, {"ids": ids}, {"logits": g}, values, store=store)
        for name in total:
            total[name] += result.theta[name]
    return total


def judge(arch: Architecture, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], stored: Mapping[str, np.ndarray],
          dtype: str, tokens: int, what: str, fail: bool = True) -> float:
    """The worst error ÷ budget over Θ entries under the gradient policy ``GRAD`` (docs/tolerances.md,
    "fast/'s backward against the reference"; ``gptspec check --grad`` judges by it): ∇θL is judged as
    one vector — e_store and scale are the largest over all of Θ — and K is the model's longest
    reduction or the batch's real tokens (a weight's gradient sums over them), the longer. Fails above 1
    (``fail``; benchmarks/backward_precision.py only reports)."""
    scale = max(float(np.max(np.abs(w), initial=0.0)) for w in want.values())
    e_store = max(float(np.max(np.abs(stored[name] - w), initial=0.0)) for name, w in want.items())
    budget = GRAD.budget(dtype, e_store, scale, 0.0, max(longest_reduction(arch), tokens))
    worst, worst_name = max((float(np.max(np.abs(np.asarray(got[n], dtype=np.float64) - w), initial=0.0)) / budget, n) for n, w in want.items())
    assert worst <= 1.0 or not fail, f"max|fast − reference| / budget of ∂L/∂{worst_name}={worst:.3f}, but should be ≤ 1 [{what}, {dtype}]"
    return worst


def padded(rng: np.random.Generator, B: int, T: int, n_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ids (B, T) and a valid mask whose rows are left-padded, right-padded or holed, each row
    keeping at least two real tokens; padded positions hold random ids (never read)."""
    ids = rng.integers(0, n_vocab, (B, T))
    valid = rng.random((B, T)) < 0.7
    for b in range(B):
        keep = rng.choice(T, size=2, replace=False)
        valid[b, keep] = True
    return ids, valid


@st.composite
def padded_problems(draw: st.DrawFn) -> tuple[Architecture, np.ndarray, np.ndarray, np.ndarray, Objective, bool]:
    arch = draw(st.sampled_from([TINY_GPT, TINY_LLAMA]), label="arch")
    B, T = draw(st.integers(1, 3), label="B"), draw(st.integers(2, 8), label="T")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    ids, valid = padded(rng, B, T, arch.dim("n_vocab"))
    objective = Objective(
        label_smoothing=draw(st.sampled_from([0.0, 0.1]), label="ε"), z_loss=draw(st.sampled_from([0.0, 1e-2]), label="ζ"),
        reduction=draw(st.sampled_from(["mean", "sequence", "sum"]), label="reduction"),
    )
    labels = np.where(rng.random((B, T)) < 0.25, objective.ignore_index, ids)  # some real positions not scored
    for b in range(B):  # every sequence counts ≥ 1 token (reduction "sequence" requires it): its second real label is scored
        labels[b, np.flatnonzero(valid[b])[1]] = ids[b, np.flatnonzero(valid[b])[1]]
    return arch, ids, valid, labels, objective, draw(st.booleans(), label="fused")


@settings(max_examples=EXAMPLES)
@given(problem=padded_problems())
def test_padded_batch_equals_the_reference_sequence_by_sequence(problem: tuple[Architecture, np.ndarray, np.ndarray, np.ndarray, Objective, bool]) -> None:
    """Padded rows (left, right or holes) contribute nothing: fast/ on the padded batch equals the
    reference on each sequence's real tokens (and labels), in loss, ∂L/∂θ, logits and ∂L/∂E."""
    arch, ids, valid, labels, objective, fused = problem
    theta = random_theta(arch, seed=5, std=0.4)
    sequences = [ids[b][valid[b]] for b in range(len(ids))]
    targets = [labels[b][valid[b]] for b in range(len(ids))]
    want = reference_value_and_grad(arch, theta, sequences, objective, targets)
    got = value_and_grad(arch, theta, ids, valid, labels=labels, objective=objective, fused=fused)
    assert abs(got.loss - want.loss) <= TOLERANCE * max(1.0, abs(want.loss)), f"loss={got.loss}, but should be {want.loss}"
    for name in want.theta:
        _close(got.theta[name], want.theta[name], f"∂L/∂{name}")
    for b, seq in enumerate(sequences):
        _close(got.logits[b][valid[b]], forward(arch, theta, seq), f"logits of sequence {b}")
        _close(got.embeddings["token_embedding"][b][valid[b]], want.embeddings[b]["token_embedding"], f"∂L/∂E of sequence {b}")
    assert np.all(got.logits[~valid] == 0) and np.all(got.embeddings["token_embedding"][~valid] == 0), "padded rows are 0"


def test_padded_positions_are_never_read() -> None:
    """What a padded position holds (its id, its label) changes nothing."""
    rng = np.random.default_rng(3)
    ids, valid = padded(rng, 3, 7, 11)
    theta = random_theta(TINY_LLAMA, seed=1, std=0.4)
    program = fast.compile(TINY_LLAMA, theta, "float64")
    first = program.value_and_grad(ids, valid, labels=ids)
    other_ids, other_labels = np.where(valid, ids, (ids + 5) % 11), np.where(valid, ids, 3)
    second = program.value_and_grad(other_ids, valid, labels=other_labels)
    assert first.loss == second.loss and all(np.array_equal(first.theta[n], second.theta[n]) for n in first.theta)


def test_micro_batches_with_the_batch_denominator_sum_to_the_batch() -> None:
    """spec/objective.py's accumulation rule through fast/: the micro-batches' gradients, each over
    the whole batch's denominator, sum to the batch's (the micro-batches count unequal tokens)."""
    rng = np.random.default_rng(4)
    ids, valid = padded(rng, 4, 6, 11)
    theta = random_theta(TINY_GPT, seed=2, std=0.4)
    program = fast.compile(TINY_GPT, theta, "float64")
    objective = Objective()
    D = objective.denominator([ids[b][valid[b]] for b in range(4)])
    whole = program.value_and_grad(ids, valid, objective=objective)
    parts = [program.value_and_grad(ids[s], valid[s], objective=objective, denominator=D) for s in (slice(0, 1), slice(1, 4))]
    assert abs(sum(p.loss for p in parts) - whole.loss) <= 1e-13
    for name in whole.theta:
        _close(parts[0].theta[name] + parts[1].theta[name], whole.theta[name], f"Σ micro-batches ∂L/∂{name}")


def _family_cases() -> list[Any]:
    return [pytest.param(fam, name, id=f"{fam.name}: {name}") for fam in FAMILIES.values() for name in fam.instances()]


@pytest.mark.parametrize(("fam", "instance"), _family_cases())
def test_every_family_differentiates_through_fast(fam: Family, instance: str) -> None:
    """Every registered family's every instance (derived from the registry: a new family is covered
    with no edit here), on a padded batch with label smoothing: float64 equal to the reference at
    1e-12, float32 and bfloat16 within the gradient policy. An encoder–decoder is refused by both,
    typed (neither differentiates it yet)."""
    arch = fam.builder(fam.instances()[instance])
    theta = random_theta(arch, seed=3, std=0.4)
    objective = Objective(label_smoothing=0.1)
    if fam.kind != "decoder":
        with pytest.raises(ConfigError, match="decoder reading ids only"):
            value_and_grad(arch, theta, np.zeros((1, 2), dtype=np.int64))
        return
    T = min(arch.dim("n_ctx"), 6)
    ids, valid = padded(np.random.default_rng(1), 2, T, arch.dim("n_vocab"))
    sequences = [ids[b][valid[b]] for b in range(2)]
    want = reference_gradients(arch, theta, sequences, objective)
    got = value_and_grad(arch, theta, ids, valid, objective=objective)
    for name in want:
        _close(got.theta[name], want[name], f"∂L/∂{name} [{fam.name}: {instance}]")
    for dtype in ("float32", "bfloat16"):
        stored = reference_gradients(arch, theta, sequences, objective, store=storer(dtype))
        low = fast.compile(arch, theta, dtype).value_and_grad(ids, valid, objective=objective)
        assert all(g.dtype == np.dtype(fast.DTYPES[dtype]) for g in low.theta.values()), "gradients in the program's dtype"
        judge(arch, low.theta, want, stored, dtype, int(valid.sum()), f"{fam.name}: {instance}")


@settings(max_examples=max(2, EXAMPLES // 3))
@given(data=st.data())
def test_lower_precisions_within_the_gradient_policy(data: st.DataObject) -> None:
    """float32, float16 and bfloat16 on random θ, batches and objectives, judged against the float64
    reference under the policy (docs/tolerances.md)."""
    arch, ids, valid, labels, objective, fused = data.draw(padded_problems(), label="problem")
    dtype = data.draw(st.sampled_from(["float32", "float16", "bfloat16"]), label="dtype")
    theta = random_theta(arch, seed=data.draw(st.integers(0, 1000), label="θ seed"), std=0.4)
    sequences = [ids[b][valid[b]] for b in range(len(ids))]
    targets = [labels[b][valid[b]] for b in range(len(ids))]
    want = reference_gradients(arch, theta, sequences, objective, targets)
    stored = reference_gradients(arch, theta, sequences, objective, targets, store=storer(dtype))
    got = value_and_grad(arch, theta, ids, valid, labels=labels, objective=objective, dtype=dtype, fused=fused)
    judge(arch, got.theta, want, stored, dtype, int(valid.sum()), arch.name)


def test_the_float32_policy_sees_a_layer_norm_backward_missing_its_mean_term(monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget is not so wide that a realistic backward bug fits in it: layer norm's VJP without
    the −mean(ĝ) term (a common hand-written-kernel mistake) fails the float32 policy."""
    theta = random_theta(TINY_GPT, seed=3, std=0.4)
    ids, valid = padded(np.random.default_rng(2), 2, 6, 11)
    sequences = [ids[b][valid[b]] for b in range(2)]
    want = reference_gradients(TINY_GPT, theta, sequences, Objective())
    stored = reference_gradients(TINY_GPT, theta, sequences, Objective(), store=storer("float32"))
    correct = FAST_VJP["layer_norm"]
    judge(TINY_GPT, value_and_grad(TINY_GPT, theta, ids, valid, dtype="float32").theta, want, stored, "float32", int(valid.sum()), "correct")

    def missing_mean(op: Any, batch: Any, g: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = correct(op, batch, g, x, gamma, beta)
        gxhat = g * gamma
        r = 1.0 / np.sqrt(((x - x.mean(axis=-1, keepdims=True)) ** 2).mean(axis=-1, keepdims=True) + op.eps)
        out["x"] = out["x"] + r * gxhat.mean(axis=-1, keepdims=True)  # the − mean(ĝ) term undone
        return out

    monkeypatch.setitem(FAST_VJP._table, "layer_norm", missing_mean)
    got = value_and_grad(TINY_GPT, theta, ids, valid, dtype="float32")
    with pytest.raises(AssertionError, match="budget"):
        judge(TINY_GPT, got.theta, want, stored, "float32", int(valid.sum()), "layer norm without the mean term")


def test_program_value_and_grad_refuses_what_it_cannot_differentiate() -> None:
    program = fast.compile(TINY_GPT, random_theta(TINY_GPT, seed=0), "float64")
    ids = np.array([[1, 2, 3]])
    with pytest.raises(ShapeError, match="labels of shape"):
        program.value_and_grad(ids, labels=np.array([[1, 2]]))
    with pytest.raises(TokenError, match="label of sequence 0 at position 1=11"):
        program.value_and_grad(ids, labels=np.array([[1, 11, 3]]))
    with pytest.raises(ConfigError, match="objective of type"):
        program.value_and_grad(ids, objective="mean")  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="N=0"):
        program.value_and_grad(ids, labels=np.full((1, 3), -100))
    with pytest.raises(TokenError, match="n_ctx"):
        program.value_and_grad(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(TokenError, match="n_vocab"):
        program.value_and_grad(np.array([[1, 11]]))
    with pytest.raises(ShapeError, match="cotangent of shape"):
        backward(TINY_GPT, random_theta(TINY_GPT, seed=0), ids, np.zeros((1, 3, 2)))
