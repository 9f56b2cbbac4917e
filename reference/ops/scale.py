"""The constant scale, literally."""

from __future__ import annotations

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import Scale


@REFERENCE.implements(Scale)
def scale(op: Scale, x: Array) -> Array:  # [T, d] -> [T, d]
    c = float(op.c)  # the exact constant, rounded once to float64
    y: Array = c * x  # y_tj = c x_tj
    return y


@VJP.implements(Scale)
def scale_vjp(op: Scale, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    c = float(op.c)
    return {"x": c * g}  # ∂L/∂x_tj = c g_tj
