"""The affine map of the row convention: y = x W + b."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.dims import Shape
from spec.masks import Relation, RowWise
from spec.op import Operand, Primitive, register
from spec.ops._base import DEFAULT_ROWS, dummy, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class Affine(Primitive):
    """Each row times W ∈ ℝ^{d_in×d_out}, plus b ∈ ℝ^{d_out} when ``bias``. Rows are positions;
    maps multiply on the right (papers with column vectors write W x + b with W transposed)."""

    kind: ClassVar[str] = "affine"
    notation: ClassVar[str] = r"⟨x⟩ ⟨W⟩⟦ + ⟨b⟩⟧"
    title: ClassVar[str] = "affine map"
    latex: ClassVar[str] = r"y_{tj} = \sum_{i} x_{ti} W_{ij} + b_j"
    citation: ClassVar[str] = (
        "Becker-Kahn §3 (preactivation: a weighted sum of predecessors plus a bias). Hugging Face "
        "GPT-2's Conv1D stores W as (d_in, d_out) and computes x W + b, the same convention."
    )

    operands: ClassVar = {"x": Operand.PRODUCT, "W": Operand.PRODUCT}

    d_in: sympy.Expr
    d_out: sympy.Expr
    bias: bool = True
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, D.d_model), widths(6, D.d_mlp), st.booleans())

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, 2, True, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d_in)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d_out)

    def params(self) -> dict[str, Shape]:
        d_in, d_out = sympy.sympify(self.d_in), sympy.sympify(self.d_out)
        return {"W": (d_in, d_out), "b": (d_out,)} if self.bias else {"W": (d_in, d_out)}

    def dependency(self) -> dict[str, Relation]:
        return {"x": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        x, W = inputs["x"], params["W"]
        i = dummy("i")
        y = sympy.Sum(x[t, i] * W[i, j], (i, 0, x.shape[1] - 1))
        return y + params["b"][j] if self.bias else y
