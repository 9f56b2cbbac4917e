"""Multi-head attention: heads then W_O as a sum over heads; the QK and OV circuits;
permutation equivariance without positions, and its failure under a causal mask."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy
from hypothesis import strategies as st

import reference
from proofs.algebra import evaluate_graph, replace_entries, require_sums_equal, resolve_piecewise, symbols_array
from proofs.core import Kind, ProofFailed, Scope, for_all, require, require_zero, theorem
from proofs.theorems._common import attention_only, close, index, j, s, seeds, t
from spec import dims as D
from spec.dims import concrete_shape
from spec.graph import Composite
from spec.masks import Causal, Full
from spec.ops import Affine, AttentionScores, ConcatHeads, WeightedSum
from spec.theta import random_theta

d, dh, S, T = D.d_model, D.d_head, D.S, D.T
MAX_HEADS = 6


@dataclass(frozen=True)
class AttentionCase:
    """A random multi-head attention (built by spec.blocks, as in GPT) and a random input."""

    n_heads: int
    d_head: int
    extra_width: int
    bias: bool
    scale: float
    T: int
    seed: int


attention_cases = st.builds(
    AttentionCase, st.integers(1, 4), st.integers(1, 4), st.integers(0, 2), st.booleans(),
    st.sampled_from([1.0, 0.5, 2.0]), st.integers(1, 12), seeds,
)


def _evaluate(case: AttentionCase) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Every value of the attention on its input, θ, and the input x."""
    arch = attention_only(case.n_heads, case.d_head, case.n_heads * case.d_head + case.extra_width, Causal(), case.bias, case.scale)
    theta = random_theta(arch, case.seed, std=0.7)
    x = np.random.default_rng(case.seed).normal(size=(case.T, arch.dim("d_model")))
    return reference.evaluate(arch, theta, {"x": x}), theta, x


# -- c. heads, concatenated and projected ------------------------------------------------


def _slice_of(W: sympy.IndexedBase, h: int) -> Callable[[tuple[sympy.Expr, ...]], sympy.Expr]:
    """Entry (k, j) of the view W[h]."""

    def entry(idx: tuple[sympy.Expr, ...]) -> sympy.Expr:
        return W[h, idx[0], idx[1]]

    return entry


def _w_o_view_law(H: int, width: int, d_model: int) -> bool:
    """In a built attention, the W_O node's view (its ParamRef, through ParamRef.resolve — what
    reference/ and fast/ apply) puts Θ entry W_O[h, k, j] at row h·d_head + k, column j."""
    arch = attention_only(H, width, d_model, Causal(), bias=False)
    mha = arch.nodes["attn"].op
    if not isinstance(mha, Composite):
        raise ProofFailed("attn is not a composite")
    ref = mha.body.nodes["W_O"].params["W"]
    shape = tuple(int(n) for n in concrete_shape(arch.theta[ref.name], arch.dims))
    where = np.empty(shape, dtype=object)
    for idx in itertools.product(*(range(n) for n in shape)):
        where[idx] = idx
    view = ref.resolve(where, arch.dims)
    require(shape == (H, width, d_model) and view.shape == (H * width, d_model), f"W_O is ({H}, {width}, {d_model}) viewed as ({H * width}, {d_model})")
    return all(view[h * width + kk, jj] == (h, kk, jj) for h in range(H) for kk in range(width) for jj in range(d_model))


def _witness_heads(examples: int) -> None:
    def check(case: AttentionCase) -> None:
        values, theta, _ = _evaluate(case)
        W_O = theta["attn.W_O"]
        want = sum(values[f"attn.head_{h}.z"] @ W_O[h] for h in range(case.n_heads))
        if case.bias:
            want = want + theta["attn.b_O"]
        close(values["attn.W_O"], want, "Concat(z) W_O vs Σ_h z_h W_O[h]", 1e-12)

    for_all(attention_cases, examples, check)


