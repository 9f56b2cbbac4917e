"""The HTML site of one architecture: static files that work from ``file://`` with no network.

Pages (each ``<h1>`` → ``<h2>`` → ``<h3>``, no level skipped):

* ``index.html`` — the architecture: dims, config, counts, and the graph: the model's level as an
  SVG, then every composite's body as an SVG inside a ``<details>`` (collapsed by default), each
  followed by its node list (the graph's text alternative);
* ``ops.html`` — every primitive used: title, definition (MathML from the op's LaTeX), citation,
  attributes, each distinct instance's types, parameters, dependency rule, where it is used, and
  the reference function's source beside the definition; then the composites;
* ``theta.html`` — Θ: the count as a number and a formula, the per-group chart, every entry;
* ``theorems.html`` — the dependency typing's verdict and the theorems that apply;
* ``conventions.html`` — what an implementer must match, and what pins each down.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from pathlib import Path

from sympy import sympify

from gptspec.docs import svg
from gptspec.docs.assets import SCRIPT, STYLE
from gptspec.docs.content import (
    Level,
    OpRecord,
    Site,
    Variant,
    axes_text,
    first_sentence,
    output_type,
    paragraph,
    shape_text,
    slug,
    summarise_paths,
    symbol_latex,
    type_full,
)
from gptspec.docs.equations import Definition, algorithm, structure
from gptspec.docs.mathml import equations, to_mathml
from spec.errors import ConfigError
from spec.graph import Composite, Graph
from spec.types import TensorType

PAGES: tuple[tuple[str, str], ...] = (
    ("index.html", "Architecture"),
    ("algorithm.html", "Algorithm"),
    ("ops.html", "Ops"),
    ("theta.html", "Θ and counts"),
    ("theorems.html", "Theorems"),
    ("conventions.html", "Conventions"),
)


def pages(site: Site) -> tuple[tuple[str, str], ...]:
    """The site's pages: :data:`PAGES`, and the comparison when there is one."""
    return PAGES + ((("diff.html", "Changes"),) if site.diff is not None else ())


def e(text: object) -> str:
    return escape(str(text))


def code(text: object) -> str:
    return f"<code>{e(text)}</code>"


def math(latex: str, display: bool = True, where: str = "") -> str:
    m = to_mathml(latex, display, where)
    return f'<div class="math">{m}</div>' if display else m


def rich(text: str) -> str:
    """Docstring prose as HTML: escaped, ``code`` and :class:`~a.b.Name` as code, nothing of the
    markup left as characters."""
    text = re.sub(r":(?:class|func|meth|attr|mod|data):", "", text)
    out = []
    for i, part in enumerate(re.split(r"``?([^`]+)``?", text)):
        if i % 2:
            out.append(code(part[1:].rsplit(".", 1)[-1] if part.startswith("~") else part))
        else:
            out.append(e(part.replace("**", "")))
    return "".join(out)


def lead(obj: object, paragraphs: tuple[int, ...] = (0,)) -> str:
    """A page's opening: the given paragraphs of an object's docstring, as HTML."""
    import inspect

    parts = inspect.cleandoc(getattr(obj, "__doc__", None) or "").split("\n\n")
    text = " ".join(" ".join(parts[i].split()) for i in paragraphs if i < len(parts))
    return f'<p class="lead">{rich(text)}</p>' if text else ""


def equations_html(d: Definition, here: str, where: str) -> str:
    """A definition's equations in MathML (one display per equation), the values it names after
    "where", and the sub-ops it uses, linked."""
    main = "".join(math(eq.latex, True, where) for eq in d.main)
    named = "".join(math(eq.latex, True, where) for eq in d.where)
    uses = []
    for link in d.links:
        if link.composite:
            href = ("" if here == "ops.html" else "ops.html") + f"#comp-{slug(link.kind)}"
        else:
            href = ("" if here == "ops.html" else "ops.html") + f"#op-{slug(link.kind)}"
        uses.append(f'<a href="{e(href)}">{e(link.kind.replace("_", " "))}</a>')
    wheres = f'<p class="where">where</p>{named}' if named else ""
    used = f'<p class="uses">Uses: {", ".join(uses)}.</p>' if uses else ""
    return f"{main}{wheres}{used}"


