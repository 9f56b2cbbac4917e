"""Positional relations: which position s an output position t may see.

One notion serves twice. As an **attention mask** it is the allowed set
A_t = {s : allowed(t, s)} of the masked softmax. As a **dependency rule** it says which input
positions an op's output row t can depend on (row-wise ops relate t to t only; attention
relates t to its allowed keys). proofs/ composes these relations along a DAG.

Families (docs/conventions.md):

============  =====================  =========================================
family        allowed(t, s)          used for
============  =====================  =========================================
RowWise       s = t                  position-wise ops (affine, norms, MLP)
Causal        s ≤ t                  autoregressive self-attention
Banded(w)     t − w < s ≤ t          locally banded (sparse) attention, GPT-3
KeyPadding    valid[s]               padded keys (batch padding, cross-attention)
Full          always                 unmasked attention
NoDependence  never                  an output that reads no position's value
Intersection  all parts allow        e.g. causal ∧ key padding
Window(a, b)  t + a ≤ s ≤ t + b      a convolution over positions (kernel taps)
============  =====================  =========================================

Three rules say more than a row relation can, for ops whose output or input has a key axis
(T × S: entry (t, s) pairs query t with key s). As row relations they are what row t reads;
proofs/dependency.py also reads their entry-level meaning:

==============  ===================  =======================================================
rule            as a row relation    entry-level meaning
==============  ===================  =======================================================
KeyRow          always               entry (t, s) of the output reads row s of this input
WithinRow(A)    s = t                row t reads only the entries (t, s') with s' ∈ A_t
SupportOf(p)    always               row t reads the rows s where input p's entry (t, s) may
                                     be non-zero (its support, e.g. a masked softmax's mask)
==============  ===================  =======================================================
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import sympy

from spec.errors import ConfigError

Positions = npt.NDArray[np.int64]
Allowed = npt.NDArray[np.bool_]
Bound: TypeAlias = "int | sympy.Expr"
"""A window bound: an integer, a sympy expression (a symbolic band width), or ±sympy.oo."""
Span: TypeAlias = "tuple[Bound, Bound]"
"""A window (lo, hi): the positions s with t + lo ≤ s ≤ t + hi."""

oo = sympy.oo
EVERYWHERE: tuple[Span, ...] = ((-oo, oo),)


class Relation(abc.ABC):
    """A relation between output positions t and input (key) positions s.

    A relation answers its own questions, so every interpreter asks it rather than switching
    on its class, and a user-defined relation works everywhere:

    * :meth:`allowed` — one pair (the reference's literal loop);
    * :meth:`allowed_array` — every pair of broadcast index arrays at once (fast/'s masks);
    * :meth:`indicator` — the 0/1 indicator as a sympy expression (the exact definitions, proofs);
    * :meth:`spans` — windows t + lo ≤ s ≤ t + hi whose union contains the relation
      (proofs/dependency.py composes these; the default, every s, is always sound);
    * :meth:`latex` — the condition s ∈ A_t, for the docs.
    """

    @abc.abstractmethod
    def allowed(self, t: int, s: int) -> bool:
        """Whether position t may see position s."""

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        """:meth:`allowed` over broadcast integer arrays of positions (e.g. t of shape (B, T, 1)
        and s of shape (B, 1, S) give (B, T, S)); the result may be a read-only broadcast view.
        Families override it with array arithmetic; this default asks :meth:`allowed` pair by pair."""
        tt, ss = np.broadcast_arrays(np.asarray(t, dtype=np.int64), np.asarray(s, dtype=np.int64))
        out = np.zeros(tt.shape, dtype=bool)
        for index in np.ndindex(tt.shape):
            out[index] = bool(self.allowed(int(tt[index]), int(ss[index])))
        return out

    def spans(self) -> tuple[Span, ...]:
        """Windows (lo, hi), lo ≤ hi, whose union contains every allowed pair: (t, s) allowed ⇒
        t + lo ≤ s ≤ t + hi for some window. The default (every s) is sound for any relation;
        families give their exact windows."""
        return EVERYWHERE

    def row_local(self) -> bool:
        """Whether output row t reads at most input row t (row-wise, or nothing at all): an
        input read by such a rule needs no cache when decoding incrementally."""
        return all(_le(lo, 0) is True and _le(0, lo) is True and _le(hi, 0) is True and _le(0, hi) is True for lo, hi in self.spans())

    @abc.abstractmethod
    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        """The 0/1 indicator [s ∈ A_t] as a sympy expression (t, s may be symbols)."""

    @abc.abstractmethod
    def latex(self) -> str:
        """The condition s ∈ A_t in LaTeX."""

    def matrix(self, n_rows: int, n_cols: int) -> np.ndarray:
        """The boolean T × S matrix of allowed pairs."""
        return np.array(
            [[self.allowed(t, s) for s in range(n_cols)] for t in range(n_rows)], dtype=bool
        ).reshape(n_rows, n_cols)


@dataclass(frozen=True)
class RowWise(Relation):
    """Output row t depends on input row t only."""

    def allowed(self, t: int, s: int) -> bool:
        return s == t

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        return _full(np.asarray(s) == np.asarray(t), t, s)

    def spans(self) -> tuple[Span, ...]:
        return ((0, 0),)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.KroneckerDelta(t, s)

    def latex(self) -> str:
        return "s = t"


@dataclass(frozen=True)
class Causal(Relation):
    """Autoregressive: position t sees positions s ≤ t."""

    def allowed(self, t: int, s: int) -> bool:
        return s <= t

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        return _full(np.asarray(s) <= np.asarray(t), t, s)

    def spans(self) -> tuple[Span, ...]:
        return ((-oo, 0),)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Piecewise((1, sympy.Le(s, t)), (0, True))

    def latex(self) -> str:
        return "s \\le t"


@dataclass(frozen=True)
class Banded(Relation):
    """Locally banded causal attention: position t sees the w positions t−w < s ≤ t."""

    w: int

    def __post_init__(self) -> None:
        if isinstance(self.w, bool) or not isinstance(self.w, int) or self.w < 1:
            raise ConfigError(
                f"band width w={self.w!r}, but expected a whole number w ≥ 1 [Banded mask]; "
                "w = 1 lets each position see only itself"
            )

    def allowed(self, t: int, s: int) -> bool:
        return t - self.w < s <= t

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        t_, s_ = np.asarray(t), np.asarray(s)
        return _full((s_ <= t_) & (s_ > t_ - self.w), t, s)

    def spans(self) -> tuple[Span, ...]:
        return ((1 - self.w, 0),)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Piecewise((1, sympy.And(sympy.Le(s, t), sympy.Gt(s, t - self.w))), (0, True))

    def latex(self) -> str:
        return f"t - {self.w} < s \\le t"


@dataclass(frozen=True)
class KeyPadding(Relation):
    """Every query sees exactly the valid keys: valid[s] is True for a real (unpadded) key."""

    valid: tuple[bool, ...]

    def allowed(self, t: int, s: int) -> bool:
        if not 0 <= s < len(self.valid):
            raise ConfigError(
                f"key position s={s}, but expected 0 ≤ s < {len(self.valid)} [KeyPadding mask]; "
                "give the mask one entry per key position"
            )
        return bool(self.valid[s])

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        """Key s (an index into ``valid``; in one unpadded sequence, its position) is valid."""
        s_ = np.asarray(s)
        if s_.size and (s_.min() < 0 or s_.max() >= len(self.valid)):
            raise ConfigError(
                f"key positions {int(s_.min())}…{int(s_.max())}, but expected 0 ≤ s < {len(self.valid)} [KeyPadding mask]; "
                "give the mask one entry per key position"
            )
        return _full(np.asarray(self.valid, dtype=bool)[s_], t, s)

    # spans: a data-dependent set of keys, so every s (the default)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        cases = [(1, sympy.Eq(s, i)) for i, ok in enumerate(self.valid) if ok]
        return sympy.Piecewise(*cases, (0, True))

    def latex(self) -> str:
        return "\\mathrm{valid}_s"


@dataclass(frozen=True)
class Full(Relation):
    """Unmasked: every position sees every position."""

    def allowed(self, t: int, s: int) -> bool:
        return True

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        return _full(np.ones((), dtype=bool), t, s)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Integer(1)

    def latex(self) -> str:
        return "\\text{always}"


@dataclass(frozen=True)
class NoDependence(Relation):
    """The output reads no input position's value (e.g. a positional table reads only T)."""

    def allowed(self, t: int, s: int) -> bool:
        return False

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        return _full(np.zeros((), dtype=bool), t, s)

    def spans(self) -> tuple[Span, ...]:
        return ()

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Integer(0)

    def latex(self) -> str:
        return "\\text{never}"


@dataclass(frozen=True)
class Intersection(Relation):
    """Allowed where every part allows: e.g. ``Intersection((Causal(), KeyPadding(valid)))``."""

    parts: tuple[Relation, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.parts, tuple) or not self.parts or not all(isinstance(p, Relation) for p in self.parts):
            raise ConfigError(f"parts={self.parts!r}, but expected a non-empty tuple of relations [Intersection]")

    def allowed(self, t: int, s: int) -> bool:
        return all(p.allowed(t, s) for p in self.parts)

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        out = _full(np.ones((), dtype=bool), t, s).copy()
        for part in self.parts:
            out &= part.allowed_array(t, s)
        return out

    def spans(self) -> tuple[Span, ...]:
        out: tuple[Span, ...] = EVERYWHERE
        for part in self.parts:
            out = intersect(out, part.spans())
        return out

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Mul(*(p.indicator(t, s) for p in self.parts))

    def latex(self) -> str:
        return " \\wedge ".join(f"({p.latex()})" for p in self.parts)


@dataclass(frozen=True)
class Window(Relation):
    """An offset window: position t sees t + lo ≤ s ≤ t + hi (lo ≤ hi). A convolution over
    positions with kernel k and left padding p reads Window(−p, k − 1 − p): causal exactly when
    hi ≤ 0, i.e. when all the padding is on the left."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        for name in ("lo", "hi"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}={value!r}, but expected a whole number [Window relation]")
        if self.lo > self.hi:
            raise ConfigError(
                f"lo={self.lo} > hi={self.hi}, but expected lo ≤ hi [Window relation]; "
                "an empty window reads nothing: use NoDependence"
            )

    def allowed(self, t: int, s: int) -> bool:
        return t + self.lo <= s <= t + self.hi

    def allowed_array(self, t: Positions, s: Positions) -> Allowed:
        t_, s_ = np.asarray(t), np.asarray(s)
        return _full((s_ >= t_ + self.lo) & (s_ <= t_ + self.hi), t, s)

    def spans(self) -> tuple[Span, ...]:
        return ((self.lo, self.hi),)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Piecewise((1, sympy.And(sympy.Ge(s, t + self.lo), sympy.Le(s, t + self.hi))), (0, True))

    def latex(self) -> str:
        def offset(k: int) -> str:
            return "t" if k == 0 else f"t {'+' if k > 0 else '-'} {abs(k)}"

        return f"{offset(self.lo)} \\le s \\le {offset(self.hi)}"


@dataclass(frozen=True)
class KeyRow(Relation):
    """For an output with a key axis: entry (t, s) reads row s of this input (the keys of
    attention scores). As a row relation, row t reads every row."""

    def allowed(self, t: int, s: int) -> bool:
        return True

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Integer(1)

    def latex(self) -> str:
        return "\\text{entry } (t, s) \\text{ reads row } s"


@dataclass(frozen=True)
class WithinRow(RowWise):
    """Row t reads row t of a T × S input, and of it only the entries (t, s') with s' ∈ A_t of
    ``mask`` (a masked softmax never reads a masked score). As a row relation: row-wise."""

    mask: Relation

    def latex(self) -> str:
        return f"s = t,\\ \\text{{entries }} (t, s') \\text{{ with }} {self.mask.latex()} \\text{{ at }} s'"


@dataclass(frozen=True)
class SupportOf(Relation):
    """Row t reads the rows s of this input where input ``port``'s entry (t, s) may be non-zero
    (the weighted sum reads the values its attention weights do not zero). As a row relation,
    without knowing that support: every row."""

    port: str

    def allowed(self, t: int, s: int) -> bool:
        return True

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Integer(1)

    def latex(self) -> str:
        return f"{self.port}_{{ts}} \\ne 0"


Mask = Relation
"""An attention mask is a positional relation; the name used where it plays that role."""


def _full(values: Any, t: Positions, s: Positions) -> Allowed:
    """``values`` broadcast to the shape of t and s together."""
    shape = np.broadcast_shapes(np.shape(t), np.shape(s))
    return np.broadcast_to(np.asarray(values, dtype=bool), shape)


def _le(a: Bound, b: Bound) -> bool | None:
    """a ≤ b when it can be decided, else None."""
    decided = sympy.Le(sympy.sympify(a), sympy.sympify(b))
    return True if decided is sympy.true else False if decided is sympy.false else None


def intersect(a: tuple[Span, ...], b: tuple[Span, ...]) -> tuple[Span, ...]:
    """The windows of the intersection of two unions of windows (pairwise max/min; windows that
    are empty for certain are dropped)."""
    out: list[Span] = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo = lo1 if _le(lo2, lo1) else lo2 if _le(lo1, lo2) else sympy.Max(lo1, lo2)
            hi = hi1 if _le(hi1, hi2) else hi2 if _le(hi2, hi1) else sympy.Min(hi1, hi2)
            if _le(lo, hi) is not False:
                out.append((lo, hi))
    return tuple(out)
