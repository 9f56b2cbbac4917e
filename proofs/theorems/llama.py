"""The Llama family: rotary embedding's relative positions and norm preservation; grouped-query
attention as multi-head attention with repeated key/value heads; RMS norm's scale invariance and
what ε keeps; the receptive field of sliding windows; causality by typing; the parameter count."""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import sympy
from hypothesis import strategies as st

import reference
from proofs.algebra import evaluate_graph, replace_entries, require_sums_equal, symbols_array
from proofs.core import Kind, ProofFailed, Scope, for_all, require, require_zero, theorem, witness_check
from proofs.dependency import Windows, causality, relation, type_graph, windows
from proofs.theorems._common import close, j, seeds, t
from proofs.theorems.causality import rely_on
from spec import dims as D
from spec.architectures import PRESETS
from spec.architectures.llama import LayerKind, LlamaConfig, build_llama
from spec.blocks import Attention, multi_head_attention
from spec.counting import count, size, symbolic_count
from spec.graph import Architecture, Composite, graph_input
from spec.masks import Banded, Causal, KeyRow, Relation, SupportOf
from spec.ops import RMSNorm, Rotary
from spec.ops.rotary import PAIRINGS
from spec.theta import random_theta
from spec.types import rows

oo = sympy.oo

# -- rotary embedding ----------------------------------------------------------------------

ROTARY_WIDTHS = (2, 4, 6, 8)


