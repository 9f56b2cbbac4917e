"""Fused multi-head attention: one QKV GEMM per layer, and a kernel that cuts the queries into
tiles and walks the keys in blocks with the online-softmax recurrence, so the scores held at
once are O(B·n_heads·block²), not T².

Grouped-query attention (n_kv_heads < n_heads) keeps K and V once per key/value head — in the
GEMM's output, in the KV cache and in the attention kernel, where the query heads sharing a
key/value head are stacked into one matrix against it. Rotary position embedding (the
``rotary_Q`` / ``rotary_K`` nodes of spec/blocks.py's heads) is applied to Q and K inside the
fused step at each row's position id (fast/kernels/rotary.py), so the cache holds rotated keys.
Key blocks no query of a tile may see — in the tile's future, or before a sliding window — are
skipped.

The recurrence is spec/online_softmax.py's (``step`` and ``result``), run here with the numpy
operations of :class:`NumpyOps`; that it equals the masked softmax's weighted sum for any split
of the keys into blocks is the theorem ``online_softmax`` of proofs/, proved about that same
function.

:func:`match` recognises the ``multi_head_attention`` composite that spec/blocks.py builds
(every head: affine Q, K, V → [rotary Q, K] → scores → masked softmax → weighted sum, slicing
the same Θ entries — the key/value entries at ⌊h / (n_heads / n_kv_heads)⌋; concat; W_O);
anything else runs op by op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from fast.kernels import allowed
from fast.kernels.rotary import rotate
from fast.precision import Precision
from spec import online_softmax as online
from spec.dims import T as T_SYMBOL
from spec.errors import ShapeError
from spec.graph import Composite, Node, ParamRef
from spec.masks import Relation
from spec.ops import Affine, AttentionScores, ConcatHeads, MaskedSoftmax, Rotary, WeightedSum

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class MHAPlan:
    """What the fused kernel needs to know about one multi-head attention node."""

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
    rotary: Rotary | None = None
    """The rotation every head applies to Q and K (rows normalised to T), or None."""

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


def _ref(node: Node, param: str) -> ParamRef | None:
    return node.params.get(param)


def match(node: Node) -> MHAPlan | None:
    """The plan of a multi-head attention composite built as spec/blocks.py builds it, or None."""
    op = node.op
    if not isinstance(op, Composite) or op.kind != "multi_head_attention":
        return None
    body = op.body
    concat = body.nodes.get("concat")
    out = body.nodes.get("W_O")
    if concat is None or out is None or not isinstance(concat.op, ConcatHeads) or not isinstance(out.op, Affine):
        return None
    H = concat.op.n_heads
    names: dict[str, str | None] = {}
    masks, scales = set(), set()
    rotaries: set[Rotary | None] = set()
    kv_of: list[int] = []
    for h in range(H):
        head = body.nodes.get(f"head_{h}")
        if head is None or not isinstance(head.op, Composite) or head.op.kind != "attention_head":
            return None
        hb = head.op.body.nodes
        rotated = "rotary_Q" in hb
        if set(hb) != {"Q", "K", "V", "scores", "softmax", "z"} | ({"rotary_Q", "rotary_K"} if rotated else set()):
            return None
        q, k, v, sc, sm, z = (hb[n] for n in ("Q", "K", "V", "scores", "softmax", "z"))
        if not (isinstance(sc.op, AttentionScores) and isinstance(sm.op, MaskedSoftmax) and isinstance(z.op, WeightedSum)):
            return None
        q_src, k_src = ("rotary_Q", "rotary_K") if rotated else ("Q", "K")
        wiring = (
            sc.inputs["Q"].node == q_src and sc.inputs["K"].node == k_src and sm.inputs["x"].node == "scores"
            and z.inputs["A"].node == "softmax" and z.inputs["V"].node == "V"
            and q.inputs["x"].port == "x_q" and k.inputs["x"].port == "x_kv" and v.inputs["x"].port == "x_kv"
            and concat.inputs[f"z_{h}"].node == f"head_{h}"
        )
        if not wiring:
            return None
        if rotated:
            rq, rk = hb["rotary_Q"], hb["rotary_K"]
            if not (isinstance(rq.op, Rotary) and isinstance(rk.op, Rotary)):
                return None
            if rq.inputs["x"].node != "Q" or rk.inputs["x"].node != "K":
                return None
            same_q, same_k = dataclasses.replace(rq.op, rows=T_SYMBOL), dataclasses.replace(rk.op, rows=T_SYMBOL)
            if same_q != same_k:
                return None  # Q and K rotated differently: not a rotary embedding, run op by op
            rotaries.add(same_q)
        else:
            rotaries.add(None)
        slots: dict[str, int] = {}
        for name, proj in (("Q", q), ("K", k), ("V", v)):
            if not isinstance(proj.op, Affine):
                return None
            W, b = _ref(proj, "W"), _ref(proj, "b")
            if W is None or len(W.index) != 1 or W.transpose or W.reshape is not None:
                return None
            if b is not None and (b.index != W.index or b.transpose or b.reshape is not None):
                return None
            slots[name] = W.index[0]
            for key, ref in ((f"W_{name}", W), (f"b_{name}", b)):
                got = None if ref is None else ref.name
                if names.setdefault(key, got) != got:
                    return None
        if slots["Q"] != h or slots["K"] != slots["V"]:
            return None
        kv_of.append(slots["K"])
        masks.add(sm.op.mask)
        scales.add(sc.op.scale)
    if len(masks) != 1 or len(scales) != 1 or len(rotaries) != 1:
        return None
    KV = max(kv_of, default=-1) + 1
    if KV < 1 or H % KV or kv_of != [h // (H // KV) for h in range(H)]:
        return None  # key/value heads shared other than by consecutive groups: run op by op
    W_O = _ref(out, "W")
    if W_O is None or W_O.index or W_O.transpose:
        return None
    b_O = _ref(out, "b")
    if node.inputs["x_q"] != node.inputs["x_kv"]:
        return None  # cross-attention: no fused kernel yet, it runs op by op
    W_Q, W_K, W_V = names["W_Q"], names["W_K"], names["W_V"]
    if W_Q is None or W_K is None or W_V is None:
        return None
    return MHAPlan(
        n_heads=H, mask=masks.pop(), scale=float(scales.pop()),
        W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O.name, b_Q=names.get("b_Q"), b_K=names.get("b_K"),
        b_V=names.get("b_V"), b_O=None if b_O is None else b_O.name, n_kv_heads=KV, rotary=rotaries.pop(),
    )


@dataclass
class MHAWeights:
    """The plan's parameters, packed once per (θ, dtype): W_qkv is (d_in, (H + 2·KV)·d_head),
    the query heads' columns then the key/value heads' K and V columns."""

    W_qkv: Array
    b_qkv: Array | None
    W_O: Array
    b_O: Array | None


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
    )


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


def blocked_attention(
    q: Array, k: Array, v: Array, scale: float, mask: Relation, batch: Batch, block: int, out: Array | None = None
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
    the thread pool and measured several times slower). A
    key block no query of the tile may see is skipped (for a causal mask: every block in the
    tile's future; for a sliding window: also every block before it), and the mask is applied
    only to blocks some query of the tile may not fully see. Memory beyond q, k, v and the result
    is O(B·H·block²) scores plus the tile's (B, block, S) mask.
    """
    grouped = q.ndim == 5
    if not grouped:  # multi-head: one query head per key/value head
        z4 = np.empty((*q.shape[:3], v.shape[-1]), dtype=q.dtype) if out is None else out
        blocked_attention(q[:, :, None], k, v, scale, mask, batch, block, z4[:, :, None])
        return z4
    B, KV, G, T, _ = q.shape
    S = k.shape[2]
    dtype = q.dtype
    z = np.empty((B, KV, G, T, v.shape[-1]), dtype=dtype) if out is None else out
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
            if not full[s0:s1].all():
                np.copyto(x, dtype.type(-np.inf), where=~ok[:, None, None, :, s0:s1])
            state = online.step(state, x, v[..., s0:s1, :], NUMPY_OPS)
        done = online.result(state, NUMPY_OPS)
        z[:, :, :, t0:t1] = 0 if done is None else done  # no block: no query of the tile sees any key
    return z


