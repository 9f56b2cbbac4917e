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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import sympy

from spec.errors import GptSpecError
from spec.graph import Graph
from spec.masks import KeyRow, Relation, SupportOf, WithinRow
from spec.op import Primitive
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
    s"; a relation that gives no spans is read as every s, which is sound)."""
    return Windows.of(*rule.spans())


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
    """The dependency of ``op``'s output from its inputs', by its declared rules."""
    rules = op.dependency()
    pairs_out = Axis.KEY in op.output().axes
    query: dict[str, Windows] = {}
    key: dict[str, Windows] = {}
    for port, rule in rules.items():
        value = args[port]
        if isinstance(rule, SupportOf):
            weights = args.get(rule.port)
            if not isinstance(weights, Pairs) or not isinstance(value, Rows):
                raise DependencyError(
                    f"{where}.{port} reads the support of {rule.port!r}, but expected {rule.port!r} to be a "
                    "T × S value and this port position-indexed [dependency typing]"
                )
            query = _unite(query, _then(weights.support, value.on))
        elif isinstance(rule, KeyRow) and pairs_out and isinstance(value, Rows):
            key = _unite(key, value.on)
        elif isinstance(rule, WithinRow):
            query = _unite(query, _row_reach(SAME, value, windows(rule.mask)))
        else:
            query = _unite(query, _row_reach(windows(rule), value))
    if not pairs_out:
        return Rows(query)
    support = op.support()
    return Pairs(query, key, ALL if support is None else windows(support))


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
    """The relation between output position t and input position s of ``arch``."""
    value = type_graph(arch).output(output)
    if not isinstance(value, Rows):
        raise DependencyError("the output has a key axis, but expected a position-indexed output [dependency typing]")
    names = list(arch.inputs) if input is None else [input]
    out = NONE
    for name in names:
        out = out | value.on.get(name, NONE)
    return out


def _rows_reach(value: Rows) -> Windows:
    out = NONE
    for w in value.on.values():
        out = out | w
    return out


@dataclass(frozen=True)
class Causality:
    """The verdict of the typing on one architecture."""

    causal: bool
    relation: Windows
    breaks: tuple[tuple[str, str], ...]
    """Where causality is first lost: position-indexed values that are not causal although every
    position-indexed value they are computed from is, each with the rules that let the future in
    (its own, and those of the T × S values in between, e.g. an attention's mask)."""

    def describe(self) -> str:
        if self.causal:
            return f"causal: output position t depends on input positions {self.relation.text()}"
        where = "; ".join(f"{path} [{rules}]" for path, rules in self.breaks)
        return f"NOT causal: output position t depends on {self.relation.text()}; causality is lost at {where}"


def causality(arch: Graph, output: str | None = None) -> Causality:
    """Whether every output position t of ``arch`` depends only on input positions s ≤ t, and
    if not, which nodes break it."""
    typing = type_graph(arch)
    rel = relation(arch, output)

    def sources(path: str) -> tuple[list[str], list[str]]:
        """The nearest position-indexed values ``path`` is computed from, and the T × S nodes
        passed on the way."""
        rows, via = [], []
        for src in typing.reads[path].values():
            if isinstance(typing.values[src], Rows):
                rows.append(src)
            else:
                more, more_via = sources(src)
                rows += more
                via += [src, *more_via]
        return rows, via

    breaks = []
    for path in typing.reads:
        value = typing.values[path]
        if not isinstance(value, Rows) or _rows_reach(value).causal():
            continue
        rows, via = sources(path)
        if all(_rows_reach(typing.values[src]).causal() for src in rows):  # type: ignore[arg-type]
            rules = "; ".join(
                f"{p}: " + ", ".join(f"{port} {rule!r}" for port, rule in typing.rules[p].items())
                for p in [path, *via]
            )
            breaks.append((path, rules))
    return Causality(rel.causal(), rel, tuple(breaks))
