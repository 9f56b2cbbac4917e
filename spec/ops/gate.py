"""A learned sigmoid gate combining two branches: ParallelGPT's merge (docs/sources.md §2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.dims import Shape
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def sigmoid(a: sympy.Expr) -> sympy.Expr:
    """σ(a) = 1 / (1 + e^{−a})."""
    return 1 / (1 + sympy.exp(-a))


@register
@dataclass(frozen=True)
class SigmoidGate(Primitive):
    """y = σ(a) x₁ + (1 − σ(a)) x₂ with one learned scalar a (stored as a ∈ ℝ¹): a convex
    combination of two branches, the same weight for every position and feature. 1 − σ(a) is
    σ(−a), which is how it is written below (the same number, without the cancellation of
    1 − σ(a) for large a)."""

    kind: ClassVar[str] = "sigmoid_gate"
    notation: ClassVar[str] = r"\sigma(⟨a⟩)\, ⟨x1⟩ + \left(1 - \sigma(⟨a⟩)\right) ⟨x2⟩"
    title: ClassVar[str] = "learned sigmoid gate"
    latex: ClassVar[str] = (
        r"w = \sigma(a) = \frac{1}{1 + e^{-a}} \qquad y_{tj} = w\, x^{(1)}_{tj} + (1 - w)\, x^{(2)}_{tj}"
    )
    citation: ClassVar[str] = (
        "Suresh & P. 2024 (arXiv 2404.14462), ParallelGPT as the authors' code defines it: the two "
        "branches' outputs combined as w·x₁ + (1 − w)·x₂ with w = sigmoid of one learned scalar. "
        "x₁ ↦ x1, x₂ ↦ x2; the scalar is Θ entry a of shape (1,)."
    )

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
        return {"x1": rows(self.rows, self.d), "x2": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, Shape]:
        return {"a": (sympy.Integer(1),)}

    def dependency(self) -> dict[str, Relation]:
        return {"x1": RowWise(), "x2": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        a = params["a"][0]
        return sigmoid(a) * inputs["x1"][index] + sigmoid(-a) * inputs["x2"][index]
