"""No false positives: real Hugging Face models, as they are, pass ``gptspec verify`` — GPT-2 in
eager and sdpa attention in all four dtypes (a few seeds here; benchmarks/verify_false_positives.py
sweeps many and docs/tolerances.md has the numbers), an instance in its own dtype, and a tiny
Llama with no verify code of its own (the hf-llama layout alone). The empty-row conventions:
the default (any-finite) passes; ``zero`` fails Hugging Face's padded positions with its own
message, and ``ignore`` does not look at them.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import pytest
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

from gptspec.checkpoint import layout
from gptspec.verify import verify_target

transformers.utils.logging.set_verbosity_error()


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_hugging_face_gpt2_passes_in_every_dtype(attn: str, dtype: str) -> None:
    for seed in ({"eager": 1, "sdpa": 2}[attn],):  # one seed per attention here (the dtypes share its reference values); the benchmark sweeps many
        report = verify_target(
            "transformers:GPT2LMHeadModel", attn_implementation=attn, dtype=dtype, seed=seed, examples=3, generation_examples=1,
        )
        statuses = {r.key: r.status for r in report.results}
        assert statuses == {"model": "passed", "decode": "passed", "generate": "passed"}, [
            (r.component, r.status, r.detail, r.error) for r in report.results
        ]
        assert report.layout == "hf-gpt2" and report.dtype == dtype  # the layout inferred from GPT2Config.model_type
        worst = max(r.ratio for r in report.results)
        assert 0 < worst < 1, worst  # errors are measured (not vacuous) and within budget


def test_an_instance_is_verified_in_its_own_dtype() -> None:
    default = layout("hf-gpt2").default
    config = GPT2Config(**{k: v for k, v in layout("hf-gpt2").write_config(default).items() if k != "model_type"})
    model = GPT2LMHeadModel(config).to(torch.bfloat16)
    report = verify_target(model, examples=3, generation_examples=1, components=("model", "generate"))
    assert report.dtype == "bfloat16" and report.exit_code == 0, [(r.component, r.status, r.detail) for r in report.results]


def test_an_instance_built_for_another_shape_is_refused() -> None:
    from spec.errors import ConfigError

    model = GPT2LMHeadModel(GPT2Config(vocab_size=61, n_positions=16, n_embd=8, n_layer=2, n_head=2))
    with pytest.raises(ConfigError, match="has shape"):
        verify_target(model)


def test_a_tiny_llama_passes_with_no_verify_code_of_its_own() -> None:
    report = verify_target("transformers:LlamaForCausalLM", model="tiny-llama", examples=2, generation_examples=1, max_len=8)
    assert report.layout == "hf-llama" and report.exit_code == 0, [(r.component, r.status, r.detail, r.error) for r in report.results]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    ("target", "layout_name"),
    [("transformers:LlamaForCausalLM", "hf-llama"), ("transformers:MistralForCausalLM", "hf-mistral"), ("transformers:Qwen2ForCausalLM", "hf-qwen2")],
)
def test_real_llama_family_models_pass_on_their_layouts_default(target: str, layout_name: str, dtype: str) -> None:
    """Each Llama-family class on its layout's default (grouped-query heads; Mistral with a window
    shorter than the sequence; Qwen2 with Q/K/V biases and a tied head), as it is, in float32 and
    bfloat16: padded batches, incremental decoding and generation pass."""
    report = verify_target(target, dtype=dtype, seed=3, examples=2, generation_examples=1)
    statuses = {r.key: r.status for r in report.results}
    assert report.layout == layout_name and statuses == {"model": "passed", "decode": "passed", "generate": "passed"}, [
        (r.component, r.status, r.detail, r.error) for r in report.results
    ]


def test_a_llama_norm_bug_is_localised_by_the_layout_module_table() -> None:
    def factory(config: dict[str, object]) -> LlamaForCausalLM:
        kwargs = {k: v for k, v in config.items() if k != "model_type"}
        model = LlamaForCausalLM(transformers.LlamaConfig(**kwargs))
        model.model.layers[1].post_attention_layernorm.variance_epsilon = 1e-1
        return model

    report = verify_target(factory, layout="hf-llama", model="tiny-llama", examples=2, components=("model",), shrink=False, max_len=8)
    loc = report.results[0].localisation
    assert report.exit_code == 1 and loc is not None and (loc["path"], loc["kind"]) == ("blocks.1.norm_2", "rms_norm"), loc


def test_empty_row_conventions_on_padded_positions() -> None:
    common = {"attn_implementation": "eager", "examples": 2, "components": ("model",), "shrink": False}
    zero = verify_target("transformers:GPT2LMHeadModel", empty_rows="zero", **common)
    result = zero.results[0]
    assert result.status == "failed" and "a padded position is not 0 (convention zero" in result.detail, result.detail
    assert zero.as_dict()["empty_rows"] == "zero"
    assert verify_target("transformers:GPT2LMHeadModel", empty_rows="ignore", **common).exit_code == 0


def test_a_checkpoints_config_and_weights(tmp_path: Path) -> None:
    """--model DIR verifies against the checkpoint's architecture; --weights also runs its θ."""
    config = GPT2Config(vocab_size=23, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    report = verify_target("transformers:GPT2LMHeadModel", model=str(tmp_path), weights=True, examples=2, components=("model", "weights"))
    assert {r.key: r.status for r in report.results} == {"model": "passed", "weights": "passed"}, report.results
    assert "n_vocab=23" in report.architecture
