"""The pages whose content is written once (gptspec/docs/document.py) and rendered both as the
site's HTML (gptspec/docs/site.py) and as the repository's Markdown (gptspec/docs/markdown.py):
``index`` (the architecture, its equations and graph), ``algorithm`` (the model as numbered
pseudocode), ``ops`` (every primitive and composite used; its op sections are docs/ops.md's too), ``theta`` (Θ and its counts), ``theorems`` (what is
proved), ``conventions`` (what an implementer must match) and ``diff`` (what it changes relative to
another architecture). Each builder reads a :class:`~gptspec.docs.content.Site` and returns a
:class:`~gptspec.docs.document.Page`; neither format appears here but in a :class:`Figure`.
"""

from __future__ import annotations

import inspect

from sympy import sympify

from gptspec.docs import svg
from gptspec.docs.content import (
    Applicable,
    OpRecord,
    Site,
    Variant,
    axes_text,
    first_sentence,
    paragraph,
    shape_text,
    slug,
    summarise_paths,
    symbol_latex,
    type_full,
)
from gptspec.docs.document import (
    Anchor,
    Block,
    Bullets,
    Code,
    Display,
    Figure,
    Group,
    Heading,
    Inline,
    Link,
    Listing,
    Math,
    Page,
    Para,
    Prose,
    Steps,
    Strong,
    Table,
    joined,
    spans,
)
from gptspec.docs.equations import AlgorithmView, Definition
from gptspec.docs.graph import graph_markdown, graph_section
from spec.types import TensorType


def lead(obj: object, paragraphs: tuple[int, ...] = (0,)) -> list[Block]:
    """A page's opening: the given paragraphs of an object's docstring (none if it has none)."""
    parts = inspect.cleandoc(getattr(obj, "__doc__", None) or "").split("\n\n")
    text = " ".join(" ".join(parts[i].split()) for i in paragraphs if i < len(parts))
    return [Para((Prose(text),), role="lead")] if text else []


def _read_by(reads: tuple[str, ...]) -> Inline:
    if not reads:
        return spans("—")
    return spans(Code(reads[0]), f" (+{len(reads) - 1} more)" if len(reads) > 1 else "")


def signature(view: AlgorithmView, where: str, theta_page: bool = True) -> list[Block]:
    """An algorithm's inputs, outputs and parameters (Θ's symbols, each with its space and the
    loop it is one per); ``theta_page``: link the Θ page of the same docs (not in docs/, which
    has none)."""
    params = []
    for sym, space, loops in view.parameters:
        each = spans(" for each ", Math(loops[len("one per "):], where)) if loops.startswith("one per ") else (spans(f" ({loops})") if loops else ())
        params.append(spans(Math(sym + r" \in " + space, where), *each))
    return [
        Para(spans(Strong(spans("Input:")))), Bullets(tuple(spans(Math(t, where)) for t in view.inputs)),
        Para(spans(Strong(spans("Output:")))), Bullets(tuple(spans(Math(t, where)) for t in view.outputs)),
        Para(spans(Strong(spans("Parameters")), " (Θ, one symbol per entry name with its layer index as a superscript; the shapes are symbolic",
                   *(spans(", their values on the ", Link(spans("Θ page"), "theta")) if theta_page else ()), "):")),
        Bullets(tuple(params), role="params"),
    ]


def steps(view: AlgorithmView, where: str) -> Steps:
    """An algorithm's numbered lines."""
    return Steps(tuple((line.depth, line.keyword, line.latex) for line in view.lines), where)


def algorithm(site: Site) -> Page:
    """The whole model as numbered pseudocode (gptspec/docs/equations.py: algorithm): inputs,
    outputs, parameters, then the lines. docs/algorithms.md shows every family's the same way
    (gptspec/docs/repo.py)."""
    import gptspec.docs.equations as equations_module

    view = equations_module.algorithm(site.arch)
    where = f"{site.arch.name} algorithm"
    blocks: list[Block] = [
        *lead(equations_module, (3,)),
        Para(spans("It is written from the same graph the reference executes — the per-composite definitions are on the ",
                   Link(spans("ops page"), "ops", "composites"), ", the model's equations on the ", Link(spans("architecture page"), "index", "equations"),
                   ".")),
        Heading(2, spans("Inputs, outputs, parameters"), "signature"),
        *signature(view, where),
        Heading(2, spans("The lines"), "lines"),
        steps(view, where),
    ]
    return Page("algorithm", "Algorithm", "the algorithm", blocks)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def _codes(paths: list[str], separator: str = "; ") -> Inline:
    return joined([spans(Code(p)) for p in paths], separator)


