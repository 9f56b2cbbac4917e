"""The constant scale."""

from __future__ import annotations

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import Scale


@KERNELS.implements(Scale)
def scale(op: Scale, batch: Batch, x: Array) -> Array:
    y: Array = x * x.dtype.type(float(op.c))
    return y
