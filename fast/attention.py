"""Fused multi-head attention: one QKV GEMM per layer, and a kernel that cuts the queries into
tiles and walks the keys in blocks with the online-softmax recurrence, so the scores held at
once are O(B·n_heads·block²), not T².

Grouped-query attention (n_kv_heads < n_heads) keeps K and V once per key/value head — in the
GEMM's output, in the KV cache and in the attention kernel, where the query heads sharing a
key/value head are stacked into one matrix against it. The head-transform slot of the
attention (rotary embedding, full or partial, at each row's position id — fast/kernels/rotary.py
—, and QK-norm) is applied to Q and K inside the fused step, so the cache holds transformed keys;
score soft-capping is applied to each block of scores before the mask. Cross-attention (queries
from one sequence, keys and values from another, e.g. an encoder's output) runs here too: its K
and V are computed once per sequence and kept.
Key blocks no query of a tile may see — in the tile's future, or before a sliding window — are
skipped.

The recurrence is spec/online_softmax.py's (``step`` and ``result``), run here with the numpy
operations of :class:`NumpyOps`; that it equals the masked softmax's weighted sum for any split
of the keys into blocks is the theorem ``online_softmax`` of proofs/, proved about that same
function.

:func:`match` reads the :class:`~spec.blocks.Attention` value that spec/blocks.py's attention
composite carries (:class:`~spec.blocks.AttentionComposite`), never the names of its nodes;
anything else runs op by op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sympy

from fast import parallel
from fast.batch import Batch
from fast.kernels import allowed
from fast.kernels.rotary import rotate
from fast.kernels.softcap import soft_cap
from fast.precision import Precision
from spec import online_softmax as online
from spec.blocks import AttentionComposite, QKNorm
from spec.dims import T as T_SYMBOL
from spec.dims import concrete
from spec.errors import ShapeError
from spec.graph import Node
from spec.masks import Relation
from spec.ops import Rotary

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class MHAPlan:
    """What the fused kernel needs to know about one multi-head attention node: its
    :class:`~spec.blocks.Attention` with the dims bound, and its Θ entries' names."""

    n_heads: int
    mask: Relation
    scale: float
    W_Q: str
    W_K: str
    W_V: str
    W_O: str
    b_Q: str | None
    b_K: str | None
    b_V: str | None
    b_O: str | None
    n_kv_heads: int = 0
    """Key/value heads (0: n_heads); query head h reads key/value head h // (n_heads / n_kv_heads)."""
    transforms: tuple[Rotary | QKNorm, ...] = ()
    """What every head does to Q and K, in order (rotary rows normalised to T)."""
    q_norm: str | None = None
    k_norm: str | None = None
    softcap: float | None = None
    cross: bool = False
    """Keys and values from another input than the queries (cross-attention): no rotation of
    keys at query positions, and when decoding, K and V are computed once and kept."""

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def rotary(self) -> Rotary | None:
        found = [t for t in self.transforms if isinstance(t, Rotary)]
        return found[0] if found else None


def match(node: Node, dims: Mapping[sympy.Symbol, int] | None = None) -> MHAPlan | None:
    """The plan of a multi-head attention composite (spec.blocks.AttentionComposite, which carries
    what the attention is), or None for any other node; ``dims`` bind its symbolic head counts."""
    op = node.op
    if not isinstance(op, AttentionComposite):
        return None
    op.check_body(node.name)
    a = op.attention
    bound = dict(dims or {})
    H = concrete(a.n_heads, bound)
    KV = H if a.n_kv_heads is None else concrete(a.n_kv_heads, bound)
    e = op.entries
    return MHAPlan(
        n_heads=H, mask=a.mask, scale=float(a.scale), W_Q=e["W_Q"], W_K=e["W_K"], W_V=e["W_V"], W_O=e["W_O"],
        b_Q=e.get("b_Q"), b_K=e.get("b_K"), b_V=e.get("b_V"), b_O=e.get("b_O"), n_kv_heads=KV,
        transforms=tuple(dataclasses.replace(t, rows=T_SYMBOL) if isinstance(t, Rotary) else t for t in a.transforms),
        q_norm=e.get("q_norm"), k_norm=e.get("k_norm"), softcap=a.softcap, cross=node.inputs["x_q"] != node.inputs["x_kv"],
    )


@dataclass
class MHAWeights:
    """The plan's parameters, packed once per (θ, dtype): W_qkv is (d_in, (H + 2·KV)·d_head),
    the query heads' columns then the key/value heads' K and V columns."""

    W_qkv: Array
    b_qkv: Array | None
    W_O: Array
    b_O: Array | None
    q_norm: Array | None = None
    k_norm: Array | None = None


