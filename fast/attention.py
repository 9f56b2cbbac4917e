"""Fused multi-head attention: one QKV GEMM per layer, and a kernel that cuts the queries into
tiles and walks the keys in blocks with the online-softmax recurrence, so the scores held at
once are O(B·n_heads·block²), not T².

For each query row the recurrence keeps a running max m, a running normaliser l and a running
weighted sum acc; a new block of keys with scores x updates them as

    m' = max(m, max_{s ∈ block ∩ A_t} x_s)
    l' = l·exp(m − m') + Σ_{s ∈ block ∩ A_t} exp(x_s − m')
    acc' = acc·exp(m − m') + Σ_{s ∈ block ∩ A_t} exp(x_s − m') v_s

and the result is acc / l, or 0 when A_t = ∅ (l = 0). That this equals the masked softmax's
weighted sum for any split of the keys into blocks is a theorem in proofs/.

:func:`match` recognises the ``multi_head_attention`` composite that spec/blocks.py builds
(every head: affine Q, K, V → scores → masked softmax → weighted sum, slicing the same Θ
entries; concat; W_O); anything else runs op by op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from fast.kernels import allowed
from spec.graph import Composite, Node, ParamRef
from spec.masks import Relation
from spec.ops import Affine, AttentionScores, ConcatHeads, MaskedSoftmax, WeightedSum

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
    for h in range(H):
        head = body.nodes.get(f"head_{h}")
        if head is None or not isinstance(head.op, Composite) or head.op.kind != "attention_head":
            return None
        hb = head.op.body.nodes
        parts = [hb[n] for n in ("Q", "K", "V", "scores", "softmax", "z") if n in hb]
        if len(parts) != 6:
            return None
        q, k, v, sc, sm, z = parts
        if not (isinstance(sc.op, AttentionScores) and isinstance(sm.op, MaskedSoftmax) and isinstance(z.op, WeightedSum)):
            return None
        wiring = (
            sc.inputs["Q"].node == "Q" and sc.inputs["K"].node == "K" and sm.inputs["x"].node == "scores"
            and z.inputs["A"].node == "softmax" and z.inputs["V"].node == "V"
            and q.inputs["x"].port == "x_q" and k.inputs["x"].port == "x_kv" and v.inputs["x"].port == "x_kv"
            and concat.inputs[f"z_{h}"].node == f"head_{h}"
        )
        if not wiring:
            return None
        for name, proj in (("Q", q), ("K", k), ("V", v)):
            if not isinstance(proj.op, Affine):
                return None
            W, b = _ref(proj, "W"), _ref(proj, "b")
            if W is None or W.index != (h,) or W.transpose or W.reshape is not None:
                return None
            if b is not None and (b.index != (h,) or b.transpose or b.reshape is not None):
                return None
            for key, ref in ((f"W_{name}", W), (f"b_{name}", b)):
                got = None if ref is None else ref.name
                if names.setdefault(key, got) != got:
                    return None
        masks.add(sm.op.mask)
        scales.add(sc.op.scale)
    if len(masks) != 1 or len(scales) != 1:
        return None
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
        b_V=names.get("b_V"), b_O=None if b_O is None else b_O.name,
    )


@dataclass
class MHAWeights:
    """The plan's parameters, packed once per (θ, dtype): W_qkv is (d_in, 3·H·d_head)."""

    W_qkv: Array
    b_qkv: Array | None
    W_O: Array
    b_O: Array | None


def pack(plan: MHAPlan, theta: dict[str, np.ndarray], dtype: npt.DTypeLike) -> MHAWeights:
    def flat(name: str) -> Array:  # (H, d_in, d_head) → (d_in, H·d_head), head-major columns
        w = theta[name]
        return w.transpose(1, 0, 2).reshape(w.shape[1], -1)

    W_qkv = np.concatenate([flat(plan.W_Q), flat(plan.W_K), flat(plan.W_V)], axis=1)
    b_qkv = None
    if plan.b_Q and plan.b_K and plan.b_V:
        b_qkv = np.concatenate([theta[plan.b_Q].ravel(), theta[plan.b_K].ravel(), theta[plan.b_V].ravel()])
    W_O = theta[plan.W_O]
    return MHAWeights(
        np.ascontiguousarray(W_qkv, dtype=dtype),
        None if b_qkv is None else b_qkv.astype(dtype),
        np.ascontiguousarray(W_O.reshape(-1, W_O.shape[-1]), dtype=dtype),
        None if plan.b_O is None else theta[plan.b_O].astype(dtype),
    )


