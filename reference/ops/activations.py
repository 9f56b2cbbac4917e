"""The element-wise activations, literally."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import GeluErf, GeluTanh, Relu


@REFERENCE.implements(GeluErf)
def gelu_erf(op: GeluErf, x: Array) -> Array:  # [T, d] -> [T, d]
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    # y = ½ x (1 + erf(x/√2)) = ½ x erfc(−x/√2): 1 + erf cancels for x ≪ 0 (all digits lost
    # by x ≈ −8); erfc keeps them.
    y: Array = 0.5 * x * erfc(-x / math.sqrt(2.0))
    return y


@REFERENCE.implements(GeluTanh)
def gelu_tanh(op: GeluTanh, x: Array) -> Array:  # [T, d] -> [T, d]
    c = float(op.cubic)  # 0.044715
    u = math.sqrt(2.0 / math.pi) * (x + c * x**3)  # u = √(2/π)(x + c x³)
    # y = ½ x (1 + tanh u) = x / (1 + e^{−2u}) = x e^{2u} / (1 + e^{2u}): 1 + tanh u cancels
    # for x ≪ 0 (all digits lost by x ≈ −5); these forms keep them. e = e^{−2|u|} ≤ 1 never overflows.
    e = np.exp(-2.0 * np.abs(u))
    y: Array = np.where(u >= 0, x / (1.0 + e), x * e / (1.0 + e))
    return y


@REFERENCE.implements(Relu)
def relu(op: Relu, x: Array) -> Array:  # [T, d] -> [T, d]
    return np.maximum(x, 0.0)  # y = max(x, 0)


# --- vector–Jacobian products: g = ∂L/∂y in, ∂L/∂x out (element-wise: g times y'(x)) ---


@VJP.implements(GeluErf)
def gelu_erf_vjp(op: GeluErf, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    Phi = 0.5 * erfc(-x / math.sqrt(2.0))  # Φ(x) = ½ erfc(−x/√2), the normal CDF
    phi = np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)  # φ(x) = e^{−x²/2} / √(2π)
    return {"x": g * (Phi + x * phi)}  # ∂L/∂x = g (Φ(x) + x φ(x))


@VJP.implements(GeluTanh)
def gelu_tanh_vjp(op: GeluTanh, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    c = float(op.cubic)  # 0.044715
    u = math.sqrt(2.0 / math.pi) * (x + c * x**3)  # u = √(2/π)(x + c x³)
    du = math.sqrt(2.0 / math.pi) * (1.0 + 3.0 * c * x**2)  # u' = √(2/π)(1 + 3c x²)
    th = np.tanh(u)
    half_one_plus = np.exp(-np.logaddexp(0.0, -2.0 * u))  # ½(1 + tanh u) = 1 / (1 + e^{−2u}), no cancellation for u ≪ 0
    return {"x": g * (half_one_plus + 0.5 * x * (1.0 - th**2) * du)}  # ∂L/∂x = g (½(1 + tanh u) + ½ x (1 − tanh² u) u')


@VJP.implements(Relu)
def relu_vjp(op: Relu, g: Array, x: Array) -> dict[str, Array]:  # [T, d] -> [T, d]
    return {"x": np.where(x > 0, g, 0.0)}  # ∂L/∂x = g [x > 0]  (at the kink x = 0: 0, as PyTorch)
