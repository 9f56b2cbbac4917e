"""RMS normalisation, literally: the named intermediates of the op's LaTeX, in order."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import RMSNorm


@REFERENCE.implements(RMSNorm)
def rms_norm(op: RMSNorm, x: Array, gamma: Array) -> Array:  # [T, d] -> [T, d]
    T, d = x.shape
    g = 1.0 + gamma if op.offset else gamma  # g_j = γ_j, or 1 + γ_j with the offset
    y = np.empty_like(x)
    for t in range(T):
        r_t = math.sqrt(math.fsum(x[t] ** 2) / d + op.eps)  # r_t = √((1/d) Σ_k x_tk² + ε)
        y[t] = g * x[t] / r_t  # y_tj = g_j x_tj / r_t
    return y


@VJP.implements(RMSNorm)
def rms_norm_vjp(op: RMSNorm, g: Array, x: Array, gamma: Array) -> dict[str, Array]:  # [T, d] -> [T, d], [d]
    T, d = x.shape
    gain = 1.0 + gamma if op.offset else gamma  # g_j = γ_j, or 1 + γ_j (∂g_j/∂γ_j = 1 either way)
    gx = np.empty_like(x)
    ggamma = np.zeros_like(gamma)
    for t in range(T):
        r_t = math.sqrt(math.fsum(x[t] ** 2) / d + op.eps)  # r_t = √((1/d) Σ_k x_tk² + ε)
        ggamma += g[t] * x[t] / r_t  # ∂L/∂γ_j = Σ_t (∂L/∂y_tj) x_tj / r_t
        h = g[t] * gain  # h_tj = (∂L/∂y_tj) g_j
        gx[t] = h / r_t - x[t] * math.fsum(h * x[t]) / (d * r_t**3)  # ∂L/∂x_tj = h_tj / r_t − x_tj Σ_k h_tk x_tk / (d r_t³)
    return {"x": gx, "gamma": ggamma}
