"""What the documentation says, read off the executed objects: an :class:`~spec.graph.Architecture`,
the primitives' records (``spec.op.PRIMITIVES``), Θ and its counts, the theorems (``proofs``), the
reference functions (``reference.ops.REFERENCE``) and the conventions (gptspec/docs/conventions.py).

The HTML site and the Markdown pages are two renderings of the same :class:`Site`; nothing here
knows a family: every architecture — GPT, Llama, an encoder–decoder, a user's builder — is walked
through its graph, its composites and Θ.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import inspect
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy

from gptspec.docs.equations import composite_definitions, definition
from gptspec.docs.equations import symbol_latex as symbol_latex  # re-exported: the pages write dims with it
from spec import dims as D
from spec.counting import breakdown, count, symbolic_count
from spec.dims import Shape, concrete_shape, show
from spec.errors import GptSpecError
from spec.graph import INPUT, Architecture, Composite, Graph, Node
from spec.masks import Relation
from spec.op import PRIMITIVES, ROW_FIELDS, SIZE_FIELDS, Op, Primitive
from spec.types import Axis, Element, TensorType

# -- small text helpers ----------------------------------------------------------------------


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring, on one line, without reST markup."""
    text = " ".join((doc or "").split())
    text = text.replace("``", "`").replace(":class:", "").replace(":func:", "").replace(":meth:", "")
    match = re.match(r"(.+?(?<!e\.g)(?<!i\.e)(?<!etc)\.)(\s|$)", text)
    return match.group(1) if match else text


def paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line, without reST markup."""
    first = (inspect.cleandoc(doc or "").split("\n\n") or [""])[0]
    return " ".join(first.split()).replace("``", "`").replace(":class:", "").replace(":func:", "").replace(":meth:", "")




def shape_latex(shape: Shape) -> str:
    return r"\left(" + ",\\, ".join(symbol_latex(d) for d in shape) + (",\\," if len(shape) == 1 else "") + r"\right)"


AXIS_WORDS: dict[Axis, str] = {axis: axis.name.lower().replace("_", " ") for axis in Axis}
"""Each axis kind named in words (from the enum: position, key, feature, one hot)."""


@functools.lru_cache(maxsize=65536)
def type_full(t: TensorType) -> str:
    """A type as ``(T, d_model) [pos, feature]``, products with a middle dot."""
    return str(t).replace("*", "·")


def axes_text(t: TensorType) -> str:
    """``T (position) × d_model (feature)``, with ``token ids`` when the entries are ids."""
    parts = [f"{str(d).replace('*', '·')} ({AXIS_WORDS[a]})" for d, a in zip(t.shape, t.axes)]
    kind = "token ids" if t.element is Element.TOKEN else "reals"
    return " × ".join(parts) + f"; {kind}"


def dim_meanings() -> dict[str, str]:
    """Glossary symbol → meaning, read from the table in spec/dims.py's docstring."""
    out: dict[str, str] = {}
    for line in (D.__doc__ or "").splitlines():
        name, _, meaning = line.strip().partition(" ")
        if name in D.GLOSSARY and meaning.strip():
            out[name] = meaning.strip()
    return out


def slug(text: str) -> str:
    """An HTML id fragment for ``text`` (dots and dashes kept, anything else → ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", text)


PATH_INDEX = re.compile(r"(?<=[._])\d+(?=\.|$)")


def path_pattern(path: str) -> str:
    """A path with its indices replaced by ``*``: ``blocks.3.attn.head_1.Q`` → ``blocks.*.attn.head_*.Q``."""
    return PATH_INDEX.sub("*", path)


def summarise_paths(paths: list[str], limit: int = 6) -> list[str]:
    """Paths grouped by :func:`path_pattern`: a single path as it is, a group as ``pattern (n nodes)``."""
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for p in paths:
        groups.setdefault(path_pattern(p), []).append(p)
    out = [ps[0] if len(ps) == 1 else f"{pattern} ({len(ps)} nodes)" for pattern, ps in groups.items()]
    return out if len(out) <= limit else out[:limit] + [f"… and {len(out) - limit} more patterns"]


def attribute_text(value: object) -> str:
    if isinstance(value, Relation):
        return repr(value)
    if isinstance(value, sympy.Basic):
        return str(value)
    return repr(value)


# -- ops ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dependency:
    """One input port's dependency rule: the relation, in words and in LaTeX."""

    port: str
    relation: Relation
    words: str
    latex: str


