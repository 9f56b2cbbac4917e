"""Positional encodings at the batch's position ids (left padding shifts them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.errors import TokenError
from spec.ops import LearnedPositional, SinusoidalPositional


@KERNELS.implements(LearnedPositional)
def learned_positional(op: LearnedPositional, batch: Batch, ids: Any, W_P: Array) -> Array:
    n_ctx = W_P.shape[0]
    if batch.positions.size and int(batch.positions[batch.valid].max(initial=0)) >= n_ctx:
        raise TokenError(
            f"position {int(batch.positions[batch.valid].max())} needs T > n_ctx={n_ctx}, but expected "
            f"T ≤ n_ctx [fast learned_positional]; shorten the sequence"
        )
    P: Array = W_P[np.minimum(batch.positions, n_ctx - 1)]
    return P


@KERNELS.implements(SinusoidalPositional)
def sinusoidal_positional(op: SinusoidalPositional, batch: Batch, ids: Any) -> Array:
    d = int(op.d)
    j = np.arange(d)
    if op.layout == "concatenated":
        half = (d + 1) // 2
        i = np.where(j < half, j, j - half)
        angle = batch.positions[..., None] / float(op.base) ** ((2 * i) / d)
        return np.where(j < half, np.sin(angle), np.cos(angle))
    angle = batch.positions[..., None] / float(op.base) ** ((2 * (j // 2)) / d)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
