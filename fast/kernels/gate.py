"""The learned sigmoid gate: two scalings and an add over the whole batch."""

from __future__ import annotations

import math

import numpy as np

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import SigmoidGate


def _sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))


@KERNELS.implements(SigmoidGate)
def sigmoid_gate(op: SigmoidGate, batch: Batch, x1: Array, x2: Array, a: Array) -> Array:
    value = float(np.asarray(a, dtype=np.float64).reshape(-1)[0])
    w, rest = x1.dtype.type(_sigmoid(value)), x1.dtype.type(_sigmoid(-value))  # σ(a), 1 − σ(a) = σ(−a)
    y: Array = x1 * w
    y += x2 * rest
    return y