def _type_row(port: str, direction: str, t: TensorType) -> tuple[Inline, ...]:
    return spans(Code(port)), spans(direction), spans(Code(shape_text(t.shape))), spans(axes_text(t))


def variant(record: OpRecord, v: Variant, index: int, heading: int, title: str = "") -> list[Block]:
    """One distinct instance of an op: its attributes, types, parameters (and the Θ views bound
    to them), dependency rule, support, and where it is used."""
    attrs = joined([spans(f"{k}=", Code(str(val))) for k, val in v.attributes.items()])
    blocks: list[Block] = [
        Heading(heading, spans(title or f"Instance {index}"), v.anchor),
        Para(spans("Attributes: ", *(attrs or spans("none")), ".")),
        Table("Types", ("port", "", "symbolic shape", "axes"),
              tuple(_type_row(p, "input", t) for p, t in v.inputs.items()) + (_type_row("y", "output", v.output),)),
    ]
    if v.params:
        rows = []
        for name, shape in v.params.items():
            operand = record.cls.operands.get(name)
            bound = v.bindings.get(name, [])
            where = (*_codes(bound[:3]), *(spans(f" … ({len(bound)} views)") if len(bound) > 3 else ())) if bound else spans("—")
            rows.append((spans(Code(name)), spans(Code(shape_text(shape))), spans(operand.value if operand is not None else "real"), where))
        blocks.append(Table("Parameters", ("name", "shape", "entries", "bound to (Θ views)"), tuple(rows)))
    blocks.append(Table("Dependency rule: which input positions output row t reads", ("input", "in words", "as a formula"),
                        tuple((spans(Code(d.port)), (Prose(d.words),), spans(Math(d.latex, f"{record.kind} dependency"))) for d in v.dependencies())))
    support = v.support()
    if support is not None:
        blocks.append(Para(spans("Support: entry (t, s) is 0 outside ", Math(support.latex(), record.kind), ".")))
    if v.paths:
        blocks.append(Para(spans("Used at: ", *_codes(summarise_paths(v.paths)), f" — {_plural(len(v.paths), 'node')}.")))
    return blocks


def op_section(record: OpRecord, heading: int = 2, generic: bool = False, with_source: bool = True) -> Group:
    """One primitive: title, summary, its definition beside its reference function (the source,
    or with ``with_source`` False only where it lives), its attributes, and its instances
    (``generic``: the one generic instance of docs/ops.md)."""
    from gptspec.docs.mathml import equations

    where, source = record.reference_source()
    operands = record.operands()
    definition: list[Block] = [Heading(heading + 1, spans("Definition"), f"{record.anchor}-def")]
    definition += [Display(eq, record.kind) for eq in equations(record.latex)]
    definition.append(Para(spans(Strong(spans("Source:")), " ", *((Prose(record.citation),) if record.citation else spans("—")))))
    if operands:
        definition.append(Para(spans("What its arrays hold: ", *joined([spans(Code(k), f" {val}") for k, val in operands.items()]), " (others: real).")))
    reference: list[Block] = [Heading(heading + 1, spans("Reference function"), f"{record.anchor}-ref")]
    if with_source:
        reference += [Para(spans(Code(where), " (reference/ops/), the literal meaning in float64:")), Listing("python", source)]
    else:
        reference.append(Para(spans(Code(where), " (reference/ops/), the literal meaning in float64.")))
    title = "Types, parameters and dependency (sizes named after the fields)" if generic else ""
    blocks: list[Block] = [
        Heading(heading, spans(f"{record.title} (", Code(record.kind), ")"), f"{record.anchor}-h"),
        Para((Prose(record.summary),)),
        Group((Group(tuple(definition)), Group(tuple(reference))), role="pair"),
        Table("Attributes (the op's fields)", ("field", "type", "default"),
              tuple((spans(Code(n)), spans(Code(t)), spans(Code(d)) if d else spans("—")) for n, t, d in record.fields())),
    ]
    for i, v in enumerate(record.variants):
        blocks += variant(record, v, i + 1, heading + 1, title)
    return Group(tuple(blocks), record.anchor, labelled_by=f"{record.anchor}-h")


