"""Helpers shared by the primitive op definitions: summation indices, the default row count, and
the small strategies the ops' :meth:`~spec.op.Primitive.examples` are built from (hypothesis is
imported only when a strategy is asked for)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy

from spec.dims import T

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

DEFAULT_ROWS: sympy.Expr = T


def dummy(name: str) -> sympy.Symbol:
    """A fresh summation index."""
    return sympy.Dummy(name, integer=True, nonnegative=True)


def widths(high: int = 6, symbol: sympy.Symbol | None = None) -> SearchStrategy[int | sympy.Expr]:
    """Feature widths 1 … ``high`` (1 drawn often: d_head = 1, one feature), or the glossary
    ``symbol`` itself, to be bound from the arrays' shapes (which exercises binding)."""
    from hypothesis import strategies as st

    numbers: SearchStrategy[int | sympy.Expr] = st.one_of(st.just(1), st.integers(1, high))
    return numbers if symbol is None else st.one_of(numbers, st.just(symbol))


def counts(low: int, high: int) -> SearchStrategy[int]:
    """Whole numbers ``low`` … ``high`` (a head count, a kernel width)."""
    from hypothesis import strategies as st

    return st.integers(low, high)
