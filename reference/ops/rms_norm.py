"""RMS normalisation, literally: the named intermediates of the op's LaTeX, in order."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, Array
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
