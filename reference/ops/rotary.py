"""Rotary position embedding, literally: the frequencies one by one, then each pair of each row
rotated by its angle. Row t of the one sequence the reference evaluates has position t."""

from __future__ import annotations

import math

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import Rotary


def frequencies(op: Rotary, d: int) -> list[float]:
    """ω_k for k = 0 … d/2 − 1: base^(−2k/d), then the op's scaling."""
    omega = []
    for k in range(d // 2):
        w = 1.0 / op.base ** (2 * k / d)  # ω_k = 1 / base^(2k/d)
        if op.scaling == "linear":
            w = w / op.factor  # position interpolation: ω_k / factor
        elif op.scaling == "llama3":
            old, low, high = op.original_n_ctx, op.low_freq_factor, op.high_freq_factor
            wavelength = 2 * math.pi / w  # λ_k = 2π / ω_k
            if wavelength < old / high:
                pass  # high frequency: kept
            elif wavelength > old / low:
                w = w / op.factor  # low frequency: ω_k / factor
            else:
                smooth = (old / wavelength - low) / (high - low)  # s = (old/λ − low) / (high − low)
                w = (1 - smooth) * w / op.factor + smooth * w  # (1 − s) ω/factor + s ω
        omega.append(w)
    return omega


def pairs(op: Rotary, d: int) -> list[tuple[int, int]]:
    """(a_k, b_k) for each k: (k, k + d/2) for half pairing, (2k, 2k + 1) for interleaved."""
    if op.pairing == "half":
        return [(k, k + d // 2) for k in range(d // 2)]
    return [(2 * k, 2 * k + 1) for k in range(d // 2)]


@REFERENCE.implements(Rotary)
def rotary(op: Rotary, x: Array) -> Array:  # [T, d] -> [T, d]
    T, d = x.shape
    if op.rotated is not None:
        d = op.rotated  # partial: the first `rotated` features rotate as a width-`rotated` embedding
    omega = frequencies(op, d)
    y = x.copy()  # features ≥ d (partial rotary) pass unchanged
    for t in range(T):  # row t has position t
        for k, (a, b) in enumerate(pairs(op, d)):
            c, s = math.cos(t * omega[k]), math.sin(t * omega[k])  # the angle t ω_k
            y[t, a] = x[t, a] * c - x[t, b] * s  # y_ta = x_ta cos − x_tb sin
            y[t, b] = x[t, b] * c + x[t, a] * s  # y_tb = x_tb cos + x_ta sin
    return y


# --- vector–Jacobian product (issue 23): the transpose of a rotation is the rotation by −angle ---


@VJP.implements(Rotary)
def rotary_vjp(op: Rotary, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    T, d = x.shape
    if op.rotated is not None:
        d = op.rotated  # partial: the features ≥ rotated pass g unchanged
    omega = frequencies(op, d)
    gx = g.copy()
    for t in range(T):
        for k, (a, b) in enumerate(pairs(op, d)):
            c, s = math.cos(t * omega[k]), math.sin(t * omega[k])  # the angle t ω_k
            gx[t, a] = g[t, a] * c + g[t, b] * s  # ∂L/∂x_ta = g_ta cos + g_tb sin
            gx[t, b] = g[t, b] * c - g[t, a] * s  # ∂L/∂x_tb = g_tb cos − g_ta sin
    return {"x": gx}
