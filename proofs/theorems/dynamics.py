"""Attention as token dynamics (docs/sources.md §3): the update is a gradient step of a potential.

The article writes column vectors: tokens t_k ∈ ℝ^d, Q, K ∈ ℝ^{d_head × d}, V ∈ ℝ^{d × d},
scores (Q t_i)·(K t_k) = t_iᵀ QᵀK t_k. In the spec's row convention this is one attention head
with W_Q = Qᵀ, W_K = Kᵀ, W_V = Vᵀ (d_head = d for the values), score scale 1 (or Q scaled by
√scale), no biases, no W_O, added to the residual stream, and the mask s ≠ t (the article's sum
excludes k = i).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy
from hypothesis import strategies as st

from proofs.algebra import op_matrix
from proofs.core import Kind, Scope, for_all, require, require_zero, theorem
from proofs.theorems._common import close, seeds
from reference import run_op
from spec.masks import Full, Relation
from spec.ops import Affine, AttentionScores, MaskedSoftmax, WeightedSum


@dataclass(frozen=True)
class OffDiagonal(Relation):
    """Query t sees every key but itself: the article's Σ_{k≠i}."""

    def allowed(self, t: int, s: int) -> bool:
        return s != t

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return 1 - sympy.KroneckerDelta(t, s)

    def latex(self) -> str:
        return "s \\ne t"


def head_update(tokens: sympy.Matrix, Q: sympy.Matrix, K: sympy.Matrix, V: sympy.Matrix, mask: Relation) -> sympy.Matrix:
    """h = x + head(x) with the spec's ops (rows are tokens): W_Q = Qᵀ, W_K = Kᵀ, W_V = Vᵀ."""
    n, d = tokens.shape
    dh = Q.shape[0]
    q = op_matrix(Affine(d, dh, False, n), {"x": tokens}, {"W": Q.T})
    k = op_matrix(Affine(d, dh, False, n), {"x": tokens}, {"W": K.T})
    v = op_matrix(Affine(d, d, False, n), {"x": tokens}, {"W": V.T})
    scores = op_matrix(AttentionScores(dh, 1, n, n), {"Q": q, "K": k})
    weights = op_matrix(MaskedSoftmax(mask, n, n), {"x": scores})
    return tokens + op_matrix(WeightedSum(d, n, n), {"A": weights, "V": v})


def potential(tokens: sympy.Matrix, G: sympy.Matrix, i: int, mask: Relation) -> sympy.Expr:
    """U_i = ln Σ_{k ∈ A_i} exp(t_iᵀ G t_k)."""
    n = tokens.shape[0]
    return sympy.log(sum(sympy.exp((tokens[i, :] * G * tokens[k, :].T)[0, 0]) for k in range(n) if mask.allowed(i, k)))


def gradient(U: sympy.Expr, tokens: sympy.Matrix, i: int) -> sympy.Matrix:
    return sympy.Matrix([sympy.diff(U, tokens[i, c]) for c in range(tokens.shape[1])])


def _tokens(n: int, d: int) -> sympy.Matrix:
    return sympy.Matrix(n, d, lambda r, c: sympy.Symbol(f"t_{r}_{c}", real=True))


def _square(name: str, d: int) -> sympy.Matrix:
    return sympy.Matrix(d, d, lambda r, c: sympy.Symbol(f"{name}_{r}_{c}", real=True))


MAX_D, MAX_N = 2, 3


def _matrix_zero(expr: sympy.MatrixExpr) -> bool:
    """A symbolic matrix expression that expands to the zero matrix."""
    reduced = sympy.expand(expr)
    return bool(reduced == 0 or isinstance(reduced, sympy.ZeroMatrix))


def _witness_dynamics(examples: int) -> None:
    def check(case: tuple[int, int, int]) -> None:
        d, n, seed = case
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, d))
        Q, K, V = rng.normal(size=(d, d)), rng.normal(size=(d, d)) + 2 * np.eye(d), rng.normal(size=(d, d))
        G = Q.T @ K
        if abs(np.linalg.det(G)) < 1e-3:
            return  # too close to singular for a float64 inverse to be a fair witness
        q, k, v = (run_op(Affine(d, d, False, n), {"x": x}, {"W": W.T}) for W in (Q, K, V))
        A = run_op(MaskedSoftmax(OffDiagonal(), n, n), {"x": run_op(AttentionScores(d, 1.0, n, n), {"Q": q, "K": k})})
        h = x + run_op(WeightedSum(d, n, n), {"A": A, "V": v})
        M = V @ np.linalg.inv(G)
        for i in range(n):
            grad = _complex_step_gradient(x, G, i, [m for m in range(n) if m != i])
            close(h[i], x[i] + M @ grad, f"h_{i} vs t_{i} + M ∇U_{i}", 1e-9)

    for_all(st.tuples(st.integers(1, 6), st.integers(2, 8), seeds), examples, check)