def fused_mha(
    plan: MHAPlan, weights: MHAWeights, batch: Batch, key: str, x_q: Array, block: int, precision: Precision | None = None
) -> Array:
    """Self-attention of ``plan`` on (B, T, d_in) rows, with K/V cached under ``key`` (once per
    key/value head, keys rotated). With a half-precision ``precision`` the rows and weights are
    read in float32 and Q, K, V, each head's output and the result are rounded to the storage
    dtype where the op-by-op graph stores them (fast/precision.py); the cache holds K and V in it."""
    P = precision or Precision.of(x_q.dtype)
    B, T, _ = x_q.shape
    H, KV = plan.n_heads, plan.kv_heads
    G = H // KV
    dh = weights.W_O.shape[0] // H
    qkv = x_q.reshape(B * T, -1) @ P.load(weights.W_qkv)  # one GEMM: Q of every head, K and V of every key/value head
    if weights.b_qkv is not None:
        qkv += P.load(weights.b_qkv)
    qkv = P.round(qkv).reshape(B, T, H + 2 * KV, dh)
    q, k, v = qkv[:, :, :H], qkv[:, :, H : H + KV], qkv[:, :, H + KV :]  # (B, T, heads, dh), strided views
    if plan.rotary is not None:  # at each row's position id: left padding shifts them, decoding continues them
        q, k = P.round(rotate(plan.rotary, q, batch.positions)), P.round(rotate(plan.rotary, k, batch.positions))
    q = q.reshape(B, T, KV, G, dh).transpose(0, 2, 3, 1, 4)  # (B, KV, G, T, dh): heads h = kv·G + g
    k, v = np.ascontiguousarray(k.transpose(0, 2, 1, 3)), np.ascontiguousarray(v.transpose(0, 2, 1, 3))  # (B, KV, T, dh), read once per key block
    if batch.cache is not None:
        for name, new in (("K", k), ("V", v)):
            prev = batch.cache.get((key, name))
            kept = P.store(new)
            batch.cache[(key, name)] = kept if prev is None else np.concatenate([prev, kept], axis=2)
        k, v = P.load(batch.cache[(key, "K")]), P.load(batch.cache[(key, "V")])
    concat = np.empty((B, T, H, dh), dtype=qkv.dtype)  # heads side by side, written in place
    blocked_attention(q, k, v, plan.scale, plan.mask, batch, block, out=concat.reshape(B, T, KV, G, dh).transpose(0, 2, 3, 1, 4))
    y = P.round(concat.reshape(B * T, H * dh)) @ P.load(weights.W_O)
    if weights.b_O is not None:
        y += P.load(weights.b_O)
    out: Array = y.reshape(B, T, -1)
    return out
