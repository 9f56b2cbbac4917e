"""SVG drawn from the graph itself: one level of the hierarchy (the model, or a composite's body)
laid out by topological layering, and the parameter breakdown as a bar chart.

The layout is ours (no graphviz): every vertex — the graph's inputs, its nodes, its outputs —
gets the layer 1 + the largest layer of what it reads (so every edge points down); vertices in a
layer are ordered by the mean position of their predecessors (a few barycentre sweeps) and a
wide layer wraps into rows of at most :data:`MAX_PER_ROW`. An edge between adjacent rows is a
curve; a longer edge leaves its source, runs down a lane to the right of the rows it skips and
enters its target from above, so it never passes behind another node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from spec.graph import INPUT, Graph, Node

MAX_PER_ROW = 5
CHAR_W = 7.3
"""Width of one character of the 12 px monospace labels."""
NODE_H = 56
ROW_GAP = 40
COL_GAP = 22
MARGIN = 14
LANE = 12


@dataclass
class Vertex:
    key: str
    lines: tuple[str, ...]
    href: str = ""
    css: str = "node"
    tip: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    row: int = 0


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str


@dataclass
class Drawing:
    vertices: dict[str, Vertex]
    edges: list[Edge]
    width: float = 0.0
    height: float = 0.0


def input_key(name: str) -> str:
    return f"{INPUT}:{name}"


def output_key(name: str) -> str:
    return f"output:{name}"


def structure(graph: Graph, order: Sequence[Node] | None = None) -> tuple[list[str], list[Edge]]:
    """The vertices (inputs, nodes in topological order — ``order`` when given —, outputs) and
    edges of one level."""
    nodes = graph.topological() if order is None else order
    keys = [input_key(n) for n in graph.inputs] + [n.name for n in nodes] + [output_key(n) for n in graph.outputs]
    edges = []
    for node in graph.nodes.values():
        for port, src in node.inputs.items():
            edges.append(Edge(input_key(src.port) if src.node is None else src.node, node.name, port))
    for name, src in graph.outputs.items():
        edges.append(Edge(input_key(src.port) if src.node is None else src.node, output_key(name), name))
    return keys, edges


def lay_out(vertices: dict[str, Vertex], edges: list[Edge]) -> Drawing:
    """Place ``vertices`` (in a topological order) given ``edges``."""
    preds: dict[str, list[str]] = {k: [] for k in vertices}
    succs: dict[str, list[str]] = {k: [] for k in vertices}
    for e in edges:
        preds[e.dst].append(e.src)
        succs[e.src].append(e.dst)
    runs = chains(vertices, preds, succs)
    previous = {b: a for run in runs for a, b in zip(run, run[1:])}
    layer: dict[str, int] = {}
    for key in vertices:  # topological order: every predecessor is placed first
        # a run of like nodes shares one layer, read left to right in rows (48 blocks in 10 rows)
        layer[key] = layer[previous[key]] if key in previous else 1 + max((layer[p] for p in preds[key]), default=-1)
    bottom = 1 + max((layer[k] for k in vertices if not k.startswith("output:")), default=-1)
    for key in vertices:
        if key.startswith("output:"):
            layer[key] = bottom  # every output on the last row
    layers: dict[int, list[str]] = {}
    for key in vertices:
        layers.setdefault(layer[key], []).append(key)
    for v in vertices.values():
        v.w = max(110.0, CHAR_W * max(len(line) for line in v.lines) + 20)
    # barycentre ordering: a few downward sweeps over the order index of predecessors
    position = {k: float(i) for lst in layers.values() for i, k in enumerate(lst)}
    in_run = {k for run in runs for k in run}
    for _ in range(3):
        for index in sorted(layers):
            lst = layers[index]
            if any(k in in_run for k in lst):
                continue  # a run keeps its order
            lst.sort(key=lambda k: (sum(position[p] for p in preds[k]) / len(preds[k]) if preds[k] else position[k]))
            for i, k in enumerate(lst):
                position[k] = float(i)
    rows: list[list[str]] = []
    for index in sorted(layers):
        lst = layers[index]
        rows += [lst[i : i + MAX_PER_ROW] for i in range(0, len(lst), MAX_PER_ROW)]
    widths = [sum(vertices[k].w for k in row) + COL_GAP * (len(row) - 1) for row in rows]
    inner = max(widths, default=0.0)
    for r, row in enumerate(rows):
        x = MARGIN + (inner - widths[r]) / 2
        for k in row:
            v = vertices[k]
            v.x, v.y, v.row = x, MARGIN + r * (NODE_H + ROW_GAP), r
            x += v.w + COL_GAP
    long_edges = [e for e in edges if vertices[e.dst].row - vertices[e.src].row > 1]
    drawing = Drawing(vertices, edges)
    drawing.width = 2 * MARGIN + inner + (LANE * (len(long_edges) + 1) if long_edges else 0)
    drawing.height = 2 * MARGIN + len(rows) * NODE_H + max(0, len(rows) - 1) * ROW_GAP
    return drawing


MIN_RUN = 6
"""A chain of at least this many like nodes (same op, each the only reader of the one before)
is laid out in rows, left to right, instead of one below the other."""


def chains(vertices: dict[str, Vertex], preds: dict[str, list[str]], succs: dict[str, list[str]]) -> list[list[str]]:
    """The maximal runs of like vertices (same css and op line) each of which is the only
    successor of the one before and reads only it, at least :data:`MIN_RUN` long."""
    runs: list[list[str]] = []
    taken: set[str] = set()

    def like(a: str, b: str) -> bool:
        va, vb = vertices[a], vertices[b]
        return va.css == vb.css and va.lines[1:2] == vb.lines[1:2] and va.css != "io"

    for key in vertices:
        if key in taken or vertices[key].css == "io":
            continue
        if len(preds[key]) == 1 and len(succs[preds[key][0]]) == 1 and like(preds[key][0], key):
            continue  # not the start of its chain
        run = [key]
        while len(succs[run[-1]]) == 1:
            nxt = succs[run[-1]][0]
            if preds[nxt] != [run[-1]] or not like(run[-1], nxt):
                break
            run.append(nxt)
        if len(run) >= MIN_RUN:
            runs.append(run)
            taken.update(run)
    return runs


def _edge_path(d: Drawing, e: Edge, lane: float | None) -> str:
    a, b = d.vertices[e.src], d.vertices[e.dst]
    if a.row == b.row:  # consecutive nodes of a run, side by side
        y = round(a.y + NODE_H / 2)
        return f"M{round(a.x + a.w)},{y} L{round(b.x - 2)},{y}"
    sx, sy = round(a.x + a.w / 2), round(a.y + NODE_H)
    tx, ty = round(b.x + b.w / 2), round(b.y - 2)
    if lane is None:
        mid = round((sy + ty) / 2)
        return f"M{sx},{sy} C{sx},{mid} {tx},{mid} {tx},{ty}"
    down, up, x = round(sy + ROW_GAP / 2), round(ty - ROW_GAP / 2), round(lane)
    return f"M{sx},{sy} C{sx},{down} {x},{sy} {x},{down} L{x},{up} C{x},{ty} {tx},{up} {tx},{ty}"


MARKER = "gptspec-arrow"
"""The id of the one arrowhead marker every drawing on a page uses (:func:`marker_defs`)."""


def marker_defs() -> str:
    """The arrowhead marker, once per page, in an SVG of no size (not display:none, which would
    hide the marker from every drawing that uses it)."""
    return (f'<svg class="defs" width="0" height="0" aria-hidden="true" focusable="false" style="position:absolute">'
            f'<defs><marker id="{MARKER}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            '<path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs></svg>')


def render(d: Drawing, ident: str, title: str, described_by: str = "", standalone: bool = False) -> str:
    """The drawing as an inline ``<svg>`` (nodes are links: to their op, or to expand a cluster),
    or, ``standalone``, as an SVG file with its own style and arrowhead."""
    inner_right = max((v.x + v.w for v in d.vertices.values()), default=0.0)
    described = f' aria-describedby="{described_by}"' if described_by else ""
    out = [
        f'<svg class="graph" id="svg-{ident}" xmlns="http://www.w3.org/2000/svg" role="group" width="{d.width:.0f}" height="{d.height:.0f}" '
        f'viewBox="0 0 {d.width:.0f} {d.height:.0f}" aria-labelledby="svgtitle-{ident}"{described}>',
        f'<title id="svgtitle-{ident}">{escape(title)}</title>',
    ]
    if standalone:
        from gptspec.docs.assets import GRAPH_STYLE

        out.append(f"<style>{GRAPH_STYLE}</style>")
        out.append(marker_defs().split(">", 1)[1].rsplit("</svg>", 1)[0])  # the <defs> alone
    out.append('<g class="edges">')
    lane_index = 0
    for e in d.edges:
        span = d.vertices[e.dst].row - d.vertices[e.src].row
        lane = None
        if span > 1:
            lane_index += 1
            lane = inner_right + LANE * lane_index
        out.append(f'<path class="edge" d="{_edge_path(d, e, lane)}" marker-end="url(#{MARKER})"/>')
    out.append("</g>")
    for v in d.vertices.values():
        attrs = "".join(f' {k}="{escape(val)}"' for k, val in v.attrs.items())
        body = [f'<rect x="{v.x:.0f}" y="{v.y:.0f}" width="{v.w:.0f}" height="{NODE_H}" rx="6"/>']
        for i, line in enumerate(v.lines[:3]):
            cls = ("name", "kind", "type")[i]
            body.append(f'<text class="{cls}" x="{v.x + v.w / 2:.0f}" y="{v.y + 17 + 16 * i:.0f}">{escape(line)}</text>')
        content = "".join(body)
        if v.href:
            out.append(f'<a class="{v.css}" href="{escape(v.href)}" data-key="{escape(v.key)}"{attrs}>{content}</a>')
        else:
            out.append(f'<g class="{v.css}" data-key="{escape(v.key)}"{attrs}>{content}</g>')
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(groups: list[tuple[str, int]], title: str, ident: str = "breakdown", standalone: bool = False) -> str:
    """A horizontal bar chart of (label, count) as an ``<svg role="img">``; its text alternative
    is the table printed next to it."""
    total = sum(n for _, n in groups) or 1
    top = max((n for _, n in groups), default=1) or 1
    label_w = CHAR_W * max((len(g) for g, _ in groups), default=5) + 16
    bar_w, row_h = 320.0, 22
    width = label_w + bar_w + 200
    height = row_h * len(groups) + 2 * MARGIN
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" height="{height}" viewBox="0 0 {width:.0f} {height}" '
           f'aria-labelledby="charttitle-{ident}"><title id="charttitle-{ident}">{escape(title)}</title>']
    if standalone:
        from gptspec.docs.assets import GRAPH_STYLE

        out.append(f"<style>{GRAPH_STYLE}</style>")
    for i, (group, n) in enumerate(groups):
        y = MARGIN + i * row_h
        w = max(1.0, bar_w * n / top) if n else 0.0
        out.append(f'<text class="label" x="{label_w - 8:.1f}" y="{y + 15}">{escape(group)}</text>')
        out.append(f'<rect class="bar" x="{label_w:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"><title>{escape(group)}: {n:,}</title></rect>')
        out.append(f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 15}">{n:,} ({100 * n / total:.1f}%)</text>')
    out.append("</svg>")
    return "\n".join(out)
