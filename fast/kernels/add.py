"""The residual add."""

from __future__ import annotations

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import Add


@KERNELS.implements(Add)
def add(op: Add, batch: Batch, a: Array, b: Array) -> Array:
    return a + b
