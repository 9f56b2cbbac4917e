"""Positional encodings, learned and sinusoidal, literally."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array, Ids
from spec.ops import LearnedPositional, SinusoidalPositional
from spec.theta import token_array


@REFERENCE.implements(LearnedPositional)
def learned_positional(op: LearnedPositional, ids: Ids, W_P: Array) -> Array:  # [T] -> [T, d]
    T, n_ctx = len(ids), W_P.shape[0]
    token_array(np.zeros(T, dtype=np.int64), 1, n_ctx, "learned_positional")  # refuses T > n_ctx
    P = W_P[:T].copy()  # P_tj = (W_P)_tj
    return P


@REFERENCE.implements(SinusoidalPositional)
def sinusoidal_positional(op: SinusoidalPositional, ids: Ids) -> Array:  # [T] -> [T, d]
    T, d = len(ids), int(op.d)
    P = np.zeros((T, d))
    half = (d + 1) // 2  # concatenated: the sines fill columns 0 … ⌈d/2⌉ − 1
    for t in range(T):
        for j in range(d):
            if op.layout == "concatenated":
                i = j if j < half else j - half
                angle = t / op.base ** (2 * i / d)
                P[t, j] = math.sin(angle) if j < half else math.cos(angle)  # P_{t,i} = sin, P_{t,⌈d/2⌉+i} = cos
            else:
                two_i = 2 * (j // 2)
                angle = t / op.base ** (two_i / d)
                P[t, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)  # P_{t,2i} = sin, P_{t,2i+1} = cos
    return P


@VJP.implements(LearnedPositional)
def learned_positional_vjp(op: LearnedPositional, g: Array, ids: Ids, W_P: Array) -> dict[str, Array]:  # [T, d] -> [n_ctx, d]
    T = len(ids)
    gW_P = np.zeros_like(W_P)
    gW_P[:T] = g  # ∂L/∂(W_P)_tj = g_tj for t < T, 0 for the positions the sequence does not reach
    return {"W_P": gW_P}


@VJP.implements(SinusoidalPositional)
def sinusoidal_positional_vjp(op: SinusoidalPositional, g: Array, ids: Ids) -> dict[str, Array]:  # [T, d] -> nothing
    return {}  # a function of the positions only: no parameter, and token ids have no cotangent