@theorem(
    name="heads_concat_then_project",
    title="concatenating heads then applying W_O is the sum over heads of head_h · W_O^h",
    statement="The attention output Concat(z_0, …, z_{H−1}) W_O equals Σ_h z_h W_O^h, where W_O^h = W_O[h] is rows "
    "h·d_head … (h+1)·d_head − 1 of W_O read as one (n_heads·d_head) × d_model matrix: each head writes into the residual "
    "stream through its own slice.",
    latex=r"\operatorname{Concat}(z_0, \dots, z_{H-1})\, W_O = \sum_{h=0}^{H-1} z_h\, W_O^{h},"
    r"\qquad (W_O^{h})_{kj} = (W_O)_{h d_\mathrm{head} + k,\ j}",
    hypotheses=("W_O is the Θ entry of shape (n_heads, d_head, d_model) read row-major as (n_heads·d_head, d_model), "
                "as spec.graph.ParamRef reshapes it; the bias b_O, if any, is added once after the sum",),
    scope=Scope(Kind.MIXED, f"symbolic in T, d_head, d_model and every entry; exhaustive in n_heads ≤ {MAX_HEADS}; the "
                f"layout of the W_O view: ParamRef.resolve on built attentions, n_heads ≤ {MAX_HEADS}, d_head ≤ 3, d_model ≤ 2"),
    witness=_witness_heads,
    derived_from='the definitions of `Affine` and `ConcatHeads`; the W_O view is the `ParamRef` that spec.blocks binds in a built attention, read through `ParamRef.resolve` (the code the interpreters run)',
    ops=('concat_heads', 'affine'),
)
def heads_concat_then_project() -> None:
    """The W_O view is read off the interpreters' own code: in built attentions (every n_heads ≤ 6, d_head ≤ 3, d_model ≤ 2) the W_O node's ParamRef, resolved by ParamRef.resolve on an array of its entries' indices, puts Θ entry (h, k, j) at row h·d_head + k — the row-major law the symbolic part uses. Then the projection's sum over the concatenated width is split into the head blocks [h d_head, (h+1) d_head); inside block h the concatenation's Piecewise picks head h (decided with d_head = k + 1 + r); the result is compared with Σ_h z_h W_O[h] in the sum normal form."""
    for H in range(1, MAX_HEADS + 1):
        for width in range(1, 4):
            for d_model in range(1, 3):
                law = _w_o_view_law(H, width, d_model)
                require(law, f"n_heads={H}, d_head={width}, d_model={d_model}: ParamRef.resolve reads W_O[h, k, j] at row h·d_head + k")
    k = index("k")
    W3 = sympy.IndexedBase("W_O", shape=(D.n_heads, dh, d))  # the Θ entry
    for H in range(1, MAX_HEADS + 1):
        z = {f"z_{h}": sympy.IndexedBase(f"z{h}", shape=(T, dh)) for h in range(H)}
        C = sympy.IndexedBase("C", shape=(T, H * dh))
        Wf = sympy.IndexedBase("W", shape=(H * dh, d))  # W_O as one matrix
        y = Affine(H * dh, d, bias=False).definition((t, j), {"x": C}, {"W": Wf})
        require(isinstance(y, sympy.Sum) and len(y.limits) == 1, "the projection is one sum over the concatenated width")
        i, lo, hi = y.limits[0]
        require(lo == 0 and sympy.expand(hi - (H * dh - 1)) == 0, "it runs over 0 … H·d_head − 1")
        # [0, H·d_head) is the disjoint union of the head blocks [h·d_head, (h+1)·d_head).
        pieces = []
        for h in range(H):
            piece = sympy.Sum(y.function.xreplace({i: h * dh + k}), (k, 0, dh - 1))
            piece = replace_entries(piece, C, lambda idx: ConcatHeads(H, dh).definition(idx, z, {}))
            piece = resolve_piecewise(piece, k, dh)

            def row_major(idx: tuple[sympy.Expr, ...], h: int = h) -> sympy.Expr:
                row = sympy.expand(idx[0] - h * dh)
                require(row == k, f"row {idx[0]} of the reshaped W_O lies in head {h}'s block")
                return W3[h, row, idx[1]]

            pieces.append(replace_entries(piece, Wf, row_major))
        Wh = sympy.IndexedBase("Wh", shape=(dh, d))  # head h's slice W_O[h]
        per_head = sympy.Integer(0)
        for h in range(H):
            own = Affine(dh, d, bias=False).definition((t, j), {"x": z[f"z_{h}"]}, {"W": Wh})
            per_head += replace_entries(own, Wh, _slice_of(W3, h))
        require_sums_equal(sympy.Add(*pieces), per_head, f"n_heads = {H}: Concat(z) W_O − Σ_h z_h W_O[h]")


# -- c. the QK circuit ---------------------------------------------------------------------


