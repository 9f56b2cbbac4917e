"""Incremental decoding (a KV cache), as the spec defines it: what is cached, what is extended,
what is computed once, and in which order a prefix and its extensions are evaluated.

A decoder is run once on a prompt (the *prefill*) and then *extended* by new positions, every
call running each step on the new rows only. Which inputs need more than the new rows is read
off the ops' own dependency rules (spec/masks.py, ``Relation.row_local``):

- an input an op reads only at its output's own row (row-wise, or no position at all) is given
  the new rows;
- an input it reads across positions — the keys of attention scores (``KeyRow``), the values of a
  weighted sum (``SupportOf``), a convolution's window — is **cached**: its rows from earlier calls
  are kept and this call's rows appended, so the op sees every row so far.

Each op then computes its output rows ``first … length − 1`` at the sequence length ``length``
(a T × S value: those rows, each over the ``length`` keys so far).

**Context inputs.** An architecture may read more than one sequence (an encoder–decoder:
``source`` and ``ids``). The *decoded* input is the one whose rows are the logits' rows
(:func:`decoded_input`); the others are *context*, given whole at the prefill and never extended.
A step that reads context only (the encoder, and the K/V projections of its output in every
cross-attention) is *static*: it runs once, at the prefill, and the static values later steps
read are kept in the :class:`Cache` and read as they are by every extension — never recomputed,
never appended to (an input that does not grow is not a cache to extend).

**Composites run whole.** ``plan(arch, stop=...)`` keeps a composite for which ``stop`` holds as
one step (how fast/ runs multi-head attention as one fused kernel). The plan gives it the new
rows of its inputs, and the implementation keeps, under the step's path in the cache, what the
primitives inside it would cache (fast/'s fused attention: the K and V every head's scores and
weighted sum read across rows; tests/test_causality_decoding.py checks it against the plan of
the primitives).

Nothing else is kept between calls. :func:`extend` is this evaluation order, written once over a
small protocol (:class:`Rows`) so that it runs on any representation of the values: fast/
(fast/program.py) runs it on its batched kernels, proofs/ on the ops' sympy definitions (theorem
``kv_cache_equals_full_evaluation``: prefill then extend by one row equals the full evaluation,
row for row), tests on reference/'s op functions. After each step, the values no later step
reads are dropped (so an implementation reuses their memory).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from spec.errors import ConfigError, ShapeError
from spec.graph import Graph, Node, Source
from spec.op import Primitive

V = TypeVar("V")

INPUT = "input."
"""The prefix of a graph input's path (``input.<name>``)."""


def cached_ports(op: Primitive) -> tuple[str, ...]:
    """The inputs of ``op`` that decoding keeps and extends when they grow: those its rule reads
    across positions (not ``row_local``)."""
    return tuple(port for port, rule in op.dependency().items() if not rule.row_local())


@dataclass(frozen=True)
class Step:
    """One step of the plan: where it is, what it reads, which inputs are cached."""

    path: str
    node: Node
    sources: Mapping[str, str]
    """Input port → the path of the value it reads (``input.<name>`` for the graph's input)."""
    cached: tuple[str, ...]
    static: bool = False
    """Reads context inputs only: run once, at the prefill."""

    @property
    def op(self) -> Primitive:
        op = self.node.op
        if not isinstance(op, Primitive):
            raise ConfigError(f"node {self.path} is {type(op).__name__}, but expected a primitive [spec.decoding]")
        return op

    @property
    def whole(self) -> bool:
        """A composite run as one step (``plan(arch, stop=...)``): it keeps its own cache."""
        return not isinstance(self.node.op, Primitive)


@dataclass(frozen=True)
class Plan:
    """The steps of a decoder in evaluation order, each with its cached inputs."""

    steps: tuple[Step, ...]
    outputs: Mapping[str, str]
    """Output name → the path of the value it is."""
    inputs: tuple[str, ...]
    """The inputs that grow with the sequence (a decoder: its token ids)."""
    context: tuple[str, ...] = ()
    """The inputs given whole at the prefill and never extended (an encoder–decoder's source)."""
    kept: frozenset[str] = frozenset()
    """The static values (and context inputs) that steps after the prefill read: kept in the cache."""
    drops: tuple[tuple[str, ...], ...] = ()
    """After step i, the values no later step reads (outputs are never dropped); empty: keep all."""


