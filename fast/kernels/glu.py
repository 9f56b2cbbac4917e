"""The gated MLP's pieces: SiLU in the reference's stable form, and the element-wise product."""

from __future__ import annotations

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array, by_rows
from spec.ops import Multiply, Silu


@KERNELS.implements(Silu)
def silu(op: Silu, batch: Batch, x: Array) -> Array:
    # x σ(x) with e = exp(−|x|) ≤ 1 (never overflows): x / (1 + e) for x ≥ 0, x e / (1 + e) for
    # x < 0 — as the reference, in one chunked pass per step.
    def rows(x: Array, y: Array) -> None:
        e = np.abs(x)
        np.negative(e, out=e)
        np.exp(e, out=e)  # e = e^{−|x|}
        np.add(e, 1, out=y)
        np.divide(x, y, out=y)  # x / (1 + e)
        y *= np.maximum(e, x >= 0, out=e)  # × (1 where x ≥ 0, e where x < 0)

    return by_rows(rows, x)


@KERNELS.implements(Multiply)
def multiply(op: Multiply, batch: Batch, a: Array, b: Array) -> Array:
    y: Array = a * b
    return y
