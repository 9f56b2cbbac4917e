"""What architecture B changes relative to architecture A, compared as graphs, not by names.

* **Ops.** Each level (the model, then the body of each pair of matched composites) is a
  sequence of items in topological order — a node, or a run of composites of one kind (a chain of
  blocks, parallel heads) counted once with its length. The two sequences are aligned on the op
  kinds (difflib's longest matching blocks); an aligned pair of the same kind is *kept* (its
  attributes compared: ``changed`` when they differ; its wiring compared: ``rewired`` when a port
  reads a value that is not the counterpart of what A's reads), a pair of different kinds is
  *replaced*, an unpaired item *removed* or *added*, a run of another length *repeated*
  differently. Matched composites — kept or replaced — are compared inside the same way. Node
  names only describe where a change is; they never decide what matches.
* **Θ**: entries grouped by name pattern (``blocks.*.attn.W_Q``) with their shapes and counts,
  the total and the count as a formula in the dims.
* **Conventions** (gptspec/docs/conventions.py) that concern one model's ops and not the
  other's, and the config fields that differ.
* **Causality**: the dependency typing's verdict and receptive field of each
  (gptspec/typing_report.py).

``gptspec diff A B`` prints it as tables or JSON; ``gptspec docs B --against A`` adds it to the
site as a page.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gptspec.docs.content import attribute_text, path_pattern, shape_text
from gptspec.docs.equations import chains, pattern_of
from spec.counting import count, symbolic_count
from spec.dims import concrete_shape
from spec.errors import ConfigError, GptSpecError
from spec.graph import Architecture, Composite, Graph, Node
from spec.op import Primitive

# -- ops -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A node of one level, or a run of composites of one kind (a chain, or parallel siblings)."""

    nodes: tuple[Node, ...]
    path: str
    """Where the first node is (its dotted path)."""

    @property
    def first(self) -> Node:
        return self.nodes[0]

    @property
    def kind(self) -> str:
        return self.first.op.kind

    @property
    def where(self) -> str:
        """The path with layer numbers as ``*`` (``blocks.*.attn.head_0.Q``: inside a run, its
        first instance stands for all); a run itself as a pattern (``blocks.*.attn.head_*``)."""
        return path_pattern(self.path) if len(self.nodes) > 1 else pattern_of(self.path)


def items(graph: Graph, prefix: str) -> list[Item]:
    """The level's items in topological order."""
    order = graph.topological()
    grouped: dict[str, tuple[Node, ...]] = {}
    for chain in chains(graph, order):
        grouped[chain.nodes[0].name] = chain.nodes
    taken = {n.name for run in grouped.values() for n in run}
    for node in order:
        if node.name in taken or not isinstance(node.op, Composite):
            continue
        kind = node.op.kind
        group = tuple(
            n for n in order
            if isinstance(n.op, Composite) and n.op.kind == kind and n.name not in taken and dict(n.inputs) == dict(node.inputs)
        )
        if len(group) > 1:
            grouped[node.name] = group
            taken |= {n.name for n in group}
    out = []
    for node in order:
        if node.name in grouped:
            out.append(Item(grouped[node.name], prefix + node.name))
        elif node.name not in taken:
            out.append(Item((node,), prefix + node.name))
    return out


def describe(node: Node) -> str:
    """An op as the tables show it: its kind and (for a primitive) its attributes that are not
    sizes, e.g. ``layer_norm(eps=1e-05, bias=True)``."""
    op = node.op
    if isinstance(op, Composite):
        return f"{op.kind} ({op.title})"
    if not isinstance(op, Primitive):
        raise ConfigError(f"node {node.name!r} holds a {type(op).__name__}, but expected a primitive or a composite op [gptspec diff]")
    attrs = _attributes(op)
    shown = ", ".join(f"{k}={v}" for k, v in attrs.items())
    return f"{op.kind}({shown})" if shown else op.kind


SIZE_LIKE = frozenset({"d", "d_in", "d_out", "n_vocab", "n_ctx", "d_head", "d_v", "rows", "q_rows", "k_rows"})


def _attributes(op: Primitive) -> dict[str, str]:
    return {k: attribute_text(v) for k, v in op.attributes().items() if k not in SIZE_LIKE}


