"""Element-wise activations: GELU (exact, erf form), GELU (tanh approximation), ReLU.

The two GELUs are different functions (they differ by up to about 4.7e-4 near x ≈ ±2.1); GPT-2
uses the tanh form. Neither is ever substituted for the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec.op import register
from spec.ops.elementwise import Elementwise

if TYPE_CHECKING:
    pass


@register
@dataclass(frozen=True)
class GeluErf(Elementwise):
    """GELU, exact: x Φ(x) with Φ the standard normal CDF."""

    kind: ClassVar[str] = "gelu_erf"
    notation: ClassVar[str] = r"\operatorname{GELU}\left(⟨x⟩\right)"
    title: ClassVar[str] = "GELU (exact, erf)"
    latex: ClassVar[str] = r"y = \tfrac{1}{2}\, x \left(1 + \operatorname{erf}(x / \sqrt{2})\right)"
    citation: ClassVar[str] = "Hendrycks & Gimpel 2016; Hugging Face `gelu`, PyTorch `gelu(approximate='none')`."

    def scalar(self, x: sympy.Expr) -> sympy.Expr:
        # ½ x (1 + erf(x/√2)), written with 1 + erf(z) = erfc(−z): the same function, but its
        # exact evaluation needs no cancellation for x ≪ 0 (1 + erf(−500√2) cannot be told
        # from 0 at any practical precision; erfc(500√2) can).
        return x * sympy.erfc(-x / sympy.sqrt(2)) / 2


@register
@dataclass(frozen=True)
class GeluTanh(Elementwise):
    """GELU, the tanh approximation GPT-2 uses."""

    kind: ClassVar[str] = "gelu_tanh"
    notation: ClassVar[str] = r"\operatorname{GELU}_{\tanh}\left(⟨x⟩\right)"
    title: ClassVar[str] = "GELU (tanh approximation)"
    latex: ClassVar[str] = (
        r"y = \tfrac{1}{2}\, x \left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\, x^3)\right)\right)"
    )
    citation: ClassVar[str] = (
        "Hendrycks & Gimpel 2016 §2; GPT-2; Hugging Face `gelu_new` / `gelu_pytorch_tanh`, "
        "PyTorch `gelu(approximate='tanh')`."
    )

    cubic: ClassVar[sympy.Rational] = sympy.Rational(44715, 1000000)
    """The coefficient of x³ in the tanh's argument (0.044715); the reference and fast/ read it here."""

    def scalar(self, x: sympy.Expr) -> sympy.Expr:
        c = self.cubic
        u = sympy.sqrt(2 / sympy.pi) * (x + c * x**3)
        # ½ x (1 + tanh u), written with 1 + tanh u = 2 / (1 + e^{−2u}): the same function, but
        # its exact evaluation needs no cancellation for x ≪ 0.
        return x / (1 + sympy.exp(-2 * u))


@register
@dataclass(frozen=True)
class Relu(Elementwise):
    """ReLU: max(x, 0)."""

    kind: ClassVar[str] = "relu"
    notation: ClassVar[str] = r"\operatorname{ReLU}\left(⟨x⟩\right)"
    title: ClassVar[str] = "ReLU"
    latex: ClassVar[str] = r"y = \max(x, 0)"
    citation: ClassVar[str] = "Vaswani et al. 2017 §3.3 (the FFN's activation)."

    def scalar(self, x: sympy.Expr) -> sympy.Expr:
        return sympy.Max(x, 0)
