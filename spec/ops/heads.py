"""One head's columns of a concatenation of heads: the inverse of ConcatHeads.

An op that acts on every head at once — OLMo 2's QK-norm, an RMS norm over all heads' queries
(width n_heads·d_head) before they are split — is the concatenation, then the op, then each
head's slice (spec/blocks.py, ``QKNorm(scope="full")``): this op is that slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec.errors import ConfigError
from spec.masks import Relation, RowWise
from spec.op import Operand, Primitive, register
from spec.ops._base import DEFAULT_ROWS, counts, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class TakeHead(Primitive):
    """Head ``head``'s d_head columns of an (rows, n_heads·d_head) concatenation of heads:
    column k of the result is column head·d_head + k of the input (ConcatHeads' layout, so
    TakeHead(n, d, h) of ConcatHeads(n, d) of z_0 … z_{n−1} is z_h)."""

    kind: ClassVar[str] = "take_head"
    notation: ClassVar[str] = r"⟨x⟩_{[:,\, ⟨:head⟩]}"
    title: ClassVar[str] = "take one head"
    latex: ClassVar[str] = r"y_{tk} = x_{t,\,h\, d_\mathrm{head} + k} \qquad (h = \text{head},\ 0 \le k < d_\mathrm{head})"
    citation: ClassVar[str] = (
        "Vaswani et al. 2017 §3.2.2 (heads side by side in one concatenation); the split OLMo 2 (OLMo et al. 2024, "
        "Hugging Face's Olmo2Attention) applies after normalising all heads' queries and keys together."
    )

    operands: ClassVar = {"x": Operand.REAL}

    n_heads: int
    d_head: sympy.Expr
    head: int
    rows: sympy.Expr = DEFAULT_ROWS

    def check(self) -> None:
        for name in ("n_heads", "head"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}={value!r}, but expected a whole number [TakeHead]")
        if self.n_heads < 1 or not 0 <= self.head < self.n_heads:
            raise ConfigError(
                f"head={self.head!r}, but expected 0 ≤ head < n_heads={self.n_heads} [TakeHead]; heads are numbered from 0"
            )

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        @st.composite
        def draw(draw: st.DrawFn) -> Primitive:
            n = draw(counts(1, 3))
            # d_head concrete: the input's width n_heads·d_head is a product, from which shapes do not bind d_head
            return cls(n, draw(widths(3)), draw(st.integers(0, n - 1)))

        return draw()

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, 1, 1, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.n_heads * sympy.sympify(self.d_head))}

    def output(self) -> TensorType:
        return rows(self.rows, self.d_head)

    def dependency(self) -> dict[str, Relation]:
        return {"x": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, k = index
        return inputs["x"][t, self.head * sympy.sympify(self.d_head) + k]
