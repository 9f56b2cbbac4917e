"""The affine map: one GEMM over all B·T rows."""

from __future__ import annotations

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import Affine


@KERNELS.implements(Affine)
def affine(op: Affine, batch: Batch, x: Array, W: Array, b: Array | None = None) -> Array:
    rows = x.reshape(-1, x.shape[-1])  # (B·T, d_in): one GEMM for the whole batch
    y = rows @ W
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], W.shape[1])
