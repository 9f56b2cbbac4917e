"""The 1-D convolution over positions, tap by tap."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import Conv1d


@REFERENCE.implements(Conv1d)
def conv1d(op: Conv1d, x: Array, W: Array, b: Array | None = None) -> Array:  # [T, d_in] -> [T, d_out]
    T, k, p = x.shape[0], op.kernel, op.pad_left
    y = np.zeros((T, W.shape[2]))
    for t in range(T):
        for i in range(k):
            s = t + i - p  # the input position under tap i
            if 0 <= s < T:  # outside the sequence: a zero padding row
                y[t] += x[s] @ W[i]  # y_tj += Σ_c x_sc W_icj
        if b is not None:
            y[t] += b  # + b_j
    return y


@VJP.implements(Conv1d)
def conv1d_vjp(op: Conv1d, g: Array, x: Array, W: Array, b: Array | None = None) -> dict[str, Array]:  # [T, d_out] -> …
    T, k, p = x.shape[0], op.kernel, op.pad_left
    gx = np.zeros_like(x)
    gW = np.zeros_like(W)
    for t in range(T):
        for i in range(k):
            s = t + i - p  # the input position under tap i
            if 0 <= s < T:  # a padding row has no cotangent
                gx[s] += W[i] @ g[t]  # ∂L/∂x_sc += Σ_j W_icj g_tj
                gW[i] += np.outer(x[s], g[t])  # ∂L/∂W_icj += x_sc g_tj
    out = {"x": gx, "W": gW}
    if b is not None:
        out["b"] = g.sum(axis=0)  # ∂L/∂b_j = Σ_t g_tj
    return out
