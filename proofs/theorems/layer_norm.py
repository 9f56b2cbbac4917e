"""Layer norm's invariance under x ↦ a·x + b·1, and the exact role of ε."""

from __future__ import annotations

import numpy as np
import sympy
from hypothesis import strategies as st

from proofs.algebra import replace_entries, require_sums_equal
from proofs.core import Kind, Scope, for_all, require, require_zero, theorem
from proofs.theorems._common import close, j, seeds, t
from reference import run_op
from spec import dims as D
from spec.ops import LayerNorm

d, T = D.d_model, D.T
_EPS_MARK = 0.5
"""A layer norm is built with ε = 0.5 (an exact binary number) and that constant is then
replaced by the symbol ε: the definition is the spec's, ε becomes any ε ≥ 0."""


def _parts(eps: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr, sympy.IndexedBase, sympy.IndexedBase, sympy.IndexedBase]:
    """The spec's layer norm entry y_tj with a symbolic ε, and its pieces δ_tj (the centred
    entry) and v_t (the biased variance) read off it: y = γ_j δ_tj (v_t + ε)^(−1/2) + β_j."""
    x = sympy.IndexedBase("x", shape=(T, d))
    gamma, beta = sympy.IndexedBase("gamma", shape=(d,)), sympy.IndexedBase("beta", shape=(d,))
    y = LayerNorm(d, _EPS_MARK, bias=True).definition((t, j), {"x": x}, {"gamma": gamma, "beta": beta})
    marks = [f for f in y.atoms(sympy.Float) if float(f) == _EPS_MARK]
    require(len(marks) == 1, "ε appears once in the definition")
    y = y.xreplace({marks[0]: eps})
    bare = replace_entries(replace_entries(y, gamma, lambda i: sympy.Integer(1)), beta, lambda i: sympy.Integer(0))
    roots = [p for p in bare.atoms(sympy.Pow) if p.exp == sympy.Rational(-1, 2)]
    require(len(roots) == 1, "one factor (σ² + ε)^(−1/2)")
    delta, variance = bare.xreplace({roots[0]: 1}), roots[0].base - eps
    require_zero(y - (gamma[j] * delta / sympy.sqrt(variance + eps) + beta[j]), "y = γ δ / √(v + ε) + β")
    return y, delta, variance, x, gamma, beta


def _witness(examples: int) -> None:
    def check(case: tuple[int, int, int, float, float, float]) -> None:
        d_, T_, seed, a, b, eps = case
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(T_, d_))
        gamma, beta = rng.normal(size=d_), rng.normal(size=d_)

        def ln(e: float, rows: np.ndarray) -> np.ndarray:
            return run_op(LayerNorm(d_, e, True, T_), {"x": rows}, {"gamma": gamma, "beta": beta})

        close(ln(0.0, a * x + b), ln(0.0, x), "ε = 0: LN(a x + b) vs LN(x)", 1e-9)
        close(ln(eps, x + b), ln(eps, x), "ε > 0: LN(x + b) vs LN(x)", 1e-9)
        close(ln(eps, a * x + b), ln(eps / a**2, x), "ε > 0: LN_ε(a x + b) vs LN_{ε/a²}(x)", 1e-9)

    scales = st.sampled_from([0.5, 3.0, 1e-2, 1e2])
    for_all(st.tuples(st.integers(2, 64), st.integers(1, 6), seeds, scales, st.floats(-5, 5), st.sampled_from([1e-5, 0.1, 1.0])), examples, check)