@theorem(
    name="token_dynamics",
    title="the attention update is a gradient step: h_i = t_i + M ∇U_i with M = V (QᵀK)⁻¹",
    statement="With U_i = ln Σ_{k≠i} exp(Q t_i · K t_k) and a_ik the attention weights over k ≠ i, the gradient of U_i "
    "with respect to t_i is QᵀK Σ_{k≠i} a_ik t_k; so when QᵀK is invertible the attention update "
    "h_i = t_i + V Σ_{k≠i} a_ik t_k equals t_i + M ∇U_i with M = V (QᵀK)⁻¹.",
    latex=r"U_i = \ln \sum_{k \ne i} e^{(Q t_i)\cdot(K t_k)},\quad \nabla_{t_i} U_i = Q^\top K \sum_{k\ne i} a_{ik} t_k,"
    r"\quad h_i = t_i + V \sum_{k \ne i} a_{ik} t_k = t_i + M\, \nabla_{t_i} U_i,\ \ M = V (Q^\top K)^{-1}",
    hypotheses=("QᵀK (d × d) is invertible — which needs d_head ≥ d, since its rank is at most d_head",
                "the sum and the weights exclude k = i (the mask s ≠ t); the gradient is in t_i only through the query",
                "score scale 1 (a scale c is absorbed as M = V (c QᵀK)⁻¹), no biases, V maps ℝ^d to ℝ^d"),
    scope=Scope(Kind.MIXED, f"∇_(t_i)(t_iᵀ G t_k) = G t_k and M G = V: symbolic in d (sympy matrix calculus); the whole "
                f"identity with the spec's head ops, U_i differentiated: exhaustive for d ≤ {MAX_D}, n ≤ {MAX_N} tokens, "
                "every i, with Q, K, V, tokens symbolic"),
    witness=_witness_dynamics,
    derived_from="the definitions of one attention head's ops (`Affine`, `AttentionScores`, `MaskedSoftmax`, `WeightedSum`) evaluated on symbolic tokens and weights",
    ops=('attention_scores', 'masked_softmax', 'weighted_sum'),
)
def token_dynamics() -> None:
    """∇_{t_i}(t_iᵀ G t_k) = G t_k and M G = V by sympy matrix calculus for every d; with the spec's head ops (mask s ≠ t) on symbolic tokens and weights, U_i is differentiated and ∇U_i − QᵀK Σ a_ik t_k and h_i − t_i − V Σ a_ik t_k simplify to 0."""
    dsym = sympy.Symbol("d", integer=True, positive=True)
    ti, tk = sympy.MatrixSymbol("t_i", dsym, 1), sympy.MatrixSymbol("t_k", dsym, 1)
    G, Vm = sympy.MatrixSymbol("G", dsym, dsym), sympy.MatrixSymbol("V", dsym, dsym)
    require(_matrix_zero((ti.T * G * tk).diff(ti) - G * tk), "∇_(t_i) t_iᵀ G t_k = G t_k (k ≠ i)")
    require((Vm * G.I * G).doit() == Vm, "M G = V (QᵀK)⁻¹ QᵀK = V")
    for d, n in itertools.product(range(1, MAX_D + 1), range(2, MAX_N + 1)):
        tokens, Q, K, V = _tokens(n, d), _square("Q", d), _square("K", d), _square("V", d)
        G = Q.T * K
        h = head_update(tokens, Q, K, V, OffDiagonal())
        for i in range(n):
            grad = gradient(potential(tokens, G, i, OffDiagonal()), tokens, i)
            weights = [sympy.exp((tokens[i, :] * G * tokens[k, :].T)[0, 0]) for k in range(n) if k != i]
            mean = sum((w * tokens[k, :].T for w, k in zip(weights, [k for k in range(n) if k != i])), sympy.zeros(d, 1)) / sum(weights)
            require_zero(grad - G * mean, f"d={d}, n={n}, i={i}: ∇U_i − QᵀK Σ_(k≠i) a_ik t_k")
            require_zero(h[i, :].T - tokens[i, :].T - V * mean, f"d={d}, n={n}, i={i}: the spec's head gives h_i = t_i + V Σ a_ik t_k")


def _complex_step_gradient(x: np.ndarray, G: np.ndarray, i: int, keys: list[int]) -> np.ndarray:
    """∇_(t_i) ln Σ_(k ∈ keys) exp(t_iᵀ G t_k), by the complex step (exact to rounding)."""
    step, d = 1e-30, x.shape[1]
    grad = np.empty(d)
    for c in range(d):
        xc = x.astype(complex)
        xc[i, c] += 1j * step
        e = np.array([xc[i] @ G @ xc[m] for m in keys])
        top = e.real.max()
        grad[c] = (np.log(np.sum(np.exp(e - top))) + top).imag / step
    return grad


