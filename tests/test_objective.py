"""The training objective (spec/objective.py) and its derivative (reference/objective.py).

* the float64 token losses equal ``Objective.token_definition`` (sympy) evaluated at 40 digits;
* the logits' cotangent equals sympy's derivative of that definition times the weights, and central
  differences of the loss;
* PyTorch's ``cross_entropy`` (label_smoothing, ignore_index, mean/sum) agrees: an independent
  implementation of the same objective;
* the reductions, the label shift, the refusals;
* accumulation: micro-batches with the whole batch's denominator sum to the batch's loss and
  logits' gradient; the per-micro-batch mean does not (unequal token counts).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given
from hypothesis import strategies as st

from reference.objective import logits_vjp
from spec.errors import ConfigError, ShapeError, TokenError
from spec.objective import Objective

IGNORE = -100

objectives = st.builds(
    Objective,
    ignore_index=st.just(IGNORE),
    label_smoothing=st.sampled_from([0.0, 0.1, 0.5]),
    z_loss=st.sampled_from([0.0, 1e-4, 0.3]),
    reduction=st.sampled_from(["mean", "sequence", "sum"]),
)


@st.composite
def batches(draw: st.DrawFn, n_vocab: int = 5, max_len: int = 5, max_batch: int = 4) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Logits and labels of a batch: lengths 2 … max_len, labels ignored at random (never all of
    a sequence, so every reduction is defined)."""
    B = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits, labels = [], []
    for _ in range(B):
        T = draw(st.integers(2, max_len))
        lam = rng.integers(0, n_vocab, T)
        ignored = rng.random(T) < 0.3
        ignored[rng.integers(1, T)] = False  # at least one counted target
        lam[ignored] = IGNORE
        logits.append(3.0 * rng.standard_normal((T, n_vocab)))
        labels.append(lam)
    return logits, labels


@functools.lru_cache(maxsize=256)
def _sympy_row(obj: Objective, y: int, n_vocab: int) -> tuple[sympy.IndexedBase, sympy.Expr, tuple[sympy.Expr, ...]]:
    """ℓ of one row from ``Objective.token_definition`` and its derivatives ∂ℓ/∂z_v, by sympy."""
    z = sympy.IndexedBase("z", shape=(n_vocab,))
    expr = obj.token_definition(z, y, n_vocab).doit()
    return z, expr, tuple(sympy.diff(expr, z[v]) for v in range(n_vocab))


def _exact_row(obj: Objective, row: np.ndarray, y: int) -> tuple[float, np.ndarray]:
    """ℓ and ∂ℓ/∂z of one row from the sympy definition, at 40 digits."""
    z, expr, partials = _sympy_row(obj, y, row.size)
    data = {z[v]: sympy.Rational(*float(row[v]).as_integer_ratio()) for v in range(row.size)}
    value = float(expr.xreplace(data).evalf(40))
    grad = np.array([float(d.xreplace(data).evalf(40)) for d in partials])
    return value, grad


