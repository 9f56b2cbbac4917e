"""The literal meaning of every primitive op, in float64, one sequence at a time.

One function per op ``kind`` (the same name as in spec/); variables are named after the
letters of the op's LaTeX (``spec.ops.*.latex``), with the equation on the right. Loops run
over positions, keys and heads where the math sums over them; numpy does the inner products.
Readable first, fast second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from spec.op import Primitive
from spec.ops import (
    Add,
    Affine,
    AttentionScores,
    ConcatHeads,
    Conv1d,
    GeluErf,
    GeluTanh,
    LayerNorm,
    LearnedPositional,
    MaskedSoftmax,
    OneHot,
    Relu,
    SinusoidalPositional,
    TokenEmbedding,
    WeightedSum,
)
from spec.theta import token_array

Array = npt.NDArray[np.float64]
Ids = npt.NDArray[np.int64]

REFERENCE: dict[str, Callable[..., Array]] = {}
"""op kind → its literal implementation ``fn(op, **inputs, **params) -> y``."""

F = TypeVar("F", bound=Callable[..., Array])


def implements(op: type[Primitive]) -> Callable[[F], F]:
    """Register the reference function of ``op``."""

    def decorate(fn: F) -> F:
        REFERENCE[op.kind] = fn
        return fn

    return decorate


@implements(OneHot)
def one_hot(op: OneHot, ids: Ids) -> Array:  # [T] -> [T, n_vocab]
    n_vocab = int(op.n_vocab)
    ids = token_array(ids, n_vocab, None, "one_hot")
    X = np.zeros((len(ids), n_vocab))
    for t, v in enumerate(ids):
        X[t, v] = 1.0  # X_tv = [ids_t = v]
    return X


@implements(TokenEmbedding)
def token_embedding(op: TokenEmbedding, X: Array, W_E: Array) -> Array:  # [T, n_vocab] -> [T, d]
    E = X @ W_E  # E_tj = Σ_v X_tv (W_E)_vj: the one-hot matrix, multiplied literally
    return E


@implements(LearnedPositional)
def learned_positional(op: LearnedPositional, ids: Ids, W_P: Array) -> Array:  # [T] -> [T, d]
    T, n_ctx = len(ids), W_P.shape[0]
    token_array(np.zeros(T, dtype=np.int64), 1, n_ctx, "learned_positional")  # refuses T > n_ctx
    P = W_P[:T].copy()  # P_tj = (W_P)_tj
    return P


@implements(SinusoidalPositional)
def sinusoidal_positional(op: SinusoidalPositional, ids: Ids) -> Array:  # [T] -> [T, d]
    T, d = len(ids), int(op.d)
    P = np.zeros((T, d))
    for t in range(T):
        for j in range(d):
            two_i = 2 * (j // 2)
            angle = t / op.base ** (two_i / d)
            P[t, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)  # P_{t,2i} = sin, P_{t,2i+1} = cos
    return P


@implements(LayerNorm)
def layer_norm(op: LayerNorm, x: Array, gamma: Array, beta: Array | None = None) -> Array:  # [T, d] -> [T, d]
    T, d = x.shape
    y = np.empty_like(x)
    for t in range(T):
        mu = math.fsum(x[t]) / d  # μ_t = (1/d) Σ_k x_tk
        delta = x[t] - mu  # δ_tj = x_tj − μ_t
        sigma2 = math.fsum(delta**2) / d  # σ²_t = (1/d) Σ_k δ_tk²  (biased variance)
        y[t] = gamma * delta / math.sqrt(sigma2 + op.eps)  # γ_j δ_tj / √(σ²_t + ε)
        if beta is not None:
            y[t] += beta  # + β_j
    return y


@implements(Affine)
def affine(op: Affine, x: Array, W: Array, b: Array | None = None) -> Array:  # [T, d_in] -> [T, d_out]
    T = x.shape[0]
    y = np.empty((T, W.shape[1]))
    for t in range(T):
        y[t] = x[t] @ W  # y_tj = Σ_i x_ti W_ij
        if b is not None:
            y[t] += b  # + b_j
    return y


@implements(GeluErf)
def gelu_erf(op: GeluErf, x: Array) -> Array:  # [T, d] -> [T, d]
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    # y = ½ x (1 + erf(x/√2)) = ½ x erfc(−x/√2): 1 + erf cancels for x ≪ 0 (all digits lost
    # by x ≈ −8); erfc keeps them.
    y: Array = 0.5 * x * erfc(-x / math.sqrt(2.0))
    return y


@implements(GeluTanh)
def gelu_tanh(op: GeluTanh, x: Array) -> Array:  # [T, d] -> [T, d]
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)  # u = √(2/π)(x + 0.044715 x³)
    # y = ½ x (1 + tanh u) = x / (1 + e^{−2u}) = x e^{2u} / (1 + e^{2u}): 1 + tanh u cancels
    # for x ≪ 0 (all digits lost by x ≈ −5); these forms keep them. e = e^{−2|u|} ≤ 1 never overflows.
    e = np.exp(-2.0 * np.abs(u))
    y: Array = np.where(u >= 0, x / (1.0 + e), x * e / (1.0 + e))
    return y


@implements(Relu)
def relu(op: Relu, x: Array) -> Array:  # [T, d] -> [T, d]
    return np.maximum(x, 0.0)  # y = max(x, 0)


@implements(Add)
def add(op: Add, a: Array, b: Array) -> Array:  # [T, d], [T, d] -> [T, d]
    return a + b  # y = a + b


@implements(AttentionScores)
def attention_scores(op: AttentionScores, Q: Array, K: Array) -> Array:  # [T, d_head], [S, d_head] -> [T, S]
    T, S = Q.shape[0], K.shape[0]
    scale = float(op.scale)
    A_pre = np.empty((T, S))
    for t in range(T):
        for s in range(S):
            A_pre[t, s] = scale * (Q[t] @ K[s])  # A_pre_ts = scale Σ_k Q_tk K_sk
    return A_pre


@implements(MaskedSoftmax)
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


@implements(WeightedSum)
def weighted_sum(op: WeightedSum, A: Array, V: Array) -> Array:  # [T, S], [S, d_v] -> [T, d_v]
    T, S = A.shape
    z = np.zeros((T, V.shape[1]))
    for t in range(T):
        for s in range(S):
            z[t] += A[t, s] * V[s]  # z_tk = Σ_s A_ts V_sk
    return z


@implements(ConcatHeads)
def concat_heads(op: ConcatHeads, **z: Array) -> Array:  # n_heads × [T, d_head] -> [T, n_heads·d_head]
    heads = [z[f"z_{h}"] for h in range(op.n_heads)]
    return np.concatenate(heads, axis=1)  # y_{t, h·d_head + k} = (z_h)_tk


@implements(Conv1d)
def conv1d(op: Conv1d, x: Array, W: Array, b: Array | None = None) -> Array:  # [T, d_in] -> [T, d_out]
    T, k, p = x.shape[0], op.kernel, op.pad_left
    y = np.zeros((T, W.shape[2]))
    for t in range(T):
        for i in range(k):
            s = t + i - p  # the input position under tap i
            if 0 <= s < T:  # outside the sequence: a zero padding row
                y[t] += x[s] @ W[i]  # y_tj += Σ_c x_sc W_icj
        if b is not None:
            y[t] += b  # + b_j
    return y

def call(op: Primitive, inputs: dict[str, Any], params: dict[str, Array]) -> Array:
    """Apply the reference function of ``op``."""
    return REFERENCE[op.kind](op, **inputs, **params)
