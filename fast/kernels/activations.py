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

_FIT_Z = 12.0
"""erfc is fitted on [0, 12]; beyond, erfc(z) < 2e-64: 0 in float32 and every half precision."""
_T_LOW = 1.0 / (1.0 + _FIT_Z / 2)


def _fit_log_erfc() -> np.ndarray:
    """g = log(erfc(z)·(1 + z/2)) + z² as a polynomial in u ∈ [−1, 1], the image of
    t = 1 / (1 + z/2) ∈ [1/7, 1]: smooth, so a degree-16 least-squares Chebyshev fit against
    math.erfc (float64, exact to an ulp), converted to powers of u (coefficients below 1: no
    cancellation), gives erfc(z) = t·exp(g − z²) to a relative error below 1e-10 on [0, 12]
    (checked here, when the module is imported) — far below float32's 6e-8."""
    z = np.concatenate([np.linspace(0.0, 3.0, 1500), np.linspace(3.0, _FIT_Z, 1500)[1:]])
    t = 1.0 / (1.0 + z / 2)
    fit = np.polynomial.Chebyshev.fit(t, np.log(_erfc(z) / t) + z * z, 16, domain=[_T_LOW, 1.0])
    coef: np.ndarray = fit.convert(kind=np.polynomial.Polynomial, domain=[_T_LOW, 1.0], window=[-1.0, 1.0]).coef
    check = np.linspace(0.0, _FIT_Z, 4001)
    worst = float(np.max(np.abs(_erfc_fitted(check, coef) / _erfc(check) - 1)))
    if not worst < 1e-10:  # a numpy whose fit differs is caught here, not in a forward
        raise ArithmeticError(f"erfc fit relative error={worst:.3g}, but expected < 1e-10 [fast/kernels/activations.py]")
    return coef


def _erfc_fitted(z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """erfc(z) for float64 z ≥ 0 from the fit: t·exp(g(u) − z²) by Horner's rule, in place; 0 beyond 12."""
    inside = np.minimum(z, _FIT_Z)
    t = 1.0 / (1.0 + inside / 2)
    u = (2.0 * t - (1.0 + _T_LOW)) / (1.0 - _T_LOW)
    g = np.full_like(u, coef[-1])
    for c in coef[-2::-1]:
        g *= u
        g += c
    g -= inside * inside
    np.exp(g, out=g)
    g *= t
    out: np.ndarray = np.where(z > _FIT_Z, 0.0, g)
    return out


_LOG_ERFC = _fit_log_erfc()


def erfc_fast(z: np.ndarray) -> np.ndarray:
    """erfc of float64 ``z``, relative error below 1e-10 where erfc(z) ≥ 2e-64 (|z| ≤ 12; 0 beyond):
    the fit for |z|, and erfc(−a) = 2 − erfc(a)."""
    e = _erfc_fitted(np.abs(z), _LOG_ERFC)
    out: np.ndarray = np.where(z < 0, 2.0 - e, e)
    return out


@KERNELS.implements(GeluErf)
def gelu_erf(op: GeluErf, batch: Batch, x: Array) -> Array:
    # ½x(1 + erf(x/√2)) = ½x·erfc(−x/√2): 1 + erf cancels for x ≪ 0, erfc does not (as in the
    # reference). numpy has no erfc: float64 rows take math.erfc per element (exact, slow); every
    # other dtype computes in float64 from the fit (relative error < 1e-10, below float32's ulp).
    if x.dtype == np.float64:
        y: Array = 0.5 * x * _erfc(_gelu_argument(x))
        return y

    def rows(x: Array, y: Array) -> None:
        x64 = x.astype(np.float64)
        y[...] = 0.5 * x64 * erfc_fast(_gelu_argument(x64))

    return by_rows(rows, x)


def _gelu_argument(x: Array) -> Array:
    """−x/√2, erfc's argument in GELU."""
    z: Array = -x / math.sqrt(2.0)
    return z


@KERNELS.implements(Relu)
def relu(op: Relu, batch: Batch, x: Array) -> Array:
    return np.maximum(x, 0)
