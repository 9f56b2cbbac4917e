"""The index page's graph, the one part of a page drawn per format (a
:class:`~gptspec.docs.document.Figure` in gptspec/docs/pages.py: index): on the site every
level's SVG in a ``<details>`` with its node list (:func:`graph_section`), in the repository the
SVG files of :func:`drawings` and one nested node list (:func:`graph_markdown`)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from gptspec.docs import svg
from gptspec.docs.content import Level, Site, output_type, shape_text, slug, type_full
from gptspec.docs.equations import structure
from spec.graph import Composite, Graph
from spec.types import TensorType


def e(text: object) -> str:
    return escape(str(text))


def code(text: object) -> str:
    return f"<code>{e(text)}</code>"


def md_code(text: object) -> str:
    t = str(text)
    return f"`` {t} ``" if "`" in t else f"`{t}`"


# -- links ---------------------------------------------------------------------------------


def op_link(site: Site, path: str) -> str:
    """Where a primitive's node links: its variant on the ops page."""
    return f"ops.html#{site.variant_of[path].anchor}"


def type_text(t: TensorType) -> str:
    return shape_text(t.shape)


# -- the site's HTML ----------------------------------------------------------------------------


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
    """The index page's graph on the site (gptspec/docs/pages.py: index): the expand/collapse
    controls, then every level's drawing with its node list; a level whose graph is drawn already
    (another head, another block) is a reference to the first one, with what it reads differently."""
    out: list[str] = [
        '<div class="controls" hidden><button type="button" data-action="expand">Expand all</button>'
        '<button type="button" data-action="collapse">Collapse all</button></div>',
        svg.marker_defs(),
    ]
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


# -- the repository's Markdown ---------------------------------------------------------------------------------


def node_lines(site: Site, level: Level, children: dict[str, Level], indent: int) -> list[str]:
    pad = "  " * indent
    out = []
    for node in level.nodes:
        path = level.node_path(node)
        t = type_full(output_type(node.op))
        reads = ", ".join(f"{port} ← {md_code(src)}" for port, src in node.inputs.items())
        if isinstance(node.op, Composite):
            out.append(f'{pad}- <a id="g-{slug(path)}"></a>{md_code(node.name)} — {node.op.title} ([{node.op.kind}](ops.md#comp-{slug(node.op.kind)}), composite); '
                       f"reads {reads}; output {md_code(t)}")
            out += node_lines(site, children[path], children, indent + 1)
        else:
            params = "; ".join(f"{p} = {md_code(ref)}" for p, ref in node.params.items())
            out.append(f"{pad}- [{md_code(node.name)}](ops.md#{site.variant_of[path].anchor}) — {node.op.title} ({node.op.kind})"
                       + (f"; Θ: {params}" if params else "") + f"; reads {reads}; output {md_code(t)}")
    return out


def drawings(site: Site) -> list[tuple[str, Level]]:
    """The SVG files beside the index page: the model's drawing and the first instance of each
    composite kind (file name, level)."""
    out: list[tuple[str, Level]] = []
    seen: set[str] = set()
    for level in site.levels:
        if level.kind not in seen:
            seen.add(level.kind)
            out.append((f"graph-{slug(level.path or 'model')}.svg", level))
    return out


def graph_markdown(site: Site) -> str:
    """The index page's graph in the repository (gptspec/docs/pages.py: index): the SVG files of
    :func:`drawings`, then every node in one list, composites with their bodies nested."""
    arch = site.arch
    out: list[str] = []
    for filename, level in drawings(site):
        what = "the model" if not level.path else f"{md_code(level.path)} ({level.title}, {level.kind})"
        out += [f"![The graph of {level.path or 'the model'}]({filename})", "", f"*The graph of {what}.*", ""]
    out += ["### Every node", "", "In topological order, composites with their bodies nested (the drawings' text alternative):", ""]
    children = {lv.path: lv for lv in site.levels if lv.path}
    out += [f"- input {md_code(n)}: {md_code(type_full(t))}" for n, t in arch.inputs.items()]
    out += node_lines(site, site.levels[0], children, 0)
    out += [f"- output {md_code(n)} ← {md_code(src)}" for n, src in arch.outputs.items()]
    return "\n".join(out)
