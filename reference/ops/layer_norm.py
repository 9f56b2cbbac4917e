"""Layer normalisation, literally: the named intermediates of the op's LaTeX, in order."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import LayerNorm


@REFERENCE.implements(LayerNorm)
def layer_norm(op: LayerNorm, x: Array, gamma: Array, beta: Array | None = None) -> Array:  # [T, d] -> [T, d]
    T, d = x.shape
    y = np.empty_like(x)
    for t in range(T):
        mu = math.fsum(x[t]) / d  # μ_t = (1/d) Σ_k x_tk
        delta = x[t] - mu  # δ_tj = x_tj − μ_t
        sigma2 = math.fsum(delta**2) / d  # σ²_t = (1/d) Σ_k δ_tk²  (biased variance)
        y[t] = gamma * delta / math.sqrt(sigma2 + op.eps)  # γ_j δ_tj / √(σ²_t + ε)
        if beta is not None:
            y[t] += beta  # + β_j
    return y


@VJP.implements(LayerNorm)
def layer_norm_vjp(op: LayerNorm, g: Array, x: Array, gamma: Array, beta: Array | None = None) -> dict[str, Array]:
    T, d = x.shape  # [T, d] -> [T, d], [d], [d]
    gx = np.empty_like(x)
    ggamma = np.zeros_like(gamma)
    for t in range(T):
        mu = math.fsum(x[t]) / d  # μ_t = (1/d) Σ_k x_tk
        delta = x[t] - mu  # δ_tj = x_tj − μ_t
        sigma2 = math.fsum(delta**2) / d  # σ²_t = (1/d) Σ_k δ_tk²
        r = 1.0 / math.sqrt(sigma2 + op.eps)  # r_t = 1 / √(σ²_t + ε)
        xhat = delta * r  # x̂_tj = δ_tj r_t
        ggamma += g[t] * xhat  # ∂L/∂γ_j = Σ_t g_tj x̂_tj
        gxhat = g[t] * gamma  # ∂L/∂x̂_tj = g_tj γ_j
        mean_gxhat = math.fsum(gxhat) / d  # (1/d) Σ_k ∂L/∂x̂_tk: the mean term
        mean_gxhat_xhat = math.fsum(gxhat * xhat) / d  # (1/d) Σ_k ∂L/∂x̂_tk x̂_tk: the variance term
        gx[t] = r * (gxhat - mean_gxhat - xhat * mean_gxhat_xhat)  # ∂L/∂x_tj = r_t (ĝ_tj − mean ĝ − x̂_tj mean(ĝ x̂))
    out = {"x": gx, "gamma": ggamma}
    if beta is not None:
        out["beta"] = g.sum(axis=0)  # ∂L/∂β_j = Σ_t g_tj
    return out
