"""The element-wise activations, literally."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, Array
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