def _witness_qk(examples: int) -> None:
    def check(case: AttentionCase) -> None:
        values, theta, x = _evaluate(case)
        for h in range(case.n_heads):
            Wq, Wk = theta["attn.W_Q"][h], theta["attn.W_K"][h]
            want = x @ (Wq @ Wk.T) @ x.T  # the bilinear form x_t W_Q W_Kᵀ x_sᵀ
            if case.bias:
                bq, bk = theta["attn.b_Q"][h], theta["attn.b_K"][h]
                want = want + (x @ Wq @ bk)[:, None] + (x @ Wk @ bq)[None, :] + bq @ bk
            close(values[f"attn.head_{h}.scores"], case.scale * want, f"head {h}: scores vs the QK circuit", 1e-11)

    for_all(attention_cases, examples, check)


@theorem(
    name="qk_circuit",
    title="the attention score is the bilinear form x_t W_Q^h (W_K^h)ᵀ x_sᵀ (QK circuit)",
    statement="Head h's score of query t for key s is scale · x_t W_Q^h (W_K^h)ᵀ x_sᵀ: one bilinear form with the "
    "d_model × d_model matrix W_Q^h (W_K^h)ᵀ of rank ≤ d_head. With biases three more terms appear: "
    "x_t W_Q b_Kᵀ + b_Q W_Kᵀ x_sᵀ + b_Q b_Kᵀ.",
    latex=r"A^{\mathrm{pre}}_{ts} = \mathrm{scale}\, \big(x_t W_Q^{h} + b_Q^h\big)\big(x_s W_K^{h} + b_K^h\big)^{\!\top}"
    r" = \mathrm{scale}\, \Big(x_t\, W_Q^{h} (W_K^{h})^{\top} x_s^{\top} + x_t W_Q^h (b_K^h)^\top + b_Q^h (W_K^h)^\top x_s^\top + b_Q^h (b_K^h)^\top\Big)",
    hypotheses=("x is the head's input (the layer-normed residual stream); rows are positions, maps multiply on the right",
                "without biases (b_Q = b_K = 0) only the bilinear term remains"),
    scope=Scope(Kind.SYMBOLIC, "every T, S, d_model, d_head, scale and every entry; with and without biases"),
    witness=_witness_qk,
    derived_from='the definitions of `Affine` and `AttentionScores`',
    ops=('affine', 'attention_scores'),
)
def qk_circuit() -> None:
    """The Q and K entries of the scores' definition are replaced by the affine maps' definitions; the result and the bilinear form (plus bias terms) are compared in the sum normal form."""
    x = sympy.IndexedBase("x", shape=(T, d))
    Wq, Wk = sympy.IndexedBase("W_Q", shape=(d, dh)), sympy.IndexedBase("W_K", shape=(d, dh))
    bq, bk = sympy.IndexedBase("b_Q", shape=(dh,)), sympy.IndexedBase("b_K", shape=(dh,))
    Q, K = sympy.IndexedBase("Q", shape=(T, dh)), sympy.IndexedBase("K", shape=(S, dh))
    scale = sympy.Symbol("scale", positive=True)
    a, b, k = index("a"), index("b"), index("k")
    for bias in (False, True):
        scores = AttentionScores(dh, scale).definition((t, s), {"Q": Q, "K": K}, {})
        scores = replace_entries(scores, Q, lambda i: Affine(d, dh, bias).definition(i, {"x": x}, {"W": Wq, "b": bq}))
        scores = replace_entries(scores, K, lambda i: Affine(d, dh, bias).definition(i, {"x": x}, {"W": Wk, "b": bk}))
        circuit = sympy.Sum(Wq[a, k] * Wk[b, k], (k, 0, dh - 1))  # (W_Q W_Kᵀ)_ab
        form = sympy.Sum(x[t, a] * circuit * x[s, b], (a, 0, d - 1), (b, 0, d - 1))
        if bias:
            form += sympy.Sum(x[t, a] * Wq[a, k] * bk[k], (a, 0, d - 1), (k, 0, dh - 1))
            form += sympy.Sum(bq[k] * Wk[b, k] * x[s, b], (b, 0, d - 1), (k, 0, dh - 1))
            form += sympy.Sum(bq[k] * bk[k], (k, 0, dh - 1))
        require_sums_equal(scores, scale * form, f"bias={bias}: scores − scale · (bilinear form{' + bias terms' if bias else ''})")


