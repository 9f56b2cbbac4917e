"""The affine map x W + b, row by row."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, Array
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