def _witness_failures(examples: int) -> None:
    def check(case: tuple[int, int, int]) -> None:
        d, n, seed = case
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, d))
        # d_head = 1 < d: ∇U_i = Qᵀ (K Σ a t) stays on the line of Qᵀ, whatever the tokens.
        q, k = rng.normal(size=(1, d)), rng.normal(size=(1, d))
        for i in range(n):
            grad = _complex_step_gradient(x, q.T @ k, i, [m for m in range(n) if m != i])
            on_line = (grad @ q[0]) / (q[0] @ q[0]) * q[0]
            close(on_line, grad, f"d_head = 1: ∇U_{i} lies on the line of Qᵀ", 1e-9)
        # k = i included: the spec's ordinary head satisfies the corrected identity.
        Q, K, V = rng.normal(size=(d, d)), rng.normal(size=(d, d)) + 2 * np.eye(d), rng.normal(size=(d, d))
        G = Q.T @ K
        if abs(np.linalg.det(G)) < 1e-3:
            return
        qq, kk, vv = (run_op(Affine(d, d, False, n), {"x": x}, {"W": W.T}) for W in (Q, K, V))
        A = run_op(MaskedSoftmax(Full(), n, n), {"x": run_op(AttentionScores(d, 1.0, n, n), {"Q": qq, "K": kk})})
        h = x + run_op(WeightedSum(d, n, n), {"A": A, "V": vv})
        M = V @ np.linalg.inv(G)
        for i in range(n):
            grad = _complex_step_gradient(x, G, i, list(range(n)))
            close(h[i], x[i] + M @ (grad - A[i, i] * G.T @ x[i]), f"self included: h_{i} = t_{i} + M(∇U_{i} − a_ii Gᵀ t_{i})", 1e-9)

    for_all(st.tuples(st.integers(2, 6), st.integers(2, 6), seeds), examples, check)


@theorem(
    name="token_dynamics_needs_its_hypotheses",
    title="without its hypotheses the token-dynamics identity fails",
    statement="If QᵀK is singular (always when d_head < d) no M can work in general: with d = 2, d_head = 1, Q = K = (1, 0), "
    "V = I, tokens t_0 = (1, 0), t_1 = (0, 1), the update of t_0 moves it by (0, 1) while ∇U_0 = 0, so "
    "t_0 + M ∇U_0 = t_0 for every M. If the sum includes k = i (ordinary self-attention), ∇U_i gains the term "
    "a_ii (QᵀK)ᵀ t_i: with d = 1, one token t = 1 and Q = K = V = 1, h = 2 but t + M ∇U = 3 for M = V (QᵀK)⁻¹.",
    latex=r"d_\mathrm{head} < d:\ \nexists M\ \forall t:\ h_i = t_i + M \nabla U_i;\qquad "
    r"k = i \text{ included}:\ \nabla_{t_i} U_i = Q^\top K \sum_k a_{ik} t_k + a_{ii} (Q^\top K)^\top t_i",
    hypotheses=("the counterexamples are exact (rational numbers); the self term is derived for every d",),
    scope=Scope(Kind.MIXED, "the self-term gradient ∇(t_iᵀ G t_i) = (G + Gᵀ) t_i: symbolic in d; the counterexamples: exact"),
    witness=_witness_failures,
    derived_from="the same head's ops' definitions, evaluated exactly on the counterexamples",
    ops=('attention_scores', 'masked_softmax', 'weighted_sum'),
)
def token_dynamics_needs_its_hypotheses() -> None:
    """The singular case is evaluated exactly with the spec's head and a symbolic M (linsolve finds none); the self term's gradient is derived with sympy matrix calculus; the self-included counterexample is exact."""
    # A singular QᵀK: the head moves t_0 where no M ∇U_0 can reach.
    tokens = sympy.Matrix([[1, 0], [0, 1]])
    Q = K = sympy.Matrix([[1, 0]])
    V = sympy.eye(2)
    G = Q.T * K
    require(G.det() == 0, "QᵀK is singular (rank 1 < d = 2)")
    h = head_update(tokens, Q, K, V, OffDiagonal())
    x = _tokens(2, 2)
    grad = gradient(potential(x, G, 0, OffDiagonal()), x, 0).subs({x[r, c]: tokens[r, c] for r in range(2) for c in range(2)})
    require(grad == sympy.zeros(2, 1), "∇U_0 = 0 at these tokens")
    require(h[0, :] - tokens[0, :] == sympy.Matrix([[0, 1]]), "but the head moves t_0 by (0, 1) ≠ M · 0")
    M = sympy.Matrix(2, 2, sympy.symbols("m0:4"))
    require(sympy.linsolve(list(M * G - V), list(M.free_symbols)) == sympy.EmptySet, "no M solves M QᵀK = V")
    # Self included: the extra term, for every d, and a concrete failure.
    dsym = sympy.Symbol("d", integer=True, positive=True)
    ti, Gm = sympy.MatrixSymbol("t_i", dsym, 1), sympy.MatrixSymbol("G", dsym, dsym)
    self_term = (ti.T * Gm * ti).diff(ti)
    require(_matrix_zero(self_term - (Gm + Gm.T) * ti), "∇(t_iᵀ G t_i) = (G + Gᵀ) t_i")
    one = sympy.Matrix([[1]])
    h_self = head_update(one, one, one, one, Full())
    y = _tokens(1, 1)
    grad_self = gradient(potential(y, one, 0, Full()), y, 0).subs(y[0, 0], 1)
    require(h_self == sympy.Matrix([[2]]), "with k = i included, one token t = 1: h = 2")
    require(one + one * one.inv() * grad_self == sympy.Matrix([[3]]), "but t + M ∇U = 3")
