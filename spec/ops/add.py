"""The residual connection: element-wise sum of two matrices of the same type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy

from spec.op import register
from spec.ops.elementwise import Binary


@register
@dataclass(frozen=True)
class Add(Binary):
    """y = a + b: a sublayer's output added into the residual stream."""

    kind: ClassVar[str] = "add"
    notation: ClassVar[str] = r"⟨a⟩ + ⟨b⟩"
    title: ClassVar[str] = "residual add"
    latex: ClassVar[str] = r"y_{tj} = a_{tj} + b_{tj}"
    citation: ClassVar[str] = "He et al. 2016; Vaswani et al. 2017 §3.1 (residual connections)."

    def combine(self, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
        return a + b
