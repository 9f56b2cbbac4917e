"""Fused multi-head attention: one QKV GEMM per layer, and a kernel that walks the keys in
blocks with the online-softmax recurrence, so memory grows as O(B·n_heads·T·block), not T².

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
    q: Array, k: Array, v: Array, scale: float, mask: Relation, batch: Batch, block: int
) -> Array:
    """softmax_A(scale · q kᵀ) v over key blocks. q: (B, H, T, d), k, v: (B, H, S, d)."""
    B, H, T, d = q.shape
    S = k.shape[2]
    dtype = q.dtype
    m = np.full((B, H, T, 1), -np.inf, dtype=dtype)
    l = np.zeros((B, H, T, 1), dtype=dtype)
    acc = np.zeros((B, H, T, v.shape[-1]), dtype=dtype)
    q = q * dtype.type(scale)
    for s0 in range(0, S, block):
        s1 = min(S, s0 + block)
        ok = allowed(mask, batch.positions, batch.key_positions[:, s0:s1])
        ok &= batch.key_valid[:, None, s0:s1] & batch.valid[:, :, None]
        if not ok.any():
            continue
        ok4 = ok[:, None, :, :]  # (B, 1, T, blk), the same for every head
        x = q @ k[:, :, s0:s1].swapaxes(-1, -2)  # (B, H, T, blk)
        x = np.where(ok4, x, -np.inf)
        m_new = np.maximum(m, x.max(axis=-1, keepdims=True))
        safe = np.where(np.isfinite(m_new), m_new, 0)
        p = np.exp(x - safe)  # exp(−∞) = 0 outside the allowed set
        rescale = np.exp(m - safe)  # 0 while m = −∞
        l = l * rescale + p.sum(axis=-1, keepdims=True)
        acc = acc * rescale + p @ v[:, :, s0:s1]
        m = m_new
    out: Array = np.divide(acc, l, out=np.zeros_like(acc), where=l > 0)
    return out


def fused_mha(plan: MHAPlan, weights: MHAWeights, batch: Batch, key: str, x_q: Array, block: int) -> Array:
    """Self-attention of ``plan`` on (B, T, d_in) rows, with K/V cached under ``key``."""
    B, T, _ = x_q.shape
    H = plan.n_heads
    dh = weights.W_O.shape[0] // H
    qkv = x_q.reshape(B * T, -1) @ weights.W_qkv  # one GEMM: Q, K and V of every head
    if weights.b_qkv is not None:
        qkv += weights.b_qkv
    qkv = qkv.reshape(B, T, 3, H, dh).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
    q, k, v = qkv[0], qkv[1], qkv[2]
    if batch.cache is not None:
        for name, new in (("K", k), ("V", v)):
            prev = batch.cache.get((key, name))
            batch.cache[(key, name)] = new if prev is None else np.concatenate([prev, new], axis=2)
        k, v = batch.cache[(key, "K")], batch.cache[(key, "V")]
    z = blocked_attention(q, k, v, plan.scale, plan.mask, batch, block)  # (B, H, T, dh)
    concat = z.transpose(0, 2, 1, 3).reshape(B * T, H * dh)  # heads side by side
    y = concat @ weights.W_O
    if weights.b_O is not None:
        y += weights.b_O
    out: Array = y.reshape(B, T, -1)
    return out
