"""The 1-D convolution over positions, reading rows by position id (so it decodes with a cache)."""

from __future__ import annotations

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import Conv1d


@KERNELS.implements(Conv1d)
def conv1d(op: Conv1d, batch: Batch, x: Array, W: Array, b: Array | None = None) -> Array:
    """x: (B, S, d_in) rows at the batch's key positions (when decoding: the cached rows, then
    this call's); the output has a row per query position. Tap i of query position p reads the
    real row at position p − pad_left + i, or zero padding where there is none."""
    y = np.zeros((*batch.positions.shape, W.shape[2]), dtype=x.dtype)
    for i in range(op.kernel):
        want = batch.positions - op.pad_left + i  # (B, T) input position under tap i
        pick = (batch.key_positions[:, None, :] == want[:, :, None]) & batch.key_valid[:, None, :]  # (B, T, S)
        y += (pick.astype(x.dtype) @ x) @ W[i]
    if b is not None:
        y += b
    return y