@dataclass
class Variant:
    """One distinct instance of a primitive in an architecture (or a generic instance for the op
    reference), and where it is used."""

    anchor: str
    op: Primitive
    paths: list[str] = field(default_factory=list)
    bindings: dict[str, list[str]] = field(default_factory=dict)
    """Parameter → the Θ views bound to it (``blocks.0.attn.W_Q[1]``), in use order."""

    @property
    def attributes(self) -> dict[str, str]:
        return {name: attribute_text(value) for name, value in self.op.attributes().items()}

    @property
    def inputs(self) -> dict[str, TensorType]:
        return self.op.inputs()

    @property
    def output(self) -> TensorType:
        return self.op.output()

    @property
    def params(self) -> dict[str, Shape]:
        return self.op.params()

    def dependencies(self) -> list[Dependency]:
        return [Dependency(port, rel, first_sentence(type(rel).__doc__), rel.latex()) for port, rel in self.op.dependency().items()]

    def support(self) -> Relation | None:
        return self.op.support()


@dataclass
class OpRecord:
    """Everything the docs show about one primitive kind."""

    kind: str
    cls: type[Primitive]
    variants: list[Variant]

    @property
    def title(self) -> str:
        return self.cls.title

    @property
    def latex(self) -> str:
        return self.cls.latex

    @property
    def citation(self) -> str:
        return self.cls.citation

    @property
    def summary(self) -> str:
        return paragraph(self.cls.__doc__)

    @property
    def anchor(self) -> str:
        return f"op-{slug(self.kind)}"

    def fields(self) -> list[tuple[str, str, str]]:
        """The op's attributes as declared: (name, type, default or '')."""
        out = []
        for f in dataclasses.fields(self.cls):  # type: ignore[arg-type]
            default = "" if f.default is dataclasses.MISSING else attribute_text(f.default)
            out.append((f.name, _annotation(f.type), default))
        return out

    def operands(self) -> dict[str, str]:
        return {name: operand.value for name, operand in self.cls.operands.items()}

    def reference_source(self) -> tuple[str, str]:
        """The reference function registered for this kind: (module:qualname, its source)."""
        from reference.ops import REFERENCE

        if self.kind not in REFERENCE:
            return ("(none registered)", f"# reference.ops.REFERENCE has no function for {self.kind!r}\n")
        fn = REFERENCE[self.kind]
        where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"
        try:
            return where, inspect.getsource(fn)
        except (OSError, TypeError):
            return where, f"# the source of {where} is not available\n"


def _annotation(annotation: object) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    return str(text).replace("sympy.Expr", "dim").replace("sympy.", "")


class _Placeholder(Relation):
    """A relation standing for whatever the op's attribute is (the op reference shows the rule
    for any mask A): allowed set A_t."""

    def __init__(self, letter: str) -> None:
        self.letter = letter

    def allowed(self, t: int, s: int) -> bool:
        return True

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Integer(1)

    def latex(self) -> str:
        return f"s \\in {self.letter}_t"

    def __repr__(self) -> str:
        return f"{self.letter} (any relation)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Placeholder) and other.letter == self.letter

    def __hash__(self) -> int:
        return hash(("placeholder", self.letter))


ROW_SYMBOLS: dict[str, sympy.Symbol] = {"rows": D.T, "q_rows": D.T, "k_rows": D.S}


def generic_instance(cls: type[Primitive]) -> Primitive:
    """An instance of ``cls`` for the op reference: its first fixed instance with every size field
    replaced, where the op accepts it, by a symbol named after the field (rows → T, k_rows → S,
    d_in → d_in, …) and every relation attribute by a placeholder A."""
    op = cls.instances(3)[0]
    if not dataclasses.is_dataclass(op):
        return op
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if f.name in SIZE_FIELDS:
            new: object = ROW_SYMBOLS.get(f.name) if f.name in ROW_FIELDS else D.GLOSSARY.get(f.name, sympy.Symbol(f.name, integer=True, positive=True))
        elif isinstance(value, Relation):
            new = _Placeholder("A")
        else:
            continue
        try:
            op = dataclasses.replace(op, **{f.name: new})
        except GptSpecError:  # the op refuses a symbol here (a head count that fixes its ports): keep the number
            continue
    return op


def op_reference() -> list[OpRecord]:
    """Every registered primitive with one generic instance (docs/ops.md)."""
    return [OpRecord(kind, cls, [Variant(f"op-{slug(kind)}-1", generic_instance(cls))]) for kind, cls in PRIMITIVES.items()]


