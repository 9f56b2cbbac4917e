"""A 1-D convolution over positions: the reducer of ConvGPT (docs/sources.md §2).

Unlike every other op on a (rows, features) matrix, a kernel wider than 1 mixes positions: row
t reads rows t − p … t − p + k − 1 (p the left padding). It is causal only when all the padding
is on the left (p = k − 1); with symmetric padding it reads future positions, which
proofs/dependency.py reports, naming the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.dims import Shape
from spec.errors import ConfigError
from spec.masks import Relation, RowWise, Window
from spec.op import Operand, Primitive, register
from spec.ops._base import DEFAULT_ROWS, counts, dummy, widths
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@register
@dataclass(frozen=True)
class Conv1d(Primitive):
    """Cross-correlation over positions with zero padding, as PyTorch's ``Conv1d`` on a
    (channels, positions) input: kernel ``kernel``, stride 1, ``pad_left`` zero rows before the
    sequence and ``pad_right`` after. W ∈ ℝ^{kernel × d_in × d_out} (PyTorch stores
    (d_out, d_in, kernel): W[i, c, j] = weight[j, c, i]); b ∈ ℝ^{d_out} when ``bias``.

    Rows are positions, so the output keeps one row per input position:
    pad_left + pad_right = kernel − 1 (anything else is refused). Kernel 1 with no padding is the
    affine map x W[0] + b, applied row by row."""

    kind: ClassVar[str] = "conv1d"
    notation: ClassVar[str] = r"\operatorname{conv}_{⟨:kernel⟩}\left(⟨x⟩;\, ⟨W⟩⟦, ⟨b⟩⟧\right)"
    title: ClassVar[str] = "1-D convolution over positions"
    latex: ClassVar[str] = (
        r"y_{tj} = \sum_{i=0}^{k-1} \sum_{c} \tilde{x}_{t + i - p,\, c}\, W_{icj} + b_j \qquad "
        r"\tilde{x}_{sc} = \begin{cases} x_{sc} & 0 \le s < T \\ 0 & \text{otherwise} \end{cases}"
    )
    citation: ClassVar[str] = (
        "Suresh & P. 2024 (arXiv 2404.14462), ConvCompressedGPT: nn.Conv1d(d, d/2, kernel_size=1) "
        "over positions; k ↦ kernel, p ↦ pad_left. PyTorch's weight (out, in, k) is our W transposed "
        "to (k, in, out)."
    )

    d_in: sympy.Expr
    d_out: sympy.Expr
    kernel: int = 1
    pad_left: int = 0
    pad_right: int = 0
    bias: bool = True
    rows: sympy.Expr = DEFAULT_ROWS

    operands: ClassVar = {"x": Operand.PRODUCT, "W": Operand.PRODUCT}

    def check(self) -> None:
        for name, least in (("kernel", 1), ("pad_left", 0), ("pad_right", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name}={value!r}, but expected a whole number ≥ {least} [Conv1d]")
        if self.pad_left + self.pad_right != self.kernel - 1:
            raise ConfigError(
                f"pad_left + pad_right={self.pad_left + self.pad_right}, but expected kernel − 1="
                f"{self.kernel - 1} [Conv1d]; rows are positions, so the output must keep one row per "
                f"input position (causal: pad_left={self.kernel - 1}, pad_right=0)"
            )

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        """Kernels 1–4 with the padding anywhere from all-left (causal) to all-right."""
        from hypothesis import strategies as st

        def with_kernel(k: int) -> SearchStrategy[Primitive]:
            return st.builds(
                lambda d_in, d_out, p, bias: cls(d_in, d_out, k, p, k - 1 - p, bias),
                widths(6, D.d_model), widths(6, D.d_mlp), st.integers(0, k - 1), st.booleans(),
            )

        return counts(1, 4).flatmap(with_kernel)

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(1, 1, k, p, k - 1 - p, True, n) for k in (1, 2, 3) for p in range(k)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d_in)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d_out)

    def params(self) -> dict[str, Shape]:
        d_in, d_out = sympy.sympify(self.d_in), sympy.sympify(self.d_out)
        W = (sympy.Integer(self.kernel), d_in, d_out)
        return {"W": W, "b": (d_out,)} if self.bias else {"W": W}

    def dependency(self) -> dict[str, Relation]:
        lo, hi = -self.pad_left, self.kernel - 1 - self.pad_left
        return {"x": RowWise() if lo == hi == 0 else Window(lo, hi)}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        x, W = inputs["x"], params["W"]
        n_rows, d_in = x.shape
        terms = []
        for i in range(self.kernel):
            s = t + i - self.pad_left  # the input position under tap i
            inside = sympy.And(sympy.Ge(s, 0), sympy.Lt(s, n_rows))
            if inside is sympy.false:
                continue  # a padding row: contributes 0 (its entry is never formed)
            c = dummy("c")
            tap = sympy.Sum(x[s, c] * W[i, c, j], (c, 0, d_in - 1))
            terms.append(tap if inside is sympy.true else sympy.Piecewise((tap, inside), (0, True)))
        y = sympy.Add(*terms)
        return y + params["b"][j] if self.bias else y
