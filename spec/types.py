"""Tensor types: a symbolic shape plus what each axis means.

A type is checked on every edge of a DAG: the producer's type must equal what the consumer
declares, after the architecture's dims are substituted.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import sympy

from spec.dims import Shape, show


class Axis(enum.Enum):
    """What an axis of a tensor indexes."""

    POSITION = "pos"  # query positions t = 0..T-1 (rows: the row convention)
    KEY = "key_pos"  # key positions s = 0..S-1
    FEATURE = "feature"  # a feature of one position (d_model, d_head, d_mlp, …)
    ONE_HOT = "one_hot"  # a vocabulary entry, one-hot encoded


class Element(enum.Enum):
    """What the entries of a tensor are."""

    REAL = "real"
    TOKEN = "token"  # integer token ids in [0, n_vocab)


@dataclass(frozen=True)
class TensorType:
    """A symbolic shape with the meaning of each axis, e.g. ``(T, d_model) [pos, feature]``."""

    shape: Shape
    axes: tuple[Axis, ...]
    element: Element = Element.REAL

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.axes):
            from spec.errors import ShapeError

            raise ShapeError(
                f"shape {show(self.shape)} has {len(self.shape)} axes, but axes names "
                f"{len(self.axes)}: {[a.value for a in self.axes]} [TensorType]; give one axis kind per dimension"
            )

    def subs(self, values: dict[sympy.Symbol, int]) -> TensorType:
        """This type with dims substituted (symbols without a value stay symbolic)."""
        key = tuple(values.items())
        return TensorType(tuple(substitute(d, key) for d in self.shape), self.axes, self.element)

    def __str__(self) -> str:
        axes = ", ".join(a.value for a in self.axes)
        kind = "" if self.element is Element.REAL else f" {self.element.value}"
        return f"{show(self.shape)} [{axes}]{kind}"


@functools.lru_cache(maxsize=65536)
def substitute(expr: sympy.Expr, values: tuple[tuple[sympy.Symbol, int], ...]) -> sympy.Expr:
    """``expr`` with the given symbol values (cached: architectures repeat the same dims)."""
    return sympy.sympify(expr).subs(dict(values))


def rows(n_rows: sympy.Expr, width: sympy.Expr, row_axis: Axis = Axis.POSITION) -> TensorType:
    """A matrix with one row per position and ``width`` features: the residual-stream type."""
    return TensorType((sympy.sympify(n_rows), sympy.sympify(width)), (row_axis, Axis.FEATURE))


def token_ids(n_rows: sympy.Expr) -> TensorType:
    """A sequence of token ids, one per position."""
    return TensorType((sympy.sympify(n_rows),), (Axis.POSITION,), Element.TOKEN)
