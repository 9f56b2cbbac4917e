"""Soft-capping, c · tanh(x / c), in the array's dtype (Hugging Face's order: divide, tanh,
multiply); :func:`soft_cap` also caps the fused attention's scores (fast/attention.py)."""

from __future__ import annotations

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array, by_rows
from spec.ops import SoftCap


def soft_cap(x: Array, cap: float) -> Array:
    """c · tanh(x / c), in a fresh array."""
    y: Array = np.empty_like(x)
    soft_cap_into(x, y, cap)
    return y


def soft_cap_into(x: Array, out: Array, cap: float) -> None:
    """c · tanh(x / c) into ``out`` (the one formula: the op's kernel and the attention's score cap)."""
    c = x.dtype.type(cap)
    np.divide(x, c, out=out)
    np.tanh(out, out=out)
    out *= c


@KERNELS.implements(SoftCap)
def softcap(op: SoftCap, batch: Batch, x: Array) -> Array:
    """The op on a whole tensor (Gemma 2's capped logits: B·T × vocabulary): in cache-sized chunks
    over fast/'s threads, element for element what :func:`soft_cap` computes."""
    return by_rows(lambda rows, out: soft_cap_into(rows, out, op.cap), x)
