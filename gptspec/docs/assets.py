"""The site's stylesheet and its one small script (expand and collapse the graph's clusters).
No framework, no font or file from the network: system fonts, inline SVG, MathML."""

GRAPH_STYLE = """\
svg.graph { display: block; }
svg.graph text { font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; text-anchor: middle; fill: #1b1f24; }
svg.graph text.name { font-weight: 700; }
svg.graph text.type { fill: #4b5560; }
svg.graph rect { stroke: #7d8a97; stroke-width: 1; fill: #eef4fb; }
svg.graph .cluster rect { fill: #fff6e5; stroke: #b7791f; stroke-width: 2; }
svg.graph .io rect { fill: #eceff2; stroke-dasharray: 4 3; }
svg.graph a:hover rect, svg.graph a:focus rect { stroke: #0b5cad; stroke-width: 2.5; }
svg.graph .edge { fill: none; stroke: #8a96a3; stroke-width: 1.3; }
svg .arrowhead { fill: #8a96a3; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #1b1f24; }
svg.chart text.label { text-anchor: end; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
svg.chart .bar { fill: #3b82c4; }
"""
"""The drawings' style: in the site's stylesheet, and inside each standalone SVG file (Markdown)."""

STYLE = """\
:root { --fg: #1b1f24; --muted: #4b5560; --line: #c9d1d9; --bg: #ffffff; --panel: #f5f7f9; --accent: #0b5cad;
        --node: #eef4fb; --cluster: #fff6e5; --io: #eceff2; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: var(--bg); font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--accent); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .25rem .5rem; }
header { border-bottom: 1px solid var(--line); background: var(--panel); }
header .inner, main, footer { max-width: 76rem; margin: 0 auto; padding: 0 1rem; }
header p { margin: .5rem 0 0; color: var(--muted); }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: .25rem 0 .5rem; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration: none; color: var(--fg); }
h1 { font-size: 1.7rem; line-height: 1.25; }
h2 { font-size: 1.35rem; margin-top: 2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin-top: 1.4rem; }
h4, h5, h6 { font-size: 1rem; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .9em; }
p, li, dd, summary { overflow-wrap: anywhere; }
td, th { overflow-wrap: break-word; }
pre { background: var(--panel); border: 1px solid var(--line); padding: .75rem; overflow-x: auto; line-height: 1.35; }
.table-wrap, .figure, .math { overflow-x: auto; max-width: 100%; }
.math { padding: .25rem 0; overflow-y: hidden; }
.math > math { padding: .3em 0; }
td.num, th.num, .nowrap { white-space: nowrap; }
.composite-definition { border-left: 3px solid var(--accent); padding: .1rem 0 .1rem .75rem; margin: .5rem 0 1rem; }
.composite-definition .where, .composite-definition .uses { margin: .25rem 0; color: var(--muted); }
.lead { font-size: 1.05rem; }
ol.algorithm { font-size: 1rem; padding-left: 2.5rem; }
ol.algorithm li { padding-left: calc(var(--depth, 0) * 1.5rem); margin: .15rem 0; }
ol.algorithm li::marker { color: var(--muted); font-size: .85em; }
table.diff td.removed { background: #fdecec; }
table.diff td.added { background: #e9f7ec; }
math { font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math", "DejaVu Math TeX Gyre", math; }
math[display="block"] { font-size: 1.1em; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--panel); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1.5rem; align-items: start; }
@media (max-width: 860px) { .pair { grid-template-columns: minmax(0, 1fr); } }
.muted { color: var(--muted); }
.note { background: var(--cluster); border-left: 4px solid #d39b2a; padding: .5rem .75rem; }
details.level { border-left: 3px solid var(--line); margin: .5rem 0 .5rem .25rem; padding-left: .75rem; }
details.level > summary { cursor: pointer; }
details.level > summary > h3, details.level > summary > h4, details.level > summary > h5, details.level > summary > h6 { display: inline; font-size: 1rem; margin: 0; }
.controls button { font: inherit; margin: 0 .5rem .5rem 0; padding: .25rem .75rem; }
ol.nodes { font-size: .92rem; }
footer { color: var(--muted); border-top: 1px solid var(--line); margin-top: 3rem; padding: 1rem; font-size: .9rem; }
""" + GRAPH_STYLE

SCRIPT = """\
// Expand and collapse the graph's clusters (the <details> of each composite). Everything reads
// without this script; it only opens a cluster's ancestors when a node links to it, and adds the
// "expand all" and "collapse all" buttons.
(function () {
  "use strict";
  function openTo(id) {
    var el = document.getElementById(id);
    for (var d = el; d; d = d.parentElement) { if (d.tagName === "DETAILS") { d.open = true; } }
    return el;
  }
  function fromHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (id.indexOf("g-") === 0 && openTo(id)) { document.getElementById(id).scrollIntoView(); }
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a") : null;
    var href = link ? link.getAttribute("href") : null;
    if (href && href.indexOf("#g-") === 0) { openTo(decodeURIComponent(href.slice(1))); }
  });
  window.addEventListener("hashchange", fromHash);
  document.addEventListener("DOMContentLoaded", function () {
    var controls = document.querySelector(".controls");
    if (controls) {
      controls.hidden = false;
      controls.querySelector("[data-action=expand]").addEventListener("click", function () {
        document.querySelectorAll("details.level").forEach(function (d) { d.open = true; });
      });
      controls.querySelector("[data-action=collapse]").addEventListener("click", function () {
        document.querySelectorAll("details.level").forEach(function (d) { d.open = false; });
      });
    }
    fromHash();
  });
})();
"""
