"""Dependency typing: which input positions each output position of an architecture can see.

Every primitive declares, per input port, a positional rule (``spec.masks``); this module
composes them along the DAG — relations compose along paths and unite over paths — and gives,
for any architecture, the relation between output position t and input position s.

**The domain.** A relation is a finite union of *windows* ``t + lo ≤ s ≤ t + hi`` with
lo ∈ ℤ ∪ {−∞}, hi ∈ ℤ ∪ {+∞} (bounds are sympy numbers or expressions, so a relation can be
written for a symbolic band width or depth). The families of ``spec.masks`` are windows:
row-wise (0, 0), causal (−∞, 0), banded w (1 − w, 0), full (−∞, +∞), a convolution's
offset window, and the empty union (no dependence). Key padding reads a data-dependent set of
keys, so it is over-approximated by full; an intersection is the intersection of its parts'
windows. Composition adds bounds, union merges windows that overlap or touch.

**Soundness.** Positions live in [0, T); the windows live on ℤ. Composition on ℤ contains
composition on [0, T) (a path through a position outside [0, T) is only extra), so the computed
relation always contains the true one. For windows with hi ≤ 0 the two are equal (a theorem:
``window_composition``), which is what makes the receptive field of banded layers exact.

**Tensors with a key axis** (T × S attention scores and weights) need more than one relation:
entry (t, s) depends on the positions ``query(t)`` ∪ ``key(s)``, and is identically 0 outside
its ``support(t, s)``. Scores: query = Q's, key = K's (``KeyRow``), support = full. Masked
softmax with mask A (``WithinRow(A)``): query = scores.query ∪ A∘scores.key, key = ∅,
support = A (``Primitive.support``). Weighted sum (``SupportOf("A")``): row t reads A's row t
and the V rows in A's support: A.query ∪ A.support∘A.key ∪ A.support∘V.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import sympy

from spec.errors import GptSpecError
from spec.graph import Composite, Graph, Node, Source
from spec.masks import KeyRow, Relation, SupportOf, WithinRow
from spec.op import OUT, Op, Primitive
from spec.types import Axis

oo = sympy.oo


class DependencyError(GptSpecError):
    """A rule or a value the dependency typing does not know how to read."""


Bound: TypeAlias = sympy.Expr
Span: TypeAlias = tuple[Bound, Bound]
"""A window (lo, hi): t + lo ≤ s ≤ t + hi."""


def _number(x: Bound) -> float | int | None:
    """An integer or infinite bound as a Python number (None for a symbolic one)."""
    if isinstance(x, sympy.Integer):
        return int(x)
    if x is sympy.oo:
        return math.inf
    if x is -sympy.oo:
        return -math.inf
    return None


def _le(a: Bound, b: Bound) -> bool | None:
    """a ≤ b when it can be decided (True/False), else None."""
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na <= nb
    decided = sympy.Le(a, b)
    if decided is sympy.true:
        return True
    if decided is sympy.false:
        return False
    return None


@dataclass(frozen=True)
class Windows:
    """A relation in (t, s): the union of its windows (normalised: sorted, merged)."""

    spans: tuple[Span, ...] = ()

    @staticmethod
    def of(*spans: tuple[int | Bound, int | Bound]) -> Windows:
        return Windows(_normalise([(sympy.sympify(lo), sympy.sympify(hi)) for lo, hi in spans]))

    def __or__(self, other: Windows) -> Windows:
        return Windows(_normalise([*self.spans, *other.spans]))

    def then(self, inner: Windows) -> Windows:
        """Composition: (t, s) with some u: (t, u) ∈ self and (u, s) ∈ inner."""
        return Windows(_normalise([(a + c, b + d) for a, b in self.spans for c, d in inner.spans]))

    def __and__(self, other: Windows) -> Windows:
        spans = []
        for a, b in self.spans:
            for c, d in other.spans:
                lo, hi = sympy.Max(a, c), sympy.Min(b, d)
                if _le(lo, hi) is not False:
                    spans.append((lo, hi))
        return Windows(_normalise(spans))

    def causal(self) -> bool:
        """Every window stays at or before t (s ≤ t). Undecidable bounds are not causal."""
        return all(_le(b, 0) is True for _, b in self.spans)

    def allowed(self, t: int, s: int) -> bool:
        """Whether (t, s) is in the relation (False where a symbolic bound leaves it open)."""
        for a, b in self.spans:
            na, nb = _number(a), _number(b)
            if na is not None and nb is not None:
                if t + na <= s <= t + nb:
                    return True
            elif _le(t + a, s) is True and _le(s, t + b) is True:
                return True
        return False

    def text(self) -> str:
        """``t − 6 ≤ s ≤ t``, ``s ≤ t``, ``s = t``, ``all s``, ``no s``."""
        if not self.spans:
            return "no s"
        return " or ".join(_span_text(a, b) for a, b in self.spans)

    def latex(self) -> str:
        if not self.spans:
            return r"\varnothing"
        return r" \;\vee\; ".join(_span_text(a, b, latex=True) for a, b in self.spans)


def _offset(k: Bound, latex: bool) -> str:
    if k == 0:
        return "t"
    minus = "-" if latex else "−"
    if k.is_number:
        return f"t {'+' if k > 0 else minus} {abs(k)}"
    text = sympy.latex(k) if latex else str(k)
    return f"t + ({text})"


def _span_text(a: Bound, b: Bound, latex: bool = False) -> str:
    le = r"\le" if latex else "≤"
    if a == -oo and b == oo:
        return r"\text{all } s" if latex else "all s"
    if a == b:
        return f"s = {_offset(a, latex)}"
    if a == -oo:
        return f"s {le} {_offset(b, latex)}"
    if b == oo:
        ge = r"\ge" if latex else "≥"
        return f"s {ge} {_offset(a, latex)}"
    return f"{_offset(a, latex)} {le} s {le} {_offset(b, latex)}"


def _normalise(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Drop empty windows; merge windows that overlap or touch (on ℤ); sort."""
    kept = [(lo, hi) for lo, hi in spans if _le(lo, hi) is not False]
    merged = True
    while merged:
        merged = False
        for i in range(len(kept)):
            for j in range(i + 1, len(kept)):
                (a, b), (c, d) = kept[i], kept[j]
                if _le(c, b + 1) is True and _le(a, d + 1) is True:  # overlap or adjacent
                    kept[i] = (sympy.Min(a, c), sympy.Max(b, d))
                    del kept[j]
                    merged = True
                    break
            if merged:
                break
    return tuple(sorted(kept, key=lambda w: sympy.default_sort_key(w)))


