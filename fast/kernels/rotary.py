"""Rotary position embedding at the batch's position ids (left padding shifts them). The
frequencies and the angles are computed in float64 and only cos and sin are rounded to the
working dtype; the fused attention (fast/attention.py) rotates Q and K with :func:`rotate`."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.errors import ShapeError
from spec.ops import Rotary


def frequencies(op: Rotary, d: int) -> npt.NDArray[np.float64]:
    """ω_k (k = 0 … d/2 − 1) in float64: base^(−2k/d), then the op's scaling."""
    omega: npt.NDArray[np.float64] = 1.0 / op.base ** (np.arange(0, d, 2, dtype=np.float64) / d)
    if op.scaling == "linear":
        omega = omega / op.factor
    elif op.scaling == "llama3":
        old, low, high = op.original_n_ctx, op.low_freq_factor, op.high_freq_factor
        wavelength = 2 * np.pi / omega
        smooth = (old / wavelength - low) / (high - low)
        ramp = (1 - smooth) * omega / op.factor + smooth * omega
        omega = np.where(wavelength < old / high, omega, np.where(wavelength > old / low, omega / op.factor, ramp))
    return omega


def rotate(op: Rotary, x: Array, positions: npt.NDArray[np.int64]) -> Array:
    """x (positions.shape, …, d) with each row rotated at its position id; the axes between the
    positions' and the features' (heads) share the rotation. A partial rotary rotates the first
    ``op.rotated`` features and copies the others."""
    if op.rotated is not None and op.rotated < x.shape[-1]:
        out: Array = x.copy()
        out[..., : op.rotated] = rotate(dataclasses.replace(op, d=op.rotated, rotated=None), x[..., : op.rotated], positions)
        return out
    d = x.shape[-1]
    half = d // 2
    angle = positions.astype(np.float64)[..., None] * frequencies(op, d)  # (…, d/2) in float64
    angle = angle.reshape(positions.shape + (1,) * (x.ndim - positions.ndim - 1) + (half,))
    c, s = np.cos(angle).astype(x.dtype), np.sin(angle).astype(x.dtype)
    if op.pairing == "half":
        a, b = x[..., :half], x[..., half:]
    else:
        a, b = x[..., 0::2], x[..., 1::2]
    y: Array = np.empty_like(x)
    ya, yb = (y[..., :half], y[..., half:]) if op.pairing == "half" else (y[..., 0::2], y[..., 1::2])
    np.multiply(a, c, out=ya)
    ya -= b * s  # y_a = x_a cos − x_b sin
    np.multiply(b, c, out=yb)
    yb += a * s  # y_b = x_b cos + x_a sin
    return y


@KERNELS.implements(Rotary)
def rotary(op: Rotary, batch: Batch, x: Array) -> Array:
    if x.shape[:2] != batch.positions.shape:
        raise ShapeError(
            f"rows of shape {x.shape[:2]}, but expected the batch's query rows {batch.positions.shape} [fast rotary]; "
            "rotary embedding reads each row's position id, which fast/ knows for the query rows"
        )
    return rotate(op, x, batch.positions)