# -- the graph -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One graph of the hierarchy (the model, or a composite's body) at ``path``."""

    path: str
    """'' for the model; a composite's dotted path otherwise."""
    graph: Graph
    kind: str
    title: str
    depth: int
    op: Composite | None = None
    """The composite whose body this is (None for the model)."""
    nodes: tuple[Node, ...] = ()
    """The graph's nodes in topological order (computed once)."""

    @property
    def anchor(self) -> str:
        return "g-model" if not self.path else f"g-{slug(self.path)}"

    def node_path(self, node: Node) -> str:
        return f"{self.path}.{node.name}" if self.path else node.name


def levels(arch: Architecture) -> Iterator[Level]:
    """The model and every composite's body, depth first (a composite before its children)."""

    def walk(graph: Graph, path: str, op: Composite | None, depth: int) -> Iterator[Level]:
        kind, title = ("model", arch.name) if op is None else (op.kind, op.title)
        order = tuple(graph.topological())
        yield Level(path, graph, kind, title, depth, op, order)
        for node in order:
            if isinstance(node.op, Composite):
                sub = f"{path}.{node.name}" if path else node.name
                yield from walk(node.op.body, sub, node.op, depth + 1)

    yield from walk(arch, "", None, 0)


def output_type(op: Op) -> TensorType:
    return next(iter(op.outputs().values()))


def source_text(level: Level, src_node: str | None, port: str) -> str:
    """Where a port reads from, as a path (``input.ids`` for a graph input)."""
    if src_node is None:
        return f"{INPUT}.{port}" if not level.path else f"{level.path}.{INPUT}.{port}"
    return level.path + "." + src_node if level.path else src_node


# -- Θ -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThetaEntry:
    name: str
    shape: Shape
    numbers: tuple[int, ...]
    group: str
    size: sympy.Expr
    count: int
    read_by: tuple[str, ...]


def theta_entries(arch: Architecture, reads: Mapping[str, list[str]], groups: list[str]) -> list[ThetaEntry]:
    """Every Θ entry with its shapes, group (one of spec.counting.breakdown's ``groups``), counts
    and readers."""
    out = []
    numbers: dict[Shape, tuple[int, ...]] = {}
    for name, shape in arch.theta.items():
        group = next((g for g in groups if g == name or fnmatch.fnmatchcase(name, g)), name)
        if shape not in numbers:
            numbers[shape] = concrete_shape(shape, arch.dims)
        size = sympy.Mul(*shape)
        n = 1
        for d in numbers[shape]:
            n *= d
        out.append(ThetaEntry(name, shape, numbers[shape], group, size, n, tuple(reads.get(name, ()))))
    return out


# -- theorems ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applicable:
    theorem: Any
    """A proofs.core.Theorem."""
    ops: tuple[str, ...]
    """The op kinds the theorem is about (its ``Theorem.ops``; all used by this architecture); ()
    when it is about the spec's machinery (Θ, the dependency typing) rather than an op."""


def theorem_ops(thm: Any) -> tuple[str, ...]:
    """The primitive kinds a theorem is about: its explicit ``Theorem.ops`` field."""
    return tuple(thm.ops)


def architecture_family(arch: Architecture) -> str | None:
    """The registered family ``arch`` was built by (None: built by hand, no registered config)."""
    from spec.architectures.registry import family_of

    config = getattr(arch, "config", None)
    if config is None:
        return None
    try:
        return family_of(config).name
    except GptSpecError:
        return None


def applicable_theorems(kinds: set[str], family: str | None = None) -> list[Applicable]:
    """The theorems about this architecture: those whose ``Theorem.ops`` it all uses, and whose
    ``Theorem.families`` (when given) include its family."""
    from proofs.runner import select

    out = []
    for thm in select():
        if set(thm.ops) <= kinds and (not thm.families or family in thm.families):
            out.append(Applicable(thm, tuple(thm.ops)))
    return out


# -- the site ------------------------------------------------------------------------------