# -- c. the OV circuit ---------------------------------------------------------------------


def _witness_ov(examples: int) -> None:
    def check(case: AttentionCase) -> None:
        values, theta, x = _evaluate(case)
        for h in range(case.n_heads):
            A = values[f"attn.head_{h}.softmax"]
            Wv, Wo = theta["attn.W_V"][h], theta["attn.W_O"][h]
            want = A @ x @ (Wv @ Wo)  # the OV circuit W_V W_O
            if case.bias:
                want = want + A.sum(axis=1, keepdims=True) * (theta["attn.b_V"][h] @ Wo)
            close(values[f"attn.head_{h}.z"] @ Wo, want, f"head {h}: z_h W_O^h vs A x W_V W_O", 1e-11)

    for_all(attention_cases, examples, check)


@theorem(
    name="ov_circuit",
    title="the value path of a head is the matrix W_V^h W_O^h (OV circuit)",
    statement="Head h adds A^h x W_V^h W_O^h to the residual stream: what it moves from key s to query t is x_s mapped by the "
    "one d_model × d_model matrix W_V^h W_O^h (rank ≤ d_head), weighted by A^h_ts. A value bias adds (Σ_s A_ts) b_V W_O^h, "
    "which is b_V W_O^h for every row with an allowed key (its weights sum to 1) and 0 for an empty row.",
    latex=r"z_h W_O^{h} = A^{h} \big(x W_V^{h} + \mathbf{1} b_V^{h}\big) W_O^{h} "
    r"= A^{h}\, x\, \big(W_V^{h} W_O^{h}\big) + \Big(\textstyle\sum_s A^h_{ts}\Big)\, b_V^{h} W_O^{h}",
    hypotheses=("z_h = A^h V^h is head h's output, A^h its attention weights; W_O^h as in heads_concat_then_project",),
    scope=Scope(Kind.SYMBOLIC, "every T, S, d_model, d_head, every entry; with and without the value bias"),
    witness=_witness_ov,
    derived_from='the definitions of `Affine` and `WeightedSum`',
    ops=('affine', 'weighted_sum'),
)
def ov_circuit() -> None:
    """The W_O projection of the weighted sum of the affine V is expanded from the three definitions and compared with A x (W_V W_O) (plus (Σ_s A_ts) b_V W_O) in the sum normal form."""
    x = sympy.IndexedBase("x", shape=(S, d))
    A = sympy.IndexedBase("A", shape=(T, S))
    Wv, bv = sympy.IndexedBase("W_V", shape=(d, dh)), sympy.IndexedBase("b_V", shape=(dh,))
    Wo = sympy.IndexedBase("W_O", shape=(dh, d))
    V, Z = sympy.IndexedBase("V", shape=(S, dh)), sympy.IndexedBase("Z", shape=(T, dh))
    a, k, u = index("a"), index("k"), index("u")
    for bias in (False, True):
        out = Affine(dh, d, bias=False).definition((t, j), {"x": Z}, {"W": Wo})
        out = replace_entries(out, Z, lambda i: WeightedSum(dh).definition(i, {"A": A, "V": V}, {}))
        out = replace_entries(out, V, lambda i: Affine(d, dh, bias).definition(i, {"x": x}, {"W": Wv, "b": bv}))
        circuit = sympy.Sum(A[t, u] * x[u, a] * sympy.Sum(Wv[a, k] * Wo[k, j], (k, 0, dh - 1)), (u, 0, S - 1), (a, 0, d - 1))
        if bias:
            circuit += sympy.Sum(A[t, u], (u, 0, S - 1)) * sympy.Sum(bv[k] * Wo[k, j], (k, 0, dh - 1))
        require_sums_equal(out, circuit, f"bias={bias}: z W_O − A x W_V W_O{' − (Σ_s A) b_V W_O' if bias else ''}")


# -- f. permutation equivariance -----------------------------------------------------------

PERMUTATION_T = 3


def _symbolic_attention(mask: Full | Causal, T_: int) -> tuple[dict[str, np.ndarray], sympy.Matrix, object]:
    arch = attention_only(2, 1, 2, mask, bias=True)
    theta = {name: symbols_array(name.replace(".", "_"), shape) for name, shape in arch.theta_shapes().items()}
    x = sympy.Matrix(T_, 2, lambda r, c: sympy.Symbol(f"x_{r}_{c}", real=True))
    return theta, x, arch