def _rotated(op: Rotary, vector: str, position: sympy.Expr, d: int) -> tuple[list[sympy.Expr], dict[sympy.Expr, sympy.Symbol]]:
    """R_position v, entry by entry, from the spec's definition: v's entries are the symbols
    v_0 … v_{d−1} (the same vector at any position), and every frequency ω_k of the definition
    is replaced by a symbol ``omega_k`` (so what follows holds for every base and scaling)."""
    x = sympy.IndexedBase("x", shape=(position + 1, d))
    entries = [sympy.sympify(op.definition((position, sympy.Integer(jj)), {"x": x}, {})) for jj in range(d)]
    values = sympy.symbols(f"{vector}_0:{d}", real=True)
    entries = [replace_entries(e, x, lambda i: values[int(i[1])]) for e in entries]
    omegas: dict[sympy.Expr, sympy.Symbol] = {}
    for k in range(d // 2):
        omegas[op.frequency(sympy.Integer(k), sympy.Integer(d))] = sympy.Symbol(f"omega_{k}", positive=True)

    def abstract(e: sympy.Expr) -> sympy.Expr:
        def frequency_of(f: sympy.Function) -> sympy.Expr:
            angle = f.args[0]
            w = sympy.simplify(angle / position)
            if w not in omegas:
                raise ProofFailed(f"an angle {angle} is not the position times one of the frequencies [rotary]")
            return type(f)(position * omegas[w])

        return e.replace(lambda f: isinstance(f, (sympy.cos, sympy.sin)), frequency_of)

    return [abstract(e) for e in entries], omegas


def _witness_rotary(examples: int) -> None:
    def check(case: tuple[int, str, str, float, int, int, int, int]) -> None:
        half_d, pairing, scaling, base, t_, s_, u, seed = case
        d = 2 * half_d
        op = Rotary(d, base, pairing, scaling, 4.0, 1.0, 8.0, 64, rows=t_ + s_ + u + 1)
        rng = np.random.default_rng(seed)
        q, k = rng.normal(size=d), rng.normal(size=d)
        n = t_ + s_ + u + 1

        def at(v: np.ndarray, p: int) -> np.ndarray:  # v placed at every row; row p has position p
            rotated: np.ndarray = reference.run_op(op, {"x": np.tile(v, (n, 1))})[p]
            return rotated

        score = float(at(q, t_) @ at(k, s_))
        shifted = float(at(q, t_ + u) @ at(k, s_ + u))
        witness_check(bool(abs(score - shifted) <= 1e-9 * (np.linalg.norm(q) * np.linalg.norm(k))), f"score at ({t_}, {s_}) {score} vs shifted by {u} {shifted}")
        witness_check(bool(abs(np.linalg.norm(at(q, t_ + u)) - np.linalg.norm(q)) <= 1e-12 * np.linalg.norm(q)), "‖R_t q‖ ≠ ‖q‖")

    for_all(
        st.tuples(st.integers(1, 8), st.sampled_from(PAIRINGS), st.sampled_from(["none", "linear", "llama3"]),
                  st.sampled_from([10000.0, 500000.0, 2.0]), st.integers(0, 40), st.integers(0, 40), st.integers(0, 60), seeds),
        examples, check,
    )


@theorem(
    name="rotary_relative_position",
    title="rotary embedding: the score of a rotated query and key depends on the positions only through t − s, and rotation keeps norms",
    statement="Write R_t for the spec's rotary op at position t (either pairing, any base, any scaling: they only choose "
    "the frequencies ω_k). For every query q and key k, ⟨R_t q, R_s k⟩ = ⟨R_{t−s} q, k⟩: the attention score depends on "
    "the positions only through t − s (so shifting both positions by u changes nothing), and ‖R_t x‖ = ‖x‖. Each pair "
    "(a_k, b_k) is rotated by the angle t·ω_k, and a rotation by α followed by the transpose of a rotation by β is a "
    "rotation by α − β.",
    latex=r"\langle R_t q, R_s k\rangle = \langle R_{t-s}\, q, k\rangle,\qquad \lVert R_t x\rVert = \lVert x\rVert,\qquad "
    r"R_t = \bigoplus_k \begin{pmatrix}\cos t\omega_k & -\sin t\omega_k\\ \sin t\omega_k & \cos t\omega_k\end{pmatrix}",
    hypotheses=("q and k are the same vectors at every position (a query's or key's value, not its row index)",
                "the frequencies ω_k are any reals: the statement holds for every base and scaling"),
    scope=Scope(Kind.MIXED, f"symbolic in t, s, every entry of q and k and every frequency ω_k (replaced by symbols in the "
                f"spec's definition); d_head ∈ {ROTARY_WIDTHS}, both pairings; every d by the pairs being independent; witness: "
                "random q, k through the reference, every scaling, positions ≤ 100"),
    witness=_witness_rotary,
    derived_from='`Rotary.definition` at symbolic positions, its frequencies made symbols',
    ops=('rotary',),
)
def rotary_relative_position() -> None:
    """The spec's definition is expanded at symbolic positions t and s with the frequencies made symbols; the score's difference from its value at (t − s, 0) and the norm's difference from ‖x‖² are expanded with the angle-sum formulas and simplify to 0."""
    s_ = sympy.Symbol("s", integer=True, nonnegative=True)
    for d, pairing in itertools.product(ROTARY_WIDTHS, PAIRINGS):
        op = Rotary(d, 10000.0, pairing)
        q_t, _ = _rotated(op, "q", t, d)
        k_s, _ = _rotated(op, "k", s_, d)
        score = sum((a * b for a, b in zip(q_t, k_s)), sympy.Integer(0))
        relative = score.subs({t: t - s_, s_: 0}, simultaneous=True)
        require_zero(sympy.expand_trig(sympy.expand(score - relative)), f"d={d}, {pairing}: ⟨R_t q, R_s k⟩ = ⟨R_(t−s) q, R_0 k⟩")
        k_0, _ = _rotated(op, "k", sympy.Integer(0), d)
        plain = sympy.symbols(f"k_0:{d}", real=True)
        require(all(sympy.simplify(a - b) == 0 for a, b in zip(k_0, plain)), f"d={d}, {pairing}: R_0 = identity")
        norm = sum((a**2 for a in q_t), sympy.Integer(0)) - sum((v**2 for v in sympy.symbols(f"q_0:{d}", real=True)), sympy.Integer(0))
        require_zero(sympy.expand(norm), f"d={d}, {pairing}: ‖R_t q‖² = ‖q‖²")
        for k in range(d // 2):  # every frequency of the op is one of the ω_k, and all are used
            require(any(f"omega_{k}" in str(e) for e in q_t), f"d={d}, {pairing}: ω_{k} rotates some pair")


# -- grouped-query attention ---------------------------------------------------------------


def _attention(n_heads: int, n_kv_heads: int | None, d_head: int, d_model: int, mask: Relation, bias: bool, rotary: bool) -> Architecture:
    """One (grouped-query) multi-head attention on real rows, built by spec.blocks as the Llama
    builder builds it (rotary embedding included when asked)."""
    kv = n_heads if n_kv_heads is None else n_kv_heads
    dims = {D.d_model: d_model, D.n_heads: n_heads, D.n_kv_heads: kv, D.d_head: d_head}
    arch = Architecture("attention", {"x": rows(D.T, D.d_model)}, dims)
    attention = Attention(
        D.n_heads, D.d_head, mask, 1 / sympy.sqrt(d_head), n_kv_heads=None if n_kv_heads is None else D.n_kv_heads,
        transforms=(Rotary(D.d_head),) if rotary else (), bias=bias,
    )
    mha = multi_head_attention(arch.declare, "attn", dims, attention, d_in=D.d_model, d_out=D.d_model)
    arch.output("y", arch.add("attn", mha, {"x_q": graph_input("x"), "x_kv": graph_input("x")}))
    return arch.validate()


def repeat_kv(theta: dict[str, np.ndarray], group: int) -> dict[str, np.ndarray]:
    """θ of grouped-query attention as multi-head attention's: each key/value head's W_K, W_V,
    b_K, b_V repeated for the ``group`` query heads that read it (HF's ``repeat_kv``)."""
    return {name: np.repeat(value, group, axis=0) if name.rsplit(".", 1)[1] in ("W_K", "W_V", "b_K", "b_V") else value
            for name, value in theta.items()}


def _witness_gqa(examples: int) -> None:
    def check(case: tuple[int, int, int, int, bool, bool, int, int]) -> None:
        kv, group, d_head, extra, bias, rotary, T_, seed = case
        H = kv * group
        gqa = _attention(H, kv, 2 * d_head, H * 2 * d_head + extra, Causal(), bias, rotary)
        mha = _attention(H, None, 2 * d_head, H * 2 * d_head + extra, Causal(), bias, rotary)
        theta = random_theta(gqa, seed, std=0.7)
        x = np.random.default_rng(seed).normal(size=(T_, gqa.dim("d_model")))
        a = reference.evaluate(gqa, theta, {"x": x})["y"]
        b = reference.evaluate(mha, repeat_kv(theta, group), {"x": x})["y"]
        witness_check(np.array_equal(a, b), f"GQA ≠ MHA with repeated heads (H={H}, KV={kv}): max |Δ| {np.max(np.abs(a - b)):.3g}")

    for_all(st.tuples(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.integers(1, 2), st.integers(0, 2), st.booleans(),
                      st.booleans(), st.integers(1, 8), seeds), examples, check)


@theorem(
    name="gqa_is_repeated_mha",
    title="grouped-query attention equals multi-head attention with each key/value head repeated",
    statement="Grouped-query attention with n_kv_heads dividing n_heads — query head h reads key/value head "
    "⌊h / G⌋, G = n_heads / n_kv_heads — computes the same function as multi-head attention whose head h has "
    "W_K^h = W_K^{⌊h/G⌋}, W_V^h = W_V^{⌊h/G⌋} (and the same for b_K, b_V): both DAGs have the same ops in the same "
    "order, and every parameter view of one equals the corresponding view of the other under this repetition, so every "
    "value is equal. Multi-query attention is n_kv_heads = 1; n_kv_heads = n_heads is multi-head attention itself. "
    "It saves 2(n_heads − n_kv_heads)·d_model·d_head parameters per layer (plus 2(n_heads − n_kv_heads)·d_head biases).",
    latex=r"\mathrm{GQA}_\theta = \mathrm{MHA}_{\rho(\theta)},\quad \rho(\theta)_{W_K}[h] = \theta_{W_K}[\lfloor h/G \rfloor],\ "
    r"\rho(\theta)_{W_V}[h] = \theta_{W_V}[\lfloor h/G \rfloor];\qquad |\Theta_\mathrm{MHA}| - |\Theta_\mathrm{GQA}| = "
    r"2(n_\mathrm{heads} - n_\mathrm{kv})\, d_\mathrm{model} d_\mathrm{head}\,(+\,2(n_\mathrm{heads} - n_\mathrm{kv}) d_\mathrm{head})",
    hypotheses=("n_kv_heads divides n_heads", "the grouping is consecutive (heads G·g … G·g + G − 1 share head g), as in "
                "Hugging Face's repeat_kv and Meta's code"),
    scope=Scope(Kind.MIXED, "structure and views: exhaustive for n_heads ≤ 8, every divisor n_kv_heads, with and without "
                "biases and rotary embedding, the views compared on symbolic θ; values: the whole attention evaluated "
                "symbolically (T = 2) for (n_heads, n_kv_heads) ∈ {(2, 1), (4, 2)}; counts: symbolic in every dim; "
                "witness: the reference, bit for bit"),
    witness=_witness_gqa,
    derived_from="Llama attentions built by spec.blocks with and without grouping: their DAGs, ops and `ParamRef.resolve` views on symbolic θ, and both evaluated from the ops' definitions",
    ops=('attention_scores',),
    families=('llama',),
)
def gqa_is_repeated_mha() -> None:
    """The two DAGs are walked together: the same primitive paths, ops and sources, and every resolved parameter view equal on symbolic θ (GQA's) and its repetition (MHA's); so by induction along the topological order every value is equal — checked directly by evaluating both symbolically at T = 2; the count difference is read off Θ."""
    for H in range(1, 9):
        for kv in (k for k in range(1, H + 1) if H % k == 0):
            for bias, rotary in itertools.product((False, True), (False, True)):
                where = f"n_heads={H}, n_kv_heads={kv}, bias={bias}, rotary={rotary}"
                gqa, mha = _attention(H, kv, 2, 3, Causal(), bias, rotary), _attention(H, None, 2, 3, Causal(), bias, rotary)
                theta = {name: symbols_array(name.replace(".", "_"), shape) for name, shape in gqa.theta_shapes().items()}
                repeated = repeat_kv(theta, H // kv)
                walk_a, walk_b = gqa.primitives(), mha.primitives()
                require([(p, n.op, s) for p, n, s in walk_a] == [(p, n.op, s) for p, n, s in walk_b], f"{where}: the same ops in the same order")
                for (path, node_a, _), (_, node_b, _) in zip(walk_a, walk_b):
                    for port, ref in node_a.params.items():
                        view_a = ref.resolve(theta[ref.name], gqa.dims)
                        other = node_b.params[port]
                        view_b = other.resolve(repeated[other.name], mha.dims)
                        require(view_a.shape == view_b.shape and bool(np.all(view_a == view_b)), f"{where}: {path}.{port} views agree")
                difference = sympy.expand(sympy.Add(*(size(s) for s in mha.theta.values())) - sympy.Add(*(size(s) for s in gqa.theta.values())))
                saved = 2 * (D.n_heads - D.n_kv_heads) * D.d_model * D.d_head + (2 * (D.n_heads - D.n_kv_heads) * D.d_head if bias else 0)
                require_zero(difference - saved, f"{where}: Θ differs by the repeated heads, in every dim")
                require(count(mha) - count(gqa) == int(saved.subs({D.n_heads: H, D.n_kv_heads: kv, D.d_model: 3, D.d_head: 2})), f"{where}: count difference")
    for H, kv in ((2, 1), (4, 2)):
        gqa, mha = _attention(H, kv, 2, 2, Causal(), True, True), _attention(H, None, 2, 2, Causal(), True, True)
        theta = {name: symbols_array(name.replace(".", "_"), shape) for name, shape in gqa.theta_shapes().items()}
        x = sympy.Matrix(2, 2, sympy.symbols("x_0:4", real=True))
        sizes = {**gqa.dims, D.T: 2}
        a = evaluate_graph(gqa, theta, {"x": x}, sizes)["y"]
        b = evaluate_graph(mha, repeat_kv(theta, H // kv), {"x": x}, {**mha.dims, D.T: 2})["y"]
        require(a == b, f"n_heads={H}, n_kv_heads={kv}: the outputs are the same expressions")


# -- RMS norm ------------------------------------------------------------------------------

_EPS_MARK = 0.5


def _rms_parts(eps: sympy.Symbol, offset: bool) -> tuple[sympy.Expr, sympy.Expr, sympy.IndexedBase, sympy.IndexedBase]:
    """The spec's RMS norm entry with a symbolic ε, split as g_j x_tj (m_t + ε)^(−1/2) with m_t the
    mean square read off it."""
    d, T = D.d_model, D.T
    x, gamma = sympy.IndexedBase("x", shape=(T, d)), sympy.IndexedBase("gamma", shape=(d,))
    y = RMSNorm(d, _EPS_MARK, offset).definition((t, j), {"x": x}, {"gamma": gamma})
    marks = [f for f in y.atoms(sympy.Float) if float(f) == _EPS_MARK]
    require(len(marks) == 1, "ε appears once in the definition")
    y = y.xreplace({marks[0]: eps})
    roots = [p for p in y.atoms(sympy.Pow) if p.exp == sympy.Rational(-1, 2)]
    require(len(roots) == 1, "one factor (m + ε)^(−1/2)")
    mean_square = roots[0].base - eps
    gain = (1 + gamma[j]) if offset else gamma[j]
    require_zero(y - gain * x[t, j] / sympy.sqrt(mean_square + eps), "y = g x / √(m + ε)")
    return y, mean_square, x, gamma


def _witness_rms(examples: int) -> None:
    def check(case: tuple[int, int, int, float, float, bool]) -> None:
        d_, T_, seed, a, eps, offset = case
        rng = np.random.default_rng(seed)
        x, gamma = rng.normal(size=(T_, d_)), rng.normal(size=d_)

        def rms(e: float, rows_: np.ndarray) -> np.ndarray:
            return reference.run_op(RMSNorm(d_, e, offset, T_), {"x": rows_}, {"gamma": gamma})

        close(rms(0.0, a * x), rms(0.0, x), "ε = 0: RMS(a x) vs RMS(x)", 1e-9)
        close(rms(eps, a * x), rms(eps / a**2, x), "ε > 0: RMS_ε(a x) vs RMS_{ε/a²}(x)", 1e-9)
        close(rms(0.0, -a * x), -rms(0.0, x), "ε = 0: RMS(−a x) = −RMS(x)", 1e-9)

    for_all(st.tuples(st.integers(2, 64), st.integers(1, 6), seeds, st.sampled_from([0.5, 3.0, 1e-2, 1e2]),
                      st.sampled_from([1e-6, 0.1, 1.0]), st.booleans()), examples, check)


@theorem(
    name="rms_norm_scale_invariance",
    title="RMS norm is invariant under x ↦ a·x (a > 0) exactly when ε = 0; what ε > 0 keeps; it is not shift-invariant",
    statement="Write RMS_ε for the spec's RMS norm (ε inside the square root, gain γ or 1 + γ). For a row that is not all "
    "zeros: with ε = 0, RMS_0(a x) = RMS_0(x) for every a > 0 and RMS_0(a x) = −RMS_0(x) for a < 0. With ε > 0 scaling is "
    "not exact: RMS_ε(a x) = RMS_{ε/a²}(x), which tends to RMS_0(x) as a → ∞ and differs from RMS_ε(x) for a ≠ ±1. Unlike "
    "layer norm, no ε makes it invariant to adding a constant to the row: RMS(x + b·1) ≠ RMS(x) in general. A zero row "
    "is not defined for ε = 0 (0/0) and gives 0 for ε > 0.",
    latex=r"\mathrm{RMS}_\varepsilon(x)_j = g_j \frac{x_j}{\sqrt{\tfrac1d\sum_k x_k^2 + \varepsilon}}:\quad "
    r"\mathrm{RMS}_\varepsilon(a x) = \operatorname{sign}(a)\,\mathrm{RMS}_{\varepsilon/a^2}(x),\quad "
    r"\mathrm{RMS}_0(a x) = \mathrm{RMS}_0(x)\ (a > 0),\quad \mathrm{RMS}_\varepsilon(x + b\mathbf 1) \ne \mathrm{RMS}_\varepsilon(x)",
    hypotheses=("a ≠ 0, ε ≥ 0", "the row is not all zeros wherever ε = 0 or the limit is taken"),
    scope=Scope(Kind.SYMBOLIC, "every d_model, every row x, every gain (γ or 1 + γ), every a and ε: the definition's mean "
                "square is compared as a sum (m ↦ a² m), the rest is algebra; the shift counterexample is a concrete row"),
    witness=_witness_rms,
    derived_from='`RMSNorm.definition` with ε symbolic',
    ops=('rms_norm',),
)
def rms_norm_scale_invariance() -> None:
    """The spec's definition (ε symbolic) is split as g x (m + ε)^{−1/2}; under x ↦ a x the mean square becomes a² m (sum normal form); the identities are then algebra in x_j, m, a, ε; a shift is refuted on the row (1, −1)."""
    eps = sympy.Symbol("epsilon", nonnegative=True)
    a = sympy.Symbol("a", positive=True)
    for offset in (False, True):
        _, mean_square, x, _ = _rms_parts(eps, offset)
        require_sums_equal(replace_entries(mean_square, x, lambda i: a * x[i]), a**2 * mean_square, f"offset={offset}: m(a x) = a² m(x)")
    X, M, g = sympy.Symbol("X", real=True), sympy.Symbol("M", positive=True), sympy.Symbol("g", real=True)

    def rms(xx: sympy.Expr, mm: sympy.Expr, e: sympy.Expr) -> sympy.Expr:
        return g * xx / sympy.sqrt(mm + e)

    require_zero(rms(a * X, a**2 * M, 0) - rms(X, M, 0), "ε = 0, a > 0: RMS_0(a x) = RMS_0(x)")
    negative = sympy.Symbol("a_neg", negative=True)
    require_zero(rms(negative * X, negative**2 * M, 0) + rms(X, M, 0), "ε = 0, a < 0: RMS_0(a x) = −RMS_0(x)")
    require_zero(rms(a * X, a**2 * M, eps) - rms(X, M, eps / a**2), "ε ≥ 0: RMS_ε(a x) = RMS_{ε/a²}(x)")
    require_zero(sympy.limit(rms(a * X, a**2 * M, eps), a, oo) - rms(X, M, 0), "lim a→∞ RMS_ε(a x) = RMS_0(x)")
    positive_eps = sympy.Symbol("epsilon_pos", positive=True)
    gap = rms(a * X, a**2 * M, positive_eps) - rms(X, M, positive_eps)
    require(gap.subs({a: 2, X: 1, M: 1, g: 1, positive_eps: 1}) != 0, "ε > 0, a = 2: RMS_ε(2x) ≠ RMS_ε(x)")
    # a shift is not absorbed: on the row (1, −1), ε = 0, γ = 1, adding b = 1 gives (2, 0)
    op = RMSNorm(2, 0.0, False, 1)
    xb, gb = sympy.IndexedBase("x", shape=(1, 2)), sympy.IndexedBase("g", shape=(2,))
    before = [op.definition((sympy.Integer(0), sympy.Integer(k)), {"x": xb}, {"gamma": gb}) for k in range(2)]
    row, shifted = {0: 1, 1: -1}, {0: 2, 1: 0}

    def at(e: sympy.Expr, values: dict[int, int]) -> sympy.Expr:
        e = e.doit()
        e = e.replace(lambda z: isinstance(z, sympy.Indexed) and str(z.base.label) == "x", lambda z: sympy.Integer(values[int(z.indices[1])]))
        return e.replace(lambda z: isinstance(z, sympy.Indexed) and str(z.base.label) == "g", lambda z: sympy.Integer(1))

    require([sympy.nsimplify(at(e, row)) for e in before] == [1, -1], "RMS_0((1, −1)) = (1, −1)")
    require([sympy.nsimplify(at(e, shifted)) for e in before] == [sympy.sqrt(2), 0], "RMS_0((2, 0)) = (√2, 0) ≠ (1, −1) + anything constant")
    zero = {0: 0, 1: 0}
    op_eps = RMSNorm(2, 0.5, False, 1)
    values = [at(op_eps.definition((sympy.Integer(0), sympy.Integer(k)), {"x": xb}, {"gamma": gb}), zero) for k in range(2)]
    require(values == [0, 0], "a zero row with ε > 0 gives 0")


# -- sliding windows and causality -------------------------------------------------------------


def _llama(n_layers: int, pattern: tuple[LayerKind, ...], window: int | None, **options: object) -> Architecture:
    config = LlamaConfig(n_vocab=9, n_ctx=16, d_model=8, n_layers=n_layers, n_heads=2, n_kv_heads=1, d_mlp=4,
                         attention=pattern, sliding_window=window, **options)  # type: ignore[arg-type]
    return build_llama(config)


def _witness_window(examples: int) -> None:
    def check(case: tuple[int, int, int, int]) -> None:
        n_layers, w, T_, seed = case
        arch = _llama(n_layers, ("sliding",), w)
        theta = random_theta(arch, seed, std=0.5)
        ids = np.random.default_rng(seed).integers(0, 9, size=T_)
        base = reference.forward(arch, theta, ids)
        for p in range(T_):
            other = ids.copy()
            other[p] = (ids[p] + 1) % 9
            moved = np.any(reference.forward(arch, theta, other) != base, axis=1)
            want = np.array([t_ - n_layers * (w - 1) <= p <= t_ for t_ in range(T_)])
            witness_check(np.array_equal(moved, want), f"L={n_layers}, W={w}: token {p} moved rows {np.flatnonzero(moved)}, expected {np.flatnonzero(want)}")

    for_all(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 8), seeds), max(2, examples // 6), check)


@theorem(
    name="sliding_window_receptive_field",
    title="after L sliding-window layers of window W, position t sees exactly t − L(W − 1) ≤ s ≤ t",
    statement="In a Llama-family model whose every layer attends through Mistral's sliding window W (position t attends "
    "to t − W < s ≤ t), the logits at position t depend on exactly the tokens at t − L(W − 1) ≤ s ≤ t: the rotary "
    "embedding, RMS norms and gated MLP are row-wise, each attention layer reads the window [1 − W, 0], and the windows "
    "compose exactly (window_composition). One full layer anywhere makes it s ≤ t.",
    latex=r"R_L = [1-W,\,0]^{\circ L} = [L(1-W),\ 0]:\qquad t - L(W-1) \le s \le t",
    hypotheses=("Hugging Face Mistral's window: sliding_window = W lets t see W positions, itself included "
                "(masking_utils: kv_idx > q_idx − W)", "'exactly' needs generic parameters (the witness draws them)"),
    scope=Scope(Kind.MIXED, "symbolic in L and W (the induction of banded_receptive_field); built Llama models: L ≤ 4, W ≤ 4, "
                "the typing gives exactly this window; witness: every token of drawn models perturbed through the "
                "reference, the rows that move are exactly the window"),
    witness=_witness_window,
    derived_from="the dependency typing of Llama models built by `build_llama`, after checking every op's rules against its sympy `definition` and each window (`Banded`) against its own `allowed` and `indicator` (exact)",
    ops=('masked_softmax',),
    families=('llama',),
)
def sliding_window_receptive_field() -> None:
    """Induction with symbolic L and W as for banded layers; the typing of built sliding-window Llama models (with rotary, GQA, gated MLP) gives exactly [−L(W − 1), 0], and a full layer gives [−∞, 0]."""
    L, w = sympy.symbols("L w", integer=True, positive=True)
    step = Windows.of((1 - w, 0)).then(Windows.of((L * (1 - w), 0)))
    require(len(step.spans) == 1 and sympy.expand(step.spans[0][0] - (L + 1) * (1 - w)) == 0 and step.spans[0][1] == 0,
            "step: [1 − W, 0] ∘ [L(1 − W), 0] = [(L + 1)(1 − W), 0]")
    models = {(n_layers, width): _llama(n_layers, ("sliding",), width) for n_layers in range(1, 5) for width in range(1, 5)}
    mixed = _llama(3, ("sliding", "full"), 2)
    rely_on([*models.values(), mixed], [Banded(w) for w in range(1, 5)], "sliding_window_receptive_field")
    for (n_layers, width), arch in models.items():
        got = relation(arch, "logits", "ids")
        require(got == Windows.of((-n_layers * (width - 1), 0)), f"L={n_layers}, W={width}: the typing gives {got.text()}")
    require(relation(mixed, "logits", "ids") == Windows.of((-oo, 0)), "a full layer anywhere gives s ≤ t")


def _llama_variants() -> list[tuple[str, LlamaConfig]]:
    out = []
    patterns: tuple[tuple[LayerKind, ...], ...] = (("full",), ("sliding",), ("full", "sliding"))
    pairings: tuple[Literal["half", "interleaved"], ...] = ("half", "interleaved")
    for pattern, pairing, scaling, (heads, kv), bias, tied in itertools.product(
        patterns, pairings, ("none", "llama3"), ((2, 2), (4, 1)), (False, True), (False, True),
    ):
        config = LlamaConfig(n_vocab=7, n_ctx=8, d_model=8, n_layers=2, n_heads=heads, n_kv_heads=kv, d_mlp=4,
                             attention=pattern, sliding_window=2 if "sliding" in pattern else None, rope_pairing=pairing,
                             rope_scaling=scaling, rope_factor=2.0, qkv_bias=bias, out_bias=bias, mlp_bias=bias, tied=tied)
        out.append((f"{pattern} {pairing} {scaling} H={heads} KV={kv} bias={bias} tied={tied}", config))
    return out


def _witness_causal(examples: int) -> None:
    variants = _llama_variants()

    def check(case: tuple[int, int, int]) -> None:
        which, seed, where = case
        name, config = variants[which % len(variants)]
        arch = build_llama(config)
        theta = random_theta(arch, seed, std=0.5)
        ids = np.random.default_rng(seed).integers(0, 7, size=2 + seed % 6)
        p = 1 + where % (len(ids) - 1)
        other = ids.copy()
        other[p] = (ids[p] + 1) % 7
        a, b = reference.forward(arch, theta, ids), reference.forward(arch, theta, other)
        witness_check(np.array_equal(a[:p], b[:p]), f"changing token {p} moved an earlier logit [{name}]")

    for_all(st.tuples(st.integers(0, 1000), seeds, st.integers(0, 100)), max(2, examples // 3), check)


@theorem(
    name="llama_causal_by_typing",
    title="every Llama-family architecture is causal by typing, at any depth",
    statement="Every op of the Llama builder has a causal rule: the rotary embedding, RMS norms, SiLU, the element-wise "
    "product and every affine map are row-wise (the rotary embedding reads its row's position, not another row), "
    "attention's masks are causal or sliding windows (both [lo, 0]). So each block relates t to a window [lo, 0], and any "
    "number of blocks compose to a window with upper bound 0 (causal_at_any_depth): logits at t depend only on tokens "
    "s ≤ t, for every option (pairing, scaling, grouping, biases, tying, window pattern).",
    latex=r"\forall\ \text{Llama configs}:\ \operatorname{hi}\big(R_{\mathrm{logits} \leftarrow \mathrm{ids}}\big) \le 0",
    hypotheses=("the architecture is built by build_llama",),
    scope=Scope(Kind.MIXED, "every option combination (pattern full / sliding / alternating, both pairings, no or llama3 "
                "scaling, MHA and MQA, biases, tying) built at depth 2 and typed, every rule checked causal; depth: "
                "symbolic by causal_at_any_depth's induction; witness: a future token changed in drawn models, earlier "
                "logits identical bit for bit"),
    witness=_witness_causal,
    derived_from="the dependency typing of every option combination of `build_llama`, after checking every op's rules against its sympy `definition` and every mask against its own `allowed` and `indicator`",
    ops=('masked_softmax',),
    families=('llama',),
)
def llama_causal_by_typing() -> None:
    """Every variant is typed: the model's relation is causal with no breaking node, every rule of every node is causal, and each block's relation is a window [lo, 0] (so the induction of causal_at_any_depth applies at every depth)."""
    variants = [(name, build_llama(config)) for name, config in _llama_variants()]
    rely_on([arch for _, arch in variants], [Causal(), *(Banded(w) for w in range(1, 3))], "llama_causal_by_typing")
    for name, arch in variants:
        verdict = causality(arch)
        require(verdict.causal and not verdict.breaks, f"{name}: {verdict.describe()}")
        for path, rules in type_graph(arch).rules.items():
            for port, rule in rules.items():
                require(isinstance(rule, (KeyRow, SupportOf)) or windows(rule).causal(), f"{name}: {path}.{port}: {rule!r} is causal")
        block = arch.nodes["blocks.0"].op
        if not isinstance(block, Composite):
            raise ProofFailed("blocks.0 is not a composite")
        got = relation(block.body)
        require(len(got.spans) == 1 and got.spans[0][1] == 0, f"{name}: a block relates t to {got.text()}, a window [lo, 0]")


# -- the parameter count -------------------------------------------------------------------

d, H, KV, dh, dm, V, L = D.d_model, D.n_heads, D.n_kv_heads, D.d_head, D.d_mlp, D.n_vocab, D.n_layers


def llama_formula(qkv_bias: bool, out_bias: bool, mlp_bias: bool, tied: bool) -> sympy.Expr:
    """The parameter count of build_llama, in the dims (a theorem checks it against Θ)."""
    per_block = 2 * H * d * dh + 2 * KV * d * dh + 3 * d * dm + 2 * d
    per_block += ((H + 2 * KV) * dh if qkv_bias else 0) + (d if out_bias else 0) + ((2 * dm + d) if mlp_bias else 0)
    return L * per_block + V * d + d + (0 if tied else d * V)


PUBLISHED = {"llama-2-7b": 6_738_415_616, "llama-3-8b": 8_030_261_248, "mistral-7b": 7_241_732_096, "qwen2-0.5b": 494_032_768}
"""The published totals (tests/test_llama.py cites their sources)."""


def _witness_llama_count(examples: int) -> None:
    def check(case: tuple[int, int, int, int, int, int, int, tuple[bool, bool, bool, bool]]) -> None:
        vocab, kv, group, half, width, mlp, layers, (qb, ob, mb, tied) = case
        config = LlamaConfig(n_vocab=vocab, n_ctx=8, d_model=width, n_layers=layers, n_heads=kv * group, n_kv_heads=kv,
                             d_head=2 * half, d_mlp=mlp, qkv_bias=qb, out_bias=ob, mlp_bias=mb, tied=tied)
        arch = build_llama(config)
        want = int(llama_formula(qb, ob, mb, tied).subs(config.dims()))
        witness_check(count(arch) == want, f"count {count(arch)}, formula {want} [{config}]")

    for_all(st.tuples(st.integers(2, 5000), st.integers(1, 4), st.integers(1, 4), st.integers(1, 8), st.integers(1, 64),
                      st.integers(1, 200), st.integers(1, 4), st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans())),
            examples, check)


@theorem(
    name="llama_parameter_count_formula",
    title="the Llama family's parameter count, as a formula in the dims, equals Θ and the published totals",
    statement="For the Llama builder, Σ over Θ of the product of each shape is n_layers·(2·n_heads·d_model·d_head + "
    "2·n_kv_heads·d_model·d_head + 3·d_model·d_mlp + 2·d_model + [qkv biases] (n_heads + 2·n_kv_heads)·d_head + [output "
    "bias] d_model + [MLP biases] 2·d_mlp + d_model) + n_vocab·d_model + d_model (final norm) + [untied] d_model·n_vocab. "
    "It gives Llama-2-7B 6,738,415,616, Llama-3-8B 8,030,261,248, Mistral-7B 7,241,732,096 and Qwen2-0.5B 494,032,768, "
    "the published totals. The count depends neither on the rotary embedding (no parameters) nor on the windows.",
    latex=r"|\Theta| = n_\mathrm{layers}\big(2(n_\mathrm{heads} + n_\mathrm{kv})\,d_\mathrm{model} d_\mathrm{head} + "
    r"3 d_\mathrm{model} d_\mathrm{mlp} + 2 d_\mathrm{model} + b_{qkv}(n_\mathrm{heads} + 2n_\mathrm{kv}) d_\mathrm{head} + "
    r"b_o d_\mathrm{model} + b_m (2 d_\mathrm{mlp} + d_\mathrm{model})\big) + (2 - \tau)\, n_\mathrm{vocab} d_\mathrm{model} + d_\mathrm{model}",
    hypotheses=("b_qkv, b_o, b_m = 1 with the respective biases; τ = 1 for tied embeddings",),
    scope=Scope(Kind.MIXED, "symbolic in every dim; every combination of the three bias switches and tying, built with "
                "n_layers = 1, 2, 3; the presets' published totals exactly; witness: drawn sizes"),
    witness=_witness_llama_count,
    derived_from='Θ of models built by `build_llama` (every bias and tying option, depths 1–3) and `spec.counting`',
    families=('llama',),
)
def llama_parameter_count_formula() -> None:
    """For every option combination and depth 1–3, Σ_Θ Π shape (symbolic in the dims) minus the formula expands to 0, as does symbolic_count; count() agrees at the config; the formula at the presets' dims gives the published totals."""
    for qb, ob, mb, tied in itertools.product((False, True), repeat=4):
        for n_layers in (1, 2, 3):
            config = LlamaConfig(n_vocab=7, n_ctx=8, d_model=8, n_layers=n_layers, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=6,
                                 qkv_bias=qb, out_bias=ob, mlp_bias=mb, tied=tied, attention=("sliding", "full"), sliding_window=2)
            arch = build_llama(config)
            where = f"qkv={qb}, out={ob}, mlp={mb}, tied={tied}, n_layers={n_layers}"
            by_theta = sympy.Add(*(size(shape) for shape in arch.theta.values()))
            formula = llama_formula(qb, ob, mb, tied)
            require_zero(by_theta.subs(L, n_layers) - formula.subs(L, n_layers), f"Σ_Θ Π shape = formula ({where})")
            require_zero(symbolic_count(arch) - formula, f"symbolic_count = formula in n_layers ({where})")
            require(count(arch) == int(formula.subs(config.dims())), f"count = formula at the config ({where})")
    for name, figure in PUBLISHED.items():
        c = PRESETS[name].config
        if not isinstance(c, LlamaConfig):
            raise ProofFailed(f"{name} is not a Llama-family preset")
        require(llama_formula(c.qkv_bias, c.out_bias, c.mlp_bias, c.tied).subs(c.dims()) == figure, f"{name}: the formula gives {figure:,}")
