"""Element-wise activations, in the stable forms the reference uses."""

from __future__ import annotations

import math

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array, by_rows
from spec.ops import GeluErf, GeluTanh, Relu


@KERNELS.implements(GeluTanh)
def gelu_tanh(op: GeluTanh, batch: Batch, x: Array) -> Array:
    # ½x(1 + tanh u) = x·σ(z), z = 2u = x(a + b x²) with u = √(2/π)(x + c x³), c = op.cubic. With
    # e = exp(−|z|) ≤ 1 (never overflows), σ(z) = 1 / (1 + e) for z ≥ 0 and e / (1 + e) for
    # z < 0: no cancellation in 1 + tanh u for x ≪ 0 (the reference's stable form), one exp and
    # no tanh. The sign of z is the sign of x, and |z| = |x|(a + b x²).
    c = math.sqrt(2.0 / math.pi)
    a, b = x.dtype.type(2.0 * c), x.dtype.type(2.0 * c * float(op.cubic))

    def rows(x: Array, y: Array) -> None:
        e = x * x
        e *= -b
        e -= a
        e *= np.abs(x, out=y)  # −|z|
        np.exp(e, out=e)
        np.add(e, 1, out=y)
        np.divide(x, y, out=y)  # x / (1 + e)
        y *= np.maximum(e, x >= 0, out=e)  # × (1 where z ≥ 0, e where z < 0)

    return by_rows(rows, x)


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


@KERNELS.implements(GeluErf)
def gelu_erf(op: GeluErf, batch: Batch, x: Array) -> Array:
    # ½x(1 + erf(x/√2)) = ½x·erfc(−x/√2): 1 + erf cancels for x ≪ 0, erfc does not (as in the
    # reference). numpy has no erfc; math.erfc per element is exact but slow.
    y: Array = (0.5 * x * _erfc(-x / math.sqrt(2.0))).astype(x.dtype)
    return y


@KERNELS.implements(Relu)
def relu(op: Relu, batch: Batch, x: Array) -> Array:
    return np.maximum(x, 0)
