"""Incremental decoding (a KV cache), as the spec defines it: what is cached, what is extended,
and in which order a prefix and its extensions are evaluated.

A decoder is run once on a prompt (the *prefill*) and then *extended* by new positions, every
call running each primitive on the new rows only. Which inputs need more than the new rows is
read off the ops' own dependency rules (spec/masks.py, ``Relation.row_local``):

- an input an op reads only at its output's own row (row-wise, or no position at all) is given
  the new rows;
- an input it reads across positions — the keys of attention scores (``KeyRow``), the values of a
  weighted sum (``SupportOf``), a convolution's window — is **cached**: its rows from earlier calls
  are kept and this call's rows appended, so the op sees every row so far.

Each op then computes its output rows ``first … length − 1`` at the sequence length ``length``
(a T × S value: those rows, each over the ``length`` keys so far). Nothing else is kept between
calls. :func:`extend` is this evaluation order, written once over a small protocol
(:class:`Rows`) so that it can run on any representation of the values.

fast/program.py implements this plan: its op-by-op steps cache exactly :func:`cached_ports`, and
its fused attention caches the K and V that the scores' ``KeyRow`` and the weighted sum's
``SupportOf`` read (tests/test_causality_decoding.py checks that the two agree). proofs/ runs
:func:`extend` on the ops' sympy definitions (theorem ``kv_cache_equals_full_evaluation``):
prefill then extend by one row equals the full evaluation, row for row.

Only a decoder that reads one sequence is planned here; an encoder–decoder's context inputs
(computed once, never extended: fast/program.py's *static* steps) are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from spec.errors import ConfigError, ShapeError
from spec.graph import Graph, Node, Source
from spec.op import Primitive

V = TypeVar("V")


def cached_ports(op: Primitive) -> tuple[str, ...]:
    """The inputs of ``op`` that decoding keeps and extends: those its rule reads across
    positions (not ``row_local``)."""
    return tuple(port for port, rule in op.dependency().items() if not rule.row_local())


@dataclass(frozen=True)
class Step:
    """One primitive of the plan: where it is, what it reads, which inputs are cached."""

    path: str
    node: Node
    sources: Mapping[str, str]
    """Input port → the path of the value it reads (``input.<name>`` for the graph's input)."""
    cached: tuple[str, ...]

    @property
    def op(self) -> Primitive:
        op = self.node.op
        if not isinstance(op, Primitive):
            raise ConfigError(f"node {self.path} is {type(op).__name__}, but expected a primitive [spec.decoding]")
        return op


@dataclass(frozen=True)
class Plan:
    """The primitives of a decoder in evaluation order, each with its cached inputs."""

    steps: tuple[Step, ...]
    outputs: Mapping[str, str]
    """Output name → the path of the value it is."""
    inputs: tuple[str, ...]
    """The inputs that grow with the sequence (a decoder: its token ids)."""


def plan(arch: Graph) -> Plan:
    """The decoding plan of ``arch``: every primitive, in topological order, with
    :func:`cached_ports`. A decoder reads one sequence; more inputs are refused."""
    if len(arch.inputs) != 1:
        raise ConfigError(
            f"inputs={list(arch.inputs)}, but expected one decoded input [spec.decoding]; an encoder–decoder's context "
            "inputs are computed once at the prefill and never extended, which this plan does not model"
        )
    outputs: dict[str, str] = {}
    steps = []
    for path, node, sources in arch.expand(outputs=outputs):
        op = node.op
        if not isinstance(op, Primitive):
            raise ConfigError(f"node {path} is {type(op).__name__}, but expected a primitive [spec.decoding]")
        steps.append(Step(path, node, dict(sources), cached_ports(op)))
    return Plan(tuple(steps), outputs, (next(iter(arch.inputs)),))


def single(op: Primitive, path: str = "op") -> Plan:
    """The plan of one primitive whose every input grows with the sequence (an op alone: its
    inputs are given row by row as decoding would give them)."""
    node = Node(path, op, {port: Source(None, port) for port in op.inputs()})
    return Plan((Step(path, node, {port: f"input.{port}" for port in op.inputs()}, cached_ports(op)),), {"y": path}, tuple(op.inputs()))


class Rows(Protocol[V]):
    """How :func:`extend` runs an op and keeps a cache, for one representation of the values."""

    def run(self, step: Step, length: int, first: int, inputs: Mapping[str, V]) -> V:
        """Rows ``first … length − 1`` of the op's output at sequence length ``length``, given for
        each input port its rows ``first … length − 1`` (a row-local port) or ``0 … length − 1``
        (a cached port)."""
        ...

    def append(self, kept: V, new: V) -> V:
        """The rows of ``kept`` followed by the rows of ``new``."""
        ...


@dataclass
class Cache(Generic[V]):
    """What decoding carries from one call to the next: how many positions were run, and every
    cached input's rows so far, by (step path, port)."""

    length: int = 0
    kept: dict[tuple[str, str], V] = field(default_factory=dict)


def extend(plan: Plan, cache: Cache[V], new: Mapping[str, V], count: int, rows: Rows[V]) -> tuple[dict[str, V], Cache[V]]:
    """Run positions ``cache.length … cache.length + count − 1`` (``new``: each growing input's
    rows there) and return the outputs' rows for them and the extended cache. The prefill is
    ``extend(plan, Cache(), {"ids": ids}, len(ids), rows)``; decoding one more token is
    ``extend(plan, cache, {"ids": [id]}, 1, rows)``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ShapeError(f"count={count!r}, but expected a whole number ≥ 1 of new positions [spec.decoding]")
    if set(new) != set(plan.inputs):
        raise ShapeError(f"new rows of {sorted(new)}, but expected rows of the growing inputs {list(plan.inputs)} [spec.decoding]")
    first = cache.length
    length = first + count
    values: dict[str, V] = {f"input.{name}": value for name, value in new.items()}
    kept: dict[tuple[str, str], V] = {}
    for step in plan.steps:
        args: dict[str, V] = {}
        for port, src in step.sources.items():
            value = values[src]
            if port in step.cached:
                before = cache.kept.get((step.path, port))
                if before is None and first > 0:
                    raise ShapeError(f"the cache has no rows of {step.path}.{port}, but expected {first} [spec.decoding]")
                value = value if before is None else rows.append(before, value)
                kept[(step.path, port)] = value
            args[port] = value
        values[step.path] = rows.run(step, length, first, args)
    return {name: values[path] for name, path in plan.outputs.items()}, Cache(length, kept)


__all__ = ["Cache", "Plan", "Rows", "Step", "cached_ports", "extend", "plan", "single"]
