"""Embedding and unembedding: the one-hot product is a row gather; tying makes W_U = W_Eᵀ."""

from __future__ import annotations

import numpy as np
import sympy
from hypothesis import strategies as st

import reference
from proofs.algebra import op_matrix, replace_entries, require_sums_equal, symbols_array
from proofs.core import Kind, ProofFailed, Scope, for_all, require, require_zero, theorem, witness_check
from proofs.theorems._common import close, gpt_configs, index, j, seeds, t
from spec import dims as D
from spec.architectures.gpt import GPTConfig, build_gpt
from spec.dims import concrete_shape
from spec.graph import Architecture, ParamRef
from spec.op import Primitive
from spec.ops import Affine, OneHot, TokenEmbedding
from spec.theta import random_theta

d, n_vocab, T = D.d_model, D.n_vocab, D.T


def _witness_gather(examples: int) -> None:
    def check(case: tuple[int, int, int, int]) -> None:
        V, width, T_, seed = case
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, V, size=T_)
        W_E = rng.normal(size=(V, width))
        X = reference.run_op(OneHot(V, T_), {"ids": ids})
        E = reference.run_op(TokenEmbedding(V, width, T_), {"X": X}, {"W_E": W_E})
        witness_check(np.array_equal(E, W_E[ids]), "one-hot(ids) W_E differs from W_E[ids] (they must agree exactly)")

    for_all(st.tuples(st.integers(1, 300), st.integers(1, 16), st.integers(0, 20), seeds), examples, check)


@theorem(
    name="one_hot_embedding_is_gather",
    title="the one-hot matrix times W_E gathers rows of W_E",
    statement="Row t of X W_E, with X the one-hot matrix of the ids, is row ids_t of W_E, for every id in the vocabulary; "
    "so an implementation may gather rows instead of multiplying (fast/ does). In floating point the two agree exactly: "
    "each entry is one product by 1 plus products by 0.",
    latex=r"(X W_E)_{tj} = \sum_{v=0}^{n_\mathrm{vocab}-1} [\mathrm{ids}_t = v]\,(W_E)_{vj} = (W_E)_{\mathrm{ids}_t,\, j}"
    r"\qquad (0 \le \mathrm{ids}_t < n_\mathrm{vocab})",
    hypotheses=("every id lies in [0, n_vocab) (the spec refuses any other id)",),
    scope=Scope(Kind.SYMBOLIC, "every T, n_vocab, d_model, every id and every entry of W_E"),
    witness=_witness_gather,
    derived_from='the definitions of `OneHot` and `TokenEmbedding`',
    ops=('one_hot', 'token_embedding'),
)
def one_hot_embedding_is_gather() -> None:
    """The one-hot definition [ids_t = v] is substituted into the embedding's Σ_v X_tv W_vj; sympy sums the Kronecker delta to the case 0 ≤ ids_t ≤ n_vocab − 1 ↦ W[ids_t, j]."""
    ids = sympy.IndexedBase("ids", shape=(T,))
    X = sympy.IndexedBase("X", shape=(T, n_vocab))
    W_E = sympy.IndexedBase("W_E", shape=(n_vocab, d))
    E = TokenEmbedding(n_vocab, d).definition((t, j), {"X": X}, {"W_E": W_E})
    E = replace_entries(E, X, lambda i: OneHot(n_vocab).definition(i, {"ids": ids}, {})).doit()
    in_vocabulary = sympy.And(sympy.Ge(ids[t], 0), sympy.Le(ids[t], n_vocab - 1))  # ids are integers
    require(isinstance(E, sympy.Piecewise), "the sum over the vocabulary has a case for ids inside it")
    (value, condition), (otherwise, _) = E.args
    require(value == W_E[ids[t], j], "inside the vocabulary: (X W_E)_tj = W_E[ids_t, j]")
    require(sympy.simplify(sympy.Equivalent(condition, in_vocabulary)) is sympy.true, "the case is exactly 0 ≤ ids_t < n_vocab")
    require(otherwise == 0, "outside it the sum is empty (0) — ids the spec refuses")


def _witness_tied(examples: int) -> None:
    def check(case: tuple[GPTConfig, int]) -> None:
        config, seed = case
        arch = build_gpt(config.replace(tied=True))
        theta = random_theta(arch, seed, std=0.5)
        ids = np.random.default_rng(seed).integers(0, config.n_vocab, size=1 + seed % config.n_ctx)
        values = reference.evaluate(arch, theta, {"ids": ids})
        close(values["logits"], values["ln_f"] @ theta["W_E"].T, "tied logits vs h W_Eᵀ", 1e-13)
        witness_check("W_U" not in arch.theta, "a tied architecture declares no W_U")

    for_all(st.tuples(gpt_configs(max_layers=1), seeds), examples, check)


