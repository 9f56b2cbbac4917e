"""Identify searches variants that change Θ too (docs/verify.md, "Identify: which function does it
compute?"): tying, biases and the key/value grouping are told by rebuilding the target for the
variant's native config and drawing θ for it, and a variant whose Θ the target's parameters cannot
take is skipped and counted.

Each target is a factory ``f(native config) -> module`` over the fixtures of
tests/fixtures/codebases/ that fixes one field whatever the config says — what a codebase does
when it hard-codes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gptspec.checkpoint import layout
from gptspec.models import load_object
from gptspec.verify import verify_target
from gptspec.verify.identify import RESHAPING, variants
from gptspec.verify.report import FORMATS
from spec import build
from spec.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "codebases"
QUICK: dict[str, Any] = {"examples": 2, "generation_examples": 1, "isolate": False, "shrink": False, "components": ("model",)}


def _fixture(name: str, cls: str) -> Any:
    import sys

    found = load_object(f"{FIXTURES / name / 'model.py'}:{cls}", "target")
    return found, sys.modules[found.__module__]


def always_tied(cfg: Any) -> Any:
    """GPT-2 (Hugging Face's class) with its head tied to the embedding whatever the config says."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(**{**cfg, "tie_word_embeddings": True}))


def without_biases(cfg: Any) -> Any:
    """nanoGPT built with ``bias=False`` whatever the config says."""
    gpt, module = _fixture("nanogpt_style", "GPT")
    sizes = {k: cfg[k] for k in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")}
    return gpt(module.GPTConfig(**sizes, bias=False))


def two_kv_heads(cfg: Any) -> Any:
    """Meta's Llama with two key/value heads whatever the config says."""
    transformer, module = _fixture("meta_llama_style", "Transformer")
    args = {k: v for k, v in cfg.items() if k in module.ModelArgs.__dataclass_fields__}
    return transformer(module.ModelArgs(**{**args, "n_kv_heads": 2}))


def test_a_head_tied_whatever_the_config_is_identified_as_tied() -> None:
    report = verify_target(always_tied, layout="hf-gpt2", sets=("tied=false",), **QUICK)
    assert report.exit_code == 1 and report.identified is not None
    assert report.identified["changes"] == {"tied": True} and report.identified["passed"] is True
    assert report.identified["flags"] == "--set tied=true"
    assert "computes hf-gpt2-small-default with tied=true: every component passes" in report.identified["summary"]


def test_a_model_without_biases_is_identified_though_its_parameters_do_not_take_the_specs_theta() -> None:
    report = verify_target(without_biases, layout="nanogpt", sets=("activation=gelu_erf",), **QUICK)
    assert report.exit_code == 2  # it cannot run as given: its parameters are another Θ's
    assert any("do not take Θ" in note for note in report.notes), report.notes
    assert report.identified is not None and report.identified["changes"] == {"bias": False}, report.identified
    assert report.identified["passed"] is True and report.identified["flags"] == "--set bias=false"
    found = json.loads(FORMATS["json"](report))["identified"]
    assert found["changes"] == {"bias": False} and found["variants_screened"] >= 1
    with pytest.raises(ConfigError, match="lacks"):  # --no-identify: refused before the run, as before
        verify_target(without_biases, layout="nanogpt", sets=("activation=gelu_erf",), **{**QUICK, "identify": False})


def test_another_key_value_grouping_is_identified_and_the_unloadable_variants_are_counted() -> None:
    report = verify_target(two_kv_heads, layout="meta-llama", sets=("n_kv_heads=4",), **QUICK)
    assert report.exit_code == 2 and report.identified is not None, report.results
    assert report.identified["changes"] == {"n_kv_heads": 2} and report.identified["passed"] is True
    assert report.identified["variants_not_loadable"] >= 1  # n_kv_heads=1: the target's wk cannot hold it
    assert "skipped: the target's parameters do not take their Θ" in report.identified["summary"]


def test_a_fault_no_variant_explains_is_no_match(tmp_path: Path) -> None:
    source = (FIXTURES / "nanogpt_style" / "model.py").read_text()
    old = "x = x + self.attn(self.ln_1(x))"
    assert source.count(old) == 1
    (tmp_path / "model.py").write_text(source.replace(old, "x = self.attn(self.ln_1(x))"))
    report = verify_target(f"{tmp_path / 'model.py'}:GPT", sets=("activation=gelu_erf",), localise=False, **QUICK)
    assert report.exit_code == 1 and report.identified is not None
    assert report.identified["passed"] is False and report.identified["changes"] == {}
    assert report.identified["summary"].startswith("no registered variant matches (") and "variants screened in" in report.identified["summary"]


def test_the_search_space_holds_the_variants_that_change_theta_only_when_asked() -> None:
    arch = build(layout("meta-llama").default)
    same = variants(arch.config, arch.theta_shapes(), "kv")
    every = variants(arch.config, arch.theta_shapes(), "kv", reshape=True)
    assert all(build(arch.config.replace(**v)).theta_shapes() == arch.theta_shapes() for v in same if len(v) == 1)
    assert {"n_kv_heads": 1} in every and {"n_kv_heads": 1} not in same
    assert {"tied": True} in every and all(not set(v) & set(RESHAPING) for v in same)
    assert every[0] == {"n_kv_heads": 1}  # the localisation's word orders the fields
