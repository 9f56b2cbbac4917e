"""Soft-capping, c · tanh(x / c), in the array's dtype (Hugging Face's order: divide, tanh,
multiply); :func:`soft_cap` also caps the fused attention's scores (fast/attention.py)."""

from __future__ import annotations

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import SoftCap


def soft_cap(x: Array, cap: float) -> Array:
    """c · tanh(x / c), in place on a fresh array."""
    c = x.dtype.type(cap)
    y: Array = np.divide(x, c)
    np.tanh(y, out=y)
    y *= c
    return y


@KERNELS.implements(SoftCap)
def softcap(op: SoftCap, batch: Batch, x: Array) -> Array:
    return soft_cap(x, op.cap)