NONE = Windows()
SAME = Windows.of((0, 0))
ALL = Windows.of((-oo, oo))


def windows(rule: Relation) -> Windows:
    """A positional rule as windows: the relation's own :meth:`~spec.masks.Relation.spans` (exact
    for every family but key padding, which reads a data-dependent set of keys and says "every
    s"; a relation that gives no spans is read as every s, which is sound).

    The declared windows are not taken on trust: before the typing uses them they are checked
    against the relation's own :meth:`~spec.masks.Relation.allowed` on every pair of positions
    in [0, N)² (:func:`uncovered_pair`; N covers every finite bound twice over, at least
    :data:`CHECK_POSITIONS`), so a relation — a family of spec.masks or one a user wrote — whose
    spans() leave out a pair it allows is refused with that pair, rather than typed as if it did
    not read it. (The check is exhaustive on [0, N)², not a proof for every T; proofs/definitions.py
    also checks the indicator and, for the theorems, that the windows are exact.)"""
    key = implementation_key(rule)
    known = _CHECKED.get(key) if key is not None else None
    if known is not None:
        return known
    declared = Windows.of(*rule.spans())
    pair = uncovered_pair(rule, declared)
    if pair is not None:
        raise DependencyError(
            f"relation {rule!r} allows (t, s) = {pair}, but expected every allowed pair inside its declared windows "
            f"{declared.text()} [dependency typing]; spans() must contain every pair allowed() admits (the default, "
            "every s, is always sound)"
        )
    if key is not None:
        _CHECKED[key] = declared
    return declared


