"""Layer normalisation over the features of each position."""

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
class LayerNorm(Primitive):
    """Normalise each row to mean 0 and (biased) variance 1, then scale by γ and shift by β.
    The variance divides by d (not d − 1) and ε sits inside the square root, as in GPT-2 and
    PyTorch. ``bias=False`` drops β (the compressed GPTs of docs/sources.md §2 have no biases)."""

    kind: ClassVar[str] = "layer_norm"
    notation: ClassVar[str] = r"\operatorname{LayerNorm}\left(⟨x⟩ \mid ⟨gamma⟩⟦, ⟨beta⟩⟧\right)"
    title: ClassVar[str] = "layer normalisation"
    latex: ClassVar[str] = (
        r"\mu_t = \tfrac{1}{d}\sum_{k} x_{tk} \qquad "
        r"\delta_{tj} = x_{tj} - \mu_t \qquad "
        r"\sigma^2_t = \tfrac{1}{d}\sum_{k} \delta_{tk}^2 \qquad "
        r"y_{tj} = \gamma_j\, \frac{\delta_{tj}}{\sqrt{\sigma^2_t + \varepsilon}} + \beta_j"
    )
    citation: ClassVar[str] = "Ba, Kiros & Hinton 2016; GPT-2 places it before each sublayer (pre-LN) and once at the end."

    operands: ClassVar = {"x": Operand.PRODUCT, "gamma": Operand.GAIN}

    d: sympy.Expr
    eps: float = 1e-5
    bias: bool = True
    rows: sympy.Expr = DEFAULT_ROWS

    def check(self) -> None:
        if isinstance(self.eps, bool) or not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ConfigError(
                f"eps={self.eps!r}, but expected a finite number ε ≥ 0 [LayerNorm]; GPT-2 uses 1e-5"
            )

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(6, D.d_model), st.sampled_from([1e-5, 1e-12, 0.1]), st.booleans())

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, 1e-5, True, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, Shape]:
        d = sympy.sympify(self.d)
        return {"gamma": (d,), "beta": (d,)} if self.bias else {"gamma": (d,)}

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
        k1, k2, k3 = dummy("k"), dummy("k"), dummy("k")
        mu = sympy.Sum(x[t, k1], (k1, 0, d - 1)) / d
        mu2 = sympy.Sum(x[t, k3], (k3, 0, d - 1)) / d
        sigma2 = sympy.Sum((x[t, k2] - mu2) ** 2, (k2, 0, d - 1)) / d
        eps = sympy.Float(self.eps, 30) if self.eps else sympy.Integer(0)
        y = params["gamma"][j] * (x[t, j] - mu) / sympy.sqrt(sigma2 + eps)
        return y + params["beta"][j] if self.bias else y
