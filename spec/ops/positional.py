"""Positional encodings: learned (GPT-2) and sinusoidal (Vaswani et al. §3.5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import sympy

from spec import dims as D
from spec.dims import Shape
from spec.errors import ConfigError
from spec.masks import NoDependence, Relation
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, widths
from spec.types import TensorType, rows, token_ids

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

SINUSOIDAL_LAYOUTS = ("interleaved", "concatenated")
"""The column layouts of the sinusoidal encoding, by name (SinusoidalPositional.layout)."""


@register
@dataclass(frozen=True)
class LearnedPositional(Primitive):
    """P = the first T rows of the learned table W_P ∈ ℝ^{n_ctx×d}. Reads only the length of
    its input, never a token's value. A sequence longer than n_ctx is not defined."""

    kind: ClassVar[str] = "learned_positional"
    notation: ClassVar[str] = r"⟨W_P⟩\left[0{:}T\right]"
    title: ClassVar[str] = "learned positional embedding"
    latex: ClassVar[str] = r"P_{tj} = (W_P)_{tj} \quad (t < T \le n_\mathrm{ctx})"
    citation: ClassVar[str] = "GPT-2 (Radford et al. 2019): learned positions, Hugging Face `wpe.weight` (n_ctx, d_model)."

    n_ctx: sympy.Expr
    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, st.integers(6, 8), widths(6, D.d_model))  # n_ctx ≥ every drawn T

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(n + 1, 2, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"ids": token_ids(self.rows)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, Shape]:
        return {"W_P": (sympy.sympify(self.n_ctx), sympy.sympify(self.d))}

    def dependency(self) -> dict[str, Relation]:
        return {"ids": NoDependence()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        return params["W_P"][t, j]


@register
@dataclass(frozen=True)
class SinusoidalPositional(Primitive):
    """The fixed encoding of Vaswani et al., in one of two named column layouts:

    * ``interleaved`` (the paper's): P[t, 2i] = sin(t / base^{2i/d}), P[t, 2i+1] = cos(t / base^{2i/d});
      for odd d the last column is a sine;
    * ``concatenated`` (Hugging Face Marian): the sines first, then the cosines of the same
      frequencies, P[t, i] = sin(t / base^{2i/d}) for i < ⌈d/2⌉ and P[t, ⌈d/2⌉ + i] = cos(t / base^{2i/d})
      for i < ⌊d/2⌋ — the interleaved table with its columns permuted (docs/conventions.md).
      fairseq also concatenates, but with other frequencies (base^{−i/(d/2 − 1)}) and positions
      offset by its padding index: not this layout."""

    kind: ClassVar[str] = "sinusoidal_positional"
    notation: ClassVar[str] = r"\operatorname{PE}_{\sin}\left(⟨ids⟩\right)"
    title: ClassVar[str] = "sinusoidal positional encoding"
    latex: ClassVar[str] = (
        r"P_{t,2i} = \sin\!\big(t / \mathrm{base}^{2i/d}\big),\quad "
        r"P_{t,2i+1} = \cos\!\big(t / \mathrm{base}^{2i/d}\big) \quad \text{(interleaved; concatenated: } "
        r"P_{t,i} = \sin(\cdot),\ P_{t,\lceil d/2 \rceil + i} = \cos(\cdot)\text{)}"
    )
    citation: ClassVar[str] = (
        "Vaswani et al. 2017 §3.5 (pos ↦ t, d_model ↦ d, base = 10000); the concatenated layout is "
        "Hugging Face MarianSinusoidalPositionalEmbedding's (sines in the first ⌈d/2⌉ columns)."
    )

    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS
    base: int = 10000
    layout: Literal["interleaved", "concatenated"] = "interleaved"

    def check(self) -> None:
        if isinstance(self.base, bool) or not isinstance(self.base, int) or self.base < 2:
            raise ConfigError(f"base={self.base!r}, but expected a whole number ≥ 2 [SinusoidalPositional]; Vaswani et al. use 10000")
        if self.layout not in SINUSOIDAL_LAYOUTS:
            raise ConfigError(f"layout={self.layout!r}, but expected one of {list(SINUSOIDAL_LAYOUTS)} [SinusoidalPositional]")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, D.d_model), st.just(D.T), st.sampled_from([10000, 100, 2]), st.sampled_from(SINUSOIDAL_LAYOUTS))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, n), cls(3, n, layout="concatenated")]

    def inputs(self) -> dict[str, TensorType]:
        return {"ids": token_ids(self.rows)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def dependency(self) -> dict[str, Relation]:
        return {"ids": NoDependence()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        d, base = sympy.sympify(self.d), sympy.Integer(self.base)
        if self.layout == "concatenated":
            half = sympy.ceiling(d / 2)  # the sines' columns
            sine = t / base ** (2 * j / d)
            cosine = t / base ** (2 * (j - half) / d)
            return sympy.Piecewise((sympy.sin(sine), sympy.Lt(j, half)), (sympy.cos(cosine), True))
        two_i = 2 * sympy.floor(j / 2)
        angle = t / base ** (two_i / d)
        return sympy.Piecewise((sympy.sin(angle), sympy.Eq(sympy.Mod(j, 2), 0)), (sympy.cos(angle), True))