def _witness_permutation(examples: int) -> None:
    def check(case: tuple[int, int, int, int, int, bool]) -> None:
        T_, H, dh_, seed, perm_seed, bias = case
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(T_, H * dh_))
        P = np.random.default_rng(perm_seed).permutation(T_)
        full = attention_only(H, dh_, H * dh_, Full(), bias)
        theta = random_theta(full, seed, std=0.7)
        y = reference.evaluate(full, theta, {"x": x})["y"]
        close(reference.evaluate(full, theta, {"x": x[P]})["y"], y[P], "full attention: f(Px) vs P f(x)", 1e-12)

    cases = st.tuples(st.integers(1, 10), st.integers(1, 3), st.integers(1, 3), seeds, seeds, st.booleans())
    for_all(cases, examples, check)


@theorem(
    name="permutation_equivariance",
    title="unmasked attention without positions is permutation-equivariant; causal attention is not",
    statement="Multi-head attention with the full mask and no positional information commutes with every permutation of "
    "the positions: f(Px) = P f(x). With a causal mask it does not: for T = 2, W_Q = W_K = 0, W_V = W_O = 1 (one head "
    "of width 1, no biases) and x = (1, 0), f(x) = (1, 1/2) but f(Px) = (0, 1/2) ≠ P f(x) = (1/2, 1).",
    latex=r"f_{\mathrm{full}}(P x) = P\, f_{\mathrm{full}}(x)\ \ \forall P \in S_T;\qquad "
    r"\exists\, x, \theta:\ f_{\mathrm{causal}}(P x) \neq P\, f_{\mathrm{causal}}(x)",
    hypotheses=("P permutes the rows (positions); the attention is the multi_head_attention composite of spec.blocks on "
                "real rows x, with nothing that reads a position index",
                "row-wise ops (layer norm, MLP, residual adds) commute with P by definition, so the same holds for a "
                "whole block without positional encoding"),
    scope=Scope(Kind.EXHAUSTIVE, f"T ≤ {PERMUTATION_T}, every permutation, 2 heads of width 1 with symbolic weights, "
                "biases and inputs; the counterexample is exact"),
    witness=_witness_permutation,
    derived_from="the `multi_head_attention` composite as spec.blocks builds it, evaluated from its ops' definitions with parameter views by `ParamRef.resolve` (proofs.algebra.evaluate_graph)",
    ops=('attention_scores', 'masked_softmax', 'weighted_sum'),
)
def permutation_equivariance() -> None:
    """The multi-head attention composite is evaluated from its ops' definitions on symbolic inputs and weights, for the inputs and for every row permutation of them; the outputs agree up to the same permutation. The causal counterexample is evaluated exactly."""
    for T_ in range(1, PERMUTATION_T + 1):
        theta, x, arch = _symbolic_attention(Full(), T_)
        sizes = {**arch.dims, D.T: T_}  # type: ignore[attr-defined]
        y = evaluate_graph(arch, theta, {"x": x}, sizes)["y"]  # type: ignore[arg-type]
        for perm in itertools.permutations(range(T_)):
            permuted = evaluate_graph(arch, theta, {"x": x.extract(list(perm), [0, 1])}, sizes)["y"]  # type: ignore[arg-type]
            require_zero(permuted - y.extract(list(perm), [0, 1]), f"T={T_}, P={perm}: f(Px) − P f(x)")
    arch = attention_only(1, 1, 1, Causal(), bias=False)
    one, zero = np.array([[[sympy.Integer(1)]]], dtype=object), np.array([[[sympy.Integer(0)]]], dtype=object)
    theta = {"attn.W_Q": zero, "attn.W_K": zero, "attn.W_V": one, "attn.W_O": one}
    sizes = {**arch.dims, D.T: 2}

    def f(m: sympy.Matrix) -> sympy.Matrix:
        return evaluate_graph(arch, theta, {"x": m}, sizes)["y"]

    x = sympy.Matrix([[1], [0]])
    require(f(x) == sympy.Matrix([[1], [sympy.Rational(1, 2)]]), "causal: f(x) = (1, 1/2)")
    require(f(x[::-1, :]) == sympy.Matrix([[0], [sympy.Rational(1, 2)]]), "causal: f(Px) = (0, 1/2)")
    require(f(x[::-1, :]) != f(x)[::-1, :], "causal: f(Px) ≠ P f(x) = (1/2, 1)")
