"""What several theorems share: index symbols, a symbolic mask, strategies for witnesses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sympy
from hypothesis import strategies as st

from proofs.core import witness_check
from spec import dims as D
from spec.architectures.gpt import GPTConfig
from spec.architectures.registry import families, family
from spec.blocks import Attention, multi_head_attention
from spec.config import Config
from spec.graph import Architecture, graph_input
from spec.masks import Banded, Causal, Full, Intersection, KeyPadding, Relation
from spec.types import rows

t = sympy.Symbol("t", integer=True, nonnegative=True)
s = sympy.Symbol("s", integer=True, nonnegative=True)
j = sympy.Symbol("j", integer=True, nonnegative=True)


def index(name: str) -> sympy.Dummy:
    """A fresh summation index."""
    return sympy.Dummy(name, integer=True, nonnegative=True)


@dataclass(frozen=True)
class IndicatorMask(Relation):
    """Any mask at all: A_t = {s : m_ts = 1} for a symbolic 0/1 matrix m. Proofs that hold for
    this mask hold for every mask family (and every allowed set nobody has named)."""

    def allowed(self, t: int, s: int) -> bool:
        from proofs.core import ProofFailed

        raise ProofFailed("IndicatorMask is symbolic: it has no concrete allowed set")

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return M[t, s]

    def latex(self) -> str:
        return "m_{ts} = 1"


M = sympy.IndexedBase("m")
"""The 0/1 indicator of :class:`IndicatorMask`."""


def first_branch(expr: sympy.Expr) -> sympy.Expr:
    """The value of a ``Piecewise`` definition where its first condition holds."""
    expr = sympy.sympify(expr)
    if not isinstance(expr, sympy.Piecewise):
        return expr
    return sympy.sympify(expr.args[0][0])


Array = npt.NDArray[np.float64]


def masks(S: int) -> st.SearchStrategy[Relation]:
    """Every mask family of spec.masks, for S keys (key padding may allow no key at all)."""
    valid = st.lists(st.booleans(), min_size=S, max_size=S).map(tuple)
    return st.one_of(
        st.just(Causal()), st.integers(1, 5).map(Banded), st.just(Full()), valid.map(KeyPadding),
        valid.map(lambda v: Intersection((Causal(), KeyPadding(v)))),
    )


def arrays(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> Array:
    return rng.normal(0.0, scale, size=shape)


def close(got: Array, want: Array, what: str, rel: float = 1e-12) -> None:
    """Within ``rel`` of the larger magnitude (float64 rounding, not a modelling error)."""
    scale = max(float(np.max(np.abs(want), initial=0.0)), float(np.max(np.abs(got), initial=0.0)), 1e-300)
    error = float(np.max(np.abs(np.asarray(got) - np.asarray(want)), initial=0.0))
    witness_check(error <= rel * scale, f"{what}: max |difference| {error:.3g} > {rel:g} × {scale:.3g}")


seeds = st.integers(0, 2**32 - 1)


def gpt_configs(*, max_layers: int = 2, banded: bool | None = None) -> st.SearchStrategy[GPTConfig]:
    """Small GPT configs across the builder's options: the GPT family record's strategy, with a
    vocabulary of at most 12 (witnesses stay small)."""
    drawn: st.SearchStrategy[GPTConfig] = family("gpt").configs(max_layers=max_layers, max_vocab=12, banded=banded)
    return drawn


def decoder_configs(theorem: str, *, max_layers: int = 2) -> st.SearchStrategy[Config]:
    """Small configs of every family whose record puts it in ``theorem``'s scope."""
    return st.one_of(*(f.configs(max_layers=max_layers) for f in families(theorem=theorem)))


def attention_only(n_heads: int, d_head: int, d_model: int, mask: Relation, bias: bool, scale: float | None = None) -> Architecture:
    """An architecture that is one multi-head attention on real rows x (T, d_model), built by
    spec.blocks as GPT builds it: no embedding, so no positional information."""
    dims = {D.d_model: d_model, D.n_heads: n_heads, D.d_head: d_head}
    arch = Architecture("attention", {"x": rows(D.T, D.d_model)}, dims)
    attention = Attention(D.n_heads, D.d_head, mask, 1 / sympy.sqrt(d_head) if scale is None else sympy.nsimplify(scale), bias=bias)
    mha = multi_head_attention(arch.declare, "attn", dims, attention, d_in=D.d_model, d_out=D.d_model)
    arch.output("y", arch.add("attn", mha, {"x_q": graph_input("x"), "x_kv": graph_input("x")}))
    return arch.validate()
