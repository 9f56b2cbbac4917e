"""Equations derived from a graph: a composite's definition and the algorithm of a whole model,
written from the DAG, never by hand.

Each primitive node becomes its op's whole-array notation (``Primitive.notation``, a LaTeX
template of its operands' expressions; an op without one is written as a function named by its
kind) with its operands replaced by the expressions of the values it reads. A value is
*substituted* into the one expression that reads it, and *named* (an equation of its own) when
more than one node reads it, when its node carries a mathematical name (``Q``, ``K``, ``V`` — a
letter, optionally with a subscript) or when it is a composite read by a composite (a chain of
blocks). A composite read inside another's definition is a function application
(``head_h(x)``), linked to its own definition. So a change of architecture — another activation,
another norm, rotary queries, a gated MLP — changes the equations.

Parameters are written from their Θ names relative to the composite (``blocks.3.attn.W_Q``
inside ``blocks.3.attn.head_5`` is ``W_Q``); a Θ index that follows the instance's position
among its siblings becomes the instance's letter (head h reads slice h of W_Q, grouped-query
head h slice ⌊h/g⌋ of W_K). Sibling instances whose equations are then the same share one
definition; instances that differ (a banded layer among dense ones) get one each.

The algorithm view expands every composite into numbered lines, in the style of Phuong &
Hutter's "Formal Algorithms for Transformers": inputs, outputs and parameters, then a chain of
composites of one kind is a loop over layers (with a branch for each distinct body, e.g. dense
and banded layers), parallel instances (heads) a loop over heads.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy

from spec.errors import ConfigError
from spec.graph import Architecture, Composite, Graph, Node, ParamRef, Source
from spec.masks import Relation
from spec.op import OUT, Primitive

# -- dims ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def symbol_latex(expr: object) -> str:
    """A dim expression in LaTeX, with multi-letter subscripts upright (d_model → d_{\\mathrm{model}})."""
    e = sympy.sympify(expr)
    names = {s: _symbol_name(str(s)) for s in e.free_symbols if isinstance(s, sympy.Symbol)}
    return str(sympy.latex(e, symbol_names=names))


def _symbol_name(name: str) -> str:
    head, sep, tail = name.partition("_")
    words = tail.replace("_", THIN)  # n_kv_heads → n_{kv heads}, the space kept in MathML
    return f"{head}_{{\\mathrm{{{words}}}}}" if sep and tail else name


THIN = r"\,"


# -- terms ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A LaTeX expression and whether it needs no parentheses as a factor or under a superscript."""

    latex: str
    atomic: bool = True


def depth0(latex: str) -> str:
    """``latex`` with everything inside braces, brackets and parentheses removed."""
    out = []
    depth = 0
    for ch in latex:
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def is_atomic(latex: str) -> bool:
    """True when ``latex`` is one factor: a symbol or a function application (nothing at the top
    level but commands, letters and sub/superscripts)."""
    top = depth0(latex).replace(r"\left", "").replace(r"\right", "")
    return not re.search(r"\s|[+\-=/]|\\[,;!]|\\odot|\\cdot|\\times|\\quad", top)


GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi psi omega "
    "Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega".split()
)


def _sub(text: str) -> str:
    """A subscript: a single character or number as it is, a word upright."""
    if len(text) == 1 or text.isdigit():
        return text
    return r"\mathrm{" + text + "}"


def symbol(name: str, subs: Sequence[str] = (), sup: str = "") -> str:
    """A value or parameter name as a LaTeX symbol: ``x_kv`` → x_{kv}, ``gamma`` → γ, a longer
    word upright as text; ``subs`` are appended to the subscript, ``sup`` is a superscript."""
    base, sep, tail = name.partition("_")
    extra = [s for s in subs if s]
    if base in GREEK:
        head = "\\" + base
    elif len(base) == 1 and base.isalpha() and "_" not in tail:
        head = base
    else:
        head, tail = r"\text{" + name + "}", ""
    parts = ([_sub(tail)] if sep and tail else []) + extra
    text = head + ("_{" + ",".join(parts) + "}" if parts else "")
    return text + ("^{" + sup + "}" if sup else "")


def function_name(name: str) -> tuple[str, str]:
    """A node's name as a function: (its stem in LaTeX, its trailing instance number or '')."""
    match = re.fullmatch(r"(.*?)[._]?(\d+)", name)
    stem, number = (match.group(1), match.group(2)) if match and match.group(1) else (name, "")
    latex = r"\operatorname{" + stem + "}" if re.fullmatch(r"[A-Za-z]+", stem) else r"\text{" + stem + "}"
    return latex, number


def call(stem: str, index: str, args: Sequence[Term]) -> Term:
    """``stem_index(args…)``; identical arguments are written once (self-attention reads its
    input as queries and as keys)."""
    texts = [a.latex for a in args]
    if len(set(texts)) == 1:
        texts = texts[:1]
    head = stem + (f"_{{{index}}}" if index else "")
    return Term(head + r"\left(" + ",\\, ".join(texts) + r"\right)", True)


