"""GPT-NeoX (Pythia), Gemma and Gemma 2: presets with Hugging Face's parameter counts for the
published configs, and end to end against ``GPTNeoXForCausalLM``, ``GemmaForCausalLM`` and
``Gemma2ForCausalLM``: random models saved with ``save_pretrained`` and read through gptspec compute
the same logits and the same output of every module the layouts name, through the reference and
through fast/; export is the exact inverse of import and loads into Hugging Face; every config key
these classes write is in the layouts' tables.

**Hugging Face in float64**, as tests/test_llama.py: ``torch.float32`` / ``torch.float`` read as
float64 inside the modeling modules (the rotary frequencies, the softmax's dtype). Two casts are
not spelled through ``torch``'s attributes and are lifted by hand: Gemma's RMSNorm calls
``x.float()`` (:func:`_gemma_rms_norm_in_float64` is its forward with ``float`` read as ``double``),
and the embedding scale √hidden_size is a float32 buffer (set to the float64 value).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import contextlib
import copy
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
import transformers.modeling_rope_utils
import transformers.models.gemma.modeling_gemma as modeling_gemma
import transformers.models.gemma2.modeling_gemma2 as modeling_gemma2
import transformers.models.gpt_neox.modeling_gpt_neox as modeling_neox
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
)

import reference
from gptspec.checkpoint import Tensor, export_state_dict, import_state_dict, layout, load, load_architecture, native_config
from reference import forward
from spec import CheckpointError, build, count, preset
from spec.architectures.gemma import GemmaConfig as GemmaConfigSpec
from spec.theta import random_theta
from tests.hf_equal import assert_reference_and_fast_equal, hf_run, value_path

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

RTOL = 1e-9
MODELING = (modeling_neox, modeling_gemma, modeling_gemma2, transformers.modeling_rope_utils)
HF_CLASSES: dict[str, tuple[Any, Any]] = {
    "gpt_neox": (GPTNeoXConfig, GPTNeoXForCausalLM),
    "gemma": (GemmaConfig, GemmaForCausalLM),
    "gemma2": (Gemma2Config, Gemma2ForCausalLM),
}
LAYOUT = {"gpt_neox": "hf-neox", "gemma": "hf-gemma", "gemma2": "hf-gemma2"}

# -- the presets: Hugging Face's counts for the published configs --------------------------------

PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "pythia-160m": {
        "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu", "hidden_size": 768,
        "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
        "model_type": "gpt_neox", "num_attention_heads": 12, "num_hidden_layers": 12, "rotary_emb_base": 10000, "rotary_pct": 0.25,
        "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": True,
        "use_parallel_residual": True, "vocab_size": 50304,
    },
    "pythia-1.4b": {
        "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu", "hidden_size": 2048,
        "initializer_range": 0.02, "intermediate_size": 8192, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
        "model_type": "gpt_neox", "num_attention_heads": 16, "num_hidden_layers": 24, "rotary_emb_base": 10000, "rotary_pct": 0.25,
        "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": True,
        "use_parallel_residual": True, "vocab_size": 50304,
    },
    "gemma-2b": {
        "architectures": ["GemmaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 2, "eos_token_id": 1,
        "head_dim": 256, "hidden_act": "gelu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 16384,
        "max_position_embeddings": 8192, "model_type": "gemma", "num_attention_heads": 8, "num_hidden_layers": 18,
        "num_key_value_heads": 1, "pad_token_id": 0, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000.0,
        "torch_dtype": "bfloat16", "transformers_version": "4.38.0.dev0", "use_cache": True, "vocab_size": 256000,
    },
    "gemma-2-9b": {
        "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "attn_logit_softcapping": 50.0,
        "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
        "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 3584, "initializer_range": 0.02,
        "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 16,
        "num_hidden_layers": 42, "num_key_value_heads": 8, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0, "sliding_window": 4096, "sliding_window_size": 4096, "torch_dtype": "float32",
        "transformers_version": "4.42.0.dev0", "use_cache": True, "vocab_size": 256000,
    },
}
"""The config.json files of EleutherAI/pythia-160m, EleutherAI/pythia-1.4b, google/gemma-2b and
google/gemma-2-9b as published (keys and values)."""


@pytest.mark.parametrize("name", PUBLISHED_CONFIGS)
def test_presets_and_published_configs_count_what_hugging_face_counts(name: str, tmp_path: Path) -> None:
    raw = PUBLISHED_CONFIGS[name]
    config_class, model_class = HF_CLASSES[raw["model_type"]]
    with torch.device("meta"):  # sizes only: no memory for the weights
        hf = model_class(config_class(**{k: v for k, v in raw.items() if k != "model_type"}))
    want = hf.num_parameters()
    assert count(build(preset(name).config)) == want
    (tmp_path / "config.json").write_text(json.dumps(raw))
    from_file = load_architecture(tmp_path)
    assert count(from_file) == want
    assert from_file.config == preset(name).config, "the published config.json reads as the preset"


# -- Hugging Face in float64 -------------------------------------------------------------------


class _Float64Torch(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return torch.float64 if name in ("float32", "float") else getattr(torch, name)


def _gemma_rms_norm_in_float64(self: Any, x: torch.Tensor) -> torch.Tensor:
    """GemmaRMSNorm.forward with its ``float()`` casts read as ``double()``."""
    output = self._norm(x.double())
    output = output * (1.0 + self.weight.double())
    typed: torch.Tensor = output.type_as(x)
    return typed


@contextlib.contextmanager
def hf_in_float64() -> Iterator[None]:
    saved = [(module, module.torch) for module in MODELING]
    norms = [(cls, cls.forward) for cls in (modeling_gemma.GemmaRMSNorm, modeling_gemma2.Gemma2RMSNorm)]
    try:
        for module, _ in saved:
            module.torch = _Float64Torch()  # type: ignore[attr-defined]
        for cls, _ in norms:
            cls.forward = _gemma_rms_norm_in_float64  # type: ignore[method-assign]
        yield
    finally:
        for module, original in saved:
            module.torch = original  # type: ignore[attr-defined]
        for cls, original in norms:
            cls.forward = original  # type: ignore[method-assign]


T = 10
"""Tokens per test sequence (longer than the sliding windows below)."""

CASES: dict[str, dict[str, Any]] = {
    "neox-parallel-partial-rotary": {
        "model_type": "gpt_neox", "vocab_size": 37, "hidden_size": 24, "intermediate_size": 30, "num_hidden_layers": 2,
        "num_attention_heads": 3, "rotary_pct": 0.25, "_attn": "eager",
    },
    "neox-sequential-full-rotary-nobias-tied": {
        "model_type": "gpt_neox", "vocab_size": 29, "hidden_size": 16, "intermediate_size": 20, "num_hidden_layers": 2,
        "num_attention_heads": 2, "rotary_pct": 1.0, "use_parallel_residual": False, "attention_bias": False,
        "tie_word_embeddings": True, "hidden_act": "gelu_new", "rotary_emb_base": 500.0,
    },
    "gemma-mqa-head_dim": {
        "model_type": "gemma", "vocab_size": 31, "hidden_size": 24, "intermediate_size": 20, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
    },
    "gemma2-windows-softcaps-bf16": {
        "model_type": "gemma2", "vocab_size": 33, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "sliding_window": 3, "query_pre_attn_scalar": 12,
        "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0, "attention_bias": True, "_attn": "eager",
        "_dtype": torch.bfloat16,
    },
}
"""Parallel and sequential residuals, partial (¼) and full rotary, biases on and off, tied and
untied heads (NeoX); multi-query and grouped queries, head_dim ≠ d/h, Gemma 2's alternating
windows shorter than the sequence, a query_pre_attn_scalar ≠ head_dim, caps small enough to bend
the scores and logits, weights stored in float32 and bfloat16."""


def hf_model(case: str) -> Any:
    options = CASES[case]
    settings = {k: v for k, v in options.items() if not k.startswith("_") and k != "model_type"}
    config_class, model_class = HF_CLASSES[options["model_type"]]
    config = config_class(max_position_embeddings=64, **settings)
    config._attn_implementation = options.get("_attn", "sdpa")
    torch.manual_seed(len(case))
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name and options["model_type"] != "gpt_neox" and name.endswith("weight"):
                torch.nn.init.normal_(parameter, mean=0.0, std=0.3)  # Gemma stores γ of a gain 1 + γ
            elif "norm" in name and name.endswith("weight"):
                torch.nn.init.normal_(parameter, mean=1.0, std=0.3)
            elif parameter.dim() == 1:
                torch.nn.init.normal_(parameter, mean=0.0, std=0.3)
            else:
                torch.nn.init.normal_(parameter, mean=0.0, std=1.0 / parameter.shape[1] ** 0.5)
    return model.eval()


def saved(case: str, directory: Path, **save: Any) -> Any:
    """The case's model saved in its storage dtype, returned in float64 holding exactly the stored
    values (and the exact embedding scale)."""
    dtype = CASES[case].get("_dtype", torch.float32)
    with hf_in_float64():
        model = hf_model(case)
    copy.deepcopy(model).to(dtype).save_pretrained(directory, **save)
    model.double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.to(dtype).double())
        embed = model.get_input_embeddings()
        if hasattr(embed, "embed_scale"):
            embed.embed_scale.fill_(model.config.hidden_size ** 0.5)  # the float32 buffer, lifted to float64
    return model


def sequence(seed: int, n_vocab: int) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(0, n_vocab, size=T)]


@pytest.mark.parametrize("case", CASES)
def test_logits_and_every_module_match_hugging_face_through_reference_and_fast(tmp_path: Path, case: str) -> None:
    model = saved(case, tmp_path)
    arch, theta = load(tmp_path)
    lay = layout(LAYOUT[CASES[case]["model_type"]])
    ids = sequence(len(case), arch.dim("n_vocab"))
    with hf_in_float64():
        theirs = hf_run(model, ids, lay.module_paths(arch.config))
    assert_reference_and_fast_equal(arch, theta, ids, theirs, len(lay.module_paths(arch.config)), RTOL, case)


def test_sharded_checkpoint(tmp_path: Path) -> None:
    case = "neox-parallel-partial-rotary"
    model = saved(case, tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file(), "expected save_pretrained to shard"
    arch, theta = load(tmp_path)
    ids = sequence(1, arch.dim("n_vocab"))
    with hf_in_float64():
        want = hf_run(model, ids, {})["logits"]
    assert np.max(np.abs(forward(arch, theta, ids) - want)) <= RTOL * np.max(np.abs(want))


# -- export ----------------------------------------------------------------------------------

EXPORTS = {
    "hf-neox": "gpt-neox: parallel residual, rotary on 2 of 4 features",
    "hf-gemma": "gemma: gemma: multi-query, d_head 4 of d_model 6",
    "hf-gemma2": "gemma: gemma 2: sliding then full, sandwich norms, capped scores and logits",
}


@pytest.mark.parametrize("name", EXPORTS)
def test_export_round_trips_bit_exactly_and_loads_into_hugging_face(name: str) -> None:
    from spec.architectures.registry import instances

    arch = build(instances()[EXPORTS[name]])
    theta = random_theta(arch, seed=3, std=0.5)
    state = export_state_dict(arch, theta, name)
    again_arch, again = import_state_dict(arch.config, state, name)
    assert list(again) == list(theta) and all(np.array_equal(again[k], theta[k]) for k in theta), "import(export(θ)) ≠ θ"
    native = native_config(arch, name)
    lay = layout(name)
    assert lay.read_config({**{k: r.default for k, r in lay.config_keys.items() if r.role == "model"}, **native}, "round trip") == arch.config
    config_class, model_class = HF_CLASSES[str(native["model_type"])]
    with hf_in_float64():
        hf = model_class(config_class(**{k: v for k, v in native.items() if k != "model_type"})).double().eval()
        hf.config._attn_implementation = "eager"
        embed = hf.get_input_embeddings()
        if hasattr(embed, "embed_scale"):
            embed.embed_scale.fill_(hf.config.hidden_size ** 0.5)
        missing, unexpected = hf.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        assert not unexpected and all(k == "lm_head.weight" for k in missing), f"{unexpected}, {missing}"
        ids = sequence(5, arch.dim("n_vocab"))[: arch.dim("n_ctx")]
        want = hf_run(hf, ids, {})["logits"]
    got = forward(arch, theta, ids)
    assert np.max(np.abs(got - want)) <= RTOL * np.max(np.abs(want)), f"HF with the exported weights differs [{name}]"


def test_layouts_name_their_modules_and_cover_theta() -> None:
    from spec.architectures.registry import instances

    for name, instance in EXPORTS.items():
        lay, config = layout(name), instances()[instance]
        arch = build(config)
        for _, path in lay.module_paths(config).items():
            value_path(arch, path)
        filled = {n.format(i=i) for _, rule, i in lay.rules(config) if isinstance(rule, Tensor) for n in rule.theta}
        assert filled == set(arch.theta), f"{name}: Θ entries {set(arch.theta) ^ filled} are not in the table"


# -- the config tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", HF_CLASSES)
def test_every_key_transformers_writes_is_in_the_table(model_type: str, tmp_path: Path) -> None:
    config_class, model_class = HF_CLASSES[model_type]
    table = layout(LAYOUT[model_type]).config_keys
    written = set(config_class().to_dict())
    small = {"vocab_size": 8, "hidden_size": 8, "intermediate_size": 4, "num_hidden_layers": 2, "num_attention_heads": 2}
    if model_type != "gpt_neox":
        small |= {"num_key_value_heads": 1, "head_dim": 4}
    model_class(config_class(**small)).save_pretrained(tmp_path)
    written |= set(json.loads((tmp_path / "config.json").read_text()))
    missing = sorted(written - set(table))
    assert not missing, f"config keys {missing} are not in the {LAYOUT[model_type]} table"
    assert all(rule.reason for rule in table.values())


@pytest.mark.parametrize(
    ("case", "changes", "says"),
    [
        ("neox-parallel-partial-rotary", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "rope_type='linear'"),
        ("neox-parallel-partial-rotary", {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}}, "dynamic NTK"),
        ("neox-parallel-partial-rotary", {"hidden_act": "gelu_fast"}, "hidden_act='gelu_fast'"),
        ("neox-parallel-partial-rotary", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.2}},
         "an even number"),
        ("gemma-mqa-head_dim", {"use_bidirectional_attention": True}, "bidirectional"),
        ("gemma-mqa-head_dim", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "unscaled rotary"),
        ("gemma2-windows-softcaps-bf16", {"layer_types": ["full_attention"]}, "a list of 3 entries"),
        ("gemma2-windows-softcaps-bf16", {"some_new_option": 1}, "some_new_option"),
    ],
)
def test_config_options_that_are_not_modelled_are_refused_by_name(tmp_path: Path, case: str, changes: dict[str, Any], says: str) -> None:
    saved(case, tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError) as error:
        load(tmp_path)
    assert says in str(error.value), f"message {error.value} does not say {says!r}"


def test_gemma_legacy_gelu_is_read_as_transformers_reads_it(tmp_path: Path) -> None:
    """Gemma 1's published configs say hidden_act="gelu"; GemmaConfig reads it as the tanh GELU."""
    saved("gemma-mqa-head_dim", tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["hidden_act"] = "gelu"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    arch, _ = load(tmp_path)
    assert arch.config.activation == "gelu_tanh"
    assert GemmaConfig.from_pretrained(tmp_path).hidden_act == "gelu_pytorch_tanh"


def test_gemma_2_alternates_local_and_global_layers_local_first() -> None:
    config = preset("gemma-2-9b").config
    assert isinstance(config, GemmaConfigSpec)
    kinds = [config.mask(i) for i in range(2)]
    assert [type(k).__name__ for k in kinds] == ["Banded", "Causal"]


# -- verify: the classes as they are pass, with no false positive ---------------------------------


@pytest.mark.parametrize(
    ("target", "layout_name", "dtype"),
    [("transformers:GPTNeoXForCausalLM", "hf-neox", "float32"), ("transformers:GemmaForCausalLM", "hf-gemma", "bfloat16"),
     ("transformers:Gemma2ForCausalLM", "hf-gemma2", "bfloat16")],
)
def test_the_hugging_face_classes_pass_gptspec_verify(target: str, layout_name: str, dtype: str) -> None:
    """Each class on its layout's default (NeoX: partial rotary, parallel residual; Gemma:
    grouped queries; Gemma 2: a window shorter than the sequence, both soft caps), as it is:
    padded batches, incremental decoding and generation pass (the other dtype of each is in the
    report's measurements: every class passes in float32 and bfloat16)."""
    from gptspec.verify import verify_target

    report = verify_target(target, dtype=dtype, seed=1, examples=2, generation_examples=1)
    statuses = {r.key: r.status for r in report.results}
    assert report.layout == layout_name and statuses == {"model": "passed", "decode": "passed", "generate": "passed"}, [
        (r.component, r.status, r.detail, r.error) for r in report.results
    ]
    assert 0 < max(r.ratio for r in report.results) < 1


def test_the_exact_gelu_of_pythia_in_float32_is_within_one_rounding_of_the_reference() -> None:
    """fast/'s GELU (erf) below float64 computes erfc from a fitted polynomial (fast/kernels/activations.py;
    math.erfc per element made it the slowest op of a Pythia forward): every entry from −40 to 40,
    tails included, is the reference's value rounded once to float32 (to 1 ulp)."""
    from fast import run_op
    from spec.ops import GeluErf

    x = np.concatenate([np.linspace(-40, 40, 4001), np.random.default_rng(0).normal(size=2000) * 3]).astype(np.float32)[None]
    want = reference.run_op(GeluErf(x.shape[1]), {"x": x.astype(np.float64)}, {})
    got = run_op(GeluErf(x.shape[1]), {"x": x}, {}, "float32").astype(np.float64)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - want) <= ulp), float(np.max(np.abs(got - want) / ulp))
