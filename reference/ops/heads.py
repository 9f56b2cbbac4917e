"""One head's columns of a concatenation of heads, literally."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import TakeHead


@REFERENCE.implements(TakeHead)
def take_head(op: TakeHead, x: Array) -> Array:  # [T, n_heads·d_head] -> [T, d_head]
    d_head = x.shape[1] // op.n_heads
    return x[:, op.head * d_head : (op.head + 1) * d_head].copy()  # y_tk = x_{t, h·d_head + k}


@VJP.implements(TakeHead)
def take_head_vjp(op: TakeHead, g: Array, x: Array) -> dict[str, Array]:  # [T, d_head] -> [T, n_heads·d_head]
    d_head = g.shape[1]
    gx = np.zeros_like(x)
    gx[:, op.head * d_head : (op.head + 1) * d_head] = g  # ∂L/∂x_{t, h·d_head + k} = g_tk; the other heads' columns: 0
    return {"x": gx}
