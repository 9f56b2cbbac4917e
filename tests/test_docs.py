"""`gptspec docs` and the generated files in docs/, without a browser (tests/test_docs_browser.py
loads the sites in Chromium).

* the generated files in docs/ (docs/ops.md, the blocks of docs/conventions.md) are current, and
  a changed op record makes them stale;
* every primitive's LaTeX, every relation family's and every theorem's converts to MathML with
  no ``<merror>``; what latex2mathml cannot convert is refused, not shown broken;
* the site's content is read off the objects: every primitive node has its op instance, Θ's
  entries add up to the count and the breakdown, the theorems listed are those whose ops the
  architecture uses, and every test or theorem a convention cites exists;
* the drawing's layout: no two boxes overlap and every edge runs down (or along a run);
* the command writes both formats for a preset, a checkpoint and a user's builder; gpt2-xl's
  site draws each distinct graph once (the drawings do not grow with layers or heads) and
  gpt2-small's index.html stays under 300 KB;
* composites' equations are derived from their graphs (a change of activation or of family shows
  up in them), the algorithm view exists for every registered family, and every op's notation
  template names only its own operands.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from gptspec.cli import main
from gptspec.docs import repo, write_docs
from gptspec.docs.content import collect, generic_instance, theorem_ops
from gptspec.docs.conventions import CONVENTIONS
from gptspec.docs.graph import level_drawing
from gptspec.docs.mathml import equations, to_mathml
from gptspec.docs.svg import NODE_H, lay_out, structure
from gptspec.models import resolve
from spec import build, preset
from spec.config import Config
from spec.counting import breakdown, count
from spec.errors import ConfigError
from spec.graph import Composite, Graph
from spec.masks import Causal, Relation
from spec.op import PRIMITIVES, Primitive

ROOT = Path(__file__).resolve().parent.parent


# -- the generated files in docs/ ------------------------------------------------------------


def test_generated_docs_are_current() -> None:
    assert repo.stale() == [], "docs/ is out of date: run `python -m gptspec.docs`"


def test_a_changed_op_record_makes_the_docs_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = PRIMITIVES["layer_norm"]
    monkeypatch.setattr(cls, "latex", cls.latex + r" + 0")
    assert r"\beta_j + 0" in repo.ops_text()
    assert {p.name for p in repo.stale()} == {"ops.md", "conventions.md"}


def test_blocks_keep_the_text_around_them_and_refuse_unknown_names() -> None:
    text = "before\n<!-- BEGIN GENERATED op:relu -->\nold\n<!-- END GENERATED op:relu -->\nafter\n"
    filled = repo.fill_blocks(text, "test")
    assert filled.startswith("before\n") and filled.endswith("<!-- END GENERATED op:relu -->\nafter\n")
    assert r"\max(x, 0)" in filled and "old" not in filled
    assert repo.fill_blocks(filled, "test") == filled
    with pytest.raises(ConfigError, match="expected one of"):
        repo.fill_blocks("<!-- BEGIN GENERATED nonsense -->\n<!-- END GENERATED nonsense -->\n", "test")
    with pytest.raises(ConfigError, match="has no"):
        repo.fill_blocks("<!-- BEGIN GENERATED op:relu -->\nno end\n", "test")


def test_the_hf_name_table_is_the_layouts() -> None:
    """Every tensor rule of the hf-gpt2 layout is a row of docs/conventions.md, with the Θ entries
    it holds, and the symbolic shapes agree with Θ's."""
    from gptspec.checkpoint import HF_GPT2, Tensor

    text = (ROOT / "docs" / "conventions.md").read_text()
    block = text.split("<!-- BEGIN GENERATED layout:hf-gpt2 -->")[1].split("<!-- END GENERATED layout:hf-gpt2 -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    assert len(rows) == len(HF_GPT2.tensors)
    for rule, row in zip(HF_GPT2.tensors, rows):
        assert row.startswith(f"| `{rule.external}`")
        if isinstance(rule, Tensor):
            assert all(f"`{t}`" in row for t in rule.theta)
    assert "`(d_model, 3·d_head·n_heads)`" in block  # c_attn: Q | K | V side by side
    assert "`(n_heads, d_model, d_head)`" in block


# -- LaTeX → MathML --------------------------------------------------------------------------


def relation_samples() -> list[Relation]:
    """One instance of every relation family, and every mask the ops' fixed instances use."""
    found: list[Relation] = []
    for cls in repo.relation_families():
        sample = repo._sample(cls, repo.NUMERIC_FIELDS)
        if sample is not None:
            found.append(sample)
    for cls in PRIMITIVES.values():
        for op in cls.instances(3):
            found += [r for r in op.dependency().values()]
            found += [v for v in op.attributes().values() if isinstance(v, Relation)]
    return found


@pytest.mark.parametrize("kind", list(PRIMITIVES))
def test_every_primitive_latex_converts(kind: str) -> None:
    latex = PRIMITIVES[kind].latex
    for eq in [latex, *equations(latex)]:
        mathml = to_mathml(eq, True, kind)
        assert mathml.startswith("<math") and "<merror" not in mathml
    assert "".join(equations(latex)).replace(" ", "") in latex.replace(r"\qquad", "").replace(" ", "")


def test_every_relation_and_theorem_latex_converts() -> None:
    from proofs.runner import select

    families = {type(r) for r in relation_samples()}
    assert len(families) == len(repo.relation_families()), "a relation family has no sample"
    for relation in relation_samples():
        assert "<merror" not in to_mathml(relation.latex(), False, repr(relation))
    for thm in select():
        assert "<merror" not in to_mathml(thm.statement_latex, True, thm.name)


def test_what_latex2mathml_cannot_convert_is_refused() -> None:
    with pytest.raises(ConfigError, match="does not know"):
        to_mathml(r"x \notacommand y")
    # latex2mathml writes a bare & for an aligned environment; the input fix makes it a table
    aligned = r"\begin{aligned} a &= b \\ c &= d \end{aligned}"
    assert "<mtable" in to_mathml(aligned)


# -- the content ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_site():  # type: ignore[no-untyped-def]
    return collect(build(preset("tiny").config), "preset tiny")


def test_every_primitive_node_has_its_instance(tiny_site) -> None:  # type: ignore[no-untyped-def]
    arch = tiny_site.arch
    paths = [path for path, node, _ in arch.expand() if isinstance(node.op, Primitive)]
    assert sorted(tiny_site.variant_of) == sorted(paths)
    anchors = [v.anchor for r in tiny_site.ops for v in r.variants]
    assert len(anchors) == len(set(anchors))
    for path, node, _ in arch.expand():
        assert tiny_site.variant_of[path].op == node.op
    assert {r.kind for r in tiny_site.ops} == {node.op.kind for _, node, _ in arch.expand()}


def test_theta_entries_add_up_to_the_count_and_the_breakdown(tiny_site) -> None:  # type: ignore[no-untyped-def]
    arch = tiny_site.arch
    assert [t.name for t in tiny_site.theta] == list(arch.theta)
    assert sum(t.count for t in tiny_site.theta) == count(arch) == tiny_site.total
    by_group: dict[str, int] = {}
    for t in tiny_site.theta:
        by_group[t.group] = by_group.get(t.group, 0) + t.count
        assert t.count == int(t.size.subs(arch.dims))
        assert t.read_by, f"{t.name} is read by no node"
    assert by_group == dict(breakdown(arch))


def test_theorems_follow_the_ops_the_architecture_uses(tiny_site) -> None:  # type: ignore[no-untyped-def]
    listed = {a.theorem.name for a in tiny_site.theorems}
    assert "softmax_shift_invariance" in listed and "one_hot_embedding_is_gather" in listed
    assert "conv_reducer_breaks_causality" not in listed  # its proof reads conv1d, which a GPT has not
    assert "conv1d" in theorem_ops(__import__("proofs").THEOREMS["conv_reducer_breaks_causality"])
    conv = collect(build(preset("conv-gpt").config))
    assert "conv_reducer_breaks_causality" in {a.theorem.name for a in conv.theorems}
    for a in tiny_site.theorems:
        assert set(a.ops) <= tiny_site.kinds


def test_every_convention_cites_what_exists() -> None:
    from proofs.runner import select

    theorems = {t.name for t in select()}
    for c in CONVENTIONS:
        assert c.ops and set(c.ops) <= set(PRIMITIVES), c.name
        assert c.tests() or c.theorems(), f"{c.name} is pinned by nothing"
        for name in c.theorems():
            assert name in theorems, f"{c.name} cites theorem {name}, which is not registered"
        for file, test in c.tests():
            tree = ast.parse((ROOT / file).read_text())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert test in defined, f"{c.name} cites {file}::{test}, which does not exist"


def test_generic_instances_name_their_sizes() -> None:
    affine = generic_instance(PRIMITIVES["affine"])
    assert str(affine.inputs()["x"].shape) == "(T, d_in)" and str(affine.output().shape) == "(T, d_out)"
    softmax = generic_instance(PRIMITIVES["masked_softmax"])
    assert softmax.attributes()["mask"] != Causal() and "A_t" in softmax.dependency()["x"].latex()
    for cls in PRIMITIVES.values():
        op = generic_instance(cls)
        assert dataclasses.is_dataclass(op) and op.output() is not None


# -- the drawing ---------------------------------------------------------------------------


def overlaps(a, b) -> bool:  # type: ignore[no-untyped-def]
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + NODE_H and b.y < a.y + NODE_H


@pytest.mark.parametrize("name", ["tiny", "transformer-tiny", "parallel-gpt"])
def test_layout_places_every_node_without_overlap_and_edges_run_down(name: str) -> None:
    site = collect(build(preset(name).config))
    for level in site.levels[:6]:
        drawing = level_drawing(site, level, lambda p: "#")
        keys, edges = structure(level.graph, level.nodes)
        assert drawing.count('data-key="') == len(keys)
        from gptspec.docs import svg as S

        vertices = {k: S.Vertex(k, (k, "op", "(T,)")) for k in keys}
        laid = lay_out(vertices, edges)
        boxes = list(laid.vertices.values())
        for i, a in enumerate(boxes):
            assert 0 <= a.x and a.x + a.w <= laid.width and 0 <= a.y and a.y + NODE_H <= laid.height
            for b in boxes[i + 1 :]:
                assert not overlaps(a, b), f"{a.key} and {b.key} overlap in {level.path or 'the model'}"
        for e in edges:
            src, dst = laid.vertices[e.src], laid.vertices[e.dst]
            assert dst.row > src.row or (dst.row == src.row and dst.x > src.x), f"edge {e} does not run down"


def test_a_long_chain_of_blocks_is_laid_out_in_rows() -> None:
    site = collect(build(preset("gpt2-small").config))
    model = site.levels[0]
    keys, edges = structure(model.graph, model.nodes)
    from gptspec.docs import svg as S

    laid = lay_out({k: S.Vertex(k, (k, "block" if k.startswith("blocks.") else k, "")) for k in keys}, edges)
    rows = {laid.vertices[f"blocks.{i}"].row for i in range(12)}
    assert len(rows) == 3  # 12 blocks: rows of 5, 5 and 2
    assert laid.vertices["blocks.1"].row == laid.vertices["blocks.0"].row


# -- the command ---------------------------------------------------------------------------


def ids(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


def test_html_site_of_a_non_gpt_family(tmp_path: Path) -> None:
    model = resolve("tiny-llama", (), need_theta=False, progress=False)
    files = {f.name: f for f in write_docs(model.arch, tmp_path, "html", model.source)}
    assert set(files) == {"index.html", "algorithm.html", "ops.html", "theta.html", "theorems.html", "conventions.html", "style.css", "site.js"}
    pages = {name: f.read_text() for name, f in files.items() if name.endswith(".html")}
    for name, html in pages.items():
        for ref in re.findall(r'(?:href|src)="([^"#]*)', html):
            assert ref == "" or ref in files or ref == "data:,", f"{name} refers to {ref!r}, which is not a file of the site"
        assert "http://" not in html.replace('xmlns="http://www.w3.org/', "") and "https://" not in html
    for kind in {node.op.kind for _, node, _ in model.arch.expand()}:
        assert f'id="op-{kind}"' in pages["ops.html"]
    for name in model.arch.theta:
        assert f'id="theta-{name}"' in pages["theta.html"]
    index_ids = ids(pages["index.html"])
    for level in collect(model.arch).levels[1:]:  # drawn, or inside a composite that refers to one drawn
        assert any(f"g-{'.'.join(level.path.split('.')[:k])}" in index_ids for k in range(len(level.path.split(".")), 0, -1))
    for block in ("blocks.0", "blocks.1"):
        assert f"g-{block}" in index_ids
    assert "rms_norm" in pages["ops.html"] and "<merror" not in pages["ops.html"]
    assert "details class=\"level\"" in pages["index.html"] and " open" not in pages["index.html"].split("<main")[1].split("<details")[1][:80]


def test_markdown_has_the_same_content(tmp_path: Path) -> None:
    model = resolve("tiny", (), need_theta=False, progress=False)
    files = {f.name: f.read_text() for f in write_docs(model.arch, tmp_path, "markdown", model.source)}
    assert {"index.md", "ops.md", "theta.md", "theorems.md", "conventions.md", "graph-model.svg", "breakdown.svg"} <= set(files)
    ops = files["ops.md"]
    assert "$$\n" in ops and "<math" not in ops and "```python" in ops
    assert "def masked_softmax" in ops  # the reference source
    assert f"**{count(model.arch):,}**" in files["theta.md"]
    for name in model.arch.theta:
        assert f'id="theta-{name}"' in files["theta.md"]
    for path, node, _ in model.arch.expand():
        assert f"[`{path.rsplit('.', 1)[-1]}`](ops.md#op-{node.op.kind}-" in files["index.md"]
    for f in ("graph-model.svg", "breakdown.svg"):
        assert files[f].startswith("<svg") and "<style>" in files[f]


def test_cli_writes_a_site_for_a_checkpoint_and_a_builder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gptspec.checkpoint import save_theta
    from spec.theta import random_theta

    arch = build(preset("tiny").config)
    checkpoint = save_theta(tmp_path / "tiny.safetensors", arch, random_theta(arch, seed=0))
    assert main(["docs", str(checkpoint), "--out", str(tmp_path / "ckpt")]) == 0
    assert "8,128" in (tmp_path / "ckpt" / "index.html").read_text()
    builder = tmp_path / "mine.py"
    builder.write_text(
        "from spec.architectures import GPTConfig\n"
        "def build():\n"
        "    return GPTConfig(n_vocab=11, n_ctx=5, d_model=4, n_layers=1, n_heads=1, activation='relu', name='mine')\n"
    )
    assert main(["docs", f"{builder}:build", "--out", str(tmp_path / "mine"), "--format", "markdown"]) == 0
    assert "relu" in (tmp_path / "mine" / "ops.md").read_text()
    out = capsys.readouterr().out
    assert "wrote 8 files" in out and f"builder {builder}:build" in out
    assert main(["docs", "no-such-preset", "--out", str(tmp_path / "x")]) == 2  # could not run
    (tmp_path / "file").write_text("")
    assert main(["docs", "tiny", "--out", str(tmp_path / "file")]) == 2  # could not run
    assert "expected a directory" in capsys.readouterr().err


def drawings(html: str) -> int:
    return html.count('<svg class="graph"')


def test_gpt2_xl_site_draws_each_distinct_graph_once(tmp_path: Path) -> None:
    """gpt2-xl (48 blocks of 25 heads) is written with its blocks collapsed, and what the site
    renders grows with the distinct ops and graphs, not with the nodes: one drawing per distinct
    level (the model, a block, its attention, a head, an MLP) — as many as gpt2-small's — and one
    definition per op kind; every block and head is still reachable as a reference to the drawing.
    (How long it takes: benchmarks/docs_site.py, docs/performance.md.)"""
    model = resolve("gpt2-xl", (), need_theta=False, progress=False)
    write_docs(model.arch, tmp_path / "xl", "html", model.source)
    small = resolve("gpt2-small", (), need_theta=False, progress=False)
    write_docs(small.arch, tmp_path / "small", "html", small.source)
    html = (tmp_path / "xl" / "index.html").read_text()
    assert html.count('<details class="level"') == 48 + 2 + 25  # every block; the first block's attention, MLP and 25 heads
    assert drawings(html) == drawings((tmp_path / "small" / "index.html").read_text()) == 5
    assert html.count('<p class="same">') == 47 + 24  # the others refer to the first
    assert "<details class=\"level\" open" not in html
    ops = (tmp_path / "xl" / "ops.html").read_text()
    kinds = {node.op.kind for _, node, _ in model.arch.expand()}
    assert ops.count('-def">Definition</h3>') == len(kinds) == sum(ops.count(f'<section id="op-{k}"') for k in kinds)
    assert ops.count('class="composite-definition"') == 4  # block, attention, head, MLP: each defined once
    top = html.split('<div class="figure" id="g-model">')[1].split("</svg>")[0]
    assert top.count('class="node cluster"') == 48
    heights = re.search(r'height="(\d+)"', top)
    assert heights is not None and int(heights.group(1)) < 2000, "the model's drawing is not compact (the 48 blocks are not in rows)"


def test_gpt2_small_index_is_small_and_every_cluster_resolves(tmp_path: Path) -> None:
    """Identical subgraphs are drawn once: index.html of gpt2-small stays under 300 KB, and every
    composite the drawings link to has its element (drawn, or a reference to the drawing)."""
    model = resolve("gpt2-small", (), need_theta=False, progress=False)
    write_docs(model.arch, tmp_path, "html", model.source)
    html = (tmp_path / "index.html").read_text()
    assert len(html.encode()) < 300_000, f"index.html is {len(html.encode()):,} bytes"
    found = ids(html)
    for href in set(re.findall(r'href="#(g-[^"]+)"', html)):
        assert href in found, f"index.html links to #{href}, which it does not hold"
    for block in range(1, 12):
        assert f'id="g-blocks.{block}"' in html


def first_instance_of_each_family() -> dict[str, Config]:
    from spec.architectures import FAMILIES

    return {name: next(iter(f.instances().values())) for name, f in FAMILIES.items()}


@pytest.mark.parametrize("name", list(first_instance_of_each_family()))
def test_every_family_gets_docs(name: str, tmp_path: Path) -> None:
    """The generator knows no family: each registered one's first fixed instance (its record's)
    writes both formats, with a section for every op kind its graph uses. (Real sizes: the
    gpt2-xl site test and the docs site's presets.)"""
    from spec import build

    arch = build(first_instance_of_each_family()[name])
    source = f"{name} instance {arch.name}"
    html = {f.name: f.read_text() for f in write_docs(arch, tmp_path / "html", "html", source) if f.suffix == ".html"}
    md = {f.name: f.read_text() for f in write_docs(arch, tmp_path / "md", "markdown", source) if f.suffix == ".md"}
    kinds = {node.op.kind for _, node, _ in arch.expand()}
    for kind in kinds:
        assert f'id="op-{kind}"' in html["ops.html"] and f'<a id="op-{kind}"></a>' in md["ops.md"]
    assert "<merror" not in "".join(html.values())
    assert f"{count(arch):,}" in html["theta.html"] and f"{count(arch):,}" in md["theta.md"]


# -- equations and the algorithm -----------------------------------------------------------


def test_every_notation_template_names_only_its_operands() -> None:
    """``Primitive.notation`` placeholders are the op's inputs, parameters and attributes, and
    every fixed instance's notation converts to MathML with any operand names."""
    from gptspec.docs.equations import PLACEHOLDER, Term, op_term

    for kind, cls in PRIMITIVES.items():
        for op in cls.instances(3):
            names = set(op.inputs()) | set(op.params())
            for m in PLACEHOLDER.finditer(cls.notation):
                attr, name = m.group(1), m.group(2)
                if attr:
                    assert name in op.attributes(), f"{kind}: ⟨:{name}⟩ is not an attribute"
                elif name.endswith("_*"):
                    assert any(n.startswith(name[:-1]) for n in names), f"{kind}: ⟨{name}⟩ names no input"
                else:
                    assert name in names or name in op.attributes() or name in ("b", "beta"), f"{kind}: ⟨{name}⟩"
            operands = {n: Term(f"u_{{{i}}}") for i, n in enumerate(names)}
            latex = op_term(op, operands).latex
            assert "⟨" not in latex and "⟦" not in latex and "<merror" not in to_mathml(latex, True, kind)


def test_a_head_is_defined_from_its_graph() -> None:
    from gptspec.docs.equations import composite_definitions

    defs = composite_definitions(build(preset("tiny").config))
    (head, paths), = defs["attention_head"].variants
    assert len(paths) == 4  # 2 blocks × 2 heads share one definition
    assert head.main[0].lhs.startswith(r"\operatorname{head}_{h}")
    assert r"\operatorname{softmax}_{s \le t}" in head.main[0].rhs and r"Q_{h} {K_{h}}^\top" in head.main[0].rhs
    assert [e.latex for e in head.where][0] == r"Q_{h} = x_{q} W_{Q,h} + b_{Q,h}"
    assert {link.kind for link in head.links} == {"affine", "attention_scores", "masked_softmax", "weighted_sum"}
    llama = composite_definitions(build(preset("tiny-llama").config))
    (gqa, _), = llama["attention_head"].variants
    assert r"W_{K,\lfloor h/2 \rfloor}" in gqa.text() and r"\operatorname{RoPE}\left(Q_{h}\right)" in gqa.text()


def test_a_change_of_architecture_changes_the_equations(tmp_path: Path) -> None:
    """Nothing is written by hand: a preset with another activation, or a Llama block instead of
    GPT's, shows up in the composite definitions of the pages."""

    def definitions(target: str, *sets: str) -> dict[str, str]:
        out = tmp_path / f"{target}-{len(sets)}"
        assert main(["docs", target, "--out", str(out), *(a for s in sets for a in ("--set", s))]) == 0
        html = (out / "ops.html").read_text()
        blocks = re.findall(r'<h3 id="comp-([^"]+)">.*?<div class="composite-definition"[^>]*>(.*?)</div>', html, re.S)
        return {kind: text for kind, text in blocks}

    tanh, erf = definitions("tiny"), definitions("tiny", "activation=gelu_erf")
    assert set(tanh) == set(erf) == {"block", "multi_head_attention", "attention_head", "mlp"}
    assert tanh["mlp"] != erf["mlp"] and "tanh" in tanh["mlp"] and "tanh" not in erf["mlp"]
    assert tanh["attention_head"] == erf["attention_head"]
    llama = definitions("tiny-llama")
    assert "RMSNorm" in llama["block"] and "LayerNorm" in tanh["block"] and "RMSNorm" not in tanh["block"]
    assert "gated_mlp" in llama and "&#x02299;" in llama["gated_mlp"]  # ⊙, the gate


@pytest.mark.parametrize("family", list(__import__("spec").FAMILIES))
def test_every_family_has_an_algorithm(family: str) -> None:
    """The algorithm view of each registered family's largest instance: loops (over layers, over
    heads), every Θ entry pattern among the parameters, a return line, and every line converts
    to MathML."""
    from gptspec.docs.equations import algorithm, pattern_of
    from spec import FAMILIES

    config = max(FAMILIES[family].instances().values(), key=lambda c: c.graph_size())
    arch = build(config)
    view = algorithm(arch)
    fors = [line for line in view.lines if line.keyword == "for"]
    assert len(fors) == sum(1 for line in view.lines if line.keyword == "end")
    repeated = False  # some graph holds two composites of one kind: a loop is due
    stack: list[Graph] = [arch]
    while stack:
        graph = stack.pop()
        kinds = [n.op.kind for n in graph.nodes.values() if isinstance(n.op, Composite)]
        repeated |= len(kinds) != len(set(kinds))
        stack += [n.op.body for n in graph.nodes.values() if isinstance(n.op, Composite)]
    assert bool(fors) == repeated
    assert view.lines[-1].latex.startswith(r"\textbf{return }") and (max(line.depth for line in view.lines) >= 1) == repeated
    assert len(view.parameters) == len({pattern_of(n) for n in arch.theta})
    for line in view.lines:
        assert "<merror" not in to_mathml(line.latex, False, family)
