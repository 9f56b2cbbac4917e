"""Multiplication by a fixed constant: the √d_model embedding scale of Vaswani et al. §3.4."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.errors import ConfigError
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class Scale(Primitive):
    """y = c · x for a constant c > 0 fixed by the architecture (not a parameter): c is an exact
    sympy number (√512, not its float64 rounding), as the attention scale is."""

    kind: ClassVar[str] = "scale"
    notation: ClassVar[str] = r"⟨:c⟩\, ⟨x⟩"
    title: ClassVar[str] = "constant scale"
    latex: ClassVar[str] = r"y_{tj} = c\, x_{tj}"
    citation: ClassVar[str] = (
        "Vaswani et al. 2017 §3.4: \"In the embedding layers, we multiply those weights by √d_model\" "
        "(c = √d_model); Hugging Face Marian's embed_scale when scale_embedding is true."
    )

    d: sympy.Expr
    c: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    def check(self) -> None:
        value = sympy.sympify(self.c)
        if value.free_symbols:
            return  # a symbolic scale (√d_model) is positive by construction; bound later
        if not (value.is_real and value.is_finite and value > 0):
            raise ConfigError(f"c={self.c!r}, but expected a finite real number > 0 [Scale]; e.g. sympy.sqrt(512)")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        constants = st.sampled_from([sympy.sqrt(8), sympy.Integer(1), sympy.Rational(1, 3), sympy.sqrt(D.d_model)])
        return st.builds(lambda d, c: cls(d, c), widths(6, D.d_model), constants)

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, sympy.sqrt(2), n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def dependency(self) -> dict[str, Relation]:
        return {"x": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        return sympy.sympify(self.c) * inputs["x"][index]
