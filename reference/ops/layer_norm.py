"""Layer normalisation, literally: the named intermediates of the op's LaTeX, in order."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, Array
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