def pack(plan: MHAPlan, theta: Mapping[str, np.ndarray], precision: Precision) -> MHAWeights:
    def flat(name: str, heads: int) -> Array:  # (heads, d_in, d_head) → (d_in, heads·d_head), head-major columns
        w = theta[name]
        if w.ndim != 3 or w.shape[0] != heads:
            raise ShapeError(f"{name} has shape {w.shape}, but expected ({heads}, d_in, d_head) [fast attention]")
        return w.transpose(1, 0, 2).reshape(w.shape[1], -1)

    H, KV = plan.n_heads, plan.kv_heads
    parts = [flat(plan.W_Q, H), flat(plan.W_K, KV), flat(plan.W_V, KV)]
    W_qkv = np.concatenate(parts, axis=1)
    b_qkv = None
    biases = (plan.b_Q, plan.b_K, plan.b_V)
    if any(biases):  # a projection without a bias adds zeros: exact, and one GEMM + one add still serves all three
        b_qkv = np.concatenate([theta[b].ravel() if b else np.zeros(part.shape[1]) for b, part in zip(biases, parts)])
    W_O = theta[plan.W_O]
    store = precision.store  # rounded once from float64 to the storage dtype
    return MHAWeights(
        store(np.ascontiguousarray(W_qkv)),
        None if b_qkv is None else store(b_qkv),
        store(np.ascontiguousarray(W_O.reshape(-1, W_O.shape[-1]))),
        None if plan.b_O is None else store(np.asarray(theta[plan.b_O])),
        None if plan.q_norm is None else store(np.asarray(theta[plan.q_norm])),
        None if plan.k_norm is None else store(np.asarray(theta[plan.k_norm])),
    )


def _head_norm(t: QKNorm, x: Array, gamma: Array) -> Array:
    """RMS norm of every head's row over d_head (the QK-norm), as fast/kernels/rms_norm.py computes it;
    with ``scope="full"`` (OLMo 2) of every row over all its heads' features at once, gain (heads, d_head)."""
    eps = x.dtype.type(t.eps)
    g = gamma + 1 if t.offset else gamma
    if t.scope == "full":
        flat = x.reshape(*x.shape[:-2], -1)
        mean_square = np.vecdot(flat, flat)[..., None, None] / flat.shape[-1]
    else:
        mean_square = np.vecdot(x, x)[..., None] / x.shape[-1]
    y: Array = x * (1.0 / np.sqrt(mean_square + eps))
    y *= g
    return y


def _transform(plan: MHAPlan, weights: MHAWeights, P: Precision, which: str, x: Array, positions: npt.NDArray[np.int64]) -> Array:
    """The plan's head transforms, in order, on Q or K rows (B, rows, heads, d_head) at ``positions``."""
    for t in plan.transforms:
        if isinstance(t, Rotary):
            x = P.round(rotate(t, x, positions))
        else:
            gamma = weights.q_norm if which == "Q" else weights.k_norm
            if gamma is None:
                raise ShapeError(f"QK-norm without its gain for {which} [fast attention]")
            x = P.round(_head_norm(t, x, P.load(gamma)))
    return x


class NumpyOps:
    """The online-softmax operations (spec/online_softmax.py) on numpy arrays of shape
    (B, H, tile, ·), in the arrays' own dtype, in place where the recurrence allows it."""

    def rowmax(self, x: Array) -> Array:
        out: Array = x.max(axis=-1, keepdims=True)
        return out

    def maximum(self, a: Array, b: Array) -> Array:
        return np.maximum(a, b, out=a)

    def finite_or_zero(self, m: Array) -> Array:
        return np.where(np.isfinite(m), m, m.dtype.type(0))

    def exp_shifted(self, x: Array, shift: Array) -> Array:
        x -= shift
        return np.exp(x, out=x)

    def rowsum(self, p: Array) -> Array:
        out: Array = p.sum(axis=-1, keepdims=True)
        return out

    def weighted(self, p: Array, v: Array) -> Array:
        out: Array = p @ v
        return out

    def scale_add(self, a: Array, r: Array, b: Array) -> Array:
        a *= r
        a += b
        return a

    def ratio(self, acc: Array, l: Array) -> Array:
        # l ≥ 1 on a row with an allowed key (its max contributes e^0 = 1) and l = 0, acc = 0 on a
        # row without: dividing by max(l, 1) gives acc / l there and 0 here
        out: Array = np.divide(acc, np.maximum(l, 1, out=l))
        return out


NUMPY_OPS = NumpyOps()


PARALLEL_SCORES = 1 << 16
"""Scores (B·H·T·S) below which attention runs on the calling thread alone: one decoding step of
a short sequence costs less than handing it to a thread."""


