"""Soft-capping, literally: c · tanh(x / c) entry by entry."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import SoftCap


@REFERENCE.implements(SoftCap)
def soft_cap(op: SoftCap, x: Array) -> Array:  # [T, d] -> [T, d]
    c = float(op.cap)
    y: Array = c * np.tanh(x / c)  # y_tj = c tanh(x_tj / c)
    return y


@VJP.implements(SoftCap)
def soft_cap_vjp(op: SoftCap, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    c = float(op.cap)
    return {"x": g * (1.0 - np.tanh(x / c) ** 2)}  # ∂L/∂x_tj = g_tj (1 − tanh²(x_tj / c))