def definition_blocks(d: Definition, where: str) -> list[Block]:
    """A derived definition (a composite's, the model's): its equations, those of the values it
    names after "where", and the sub-ops it uses, linked to the ops page."""
    blocks: list[Block] = [Display(eq.latex, where) for eq in d.main]
    if d.where:
        blocks += [Para(spans("where"), role="where"), *(Display(eq.latex, where) for eq in d.where)]
    uses = [spans(Link(spans(link.kind.replace("_", " ")), "ops", f"{'comp' if link.composite else 'op'}-{slug(link.kind)}")) for link in d.links]
    if uses:
        blocks.append(Para(spans("Uses: ", *joined(uses), "."), role="uses"))
    return blocks


def composites(site: Site) -> list[Block]:
    """The composites the architecture uses: each one's definition (derived from its body),
    interface, body and instances."""
    if not site.composites:
        return []
    blocks: list[Block] = [
        Heading(2, spans("Composites"), "composites"),
        Para(spans("Ops whose body is a graph; their drawings are on the architecture page. Each definition is derived from the body: its "
                   "nodes in their ops' notation, substituted where a value is read once; instances whose equations are the same share one "
                   "definition.")),
    ]
    for kind, (title, comp, paths) in site.composites.items():
        blocks.append(Heading(3, spans(f"{title} (", Code(kind), ")"), f"comp-{slug(kind)}"))
        described = first_sentence(getattr(comp, "description", ""))
        if described:
            blocks.append(Para((Prose(described),)))
        defs = site.definitions.get(kind)
        if defs is not None:
            for i, (d, where) in enumerate(defs.variants):
                if len(defs.variants) > 1:
                    blocks.append(Para(spans(f"Definition {i + 1} of {len(defs.variants)}, at ", *_codes(summarise_paths(where)), ":")))
                blocks.append(Group(tuple(definition_blocks(d, kind)), f"def-{slug(kind)}-{i + 1}", role="composite-definition"))
        rows = tuple(_type_row(p, "input", t) for p, t in comp.inputs().items()) + tuple(_type_row(p, "output", t) for p, t in comp.outputs().items())
        blocks += [
            Table("Interface", ("port", "", "symbolic shape", "axes"), rows),
            Para(spans("Body: ", *joined([spans(Code(n.name), f" ({n.op.kind})") for n in comp.body.topological()]), ".")),
            Para(spans(f"{_plural(len(paths), 'instance')}: ", *_codes(summarise_paths(paths)), ". First: ",
                       Link((Code(paths[0]),), "index", f"g-{slug(paths[0])}"), ".")),
        ]
    return blocks


def ops(site: Site) -> Page:
    """Every primitive the architecture uses (:func:`op_section`), then its composites."""
    import spec.op

    blocks: list[Block] = [
        *lead(spec.op, (1,)),
        Para(spans("Every primitive this architecture uses. The definition is the op's own LaTeX (", Code("Primitive.latex"), "); the "
                   "types, parameters and dependency rule are read off each distinct instance in the graph; the source beside the definition "
                   "is the function ", Code("reference.ops.REFERENCE"), " runs for the op — the spec's meaning, literally.")),
        Bullets(tuple(spans(Link(spans(r.title), "ops", r.anchor), " (", Code(r.kind), f", {_plural(len(r.variants), 'instance')})") for r in site.ops)),
        *(op_section(r) for r in site.ops),
        *composites(site),
    ]
    return Page("ops", "Ops", "the ops", blocks)


