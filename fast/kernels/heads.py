"""One head's columns of a concatenation of heads."""

from __future__ import annotations

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import TakeHead


@KERNELS.implements(TakeHead)
def take_head(op: TakeHead, batch: Batch, x: Array) -> Array:
    d_head = x.shape[-1] // op.n_heads
    return np.ascontiguousarray(x[..., op.head * d_head : (op.head + 1) * d_head])
