"""Routed experts: the sparse combination is the dense one with the non-chosen weights zeroed,
and renormalising the top-k of a softmax is the softmax of the top-k."""

from __future__ import annotations

import itertools

import numpy as np
import sympy
from hypothesis import strategies as st

from proofs.core import Kind, Scope, for_all, require, require_zero, theorem, witness_check
from proofs.theorems._common import close, seeds
from reference import run_op
from reference.ops.moe import top_k
from spec.ops import MoeExperts, MoeRouter
from spec.ops.moe import NORMS, chosen

MAX_EXPERTS = 3
"""The exhaustive proofs cover every expert count up to this."""


def weak_orders(n: int) -> list[tuple[int, ...]]:
    """One logit row per weak order of n experts (every order, every pattern of ties): the tuples
    over {0, …, n − 1} whose values are exactly {0, …, m − 1} for some m."""
    return [v for v in itertools.product(range(n), repeat=n) if set(v) == set(range(max(v) + 1))]


def _router_row(op: MoeRouter, logits: tuple[int, ...]) -> list[sympy.Expr]:
    """Row 0 of the router's definition at concrete logits (exact: e^ℓ for whole ℓ)."""
    base = sympy.IndexedBase("logits", shape=(1, len(logits)))
    row = [op.definition((sympy.Integer(0), sympy.Integer(e)), {"logits": base}, {}) for e in range(len(logits))]
    values = {base[0, e]: sympy.Integer(v) for e, v in enumerate(logits)}
    return [entry.xreplace(values) for entry in row]


def _witness_sparse(examples: int) -> None:
    def check(case: tuple[int, int, str, int]) -> None:
        n, k_raw, norm, seed = case
        k = 1 + k_raw % n
        rng = np.random.default_rng(seed)
        T_, d, h = 4, 3, 2
        logits = rng.integers(-2, 3, size=(T_, n)).astype(float)  # small integers: ties in most rows
        G = run_op(MoeRouter(n, k, norm, T_), {"logits": logits}, {})
        op = MoeExperts(d, h, n, None, "silu", T_)
        x = rng.normal(size=(T_, d))
        params = {name: rng.normal(size=tuple(int(s) for s in shape)) for name, shape in op.params().items()}
        sparse = run_op(op, {"x": x, "G": G}, params)  # the reference: chosen experts only
        outputs = [run_op(op, {"x": x, "G": np.eye(n)[[e] * T_]}, params) for e in range(n)]  # E_e(x_t), every expert
        dense = np.sum([G[:, e : e + 1] * outputs[e] for e in range(n)], axis=0)
        close(sparse, dense, f"n={n}, k={k}, {norm}: Σ over chosen vs dense Σ_e G_te E_e(x_t)", 1e-13)
        for t_ in range(T_):
            zero = [e for e in range(n) if e not in top_k(logits[t_], k)]
            witness_check(bool(np.all(G[t_, zero] == 0.0)), "the router's weight of a non-chosen expert is 0")

    for_all(st.tuples(st.integers(1, 6), st.integers(0, 5), st.sampled_from(NORMS), seeds), examples, check)


@theorem(
    name="moe_sparse_equals_dense",
    title="the sparse mixture of experts equals the dense one with the non-chosen weights zeroed",
    statement="For every row of router logits ℓ (ties included), every top_k ≤ n_experts and every normalisation, the "
    "router's weight G_te is 0 for every expert e outside the chosen set K_t — the first k of the stable descending "
    "order (a larger logit first, the lower index first among equal logits) — and so the experts' dense combination "
    "Σ_e G_te E_e(x_t) equals the sparse one Σ_{e ∈ K_t} G_te E_e(x_t), whatever the experts compute. This is "
    "what lets the reference and fast/ run only the chosen experts.",
    latex=r"G_{te} = 0 \ (e \notin K_t) \quad\Rightarrow\quad \sum_{e} G_{te} E_e(x_t) = \sum_{e \in K_t} G_{te} E_e(x_t)",
    hypotheses=("the expert outputs E_e(x_t) are finite (0 · E = 0)",),
    scope=Scope(Kind.EXHAUSTIVE, f"every n_experts ≤ {MAX_EXPERTS}, every top_k, every normalisation, every weak order "
                "of the logits (all orders with all patterns of ties: 13 rows for 3 experts); the expert "
                "outputs are symbols (E_e = ∂y/∂G_te of the experts' definition, so any expert at all)"),
    witness=_witness_sparse,
    derived_from="`MoeRouter.definition` (its zeros and its tie rule) and `MoeExperts.definition` (dense in G)",
    ops=("moe_router", "moe_experts"),
)
def moe_sparse_equals_dense() -> None:
    """For each pattern, the router's exact row is computed from its definition; the chosen set
    from it is compared with the stable sort's first k; the experts' definition (d = d_expert = 1,
    G symbolic) is linear in G, its coefficients E_e = ∂y/∂G_te, and dense − sparse is
    Σ_{e ∉ K} G_te E_e with every such G_te = 0."""
    for n in range(1, MAX_EXPERTS + 1):
        G = sympy.IndexedBase("G", shape=(1, n))
        x = sympy.IndexedBase("x", shape=(1, 1))
        experts = MoeExperts(1, 1, n, None, "silu", 1)
        params = {name: sympy.IndexedBase(name, shape=shape) for name, shape in experts.params().items()}
        y = experts.definition((sympy.Integer(0), sympy.Integer(0)), {"x": x, "G": G}, params).doit()
        E = [sympy.diff(y, G[0, e]) for e in range(n)]
        require_zero(sympy.expand(y - sum(G[0, e] * E[e] for e in range(n))), f"n={n}: the experts' definition is Σ_e G_te E_e")
        for k, norm in itertools.product(range(1, n + 1), NORMS):
            op = MoeRouter(n, k, norm, 1)
            for logits in weak_orders(n):
                row = _router_row(op, logits)
                K = sorted(range(n), key=lambda e: (-logits[e], e))[:k]
                zero = [e for e in range(n) if e not in K]
                require(all(row[e] == 0 for e in zero), f"n={n}, k={k}, {norm}, ℓ={logits}: G_te = 0 outside K_t = {K}")
                require(all(row[e] != 0 for e in K), f"n={n}, k={k}, {norm}, ℓ={logits}: G_te > 0 on K_t = {K}")
                dense = sum(row[e] * E[e] for e in range(n))
                sparse = sum(row[e] * E[e] for e in K)
                require_zero(sympy.expand(dense - sparse), f"n={n}, k={k}, {norm}, ℓ={logits}: dense = sparse")


