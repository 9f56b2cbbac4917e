"""The learned sigmoid gate, literally."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import SigmoidGate


def sigmoid(a: float) -> float:
    """σ(a) = 1 / (1 + e^{−a}), evaluated without overflow on either side."""
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@REFERENCE.implements(SigmoidGate)
def sigmoid_gate(op: SigmoidGate, x1: Array, x2: Array, a: Array) -> Array:  # [T, d], [T, d] -> [T, d]
    w = sigmoid(float(a[0]))  # w = σ(a)
    one_minus_w = sigmoid(-float(a[0]))  # 1 − w = σ(−a)
    y: Array = w * x1 + one_minus_w * x2  # y_tj = w x1_tj + (1 − w) x2_tj
    return y


@VJP.implements(SigmoidGate)
def sigmoid_gate_vjp(op: SigmoidGate, g: Array, x1: Array, x2: Array, a: Array) -> dict[str, Array]:  # [T, d] -> …
    w = sigmoid(float(a[0]))  # w = σ(a)
    one_minus_w = sigmoid(-float(a[0]))  # 1 − w = σ(−a)
    ga = math.fsum((g * (x1 - x2)).flat) * w * one_minus_w  # ∂L/∂a = Σ_tj g_tj (x1_tj − x2_tj) σ(a) σ(−a)
    return {"x1": w * g, "x2": one_minus_w * g, "a": np.array([ga])}  # ∂L/∂x1 = w g, ∂L/∂x2 = (1 − w) g
