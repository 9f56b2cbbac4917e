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
  site is written in seconds with every block collapsed.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import time
from pathlib import Path

import pytest

from gptspec.cli import main
from gptspec.docs import repo, write_docs
from gptspec.docs.content import collect, generic_instance, theorem_ops
from gptspec.docs.conventions import CONVENTIONS
from gptspec.docs.mathml import equations, to_mathml
from gptspec.docs.site import level_drawing
from gptspec.docs.svg import NODE_H, lay_out, structure
from gptspec.models import resolve
from spec import build, preset
from spec.counting import breakdown, count
from spec.errors import ConfigError
from spec.graph import Composite
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
    assert set(files) == {"index.html", "ops.html", "theta.html", "theorems.html", "conventions.html", "style.css", "site.js"}
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
    for level in collect(model.arch).levels[1:]:
        assert f"g-{level.path}" in index_ids
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
    assert "wrote 7 files" in out and f"builder {builder}:build" in out
    assert main(["docs", "no-such-preset", "--out", str(tmp_path / "x")]) == 1
    (tmp_path / "file").write_text("")
    assert main(["docs", "tiny", "--out", str(tmp_path / "file")]) == 1
    assert "expected a directory" in capsys.readouterr().err


def test_gpt2_xl_is_written_in_seconds_with_blocks_collapsed(tmp_path: Path) -> None:
    started = time.perf_counter()
    model = resolve("gpt2-xl", (), need_theta=False, progress=False)
    write_docs(model.arch, tmp_path, "html", model.source)
    seconds = time.perf_counter() - started
    assert seconds < 60, f"gpt2-xl took {seconds:.1f} s"
    html = (tmp_path / "index.html").read_text()
    assert html.count('<details class="level"') == 48 * (1 + 1 + 25 + 1)  # block, attn, 25 heads, mlp
    assert "<details class=\"level\" open" not in html
    top = html.split('<div class="figure" id="g-model">')[1].split("</svg>")[0]
    assert top.count('class="node cluster"') == 48
    heights = re.search(r'height="(\d+)"', top)
    assert heights is not None and int(heights.group(1)) < 2000, "the model's drawing is not compact (the 48 blocks are not in rows)"
    assert Composite  # (imported for the reader: clusters are spec.graph.Composite nodes)


def smallest_preset_of_each_family() -> list[str]:
    from spec.architectures import FAMILIES, PRESETS

    out = []
    for family in FAMILIES:
        names = [n for n, p in PRESETS.items() if p.family == family]
        if names:
            out.append(min(names, key=lambda n: PRESETS[n].config.graph_size()))
    return out


@pytest.mark.parametrize("name", smallest_preset_of_each_family())
def test_every_family_gets_docs(name: str, tmp_path: Path) -> None:
    """The generator knows no family: each registered one's smallest preset writes both formats,
    with a section for every op kind its graph uses."""
    model = resolve(name, (), need_theta=False, progress=False)
    html = {f.name: f.read_text() for f in write_docs(model.arch, tmp_path / "html", "html", model.source) if f.suffix == ".html"}
    md = {f.name: f.read_text() for f in write_docs(model.arch, tmp_path / "md", "markdown", model.source) if f.suffix == ".md"}
    kinds = {node.op.kind for _, node, _ in model.arch.expand()}
    for kind in kinds:
        assert f'id="op-{kind}"' in html["ops.html"] and f'<a id="op-{kind}"></a>' in md["ops.md"]
    assert "<merror" not in "".join(html.values())
    assert f"{count(model.arch):,}" in html["theta.html"] and f"{count(model.arch):,}" in md["theta.md"]
