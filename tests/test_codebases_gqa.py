"""Fused QKV projections under grouped-query attention (docs/verify.md, "Verify a codebase you did
not write"): the layout pattern language's concatenation of parts of unequal size, as contiguous
blocks (gpt-fast's ``wqkv``, litgpt's ``attn.qkv``) and interleaved per key/value group (older
litgpt's ``attn.attn``), and the gpt-fast- and litgpt-style fixtures verified with no flags.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptspec.checkpoint import export_state_dict, import_state_dict, layout
from gptspec.checkpoint.layout import Stored, Tensor, expected_shapes, lazy_theta
from gptspec.verify import verify_target
from spec import build
from spec.errors import ConfigError
from spec.theta import random_theta

FIXTURES = Path(__file__).parent / "fixtures" / "codebases"
GPT_FAST = f"{FIXTURES / 'gpt_fast_style' / 'model.py'}:Transformer"
LITGPT = f"{FIXTURES / 'litgpt_style' / 'model.py'}:GPT"
QUICK: dict[str, Any] = {"examples": 3, "generation_examples": 1, "isolate": False}
FUSED = {"gpt-fast": "layers.0.attention.wqkv.weight", "litgpt": "transformer.h.0.attn.qkv.weight",
         "litgpt-legacy": "transformer.h.0.attn.attn.weight"}


def rows(w: np.ndarray) -> np.ndarray:
    """A Θ projection (heads, d_model, d_head) as nn.Linear rows (heads·d_head, d_model)."""
    return w.transpose(0, 2, 1).reshape(-1, w.shape[1])


@pytest.mark.parametrize("name", list(FUSED))
@pytest.mark.parametrize("kv", [1, 2, 4])
def test_a_fused_qkv_of_unequal_parts_round_trips_bit_exactly_and_means_its_pattern(name: str, kv: int) -> None:
    config = layout(name).default.replace(n_kv_heads=kv)  # 4 query heads: multi-query, grouped, multi-head
    arch = build(config)
    theta = random_theta(arch, seed=kv)
    state = export_state_dict(arch, theta, name)
    q, k, v = (theta[f"blocks.0.attn.W_{x}"] for x in "QKV")
    if name == "litgpt-legacy":  # per group g: its query heads, then k_g, then v_g
        r = q.shape[0] // kv
        want = np.concatenate([np.concatenate([rows(q[g * r:(g + 1) * r]), rows(k[g:g + 1]), rows(v[g:g + 1])]) for g in range(kv)])
    else:  # [Q | K | V]
        want = np.concatenate([rows(q), rows(k), rows(v)])
    assert np.array_equal(state[FUSED[name]], want)
    assert expected_shapes(layout(name), arch)[FUSED[name]][0] == want.shape
    _, back = import_state_dict(config, state, name)
    assert set(back) == set(theta) and all(np.array_equal(back[n], theta[n]) for n in theta)


def test_a_concatenation_names_one_part_and_one_theta_pattern_per_entry() -> None:
    with pytest.raises(ConfigError, match="one part and one Θ pattern per entry"):
        Tensor("qkv", ("Q", "K", "V"), "[h e | g e] d", "h d e | g d e")
    with pytest.raises(ConfigError, match="expected the same axes"):
        Tensor("qkv", ("Q", "K"), "[h e | g e] d", "h d e | g d f")
    with pytest.raises(ConfigError, match="expected exactly one"):
        Tensor("qkv", ("Q", "K"), "h e d", "h d e | g d e")


@pytest.mark.parametrize(("target", "lay"), [(GPT_FAST, "gpt-fast"), (LITGPT, "litgpt")])
def test_gpt_fast_and_litgpt_style_models_pass_with_no_flags(target: str, lay: str) -> None:
    report = verify_target(target, **QUICK)
    got = {r.component: r.status for r in report.results}
    assert report.layout == lay and report.exit_code == 0, got
    assert report.function["rope_pairing"] == ("interleaved" if lay == "gpt-fast" else "half")
    assert got["model: unpadded batches (the target takes no attention mask)"] == "passed"
    # built with grouped-query attention: 4 query heads share 2 key/value heads
    kv = "n_local_heads=2" if lay == "gpt-fast" else "n_query_groups=2"
    assert any(kv in n and "n_head=4" in n for n in report.notes), report.notes


BUGS = {
    "gpt-fast: K and V swapped in the split": (GPT_FAST, "q, k, v = self.wqkv(x).split(", "q, v, k = self.wqkv(x).split("),
    "litgpt: K and V swapped in the split": (LITGPT, "q, k, v = self.qkv(x).split(", "q, v, k = self.qkv(x).split("),
    "litgpt: query groups served round-robin": (LITGPT, "k = k.repeat_interleave(c.n_head // c.n_query_groups, dim=1)\n"
                                                "            v = v.repeat_interleave(c.n_head // c.n_query_groups, dim=1)",
                                                "k = k.repeat(1, c.n_head // c.n_query_groups, 1, 1)\n"
                                                "            v = v.repeat(1, c.n_head // c.n_query_groups, 1, 1)"),
}


@pytest.mark.parametrize("name", list(BUGS))
def test_a_bug_in_the_fused_split_is_caught(name: str, tmp_path: Path) -> None:
    target, old, new = BUGS[name]
    path, cls = target.rsplit(":", 1)
    source = Path(path).read_text()
    assert source.count(old) == 1, f"the fixture changed: {old!r}"
    (tmp_path / "model.py").write_text(source.replace(old, new))
    report = verify_target(f"{tmp_path / 'model.py'}:{cls}", components=("model",), shrink=False, localise=False, identify=False, **QUICK)
    assert report.exit_code == 1, {r.component: r.status for r in report.results}


def test_a_fused_qkv_of_unequal_parts_reads_lazily_as_it_imports() -> None:
    for name in FUSED:
        config = layout(name).default
        arch = build(config)
        theta = random_theta(arch, seed=3)
        state = export_state_dict(arch, theta, name)
        stored = {n: Stored(a.shape, "F64", a.nbytes, functools.partial(np.asarray, a)) for n, a in state.items()}
        lazy = lazy_theta(layout(name), arch, stored, "test")
        assert all(np.array_equal(lazy[n], theta[n]) for n in theta), name
