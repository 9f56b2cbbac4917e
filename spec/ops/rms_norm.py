"""RMS normalisation over the features of each position (Llama, Mistral, Qwen2; Gemma's 1 + γ)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.dims import Shape
from spec.errors import ConfigError
from spec.masks import Relation, RowWise
from spec.op import Operand, Primitive, register
from spec.ops._base import DEFAULT_ROWS, dummy, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class RMSNorm(Primitive):
    """Divide each row by its root mean square (ε inside the square root), then scale by γ —
    or by 1 + γ when ``offset`` (the stored gain is the gain's deviation from 1, as in Gemma).
    No centring and no shift: unlike layer norm it is not invariant to adding a constant to a
    row (proofs/, ``rms_norm_scale_invariance``)."""

    kind: ClassVar[str] = "rms_norm"
    notation: ClassVar[str] = r"\operatorname{RMSNorm}\left(⟨x⟩ \mid ⟦⟨:offset⟩1 + ⟨gamma⟩ ‖ ⟨gamma⟩⟧\right)"
    title: ClassVar[str] = "RMS normalisation"
    latex: ClassVar[str] = (
        r"r_t = \sqrt{\tfrac{1}{d}\sum_{k} x_{tk}^2 + \varepsilon} \qquad "
        r"g_j = \gamma_j \ \text{(or } 1 + \gamma_j \text{ with offset)} \qquad "
        r"y_{tj} = g_j\, \frac{x_{tj}}{r_t}"
    )
    citation: ClassVar[str] = (
        "Zhang & Sennrich 2019 (RMSNorm: a_i / RMS(a) · g_i, RMS(a) = √(mean a²)); Llama (Touvron et al. 2023) "
        "places it before each sublayer and once at the end, with ε inside the square root as Hugging Face's "
        "LlamaRMSNorm (variance_epsilon); the 1 + γ gain is Gemma's (docs/conventions.md, \"The Llama family\")."
    )

    operands: ClassVar = {"x": Operand.PRODUCT, "gamma": Operand.GAIN}

    d: sympy.Expr
    eps: float = 1e-6
    offset: bool = False
    rows: sympy.Expr = DEFAULT_ROWS

    def check(self) -> None:
        if isinstance(self.eps, bool) or not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ConfigError(
                f"eps={self.eps!r}, but expected a finite number ε ≥ 0 [RMSNorm]; Llama 2 uses 1e-5, Qwen2 1e-6"
            )
        if not isinstance(self.offset, bool):
            raise ConfigError(f"offset={self.offset!r}, but expected true or false [RMSNorm]; true reads the gain as 1 + γ")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, D.d_model), st.sampled_from([1e-6, 1e-12, 0.1]), st.booleans())

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, 1e-6, False, n), cls(2, 1e-6, True, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, Shape]:
        return {"gamma": (sympy.sympify(self.d),)}

    def dependency(self) -> dict[str, Relation]:
        return {"x": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        x = inputs["x"]
        d = x.shape[1]
        k = dummy("k")
        mean_square = sympy.Sum(x[t, k] ** 2, (k, 0, d - 1)) / d
        eps = sympy.Float(self.eps, 30) if self.eps else sympy.Integer(0)
        gain = 1 + params["gamma"][j] if self.offset else params["gamma"][j]
        return gain * x[t, j] / sympy.sqrt(mean_square + eps)