def decoded_input(arch: Graph) -> str:
    """The input whose rows are the logits' rows (the sequence scored and generated): the only
    input, or the one whose length is the row dim of the output ``logits`` (else the first output)."""
    if len(arch.inputs) == 1:
        return next(iter(arch.inputs))
    name = "logits" if "logits" in arch.outputs else next(iter(arch.outputs))
    rows = arch._check_source(arch.outputs[name], f"output {name!r}").shape[0]
    for name, ttype in arch.inputs.items():
        if ttype.shape and ttype.shape[0] == rows:
            return name
    raise ConfigError(f"inputs={list(arch.inputs)}, but expected one whose rows are the logits' rows [spec.decoding {arch.name}]")


def plan(arch: Graph, stop: Callable[[Node], bool] | None = None) -> Plan:
    """The decoding plan of ``arch``: every primitive (and every composite for which ``stop``
    holds, as one step), in topological order, each with the inputs it caches — the ports
    :func:`cached_ports` names whose value grows — and whether it is static."""
    decoded = decoded_input(arch)
    growing = {f"{INPUT}{decoded}"}  # the values that grow with the decoded sequence
    outputs: dict[str, str] = {}
    steps = []
    for path, node, sources in arch.expand(stop=stop, outputs=outputs):
        op = node.op
        if isinstance(op, Primitive):
            cached = tuple(port for port in cached_ports(op) if sources[port] in growing)
        elif stop is not None:
            cached = ()  # run whole: it keeps what the primitives inside it cache
        else:
            raise ConfigError(f"node {path} is {type(op).__name__}, but expected a primitive [spec.decoding]")
        static = not any(src in growing for src in sources.values())
        if not static:
            growing.add(path)
            growing.update(f"{path}.{port}" for port in list(op.outputs())[1:])
        steps.append(Step(path, node, dict(sources), cached, static))
    kept = frozenset(src for step in steps if not step.static for src in step.sources.values() if src not in growing)
    last = {src: i for i, step in enumerate(steps) for src in step.sources.values()}
    drops: list[list[str]] = [[] for _ in steps]
    for src, i in last.items():
        if src not in outputs.values():
            drops[i].append(src)
    context = tuple(name for name in arch.inputs if name != decoded)
    return Plan(tuple(steps), outputs, (decoded,), context, kept, tuple(tuple(d) for d in drops))


def single(op: Primitive, path: str = "op") -> Plan:
    """The plan of one primitive whose every input grows with the sequence (an op alone: its
    inputs are given row by row as decoding would give them)."""
    node = Node(path, op, {port: Source(None, port) for port in op.inputs()})
    return Plan((Step(path, node, {port: f"{INPUT}{port}" for port in op.inputs()}, cached_ports(op)),), {"y": path}, tuple(op.inputs()))


class Rows(Protocol[V]):
    """How :func:`extend` runs an op and keeps a cache, for one representation of the values."""

    def run(self, step: Step, length: int, first: int, inputs: Mapping[str, V]) -> V:
        """Rows ``first … length − 1`` of the op's output at sequence length ``length``, given for
        each input port its rows ``first … length − 1`` (a row-local port) or ``0 … length − 1``
        (a cached port). A static step is given its inputs whole."""
        ...

    def append(self, kept: V, new: V) -> V:
        """The rows of ``kept`` followed by the rows of ``new``."""
        ...


class WholeRows(Rows[V], Protocol[V]):
    """Rows that also run composites whole (a plan made with ``stop``)."""

    def run_whole(self, step: Step, length: int, first: int, inputs: Mapping[str, V], kept: dict[tuple[str, str], Any] | None) -> V:
        """As :meth:`Rows.run`, for a composite given its new rows; what it caches it reads from and
        writes to ``kept`` under ``(step.path, name)`` (None: a call that keeps nothing)."""
        ...