def theta(site: Site, chart_file: str) -> Page:
    """Θ: the count as a number and a formula in the dims, the per-group chart (``chart_file``:
    the repository's SVG file of it) and table, every entry."""
    import spec.counting

    arch = site.arch
    used = sorted(site.formula.free_symbols, key=str)
    values = [spans(Math(symbol_latex(s), "dims"), f" = {arch.dims[s]:,}") for s in used if s in arch.dims]
    total = site.total or 1
    groups = list(site.groups.items())
    chart = svg.bar_chart(groups, f"Parameters of {arch.name} by Θ group")
    rows = tuple(
        (spans(Anchor(f"theta-{slug(t.name)}", (Code(t.name),))), spans(Code(t.group)), spans(Code(shape_text(t.shape))),
         spans(Code(str(t.numbers))), spans(Math(symbol_latex(t.size), t.name)), spans(f"{t.count:,}"), _read_by(t.read_by))
        for t in site.theta
    )
    blocks: list[Block] = [
        *lead(spec.counting, (0, 1)),
        Para(spans("Θ maps hierarchical names to symbolic shapes; the parameter count is the sum over Θ of the shape products (",
                   Code("spec.counting"), "), with no separate formula.")),
        Heading(2, spans("The count"), "count"),
        Para(spans(Strong(spans(f"{site.total:,}")), " parameters, as a formula in the dims:")),
        Display(r"\#\Theta = " + symbol_latex(site.formula), "count"),
        Para(spans("with ", *(joined(values) if values else spans("no free dims")), ".")),
        Heading(2, spans("By group"), "groups"),
        Figure(f'<div class="figure">{chart}</div>', f"![Parameters by Θ group]({chart_file})"),
        Table("Parameters by group (the chart's data)", ("group", "parameters", "share"),
              tuple((spans(Code(g)), spans(f"{n:,}"), spans(f"{100 * n / total:.1f}%")) for g, n in groups), frozenset({1, 2})),
        Heading(2, spans("Every entry"), "entries"),
        Table(f"Θ: {len(site.theta):,} entries", ("name", "group", "symbolic shape", "shape", "count (formula)", "count", "read by"),
              rows, frozenset({5})),
    ]
    return Page("theta", "Θ and counts", "Θ, the parameter space", blocks)


def _theorem(site: Site, a: Applicable) -> list[Block]:
    thm = a.theorem
    about = (spans("Its proof reads the ops ", *joined([spans(Link((Code(k),), "ops", f"op-{slug(k)}")) for k in a.ops]), ".") if a.ops
             else spans("Its proof reads no particular op: it is about Θ, the dependency typing or every architecture of a kind."))
    where: Inline = (spans(Link(spans(f"docs/proofs.md#{thm.name}"), href=f"{site.proofs_href}#{thm.name}")) if site.proofs_href
                     else spans(Code(f"docs/proofs.md#{thm.name}")))
    blocks: list[Block] = [Heading(3, spans(Code(thm.name), f" — {thm.title}"), f"thm-{thm.name}")]
    if thm.refutes:
        blocks.append(Para(spans(Strong(spans("Settles the claim:")), " ", Prose(thm.refutes), ".")))
    blocks += [
        Para((Prose(thm.statement),)), Display(thm.statement_latex, thm.name), Para(spans("Hypotheses:")),
        Bullets(tuple((Prose(h),) for h in thm.hypotheses)),
        Para(spans(Strong(spans(f"Scope ({thm.scope.kind.value}):")), " ", Prose(thm.scope.detail), ". ", *about, " In the repository: ",
                   *where, "; run it with ", Code(f"gptspec prove {thm.name}"), ".")),
    ]
    return blocks


def theorems(site: Site) -> Page:
    """The dependency typing's verdict, then the theorems that apply: about the ops used here,
    and about the spec's machinery."""
    import proofs

    blocks: list[Block] = [
        *lead(proofs),
        Para(spans("Machine-checked statements (", Code("proofs/"), ", listed with their proofs in docs/proofs.md): each is proved in "
                   "sympy from the ops' own definitions and witnessed numerically through the reference. Listed here: those whose proofs "
                   "read only ops this architecture uses, and those about the spec's machinery.")),
        Heading(2, spans("Causality, by dependency typing"), "causality"),
        Bullets(tuple((Prose(line.strip()),) for line in site.verdict)),
    ]
    for title, anchor, group in (("Theorems about the ops used here", "about-ops", [a for a in site.theorems if a.ops]),
                                 ("Theorems about the spec's machinery", "general", [a for a in site.theorems if not a.ops])):
        blocks.append(Heading(2, spans(title), anchor))
        for a in group:
            blocks += _theorem(site, a)
        if not group:
            blocks.append(Para(spans("None.")))
    return Page("theorems", "Theorems", "what is proved", blocks)


