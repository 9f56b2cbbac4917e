"""The affine map x W + b, row by row."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import Affine


@REFERENCE.implements(Affine)
def affine(op: Affine, x: Array, W: Array, b: Array | None = None) -> Array:  # [T, d_in] -> [T, d_out]
    T = x.shape[0]
    y = np.empty((T, W.shape[1]))
    for t in range(T):
        y[t] = x[t] @ W  # y_tj = Σ_i x_ti W_ij
        if b is not None:
            y[t] += b  # + b_j
    return y


@VJP.implements(Affine)
def affine_vjp(op: Affine, g: Array, x: Array, W: Array, b: Array | None = None) -> dict[str, Array]:  # [T, d_out] -> …
    T = x.shape[0]
    gx = np.empty_like(x)
    gW = np.zeros_like(W)
    for t in range(T):
        gx[t] = W @ g[t]  # ∂L/∂x_ti = Σ_j W_ij g_tj
        gW += np.outer(x[t], g[t])  # ∂L/∂W_ij = Σ_t x_ti g_tj
    out = {"x": gx, "W": gW}
    if b is not None:
        out["b"] = g.sum(axis=0)  # ∂L/∂b_j = Σ_t g_tj
    return out
