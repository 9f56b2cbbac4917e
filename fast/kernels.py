"""Batched kernels, one per primitive op ``kind`` (the same names as spec/ and reference/).

Layouts: a position-axis tensor is (B, T, features); token ids are (B, T); scores are
(B, T, S). Every affine map is one GEMM over all B·T rows. The one-hot matrix is never built:
``one_hot`` returns the ids lazily and ``token_embedding`` gathers rows of W_E (proofs/ shows
this equals the literal product).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from spec.errors import ShapeError, TokenError
from spec.masks import Banded, Causal, Full, Intersection, KeyPadding, NoDependence, Relation, RowWise, Window
from spec.op import Primitive
from spec.ops import (
    Add,
    Affine,
    AttentionScores,
    ConcatHeads,
    GeluErf,
    GeluTanh,
    LayerNorm,
    LearnedPositional,
    MaskedSoftmax,
    OneHot,
    Relu,
    SinusoidalPositional,
    TokenEmbedding,
    WeightedSum,
)

Array = npt.NDArray[Any]
Kernel = Callable[..., Any]
KERNELS: dict[str, Kernel] = {}
"""op kind → batched kernel ``fn(op, batch, **inputs, **params)``."""

K = TypeVar("K", bound=Kernel)


def kernel(op: type[Primitive]) -> Callable[[K], K]:
    """Register the batched kernel of ``op``."""

    def decorate(fn: K) -> K:
        KERNELS[op.kind] = fn
        return fn

    return decorate


@dataclass(frozen=True)
class OneHotIds:
    """The one-hot matrix X ∈ {0,1}^{B×T×n_vocab}, kept as its ids."""

    ids: npt.NDArray[np.int64]
    n_vocab: int

    def materialize(self, dtype: npt.DTypeLike) -> Array:
        X = np.zeros((*self.ids.shape, self.n_vocab), dtype=dtype)
        np.put_along_axis(X, self.ids[..., None], 1, axis=-1)
        return X


def allowed(relation: Relation, q_pos: npt.NDArray[np.int64], k_pos: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """The (B, T, S) allowed matrix of a relation, by position ids (not array indices)."""
    t, s = q_pos[:, :, None], k_pos[:, None, :]
    if isinstance(relation, Causal):
        return np.asarray(s <= t)
    if isinstance(relation, Banded):
        return np.asarray((s <= t) & (s > t - relation.w))
    if isinstance(relation, Window):
        return np.asarray((s >= t + relation.lo) & (s <= t + relation.hi))
    if isinstance(relation, Full):
        return np.ones((q_pos.shape[0], q_pos.shape[1], k_pos.shape[1]), dtype=bool)
    if isinstance(relation, RowWise):
        return np.asarray(s == t)
    if isinstance(relation, NoDependence):
        return np.zeros((q_pos.shape[0], q_pos.shape[1], k_pos.shape[1]), dtype=bool)
    if isinstance(relation, KeyPadding):
        valid = np.asarray(relation.valid, dtype=bool)
        if valid.shape[0] != k_pos.shape[1]:
            raise ShapeError(f"KeyPadding mask has {valid.shape[0]} keys, but expected S={k_pos.shape[1]} [fast masked_softmax]")
        return np.broadcast_to(valid[None, None, :], (q_pos.shape[0], q_pos.shape[1], k_pos.shape[1]))
    if isinstance(relation, Intersection):
        out = np.ones((q_pos.shape[0], q_pos.shape[1], k_pos.shape[1]), dtype=bool)
        for part in relation.parts:
            out &= allowed(part, q_pos, k_pos)
        return out
    raise ShapeError(f"mask {relation!r}, but expected a relation fast/ implements [fast.kernels.allowed]; add it here")


def attention_mask(relation: Relation, batch: Batch) -> npt.NDArray[np.bool_]:
    """Allowed and real: the mask's relation, the keys that are not padding, and only real
    query rows (a padded query row has no allowed key, so its output is 0)."""
    return allowed(relation, batch.positions, batch.key_positions) & batch.key_valid[:, None, :] & batch.valid[:, :, None]


@kernel(OneHot)
def one_hot(op: OneHot, batch: Batch, ids: npt.NDArray[np.int64]) -> OneHotIds:
    return OneHotIds(ids, int(op.n_vocab))


@kernel(TokenEmbedding)
def token_embedding(op: TokenEmbedding, batch: Batch, X: OneHotIds | Array, W_E: Array) -> Array:
    if isinstance(X, OneHotIds):
        return W_E[X.ids]  # gather rows: X W_E for one-hot X
    return X @ W_E


@kernel(LearnedPositional)
def learned_positional(op: LearnedPositional, batch: Batch, ids: Any, W_P: Array) -> Array:
    n_ctx = W_P.shape[0]
    if batch.positions.size and int(batch.positions[batch.valid].max(initial=0)) >= n_ctx:
        raise TokenError(
            f"position {int(batch.positions[batch.valid].max())} needs T > n_ctx={n_ctx}, but expected "
            f"T ≤ n_ctx [fast learned_positional]; shorten the sequence"
        )
    P: Array = W_P[np.minimum(batch.positions, n_ctx - 1)]
    return P


@kernel(SinusoidalPositional)
def sinusoidal_positional(op: SinusoidalPositional, batch: Batch, ids: Any) -> Array:
    d = int(op.d)
    j = np.arange(d)
    angle = batch.positions[..., None] / float(op.base) ** ((2 * (j // 2)) / d)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))


CHUNK = 1 << 18
"""Elements per chunk of a row-wise kernel: 1 MiB in float32, so the several passes of GELU or
layer norm over a chunk stay in cache (measured best at gpt2-small sizes, between 2¹⁴ and 2²²)."""


def _by_rows(fn: Callable[[Array, Array], object], x: Array) -> Array:
    """A row-wise kernel ``fn(x_rows, out_rows)`` (rows: every axis but the last) run on chunks
    of about :data:`CHUNK` elements."""
    out: Array = np.empty(x.shape, dtype=x.dtype)
    if x.size:
        x2 = x.reshape(-1, x.shape[-1] if x.ndim else 1)
        y2 = out.reshape(x2.shape)
        step = max(1, CHUNK // x2.shape[1])
        for r in range(0, x2.shape[0], step):
            fn(x2[r : r + step], y2[r : r + step])
    return out


@kernel(LayerNorm)
def layer_norm(op: LayerNorm, batch: Batch, x: Array, gamma: Array, beta: Array | None = None) -> Array:
    eps = x.dtype.type(op.eps)

    def rows(x: Array, y: Array) -> None:
        mu = x.mean(axis=-1, keepdims=True)
        np.subtract(x, mu, out=y)  # δ = x − μ
        sigma2 = np.vecdot(y, y)[..., None] / y.shape[-1]  # δ·δ / d, without a δ² array
        y *= 1.0 / np.sqrt(sigma2 + eps)
        y *= gamma
        if beta is not None:
            y += beta

    return _by_rows(rows, x)


@kernel(Affine)
def affine(op: Affine, batch: Batch, x: Array, W: Array, b: Array | None = None) -> Array:
    rows = x.reshape(-1, x.shape[-1])  # (B·T, d_in): one GEMM for the whole batch
    y = rows @ W
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], W.shape[1])


@kernel(GeluTanh)
def gelu_tanh(op: GeluTanh, batch: Batch, x: Array) -> Array:
    # ½x(1 + tanh u) = x·σ(z), z = 2u = x(a + b x²) with u = √(2/π)(x + 0.044715x³). With
    # e = exp(−|z|) ≤ 1 (never overflows), σ(z) = 1 / (1 + e) for z ≥ 0 and e / (1 + e) for
    # z < 0: no cancellation in 1 + tanh u for x ≪ 0 (the reference's stable form), one exp and
    # no tanh. The sign of z is the sign of x, and |z| = |x|(a + b x²).
    c = math.sqrt(2.0 / math.pi)
    a, b = x.dtype.type(2.0 * c), x.dtype.type(2.0 * c * 0.044715)

    def rows(x: Array, y: Array) -> None:
        e = x * x
        e *= -b
        e -= a
        e *= np.abs(x, out=y)  # −|z|
        np.exp(e, out=e)
        np.add(e, 1, out=y)
        np.divide(x, y, out=y)  # x / (1 + e)
        y *= np.maximum(e, x >= 0, out=e)  # × (1 where z ≥ 0, e where z < 0)

    return _by_rows(rows, x)


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


@kernel(GeluErf)
def gelu_erf(op: GeluErf, batch: Batch, x: Array) -> Array:
    # ½x(1 + erf(x/√2)) = ½x·erfc(−x/√2): 1 + erf cancels for x ≪ 0, erfc does not (as in the
    # reference). numpy has no erfc; math.erfc per element is exact but slow.
    y: Array = (0.5 * x * _erfc(-x / math.sqrt(2.0))).astype(x.dtype)
    return y


@kernel(Relu)
def relu(op: Relu, batch: Batch, x: Array) -> Array:
    return np.maximum(x, 0)


@kernel(Add)
def add(op: Add, batch: Batch, a: Array, b: Array) -> Array:
    return a + b


@kernel(AttentionScores)
def attention_scores(op: AttentionScores, batch: Batch, Q: Array, K: Array) -> Array:
    scores: Array = (Q @ K.swapaxes(-1, -2)) * Q.dtype.type(float(op.scale))
    return scores


def softmax_rows(x: Array, mask: npt.NDArray[np.bool_]) -> Array:
    """The masked softmax of DESIGN.md along the last axis: stable (subtract the row max over the
    allowed set), exactly 0 outside the set, and a row with no allowed entry all zeros."""
    m = np.max(np.where(mask, x, -np.inf), axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(mask, np.exp(np.where(mask, x - m, 0)), 0)
    Z = e.sum(axis=-1, keepdims=True)
    y: Array = np.divide(e, Z, out=np.zeros_like(e), where=Z > 0)
    return y


@kernel(MaskedSoftmax)
def masked_softmax(op: MaskedSoftmax, batch: Batch, x: Array) -> Array:
    if x.shape[1:] != (batch.positions.shape[1], batch.key_positions.shape[1]):
        raise ShapeError(
            f"scores of shape {x.shape}, but expected (B, T, S) = (B, {batch.positions.shape[1]}, "
            f"{batch.key_positions.shape[1]}) [fast masked_softmax]; fast/ runs self-attention only so far"
        )
    return softmax_rows(x, attention_mask(op.mask, batch))


@kernel(WeightedSum)
def weighted_sum(op: WeightedSum, batch: Batch, A: Array, V: Array) -> Array:
    return A @ V


@kernel(ConcatHeads)
def concat_heads(op: ConcatHeads, batch: Batch, **z: Array) -> Array:
    return np.concatenate([z[f"z_{h}"] for h in range(op.n_heads)], axis=-1)


from spec.ops import Conv1d  # noqa: E402  (appended with the op; kept self-contained)


@kernel(Conv1d)
def conv1d(op: Conv1d, batch: Batch, x: Array, W: Array, b: Array | None = None) -> Array:
    """x: (B, S, d_in) rows at the batch's key positions (when decoding: the cached rows, then
    this call's); the output has a row per query position. Tap i of query position p reads the
    real row at position p − pad_left + i, or zero padding where there is none."""
    y = np.zeros((*batch.positions.shape, W.shape[2]), dtype=x.dtype)
    for i in range(op.kernel):
        want = batch.positions - op.pad_left + i  # (B, T) input position under tap i
        pick = (batch.key_positions[:, None, :] == want[:, :, None]) & batch.key_valid[:, None, :]  # (B, T, S)
        y += (pick.astype(x.dtype) @ x) @ W[i]
    if b is not None:
        y += b
    return y
