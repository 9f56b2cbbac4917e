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


_FIT_DEGREE = 12
"""The fit's degree: 12 gives a relative error of 4e-10 (16 gave 9e-12 at 8 more passes per element)."""
_FIT_ERROR = 1e-9
"""The relative error the fit must stay below, checked at import: 30× below 2⁻²⁵ ≈ 3e-8, half a
float32 ulp at its coarsest, so a value computed from it rounds to float32 within 1 ulp of exact."""


def _fit_log_erfc() -> np.ndarray:
    """g = log(erfc(z)·(1 + z/2)) + z² as a polynomial in u ∈ [−1, 1], the image of
    t = 1 / (1 + z/2) ∈ [1/7, 1]: smooth, so a degree-12 least-squares Chebyshev fit against
    math.erfc (float64, exact to an ulp), converted to powers of u (coefficients below 1: no
    cancellation), gives erfc(z) = t·exp(g − z²) to a relative error below :data:`_FIT_ERROR`
    on [0, 12] (checked here, when the module is imported)."""
    z = np.concatenate([np.linspace(0.0, 3.0, 1500), np.linspace(3.0, _FIT_Z, 1500)[1:]])
    t = 1.0 / (1.0 + z / 2)
    fit = np.polynomial.Chebyshev.fit(t, np.log(_erfc(z) / t) + z * z, _FIT_DEGREE, domain=[_T_LOW, 1.0])
    coef: np.ndarray = fit.convert(kind=np.polynomial.Polynomial, domain=[_T_LOW, 1.0], window=[-1.0, 1.0]).coef
    check = np.linspace(0.0, _FIT_Z, 4001)
    worst = float(np.max(np.abs(_erfc_fitted(check, coef) / _erfc(check) - 1)))
    if not worst < _FIT_ERROR:  # a numpy whose fit differs is caught here, not in a forward
        raise ArithmeticError(f"erfc fit relative error={worst:.3g}, but expected < {_FIT_ERROR} [fast/kernels/activations.py]")
    return coef


def _erfc_fitted(z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """erfc(min(z, 12)) for float64 z ≥ 0 from the fit: t·exp(g(u) − z²) by Horner's rule, in place
    on fresh arrays (z is not written). Beyond 12 it is erfc(12) < 2e-64, which is 0 in float32 and
    every half precision (:func:`erfc_fast` makes it 0 for float64 callers)."""
    inside = np.minimum(z, _FIT_Z)
    t = inside * 0.5
    t += 1.0
    np.divide(1.0, t, out=t)  # t = 1 / (1 + z/2)
    u = t * (2.0 / (1.0 - _T_LOW))
    u -= (1.0 + _T_LOW) / (1.0 - _T_LOW)  # u = (2t − (1 + t_low)) / (1 − t_low)
    g = u * coef[-1]
    g += coef[-2]
    for c in coef[-3::-1]:
        g *= u
        g += c
    np.multiply(inside, inside, out=inside)
    g -= inside  # g − z²
    np.exp(g, out=g)
    g *= t
    out: np.ndarray = g
    return out


_LOG_ERFC = _fit_log_erfc()
_HALF_LOG_ERFC = _LOG_ERFC - np.array([math.log(2.0)] + [0.0] * _FIT_DEGREE)
"""The fit of ½·erfc: log ½ folded into the constant term, so ½·erfc costs no extra pass."""


def erfc_fast(z: np.ndarray) -> np.ndarray:
    """erfc of float64 ``z``, relative error below :data:`_FIT_ERROR` where erfc(z) ≥ 2e-64
    (|z| ≤ 12; 0 beyond): the fit for |z|, and erfc(−a) = 2 − erfc(a)."""
    e = _erfc_fitted(np.abs(z), _LOG_ERFC)
    out: np.ndarray = np.where(z < 0, 2.0 - e, np.where(z > _FIT_Z, 0.0, e))
    return out


GELU_CHUNK = 1 << 15
"""Elements per chunk of GELU (erf) below float64: its float64 temporaries (four of 256 KiB) stay
in a core's L2 (1 MiB here), where the fit's ~35 passes run about 1.5× faster than from L3."""


@KERNELS.implements(GeluErf)
def gelu_erf(op: GeluErf, batch: Batch, x: Array) -> Array:
    # ½x(1 + erf(x/√2)) = x·Φ(x): 1 + erf cancels for x ≪ 0, so (as the reference) the tail is
    # computed from erfc. numpy has no erfc: float64 rows take math.erfc per element (exact, slow).
    if x.dtype == np.float64:
        y: Array = 0.5 * x * _erfc(_gelu_argument(x))
        return y

    # Every other dtype computes in float64 from the fit: with a = |x| and Q = ½erfc(a/√2) (the
    # upper tail of the normal law), x·Φ(x) = max(x, 0) − a·Q — for x ≥ 0, x − x·Q (Q ≤ ½, so
    # at most one bit cancels); for x < 0, x·Q — one formula for both signs, no select. Relative
    # error of Q below 1e-9 (the fit), then one rounding to the dtype: within 1 ulp of exact.
    def rows(x: Array, y: Array) -> None:
        a = np.abs(x, dtype=np.float64)
        z = a * (1.0 / math.sqrt(2.0))
        q = _erfc_fitted(z, _HALF_LOG_ERFC)  # ½erfc(a/√2); beyond a/√2 = 12 it is < 1e-64: 0 once rounded
        q *= a
        np.subtract(np.maximum(x, 0), q, out=y)  # in float64, rounded once to y's dtype

    return by_rows(rows, x, GELU_CHUNK)


def _gelu_argument(x: Array) -> Array:
    """−x/√2, erfc's argument in GELU."""
    z: Array = -x / math.sqrt(2.0)
    return z


@KERNELS.implements(Relu)
def relu(op: Relu, batch: Batch, x: Array) -> Array:
    return np.maximum(x, 0)
