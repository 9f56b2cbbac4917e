"""The residual add."""

from __future__ import annotations

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import Add


@REFERENCE.implements(Add)
def add(op: Add, a: Array, b: Array) -> Array:  # [T, d], [T, d] -> [T, d]
    return a + b  # y = a + b


@VJP.implements(Add)
def add_vjp(op: Add, g: Array, a: Array, b: Array) -> dict[str, Array]:  # [T, d] -> [T, d], [T, d]
    return {"a": g.copy(), "b": g.copy()}  # ∂L/∂a = g, ∂L/∂b = g: the residual stream passes g to both
