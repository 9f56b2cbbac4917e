"""Gated linear units (SwiGLU, GeGLU): the SiLU activation, and the element-wise product of the
gate and the up projection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, widths
from spec.ops.activations import _Elementwise
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class Silu(_Elementwise):
    """SiLU (swish with β = 1): x σ(x)."""

    kind: ClassVar[str] = "silu"
    title: ClassVar[str] = "SiLU"
    latex: ClassVar[str] = r"y = x\, \sigma(x) = \frac{x}{1 + e^{-x}}"
    citation: ClassVar[str] = (
        "Hendrycks & Gimpel 2016 (the sigmoid-weighted linear unit); Elfwing et al. 2018 (SiLU); Ramachandran et al. "
        "2017 (swish, β = 1); Shazeer 2020 (SwiGLU). Hugging Face `silu` / `swish`, PyTorch `silu`."
    )

    def scalar(self, x: sympy.Expr) -> sympy.Expr:
        # x / (1 + e^{−x}): no cancellation for x ≪ 0 (e^{−x} is large, the quotient small and exact to evaluate)
        return x / (1 + sympy.exp(-x))


@register
@dataclass(frozen=True)
class Multiply(Primitive):
    """y = a ⊙ b: the gate times the up projection in a gated MLP."""

    kind: ClassVar[str] = "multiply"
    title: ClassVar[str] = "element-wise product"
    latex: ClassVar[str] = r"y_{tj} = a_{tj}\, b_{tj}"
    citation: ClassVar[str] = "Shazeer 2020, eq. (5)–(6): FFN_SwiGLU(x) = (Swish(x W) ⊗ x V) W₂ (⊗ the element-wise product)."

    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, D.d_mlp))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"a": rows(self.rows, self.d), "b": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def dependency(self) -> dict[str, Relation]:
        return {"a": RowWise(), "b": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        return inputs["a"][index] * inputs["b"][index]