@dataclass
class Site:
    """The content of the documentation of one architecture."""

    arch: Architecture
    source: str
    note: str
    levels: list[Level]
    ops: list[OpRecord]
    composites: dict[str, tuple[str, Composite, list[str]]]
    """Composite kind → (title, one instance, its paths)."""
    variant_of: dict[str, Variant]
    """A primitive's path → its variant."""
    theta: list[ThetaEntry]
    total: int
    formula: sympy.Expr
    groups: OrderedDict[str, int]
    theorems: list[Applicable]
    verdict: list[str]
    conventions: list[Any]
    kinds: set[str]
    definitions: dict[str, Any] = field(default_factory=dict)
    """Composite kind → its derived definitions (gptspec.docs.equations.CompositeDefinitions)."""
    model: Any = None
    """The model's derived equations (a gptspec.docs.equations.Definition)."""
    diff: Any = None
    """What this architecture changes relative to another (a gptspec.diff.Diff), or None."""
    proofs_href: str = ""
    """A relative link to docs/proofs.md when the docs are written inside the repository (else
    the theorems name it as text: a link out of the site would not resolve elsewhere)."""

    @property
    def family_description(self) -> str:
        """The registered family's description ('' for an unregistered architecture)."""
        from spec import family_of

        try:
            return family_of(self.arch.config).description if self.arch.config is not None else ""
        except GptSpecError:
            return ""

    @property
    def family(self) -> str:
        from spec import family_of

        try:
            return family_of(self.arch.config).name if self.arch.config is not None else "(no registered family)"
        except GptSpecError:  # a user's architecture with an unregistered config
            return "(no registered family)"

    def config_items(self) -> list[tuple[str, str]]:
        config = self.arch.config
        if config is None or not dataclasses.is_dataclass(config):
            return []
        return [(f.name, repr(getattr(config, f.name))) for f in dataclasses.fields(config)]

    def dims(self) -> list[tuple[str, int, str]]:
        meanings = dim_meanings()
        return [(str(s), v, meanings.get(str(s), "")) for s, v in self.arch.dims.items()]

    def count_nodes(self) -> tuple[int, int]:
        """(primitives, composites)."""
        prims = sum(1 for lv in self.levels for n in lv.graph.nodes.values() if not isinstance(n.op, Composite))
        return prims, len(self.levels) - 1


def collect(arch: Architecture, source: str = "", note: str = "") -> Site:
    """Read everything the docs show off ``arch``."""
    from gptspec.docs.conventions import applicable_conventions
    from gptspec.typing_report import verdict

    variants: dict[str, OrderedDict[Any, Variant]] = OrderedDict()
    variant_of: dict[str, Variant] = {}
    reads: dict[str, list[str]] = {}
    for path, node, _ in arch.expand():
        op = node.op
        if not isinstance(op, Primitive):
            continue
        table = variants.setdefault(op.kind, OrderedDict())
        key = _key(op)
        if key not in table:
            table[key] = Variant(f"op-{slug(op.kind)}-{len(table) + 1}", op)
        v = table[key]
        v.paths.append(path)
        for pname, ref in node.params.items():
            v.bindings.setdefault(pname, []).append(str(ref))
            reads.setdefault(ref.name, []).append(f"{path}.{pname} = {ref}")
        variant_of[path] = v
    ops = [OpRecord(kind, PRIMITIVES.get(kind, type(next(iter(t.values())).op)), list(t.values())) for kind, t in variants.items()]
    composites: dict[str, tuple[str, Composite, list[str]]] = OrderedDict()
    lv = list(levels(arch))
    for level in lv[1:]:
        if level.op is None:
            continue
        entry = composites.get(level.kind)
        if entry is None:
            composites[level.kind] = (level.title, level.op, [level.path])
        else:
            entry[2].append(level.path)
    kinds = set(variants)
    groups = breakdown(arch)
    try:
        typing_lines = verdict(arch).lines()
    except GptSpecError as error:  # the typing refuses an architecture it cannot type: say so
        typing_lines = [f"the dependency typing could not type this architecture: {error}"]
    return Site(
        definitions=composite_definitions(arch), model=definition(arch, ""),
        arch=arch, source=source, note=note, levels=lv, ops=ops, composites=composites, variant_of=variant_of,
        theta=theta_entries(arch, reads, list(groups)), total=count(arch), formula=symbolic_count(arch), groups=groups,
        theorems=applicable_theorems(kinds, architecture_family(arch)), verdict=typing_lines, conventions=applicable_conventions(kinds), kinds=kinds,
    )


def _key(op: Primitive) -> Any:
    try:
        hash(op)
        return op
    except TypeError:
        return repr(op)


@functools.lru_cache(maxsize=65536)
def shape_text(shape: Shape) -> str:
    """A shape as the docs write it: ``(T, d_model)``, products with a middle dot (``2·d_head``)."""
    return show(shape).replace("*", "·")