@dataclass(frozen=True)
class Change:
    """One difference between the two graphs."""

    change: str
    """replaced, added, removed, changed, rewired or repeated."""
    a_where: str
    b_where: str
    a: str
    b: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _source(src: Any, mapping: dict[str, str], inputs_a: list[str], inputs_b: list[str]) -> tuple[str, str]:
    """A source of A mapped to B's names: ('node', B's node) or ('input', B's input by position)."""
    if src.node is None:
        i = inputs_a.index(src.port)
        return ("input", inputs_b[i] if i < len(inputs_b) else f"#{i}")
    return ("node", mapping.get(src.node, f"(A's {src.node}, unmatched)"))


def _times(item: Item) -> str:
    return f"{len(item.nodes)} × " if len(item.nodes) > 1 else ""


def role(graph: Graph, item: Item) -> tuple[str, bool, bool]:
    """What aligns an item: its op kind, whether it reads a graph input and whether a graph
    output reads it (the first affine of an MLP is not its last)."""
    reads = any(src.node is None for n in item.nodes for src in n.inputs.values())
    names = {n.name for n in item.nodes}
    feeds = any(src.node in names for src in graph.outputs.values())
    return (item.kind, reads, feeds)


def _level(a: Graph, ia: list[Item], b: Graph, ib: list[Item], keys: tuple[list[Any], list[Any]]) -> tuple[list[Change], list[tuple[Item, Item, bool]]]:
    """One level's changes (not inside composites) under the alignment of ``keys``, and the pairs."""
    out: list[Change] = []
    matcher = difflib.SequenceMatcher(a=keys[0], b=keys[1], autojunk=False)
    pairs: list[tuple[Item, Item, bool]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        xs, ys = ia[i1:i2], ib[j1:j2]
        pairs += [(x, y, x.kind == y.kind) for x, y in zip(xs, ys)]
        if tag == "equal":
            continue
        for x in xs[len(ys):]:
            out.append(Change("removed", x.where, "", _times(x) + describe(x.first), ""))
        for y in ys[len(xs):]:
            out.append(Change("added", "", y.where, "", _times(y) + describe(y.first)))
    mapping: dict[str, str] = {}
    for x, y, _ in pairs:
        for n, m in zip(x.nodes, y.nodes):
            mapping[n.name] = m.name
        mapping.setdefault(x.nodes[-1].name, y.nodes[-1].name)
    inputs_a, inputs_b = list(a.inputs), list(b.inputs)
    for x, y, same in pairs:
        if len(x.nodes) != len(y.nodes):
            out.append(Change("repeated", x.where, y.where, f"{len(x.nodes)} × {x.kind}", f"{len(y.nodes)} × {y.kind}"))
        if not same:
            out.append(Change("replaced", x.where, y.where, describe(x.first), describe(y.first)))
            continue
        if isinstance(x.first.op, Primitive) and isinstance(y.first.op, Primitive):
            before, after = _attributes(x.first.op), _attributes(y.first.op)
            differ = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if differ:
                out.append(Change("changed", x.where, y.where, ", ".join(f"{k}={before.get(k, '—')}" for k in differ),
                                  ", ".join(f"{k}={after.get(k, '—')}" for k in differ)))
        for port, src in x.first.inputs.items():  # a run's first node: what the run reads from outside
            if port not in y.first.inputs:
                continue
            want = _source(src, mapping, inputs_a, inputs_b)
            other = y.first.inputs[port]
            got = ("input", other.port) if other.node is None else ("node", other.node)
            if want != got:
                out.append(Change("rewired", x.where, y.where, f"{port} reads {src}", f"{port} reads {other}"))
    return out, pairs


def align(a: Graph, a_path: str, b: Graph, b_path: str, out: list[Change]) -> None:
    """Compare two levels (see the module docstring); append the changes to ``out``. Two
    alignments are tried — on op kinds with each item's place (reads a graph input, feeds a
    graph output), and on op kinds alone — and the one that keeps more ops, then explains B with
    fewer changes, is kept (the first on a tie)."""
    pa, pb = (a_path + "." if a_path else ""), (b_path + "." if b_path else "")
    ia, ib = items(a, pa), items(b, pb)
    tries = [  # on a tie, the alignment that respects each item's place wins
        _level(a, ia, b, ib, ([role(a, x) for x in ia], [role(b, y) for y in ib])),
        _level(a, ia, b, ib, ([x.kind for x in ia], [y.kind for y in ib])),
    ]
    changes, pairs = min(tries, key=lambda t: (-sum(1 for _, _, same in t[1] if same), len(t[0])))
    out += changes
    for x, y, _ in pairs:
        if isinstance(x.first.op, Composite) and isinstance(y.first.op, Composite):
            align(x.first.op.body, x.path, y.first.op.body, y.path, out)


# -- Θ ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThetaRow:
    """One Θ name pattern in A and in B: its symbolic shape, entries and parameters (0 when absent)."""

    pattern: str
    a_shape: str
    a_entries: int
    a_count: int
    b_shape: str
    b_entries: int
    b_count: int

    @property
    def status(self) -> str:
        if not self.a_entries:
            return "added"
        if not self.b_entries:
            return "removed"
        return "same" if (self.a_shape, self.a_entries, self.a_count) == (self.b_shape, self.b_entries, self.b_count) else "changed"


def theta_rows(a: Architecture, b: Architecture, a_node: str = "", b_node: str = "") -> list[ThetaRow]:
    """Θ by entry pattern; for composites at ``a_node``/``b_node``, the entries each one reads,
    named relative to it."""

    def read_by(arch: Architecture, path: str) -> dict[str, str]:
        if not path:
            return {name: name for name in arch.theta}
        node = node_at(arch, path)
        if not isinstance(node.op, Composite):
            raise ConfigError(f"node={path!r} is a primitive ({node.op.kind}), but expected a composite to compare [gptspec diff]")
        names = [ref.name for _, n, _ in node.op.body.expand() for ref in n.params.values()]
        return {name: name[len(path) + 1 :] if name.startswith(path + ".") else name for name in dict.fromkeys(names)}

    def table(arch: Architecture, path: str) -> dict[str, tuple[str, int, int]]:
        found: dict[str, tuple[str, int, int]] = {}
        for name, shown in read_by(arch, path).items():
            shape = arch.theta[name]
            p = pattern_of(shown)
            n = 1
            for d in concrete_shape(shape, arch.dims):
                n *= d
            s, entries, total = found.get(p, (shape_text(shape), 0, 0))
            found[p] = (s, entries + 1, total + n)
        return found

    ta, tb = table(a, a_node), table(b, b_node)
    rows = []
    for p in list(ta) + [q for q in tb if q not in ta]:
        sa, ea, ca = ta.get(p, ("—", 0, 0))
        sb, eb, cb = tb.get(p, ("—", 0, 0))
        rows.append(ThetaRow(p, sa, ea, ca, sb, eb, cb))
    return rows


# -- the whole comparison ------------------------------------------------------------------


@dataclass
class Diff:
    """Everything B changes relative to A."""

    a_name: str
    b_name: str
    a_source: str
    b_source: str
    ops: list[Change]
    theta: list[ThetaRow]
    counts: tuple[int, int]
    formulas: tuple[str, str]
    conventions: tuple[list[str], list[str]]
    """(conventions only A's ops concern, only B's), by title."""
    config: list[tuple[str, str, str]]
    """(field, A's value, B's value) for every config field that differs ('—' when absent)."""
    causality: tuple[list[str], list[str]]
    families: tuple[str, str] = ("", "")
    scope: tuple[str, str] = ("", "")
    """The node paths compared when not whole models ('' for the model)."""
    summary: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "a": {"name": self.a_name, "source": self.a_source, "family": self.families[0], "node": self.scope[0] or None,
                  "parameters": self.counts[0], "formula": self.formulas[0], "causality": self.causality[0]},
            "b": {"name": self.b_name, "source": self.b_source, "family": self.families[1], "node": self.scope[1] or None,
                  "parameters": self.counts[1], "formula": self.formulas[1], "causality": self.causality[1]},
            "summary": self.summary,
            "ops": [c.as_dict() for c in self.ops],
            "theta": [dataclasses.asdict(r) | {"status": r.status} for r in self.theta],
            "conventions": {"only_a": self.conventions[0], "only_b": self.conventions[1]},
            "config": [{"field": f, "a": x, "b": y} for f, x, y in self.config],
        }