CHECK_POSITIONS = 12
"""The least N for which declared windows are checked against ``allowed`` on [0, N)²."""
MAX_CHECK_POSITIONS = 260
"""The most: a band of width 4096 is checked on [0, 260)², where it already behaves as causal."""

_CHECKED: dict[Hashable, Windows] = {}


IMPLEMENTATION = ("allowed", "allowed_array", "spans", "row_local", "indicator", "definition", "scalar", "combine", "dependency", "support")
"""The methods whose answers a cached check depends on."""


def implementation_key(value: object) -> Hashable | None:
    """What the answers of a relation or an op depend on: its value and the functions that
    compute them (for it and every relation or op inside it), so a value whose class is changed —
    a monkeypatched ``allowed`` or ``definition`` in a mutation test — is checked again. None
    when the value is not hashable."""

    def parts(r: object) -> tuple[Hashable, ...]:
        cls = type(r)
        own: tuple[Hashable, ...] = (id(cls), cls.__qualname__, *(getattr(cls, m, None) for m in IMPLEMENTATION))
        inner: tuple[Hashable, ...] = ()
        for item in vars(r).values() if hasattr(r, "__dict__") else ():
            for part in item if isinstance(item, tuple) else (item,):
                if isinstance(part, (Relation, Op)):
                    inner += parts(part)
        return own + inner

    try:
        key = (value, parts(value))
        hash(key)
    except TypeError:
        return None
    return key


def check_size(spans: Iterable[Span], least: int = CHECK_POSITIONS) -> int:
    """N for a check on [0, N)²: at least ``least`` and twice every finite bound plus 3 (so a
    band one wider than declared shows), at most :data:`MAX_CHECK_POSITIONS`."""
    widest = max((abs(int(b)) for span in spans for b in span if isinstance(b, sympy.Integer)), default=0)
    return int(min(max(least, 2 * widest + 3), MAX_CHECK_POSITIONS))


