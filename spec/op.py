"""Ops: the vertices of the DAG.

A **primitive** op is one object carrying everything every interpreter needs: its ``kind``
(the same name in ``spec/``, ``reference/`` and ``fast/``), its input and output types as
functions of its dims, its parameters and their shapes, its LaTeX definition, a sympy
definition in index notation, and its positional dependency rule. A **composite** op is a
sub-DAG with a declared interface (``spec.graph.Composite``).

Primitives are registered explicitly with :func:`register`, never discovered by scanning.

**One record per primitive.** Everything any interpreter or tool needs to know about a
primitive lives on its class, and every table elsewhere is derived from :data:`PRIMITIVES`:

* what its arrays hold (:attr:`Primitive.operands`: generic reals, operands of sums of
  products, attention scores, attention weights, gains), so every example generator draws the
  right values;
* :meth:`Primitive.examples`: a hypothesis strategy of small instances covering its attributes'
  hard cases (every mask family, every padding, one head, width 1) — the verification
  engine, the spec-vs-reference and reference-vs-fast suites draw from it;
* :meth:`Primitive.instances`: fixed small instances at T = S = n, for the exhaustive proofs.

The reference function and the fast kernel of a primitive are registered in an
:class:`Implementations` table by the same decorator shape (``@REFERENCE.implements(Affine)``,
``@KERNELS.implements(Affine)``); looking up a kind that has none is a typed error naming it.
Adding a primitive is therefore: the op (here, in spec/ops/), its reference function, its fast
kernel — nothing else (docs/architecture.md, "Adding things").
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import sympy

from spec.dims import Shape, show
from spec.errors import ConfigError, ShapeError
from spec.masks import Relation
from spec.types import TensorType

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


class Op(abc.ABC):
    """Anything that can sit at a vertex: a primitive or a composite."""

    kind: ClassVar[str]
    """The op's name, shared by every interpreter (``layer_norm``, ``attention_head``, …)."""
    title: ClassVar[str]
    """A short human name."""

    @abc.abstractmethod
    def inputs(self) -> dict[str, TensorType]:
        """Input ports, in order, with their types."""

    @abc.abstractmethod
    def outputs(self) -> dict[str, TensorType]:
        """Output ports with their types."""

    def params(self) -> dict[str, Shape]:
        """The op's own parameters (local name → shape); composites have none of their own."""
        return {}


OUT = "y"
"""The name of a primitive's single output port."""


class Operand(enum.Enum):
    """What the entries of an op's input or parameter are, so examples are drawn right. Token
    ids and one-hot rows are told by the types (spec/types.py); this says the rest."""

    REAL = "real"
    """Generic reals, each meeting one rounding (element-wise inputs, biases, tables)."""
    PRODUCT = "product"
    """An operand of a sum of products (x and W of an affine map): exact checks draw dyadic
    values here, so that float64 sums of products are exact and 1e-12 stays meaningful."""
    SCORES = "scores"
    """Attention logits: the hard cases are ties, values near ±1e4 and rows mixing both."""
    WEIGHTS = "weights"
    """Attention weights (a softmax's output): non-negative, and operands of a sum of products."""
    GAIN = "gain"
    """A scale applied to normalised values (layer norm's γ): drawn around 1."""


SIZE_FIELDS = ("d", "d_in", "d_out", "n_vocab", "n_ctx", "d_head", "d_v", "n_heads", "rows", "q_rows", "k_rows")
"""Fields that count features or positions, by name, wherever an op has them."""
ROW_FIELDS = ("rows", "q_rows", "k_rows")
"""Size fields that count positions: 0 is allowed (the empty sequence); widths are ≥ 1."""


def check_sizes(op: object) -> None:
    """Refuse a size field (:data:`SIZE_FIELDS`) that is a bool, not a whole number, or too
    small; symbolic sizes are positive by construction."""
    if not dataclasses.is_dataclass(op):
        return
    for f in dataclasses.fields(op):
        if f.name not in SIZE_FIELDS:
            continue
        value = getattr(op, f.name)
        least = 0 if f.name in ROW_FIELDS else 1
        if isinstance(value, bool) or not isinstance(value, (int, sympy.Expr)):
            raise ConfigError(f"{f.name}={value!r}, but expected a whole number ≥ {least} or a dim symbol [{type(op).__name__}]")
        expr = sympy.sympify(value)
        if expr.is_number and not (expr.is_Integer and expr >= least):
            raise ConfigError(
                f"{f.name}={value!r}, but expected a whole number ≥ {least} [{type(op).__name__}]; "
                "sizes count rows or features"
            )


