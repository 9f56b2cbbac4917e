"""The residual connection: element-wise sum of two matrices of the same type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class Add(Primitive):
    """y = a + b: a sublayer's output added into the residual stream."""

    kind: ClassVar[str] = "add"
    title: ClassVar[str] = "residual add"
    latex: ClassVar[str] = r"y_{tj} = a_{tj} + b_{tj}"
    citation: ClassVar[str] = "He et al. 2016; Vaswani et al. 2017 §3.1 (residual connections)."

    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, D.d_model))

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
        return inputs["a"][index] + inputs["b"][index]
