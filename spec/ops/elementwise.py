"""The shapes shared by element-wise primitives: a function of one entry (the activations) and
a function of two entries at the same index (the residual add, the gated MLP's product). Each
registered op says only what it computes per entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.masks import Relation, RowWise
from spec.op import Primitive
from spec.ops._base import DEFAULT_ROWS, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@dataclass(frozen=True)
class _EntryWise(Primitive):
    """What the element-wise shapes share: the (rows, d) inputs named by ``operand_names``, each
    read at the output's own index, and a (rows, d) output."""

    operand_names: ClassVar[tuple[str, ...]] = ("x",)
    width: ClassVar[sympy.Symbol] = D.d_model
    """The glossary width the op's examples draw besides numbers."""

    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, cls.width))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {name: rows(self.rows, self.d) for name in self.operand_names}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def dependency(self) -> dict[str, Relation]:
        return {name: RowWise() for name in self.operand_names}


@dataclass(frozen=True)
class Elementwise(_EntryWise):
    """An element-wise op on a (rows, d) matrix: ``scalar`` applied to every entry."""

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        return self.scalar(inputs["x"][index])

    def scalar(self, x: sympy.Expr) -> sympy.Expr:
        """The function applied to one entry."""
        raise NotImplementedError


@dataclass(frozen=True)
class Binary(_EntryWise):
    """y_{tj} = combine(a_{tj}, b_{tj}) on two (rows, d) matrices."""

    operand_names: ClassVar[tuple[str, ...]] = ("a", "b")

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        return self.combine(inputs["a"][index], inputs["b"][index])

    def combine(self, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
        """The function of the two entries at one index."""
        raise NotImplementedError