def blocked_attention(
    q: Array, k: Array, v: Array, scale: float, mask: Relation, batch: Batch, block: int, out: Array | None = None
) -> Array:
    """softmax_A(scale · q kᵀ) v in tiles. q: (B, H, T, d), k, v: (B, H, S, d); the result
    (B, H, T, d_v) is written into ``out`` when given (any strides).

    The queries are cut into tiles of ``block`` rows; each tile walks the keys in blocks of
    ``block`` columns (longer when the tile is shorter, e.g. one row when decoding, so that a
    block's scores stay block × block per head) with the online-softmax recurrence above. A key
    block no query of the tile may see is skipped (for a causal mask: every block in the tile's
    future), and the mask is applied only to blocks some query of the tile may not fully see
    (for a causal mask: the diagonal one). Memory beyond q, k, v and the result is
    O(B·H·block²) scores plus the tile's (B, block, S) mask.
    """
    T, S = q.shape[2], k.shape[2]
    dtype = q.dtype
    z = np.empty((*q.shape[:3], v.shape[-1]), dtype=dtype) if out is None else out
    kT = k.swapaxes(-1, -2)
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        ok = allowed(mask, batch.positions[:, t0:t1], batch.key_positions)
        ok &= batch.key_valid[:, None, :] & batch.valid[:, t0:t1, None]  # (B, tile, S), the same for every head
        seen = np.asarray(ok.any(axis=(0, 1)))  # keys some query of the tile may see
        full = np.asarray(ok.all(axis=(0, 1)))  # keys every query of the tile may see
        width = max(block, block * block // (t1 - t0))
        q_t = np.multiply(q[:, :, t0:t1], dtype.type(scale), order="C")
        z_t = z[:, :, t0:t1]
        m: Array | None = None  # running max, normaliser, weighted sum; None: no block yet
        l: Array | None = None
        acc: Array | None = None
        for s0 in range(0, S, width):
            s1 = min(S, s0 + width)
            if not seen[s0:s1].any():
                continue
            x = q_t @ kT[..., s0:s1]  # (B, H, tile, width)
            if not full[s0:s1].all():
                np.copyto(x, dtype.type(-np.inf), where=~ok[:, None, :, s0:s1])
            m_new = x.max(axis=-1, keepdims=True)
            if m is not None:
                np.maximum(m_new, m, out=m_new)
            safe = np.where(np.isfinite(m_new), m_new, dtype.type(0))
            x -= safe
            p = np.exp(x, out=x)  # exp(−∞) = 0 outside the allowed set
            pv = p @ v[:, :, s0:s1]
            if m is None or l is None or acc is None:  # the first block: m = −∞, l = 0, acc = 0 before it
                l = p.sum(axis=-1, keepdims=True)
                acc = pv
            else:
                rescale = np.exp(m - safe)  # 0 while m = −∞
                l *= rescale
                l += p.sum(axis=-1, keepdims=True)
                acc *= rescale
                acc += pv
            m = m_new
        if l is None or acc is None:
            z_t[...] = 0  # no query of the tile sees any key
        else:
            # l ≥ 1 on a row with an allowed key (its max contributes exp(0) = 1) and l = 0, acc = 0
            # on a row without: dividing by max(l, 1) gives acc / l there and 0 here
            np.divide(acc, np.maximum(l, 1, out=l), out=z_t)
    return z


def fused_mha(plan: MHAPlan, weights: MHAWeights, batch: Batch, key: str, x_q: Array, block: int) -> Array:
    """Self-attention of ``plan`` on (B, T, d_in) rows, with K/V cached under ``key``."""
    B, T, _ = x_q.shape
    H = plan.n_heads
    dh = weights.W_O.shape[0] // H
    qkv = x_q.reshape(B * T, -1) @ weights.W_qkv  # one GEMM: Q, K and V of every head
    if weights.b_qkv is not None:
        qkv += weights.b_qkv
    q, k, v = qkv.reshape(B, T, 3, H, dh).transpose(2, 0, 3, 1, 4)  # each (B, H, T, dh), strided views
    k, v = np.ascontiguousarray(k), np.ascontiguousarray(v)  # read once per key block
    if batch.cache is not None:
        for name, new in (("K", k), ("V", v)):
            prev = batch.cache.get((key, name))
            batch.cache[(key, name)] = new if prev is None else np.concatenate([prev, new], axis=2)
        k, v = batch.cache[(key, "K")], batch.cache[(key, "V")]
    concat = np.empty((B, T, H, dh), dtype=qkv.dtype)  # heads side by side, written in place
    blocked_attention(q, k, v, plan.scale, plan.mask, batch, block, out=concat.transpose(0, 2, 1, 3))
    y = concat.reshape(B * T, H * dh) @ weights.W_O
    if weights.b_O is not None:
        y += weights.b_O
    out: Array = y.reshape(B, T, -1)
    return out
