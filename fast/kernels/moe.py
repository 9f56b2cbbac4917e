"""Routed experts, batched: the router over all B·T rows at once (a stable sort gives the top-k
with the lower index first among equal logits), and the experts dispatched by expert — the rows
that chose expert e gathered into one matrix, one GEMM per projection per expert, the results
scattered back weighted by G. Padded rows (``batch.valid`` False) are dispatched to no expert and
come out 0."""

from __future__ import annotations

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.errors import ShapeError
from spec.ops import MoeExperts, MoeRouter


@KERNELS.implements(MoeRouter)
def moe_router(op: MoeRouter, batch: Batch, logits: Array) -> Array:
    k = int(op.top_k)
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]  # stable: equal logits keep the lower index first
    chosen = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(chosen, order, True, axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):  # padded rows may hold anything; their weights are never used
        e = np.exp(logits - logits.max(axis=-1, keepdims=True, initial=-np.inf)) if logits.size else np.exp(logits)
        if op.norm == "topk_softmax":
            kept = np.where(chosen, e, 0.0)
            G: Array = kept / kept.sum(axis=-1, keepdims=True)  # softmax over the chosen logits
            return G
        p = e / e.sum(axis=-1, keepdims=True)  # softmax over every expert
        G = np.where(chosen, p, 0.0).astype(logits.dtype, copy=False)
        if op.norm == "softmax_topk_renorm":
            G /= G.sum(axis=-1, keepdims=True)
    return G


def _gated_mlp(op: MoeExperts, batch: Batch, x: Array, W_gate: Array, W_up: Array, W_down: Array) -> Array:
    """(act(x W_gate) ⊙ x W_up) W_down on the rows of x: three GEMMs, the activation by its kernel."""
    h: Array = KERNELS[op.activation](op.act(), batch, x @ W_gate)
    h *= x @ W_up
    y: Array = h @ W_down
    return y


@KERNELS.implements(MoeExperts)
def moe_experts(
    op: MoeExperts, batch: Batch, x: Array, G: Array, W_gate: Array, W_up: Array, W_down: Array,
    W_shared_gate: Array | None = None, W_shared_up: Array | None = None, W_shared_down: Array | None = None,
    w_shared: Array | None = None,
) -> Array:
    d, n = x.shape[-1], G.shape[-1]
    X = x.reshape(-1, d)
    W = G.reshape(-1, n)
    valid = batch.valid.reshape(-1) if batch.valid.shape == x.shape[:-1] else np.ones(X.shape[0], dtype=bool)
    Y = np.zeros_like(X)
    for e in range(n):
        rows = np.flatnonzero(valid & (W[:, e] != 0))  # the real rows that chose expert e
        if rows.size:
            Y[rows] += W[rows, e, None] * _gated_mlp(op, batch, X[rows], W_gate[e], W_up[e], W_down[e])
    if op.d_shared is not None:
        if W_shared_gate is None or W_shared_up is None or W_shared_down is None or w_shared is None:
            raise ShapeError(
                "shared expert parameters missing, but expected W_shared_gate, W_shared_up, W_shared_down and w_shared "
                "[fast moe_experts]; an op with d_shared declares all four"
            )
        rows = np.flatnonzero(valid)
        Xr = X[rows]
        z = Xr @ w_shared
        s = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))  # σ(z), no overflow
        Y[rows] += s.astype(X.dtype, copy=False)[:, None] * _gated_mlp(op, batch, Xr, W_shared_gate, W_shared_up, W_shared_down)
    return Y.reshape(x.shape)