@dataclass
class Cache(Generic[V]):
    """What decoding carries from one call to the next: how many positions were run, every
    cached input's rows so far by (step path, port) — and what composites run whole keep, under
    their path —, and the static values later steps read, by path."""

    length: int = 0
    kept: dict[tuple[str, str], Any] = field(default_factory=dict)
    static: dict[str, V] = field(default_factory=dict)


def extend(
    plan: Plan, cache: Cache[V], new: Mapping[str, V], count: int, rows: Rows[V], context: Mapping[str, V] | None = None,
) -> tuple[dict[str, V], Cache[V]]:
    """Run positions ``cache.length … cache.length + count − 1`` (``new``: each growing input's
    rows there; at the prefill, ``context``: every context input whole) and return the outputs'
    rows for them and the extended cache. The prefill is
    ``extend(plan, Cache(), {"ids": ids}, len(ids), rows)``; decoding one more token is
    ``extend(plan, cache, {"ids": [id]}, 1, rows)``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ShapeError(f"count={count!r}, but expected a whole number ≥ 1 of new positions [spec.decoding]")
    return evaluate(plan, cache, new, cache.length, cache.length + count, rows, context)


def evaluate(
    plan: Plan, cache: Cache[V], new: Mapping[str, V], first: int, length: int, rows: Rows[V],
    context: Mapping[str, V] | None = None, keep: bool = True,
) -> tuple[dict[str, V], Cache[V]]:
    """The evaluation order itself, for rows ``first … length − 1`` (``first = 0``: the prefill,
    which runs the static steps; an implementation that runs a batch of sequences of different
    lengths counts ``first`` and ``length`` in its own columns). ``keep=False``: a call after
    which nothing is decoded (a whole forward) keeps no cache."""
    if set(new) != set(plan.inputs):
        raise ShapeError(f"new rows of {sorted(new)}, but expected rows of the growing inputs {list(plan.inputs)} [spec.decoding]")
    if not 0 <= first <= length:
        raise ShapeError(f"rows first={first} … length={length}, but expected 0 ≤ first ≤ length [spec.decoding]")
    prefill = first == 0
    given = dict(context or {})
    if prefill and set(given) != set(plan.context):
        raise ShapeError(f"context inputs {sorted(given)}, but expected {list(plan.context)} whole at the prefill [spec.decoding]")
    if not prefill and given:
        raise ShapeError(f"context inputs {sorted(given)} after the prefill, but expected them once, at the prefill [spec.decoding]")
    values: dict[str, V] = {f"{INPUT}{name}": value for name, value in {**given, **new}.items()}
    if not prefill:
        values.update(cache.static)
    after: Cache[V] = Cache(length, {} if not keep else {k: v for k, v in cache.kept.items() if not prefill}, {})
    if keep:
        after.static = dict(cache.static) if not prefill else {p: v for p, v in values.items() if p in plan.kept}
    whole = rows if hasattr(rows, "run_whole") else None
    drops = plan.drops or tuple(() for _ in plan.steps)
    for step, drop in zip(plan.steps, drops, strict=True):
        if step.static and not prefill:
            continue
        args: dict[str, V] = {}
        for port, src in step.sources.items():
            value = values[src]
            if port in step.cached:
                before = None if prefill else cache.kept.get((step.path, port))
                if before is None and not prefill:
                    raise ShapeError(f"the cache has no rows of {step.path}.{port}, but expected {first} [spec.decoding]")
                value = value if before is None else rows.append(before, value)
                if keep:
                    after.kept[(step.path, port)] = value
            args[port] = value
        if step.whole:
            if whole is None:
                raise ConfigError(f"step {step.path} is a composite run whole, but expected rows that can run one (run_whole) [spec.decoding]")
            values[step.path] = whole.run_whole(step, length, first, args, after.kept if keep else None)
        else:
            values[step.path] = rows.run(step, length, first, args)
        if keep and step.static and step.path in plan.kept:
            after.static[step.path] = values[step.path]
        for src in drop:
            values.pop(src, None)
    return {name: values[path] for name, path in plan.outputs.items()}, after


__all__ = ["Cache", "Plan", "Rows", "Step", "WholeRows", "cached_ports", "decoded_input", "evaluate", "extend", "plan", "single"]