class Primitive(Op):
    """An op with a direct definition. Subclasses are frozen dataclasses whose fields are the
    op's attributes (dims, ε, scale, mask, …)."""

    latex: ClassVar[str]
    """The definition, with the same letters the reference code uses as variable names."""
    citation: ClassVar[str] = ""
    """Where the definition comes from, and how the source's notation maps to ours."""
    operands: ClassVar[Mapping[str, Operand]] = {}
    """What each input or parameter holds, by name (absent: :attr:`Operand.REAL`)."""
    notation: ClassVar[str] = ""
    """The op applied to whole arrays, as a LaTeX template of its operands' expressions, so a
    composite's equations can be derived from its DAG (gptspec/docs/equations.py): ``⟨x⟩`` stands
    for the expression of the input or parameter ``x``, ``⟨z_*⟩`` for every input ``z_0, z_1, …``
    in order, ``⟨:scale⟩`` for the value of the attribute ``scale``; ``⟦…⟧`` is dropped when a
    parameter or attribute inside it is absent (no bias, an attribute that is None or False), and
    ``⟦X ‖ Y⟧`` reads X when everything in X is present, Y otherwise. E.g. ``⟨x⟩ ⟨W⟩⟦ + ⟨b⟩⟧``.
    Empty: the op is written as a function of its operands, named by its kind."""

    def __post_init__(self) -> None:
        check_sizes(self)
        self.check()

    def check(self) -> None:
        """Rules on the attributes beyond sizes (ε ≥ 0, a padding that keeps the length, …)."""

    def operand(self, name: str) -> Operand:
        """What input or parameter ``name`` holds."""
        return self.operands.get(name, Operand.REAL)

    def id_bound(self) -> int | None:
        """For an op reading token ids: ids must be below this (None: the op reads no id's
        value, any id will do)."""
        return None

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        """Small instances covering the attributes' hard cases; row counts are T (and S) or
        small concrete numbers, widths small concrete numbers. Each primitive defines it."""
        raise NotImplementedError(f"{cls.__name__}.examples: every primitive gives a strategy of small instances")

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        """Fixed small instances with every row count n, covering each attribute that changes
        which positions are read (every mask family, every padding). Each primitive defines it;
        the list's order must not depend on n."""
        raise NotImplementedError(f"{cls.__name__}.instances: every primitive gives fixed small instances")

    @abc.abstractmethod
    def output(self) -> TensorType:
        """The type of the single output ``y``."""

    def outputs(self) -> dict[str, TensorType]:
        return {OUT: self.output()}

    @abc.abstractmethod
    def dependency(self) -> dict[str, Relation]:
        """For each input port: which of its positions output row t can depend on."""

    def support(self) -> Relation | None:
        """For an output with a key axis (T × S): the relation outside which entry (t, s) is
        identically 0 whatever the inputs (a masked softmax: its mask); None when it may be
        non-zero anywhere. proofs/dependency.py uses it to bound what reads this output."""
        return None

    @abc.abstractmethod
    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        """The output entry ``y[index]`` in index notation.

        ``inputs`` and ``params`` are IndexedBases whose ``shape`` gives the sizes (symbols for
        proofs, integers for exact evaluation); sums are ``sympy.Sum`` over dummy indices.
        """

    def bind(self, sizes: Mapping[sympy.Symbol, int]) -> Primitive:
        """A copy with every symbolic attribute evaluated at ``sizes``: sizes become ints,
        other numbers (a scale 1/√d_head) stay exact sympy numbers. Ops are values, so the
        result is remembered (interpreters bind the same ops at every call)."""
        if not dataclasses.is_dataclass(self):
            return self
        relevant = self.free_attribute_symbols()
        if not relevant:
            return self._bind_uncached(sizes)
        key = tuple(sorted(((s, int(v)) for s, v in sizes.items() if s in relevant), key=lambda item: str(item[0])))
        try:
            return _bound(self, key)
        except TypeError:  # an unhashable attribute: bind without remembering
            return self._bind_uncached(sizes)

    def free_attribute_symbols(self) -> frozenset[sympy.Symbol]:
        """The symbols the op's attributes leave free (what :meth:`bind` substitutes)."""
        found: set[sympy.Symbol] = set()
        if not dataclasses.is_dataclass(self):
            return frozenset()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, sympy.Basic):
                found |= value.free_symbols
        return frozenset(found)

    def _bind_uncached(self, sizes: Mapping[sympy.Symbol, int]) -> Primitive:
        if not dataclasses.is_dataclass(self):
            return self
        changes: dict[str, object] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, sympy.Basic) and value.free_symbols:
                bound = value.subs(dict(sizes))
                changes[f.name] = int(bound) if bound.is_Integer else bound
            elif isinstance(value, sympy.Integer):
                changes[f.name] = int(value)
        return dataclasses.replace(self, **changes) if changes else self

    def free_dims(self) -> set[sympy.Symbol]:
        """The dims this op leaves symbolic: in its types, parameter shapes and attributes."""
        found: set[sympy.Symbol] = set()
        shapes = [t.shape for t in (*self.inputs().values(), self.output())] + list(self.params().values())
        for shape in shapes:
            for d in shape:
                found |= sympy.sympify(d).free_symbols
        for value in self.attributes().values():
            if isinstance(value, sympy.Basic):
                found |= value.free_symbols
        return found

    def attributes(self) -> dict[str, object]:
        """The op's attributes by field name (what the reference functions take as keywords)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def bind_to_arrays(
    op: Primitive, inputs: Mapping[str, npt.ArrayLike], params: Mapping[str, npt.ArrayLike]
) -> Primitive:
    """``op`` with every symbolic dim bound from the arrays' shapes; refuses a missing or
    extra array and a shape that does not match the declared one."""
    where = f"{type(op).__name__} ({op.kind})"
    declared: dict[str, Shape] = {name: t.shape for name, t in op.inputs().items()}
    declared.update(op.params())
    arrays = {**inputs, **params}
    for name in declared:
        if name not in arrays:
            raise ShapeError(
                f"array {name!r} is missing, but expected arrays {sorted(declared)} [{where}]; "
                "pass every input and parameter the op declares"
            )
    extra = sorted(set(arrays) - set(declared))
    if extra:
        raise ShapeError(f"arrays {extra} are not declared by the op, but expected only {sorted(declared)} [{where}]")
    sizes: dict[sympy.Symbol, int] = {}
    for name, shape in declared.items():
        got = np.shape(arrays[name])
        if len(got) != len(shape):
            raise ShapeError(f"{name} has shape {got}, but the op declares {show(shape)} [{where}]")
        for dim, n in zip(shape, got):
            dim = sympy.sympify(dim)
            if isinstance(dim, sympy.Symbol) and sizes.setdefault(dim, n) != n:
                raise ShapeError(
                    f"{name} has {dim}={n}, but expected {dim}={sizes[dim]} as another array gives [{where}]"
                )
    bound = op.bind(sizes)
    concrete: dict[str, Shape] = {name: t.shape for name, t in bound.inputs().items()}
    concrete.update(bound.params())
    for name, shape in concrete.items():
        if tuple(np.shape(arrays[name])) != tuple(shape):
            raise ShapeError(
                f"{name} has shape {np.shape(arrays[name])}, but the op declares {show(declared[name])} "
                f"= {show(shape)} [{where}]"
            )
    return bound


@functools.lru_cache(maxsize=65536)
def _bound(op: Primitive, sizes: tuple[tuple[sympy.Symbol, int], ...]) -> Primitive:
    return op._bind_uncached(dict(sizes))


P = TypeVar("P", bound=type[Primitive])

PRIMITIVES: dict[str, type[Primitive]] = {}
"""Every primitive op by kind, in registration order."""


def register(cls: P) -> P:
    """Class decorator: add a primitive to :data:`PRIMITIVES` under its ``kind``."""
    if cls.kind in PRIMITIVES:
        raise ConfigError(
            f"op kind={cls.kind!r} is registered twice ({PRIMITIVES[cls.kind].__name__} and "
            f"{cls.__name__}), but expected unique kinds [spec.op.register]; rename one"
        )
    PRIMITIVES[cls.kind] = cls
    return cls


def primitive(kind: str) -> type[Primitive]:
    """The registered primitive ``kind``."""
    if kind not in PRIMITIVES:
        import difflib

        close = difflib.get_close_matches(kind, list(PRIMITIVES), n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"op kind={kind!r}, but expected one of {list(PRIMITIVES)} [spec.op.PRIMITIVES]{hint}")
    return PRIMITIVES[kind]


F = TypeVar("F", bound=Callable[..., object])


class Implementations(Generic[F]):
    """An interpreter's table of functions by op kind, filled by one decorator shape:

        REFERENCE = Implementations("reference", "reference/ops/")

        @REFERENCE.implements(Affine)
        def affine(op: Affine, x, W, b=None): ...

    Looking up a kind with no function is a :class:`~spec.errors.ConfigError` naming the op and
    where its function belongs."""

    def __init__(self, interpreter: str, home: str) -> None:
        self.interpreter = interpreter
        self.home = home
        self._table: dict[str, F] = {}

    def implements(self, op: type[Primitive]) -> Callable[[F], F]:
        """Decorator: register ``fn`` as this interpreter's function for ``op``."""
        if not (isinstance(op, type) and issubclass(op, Primitive)):
            raise ConfigError(f"op={op!r}, but expected a Primitive class [{self.interpreter} implements]")

        def decorate(fn: F) -> F:
            if op.kind in self._table:
                raise ConfigError(
                    f"{self.interpreter} function for op kind={op.kind!r} is registered twice, but expected one "
                    f"[{self.interpreter} implements]"
                )
            self._table[op.kind] = fn
            return fn

        return decorate

    def __getitem__(self, kind: str) -> F:
        if kind not in self._table:
            raise ConfigError(
                f"op kind={kind!r} has no {self.interpreter} function, but expected one for every op it runs "
                f"[{self.interpreter}]; register it with @{self.interpreter.upper()}.implements(...) in {self.home}"
            )
        return self._table[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def override(self, kind: str, fn: F) -> F:
        """Replace the function of ``kind`` and return the old one (benchmarks instrument kernels
        this way; restore it afterwards)."""
        old = self[kind]
        self._table[kind] = fn
        return old

    def missing(self) -> list[str]:
        """Registered primitives this table has no function for."""
        return [kind for kind in PRIMITIVES if kind not in self._table]