def allowed_matrix(rule: Relation, n: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``rule.allowed(t, s)`` on [0, n)², and where it is defined: a relation may refuse pairs
    outside its domain (key padding refuses a key beyond its valid list); those are left out."""
    allowed = np.zeros((n, n), dtype=bool)
    defined = np.ones((n, n), dtype=bool)
    for t in range(n):
        for s in range(n):
            try:
                allowed[t, s] = bool(rule.allowed(t, s))
            except GptSpecError:
                defined[t, s] = False
    return allowed, defined


def windows_matrix(declared: Windows, n: int) -> npt.NDArray[np.bool_] | None:
    """The pairs of [0, n)² inside ``declared`` (None when a bound is symbolic: undecidable here)."""
    offset = np.arange(n)[None, :] - np.arange(n)[:, None]  # s − t
    inside = np.zeros((n, n), dtype=bool)
    for lo, hi in declared.spans:
        a, b = _number(lo), _number(hi)
        if a is None or b is None:
            return None
        inside |= (offset >= a) & (offset <= b)
    return inside


def uncovered_pair(rule: Relation, declared: Windows | None = None) -> tuple[int, int] | None:
    """The first pair (t, s) of [0, N)² that ``rule.allowed`` admits outside its declared
    windows, or None (also when a bound is symbolic, which this cannot decide)."""
    declared = Windows.of(*rule.spans()) if declared is None else declared
    if declared == ALL:
        return None  # every pair is covered
    n = check_size(declared.spans)
    inside = windows_matrix(declared, n)
    if inside is None:
        return None
    allowed, defined = allowed_matrix(rule, n)
    bad = np.argwhere(allowed & defined & ~inside)
    return None if not bad.size else (int(bad[0][0]), int(bad[0][1]))


# -- abstract values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """A position-indexed value: row t depends on input positions ``on[name](t)`` of each
    graph input."""

    on: Mapping[str, Windows]


@dataclass(frozen=True)
class Pairs:
    """A T × S value: entry (t, s) depends on ``query[name](t)`` ∪ ``key[name](s)``, and is
    identically 0 unless (t, s) ∈ ``support``."""

    query: Mapping[str, Windows]
    key: Mapping[str, Windows]
    support: Windows


Value = Rows | Pairs


def _unite(a: Mapping[str, Windows], b: Mapping[str, Windows]) -> dict[str, Windows]:
    return {n: a.get(n, NONE) | b.get(n, NONE) for n in {*a, *b}}


def _then(rel: Windows, on: Mapping[str, Windows]) -> dict[str, Windows]:
    return {n: rel.then(w) for n, w in on.items()}


def _row_reach(rows: Windows, value: Value, within: Windows = ALL) -> dict[str, Windows]:
    """What reading rows ``rows(t)`` of ``value`` depends on; of a T × S value, only the entries
    (t', s) with s ∈ within(t') ∩ support(t')."""
    if isinstance(value, Rows):
        return _then(rows, value.on)
    columns = within & value.support
    reach = _unite(value.query, _then(columns, value.key))
    return _then(rows, reach)


def transfer(op: Primitive, args: Mapping[str, Value], where: str = "") -> Value:
    """The dependency of ``op``'s output from its inputs', by its declared rules (windows)."""
    value: Value = _transfer(WINDOWS, op, args, where)
    return value


@dataclass
class Typing:
    """Every value's dependency, by path, for one graph."""

    values: dict[str, Value]
    outputs: dict[str, str]
    rules: dict[str, dict[str, Relation]] = field(default_factory=dict)
    """Each primitive's declared rules, by path."""
    reads: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each primitive's input paths, by port."""

    def output(self, name: str | None = None) -> Value:
        """The dependency of a graph output (the only one when ``name`` is None)."""
        if name is None:
            if len(self.outputs) != 1:
                raise DependencyError(f"outputs={list(self.outputs)}, but expected one [dependency typing]; name one")
            name = next(iter(self.outputs))
        return self.values[self.outputs[name]]


def type_graph(graph: Graph) -> Typing:
    """The dependency of every value of ``graph`` (expanded to primitives) on its inputs."""
    values: dict[str, Value] = {f"input.{name}": Rows({name: SAME}) for name in graph.inputs}
    outputs: dict[str, str] = {}
    typing = Typing(values, outputs)
    for path, node, sources in graph.expand(outputs=outputs):
        op = node.op
        if not isinstance(op, Primitive):
            raise DependencyError(f"node {path} is {type(op).__name__}, but expected a primitive [dependency typing]")
        values[path] = transfer(op, {port: values[src] for port, src in sources.items()}, path)
        typing.rules[path] = op.dependency()
        typing.reads[path] = dict(sources)
    return typing


def relation(arch: Graph, output: str | None = None, input: str | None = None) -> Windows:
    """The relation between output position t and input position s of ``arch`` (of input
    ``input``, or of every input together). Computed by :class:`Summaries`: each distinct
    composite is typed once (a GPT's 96 blocks are two distinct composites, their heads one)."""
    value = Summaries().outputs(arch)[_output_name(arch, output)]
    if not isinstance(value, Rows):
        raise DependencyError("the output has a key axis, but expected a position-indexed output [dependency typing]")
    return _rows_reach(value, input)


def _output_name(graph: Graph, output: str | None) -> str:
    if output is None:
        if len(graph.outputs) != 1:
            raise DependencyError(f"outputs={list(graph.outputs)}, but expected one [dependency typing]; name one")
        return next(iter(graph.outputs))
    if output not in graph.outputs:
        raise DependencyError(f"output={output!r}, but expected one of {list(graph.outputs)} [dependency typing]")
    return output


def _rows_reach(value: Rows, input: str | None = None) -> Windows:
    """The positions of ``input`` (of every input when None) a position-indexed value reads."""
    if input is not None:
        return value.on.get(input, NONE)
    out = NONE
    for w in value.on.values():
        out = out | w
    return out


# -- typing one distinct composite once ----------------------------------------------------


Summary = dict[str, dict[str, Windows]]
"""A composite's outputs, each as the relation from its rows to the rows of each input port."""


class Summaries:
    """The dependency of a graph's outputs on its inputs, walking one level at a time and typing
    each *distinct* composite once.

    Every rule transfers dependencies linearly: a value's relation to an input is a union of
    compositions of constant relations (rules, masks, supports) with its arguments' relations.
    So a composite whose inputs and outputs are position-indexed has a summary — for each output
    and input port, the relation R_p from its rows to that port's rows — and applying it,
    out = ∪_p R_p ∘ arg_p, gives exactly what typing its body with those arguments gives
    (composition is associative and distributes over union). Composites are keyed by their
    structure (ops, wiring, mask, widths) without their Θ names, so blocks that differ only in
    their parameters share one summary. A composite with a T × S input or output is walked.
    """

    def __init__(self) -> None:
        self._summaries: dict[Hashable, Summary | None] = {}
        self._keys: dict[int, tuple[Hashable, Op]] = {}

    def key(self, op: Op) -> Hashable:
        """The structure of ``op``: a primitive is its own key (a frozen dataclass: kind and
        attributes); a composite is its kind, its body's wiring and its nodes' keys."""
        if not isinstance(op, Composite):
            return op
        known = self._keys.get(id(op))
        if known is not None:
            return known[0]
        body = op.body
        nodes = tuple(
            (node.name, self.key(node.op), tuple(sorted((port, str(src)) for port, src in node.inputs.items())))
            for node in body.nodes.values()
        )
        key = ("composite", op.kind, tuple(body.inputs), nodes, tuple(sorted((n, str(src)) for n, src in body.outputs.items())))
        self._keys[id(op)] = (key, op)  # the op is kept so its id is not reused while cached
        return key

    def summary(self, op: Composite) -> Summary | None:
        """``op``'s summary, or None when an input or output has a key axis."""
        if any(Axis.KEY in t.axes for t in (*op.inputs().values(), *op.outputs().values())):
            return None
        key = self.key(op)
        if key not in self._summaries:
            self._summaries[key] = None  # a composite cannot contain itself; this guards the recursion anyway
            outs = self.outputs(op.body, {port: Rows({port: SAME}) for port in op.body.inputs})
            summary: Summary = {}
            for name, value in outs.items():
                if not isinstance(value, Rows):
                    return None
                summary[name] = dict(value.on)
            self._summaries[key] = summary
        return self._summaries[key]

    def node(self, node: Node, args: Mapping[str, Value], where: str) -> dict[str, Value]:
        """The value of each output port of ``node`` given its arguments."""
        op = node.op
        if isinstance(op, Primitive):
            return {OUT: transfer(op, args, where)}
        if not isinstance(op, Composite):
            raise DependencyError(f"node {where} is {type(op).__name__}, but expected a primitive or a composite [dependency typing]")
        summary = self.summary(op) if all(isinstance(a, Rows) for a in args.values()) else None
        if summary is None:
            return self.outputs(op.body, args)
        out: dict[str, Value] = {}
        for name, per_port in summary.items():
            on: dict[str, Windows] = {}
            for port, rel in per_port.items():
                arg = args[port]
                if isinstance(arg, Rows):
                    on = _unite(on, _then(rel, arg.on))
            out[name] = Rows(on)
        return out

    def level(self, graph: Graph, inputs: Mapping[str, Value]) -> tuple[dict[tuple[str, str], Value], dict[str, Value]]:
        """Every node's output values on one level of ``graph`` (keyed (node, port)), and the
        graph's outputs, for the given values of its inputs."""
        values: dict[tuple[str, str], Value] = {}

        def read(src: Source) -> Value:
            return inputs[src.port] if src.node is None else values[(src.node, src.port)]

        for node in graph.topological():
            args = {port: read(src) for port, src in node.inputs.items()}
            for port, value in self.node(node, args, node.name).items():
                values[(node.name, port)] = value
        return values, {name: read(src) for name, src in graph.outputs.items()}

    def outputs(self, graph: Graph, inputs: Mapping[str, Value] | None = None) -> dict[str, Value]:
        """The value of each output of ``graph`` (its inputs: each its own position by default)."""
        given = {name: Rows({name: SAME}) for name in graph.inputs} if inputs is None else inputs
        return self.level(graph, given)[1]


@dataclass(frozen=True)
class Causality:
    """The verdict of the typing on one architecture."""

    causal: bool
    relation: Windows
    breaks: tuple[tuple[str, str], ...]
    """Where causality is first lost: position-indexed values that are not causal although every
    position-indexed value they are computed from is, each with the rules that let the future in
    (its own, and those of the T × S values in between, e.g. an attention's mask)."""
    input: str | None = None
    """The input the verdict is about (None: every input together)."""

    def describe(self) -> str:
        of = "" if self.input is None else f" of {self.input}"
        if self.causal:
            return f"causal: output position t depends on input positions{of} {self.relation.text()}"
        where = "; ".join(f"{path} [{rules}]" for path, rules in self.breaks)
        return f"NOT causal: output position t depends on{of} {self.relation.text()}; causality is lost at {where}"


def causality(arch: Graph, output: str | None = None, input: str | None = None) -> Causality:
    """Whether every output position t of ``arch`` depends only on positions s ≤ t of ``input``
    (of every input when None; an encoder–decoder is causal in its target, not its source), and
    if not, which nodes break it. The relation is computed with :class:`Summaries`; only the
    composites where causality is lost are then typed primitive by primitive, to name the node."""
    summaries = Summaries()
    value = summaries.outputs(arch)[_output_name(arch, output)]
    if not isinstance(value, Rows):
        raise DependencyError("the output has a key axis, but expected a position-indexed output [dependency typing]")
    rel = _rows_reach(value, input)
    if rel.causal():
        return Causality(True, rel, (), input)
    start = {name: Rows({name: SAME}) for name in arch.inputs}
    return Causality(False, rel, tuple(_breaks(summaries, arch, start, "", input)), input)


def _breaks(summaries: Summaries, graph: Graph, inputs: Mapping[str, Value], prefix: str, input: str | None) -> list[tuple[str, str]]:
    """Where causality (in ``input``) is first lost inside ``graph``, given its inputs' values:
    a composite that loses it is entered (its body is typed with its actual arguments); among
    primitives, a position-indexed value that is not causal although the nearest
    position-indexed values it is computed from are (looking through T × S values)."""

    def causal(value: Value) -> bool:
        return not isinstance(value, Rows) or _rows_reach(value, input).causal()

    values, _ = summaries.level(graph, inputs)
    found: list[tuple[str, str]] = []

    def rows_and_via(name: str) -> tuple[list[Value], list[str]]:
        """The nearest position-indexed values node ``name`` is computed from, and the T × S nodes on the way."""
        rows: list[Value] = []
        via: list[str] = []
        node = graph.nodes[name]
        for src in node.inputs.values():
            value = inputs[src.port] if src.node is None else values[(src.node, src.port)]
            if isinstance(value, Rows) or src.node is None:
                rows.append(value)
            else:
                more, more_via = rows_and_via(src.node)
                rows += more
                via += [src.node, *more_via]
        return rows, via

    for node in graph.topological():
        out = values[(node.name, next(iter(node.op.outputs())))]
        if causal(out):
            continue
        rows, via = rows_and_via(node.name)
        if not all(causal(v) for v in rows):
            continue
        path = f"{prefix}{node.name}"
        if isinstance(node.op, Composite):
            args = {port: (inputs[src.port] if src.node is None else values[(src.node, src.port)]) for port, src in node.inputs.items()}
            found += _breaks(summaries, node.op.body, args, path + ".", input)
            continue
        rules = "; ".join(
            f"{prefix}{p}: " + ", ".join(f"{port} {rule!r}" for port, rule in _rules(graph.nodes[p]).items())
            for p in [node.name, *via]
        )
        found.append((path, rules))
    return found


def _rules(node: Node) -> dict[str, Relation]:
    return node.op.dependency() if isinstance(node.op, Primitive) else {}


# -- at concrete lengths: boolean matrices ----------------------------------------------------


@dataclass(frozen=True)
class RowsAt:
    """A position-indexed value at concrete lengths: ``on[name][t, s]`` is True when row t may
    depend on position s of input ``name``."""

    on: Mapping[str, npt.NDArray[np.bool_]]


@dataclass(frozen=True)
class PairsAt:
    """A T × S value at concrete lengths: entry (t, s) depends on ``query[name][t]`` ∪
    ``key[name][s]`` and is identically 0 unless ``support[t, s]``."""

    query: Mapping[str, npt.NDArray[np.bool_]]
    key: Mapping[str, npt.NDArray[np.bool_]]
    support: npt.NDArray[np.bool_]


ValueAt = RowsAt | PairsAt


def _bool_then(rel: npt.NDArray[np.bool_], on: Mapping[str, npt.NDArray[np.bool_]]) -> dict[str, npt.NDArray[np.bool_]]:
    return {n: (rel.astype(np.int64) @ m.astype(np.int64)) > 0 for n, m in on.items()}


def _bool_unite(a: Mapping[str, npt.NDArray[np.bool_]], b: Mapping[str, npt.NDArray[np.bool_]]) -> dict[str, npt.NDArray[np.bool_]]:
    out = dict(a)
    for n, m in b.items():
        out[n] = out[n] | m if n in out else m
    return out


def _reach_at(rows: npt.NDArray[np.bool_], value: ValueAt, within: npt.NDArray[np.bool_] | None = None) -> dict[str, npt.NDArray[np.bool_]]:
    if isinstance(value, RowsAt):
        return _bool_then(rows, value.on)
    columns = value.support if within is None else value.support & within
    reach = _bool_unite(value.query, _bool_then(columns, value.key))
    return _bool_then(rows, reach)


def transfer_at(op: Primitive, args: Mapping[str, ValueAt], where: str = "") -> ValueAt:
    """:func:`transfer` at concrete lengths: every rule read as its relation's matrix of allowed
    pairs (``Relation.matrix``), so a data-dependent rule (key padding) is exact, not "every s"."""
    value: ValueAt = _transfer(MATRICES, op, args, where)
    return value


# -- one transfer, two domains ------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    """Where relations live: windows on ℤ (symbolic lengths) or boolean matrices (concrete ones).
    :func:`_transfer` is written once over it; ``transfer`` and ``transfer_at`` are its two uses."""

    rows: type[Any]
    pairs: type[Any]
    then: Callable[[Any, Mapping[str, Any]], dict[str, Any]]
    unite: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]
    reach: Callable[..., dict[str, Any]]
    relation: Callable[[Relation, Primitive, str], Any]
    """A rule of port ``port`` as the domain's relation (output rows × input positions)."""
    within: Callable[[WithinRow, Primitive, str], tuple[Any, Any]]
    """A WithinRow rule as (the rows it reads: the same row, the columns it allows)."""
    support: Callable[[Primitive], Any]
    """The output's support (all pairs when the op declares none)."""


def _out_rows(op: Primitive) -> int:
    return int(op.output().shape[0])


def _in_rows(op: Primitive, port: str) -> int:
    return int(op.inputs()[port].shape[0])


def _support(op: Primitive, read: Callable[[Relation], Any], everything: Any) -> Any:
    support = op.support()
    return everything if support is None else read(support)


WINDOWS = Domain(
    Rows, Pairs, _then, _unite, _row_reach,
    relation=lambda rule, op, port: windows(rule),
    within=lambda rule, op, port: (SAME, windows(rule.mask)),
    support=lambda op: _support(op, windows, ALL),
)
MATRICES = Domain(
    RowsAt, PairsAt, _bool_then, _bool_unite, _reach_at,
    relation=lambda rule, op, port: rule.matrix(_out_rows(op), _in_rows(op, port)),
    within=lambda rule, op, port: (np.eye(_out_rows(op), _in_rows(op, port), dtype=bool),
                                   rule.mask.matrix(_out_rows(op), int(op.inputs()[port].shape[1]))),
    support=lambda op: _support(op, lambda rel: rel.matrix(_out_rows(op), int(op.output().shape[1])),
                                np.ones((_out_rows(op), int(op.output().shape[1])), dtype=bool)),
)


def _transfer(d: Domain, op: Primitive, args: Mapping[str, Any], where: str) -> Any:
    """The dependency of ``op``'s output from its inputs', by its declared rules, in domain ``d``."""
    pairs_out = Axis.KEY in op.output().axes
    query: dict[str, Any] = {}
    key: dict[str, Any] = {}
    for port, rule in op.dependency().items():
        value: Any = args[port]
        if isinstance(rule, SupportOf):
            weights: Any = args.get(rule.port)
            if not isinstance(weights, d.pairs) or not isinstance(value, d.rows):
                raise DependencyError(
                    f"{where}.{port} reads the support of {rule.port!r}, but expected {rule.port!r} to be a "
                    "T × S value and this port position-indexed [dependency typing]"
                )
            query = d.unite(query, d.then(weights.support, value.on))
        elif isinstance(rule, KeyRow) and pairs_out and isinstance(value, d.rows):
            key = d.unite(key, value.on)
        elif isinstance(rule, WithinRow):
            rows, within = d.within(rule, op, port)
            query = d.unite(query, d.reach(rows, value, within))
        else:
            query = d.unite(query, d.reach(d.relation(rule, op, port), value))
    if not pairs_out:
        return d.rows(query)
    return d.pairs(query, key, d.support(op))


@functools.lru_cache(maxsize=4096)
def _bind(op: Primitive, dims: tuple[tuple[sympy.Symbol, int], ...]) -> Primitive:
    """``op.bind`` cached: architectures repeat a few distinct ops many times."""
    return op.bind(dict(dims))


def relation_at(arch: Graph, lengths: Mapping[str, int], output: str | None = None) -> dict[str, npt.NDArray[np.bool_]]:
    """For inputs of the given lengths, the boolean matrix of (output row t, input position s)
    pairs the typing allows, per input: exact for every rule's own relation (key padding
    included), sound in general. ``arch`` must have its dims (``Architecture``); the lengths bind
    each input's length dim (T, S)."""
    dims: dict[sympy.Symbol, int] = dict(getattr(arch, "dims", {}))
    for name, n in lengths.items():
        symbol = sympy.sympify(arch.inputs[name].shape[0])
        if isinstance(symbol, sympy.Symbol):
            dims[symbol] = n
    values: dict[str, ValueAt] = {
        f"input.{name}": RowsAt({name: np.eye(lengths[name], dtype=bool)}) for name in arch.inputs
    }
    outputs: dict[str, str] = {}
    frozen = tuple(sorted(dims.items(), key=str))
    for path, node, sources in arch.expand(outputs=outputs):
        op = node.op
        if not isinstance(op, Primitive):
            raise DependencyError(f"node {path} is {type(op).__name__}, but expected a primitive [dependency typing]")
        values[path] = transfer_at(_bind(op, frozen), {port: values[src] for port, src in sources.items()}, path)
    value = values[outputs[_output_name(arch, output)]]
    if not isinstance(value, RowsAt):
        raise DependencyError("the output has a key axis, but expected a position-indexed output [dependency typing]")
    rows = next(iter(value.on.values())).shape[0] if value.on else 0
    return {name: value.on.get(name, np.zeros((rows, lengths[name]), dtype=bool)) for name in arch.inputs}