def definition(latex: str, where: str) -> str:
    """An op's definition, one display formula per equation (:func:`equations`)."""
    return "".join(math(eq, True, where) for eq in equations(latex))


def table(caption: str, head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    th = "".join(f'<th scope="col"{" class=num" if i in numeric else ""}>{h}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(row)) + "</tr>" for row in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f'<div class="table-wrap"><table>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def page(site: Site, filename: str, title: str, body: str) -> str:
    nav = "".join(
        f'<li><a href="{f}"{" aria-current=page" if f == filename else ""}>{e(label)}</a></li>' for f, label in pages(site)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} — {e(site.arch.name)} — gptspec</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="style.css">
<script src="site.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header><div class="inner"><p>gptspec docs · <strong>{e(site.arch.name)}</strong> · {e(site.source)}</p>
<nav aria-label="Pages"><ul>{nav}</ul></nav></div></header>
<main id="main">
{body}
</main>
<footer>Generated by <code>gptspec docs</code> from the executed objects: the architecture's graph and Θ, the primitives'
records (spec.op.PRIMITIVES), the reference functions (reference.ops.REFERENCE) and the theorems (proofs).</footer>
</body>
</html>
"""


# -- links ---------------------------------------------------------------------------------


def op_link(site: Site, path: str) -> str:
    """Where a primitive's node links: its variant on the ops page."""
    return f"ops.html#{site.variant_of[path].anchor}"


def type_text(t: TensorType) -> str:
    return shape_text(t.shape)


# -- index.html ----------------------------------------------------------------------------


def level_drawing(
    site: Site, level: Level, link: Callable[[str], str], cluster: Callable[[str], str] | None = None, standalone: bool = False,
) -> str:
    """One level's SVG: ``link(path)`` gives a primitive's href, ``cluster(path)`` a composite's
    (default: its ``<details>`` on this page)."""
    graph = level.graph
    keys, edges = svg.structure(graph, level.nodes)
    vertices: dict[str, svg.Vertex] = {}
    for key in keys:
        if key.startswith("input:"):
            name = key.split(":", 1)[1]
            t = graph.inputs[name]
            vertices[key] = svg.Vertex(key, ("input", name, type_text(t)), css="io", tip=f"graph input {name}: {type_full(t)}")
        elif key.startswith("output:"):
            name = key.split(":", 1)[1]
            vertices[key] = svg.Vertex(key, ("output", name, ""), css="io", tip=f"graph output {name}")
        else:
            node = graph.nodes[key]
            path = level.node_path(node)
            t = output_type(node.op)
            if isinstance(node.op, Composite):
                vertices[key] = svg.Vertex(
                    key, (node.name, f"{node.op.kind} ▸", type_text(t)), href=cluster(path) if cluster else f"#g-{slug(path)}", css="node cluster",
                    tip=f"{path}: {node.op.title} ({node.op.kind}), a composite: select to expand; output {type_full(t)}",
                )
            else:
                vertices[key] = svg.Vertex(
                    key, (node.name, node.op.kind, type_text(t)), href=link(path), css="node primitive",
                    tip=f"{path}: {node.op.title} ({node.op.kind}); output {type_full(t)}",
                )
    drawing = svg.lay_out(vertices, edges)
    label = f"The graph of {level.path or 'the model'} ({level.title})"
    ident = slug(level.path or "model")
    return svg.render(drawing, ident, label, "" if standalone else f"nodes-{ident}", standalone)


def node_list(site: Site, level: Level) -> str:
    items = []
    graph = level.graph
    for name, t in graph.inputs.items():
        items.append(f"<li>input {code(name)}: {e(type_full(t))}</li>")
    for node in level.nodes:
        path = level.node_path(node)
        reads = ", ".join(f"{e(port)} ← {code(src)}" for port, src in ((p, str(s)) for p, s in node.inputs.items()))
        t = output_type(node.op)
        if isinstance(node.op, Composite):
            what = f'<a href="#g-{e(slug(path))}">{code(node.name)}</a>: {e(node.op.title)} (<a href="ops.html#comp-{e(slug(node.op.kind))}">{e(node.op.kind)}</a>, composite)'
        else:
            params = "; ".join(f"{e(p)} = {code(ref)}" for p, ref in node.params.items())
            what = f'<a href="{op_link(site, path)}">{code(node.name)}</a>: {e(node.op.title)} ({e(node.op.kind)})' + (f"; Θ: {params}" if params else "")
        items.append(f"<li>{what}; reads {reads}; output {e(type_full(t))}</li>")
    for name, src in graph.outputs.items():
        items.append(f"<li>output {code(name)} ← {code(src)}</li>")
    ident = slug(level.path or "model")
    return f'<ol class="nodes" id="nodes-{ident}" aria-label="Nodes of {e(level.path or "the model")}">{"".join(items)}</ol>'


def views(graph: Graph, prefix: str) -> list[str]:
    """Every Θ view the nodes of ``graph`` read, at every level, in order."""
    return [str(ref) for _, node, _ in graph.expand(prefix) for ref in node.params.values()]


def same_as(site: Site, level: Level, first: Level) -> str:
    """What a level drawn once already differs in: the Θ views its nodes read."""
    mine, theirs = views(level.graph, level.path + "."), views(first.graph, first.path + ".")
    if mine == theirs:
        return "It reads the same Θ views."
    if mine == [v.replace(first.path + ".", level.path + ".", 1) for v in theirs]:
        return f"It reads the Θ entries under {code(level.path + '.')} where the first reads those under {code(first.path + '.')}."
    pairs = [(a, b) for a, b in zip(mine, theirs) if a != b]
    shown = ", ".join(f"{code(a)} for {code(b)}" for a, b in pairs[:4])
    more = f" and {len(pairs) - 4:,} more" if len(pairs) > 4 else ""
    return f"It reads {shown}{more}."


def graph_section(site: Site) -> str:
    """Every level's drawing; a level whose graph is drawn already (another head, another block)
    is a reference to the first one, with what it reads differently."""
    out: list[str] = [svg.marker_defs()]
    stack: list[int] = []  # depths of open <details>
    cache: dict[int, object] = {}
    drawn: dict[object, Level] = {}
    skip_below: str | None = None
    for level in site.levels:
        if skip_below is not None and level.path.startswith(skip_below):
            continue
        skip_below = None
        while stack and stack[-1] >= level.depth:
            out.append("</details>")
            stack.pop()
        if level.depth == 0:
            drawing = level_drawing(site, level, lambda p: op_link(site, p))
            out.append(f'<div class="figure" id="g-model">{drawing}</div>')
            out.append("<p class=muted>The nodes of the model, in order (the graph's text alternative):</p>")
            out.append(node_list(site, level))
            continue
        h = min(6, 2 + level.depth)
        t = output_type(level.op) if level.op is not None else None
        sig = structure(level.graph, cache)
        first = drawn.get(sig)
        out.append(
            f'<details class="level" id="g-{e(slug(level.path))}" data-depth="{level.depth}">'
            f"<summary><h{h}>{code(level.path)} — {e(level.title)} "
            f'(<span class="mono">{e(level.kind)}</span>){f" · output {e(type_text(t))}" if t else ""}</h{h}></summary>'
        )
        if first is not None:
            out.append(f'<p class="same">The same graph as <a href="#g-{e(slug(first.path))}">{code(first.path)}</a>, drawn there. {same_as(site, level, first)}</p></details>')
            skip_below = level.path + "."
            continue
        drawn[sig] = level
        out.append(f'<div class="figure">{level_drawing(site, level, lambda p: op_link(site, p))}</div>')
        out.append(node_list(site, level))
        stack.append(level.depth)
    out += ["</details>"] * len(stack)
    return "\n".join(out)


def index_page(site: Site) -> str:
    arch = site.arch
    prims, comps = site.count_nodes()
    dims = table("Dims (spec/dims.py)", ["symbol", "value", "meaning"], [[code(s), f"{v:,}", e(m)] for s, v, m in site.dims()], {1})
    config = table(f"Config ({e(type(arch.config).__name__)})", ["field", "value"], [[code(k), code(v)] for k, v in site.config_items()]) if site.config_items() else ""
    inputs = ", ".join(f"{code(n)}: {e(type_full(t))}" for n, t in arch.inputs.items())
    outputs = ", ".join(code(n) for n in arch.outputs)
    note = f'<p class="note">{rich(site.note)}</p>' if site.note else ""
    family = f" — {rich(site.family_description)}" if site.family_description else ""
    model = ""
    if site.model is not None:
        model = f"""<h2 id="equations">The model as equations</h2>
<p>Derived from the graph below, never written by hand: each node is its op's notation applied to the values it reads,
substituted into the one expression that reads it; a composite is a function, defined on the
<a href="ops.html#composites">ops page</a>; a chain of blocks is an iteration. Line by line, with every composite
expanded, this is <a href="algorithm.html">the algorithm</a>.</p>
<div class="composite-definition" id="def-model">{equations_html(site.model, "index.html", arch.name)}</div>"""
    body = f"""<h1>{e(arch.name)}: the architecture</h1>
<p class="lead">{rich(paragraph(type(arch).__doc__))} Here: family {code(site.family)}{family}.</p>
<p>From {e(site.source)}. Inputs {inputs}; outputs {outputs}.
<strong>{site.total:,}</strong> parameters in {len(arch.theta):,} Θ entries (<a href="theta.html">Θ and counts</a>);
{prims:,} primitive nodes in {comps:,} composites.</p>
{note}
{model}
<h2 id="graph">The graph</h2>
<p>Drawn from the graph itself, one level at a time. Each box is a node: its name, its op and the symbolic shape of
its output. A primitive links to its op; an orange box with ▸ is a composite (a cluster): select it to expand its body,
shown below in the same way. Dashed boxes are the level's inputs and outputs. Below each drawing, its nodes in
topological order are its text alternative.</p>
<div class="controls" hidden><button type="button" data-action="expand">Expand all</button><button type="button" data-action="collapse">Collapse all</button></div>
{graph_section(site)}
<h2 id="summary">Dims and config</h2>
{dims}
{config}
"""
    return page(site, "index.html", "Architecture", body)


# -- ops.html ------------------------------------------------------------------------------


def type_row(port: str, direction: str, t: TensorType) -> list[str]:
    return [code(port), e(direction), code(shape_text(t.shape)), e(axes_text(t))]


def variant_html(site: Site | None, record: OpRecord, v: Variant, index: int, heading: int) -> str:
    attrs = ", ".join(f"{e(k)}={code(val)}" for k, val in v.attributes.items())
    rows = [type_row(p, "input", t) for p, t in v.inputs.items()] + [type_row("y", "output", v.output)]
    types = table("Types", ["port", "", "symbolic shape", "axes"], rows)
    params = ""
    if v.params:
        prow = []
        for name, shape in v.params.items():
            bound = v.bindings.get(name, [])
            where = "; ".join(code(b) for b in bound[:3]) + (f" … ({len(bound)} views)" if len(bound) > 3 else "")
            operand = record.cls.operands.get(name)
            prow.append([code(name), code(shape_text(shape)), e(operand.value if operand is not None else "real"), where or "—"])
        params = table("Parameters", ["name", "shape", "entries", "bound to (Θ views)"], prow)
    deps = table(
        "Dependency rule: which input positions output row t reads",
        ["input", "in words", "as a formula"],
        [[code(d.port), rich(d.words), math(d.latex, False, f"{record.kind} dependency")] for d in v.dependencies()],
    )
    support = v.support()
    supp = f"<p>Support: entry (t, s) is 0 outside {math(support.latex(), False, record.kind)}.</p>" if support is not None else ""
    used = ""
    if v.paths:
        used = "<p>Used at: " + "; ".join(code(p) for p in summarise_paths(v.paths)) + f" — {len(v.paths):,} node{'s' if len(v.paths) != 1 else ''}.</p>"
    h = f"h{heading}"
    return f'<{h} id="{e(v.anchor)}">Instance {index}</{h}>\n<p>Attributes: {attrs or "none"}.</p>\n{types}\n{params}\n{deps}\n{supp}\n{used}'


def op_section(site: Site | None, record: OpRecord) -> str:
    where, source = record.reference_source()
    fields = table("Attributes (the op's fields)", ["field", "type", "default"], [[code(n), code(t), code(d) if d else "—"] for n, t, d in record.fields()])
    operands = record.operands()
    ops_text = ("<p>What its arrays hold: " + ", ".join(f"{code(k)} {e(val)}" for k, val in operands.items()) + " (others: real).</p>") if operands else ""
    variants = "\n".join(variant_html(site, record, v, i + 1, 3) for i, v in enumerate(record.variants))
    return f"""<section id="{e(record.anchor)}" aria-labelledby="{e(record.anchor)}-h">
<h2 id="{e(record.anchor)}-h">{e(record.title)} <span class="mono">({e(record.kind)})</span></h2>
<p>{rich(record.summary)}</p>
<div class="pair">
<div><h3 id="{e(record.anchor)}-def">Definition</h3>
{definition(record.latex, record.kind)}
<p><strong>Source:</strong> {rich(record.citation) or "—"}</p>
{ops_text}
</div>
<div><h3 id="{e(record.anchor)}-ref">Reference function</h3>
<p>{code(where)} (reference/ops/), the literal meaning in float64:</p>
<pre><code class="language-python">{e(source)}</code></pre>
</div>
</div>
{fields}
{variants}
</section>"""


def composites_section(site: Site) -> str:
    if not site.composites:
        return ""
    out = ['<h2 id="composites">Composites</h2>', "<p>Ops whose body is a graph; their drawings are on the architecture page. "
           "Each definition is derived from the body: its nodes in their ops' notation, substituted where a value is read once; "
           "instances whose equations are the same share one definition.</p>"]
    for kind, (title, comp, paths) in site.composites.items():
        rows = [type_row(p, "input", t) for p, t in comp.inputs().items()] + [type_row(p, "output", t) for p, t in comp.outputs().items()]
        body = ", ".join(f"{code(n.name)} ({e(n.op.kind)})" for n in comp.body.topological())
        out.append(f'<h3 id="comp-{e(slug(kind))}">{e(title)} <span class="mono">({e(kind)})</span></h3>')
        described = first_sentence(getattr(comp, "description", ""))
        if described:
            out.append(f"<p>{rich(described)}</p>")
        defs = site.definitions.get(kind)
        if defs is not None:
            for i, (d, where) in enumerate(defs.variants):
                at = "; ".join(code(p) for p in summarise_paths(where))
                label = f"<p>Definition {i + 1} of {len(defs.variants)}, at {at}:</p>" if len(defs.variants) > 1 else ""
                out.append(f'{label}<div class="composite-definition" id="def-{e(slug(kind))}-{i + 1}">{equations_html(d, "ops.html", kind)}</div>')
        out.append(table("Interface", ["port", "", "symbolic shape", "axes"], rows))
        out.append(f"<p>Body: {body}.</p>")
        first = paths[0]
        out.append(f'<p>{len(paths):,} instance{"s" if len(paths) != 1 else ""}: ' + "; ".join(code(p) for p in summarise_paths(paths))
                   + f'. First: <a href="index.html#g-{e(slug(first))}">{code(first)}</a>.</p>')
    return "\n".join(out)


def ops_page(site: Site) -> str:
    toc = "".join(f'<li><a href="#{e(r.anchor)}">{e(r.title)}</a> ({code(r.kind)}, {len(r.variants)} instance{"s" if len(r.variants) != 1 else ""})</li>' for r in site.ops)
    sections = "\n".join(op_section(site, r) for r in site.ops)
    import spec.op

    body = f"""<h1>{e(site.arch.name)}: the ops</h1>
{lead(spec.op, (1,))}
<p>Every primitive this architecture uses. The definition is the op's own LaTeX (<code>Primitive.latex</code>), converted
to MathML; the types, parameters and dependency rule are read off each distinct instance in the graph; the source beside
the definition is the function <code>reference.ops.REFERENCE</code> runs for the op — the spec's meaning, literally.</p>
<ul>{toc}</ul>
{sections}
{composites_section(site)}"""
    return page(site, "ops.html", "Ops", body)


# -- algorithm.html ------------------------------------------------------------------------


def line_html(latex: str, where: str) -> str:
    """An algorithm line: its keywords (``\\textbf{for }``) as bold HTML text — MathML Core has no
    bold text — and the math between them as MathML."""
    out = []
    for i, part in enumerate(re.split(r"\\textbf\{([^}]*)\}", latex)):
        if i % 2:
            out.append(f"<strong>{e(part.strip())}</strong>")
        elif part.strip():
            out.append(math(part.strip(), False, where))
    return " ".join(out)


def algorithm_page(site: Site) -> str:
    import gptspec.docs.equations as equations_module

    view = algorithm(site.arch)
    where = f"{site.arch.name} algorithm"
    inputs = "".join(f"<li>{math(t, False, where)}</li>" for t in view.inputs)
    outputs = "".join(f"<li>{math(t, False, where)}</li>" for t in view.outputs)
    items = []
    for sym, space, loops in view.parameters:
        text = math(sym + r" \in " + space, False, where)
        if loops.startswith("one per "):
            text += " for each " + math(loops[len("one per "):], False, where)
        elif loops:
            text += f" ({e(loops)})"
        items.append(f"<li>{text}</li>")
    params = "".join(items)
    lines = "".join(
        f'<li style="--depth:{line.depth}" class="{e(line.keyword or "step")}">{line_html(line.latex, where)}</li>' for line in view.lines
    )
    body = f"""<h1>{e(site.arch.name)}: the algorithm</h1>
{lead(equations_module, (3,))}
<p>It is written from the same graph the reference executes — the per-composite definitions are on the
<a href="ops.html#composites">ops page</a>, the model's equations on the <a href="index.html#equations">architecture page</a>.</p>
<h2 id="signature">Inputs, outputs, parameters</h2>
<p><strong>Input:</strong></p><ul>{inputs}</ul>
<p><strong>Output:</strong></p><ul>{outputs}</ul>
<p><strong>Parameters</strong> (Θ, one symbol per entry name with its layer index as a superscript; the shapes are
symbolic, their values on the <a href="theta.html">Θ page</a>):</p><ul class="params">{params}</ul>
<h2 id="lines">The lines</h2>
<ol class="algorithm">{lines}</ol>
"""
    return page(site, "algorithm.html", "Algorithm", body)


# -- diff.html -----------------------------------------------------------------------------


def diff_page(site: Site) -> str:
    from gptspec.diff import Diff

    d = site.diff
    if not isinstance(d, Diff):  # an invariant of the structure; the check narrows the type
        raise ConfigError(f"{type(d).__name__} at d, but expected a Diff [gptspec docs]")
    tally = ", ".join(f"{n} {k}" for k, n in d.summary.items()) or "no change"
    def op_text(text: str) -> str:
        """An op as the diff writes it, each ``name=value`` kept on one line."""
        return "<code>" + ", ".join(f'<span class="nowrap">{e(part)}</span>' for part in text.split(", ")) + "</code>" if text else "—"

    op_rows = [[e(c.change), code(c.a_where) if c.a_where else "—", code(c.b_where) if c.b_where else "—", op_text(c.a), op_text(c.b)]
               for c in d.ops]
    ops = table(f"Ops: {e(tally)}", ["change", "where in A", "where in B", "A", "B"], op_rows) if op_rows else "<p>The same ops, wired the same way.</p>"
    theta_rows = [[e(r.status), code(r.pattern), code(r.a_shape), f"{r.a_entries:,}", f"{r.a_count:,}", code(r.b_shape), f"{r.b_entries:,}", f"{r.b_count:,}"]
                  for r in d.theta if r.status != "same"]
    same = sum(1 for r in d.theta if r.status == "same")
    theta = table("Θ entry patterns that differ", ["", "pattern", "A shape", "A entries", "A parameters", "B shape", "B entries", "B parameters"],
                  theta_rows, {3, 4, 6, 7}) if theta_rows else ""
    conventions = "".join(f"<li>only A's ops: {e(t)}</li>" for t in d.conventions[0]) + "".join(f"<li>only B's ops: {e(t)}</li>" for t in d.conventions[1])
    config = table("Config fields that differ", ["field", "A", "B"], [[code(f), code(x), code(y)] for f, x, y in d.config]) if d.config else "<p>None.</p>"
    formulas = "".join(math(rf"\#\Theta_{{{side}}} = " + symbol_latex(sympify(f)), True, f"diff {side}") for side, f in zip("AB", d.formulas))
    causal = "".join(f"<li>A: {e(x.strip())}</li>" for x in d.causality[0]) + "".join(f"<li>B: {e(x.strip())}</li>" for x in d.causality[1])
    body = f"""<h1>{e(d.b_name)}: what it changes relative to {e(d.a_name)}</h1>
{lead(__import__("gptspec.diff", fromlist=["Diff"]))}
<p>A = {e(d.a_source)} (family {code(d.families[0] or "none")}); B = {e(d.b_source)} (family {code(d.families[1] or "none")}), the
architecture these pages document. The same comparison in a terminal: <code>gptspec diff</code> with A and B.</p>
<h2 id="ops">Ops</h2>
{ops}
<h2 id="theta">Θ</h2>
<p><span class="nowrap">{d.counts[0]:,}</span> → <span class="nowrap">{d.counts[1]:,}</span> parameters
(<span class="nowrap">{d.counts[1] - d.counts[0]:+,}</span>); {same} entry pattern{"s" if same != 1 else ""} the same in both.</p>
{formulas}
{theta}
<h2 id="conventions">Conventions and config</h2>
<ul>{conventions or "<li>The same conventions concern both.</li>"}</ul>
{config}
<h2 id="causality">Causality</h2>
<ul>{causal}</ul>
"""
    return page(site, "diff.html", "Changes", body)


# -- theta.html ----------------------------------------------------------------------------


def theta_page(site: Site) -> str:
    arch = site.arch
    used = sorted({s for s in site.formula.free_symbols}, key=str)
    values = ", ".join(f"{math(symbol_latex(s), False, 'dims')} = {arch.dims[s]:,}" for s in used if s in arch.dims)
    groups = list(site.groups.items())
    total = site.total or 1
    chart = svg.bar_chart(groups, f"Parameters of {arch.name} by Θ group")
    group_rows = [[code(g), f"{n:,}", f"{100 * n / total:.1f}%"] for g, n in groups]
    rows = []
    for t in site.theta:
        reads = t.read_by
        read = (code(reads[0]) + (f" (+{len(reads) - 1} more)" if len(reads) > 1 else "")) if reads else "—"
        rows.append([f'<span id="theta-{e(slug(t.name))}">{code(t.name)}</span>', code(t.group), code(shape_text(t.shape)), code(t.numbers),
                     math(symbol_latex(t.size), False, t.name), f"{t.count:,}", read])
    formula = math(r"\#\Theta = " + symbol_latex(site.formula), True, "count")
    import spec.counting

    body = f"""<h1>{e(arch.name)}: Θ, the parameter space</h1>
{lead(spec.counting, (0, 1))}
<p>Θ maps hierarchical names to symbolic shapes; the parameter count is the sum over Θ of the shape products
(<code>spec.counting</code>), with no separate formula.</p>
<h2 id="count">The count</h2>
<p><strong>{site.total:,}</strong> parameters, as a formula in the dims:</p>
{formula}
<p>with {values or "no free dims"}.</p>
<h2 id="groups">By group</h2>
<div class="figure">{chart}</div>
{table("Parameters by group (the chart's data)", ["group", "parameters", "share"], group_rows, {1, 2})}
<h2 id="entries">Every entry</h2>
{table(f"Θ: {len(site.theta):,} entries", ["name", "group", "symbolic shape", "shape", "count (formula)", "count", "read by"], rows, {5})}
"""
    return page(site, "theta.html", "Θ and counts", body)


# -- theorems.html -------------------------------------------------------------------------


def theorem_html(a: object, heading: int, proofs: str = "") -> str:
    thm = a.theorem  # type: ignore[attr-defined]
    ops = a.ops  # type: ignore[attr-defined]
    hyps = "".join(f"<li>{rich(h)}</li>" for h in thm.hypotheses)
    about = ("Its proof reads the ops " + ", ".join(f'<a href="ops.html#op-{e(slug(k))}">{code(k)}</a>' for k in ops) + ".") if ops else "Its proof reads no particular op: it is about Θ, the dependency typing or every architecture of a kind."
    refutes = f"<p><strong>Settles the claim:</strong> {rich(thm.refutes)}.</p>" if thm.refutes else ""
    h = f"h{heading}"
    return f"""<{h} id="thm-{e(thm.name)}">{code(thm.name)} — {e(thm.title)}</{h}>
{refutes}<p>{rich(thm.statement)}</p>
{math(thm.statement_latex, True, thm.name)}
<p>Hypotheses:</p><ul>{hyps}</ul>
<p><strong>Scope ({e(thm.scope.kind.value)}):</strong> {rich(thm.scope.detail)}. {about}
In the repository: {f'<a href="{e(proofs)}#{e(thm.name)}">docs/proofs.md#{e(thm.name)}</a>' if proofs else f"<code>docs/proofs.md#{e(thm.name)}</code>"}; run it with <code>gptspec prove {e(thm.name)}</code>.</p>"""


def theorems_page(site: Site) -> str:
    about_ops = [a for a in site.theorems if a.ops]
    general = [a for a in site.theorems if not a.ops]
    verdict = "".join(f"<li>{rich(line.strip())}</li>" for line in site.verdict)
    import proofs

    body = f"""<h1>{e(site.arch.name)}: what is proved</h1>
{lead(proofs)}
<p>Machine-checked statements (<code>proofs/</code>, listed with their proofs in docs/proofs.md): each is proved in sympy
from the ops' own definitions and witnessed numerically through the reference. Listed here: those whose proofs read
only ops this architecture uses, and those about the spec's machinery.</p>
<h2 id="causality">Causality, by dependency typing</h2>
<ul>{verdict}</ul>
<h2 id="about-ops">Theorems about the ops used here</h2>
{"".join(theorem_html(a, 3, site.proofs_href) for a in about_ops) or "<p>None.</p>"}
<h2 id="general">Theorems about the spec's machinery</h2>
{"".join(theorem_html(a, 3, site.proofs_href) for a in general) or "<p>None.</p>"}
"""
    return page(site, "theorems.html", "Theorems", body)


# -- conventions.html ----------------------------------------------------------------------


def pinned_html(site: Site, item: str) -> str:
    if item.startswith("theorem:"):
        name = item.split(":", 1)[1]
        if any(a.theorem.name == name for a in site.theorems):
            return f'theorem <a href="theorems.html#thm-{e(name)}">{code(name)}</a>'
        return f"theorem {code(name)} (docs/proofs.md)"
    return f"test {code(item)}"


def conventions_page(site: Site) -> str:
    records = {r.kind: r for r in site.ops}
    parts = []
    for c in site.conventions:
        formulas = "".join(
            f'<p><a href="ops.html#{e(records[k].anchor)}">{e(records[k].title)}</a> ({code(k)}):</p>{definition(records[k].latex, k)}'
            for k in c.ops if k in records
        )
        pins = "".join(f"<li>{pinned_html(site, p)}</li>" for p in c.pinned_by)
        parts.append(f"""<h2 id="conv-{e(c.name)}">{e(c.title)}</h2>
<p>{rich(c.rule)}</p>
{formulas}
<p>Pinned down by:</p><ul>{pins}</ul>""")
    import gptspec.docs.conventions as conventions

    body = f"""<h1>{e(site.arch.name)}: conventions an implementer must match</h1>
{lead(conventions, (0, 1))}
<p>Where implementations of the same model differ, the spec makes one choice. These concern ops this architecture uses;
each lists the tests and theorems that fail if the code departs from it. The notation is in docs/conventions.md.</p>
{"".join(parts) or "<p>None of the documented conventions concerns this architecture's ops.</p>"}
"""
    return page(site, "conventions.html", "Conventions", body)


def write_html(site: Site, out: Path) -> list[Path]:
    """Write the site into ``out``; return the files written."""
    files = {
        "index.html": index_page(site),
        "algorithm.html": algorithm_page(site),
        "ops.html": ops_page(site),
        "theta.html": theta_page(site),
        "theorems.html": theorems_page(site),
        "conventions.html": conventions_page(site),
        **({"diff.html": diff_page(site)} if site.diff is not None else {}),
        "style.css": STYLE,
        "site.js": SCRIPT,
    }
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

