"""Soft-capping: c · tanh(x / c), a smooth bound of every entry to (−c, c) that is the identity
near 0 (its slope at 0 is 1). Gemma 2 caps the attention scores (``attn_logit_softcapping``, an
attribute of :class:`~spec.ops.attention.AttentionScores` that reads :func:`soft_cap`) and the
output logits (``final_logit_softcapping``, the op :class:`SoftCap` below). The function lives
here once; both ops' definitions read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.errors import ConfigError
from spec.op import Primitive, register
from spec.ops._base import widths
from spec.ops.elementwise import Elementwise

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def soft_cap(x: sympy.Expr, cap: float) -> sympy.Expr:
    """c · tanh(x / c) with c the cap as the exact binary rational it is."""
    c = sympy.Rational(cap)
    return c * sympy.tanh(x / c)


def check_cap(cap: object, where: str) -> None:
    """A cap is a finite number > 0."""
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap) or cap <= 0:
        raise ConfigError(f"cap={cap!r}, but expected a finite number > 0 [{where}]; Gemma 2 caps scores at 50 and logits at 30")


@register
@dataclass(frozen=True)
class SoftCap(Elementwise):
    """y = c · tanh(x / c) entry by entry (Gemma 2's final-logit soft-capping)."""

    kind: ClassVar[str] = "soft_cap"
    title: ClassVar[str] = "soft-capping"
    notation: ClassVar[str] = r"\operatorname{softcap}\left(⟨x⟩\right)"
    latex: ClassVar[str] = r"y_{tj} = c \tanh(x_{tj} / c)"
    citation: ClassVar[str] = (
        "Gemma Team 2024 (Gemma 2) §2: logit soft-capping, cap · tanh(logits / cap), 50 for attention scores and 30 "
        "for the final logits; Hugging Face Gemma2ForCausalLM final_logit_softcapping."
    )
    width: ClassVar[sympy.Symbol] = D.n_vocab

    cap: float = 30.0

    def check(self) -> None:
        check_cap(self.cap, "SoftCap")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(lambda d, cap: cls(d, cap=cap), widths(6, cls.width), st.sampled_from([30.0, 1.0, 0.5, 50.0]))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, n, cap=1.5)]

    def scalar(self, x: sympy.Expr) -> sympy.Expr:
        return soft_cap(x, self.cap)
