"""One attention head's primitives and the concatenation of heads, literally: loops over
positions and keys where the math sums over them."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, Array
from spec.ops import AttentionScores, ConcatHeads, MaskedSoftmax, WeightedSum


@REFERENCE.implements(AttentionScores)
def attention_scores(op: AttentionScores, Q: Array, K: Array) -> Array:  # [T, d_head], [S, d_head] -> [T, S]
    T, S = Q.shape[0], K.shape[0]
    scale = float(op.scale)
    A_pre = np.empty((T, S))
    for t in range(T):
        for s in range(S):
            A_pre[t, s] = scale * (Q[t] @ K[s])  # A_pre_ts = scale Σ_k Q_tk K_sk
    return A_pre


@REFERENCE.implements(MaskedSoftmax)
def masked_softmax(op: MaskedSoftmax, x: Array) -> Array:  # [T, S] -> [T, S]
    T, S = x.shape
    y = np.zeros((T, S))
    for t in range(T):
        A_t = [s for s in range(S) if op.mask.allowed(t, s)]  # the allowed set
        if not A_t:
            continue  # A_t = ∅: the row is all zeros
        m_t = max(x[t, s] for s in A_t)  # m_t = max over A_t
        e = {s: math.exp(x[t, s] - m_t) for s in A_t}  # e_ts = exp(x_ts − m_t) for s ∈ A_t
        Z_t = math.fsum(e.values())  # Z_t = Σ_s' e_ts'
        for s in A_t:
            y[t, s] = e[s] / Z_t  # y_ts = e_ts / Z_t; 0 outside A_t
    return y


@REFERENCE.implements(WeightedSum)
def weighted_sum(op: WeightedSum, A: Array, V: Array) -> Array:  # [T, S], [S, d_v] -> [T, d_v]
    T, S = A.shape
    z = np.zeros((T, V.shape[1]))
    for t in range(T):
        for s in range(S):
            z[t] += A[t, s] * V[s]  # z_tk = Σ_s A_ts V_sk
    return z


@REFERENCE.implements(ConcatHeads)
def concat_heads(op: ConcatHeads, **z: Array) -> Array:  # n_heads × [T, d_head] -> [T, n_heads·d_head]
    heads = [z[f"z_{h}"] for h in range(op.n_heads)]
    return np.concatenate(heads, axis=1)  # y_{t, h·d_head + k} = (z_h)_tk
