"""Theorems as data, the registry, and proof steps that fail loudly.

A :class:`Theorem` carries its statement (in words and in LaTeX), its hypotheses, its scope
(what the sympy proof covers: every size symbolically, or every case up to a stated size), a
``prove`` function and a ``witness`` function. ``prove`` derives the statement from the spec's
own definitions with sympy and raises :class:`ProofFailed` at the first step that does not
hold; ``witness`` checks it numerically through reference/ on hypothesis-drawn examples,
usually at larger sizes than the proof expands, and raises :class:`WitnessFailed`.

Theorems are registered explicitly with the :func:`theorem` decorator, in the order their
modules are imported by ``proofs.theorems``; :mod:`proofs.runner` selects and runs them (this
module imports no theorem, so the import graph of proofs/ has no cycle: core ← theorems ← runner).

:class:`ProofFailed` and :func:`require_zero` are defined in :mod:`proofs.algebra`, which
imports nothing else of proofs/, and re-exported here (theorems import the steps from here).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proofs.algebra import ProofFailed as ProofFailed  # re-exported: theorems import the steps from here
from proofs.algebra import require_zero as require_zero
from spec.errors import GptSpecError


class WitnessFailed(GptSpecError):
    """A numeric witness that disagrees with the statement."""


class Kind(enum.Enum):
    """How much of the statement the sympy proof covers."""

    SYMBOLIC = "symbolic"  # every size, every value: sizes are symbols
    EXHAUSTIVE = "exhaustive"  # every case up to a stated size (entries may still be symbols)
    MIXED = "symbolic + exhaustive"  # symbolic in some sizes, exhaustive in others


@dataclass(frozen=True)
class Scope:
    """What the proof covers, said honestly."""

    kind: Kind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


@dataclass(frozen=True)
class Theorem:
    """One machine-checked statement about the spec."""

    name: str
    title: str
    statement: str
    statement_latex: str
    hypotheses: tuple[str, ...]
    scope: Scope
    prove: Callable[[], None]
    witness: Callable[[int], None]
    refutes: str = ""
    """For a theorem that settles a claim from the sources: the claim, as the source makes it."""
    derived_from: str = ""
    """Exactly what the proof derives the statement from (which definitions, which code the
    interpreters run, which built architectures); docs/proofs.md shows it."""
    ops: tuple[str, ...] = ()
    """The primitive kinds (spec.op.PRIMITIVES) the statement is about: it applies to an
    architecture that uses all of them (``gptspec docs`` lists it there); () for a statement
    about the spec's machinery (Θ, the dependency typing) that applies to every architecture."""
    families: tuple[str, ...] = ()
    """The registered families (spec.architectures.registry) the statement is about, when it is
    about what a builder builds (a parameter count, causality by typing); () for every family."""


THEOREMS: dict[str, Theorem] = {}
"""Every theorem by name, in registration order."""


def theorem(
    *,
    name: str,
    title: str,
    statement: str,
    latex: str,
    hypotheses: Sequence[str],
    scope: Scope,
    witness: Callable[[int], None],
    refutes: str = "",
    derived_from: str = "",
    ops: Sequence[str] = (),
    families: Sequence[str] = (),
) -> Callable[[Callable[[], None]], Theorem]:
    """Decorator: the decorated function is the proof; register the theorem under ``name``."""

    def register(prove: Callable[[], None]) -> Theorem:
        if name in THEOREMS:
            raise ProofFailed(f"theorem name={name!r} is registered twice, but expected unique names [proofs]")
        thm = Theorem(name, title, statement, latex, tuple(hypotheses), scope, prove, witness, refutes, derived_from, tuple(ops), tuple(families))
        THEOREMS[name] = thm
        return thm

    return register


# -- proof steps ---------------------------------------------------------------------------


def require(condition: bool, step: str) -> None:
    """A proof step: ``condition`` must hold."""
    if not condition:
        raise ProofFailed(f"step failed: {step}")


def witness_check(condition: bool, what: str) -> None:
    """A witness step: ``condition`` must hold on the drawn example."""
    if not condition:
        raise WitnessFailed(what)


X = TypeVar("X")


def for_all(strategy: st.SearchStrategy[X], examples: int, check: Callable[[X], None]) -> None:
    """Run ``check`` on ``examples`` hypothesis-drawn values (shrinking a failure)."""

    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(strategy)
    def run(value: Any) -> None:
        check(value)

    run()