def _check_view(arch: Architecture) -> None:
    """The unembedding of a built tied GPT through the interpreters' own code: its ParamRef,
    resolved by ParamRef.resolve on a symbolic W_E, is the transpose (entry (j, v) is W_E[v, j]),
    and its op's definition on that view gives logits_tv = Σ_j h_tj W_E[v, j] at T = 2."""
    node = arch.nodes["unembed"]
    ref = node.params["W"]
    W_E = symbols_array("W_E", [int(n) for n in concrete_shape(arch.theta[ref.name], arch.dims)])
    view = ref.resolve(W_E, arch.dims)
    V, width = W_E.shape
    require(view.shape == (width, V) and all(view[jj, v] == W_E[v, jj] for jj in range(width) for v in range(V)),
            "ParamRef.resolve gives W_Eᵀ: entry (j, v) is W_E[v, j]")
    op = node.op
    if not isinstance(op, Primitive):
        raise ProofFailed("unembed is not a primitive")
    h = sympy.Matrix(2, width, lambda r, c: sympy.Symbol(f"h_{r}_{c}", real=True))
    params = {name: (view if name == "W" else symbols_array(name, [int(n) for n in concrete_shape(shape, arch.dims)]))
              for name, shape in op.params().items()}
    bias = params.get("b")
    logits = op_matrix(op.bind({**arch.dims, D.T: 2}), {"x": h}, params)
    for r in range(2):
        for v in range(V):
            want = sum(h[r, jj] * W_E[v, jj] for jj in range(width)) + (0 if bias is None else bias[v])
            require_zero(logits[r, v] - want, f"logits[{r}, {v}] − ⟨h_{r}, W_E[{v}]⟩ through the view")


@theorem(
    name="tied_unembedding",
    title="the tied unembedding is W_Eᵀ: a token's logit is the dot product with its own embedding",
    statement="With tied embeddings the unembedding binds the view W_Eᵀ of the one Θ entry W_E (Θ has no W_U, so the "
    "count holds W_E once), and the logit of token v at position t is the dot product of the final hidden state h_t "
    "with row v of W_E.",
    latex=r"W_U = W_E^{\top}:\qquad \mathrm{logits}_{tv} = \sum_j h_{tj}\,(W_E^\top)_{jv} = \langle h_t,\ (W_E)_{v\cdot} \rangle",
    hypotheses=("GPTConfig(tied=True), GPT-2's default; h is the output of the final layer norm",),
    scope=Scope(Kind.SYMBOLIC, "every d_model, n_vocab and entry; the binding is checked on built architectures of "
                "every option combination (bias, positional encoding, attention pattern)"),
    witness=_witness_tied,
    derived_from="GPTs built by `build_gpt` with tied embeddings: the unembedding node's `ParamRef`, read through `ParamRef.resolve`, and its op's `Affine` definition",
    ops=('token_embedding', 'affine'),
    families=('gpt',),
)
def tied_unembedding() -> None:
    """Built tied architectures bind the unembedding to the view W_Eᵀ of the one Θ entry; ParamRef.resolve (the interpreters' code) applied to a symbolic W_E gives exactly its transpose, and the unembedding op's definition on that resolved view gives ⟨h_t, W_E[v]⟩ (plus the bias) at the built sizes; symbolically in d_model and n_vocab, the affine definition through the transpose is Σ_j h_tj W_E[v, j]."""
    for bias in (False, True):
        for positional in ("learned", "sinusoidal"):
            for attention in (("dense",), ("dense", "banded")):
                arch = build_gpt(GPTConfig(n_vocab=5, n_ctx=4, d_model=2, n_layers=1, n_heads=1, bias=bias,
                                           positional=positional, attention=attention,
                                           band_width=2 if "banded" in attention else None))
                ref = arch.nodes["unembed"].params["W"]
                require(ref == ParamRef("W_E", transpose=True), f"unembed binds W_Eᵀ (bias={bias}, {positional}, {attention})")
                require(ref.view_shape(arch.theta["W_E"]) == (d, n_vocab), "the view W_Eᵀ has shape (d_model, n_vocab)")
                require("W_U" not in arch.theta, "Θ has no separate W_U")
                _check_view(arch)
    h = sympy.IndexedBase("h", shape=(T, d))
    W_E = sympy.IndexedBase("W_E", shape=(n_vocab, d))
    W_U = sympy.IndexedBase("W_U", shape=(d, n_vocab))
    v = sympy.Symbol("v", integer=True, nonnegative=True)
    logits = Affine(d, n_vocab, bias=False).definition((t, v), {"x": h}, {"W": W_U})
    logits = replace_entries(logits, W_U, lambda i: W_E[i[1], i[0]])  # the transpose view, as _check_view found it
    k = index("k")
    require_sums_equal(logits, sympy.Sum(h[t, k] * W_E[v, k], (k, 0, d - 1)), "logits_tv − ⟨h_t, W_E[v]⟩")