@given(obj=objectives, batch=batches(max_batch=2, max_len=3))
def test_token_losses_and_logits_vjp_are_the_definition_and_its_derivative(obj: Objective, batch: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    logits, labels = batch
    D = obj.denominator(labels)
    for z, lam in zip(logits, labels):
        losses = obj.token_losses(z, lam)
        w = obj.weights(lam, D)
        g = logits_vjp(obj, z, lam, D)
        for t in range(z.shape[0]):
            if t == z.shape[0] - 1 or lam[t + 1] == IGNORE:
                assert losses[t] == 0.0 and w[t] == 0.0 and np.all(g[t] == 0.0), f"row {t} is not counted"
                continue
            value, grad = _exact_row(obj, z[t], int(lam[t + 1]))
            assert abs(losses[t] - value) <= 1e-13 * max(1.0, abs(value)), f"ℓ_{t}={losses[t]!r}, but the definition gives {value!r}"
            assert np.max(np.abs(g[t] - w[t] * grad)) <= 1e-13 * max(1.0, float(np.max(np.abs(w[t] * grad)))), (
                f"∂L/∂z_{t}={g[t]!r}, but w_t ∂ℓ/∂z from the definition is {w[t] * grad!r}"
            )


@given(obj=objectives, batch=batches())
def test_logits_vjp_matches_central_differences(obj: Objective, batch: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    logits, labels = batch
    b = 0
    g = logits_vjp(obj, logits[b], labels[b], obj.denominator(labels))
    for index in np.ndindex(logits[b].shape):
        h = 1e-6
        sides = []
        for sign in (1.0, -1.0):
            moved = [z.copy() for z in logits]
            moved[b][index] += sign * h
            sides.append(obj.loss(moved, labels))
        fd = (sides[0] - sides[1]) / (2 * h)
        assert abs(g[index] - fd) <= 1e-7, f"∂L/∂z{list(index)}={g[index]!r}, but central differences give {fd!r}"


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@given(batch=batches(), eps=st.sampled_from([0.0, 0.1]))
def test_pytorch_cross_entropy_agrees(reduction: str, batch: tuple[list[np.ndarray], list[np.ndarray]], eps: float) -> None:
    """torch.nn.functional.cross_entropy on the shifted, flattened batch (HF's causal-LM loss)."""
    logits, labels = batch
    obj = Objective(label_smoothing=eps, reduction=reduction)  # type: ignore[arg-type]
    rows = torch.from_numpy(np.concatenate([z[:-1] for z in logits])).requires_grad_(True)
    targets = torch.from_numpy(np.concatenate([lam[1:] for lam in labels]))
    theirs = torch.nn.functional.cross_entropy(rows, targets, ignore_index=IGNORE, label_smoothing=eps, reduction=reduction)
    theirs.backward()
    ours = obj.loss(logits, labels)
    assert abs(ours - float(theirs.detach())) <= 1e-13 * max(1.0, abs(ours)), f"loss={ours!r}, but torch gives {float(theirs.detach())!r}"
    D = obj.denominator(labels)
    ours_g = np.concatenate([logits_vjp(obj, z, lam, D)[:-1] for z, lam in zip(logits, labels)])
    assert rows.grad is not None
    assert np.max(np.abs(ours_g - rows.grad.numpy())) <= 1e-15 * 16, "∂L/∂z differs from torch autograd"


# --- the reductions, the shift, the refusals -------------------------------------------------


def test_reductions_weights_and_the_label_shift() -> None:
    labels = [np.array([3, 1, IGNORE, 2]), np.array([0, 4])]  # counted targets: (1, 2) in the first, (4) in the second
    obj = Objective()
    assert obj.counted(labels[0]).tolist() == [True, False, True, False]  # row t predicts λ_{t+1}; the last row predicts nothing
    assert obj.denominator(labels) == 3
    assert Objective(reduction="sequence").denominator(labels) == 2 and Objective(reduction="sum").denominator(labels) == 1
    assert Objective(reduction="sequence").weights(labels[0], 2).tolist() == [0.25, 0.0, 0.25, 0.0]
    assert obj.weights(labels[1], 3).tolist() == [1 / 3, 0.0]
    uniform = [np.zeros((4, 5)), np.zeros((2, 5))]  # every ℓ = log 5
    assert obj.loss(uniform, labels) == pytest.approx(math.log(5), rel=1e-15)
    assert Objective(reduction="sum").loss(uniform, labels) == pytest.approx(3 * math.log(5), rel=1e-15)


def test_refusals() -> None:
    obj = Objective()
    with pytest.raises(TokenError, match="counted tokens N=0"):
        obj.denominator([np.array([1, IGNORE]), np.array([2])])
    with pytest.raises(TokenError, match="sequence 1 counts 0 tokens"):
        Objective(reduction="sequence").denominator([np.array([1, 2]), np.array([2, IGNORE])])
    with pytest.raises(TokenError, match="label at position 1=7, but expected 0 ≤ label < n_vocab=5"):
        obj.token_losses(np.zeros((2, 5)), [0, 7])
    with pytest.raises(ShapeError, match="logits of shape"):
        obj.token_losses(np.zeros((3, 5)), [0, 1])
    with pytest.raises(ConfigError, match="ignore_index=0"):
        Objective(ignore_index=0)
    with pytest.raises(ConfigError, match="label_smoothing=1.5"):
        Objective(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="reduction='batch'"):
        Objective(reduction="batch")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="denominator=0"):
        obj.weights([1, 2], 0)


# --- accumulation ----------------------------------------------------------------------------


@given(obj=objectives, batch=batches(max_batch=5), cuts=st.lists(st.booleans(), min_size=4, max_size=4))
def test_micro_batches_with_the_batch_denominator_sum_to_the_batch(
    obj: Objective, batch: tuple[list[np.ndarray], list[np.ndarray]], cuts: list[bool]
) -> None:
    logits, labels = batch
    bounds = [0] + [i + 1 for i, cut in enumerate(cuts[: len(logits) - 1]) if cut] + [len(logits)]
    D = obj.denominator(labels)
    parts = [(logits[a:b], labels[a:b]) for a, b in zip(bounds, bounds[1:])]
    total = math.fsum(obj.micro_batch_loss(z, lam, D) for z, lam in parts)
    whole = obj.loss(logits, labels)
    assert abs(total - whole) <= 1e-13 * max(1.0, abs(whole)), f"Σ_j L_j={total!r}, but L={whole!r}"
    g_parts = [logits_vjp(obj, z, lam, D) for z_mb, lam_mb in parts for z, lam in zip(z_mb, lam_mb)]
    g_whole = [logits_vjp(obj, z, lam, D) for z, lam in zip(logits, labels)]
    assert all(np.array_equal(a, b) for a, b in zip(g_parts, g_whole))


def test_the_per_micro_batch_mean_is_not_the_batch_mean() -> None:
    """One micro-batch counting 1 token, another counting 3: averaging their means weighs the lone
    token 1/2 instead of 1/4."""
    obj = Objective()
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal((2, 5)), rng.standard_normal((4, 5))]
    labels = [np.array([0, 1]), np.array([0, 1, 2, 3])]
    right = math.fsum(obj.micro_batch_loss([z], [lam], obj.denominator(labels)) for z, lam in zip(logits, labels))
    wrong = math.fsum(obj.micro_batch_loss([z], [lam], obj.denominator([lam])) for z, lam in zip(logits, labels)) / 2
    assert right == pytest.approx(obj.loss(logits, labels), rel=1e-15)
    assert abs(wrong - right) > 1e-3, "the per-micro-batch mean happened to equal the batch mean"
    g_wrong = logits_vjp(obj, logits[0], labels[0], obj.denominator(labels[:1])) / 2
    g_right = logits_vjp(obj, logits[0], labels[0], obj.denominator(labels))
    assert np.allclose(g_wrong, 2 * g_right, rtol=1e-15, atol=0), "the lone token's gradient is doubled"