def _pinned(site: Site, item: str) -> Inline:
    if item.startswith("theorem:"):
        name = item.split(":", 1)[1]
        if any(a.theorem.name == name for a in site.theorems):
            return spans("theorem ", Link((Code(name),), "theorems", f"thm-{name}"))
        return spans("theorem ", Code(name), " (docs/proofs.md)")
    return spans("test ", Code(item))


def conventions(site: Site) -> Page:
    """Each documented convention that concerns an op of the architecture: the rule, the ops'
    definitions, and the tests and theorems that pin it down."""
    import gptspec.docs.conventions as documented
    from gptspec.docs.mathml import equations

    records = {r.kind: r for r in site.ops}
    blocks: list[Block] = [
        *lead(documented, (0, 1)),
        Para(spans("Where implementations of the same model differ, the spec makes one choice. These concern ops this architecture uses; "
                   "each lists the tests and theorems that fail if the code departs from it. The notation is in docs/conventions.md.")),
    ]
    for c in site.conventions:
        blocks += [Heading(2, spans(c.title), f"conv-{c.name}"), Para((Prose(c.rule),))]
        for k in c.ops:
            if k in records:
                blocks.append(Para(spans(Link(spans(records[k].title), "ops", records[k].anchor), " (", Code(k), "):")))
                blocks += [Display(eq, k) for eq in equations(records[k].latex)]
        blocks += [Para(spans("Pinned down by:")), Bullets(tuple(_pinned(site, p) for p in c.pinned_by))]
    if not site.conventions:
        blocks.append(Para(spans("None of the documented conventions concerns this architecture's ops.")))
    return Page("conventions", "Conventions", "conventions an implementer must match", blocks)


def _code_or_dash(text: str) -> Inline:
    return spans(Code(text)) if text else spans("—")


def diff(site: Site) -> Page:
    """What this architecture (B) changes relative to another (A), as ``gptspec diff`` computes it
    (gptspec/diff.py): the ops aligned, Θ's count and entry patterns, conventions, config and
    causality."""
    import gptspec.diff as diff_module
    from gptspec.diff import Diff
    from spec.errors import ConfigError

    d = site.diff
    if not isinstance(d, Diff):  # an invariant of the structure; the check narrows the type
        raise ConfigError(f"site.diff={type(d).__name__}, but expected a Diff [gptspec docs]; pass diff= a gptspec.diff.Diff")
    tally = ", ".join(f"{n} {k}" for k, n in d.summary.items()) or "no change"
    same = sum(1 for r in d.theta if r.status == "same")
    blocks: list[Block] = [
        *lead(diff_module),
        Para(spans(f"A = {d.a_source} (family ", Code(d.families[0] or "none"), f"); B = {d.b_source} (family ", Code(d.families[1] or "none"),
                   "), the architecture these pages document. The same comparison in a terminal: ", Code("gptspec diff"), " with A and B.")),
        Heading(2, spans("Ops"), "ops"),
    ]
    if d.ops:
        blocks.append(Table(f"Ops: {tally}", ("change", "where in A", "where in B", "A", "B"),
                            tuple((spans(c.change), _code_or_dash(c.a_where), _code_or_dash(c.b_where), _code_or_dash(c.a), _code_or_dash(c.b)) for c in d.ops)))
    else:
        blocks.append(Para(spans("The same ops, wired the same way.")))
    blocks += [
        Heading(2, spans("Θ"), "theta"),
        Para(spans(f"{d.counts[0]:,} → {d.counts[1]:,} parameters ({d.counts[1] - d.counts[0]:+,}); "
                   f"{same} entry pattern{'s' if same != 1 else ''} the same in both.")),
        *(Display(rf"\#\Theta_{{{side}}} = " + symbol_latex(sympify(f)), f"diff {side}") for side, f in zip("AB", d.formulas)),
        Table("Θ entry patterns that differ", ("", "pattern", "A shape", "A entries", "A parameters", "B shape", "B entries", "B parameters"),
              tuple((spans(r.status), spans(Code(r.pattern)), spans(Code(r.a_shape)), spans(f"{r.a_entries:,}"), spans(f"{r.a_count:,}"),
                     spans(Code(r.b_shape)), spans(f"{r.b_entries:,}"), spans(f"{r.b_count:,}")) for r in d.theta if r.status != "same"),
              frozenset({3, 4, 6, 7})),
        Heading(2, spans("Conventions and config"), "conventions"),
        Bullets(tuple(spans(f"only A's ops: {t}") for t in d.conventions[0]) + tuple(spans(f"only B's ops: {t}") for t in d.conventions[1])
                or (spans("The same conventions concern both."),)),
    ]
    if d.config:
        blocks.append(Table("Config fields that differ", ("field", "A", "B"),
                            tuple((spans(Code(f)), spans(Code(x)), spans(Code(y))) for f, x, y in d.config)))
    else:
        blocks.append(Para(spans("None.")))
    blocks += [
        Heading(2, spans("Causality"), "causality"),
        Bullets(tuple(spans(f"A: {x.strip()}") for x in d.causality[0]) + tuple(spans(f"B: {x.strip()}") for x in d.causality[1])),
    ]
    return Page("diff", "Changes", f"what it changes relative to {d.a_name}", blocks)