def attribute_latex(value: object) -> str | None:
    """An attribute's value in LaTeX; None when it is absent (None or False)."""
    if value is None or value is False:
        return None
    if value is True:
        return ""
    if isinstance(value, Relation):
        return value.latex()
    if isinstance(value, sympy.Basic):
        return symbol_latex(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    return r"\text{" + str(value) + "}"


PLACEHOLDER = re.compile(r"⟨(:?)([A-Za-z0-9_]+(?:_\*)?)⟩")
OPTIONAL = re.compile(r"⟦(.*?)⟧", re.S)
OPENERS = ("(", "[", "{", ",", ";", r"\mid", "+", "=", r"\,")
CLOSERS = (")", "]", "}", ",", ";", r"\mid", r"\right", "+", "-")


def _variadic(stem: str, operands: Mapping[str, Term]) -> list[Term]:
    found = sorted(((int(k[len(stem) + 1 :]), t) for k, t in operands.items() if re.fullmatch(re.escape(stem) + r"_\d+", k)), key=lambda p: p[0])
    return [t for _, t in found]


def _join(terms: list[Term]) -> Term:
    """Terms side by side (a concatenation), the middle ones elided when they differ only by an
    index."""
    texts = [t.latex for t in terms]
    if len(texts) >= 4 and len({re.sub(r"\d+", "#", x) for x in texts}) == 1:
        texts = [texts[0], r"\dots", texts[-1]]
    return Term(r";\, ".join(texts), len(texts) == 1 and terms[0].atomic)


def fill(template: str, operands: Mapping[str, Term], attributes: Mapping[str, object]) -> Term:
    """The template with every placeholder replaced (see ``Primitive.notation``); an operand
    that is not one factor is parenthesised where the template multiplies it or puts a
    superscript on it."""

    def present(match: re.Match[str]) -> bool:
        attr, name = match.group(1), match.group(2)
        if attr:
            return attribute_latex(attributes.get(name)) is not None
        if name.endswith("_*"):
            return bool(_variadic(name[:-2], operands))
        return name in operands

    def choose(group: re.Match[str]) -> str:
        for alternative in group.group(1).split("‖"):
            if all(present(m) for m in PLACEHOLDER.finditer(alternative)):
                return alternative.strip() if "‖" in group.group(1) else alternative
        return ""

    text = OPTIONAL.sub(choose, template)
    out: list[str] = []
    pos = 0
    for m in PLACEHOLDER.finditer(text):
        attr, name = m.group(1), m.group(2)
        if attr:
            value = attribute_latex(attributes.get(name))
            term = Term(value or "", is_atomic(value or ""))
        elif name.endswith("_*"):
            term = _join(_variadic(name[:-2], operands))
        else:
            term = operands[name]
        before, after = text[: m.start()].rstrip(), text[m.end() :].lstrip()
        body = term.latex
        if after.startswith(("^", "_")):
            body = "{" + body + "}" if term.atomic else r"\left(" + body + r"\right)"
        elif not term.atomic and not ((not before or before.endswith(OPENERS)) and (not after or after.startswith(CLOSERS))):
            body = r"\left(" + body + r"\right)"
        out.append(text[pos : m.start()] + body)
        pos = m.end()
    out.append(text[pos:])
    latex = "".join(out).strip()
    return Term(latex, is_atomic(latex))


def op_term(op: Primitive, operands: Mapping[str, Term]) -> Term:
    """The op applied to its operands' expressions, in its own notation."""
    template = type(op).notation
    if not template:
        ins = ", ".join(f"⟨{p}⟩" for p in op.inputs())
        params = ", ".join(f"⟨{p}⟩" for p in op.params())
        stem = r"\operatorname{" + op.kind + "}" if re.fullmatch(r"[A-Za-z]+", op.kind) else r"\text{" + op.kind + "}"
        template = stem + r"\left(" + ins + (r" \mid " + params if params else "") + r"\right)"
    return fill(template, operands, op.attributes())


# -- parameters ----------------------------------------------------------------------------


def relative(name: str, path: str) -> str:
    """A Θ name relative to the instance at ``path``: the longest dotted prefix the two share is
    removed (``blocks.3.attn.W_Q`` inside ``blocks.3.attn.head_5`` → ``W_Q``)."""
    a, b = name.split("."), path.split(".") if path else []
    n = 0
    while n < min(len(a) - 1, len(b)) and a[n] == b[n]:
        n += 1
    return ".".join(a[n:])


def param_symbol(rel: str, ambiguous: bool, index: Sequence[str], transpose: bool, sup: str = "") -> str:
    """A parameter's symbol: its last name component (``W_Q`` → W_Q, ``gamma`` → γ), the rest of
    its relative name in the subscript when the last component alone is ambiguous, its index
    after, ᵀ for a transposed view."""
    parts = rel.split(".")
    words = [r"\text{" + p + "}" for p in parts[:-1]] if ambiguous else []
    text = symbol(parts[-1], [*words, *index], sup)
    return "{" + text + r"}^{\top}" if transpose else text


def index_pattern(values: Sequence[int], letter: str) -> str | None:
    """How a Θ index follows the instance number j: ``letter`` when it is j, ⌊letter/g⌋ when it
    is j // g; None when it follows neither (the index is then written as the number)."""
    if len(values) < 2:
        return None
    if all(v == j for j, v in enumerate(values)):
        return letter
    for g in range(2, len(values) + 1):
        if all(v == j // g for j, v in enumerate(values)):
            return rf"\lfloor {letter}/{g} \rfloor"
    return None


RESERVED = frozenset("bxyzWdetsTSAKQVE")


def instance_letter(stem: str, taken: Iterable[str] = ()) -> str:
    """The letter indexing sibling instances: the stem's initial (head → h), ℓ when that letter
    already means something here."""
    used = set(taken) | RESERVED
    first = stem[:1]
    if first.isalpha() and first not in used:
        return first
    return next(c for c in (r"\ell", "i", "j", "n") if c not in used)


# -- a composite's definition --------------------------------------------------------------


@dataclass(frozen=True)
class Equation:
    lhs: str
    rhs: str

    @property
    def latex(self) -> str:
        return f"{self.lhs} = {self.rhs}"


@dataclass(frozen=True)
class Link:
    """A sub-op an equation uses: a primitive kind or a composite kind, with the name it is
    written as."""

    kind: str
    composite: bool
    written: str


@dataclass
class Definition:
    """A composite's (or the model's) equations: the defining ones, then those of the values
    they name ("where …"), and the sub-ops used."""

    main: list[Equation]
    where: list[Equation]
    links: list[Link] = field(default_factory=list)

    def text(self) -> str:
        """Every equation, one per line (what tells two definitions apart)."""
        return "\n".join(e.latex for e in [*self.main, *self.where])


@dataclass(frozen=True)
class Instance:
    """How one composite instance sits among its siblings: its number, its letter and, for each
    (body node, parameter, axis), the index written as that letter when it follows the number."""

    path: str
    letter: str = ""
    number: str = ""
    indices: Mapping[tuple[str, str, int], str] = field(default_factory=dict)


def siblings(graph: Graph, node: Node) -> list[Node]:
    """The composites of ``graph`` of the same kind as ``node`` (in insertion order)."""
    if not isinstance(node.op, Composite):
        return [node]
    return [n for n in graph.nodes.values() if isinstance(n.op, Composite) and n.op.kind == node.op.kind]


def instance(parent: Graph, node: Node, path: str, taken: Iterable[str] = (), memo: dict[object, tuple[str, dict[tuple[str, str, int], str]]] | None = None) -> Instance:
    """``node`` (a composite at ``path`` in ``parent``) among its siblings (``memo`` remembers a
    group's letter and index patterns, the same for every member)."""
    stem, number = function_name(node.name)
    if not number or not isinstance(node.op, Composite):
        return Instance(path, "", number)
    key = (id(parent), node.op.kind, stem, frozenset(taken))
    if memo is not None and key in memo:
        letter, found = memo[key]
        return Instance(path, letter, number, found) if letter else Instance(path, "", number)
    group = [n for n in siblings(parent, node) if function_name(n.name)[0] == stem and function_name(n.name)[1]]
    if len(group) < 2:
        if memo is not None:
            memo[key] = ("", {})
        return Instance(path, "", number)
    letter = instance_letter(re.sub(r"[^A-Za-z]", "", node.name), taken)
    indices: dict[tuple[str, str, int], str] = {}
    body = node.op.body
    for inner in body.nodes.values():
        for pname, ref in inner.params.items():
            for axis in range(len(ref.index)):
                values = []
                for sib in group:
                    other = sib.op.body.nodes.get(inner.name) if isinstance(sib.op, Composite) else None
                    oref = other.params.get(pname) if other is not None else None
                    if oref is None or len(oref.index) <= axis:
                        break
                    values.append(oref.index[axis])
                else:
                    pattern = index_pattern(values, letter)
                    if pattern is not None:
                        indices[(inner.name, pname, axis)] = pattern
    if memo is not None:
        memo[key] = (letter, indices)
    return Instance(path, letter, number, indices)


_ORDERS: weakref.WeakKeyDictionary[Graph, list[Node]] = weakref.WeakKeyDictionary()


def topological(graph: Graph) -> list[Node]:
    """``graph.topological()``, remembered per graph (a model's equations read each body twice).
    Graphs are built once and not changed after validation."""
    found = _ORDERS.get(graph)
    if found is None or len(found) != len(graph.nodes):
        found = _ORDERS[graph] = graph.topological()
    return found


def _consumers(graph: Graph) -> dict[str, set[str]]:
    """Each node's readers: other nodes' names and ``output:<name>`` for graph outputs."""
    readers: dict[str, set[str]] = {name: set() for name in graph.nodes}
    for node in graph.nodes.values():
        for src in node.inputs.values():
            if src.node is not None:
                readers[src.node].add(node.name)
    for name, src in graph.outputs.items():
        if src.node is not None:
            readers[src.node].add(f"output:{name}")
    return readers


def _mathematical(name: str) -> bool:
    """A node name that is a mathematical symbol: a letter, optionally with a short subscript."""
    return re.fullmatch(r"[A-Za-z](_[A-Za-z0-9]{1,3})?", name) is not None


@dataclass(frozen=True)
class Chain:
    """A run of ≥ 2 composites of one kind, each reading only the one before."""

    nodes: tuple[Node, ...]


def chain_port(prev: Node, node: Node) -> str | None:
    """The one input port of ``node`` that reads ``prev`` when every other port reads what
    ``prev``'s does (a decoder block's memory); None otherwise."""
    reading = [p for p, src in node.inputs.items() if src.node == prev.name]
    if len(reading) != 1 or set(node.inputs) != set(prev.inputs):
        return None
    port = reading[0]
    if any(src != prev.inputs[p] for p, src in node.inputs.items() if p != port):
        return None
    return port


def chains(graph: Graph, order: Sequence[Node]) -> list[Chain]:
    readers = _consumers(graph)
    found: list[Chain] = []
    run: list[Node] = []

    def close() -> None:
        if len(run) >= 2:
            found.append(Chain(tuple(run)))

    for node in order:
        if not isinstance(node.op, Composite):
            close()
            run = []
            continue
        prev = run[-1] if run else None
        follows = (
            prev is not None
            and isinstance(prev.op, Composite)
            and prev.op.kind == node.op.kind
            and readers[prev.name] == {node.name}
            and chain_port(prev, node) is not None
        )
        if not follows:
            close()
            run = []
        run.append(node)
    close()
    return found


class Deriver:
    """Writes one graph's equations (the model's, or a composite instance's body)."""

    def __init__(self, graph: Graph, path: str, inst: Instance | None = None) -> None:
        self.graph = graph
        self.path = path
        self.inst = inst or Instance(path)
        self.links: dict[tuple[str, bool], Link] = {}
        names = [relative(ref.name, path) for n in graph.nodes.values() for ref in n.params.values()]
        lasts = [n.split(".")[-1] for n in names]
        self.ambiguous = {n for n in names if lasts.count(n.split(".")[-1]) > 1 and "." in n}
        self.param_locals = {n.split(".")[-1] for n in names}

    def param(self, node: Node, pname: str, ref: ParamRef) -> Term:
        rel = relative(ref.name, self.path)
        index = [self.inst.indices.get((node.name, pname, axis), str(i)) for axis, i in enumerate(ref.index)]
        return Term(param_symbol(rel, rel in self.ambiguous, index, ref.transpose), True)

    def value_name(self, name: str) -> str:
        sub = [self.inst.letter] if self.inst.letter and _mathematical(name) else []
        return symbol(name, sub)

    def input_term(self, name: str) -> Term:
        return Term(symbol(name), True)

    def link(self, kind: str, composite: bool, written: str) -> None:
        self.links.setdefault((kind, composite), Link(kind, composite, written))

    def node_term(self, node: Node, read: Mapping[str, Term]) -> Term:
        if isinstance(node.op, Composite):
            stem, number = function_name(node.name)
            self.link(node.op.kind, True, stem)
            return call(stem, number, [read[p] for p in node.op.inputs()])
        if not isinstance(node.op, Primitive):  # an invariant of the structure; the check narrows the type
            raise ConfigError(f"{type(node.op).__name__} at node.op, but expected a Primitive [gptspec docs: equations]")
        operands = dict(read)
        operands.update({p: self.param(node, p, ref) for p, ref in node.params.items()})
        self.link(node.op.kind, False, node.op.kind)
        return op_term(node.op, operands)

    def derive(self, lhs: Mapping[str, str]) -> Definition:
        """The equations; ``lhs`` gives each graph output's left-hand side."""
        graph = self.graph
        order = topological(graph)
        readers = _consumers(graph)
        runs = {c.nodes[0].name: c for c in chains(graph, order)}
        in_run = {n.name for c in runs.values() for n in c.nodes}
        values: dict[str, Term] = {}
        where: list[Equation] = []

        def read(src: Source) -> Term:
            if src.node is None:
                return self.input_term(src.port)
            key = src.node if src.port == OUT or src.port == next(iter(graph.nodes[src.node].op.outputs())) else f"{src.node}.{src.port}"
            if key not in values:  # a second output port of a composite: its value by name
                values[key] = Term(symbol(src.port), True)
            return values[key]

        letters = {self.inst.letter}
        for node in order:
            if node.name in in_run and node.name not in runs:
                continue
            if node.name in runs:
                chain = runs[node.name]
                last = chain.nodes[-1]
                stem, _ = function_name(chain.nodes[0].name)
                letter = instance_letter(re.sub(r"[^A-Za-z]", "", chain.nodes[0].name), letters)
                h = next(c for c in [*"hgfuvwpqr", *(f"h^{{({i})}}" for i in range(len(runs) + 1))] if c not in letters)
                letters.add(h)
                port = chain_port(chain.nodes[0], chain.nodes[1]) or next(iter(chain.nodes[0].inputs))
                start = read(chain.nodes[0].inputs[port])
                args = [Term(f"{h}_{{{letter}}}") if p == port else read(src) for p, src in chain.nodes[0].inputs.items()]
                nums = numbers(chain.nodes)
                where.append(Equation(f"{h}_{{{nums[0]}}}", start.latex))
                where.append(Equation(f"{h}_{{{letter} + 1}}", call(stem, letter, args).latex + rf" \quad ({_index_set(letter, nums)})"))
                if not isinstance(chain.nodes[0].op, Composite):  # an invariant of the structure; the check narrows the type
                    raise ConfigError(f"{type(chain.nodes[0].op).__name__} at chain.nodes[0].op, but expected a Composite [gptspec docs: equations]")
                self.link(chain.nodes[0].op.kind, True, stem)
                values[last.name] = Term(f"{h}_{{{nums[-1] + 1}}}", True)
                continue
            term = self.node_term(node, {p: read(s) for p, s in node.inputs.items()})
            who = readers[node.name]
            named_readers = [r for r in who if not r.startswith("output:")]
            composite_into_composite = isinstance(node.op, Composite) and any(
                isinstance(graph.nodes[r].op, Composite) for r in named_readers
            )
            keep = (
                len(who) > 1
                or composite_into_composite
                or (_mathematical(node.name) and named_readers and node.name not in self.param_locals)
            )
            if keep:
                name = self.value_name(node.name)
                where.append(Equation(name, term.latex))
                values[node.name] = Term(name, True)
            else:
                values[node.name] = term
        main = [Equation(lhs[name], read(src).latex) for name, src in graph.outputs.items()]
        return Definition(main, where, list(self.links.values()))


def definition(graph: Graph, path: str, inst: Instance | None = None, head: str = "") -> Definition:
    """The equations of a composite instance's body (``head`` is its function as written, e.g.
    ``\\operatorname{head}_h(x_q, x_{kv})``) or of the model (``head`` empty: each output by name)."""
    d = Deriver(graph, path, inst)
    outputs = list(graph.outputs)
    if head:
        lhs = {name: head if len(outputs) == 1 else head + r"_{\text{" + name + "}}" for name in outputs}
    else:
        lhs = {name: symbol(name) for name in outputs}
    return d.derive(lhs)


def composite_head(node: Node, inst: Instance) -> str:
    """A composite instance's function as written on the left: ``head_h(x_q, x_kv)``."""
    if not isinstance(node.op, Composite):  # an invariant of the structure; the check narrows the type
        raise ConfigError(f"{type(node.op).__name__} at node.op, but expected a Composite [gptspec docs: equations]")
    stem, number = function_name(node.name)
    index = inst.letter or number
    args = ", ".join(symbol(p) for p in node.op.inputs())
    return stem + (f"_{{{index}}}" if index else "") + r"\left(" + args + r"\right)"


@dataclass
class CompositeDefinitions:
    """The definitions of one composite kind: each distinct one with the paths of its instances."""

    kind: str
    title: str
    description: str
    variants: list[tuple[Definition, list[str]]]


def composite_definitions(arch: Architecture) -> dict[str, CompositeDefinitions]:
    """Every composite kind of ``arch`` with its distinct definitions, in order of first use."""
    found: dict[str, CompositeDefinitions] = {}
    texts: dict[str, dict[str, int]] = {}
    memo: dict[object, tuple[str, dict[tuple[str, str, int], str]]] = {}

    def walk(graph: Graph, prefix: str) -> None:
        for node in topological(graph):
            if not isinstance(node.op, Composite):
                continue
            path = f"{prefix}{node.name}"
            inst = instance(graph, node, path, (), memo)
            key = node.op.kind
            d = definition(node.op.body, path, inst, composite_head(node, inst))
            text = d.text()
            entry = found.setdefault(key, CompositeDefinitions(key, node.op.title, getattr(node.op, "description", "") or "", []))
            where = texts.setdefault(key, {})
            if text not in where:
                where[text] = len(entry.variants)
                entry.variants.append((d, []))
            entry.variants[where[text]][1].append(path)
            walk(node.op.body, path + ".")

    walk(arch, "")
    return found


# -- the algorithm -------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """A numbered line of the algorithm: a statement at an indentation depth."""

    depth: int
    latex: str
    keyword: str = ""
    """'for' or 'end' for a loop's lines ('' for an assignment)."""


def _member_set(letter: str, values: Sequence[int]) -> str:
    """``ℓ ∈ {0, 2, 4}`` (``ℓ ∈ {0, 2, …, 10}`` for a long arithmetic progression)."""
    values = list(values)
    if len(values) > 3 and len({b - a for a, b in zip(values, values[1:])}) == 1:
        shown = f"{values[0]}, {values[1]}, \\dots, {values[-1]}"
    else:
        shown = ", ".join(str(v) for v in values)
    return f"{letter} \\in \\{{{shown}\\}}"


def structure(graph: Graph, cache: dict[int, object]) -> object:
    """What a graph computes up to the Θ views its nodes read: its inputs, its nodes (name, op —
    a composite by its body's structure —, what each port reads) and its outputs. Instances with
    one structure have one body (the docs draw it once; the algorithm writes it once)."""
    key = id(graph)
    if key not in cache:
        nodes = []
        for node in graph.nodes.values():
            op: object = ("composite", node.op.kind, structure(node.op.body, cache)) if isinstance(node.op, Composite) else _op_key(node.op)
            nodes.append((node.name, op, tuple((p, str(src)) for p, src in node.inputs.items())))
        cache[key] = (tuple((n, str(t)) for n, t in graph.inputs.items()), tuple(nodes), tuple((n, str(src)) for n, src in graph.outputs.items()))
    return cache[key]


def _op_key(op: object) -> object:
    try:
        hash(op)
        return op
    except TypeError:
        return repr(op)


def numbers(nodes: Sequence[Node]) -> list[int]:
    """The instance numbers of a run (``blocks.2``, ``blocks.3`` → [2, 3]); 0, 1, … when the
    names carry none."""
    found = [function_name(n.name)[1] for n in nodes]
    if all(found):
        return [int(f) for f in found]
    return list(range(len(nodes)))


def _index_set(letter: str, values: Sequence[int]) -> str:
    """``ℓ = 0, …, 11`` for consecutive values, ``ℓ ∈ {0, 2}`` otherwise."""
    values = list(values)
    if len(values) > 2 and values == list(range(values[0], values[0] + len(values))):
        return f"{letter} = {values[0]}, \\dots, {values[-1]}"
    return f"{letter} \\in \\{{{', '.join(str(v) for v in values)}\\}}"


def pattern_of(name: str) -> str:
    """A Θ name with its numbered components as ``*`` (``blocks.3.ln_1.gamma`` → ``blocks.*.ln_1.gamma``)."""
    return re.sub(r"(?<![^.])\d+(?![^.])", "*", name)


def theta_patterns(names: Iterable[str]) -> dict[str, str]:
    """Each Θ name's pattern (numbers → ``*``) → the shortest suffix of its word components that
    no other pattern ends with (``blocks.*.attn.W_Q`` → ``W_Q``, ``blocks.*.ln_1.gamma`` →
    ``ln_1.gamma``)."""
    patterns = list(dict.fromkeys(pattern_of(n) for n in names))
    words = {p: [c for c in p.split(".") if c != "*"] for p in patterns}
    out: dict[str, str] = {}
    for p in patterns:
        w = words[p]
        group = [words[q] for q in patterns if words[q][-1] == w[-1]]
        keep = [
            c for k, c in enumerate(w[:-1])
            if len({g[len(g) - len(w) + k] for g in group if len(g) >= len(w) - k}) > 1
        ]
        if not keep and len(w[-1]) == 1 and len(w) > 1:  # a bare W or b says nothing: name its owner
            keep = [w[-2]]
        out[p] = ".".join([*keep, w[-1]])
    return out


@dataclass(frozen=True)
class Scope:
    """Where a loop's body is written from: its first instance's path (``blocks.0``), the loop's
    letter, and for a loop over parallel instances the index patterns (:class:`Instance`)."""

    path: str
    letter: str
    inst: Instance | None = None


class Algorithm:
    """The numbered lines of a whole model (:func:`algorithm`)."""

    def __init__(self, arch: Architecture) -> None:
        self.arch = arch
        self.lines: list[Line] = []
        self.patterns = theta_patterns(arch.theta)
        self.letters: set[str] = set()
        self.loops: dict[str, str] = {}
        """A Θ pattern → the loop letters of its numbered components, as they were written."""

    def emit(self, depth: int, latex: str, keyword: str = "") -> None:
        self.lines.append(Line(depth, latex, keyword))

    def param(self, node: Node, pname: str, ref: ParamRef, scopes: Sequence[Scope]) -> Term:
        components = ref.name.split(".")
        sups: list[str] = []
        for i, c in enumerate(components):
            if c.isdigit():
                prefix = ".".join(components[: i + 1])
                bound = next((s.letter for s in scopes if s.path == prefix), c)
                sups.append(bound)
        pattern = pattern_of(ref.name)
        suffix = self.patterns.get(pattern, components[-1])
        inner = next((s.inst for s in reversed(scopes) if s.inst is not None and ref.name.startswith(_parent(s.path))), None)
        index = [inner.indices.get((node.name, pname, axis), str(i)) if inner else str(i) for axis, i in enumerate(ref.index)]
        sup = "(" + ",".join(sups) + ")" if sups else ""
        self.loops.setdefault(pattern, ",".join(s for s in sups if not s.isdigit()))
        return Term(param_symbol(suffix, "." in suffix, index, ref.transpose, sup), True)

    def run(self, graph: Graph, path: str, bound: Mapping[str, Term], depth: int, scopes: tuple[Scope, ...]) -> dict[str, Term]:
        """Write ``graph``'s lines with its inputs bound to ``bound``; return its outputs' terms."""
        order = topological(graph)
        readers = _consumers(graph)
        runs = {c.nodes[0].name: c for c in chains(graph, order)}
        in_run = {n.name for c in runs.values() for n in c.nodes}
        values: dict[str, Term] = {}
        done: set[str] = set()
        prefix = f"{path}." if path else ""
        letter = scopes[-1].letter if scopes and scopes[-1].inst is not None else ""
        locals_ = {ref.name.split(".")[-1] for n in graph.nodes.values() for ref in n.params.values()}

        def read(src: Source) -> Term:
            if src.node is None:
                return bound[src.port]
            return values.get(src.node) or Term(symbol(src.port), True)

        def named(name: str, term: Term) -> Term:
            """The term as a named value (a line of its own) unless it is a symbol already."""
            if term.atomic and "(" not in term.latex:
                return term
            sub = [letter] if letter and _mathematical(name) else []
            text = symbol(name, sub)
            self.emit(depth, rf"{text} \leftarrow {term.latex}")
            return Term(text, True)

        for node in order:
            if node.name in done or (node.name in in_run and node.name not in runs):
                continue
            here = f"{prefix}{node.name}"
            if node.name in runs:
                chain = runs[node.name]
                first = chain.nodes[0]
                if not isinstance(first.op, Composite):  # an invariant of the structure; the check narrows the type
                    raise ConfigError(f"{type(first.op).__name__} at first.op, but expected a Composite [gptspec docs: equations]")
                ell = instance_letter(re.sub(r"[^A-Za-z]", "", first.name), self.letters)
                self.letters.add(ell)
                h = next(c for c in [*"XYZUVW", *(f"X^{{({i})}}" for i in range(len(runs) + len(self.letters) + 1))] if c not in self.letters)
                self.letters.add(h)
                port = chain_port(first, chain.nodes[1]) or next(iter(first.inputs))
                start = read(first.inputs[port])
                if start.latex != h:
                    self.emit(depth, rf"{h} \leftarrow {start.latex}")
                args = {p: Term(h) if p == port else named(f"{first.name}_{p}", read(src)) for p, src in first.inputs.items()}
                nums = numbers(chain.nodes)
                groups: dict[object, list[tuple[int, Node]]] = {}
                cache: dict[int, object] = {}
                for number, member in zip(nums, chain.nodes):
                    if not isinstance(member.op, Composite):  # an invariant of the structure; the check narrows the type
                        raise ConfigError(f"{type(member.op).__name__} at member.op, but expected a Composite [gptspec docs: equations]")
                    groups.setdefault(structure(member.op.body, cache), []).append((number, member))
                self.emit(depth, rf"\textbf{{for }} {_index_set(ell, nums)} \textbf{{ do}}", "for")
                branch = depth + (1 if len(groups) > 1 else 0)
                for i, members in enumerate(groups.values()):
                    if len(groups) > 1:
                        word = r"\textbf{if }" if i == 0 else r"\textbf{else if }"
                        self.emit(depth + 1, rf"{word}{_member_set(ell, [n for n, _ in members])}\textbf{{ then}}", "if")
                    one = members[0][1]
                    if not isinstance(one.op, Composite):  # an invariant of the structure; the check narrows the type
                        raise ConfigError(f"{type(one.op).__name__} at one.op, but expected a Composite [gptspec docs: equations]")
                    out = self.run(one.op.body, f"{prefix}{one.name}", args, branch + 1, (*scopes, Scope(f"{prefix}{one.name}", ell)))
                    result = next(iter(out.values()))
                    if result.latex != h:
                        self.emit(branch + 1, rf"{h} \leftarrow {result.latex}")
                if len(groups) > 1:
                    self.emit(depth + 1, r"\textbf{end if}", "end if")
                self.emit(depth, r"\textbf{end for}", "end")
                self.letters.discard(ell)
                values[chain.nodes[-1].name] = Term(h)
                continue
            if isinstance(node.op, Composite):
                group = [n for n in siblings(graph, node) if n.name not in done]
                shapes: dict[int, object] = {}
                parallel = len(group) >= 2 and len({structure(n.op.body, shapes) for n in group if isinstance(n.op, Composite)}) == 1 and all(
                    {p: s for p, s in n.inputs.items()} == dict(node.inputs) and not (readers[n.name] & {g.name for g in group})
                    for n in group
                )
                args = {p: named(f"{node.name}_{p}" if len(node.inputs) > 1 else node.name + "_in", read(s)) for p, s in node.inputs.items()}
                if parallel:
                    stem, _ = function_name(node.name)
                    inst = instance(graph, node, here, self.letters)
                    self.letters.add(inst.letter)
                    self.emit(depth, rf"\textbf{{for }} {_index_set(inst.letter, numbers(group))} \textbf{{ do}}", "for")
                    out = self.run(node.op.body, here, args, depth + 1, (*scopes, Scope(here, inst.letter, inst)))
                    result = next(iter(out.values()))
                    self.emit(depth + 1, rf"{stem}_{{{inst.letter}}} \leftarrow {result.latex}")
                    self.emit(depth, r"\textbf{end for}", "end")
                    self.letters.discard(inst.letter)
                    for j, n in enumerate(group):
                        values[n.name] = Term(f"{stem}_{{{j}}}")
                        done.add(n.name)
                    continue
                own = function_name(node.name)[1]
                one_by_one = (Scope(here, own, Instance(here, own, own)),) if own and len(group) >= 2 else ()
                out = self.run(node.op.body, here, args, depth, (*scopes, *one_by_one))  # numbered siblings written one by one: values carry the number
                values[node.name] = next(iter(out.values()))
                continue
            if not isinstance(node.op, Primitive):  # an invariant of the structure; the check narrows the type
                raise ConfigError(f"{type(node.op).__name__} at node.op, but expected a Primitive [gptspec docs: equations]")
            operands = {p: read(s) for p, s in node.inputs.items()}
            operands.update({p: self.param(node, p, ref, scopes) for p, ref in node.params.items()})
            term = op_term(node.op, operands)
            who = readers[node.name]
            into_composite = any(not r.startswith("output:") and isinstance(graph.nodes[r].op, Composite) and r not in runs for r in who)
            mathematical = _mathematical(node.name) and node.name not in locals_ and any(not r.startswith("output:") for r in who)
            if len(who) > 1 or into_composite or mathematical:
                values[node.name] = named(node.name, term)
            else:
                values[node.name] = term
        return {name: read(src) for name, src in graph.outputs.items()}


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] + "." if "." in path else ""


@dataclass
class AlgorithmView:
    """A model's algorithm: its inputs, outputs and parameters, and its numbered lines."""

    name: str
    inputs: list[str]
    outputs: list[str]
    parameters: list[tuple[str, str, str]]
    """(symbol, ∈ what, for which loop indices) per Θ pattern."""
    lines: list[Line]


def _type_latex(name: str, t: object) -> str:
    from spec.types import Element, TensorType

    if not isinstance(t, TensorType):  # an invariant of the structure; the check narrows the type

        raise ConfigError(f"{type(t).__name__} at t, but expected a TensorType [gptspec docs: equations]")
    dims = r" \times ".join(symbol_latex(d) for d in t.shape)
    if t.element is Element.TOKEN:
        return rf"{symbol(name)} \in \{{0, \dots, n_{{\mathrm{{vocab}}}} - 1\}}^{{{dims}}}"
    return rf"{symbol(name)} \in \mathbb{{R}}^{{{dims}}}"


def algorithm(arch: Architecture) -> AlgorithmView:
    """The whole model as numbered lines: every composite expanded, a chain of composites of one
    kind as a loop over layers, parallel instances as a loop over heads."""
    a = Algorithm(arch)
    out = a.run(arch, "", {n: Term(symbol(n)) for n in arch.inputs}, 0, ())
    for name, term in out.items():
        a.emit(0, rf"\textbf{{return }} {symbol(name)} = {term.latex}" if term.latex != symbol(name) else rf"\textbf{{return }} {term.latex}")
    params = []
    for pattern, suffix in a.patterns.items():
        name = next(n for n in arch.theta if pattern_of(n) == pattern)
        letters = a.loops.get(pattern, "")
        shape = r" \times ".join(symbol_latex(d) for d in arch.theta[name])
        stars = pattern.count("*")
        sup = "(" + letters + ")" if letters else ("(" + ",".join(["*"] * stars) + ")" if stars else "")
        sym = param_symbol(suffix, "." in suffix, [], False, sup)
        loops = "" if not stars else (f"one per {letters}" if letters else f"{sum(1 for n in arch.theta if pattern_of(n) == pattern)} entries")
        params.append((sym, rf"\mathbb{{R}}^{{{shape}}}" if shape else r"\mathbb{R}", loops))
    return AlgorithmView(
        arch.name,
        [_type_latex(n, t) for n, t in arch.inputs.items()],
        [_type_latex(n, arch._check_source(s, n)) for n, s in arch.outputs.items()],
        params,
        a.lines,
    )
