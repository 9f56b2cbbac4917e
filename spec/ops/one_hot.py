"""One-hot encoding of token ids: the text-as-matrix of Becker-Kahn §2."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, widths
from spec.types import Axis, TensorType, token_ids

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class OneHot(Primitive):
    """Token ids ``(T,)`` → one-hot matrix X ∈ {0,1}^{T×n_vocab}: row t is the standard basis
    vector e_{ids_t}. An id outside [0, n_vocab) is not defined (a TokenError)."""

    kind: ClassVar[str] = "one_hot"
    notation: ClassVar[str] = r"\operatorname{onehot}\left(⟨ids⟩\right)"
    title: ClassVar[str] = "one-hot encoding"
    latex: ClassVar[str] = r"X_{tv} = [\,\mathrm{ids}_t = v\,] \quad (t < T,\ v < n_\mathrm{vocab})"
    citation: ClassVar[str] = (
        "Becker-Kahn (arXiv 2410.19370) §2: the one-hot map V → standard basis of ℝ^{n_vocab}; "
        "a text of T tokens is the T × n_vocab matrix of one-hot rows."
    )

    n_vocab: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    def id_bound(self) -> int | None:
        n = sympy.sympify(self.n_vocab)
        return int(n) if n.is_Integer else None

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(8, D.n_vocab))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(3, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"ids": token_ids(self.rows)}

    def output(self) -> TensorType:
        return TensorType((sympy.sympify(self.rows), sympy.sympify(self.n_vocab)), (Axis.POSITION, Axis.ONE_HOT))

    def dependency(self) -> dict[str, Relation]:
        return {"ids": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, v = index
        return sympy.KroneckerDelta(inputs["ids"][t], v)
