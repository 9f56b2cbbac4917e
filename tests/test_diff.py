"""`gptspec diff A B` (gptspec/diff.py): what B changes relative to A, compared as graphs.

* a model compared with itself, or with a copy whose every node is renamed, has no change: nodes
  are matched by their place in the graph, never by name;
* one change of config is one change found, at the right place (another activation: one op
  replaced in the MLP, Θ the same);
* a Llama against a GPT: the norms replaced, rotary added, the positional table removed, the MLP
  replaced by a gated one, biases dropped, Θ's entries added and removed with their counts, the
  conventions of layer norm and GELU only A's;
* the command prints tables or JSON and exits 0, exits 2 when it cannot run, and
  ``gptspec docs B --against A`` writes the comparison as a page of the site.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptspec.cli import main
from gptspec.diff import compare, markdown, text
from gptspec.models import resolve
from spec import build, preset
from spec.counting import count
from spec.graph import Architecture, Composite, Graph, Source


def arch(name: str, *sets: str) -> Architecture:
    return resolve(name, sets, need_theta=False, progress=False).arch


def renamed(graph: Graph, rename: dict[str, str]) -> Graph:
    """``graph`` with every node renamed (``n`` → ``rename.get(n, 'n_' + n)``), at every level."""

    def new(name: str) -> str:
        return rename.get(name, f"n_{name}")

    if isinstance(graph, Architecture):
        out: Graph = Architecture(graph.name, graph.inputs, graph.dims, graph.config)
        out.theta = dict(graph.theta)  # type: ignore[attr-defined]
    else:
        out = Graph(graph.name, graph.inputs)
    for node in graph.nodes.values():
        op = node.op
        if isinstance(op, Composite):
            op = Composite(op.kind, op.title, renamed(op.body, rename))
        sources = {port: Source(new(src.node) if src.node is not None else None, src.port) for port, src in node.inputs.items()}
        out.add(new(node.name), op, sources, node.params)
    for name, src in graph.outputs.items():
        out.output(name, Source(new(src.node) if src.node is not None else None, src.port))
    return out


def test_a_model_against_itself_or_renamed_has_no_change() -> None:
    tiny = build(preset("tiny").config)
    same = compare(tiny, tiny)
    assert same.ops == [] and same.config == [] and same.conventions == ([], [])
    assert all(r.status == "same" for r in same.theta) and same.counts == (count(tiny), count(tiny))
    other = renamed(tiny, {})
    assert isinstance(other, Architecture)
    assert {n for n in other.nodes} != {n for n in tiny.nodes}  # every name differs …
    assert compare(tiny, other.validate()).ops == []  # … and nothing is reported


def test_another_activation_is_one_replaced_op() -> None:
    d = compare(arch("tiny"), arch("tiny", "activation=gelu_erf"))
    assert [(c.change, c.a_where, c.b_where, c.a, c.b) for c in d.ops] == [
        ("replaced", "blocks.*.mlp.gelu_tanh", "blocks.*.mlp.gelu_erf", "gelu_tanh", "gelu_erf")
    ]
    assert all(r.status == "same" for r in d.theta)
    assert d.config == [("activation", "'gelu_tanh'", "'gelu_erf'")]
    assert d.conventions == ([], [])  # both GELUs concern the GELU convention


def test_llama_against_gpt() -> None:
    d = compare(arch("tiny"), arch("tiny-llama"))
    changes = {(c.change, c.a.split("(")[0], c.b.split("(")[0]) for c in d.ops}
    assert ("replaced", "layer_norm", "rms_norm") in changes
    assert ("replaced", "mlp ", "gated_mlp ") in changes
    assert ("removed", "learned_positional", "") in changes
    assert ("added", "", "rotary") in changes
    assert ("changed", "bias=True", "bias=False") in changes
    assert any(c.change == "rewired" and "rotary_Q" in c.b for c in d.ops), "the scores do not read the rotated queries"
    rows = {r.pattern: r for r in d.theta}
    assert rows["W_P"].status == "removed" and rows["W_P"].a_count == 32 * 16 and rows["W_P"].b_count == 0
    assert rows["blocks.*.mlp.W_gate"].status == "added" and rows["blocks.*.mlp.W_gate"].b_entries == 2
    assert sum(r.a_count for r in d.theta) == d.counts[0] and sum(r.b_count for r in d.theta) == d.counts[1]
    assert any("Layer norm" in t for t in d.conventions[0]) and not d.conventions[1]
    assert all("causal" in line for line in d.causality[0] + d.causality[1])
    assert "| replaced |" in markdown(d) and "rms_norm" in text(d)


def test_two_composites_compare_inside() -> None:
    """The Transformer's post-LN encoder block against GPT's pre-LN block: the norm moves before
    each sublayer, attention stops being masked, ReLU becomes GELU; Θ is what each block reads."""
    d = compare(arch("transformer-tiny"), arch("tiny"), a_node="encoder.blocks.0", b_node="blocks.0")
    found = {(c.change, c.a, c.b) for c in d.ops}
    assert ("replaced", "relu", "gelu_tanh") in found
    assert ("changed", "mask=Full()", "mask=Causal()") in found
    assert any(c.change == "rewired" and c.b_where.endswith(".attn") and "ln_1" in c.b for c in d.ops)
    assert {r.pattern for r in d.theta} >= {"attn.W_Q", "ln_1.gamma", "mlp.W_in"}
    assert d.config == [] and d.scope == ("encoder.blocks.0", "blocks.0")


def test_cli_tables_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "tiny", "tiny", "--set-b", "activation=relu"]) == 0
    out = capsys.readouterr().out
    assert "replaced" in out and "gelu_tanh" in out and "relu" in out
    assert main(["diff", "tiny", "tiny-llama", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["a"]["family"] == "gpt" and data["b"]["family"] == "llama"
    assert data["a"]["parameters"] == count(arch("tiny")) and data["summary"]["replaced"] >= 3
    assert {"change", "a_where", "b_where", "a", "b"} == set(data["ops"][0])
    assert main(["diff", "tiny", "no-such-preset"]) == 2
    assert main(["diff", "tiny", "tiny", "--set-a", "activation=nope"]) == 2
    assert main(["diff", "tiny", "tiny", "--node-a", "blocks.7"]) == 2
    assert main(["diff", "tiny", "tiny", "--node-a", "ln_f"]) == 2  # a primitive, not a composite
    err = capsys.readouterr().err
    assert "did you mean" in err and "expected a composite" in err


def test_docs_against_writes_the_page(tmp_path: Path) -> None:
    assert main(["docs", "tiny-llama", "--out", str(tmp_path), "--against", "tiny"]) == 0
    html = (tmp_path / "diff.html").read_text()
    assert "rms_norm" in html and "learned_positional" in html and 'aria-current=page>Changes' in html
    assert 'href="diff.html"' in (tmp_path / "index.html").read_text()
    assert main(["docs", "tiny-llama", "--out", str(tmp_path / "md"), "--format", "markdown", "--against", "tiny"]) == 0
    md = (tmp_path / "md" / "diff.md").read_text()
    assert "| replaced |" in md and "[Changes](diff.md)" in (tmp_path / "md" / "index.md").read_text()
    assert main(["docs", "tiny", "--out", str(tmp_path / "x"), "--set-against", "activation=relu"]) == 2
