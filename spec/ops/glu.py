"""Gated linear units (SwiGLU, GeGLU): the SiLU activation, and the element-wise product of the
gate and the up projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sympy

from spec import dims as D
from spec.op import register
from spec.ops.elementwise import Binary, Elementwise


@register
@dataclass(frozen=True)
class Silu(Elementwise):
    """SiLU (swish with β = 1): x σ(x)."""

    kind: ClassVar[str] = "silu"
    notation: ClassVar[str] = r"\operatorname{SiLU}\left(⟨x⟩\right)"
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
class Multiply(Binary):
    """y = a ⊙ b: the gate times the up projection in a gated MLP."""

    kind: ClassVar[str] = "multiply"
    notation: ClassVar[str] = r"⟨a⟩ \odot ⟨b⟩"
    title: ClassVar[str] = "element-wise product"
    latex: ClassVar[str] = r"y_{tj} = a_{tj}\, b_{tj}"
    citation: ClassVar[str] = "Shazeer 2020, eq. (5)–(6): FFN_SwiGLU(x) = (Swish(x W) ⊗ x V) W₂ (⊗ the element-wise product)."

    width: ClassVar[sympy.Symbol] = D.d_mlp

    def combine(self, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
        return a * b
