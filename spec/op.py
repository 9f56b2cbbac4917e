"""Ops: the vertices of the DAG.

A **primitive** op is one object carrying everything every interpreter needs: its ``kind``
(the same name in ``spec/``, ``reference/`` and ``fast/``), its input and output types as
functions of its dims, its parameters and their shapes, its LaTeX definition, a sympy
definition in index notation, and its positional dependency rule. A **composite** op is a
sub-DAG with a declared interface (``spec.graph.Composite``).

Primitives are registered explicitly with :func:`register`, never discovered by scanning.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import ClassVar, TypeVar

import sympy

from spec.dims import Shape
from spec.errors import ConfigError
from spec.masks import Relation
from spec.types import TensorType


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


class Primitive(Op):
    """An op with a direct definition. Subclasses are frozen dataclasses whose fields are the
    op's attributes (dims, ε, scale, mask, …)."""

    latex: ClassVar[str]
    """The definition, with the same letters the reference code uses as variable names."""
    citation: ClassVar[str] = ""
    """Where the definition comes from, and how the source's notation maps to ours."""

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
        other numbers (a scale 1/√d_head) stay exact sympy numbers."""
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

    def attributes(self) -> dict[str, object]:
        """The op's attributes by field name (what the reference functions take as keywords)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


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