def blocked_attention(
    q: Array, k: Array, v: Array, scale: float, mask: Relation, batch: Batch, block: int, out: Array | None = None,
    softcap: float | None = None,
) -> Array:
    """softmax_A(scale · q kᵀ) v in tiles. Multi-head: q (B, H, T, d), k, v (B, H, S, d), result
    (B, H, T, d_v). Grouped-query: q (B, KV, G, T, d) — the G query heads of each key/value
    head — k, v (B, KV, S, d), result (B, KV, G, T, d_v). The result is written into ``out``
    when given (any strides).

    The queries are cut into tiles of ``block`` rows; each tile walks the keys in blocks of
    ``block`` columns (longer when the tile is shorter, e.g. one row when decoding, so that a
    block's scores stay block × block per head) with the online-softmax recurrence above; the G
    query heads of a key/value head read its keys and values by broadcasting, never copied. Each
    per-head GEMM stays tile × block × d multiply-adds, small enough for OpenBLAS to run it on the
    calling thread (fast/program.py; stacking a group's heads into one larger GEMM hands it to
    OpenBLAS's thread pool and measured several times slower); fast/'s own threads
    (fast/parallel.py) instead each take a share of the sequences or key/value heads. A
    key block no query of the tile may see is skipped (for a causal mask: every block in the
    tile's future; for a sliding window: also every block before it), and the mask is applied
    only to blocks some query of the tile may not fully see. Memory beyond q, k, v and the result
    is O(B·H·block²) scores plus the tile's (B, block, S) mask.
    """
    grouped = q.ndim == 5
    if not grouped:  # multi-head: one query head per key/value head
        z4 = np.empty((*q.shape[:3], v.shape[-1]), dtype=q.dtype) if out is None else out
        blocked_attention(q[:, :, None], k, v, scale, mask, batch, block, z4[:, :, None], softcap)
        return z4
    B, KV, G, T, _ = q.shape
    z = np.empty((B, KV, G, T, v.shape[-1]), dtype=q.dtype) if out is None else out
    n = min(parallel.threads(), max(B, KV))
    if n <= 1 or q[..., :1].size * k.shape[2] < PARALLEL_SCORES:
        _blocked(q, k, v, scale, mask, batch, block, z, softcap)
        return z
    # over fast/'s threads (fast/parallel.py): the sequences, or the key/value heads when they are
    # more; each part walks its own keys and writes its own rows of z, so the result is the same
    over_sequences = B >= KV
    m = B if over_sequences else KV

    def part(i: int) -> None:
        lo, hi = m * i // n, m * (i + 1) // n
        if over_sequences:
            rows = Batch(batch.positions[lo:hi], batch.valid[lo:hi], batch.key_positions[lo:hi], batch.key_valid[lo:hi])
            _blocked(q[lo:hi], k[lo:hi], v[lo:hi], scale, mask, rows, block, z[lo:hi], softcap)
        else:
            _blocked(q[:, lo:hi], k[:, lo:hi], v[:, lo:hi], scale, mask, batch, block, z[:, lo:hi], softcap)

    parallel.each(part, n)
    return z