def _witness_conventions(examples: int) -> None:
    def check(case: tuple[int, int, int, float]) -> None:
        n, k_raw, seed, spread = case
        k = 1 + k_raw % n
        logits = np.round(np.random.default_rng(seed).normal(0.0, spread, size=(5, n)), 1)  # rounded: ties occur
        renorm = run_op(MoeRouter(n, k, "softmax_topk_renorm", 5), {"logits": logits}, {})
        direct = run_op(MoeRouter(n, k, "topk_softmax", 5), {"logits": logits}, {})
        close(renorm, direct, f"n={n}, k={k}: renormalised softmax-then-top-k vs top-k-then-softmax", 1e-14)

    for_all(st.tuples(st.integers(1, 8), st.integers(0, 7), seeds, st.sampled_from([0.5, 3.0, 30.0])), examples, check)


@theorem(
    name="moe_renormalised_softmax_is_softmax_of_topk",
    title="softmax then top-k renormalised is top-k then softmax",
    statement="For every row of logits and every chosen set K_t: renormalising the softmax over the chosen experts, "
    "p_te / Σ_{e' ∈ K_t} p_te' with p_t = softmax(ℓ_t), equals the softmax of the chosen logits alone, "
    "e^{ℓ_te} / Σ_{e' ∈ K_t} e^{ℓ_te'} (the full softmax's normaliser cancels). So Mixtral's router (softmax, "
    "top-k, renormalise) and Mistral's reference code (top-k, softmax) are the same function; the two "
    "normalisations of MoeRouter differ only in rounding. Without renormalisation they differ (the weights sum "
    "to Σ_{e ∈ K_t} p_te < 1 whenever an expert is left out).",
    latex=r"\frac{[e \in K_t]\, p_{te}}{\sum_{e' \in K_t} p_{te'}} = \frac{[e \in K_t]\, e^{\ell_{te}}}{\sum_{e' \in K_t} e^{\ell_{te'}}}",
    hypotheses=("K_t is not empty (top_k ≥ 1)",),
    scope=Scope(Kind.MIXED, f"symbolic in the logits and in the chosen set (each [e ∈ K_t] of the definition a symbol c_e "
                f"≥ 0, not all 0); exhaustive in n_experts ≤ {MAX_EXPERTS + 1} and top_k"),
    witness=_witness_conventions,
    derived_from="`MoeRouter.definition` with norm 'softmax_topk_renorm' and 'topk_softmax', the chosen indicators "
    "replaced by symbols",
    ops=("moe_router",),
)
def moe_renormalised_softmax_is_softmax_of_topk() -> None:
    """Both definitions are built with symbolic logits; every indicator [e ∈ K_t] (the same
    sub-expression in both) is replaced by a symbol c_e; the difference simplifies to 0."""
    for n in range(1, MAX_EXPERTS + 2):
        logits = sympy.IndexedBase("logits", shape=(1, n))
        c = sympy.symbols(f"c0:{n}", nonnegative=True)
        for k in range(1, n + 1):
            marks = {chosen(logits, sympy.Integer(0), sympy.Integer(e), k): c[e] for e in range(n)}

            def entry(norm: str, e: int, k: int = k, marks: dict[sympy.Expr, sympy.Symbol] = marks) -> sympy.Expr:
                value = MoeRouter(n, k, norm, 1).definition((sympy.Integer(0), sympy.Integer(e)), {"logits": logits}, {})
                return value.xreplace(marks)

            for e in range(n):
                renorm, direct = entry("softmax_topk_renorm", e), entry("topk_softmax", e)
                require(not renorm.has(sympy.Heaviside) and not direct.has(sympy.Heaviside), "every indicator replaced")
                require_zero(sympy.simplify(renorm - direct), f"n={n}, k={k}, e={e}: p_e / Σ_K p = e^ℓ_e / Σ_K e^ℓ")
            plain = entry("softmax_topk", 0).subs({c[0]: 1, **{c[e]: 0 for e in range(1, n)}})
            if n > 1:
                require(sympy.simplify(plain - 1) != 0, f"n={n}: without renormalisation a lone chosen weight is not 1")
