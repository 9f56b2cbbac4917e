"""The residual add."""

from __future__ import annotations

from reference.ops.table import REFERENCE, Array
from spec.ops import Add


@REFERENCE.implements(Add)
def add(op: Add, a: Array, b: Array) -> Array:  # [T, d], [T, d] -> [T, d]
    return a + b  # y = a + b