@theorem(
    name="layer_norm_invariance",
    title="layer norm is invariant under x ↦ a·x + b·1 (a > 0) exactly when ε = 0; what ε > 0 keeps",
    statement="Write LN_ε for the spec's layer norm with ε inside the square root. For a row that is not constant: "
    "with ε = 0, LN_0(a x + b 1) = LN_0(x) for every a > 0 and every b (a < 0 flips the sign of the normalised part). "
    "With ε > 0 shifts are still exact, LN_ε(x + b 1) = LN_ε(x), but scaling is not: LN_ε(a x + b 1) = LN_{ε/a²}(x) "
    "exactly (ε is rescaled by 1/a²), which tends to LN_0(x) as a → ∞ and differs from LN_ε(x) for a ≠ 1. A constant "
    "row is not defined for ε = 0 (0/0) and gives β for ε > 0.",
    latex=r"\mathrm{LN}_\varepsilon(x)_j = \gamma_j \frac{x_j - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta_j:\quad "
    r"\mathrm{LN}_\varepsilon(a x + b\mathbf{1}) = \mathrm{LN}_{\varepsilon / a^2}(x)\ (a > 0),\quad "
    r"\mathrm{LN}_0(a x + b\mathbf{1}) = \mathrm{LN}_0(x),\quad \lim_{a\to\infty} \mathrm{LN}_\varepsilon(a x) = \mathrm{LN}_0(x)",
    hypotheses=("a > 0 (for a < 0: LN_0(a x) − β = −(LN_0(x) − β))", "b ∈ ℝ, ε ≥ 0",
                "σ²(x) > 0 (the row is not constant) wherever ε = 0 or the limit is taken"),
    scope=Scope(Kind.SYMBOLIC, "every d_model, every row x, γ, β, every a, b and ε: the spec's definition is "
                "transformed and its centred part and variance compared as sums (δ ↦ a δ, σ² ↦ a² σ²)"),
    witness=_witness,
    derived_from='`LayerNorm.definition` with ε symbolic',
    ops=('layer_norm',),
)
def layer_norm_invariance() -> None:
    """The spec's definition (ε symbolic) is split as γ δ (v + ε)^{−1/2} + β; under x ↦ a x + b the centred part becomes a δ and the variance a² v (sum normal form); the remaining identities are algebra in the scalars δ, v, a, ε."""
    eps = sympy.Symbol("epsilon", nonnegative=True)
    a, b = sympy.Symbol("a", positive=True), sympy.Symbol("b", real=True)
    _, delta, variance, x, gamma, beta = _parts(eps)

    def moved(e: sympy.Expr) -> sympy.Expr:  # x ↦ a x + b 1
        return replace_entries(e, x, lambda i: a * x[i] + b)

    require_sums_equal(moved(delta), a * delta, "δ(a x + b 1) = a δ(x)")
    require_sums_equal(moved(variance), a**2 * variance, "σ²(a x + b 1) = a² σ²(x)")
    # With δ and σ² as scalars (Δ, V) the rest is algebra in one variable.
    Dl, V = sympy.Symbol("Delta", real=True), sympy.Symbol("V", positive=True)
    g, bt = sympy.Symbol("gamma_j", real=True), sympy.Symbol("beta_j", real=True)

    def ln(dd: sympy.Expr, vv: sympy.Expr, e: sympy.Expr) -> sympy.Expr:
        return g * dd / sympy.sqrt(vv + e) + bt

    require_zero(ln(a * Dl, a**2 * V, 0) - ln(Dl, V, 0), "ε = 0, a > 0: LN_0(a x + b) = LN_0(x)")
    require_zero(ln(1 * Dl, 1**2 * V, eps) - ln(Dl, V, eps), "ε ≥ 0, a = 1: LN_ε(x + b) = LN_ε(x) (δ, σ² unchanged)")
    require_zero(ln(a * Dl, a**2 * V, eps) - ln(Dl, V, eps / a**2), "ε ≥ 0: LN_ε(a x + b) = LN_{ε/a²}(x)")
    require_zero(sympy.limit(ln(a * Dl, a**2 * V, eps), a, sympy.oo) - ln(Dl, V, 0), "lim a→∞ LN_ε(a x) = LN_0(x)")
    negative = sympy.Symbol("a_neg", negative=True)
    require_zero(ln(negative * Dl, negative**2 * V, 0) - bt + (ln(Dl, V, 0) - bt), "a < 0: LN_0(a x) − β = −(LN_0(x) − β)")
    positive_eps = sympy.Symbol("epsilon_pos", positive=True)
    gap = sympy.simplify(ln(a * Dl, a**2 * V, positive_eps) - ln(Dl, V, positive_eps))
    require(gap.subs({a: 2, Dl: 1, V: 1, g: 1, positive_eps: 1}) != 0, "ε > 0, a = 2: LN_ε(2x) ≠ LN_ε(x) (scaling is not exact)")
    # A constant row x_tk = c: δ = 0, so LN_ε = β for ε > 0 (and 0/0 for ε = 0).
    cst = sympy.Symbol("c", real=True)

    def flat(e: sympy.Expr) -> sympy.Expr:
        return replace_entries(e, x, lambda i: cst)

    require_zero(flat(delta).doit(), "constant row: δ = 0")
    require_zero(flat(variance).doit(), "constant row: σ² = 0")
    require(ln(0, 0, positive_eps) == bt, "constant row, ε > 0: LN = β")
