"""Helpers shared by the primitive op definitions."""

from __future__ import annotations

import dataclasses

import sympy

from spec.dims import T
from spec.errors import ConfigError

ROW_FIELDS = ("rows", "q_rows", "k_rows")
SIZE_FIELDS = ("d", "d_in", "d_out", "n_vocab", "n_ctx", "d_head", "d_v", "n_heads", "rows", "q_rows", "k_rows")


def check_sizes(op: object) -> None:
    """Refuse a non-positive concrete size in an op's fields (symbolic sizes are positive by
    construction)."""
    if not dataclasses.is_dataclass(op):
        return
    for f in dataclasses.fields(op):
        if f.name not in SIZE_FIELDS:
            continue
        value = getattr(op, f.name)
        if isinstance(value, bool):
            raise ConfigError(f"{f.name}={value!r}, but expected a positive whole number [{type(op).__name__}]")
        expr = sympy.sympify(value)
        least = 0 if f.name in ROW_FIELDS else 1  # an empty sequence has 0 rows; widths are ≥ 1
        if expr.is_number and not (expr.is_Integer and expr >= least):
            raise ConfigError(
                f"{f.name}={value!r}, but expected a whole number ≥ {least} [{type(op).__name__}]; "
                "sizes count rows or features"
            )


def dummy(name: str) -> sympy.Symbol:
    """A fresh summation index."""
    return sympy.Dummy(name, integer=True, nonnegative=True)


DEFAULT_ROWS: sympy.Expr = T
