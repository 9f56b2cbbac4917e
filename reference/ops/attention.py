"""One attention head's primitives and the concatenation of heads, literally: loops over
positions and keys where the math sums over them."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import AttentionScores, ConcatHeads, MaskedSoftmax, WeightedSum


@REFERENCE.implements(AttentionScores)
def attention_scores(op: AttentionScores, Q: Array, K: Array) -> Array:  # [T, d_head], [S, d_head] -> [T, S]
    T, S = Q.shape[0], K.shape[0]
    scale = float(op.scale)
    A_pre = np.empty((T, S))
    for t in range(T):
        for s in range(S):
            A_pre[t, s] = scale * (Q[t] @ K[s])  # a_ts = scale Σ_k Q_tk K_sk
            if op.softcap is not None:
                A_pre[t, s] = op.softcap * math.tanh(A_pre[t, s] / op.softcap)  # c tanh(a_ts / c)
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


# --- vector–Jacobian products (issue 23): g = ∂L/∂y in, the cotangents of the inputs out ---


@VJP.implements(AttentionScores)
def attention_scores_vjp(op: AttentionScores, g: Array, Q: Array, K: Array) -> dict[str, Array]:  # [T, S] -> [T, d_head], [S, d_head]
    T, S = Q.shape[0], K.shape[0]
    scale = float(op.scale)
    gQ, gK = np.zeros_like(Q), np.zeros_like(K)
    for t in range(T):
        for s in range(S):
            g_a = g[t, s]  # ∂L/∂a_ts = g_ts without a cap
            if op.softcap is not None:
                g_a = g[t, s] * (1.0 - math.tanh(scale * (Q[t] @ K[s]) / op.softcap) ** 2)  # × (1 − tanh²(a_ts / c))
            gQ[t] += scale * g_a * K[s]  # ∂L/∂Q_tk = scale Σ_s ∂L/∂a_ts K_sk
            gK[s] += scale * g_a * Q[t]  # ∂L/∂K_sk = scale Σ_t ∂L/∂a_ts Q_tk
    return {"Q": gQ, "K": gK}


@VJP.implements(MaskedSoftmax)
def masked_softmax_vjp(op: MaskedSoftmax, g: Array, x: Array) -> dict[str, Array]:  # [T, S] -> [T, S]
    y = masked_softmax(op, x)  # recomputed: y_ts, 0 outside A_t and on rows with A_t = ∅
    gx = np.zeros_like(x)
    for t in range(x.shape[0]):
        inner = math.fsum(y[t] * g[t])  # Σ_s' y_ts' g_ts'
        gx[t] = y[t] * (g[t] - inner)  # ∂L/∂x_ts = y_ts (g_ts − Σ_s' y_ts' g_ts'): 0 outside A_t, a zero row when A_t = ∅
    return {"x": gx}


@VJP.implements(WeightedSum)
def weighted_sum_vjp(op: WeightedSum, g: Array, A: Array, V: Array) -> dict[str, Array]:  # [T, d_v] -> [T, S], [S, d_v]
    T, S = A.shape
    gA, gV = np.zeros_like(A), np.zeros_like(V)
    for t in range(T):
        for s in range(S):
            gA[t, s] = g[t] @ V[s]  # ∂L/∂A_ts = Σ_k g_tk V_sk
            gV[s] += A[t, s] * g[t]  # ∂L/∂V_sk = Σ_t A_ts g_tk
    return {"A": gA, "V": gV}


@VJP.implements(ConcatHeads)
def concat_heads_vjp(op: ConcatHeads, g: Array, **z: Array) -> dict[str, Array]:  # [T, n_heads·d_head] -> n_heads × [T, d_head]
    d_head = z["z_0"].shape[1]
    return {f"z_{h}": g[:, h * d_head : (h + 1) * d_head].copy() for h in range(op.n_heads)}  # ∂L/∂(z_h)_tk = g_{t, h·d_head + k}
