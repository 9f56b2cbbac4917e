"""fast/'s batched backward (fast/backward.py) equals the reference's (reference/backward.py).

* every primitive has a batched VJP (``FAST_VJP``), and each equals the reference VJP applied
  sequence by sequence, on the op's own examples (every mask family, partial rotary, soft caps);
* the batched reverse pass gives the reference's ∂L/∂θ on a tiny GPT and a tiny Llama (GQA, tied),
  op by op and with every head fused (no T × T value kept between the passes);
* the fused head's backward, which recomputes the probabilities one key block at a time, equals
  the reference's scores → masked softmax → weighted sum VJPs composed, rows with no allowed key
  and soft caps included, for every block size.

All float64; criterion max|fast − reference| ≤ 1e-12 · max(1, max|reference|): the same
formulas summed in other orders.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from fast.backward import FAST_VJP, allowed_matrix, attention_backward, attention_forward, backward, full_batch, fused_heads
from reference.backward import backward as reference_backward
from reference.interpreter import forward
from reference.ops import VJP
from spec import GPTConfig, build_gpt
from spec.architectures import LlamaConfig, build_llama
from spec.graph import Architecture
from spec.masks import Causal, Full, Intersection, KeyPadding, Relation, Window
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
