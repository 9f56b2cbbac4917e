"""Token embedding: the one-hot matrix times W_E."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.dims import Shape
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, dummy, widths
from spec.types import Axis, TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class TokenEmbedding(Primitive):
    """E = X W_E: the one-hot matrix projected to the model width. The reference multiplies the
    one-hot matrix literally; that this equals gathering rows of W_E is a theorem (proofs/)."""

    kind: ClassVar[str] = "token_embedding"
    notation: ClassVar[str] = r"⟨X⟩ ⟨W_E⟩"
    title: ClassVar[str] = "token embedding"
    latex: ClassVar[str] = r"E_{tj} = \sum_{v} X_{tv}\, (W_E)_{vj}"
    citation: ClassVar[str] = (
        "Becker-Kahn §2 (the embedding W_E : ℝ^{n_vocab} → ℝ^{d_model}); Hugging Face GPT-2 "
        "calls W_E `wte.weight`, shape (n_vocab, d_model), rows are tokens as here."
    )

    n_vocab: sympy.Expr
    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(8, D.n_vocab), widths(6, D.d_model))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(3, 2, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {
            "X": TensorType((sympy.sympify(self.rows), sympy.sympify(self.n_vocab)), (Axis.POSITION, Axis.ONE_HOT))
        }

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, Shape]:
        return {"W_E": (sympy.sympify(self.n_vocab), sympy.sympify(self.d))}

    def dependency(self) -> dict[str, Relation]:
        return {"X": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        X, W_E = inputs["X"], params["W_E"]
        v = dummy("v")
        return sympy.Sum(X[t, v] * W_E[v, j], (v, 0, X.shape[1] - 1))
