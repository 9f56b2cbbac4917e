"""The constant scale, literally."""

from __future__ import annotations

from reference.ops.table import REFERENCE, Array
from spec.ops import Scale


@REFERENCE.implements(Scale)
def scale(op: Scale, x: Array) -> Array:  # [T, d] -> [T, d]
    c = float(op.c)  # the exact constant, rounded once to float64
    y: Array = c * x  # y_tj = c x_tj
    return y