def index(site: Site) -> Page:
    """The architecture: what it is, its counts, the model as equations, the graph, its dims and
    config. The graph is the one part drawn per format (a :class:`Figure`): on the site every
    level's SVG with its node list (gptspec/docs/graph.py: graph_section), in the repository its
    SVG files and one nested node list (gptspec/docs/graph.py:
    graph_markdown)."""
    arch = site.arch
    prims, comps = site.count_nodes()
    inputs = joined([spans(Code(n), f": {type_full(t)}") for n, t in arch.inputs.items()])
    family = spans(" — ", Prose(site.family_description)) if site.family_description else ()
    blocks: list[Block] = [
        Para(spans(Prose(paragraph(type(arch).__doc__)), " Here: family ", Code(site.family), *family, "."), role="lead"),
        Para(spans(f"From {site.source}. Inputs ", *inputs, "; outputs ", *joined([spans(Code(n)) for n in arch.outputs]), ". ",
                   Strong(spans(f"{site.total:,}")), f" parameters in {len(arch.theta):,} Θ entries (", Link(spans("Θ and counts"), "theta"),
                   f"); {prims:,} primitive nodes in {comps:,} composites.")),
    ]
    if site.note:
        blocks.append(Para((Prose(site.note),), role="note"))
    if site.model is not None:
        blocks += [
            Heading(2, spans("The model as equations"), "equations"),
            Para(spans("Derived from the graph below, never written by hand: each node is its op's notation applied to the values it reads, "
                       "substituted into the one expression that reads it; a composite is a function, defined on the ",
                       Link(spans("ops page"), "ops", "composites"), "; a chain of blocks is an iteration. Line by line, with every composite "
                       "expanded, this is ", Link(spans("the algorithm"), "algorithm"), ".")),
            Group(tuple(definition_blocks(site.model, arch.name)), "def-model", role="composite-definition"),
        ]
    blocks += [
        Heading(2, spans("The graph"), "graph"),
        Para(spans("Drawn from the graph itself, one level at a time. Each box is a node: its name, its op and the symbolic shape of its "
                   "output. A primitive links to its op; an orange box with ▸ is a composite (a cluster), whose body is drawn below in the "
                   "same way. Dashed boxes are the level's inputs and outputs. The nodes in topological order are the drawings' text "
                   "alternative.")),
        Figure(graph_section(site), graph_markdown(site)),
        Heading(2, spans("Dims and config"), "summary"),
        Table("Dims (spec/dims.py)", ("symbol", "value", "meaning"), tuple((spans(Code(sym)), spans(f"{v:,}"), spans(m)) for sym, v, m in site.dims()),
              frozenset({1})),
        Table(f"Config ({type(arch.config).__name__})", ("field", "value"), tuple((spans(Code(k)), spans(Code(v))) for k, v in site.config_items())),
    ]
    return Page("index", "Architecture", "the architecture", blocks)


__all__ = [
    "algorithm", "composites", "conventions", "definition_blocks", "diff", "index", "lead", "op_section", "ops", "signature", "steps", "theorems", "theta",
    "variant",
]