def _blocked(
    q: Array, k: Array, v: Array, scale: float, mask: Relation, batch: Batch, block: int, z: Array, softcap: float | None,
) -> None:
    """:func:`blocked_attention`'s grouped form on one thread, into ``z``."""
    B, KV, G, T, _ = q.shape
    S = k.shape[2]
    dtype = q.dtype
    kT = k.swapaxes(-1, -2)[:, :, None]  # (B, KV, 1, d, S): every query head of a group reads the same keys
    v = v[:, :, None]  # (B, KV, 1, S, d_v)
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        ok = allowed(mask, batch.positions[:, t0:t1], batch.key_positions)
        ok = ok & batch.key_valid[:, None, :] & batch.valid[:, t0:t1, None]  # (B, tile, S), the same for every head
        seen = np.asarray(ok.any(axis=(0, 1)))  # keys some query of the tile may see
        full = np.asarray(ok.all(axis=(0, 1)))  # keys every query of the tile may see
        width = max(block, block * block // (t1 - t0))
        q_t = np.multiply(q[:, :, :, t0:t1], dtype.type(scale), order="C")  # (B, KV, G, tile, d)
        state: online.State[Array] = online.State()
        for s0 in range(0, S, width):
            s1 = min(S, s0 + width)
            if not seen[s0:s1].any():
                continue
            x = q_t @ kT[..., s0:s1]  # (B, KV, G, tile, width): one small GEMM per head, K shared by its group
            if softcap is not None:  # c·tanh(a / c) of the scaled scores, before the mask (Gemma 2)
                x = soft_cap(x, softcap)
            if not full[s0:s1].all():
                np.copyto(x, dtype.type(-np.inf), where=~ok[:, None, None, :, s0:s1])
            state = online.step(state, x, v[..., s0:s1, :], NUMPY_OPS)
        done = online.result(state, NUMPY_OPS)
        z[:, :, :, t0:t1] = 0 if done is None else done  # no block: no query of the tile sees any key


def fused_mha(
    plan: MHAPlan, weights: MHAWeights, batch: Batch, key: str, x_q: Array, block: int, precision: Precision | None = None,
    x_kv: Array | None = None,
) -> Array:
    """Attention of ``plan`` on (B, T, d_in) query rows — self-attention, or cross-attention to
    the (B, S, d_kv) rows ``x_kv`` — with K/V cached under ``key`` (once per key/value head, keys
    transformed): self-attention's cache grows by this call's rows; cross-attention's K and V are
    computed at the first call and then read as they are. With a half-precision ``precision`` the
    rows and weights are read in float32 and Q, K, V, each head's output and the result are
    rounded to the storage dtype where the op-by-op graph stores them (fast/precision.py); the
    cache holds K and V in it."""
    P = precision or Precision.of(x_q.dtype)
    B, T, _ = x_q.shape
    H, KV = plan.n_heads, plan.kv_heads
    G = H // KV
    dh = weights.W_O.shape[0] // H
    W = P.load(weights.W_qkv)
    b = None if weights.b_qkv is None else P.load(weights.b_qkv)
    if not plan.cross:
        qkv = x_q.reshape(B * T, x_q.shape[-1]) @ W  # one GEMM: Q of every head, K and V of every key/value head
        if b is not None:
            qkv += b
        qkv = P.round(qkv).reshape(B, T, H + 2 * KV, dh)
        q, k, v = qkv[:, :, :H], qkv[:, :, H : H + KV], qkv[:, :, H + KV :]  # (B, T, heads, dh), strided views
        k = _transform(plan, weights, P, "K", k, batch.positions)  # keys of this call's rows, at their positions
    else:
        q = x_q.reshape(B * T, x_q.shape[-1]) @ W[:, : H * dh]
        if b is not None:
            q += b[: H * dh]
        q = P.round(q).reshape(B, T, H, dh)
        cached = None if batch.cache is None else batch.cache.get((key, "K"))
        if cached is None:
            if x_kv is None:
                raise ShapeError(f"cross-attention {key} without its key/value rows [fast attention]")
            S = x_kv.shape[1]
            kv = x_kv.reshape(B * S, x_kv.shape[-1]) @ W[:, H * dh :]  # S = 0 (an empty source) included
            if b is not None:
                kv += b[H * dh :]
            kv = P.round(kv).reshape(B, S, 2 * KV, dh)
            k, v = kv[:, :, :KV], kv[:, :, KV:]
            k = _transform(plan, weights, P, "K", k, batch.key_positions)
    q = _transform(plan, weights, P, "Q", q, batch.positions)  # at each row's position id: left padding shifts them, decoding continues them
    q = q.reshape(B, T, KV, G, dh).transpose(0, 2, 3, 1, 4)  # (B, KV, G, T, dh): heads h = kv·G + g
    if plan.cross and batch.cache is not None and (key, "K") in batch.cache:
        k, v = P.load(batch.cache[(key, "K")]), P.load(batch.cache[(key, "V")])
    else:
        k, v = np.ascontiguousarray(k.transpose(0, 2, 1, 3)), np.ascontiguousarray(v.transpose(0, 2, 1, 3))  # (B, KV, S, dh), read once per key block
        if batch.cache is not None:
            for name, new in (("K", k), ("V", v)):
                prev = None if plan.cross else batch.cache.get((key, name))
                kept = P.store(new)
                batch.cache[(key, name)] = kept if prev is None else np.concatenate([prev, kept], axis=2)
            k, v = P.load(batch.cache[(key, "K")]), P.load(batch.cache[(key, "V")])
    concat = np.empty((B, T, H, dh), dtype=q.dtype)  # heads side by side, written in place
    blocked_attention(q, k, v, plan.scale, plan.mask, batch, block, out=concat.reshape(B, T, KV, G, dh).transpose(0, 2, 3, 1, 4),
                      softcap=plan.softcap)
    y = P.round(concat.reshape(B * T, H * dh)) @ P.load(weights.W_O)
    if weights.b_O is not None:
        y += P.load(weights.b_O)
    out: Array = y.reshape(B, T, y.shape[-1])  # T = 0 included (no -1: nothing to infer it from)
    return out
