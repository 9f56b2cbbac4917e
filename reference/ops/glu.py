"""The gated MLP's pieces, literally: SiLU and the element-wise product."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import Multiply, Silu


@REFERENCE.implements(Silu)
def silu(op: Silu, x: Array) -> Array:  # [T, d] -> [T, d]
    # y = x σ(x) = x / (1 + e^{−x}) = x e^{x} / (1 + e^{x}): the second form for x < 0, so that
    # e = e^{−|x|} ≤ 1 never overflows.
    e = np.exp(-np.abs(x))
    y: Array = np.where(x >= 0, x / (1.0 + e), x * e / (1.0 + e))
    return y


@REFERENCE.implements(Multiply)
def multiply(op: Multiply, a: Array, b: Array) -> Array:  # [T, d], [T, d] -> [T, d]
    return a * b  # y_tj = a_tj b_tj


@VJP.implements(Silu)
def silu_vjp(op: Silu, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    sigma = np.exp(-np.logaddexp(0.0, -x))  # σ(x) = 1 / (1 + e^{−x}), no overflow
    return {"x": g * sigma * (1.0 + x * (1.0 - sigma))}  # ∂L/∂x = g σ(x) (1 + x (1 − σ(x)))


@VJP.implements(Multiply)
def multiply_vjp(op: Multiply, g: Array, a: Array, b: Array) -> dict[str, Array]:  # [T, d] -> [T, d], [T, d]
    return {"a": g * b, "b": g * a}  # ∂L/∂a_tj = g_tj b_tj, ∂L/∂b_tj = g_tj a_tj