def _family(arch: Architecture) -> str:
    from spec import family_of

    try:
        return family_of(arch.config).name if arch.config is not None else ""
    except GptSpecError:
        return ""


def _config(a: Architecture, b: Architecture) -> list[tuple[str, str, str]]:
    def fields(config: Any) -> dict[str, str]:
        if config is None or not dataclasses.is_dataclass(config):
            return {}
        return {f.name: repr(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name != "name"}

    fa, fb = fields(a.config), fields(b.config)
    names = list(fa) + [n for n in fb if n not in fa]
    return [(n, fa.get(n, "—"), fb.get(n, "—")) for n in names if fa.get(n) != fb.get(n)]


def _kinds(graph: Graph) -> set[str]:
    return {node.op.kind for _, node, _ in graph.expand() if isinstance(node.op, Primitive)}


def node_at(arch: Architecture, path: str) -> Node:
    """The node at dotted ``path`` (a composite's path, e.g. ``blocks.0`` or ``encoder.blocks.0.attn``)."""
    graph: Graph = arch
    node: Node | None = None
    rest = path
    while rest:
        names = sorted(graph.nodes, key=len, reverse=True)
        head = next((n for n in names if rest == n or rest.startswith(n + ".")), None)
        if head is None:
            import difflib as _d

            close = _d.get_close_matches(rest.split(".")[0], list(graph.nodes), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"node={path!r}, but expected a node path of {arch.name} [gptspec diff]{hint}")
        node = graph.nodes[head]
        rest = rest[len(head) + 1 :]
        if rest:
            if not isinstance(node.op, Composite):
                raise ConfigError(f"node={path!r} goes inside {head!r}, a primitive, but expected composites on the way [gptspec diff]")
            graph = node.op.body
    if node is None:
        raise ConfigError(f"node={path!r}, but expected a non-empty node path [gptspec diff]")
    return node


def compare(a: Architecture, b: Architecture, a_source: str = "", b_source: str = "", a_node: str = "", b_node: str = "") -> Diff:
    """What ``b`` changes relative to ``a``; with ``a_node``/``b_node``, the composites at those
    paths are compared instead of the whole models (Θ, conventions and causality stay the models')."""
    from gptspec.docs.conventions import applicable_conventions
    from gptspec.typing_report import verdict

    if not isinstance(a, Architecture) or not isinstance(b, Architecture):
        raise ConfigError(f"compare({type(a).__name__}, {type(b).__name__}), but expected two Architectures [gptspec.diff.compare]")
    ops: list[Change] = []
    if a_node or b_node:
        na, nb = node_at(a, a_node or b_node), node_at(b, b_node or a_node)
        for n, where in ((na, a_node), (nb, b_node)):
            if not isinstance(n.op, Composite):
                raise ConfigError(f"node={where!r} is a primitive ({n.op.kind}), but expected a composite to compare [gptspec diff]")
        if not (isinstance(na.op, Composite) and isinstance(nb.op, Composite)):  # checked just above; narrows the types
            raise ConfigError(f"nodes {a_node!r} and {b_node!r} must both be composites [gptspec diff]")
        if na.op.kind != nb.op.kind:
            ops.append(Change("replaced", a_node, b_node, describe(na), describe(nb)))
        align(na.op.body, a_node or b_node, nb.op.body, b_node or a_node, ops)
    else:
        align(a, "", b, "", ops)
    ka, kb = _kinds(a if not (a_node or b_node) else node_at(a, a_node or b_node).op.body), _kinds(b if not (a_node or b_node) else node_at(b, b_node or a_node).op.body)  # type: ignore[attr-defined]
    ca = [c.title for c in applicable_conventions(ka)]
    cb = [c.title for c in applicable_conventions(kb)]
    summary: dict[str, int] = {}
    for c in ops:
        summary[c.change] = summary.get(c.change, 0) + 1

    def typing(arch: Architecture) -> list[str]:
        try:
            return [line.split("  (")[0] for line in verdict(arch).lines()]
        except GptSpecError as error:
            return [f"the dependency typing could not type it: {error}"]

    rows = theta_rows(a, b, a_node or b_node, b_node or a_node)
    whole = not (a_node or b_node)
    return Diff(
        a.name, b.name, a_source or a.name, b_source or b.name, ops, rows,
        (count(a), count(b)) if whole else (sum(r.a_count for r in rows), sum(r.b_count for r in rows)),
        (str(symbolic_count(a)), str(symbolic_count(b))) if whole else ("", ""),
        ([t for t in ca if t not in cb], [t for t in cb if t not in ca]), _config(a, b) if whole else [],
        (typing(a), typing(b)) if whole else ([], []),
        (_family(a), _family(b)), (a_node or b_node, b_node or a_node) if not whole else ("", ""), summary,
    )


# -- text ----------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    def line(r: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def text(d: Diff) -> str:
    """The comparison as the terminal shows it."""
    scope = f" (composites {d.scope[0] or d.scope[1]} → {d.scope[1] or d.scope[0]})" if any(d.scope) else ""
    out = [f"gptspec diff: A = {d.a_source} ({d.families[0] or 'no family'}), B = {d.b_source} ({d.families[1] or 'no family'}){scope}", ""]
    tally = ", ".join(f"{n} {k}" for k, n in d.summary.items()) or "none"
    out.append(f"Ops, aligned by position in each level's graph ({tally}):")
    if d.ops:
        out += ["  " + r for r in _table(["change", "in A", "in B", "A", "B"],
                                          [[c.change, c.a_where or "—", c.b_where or "—", c.a or "—", c.b or "—"] for c in d.ops])]
    else:
        out.append("  the same ops, wired the same way")
    out += ["", f"Θ{' read by the composites' if any(d.scope) else ''}: {d.counts[0]:,} → {d.counts[1]:,} parameters ({d.counts[1] - d.counts[0]:+,})"]
    out += [f"  A = {d.formulas[0]}", f"  B = {d.formulas[1]}"] if d.formulas[0] else []
    rows = [[r.status, r.pattern, r.a_shape, f"{r.a_entries:,}", f"{r.a_count:,}", r.b_shape, f"{r.b_entries:,}", f"{r.b_count:,}"]
            for r in d.theta if r.status != "same"]
    same = sum(1 for r in d.theta if r.status == "same")
    if rows:
        out += ["  " + r for r in _table(["", "entry pattern", "A shape", "A entries", "A params", "B shape", "B entries", "B params"], rows,
                                         frozenset({3, 4, 6, 7}))]
    out.append(f"  and {same} pattern{'s' if same != 1 else ''} the same in both")
    out += ["", "Conventions:"]
    out += [f"  only A's ops: {t}" for t in d.conventions[0]] + [f"  only B's ops: {t}" for t in d.conventions[1]]
    if not any(d.conventions):
        out.append("  the same conventions concern both")
    if any(d.scope):
        return "\n".join(out)
    out += ["", "Config fields that differ:"]
    out += ["  " + r for r in _table(["field", "A", "B"], [list(c) for c in d.config])] if d.config else ["  none"]
    out += ["", "Causality (dependency typing):"]
    out += [f"  A: {line.strip()}" for line in d.causality[0]] + [f"  B: {line.strip()}" for line in d.causality[1]]
    return "\n".join(out)


def to_json(d: Diff) -> str:
    return json.dumps(d.as_json(), indent=2, ensure_ascii=False)


# -- Markdown (docs/diff.md) ----------------------------------------------------------------


def markdown(d: Diff) -> str:
    """The comparison as Markdown tables (the worked examples in docs/diff.md)."""

    def cell(x: str) -> str:
        return ("`" + x.replace("|", "\\|") + "`") if x else "—"

    def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows), ""]

    scope = f" (composites `{d.scope[0] or d.scope[1]}` → `{d.scope[1] or d.scope[0]}`)" if any(d.scope) else ""
    tally = ", ".join(f"{n} {k}" for k, n in d.summary.items()) or "none"
    out = [f"A = {d.a_source} (family `{d.families[0]}`), B = {d.b_source} (family `{d.families[1]}`){scope}.", "",
           f"**Ops** ({tally}):", ""]
    out += table(["change", "in A", "in B", "A", "B"], [[c.change, cell(c.a_where), cell(c.b_where), cell(c.a), cell(c.b)] for c in d.ops]) \
        if d.ops else ["The same ops, wired the same way.", ""]
    same = sum(1 for r in d.theta if r.status == "same")
    out += [f"**Θ**: {d.counts[0]:,} → {d.counts[1]:,} parameters ({d.counts[1] - d.counts[0]:+,}); {same} entry pattern"
            f"{'s' if same != 1 else ''} the same in both.", ""]
    rows = [[r.status, cell(r.pattern), cell(r.a_shape if r.a_entries else ""), f"{r.a_entries:,}", f"{r.a_count:,}",
             cell(r.b_shape if r.b_entries else ""), f"{r.b_entries:,}", f"{r.b_count:,}"] for r in d.theta if r.status != "same"]
    if rows:
        out += table(["", "pattern", "A shape", "A entries", "A params", "B shape", "B entries", "B params"], rows)
    conv = [f"- only A's ops: {t}" for t in d.conventions[0]] + [f"- only B's ops: {t}" for t in d.conventions[1]]
    out += ["**Conventions**:", "", *(conv or ["- the same conventions concern both"]), ""]
    if d.config:
        out += ["**Config fields that differ**:", ""] + table(["field", "A", "B"], [[cell(f), cell(x), cell(y)] for f, x, y in d.config])
    if d.causality[0] or d.causality[1]:
        out += ["**Causality**:", "", *(f"- A: {x.strip()}" for x in d.causality[0]), *(f"- B: {x.strip()}" for x in d.causality[1]), ""]
    return "\n".join(out).rstrip("\n")
