"""The Llama family: the builder and its refusals, parameter counts equal to the published totals,
and end to end against Hugging Face's ``LlamaForCausalLM``, ``MistralForCausalLM`` and
``Qwen2ForCausalLM``: random models saved with ``save_pretrained`` and loaded through gptspec
compute the same logits and the same output of every module the layouts name (``modules``),
layer by layer, as ``reference`` does; export is the exact inverse of import; every config key
these classes write is in the layouts' tables.

**Hugging Face in float64.** LlamaRMSNorm converts its input to float32 before normalising, and
the rotary embedding computes its inverse frequencies and angles in float32 (``dtype=torch.float``),
whatever the model's dtype — in a float64 model too. So a float64 Hugging Face model is not a
float64 computation: those casts alone put its logits ≈1e-7 away from the exact values. For the
1e-9 comparison (max|ours − hf| ≤ 1e-9 · max|hf| per compared tensor) Hugging Face runs with
``torch.float32`` and ``torch.float`` read as float64 inside its modeling modules
(:func:`hf_in_float64`): the same code, every line unchanged, computing in float64. One test
runs it unchanged and shows the casts are all that separates the two (its error is float32's).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

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
import transformers.models.llama.modeling_llama
import transformers.models.mistral.modeling_mistral
import transformers.models.qwen2.modeling_qwen2
from transformers import (
    LlamaConfig as HFLlamaConfig,
)
from transformers import (
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from gptspec.checkpoint import Tensor, export_state_dict, import_state_dict, layout, load, native_config
from gptspec.checkpoint.hf_llama import LLAMA_LAYOUTS
from reference import evaluate, forward
from spec import CheckpointError, ConfigError, build, count, preset
from spec.architectures import LlamaConfig, build_llama
from spec.masks import Banded, Causal
from spec.theta import random_theta
from tests.hf_equal import hf_run, relative_errors, value_path

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

RTOL = 1e-9

# -- the builder and the counts --------------------------------------------------------------

PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-3-8b": 8_030_261_248,
    "llama-3.1-8b": 8_030_261_248,
    "mistral-7b": 7_241_732_096,
    "qwen2-0.5b": 494_032_768,
}
"""The totals the model cards and papers publish (Llama 2: Touvron et al. 2023; Llama 3 and 3.1:
Meta 2024; Mistral 7B: Jiang et al. 2023; Qwen2-0.5B: the Qwen2 report), to the parameter."""


@pytest.mark.parametrize("name", PUBLISHED)
def test_preset_counts_equal_the_published_totals(name: str) -> None:
    got = count(build(preset(name).config))
    assert got == PUBLISHED[name], f"count({name})={got:,}, but expected {PUBLISHED[name]:,} [published total]"


def closed_form(c: LlamaConfig) -> int:
    """The count written out independently of Θ: per layer Q and O (d·H·d_head each), K and V
    (d·KV·d_head each), three d × d_mlp matrices, two gains, and the optional biases."""
    d, H, KV, dh, m = c.d_model, c.n_heads, c.kv_heads, c.head_width, c.d_mlp
    layer = 2 * d * H * dh + 2 * d * KV * dh + 3 * d * m + 2 * d
    layer += (H * dh + 2 * KV * dh) * c.qkv_bias + d * c.out_bias + (2 * m + d) * c.mlp_bias
    return c.n_layers * layer + c.n_vocab * d * (1 if c.tied else 2) + d


@pytest.mark.parametrize(
    "options",
    [{}, {"n_kv_heads": 1}, {"n_kv_heads": 2, "d_head": 6, "qkv_bias": True}, {"tied": True, "out_bias": True, "mlp_bias": True}],
)
def test_count_matches_a_closed_form(options: dict[str, Any]) -> None:
    config = LlamaConfig(n_vocab=11, n_ctx=8, d_model=16, n_layers=3, n_heads=4, d_mlp=7, **options)
    assert count(build_llama(config)) == closed_form(config)


def test_tiny_llama_builds_and_is_grouped_query_with_rotary() -> None:
    arch = build(preset("tiny-llama").config)
    assert arch.theta_shapes()["blocks.0.attn.W_Q"] == (4, 16, 4) and arch.theta_shapes()["blocks.0.attn.W_K"] == (2, 16, 4)
    heads = {path: node for path, node, _ in arch.primitives() if path.startswith("blocks.0.attn.head_")}
    kv_slices = [heads[f"blocks.0.attn.head_{h}.K"].params["W"].index for h in range(4)]
    assert kv_slices == [(0,), (0,), (1,), (1,)], f"query head h reads key/value head h // 2, got {kv_slices}"
    kinds = [heads[f"blocks.0.attn.head_0.{n}"].op.kind for n in ("rotary_Q", "rotary_K")]
    assert kinds == ["rotary", "rotary"]
    assert "W_P" not in arch.theta, "no positional table"


def test_layer_masks_follow_the_attention_pattern() -> None:
    config = LlamaConfig(n_vocab=5, n_ctx=8, d_model=8, n_layers=3, n_heads=2, d_mlp=4, attention=("sliding", "full"), sliding_window=3)
    arch = build_llama(config)
    masks = {path: node.op.mask for path, node, _ in arch.primitives() if path.endswith("head_0.softmax")}  # type: ignore[attr-defined]
    assert masks == {"blocks.0.attn.head_0.softmax": Banded(3), "blocks.1.attn.head_0.softmax": Causal(), "blocks.2.attn.head_0.softmax": Banded(3)}


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"n_kv_heads": 3}, "n_kv_heads=3, but expected a divisor of n_heads=4"),
        ({"d_head": 5}, "d_head=5, but expected an even width"),
        ({"d_model": 10}, "d_model=10 is not divisible by n_heads=4"),
        ({"attention": ("sliding",)}, "sliding_window=None"),
        ({"rope_scaling": "yarn"}, "YaRN"),
        ({"rope_scaling": "dynamic"}, "dynamic NTK"),
        ({"rope_scaling": "llama3", "rope_low_freq_factor": 4.0, "rope_high_freq_factor": 1.0}, "high_freq_factor=1.0"),
        ({"rope_base": 0.0}, "rope_base=0.0"),
        ({"activation": "gelu_fast"}, "activation='gelu_fast'"),
        ({"rope_pairing": "adjacent"}, "rope_pairing='adjacent'"),
    ],
)
def test_configs_the_family_does_not_define_are_refused_by_name(options: dict[str, Any], says: str) -> None:
    base: dict[str, Any] = {"n_vocab": 5, "n_ctx": 8, "d_model": 16, "n_layers": 1, "n_heads": 4, "d_mlp": 4}
    with pytest.raises(ConfigError, match=None) as error:
        LlamaConfig(**(base | options))
    assert says in str(error.value), f"message {error.value} does not say {says!r}"


# -- Hugging Face in float64 ------------------------------------------------------------------

MODELING = (
    transformers.models.llama.modeling_llama,
    transformers.models.mistral.modeling_mistral,
    transformers.models.qwen2.modeling_qwen2,
    transformers.modeling_rope_utils,
)


class _Float64Torch(types.ModuleType):
    """``torch`` as the modeling modules see it, with float32 (and its alias float) read as float64."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return torch.float64 if name in ("float32", "float") else getattr(torch, name)


@contextlib.contextmanager
def hf_in_float64() -> Iterator[None]:
    """Hugging Face's Llama, Mistral and Qwen2 code with its float32 casts computing in float64
    (RMSNorm's upcast, the inverse frequencies, the angles): needed while a model is built (the
    frequencies are computed then) and while it runs."""
    saved = [(module, module.torch) for module in MODELING]
    try:
        for module, _ in saved:
            module.torch = _Float64Torch()  # type: ignore[attr-defined]
        yield
    finally:
        for module, original in saved:
            module.torch = original  # type: ignore[attr-defined]


HF_CLASSES: dict[str, tuple[Any, Any]] = {
    "llama": (HFLlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
}

T = 12
"""Tokens per test sequence (longer than every sliding window below)."""

CASES: dict[str, dict[str, Any]] = {
    "llama-mha-untied-eps": {
        "model_type": "llama", "vocab_size": 37, "hidden_size": 24, "intermediate_size": 37, "num_hidden_layers": 2,
        "num_attention_heads": 4, "rms_norm_eps": 1e-5,
    },
    "llama-gqa2-head_dim-tied-biases-llama3-bf16": {
        "model_type": "llama", "vocab_size": 31, "hidden_size": 24, "intermediate_size": 20, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "tie_word_embeddings": True,
        "attention_bias": True, "mlp_bias": True, "max_position_embeddings": 2048,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 32.0, "original_max_position_embeddings": 1024},
        "_dtype": torch.bfloat16,
    },
    "llama-gqa4-linear-theta": {
        "model_type": "llama", "vocab_size": 29, "hidden_size": 32, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 8, "num_key_value_heads": 2, "rope_parameters": {"rope_type": "linear", "factor": 3.0, "rope_theta": 500000.0},
    },
    "llama-mqa-odd-width-gelu": {
        "model_type": "llama", "vocab_size": 23, "hidden_size": 21, "intermediate_size": 13, "num_hidden_layers": 1,
        "num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 8, "hidden_act": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-2, "_attn": "eager",
    },
    "mistral-window-mqa": {
        "model_type": "mistral", "vocab_size": 33, "hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "sliding_window": 5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
    "mistral-no-window-gqa2-f16": {
        "model_type": "mistral", "vocab_size": 30, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": None, "_dtype": torch.float16,
    },
    "qwen2-layer-windows-tied": {
        "model_type": "qwen2", "vocab_size": 41, "hidden_size": 24, "intermediate_size": 30, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True, "use_sliding_window": True,
        "sliding_window": 4, "max_window_layers": 1,
    },
    "qwen2-head_dim-mha": {
        "model_type": "qwen2", "vocab_size": 27, "hidden_size": 24, "intermediate_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 8, "_attn": "eager",
    },
}
"""Odd sizes, GQA ratios 1, 2, 4 and multi-query, head_dim ≠ d/h, tied and untied, ε, rope θ,
linear and llama3 scalings (llama3's thresholds put its frequencies in all three bands), a
Mistral window and Qwen2 per-layer windows shorter than the sequence, biases on every
projection (Llama) and on Q, K, V only (Qwen2), eager and sdpa attention, weights stored in
float32, bfloat16 and float16."""


def hf_model(case: str, seed: int | None = None) -> Any:
    """The case's Hugging Face model (float32, eval mode) with every parameter random: gains
    around 1, biases and weights around 0 — never the initialisation's ones and zeros, which
    would hide a dropped bias or gain. Built under :func:`hf_in_float64` unless asked not to."""
    options = CASES[case]
    settings = {k: v for k, v in options.items() if not k.startswith("_") and k != "model_type"}
    config_class, model_class = HF_CLASSES[options["model_type"]]
    config = config_class(max_position_embeddings=settings.pop("max_position_embeddings", 64), **settings)
    config._attn_implementation = options.get("_attn", "sdpa")
    torch.manual_seed(len(case) if seed is None else seed)
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                torch.nn.init.normal_(parameter, mean=1.0, std=0.3)
            elif parameter.dim() == 1:
                torch.nn.init.normal_(parameter, mean=0.0, std=0.3)
            else:
                torch.nn.init.normal_(parameter, mean=0.0, std=1.0 / parameter.shape[1] ** 0.5)
    return model.eval()


def sequence(seed: int, n_vocab: int) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(0, n_vocab, size=T)]


def saved(case: str, directory: Path, **save: Any) -> Any:
    """The case's model (built under hf_in_float64), saved in its storage dtype and returned in
    float64 holding exactly the stored values. Only the parameters are rounded: the rotary
    embedding's inverse frequencies (a buffer, computed in float64 at build) stay exact — casting
    the whole model to float32 and back would round them, and that alone moves the logits by
    ≈1e-8 (bfloat16: 1e-5)."""
    dtype = CASES[case].get("_dtype", torch.float32)
    with hf_in_float64():
        model = hf_model(case)
    copy.deepcopy(model).to(dtype).save_pretrained(directory, **save)
    model.double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.to(dtype).double())  # the stored values, widened exactly
    return model


@pytest.mark.parametrize("case", CASES)
def test_logits_and_every_module_match_hugging_face(tmp_path: Path, case: str) -> None:
    model = saved(case, tmp_path)
    arch, theta = load(tmp_path)
    lay = layout(f"hf-{CASES[case]['model_type']}")
    ids = sequence(len(case), arch.dim("n_vocab"))
    with hf_in_float64():
        theirs = hf_run(model, ids, lay.module_paths(arch.config))
    ours = evaluate(arch, theta, {"ids": ids})
    errors = relative_errors(arch, ours, theirs)
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= RTOL, f"max|ours − hf| / max|hf| at {worst}={errors[worst]:.3g}, but expected ≤ {RTOL} [{case}]; all: {errors}"
    assert len(errors) == len(lay.module_paths(arch.config)) + 1, "every module the layout names was compared"
    assert np.max(np.abs(theirs["logits"])) > 1.0, f"logits too small to be a meaningful test [{case}]"


def test_the_window_and_the_scaling_matter(tmp_path: Path) -> None:
    """The comparisons above can fail: the same checkpoint read without its window, or without
    its llama3 scaling, gives other logits."""
    for case, change in (("mistral-window-mqa", {"attention": ("full",), "sliding_window": None}),
                         ("llama-gqa2-head_dim-tied-biases-llama3-bf16", {"rope_scaling": "none"})):
        directory = tmp_path / case
        model = saved(case, directory)
        arch, theta = load(directory)
        ids = sequence(len(case), arch.dim("n_vocab"))
        with hf_in_float64():
            want = hf_run(model, ids, {})["logits"]
        wrong = forward(build(arch.config.replace(**change)), theta, ids)
        assert np.max(np.abs(wrong - want)) > 1e-3 * np.max(np.abs(want)), f"{change} does not change the logits [{case}]"


def test_hugging_face_unchanged_differs_by_its_float32_casts_only(tmp_path: Path) -> None:
    """Run as shipped (RMSNorm and the rotary angles in float32), a float64 Hugging Face model is
    within float32's reach of ours and no closer: the casts are what the 1e-9 tests remove."""
    case = "llama-gqa4-linear-theta"
    model = saved(case, tmp_path)
    arch, theta = load(tmp_path)
    ids = sequence(len(case), arch.dim("n_vocab"))
    plain = hf_model(case)  # built without the patch: float32 frequencies
    plain.load_state_dict(model.state_dict())
    plain.double()
    theirs = hf_run(plain, ids, {})["logits"]
    error = float(np.max(np.abs(forward(arch, theta, ids) - theirs)) / np.max(np.abs(theirs)))
    assert 1e-9 < error < 1e-4, f"relative error of unpatched HF={error:.3g}, but expected float32's order (1e-9, 1e-4)"


def test_sharded_checkpoint(tmp_path: Path) -> None:
    case = "llama-gqa4-linear-theta"
    model = saved(case, tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file(), "expected save_pretrained to shard"
    arch, theta = load(tmp_path)
    ids = sequence(1, arch.dim("n_vocab"))
    with hf_in_float64():
        theirs = hf_run(model, ids, {})
    assert relative_errors(arch, {"logits": forward(arch, theta, ids)}, theirs)["logits"] <= RTOL


def test_gptspec_forward_on_a_directory_equals_hugging_face(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gptspec.cli import main

    case = "qwen2-layer-windows-tied"
    model = saved(case, tmp_path / "ckpt")
    ids = sequence(3, CASES[case]["vocab_size"])
    code = main(["forward", str(tmp_path / "ckpt"), "--tokens", " ".join(map(str, ids)), "--out", str(tmp_path / "logits.npy")])
    capsys.readouterr()
    assert code == 0
    with hf_in_float64():
        want = hf_run(model, ids, {})["logits"]
    got = np.load(tmp_path / "logits.npy")
    assert np.max(np.abs(got - want)) <= RTOL * np.max(np.abs(want))


# -- export: the same tables, the other way ---------------------------------------------------

EXPORTS: dict[str, LlamaConfig] = {
    "hf-llama": LlamaConfig(n_vocab=19, n_ctx=16, d_model=12, n_layers=2, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=10,
                            qkv_bias=True, out_bias=True, mlp_bias=True, rope_scaling="llama3", rope_factor=4.0,
                            rope_original_n_ctx=8, eps=1e-5),
    "hf-mistral": LlamaConfig(n_vocab=19, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=1, d_mlp=10,
                              attention=("sliding",), sliding_window=3, tied=True),
    "hf-qwen2": LlamaConfig(n_vocab=19, n_ctx=16, d_model=12, n_layers=3, n_heads=2, d_head=8, d_mlp=10, qkv_bias=True,
                            attention=("full", "sliding", "sliding"), sliding_window=2, rope_base=1e6,
                            rope_scaling="linear", rope_factor=2.0),
}


@pytest.mark.parametrize("name", EXPORTS)
def test_export_round_trips_bit_exactly_and_loads_into_hugging_face(name: str, tmp_path: Path) -> None:
    arch = build_llama(EXPORTS[name])
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
        missing, unexpected = hf.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        assert not unexpected and all(k == "lm_head.weight" for k in missing), f"names HF does not know: {unexpected}, {missing}"
        ids = sequence(5, arch.dim("n_vocab"))
        want = hf_run(hf, ids, {})["logits"]
    got = forward(arch, theta, ids)
    assert np.max(np.abs(got - want)) <= RTOL * np.max(np.abs(want)), f"HF with the exported weights differs [{name}]"


@pytest.mark.parametrize(
    ("name", "change", "says"),
    [
        ("hf-llama", {"attention": ("sliding",), "sliding_window": 2}, "sliding layers"),
        ("hf-llama", {"rope_pairing": "interleaved"}, "rope_pairing='interleaved'"),
        ("hf-llama", {"out_bias": False}, "attention_bias switches"),
        ("hf-mistral", {"attention": ("sliding", "full")}, "every Mistral layer has the same mask"),
        ("hf-mistral", {"mlp_bias": True}, "no bias"),
        ("hf-qwen2", {"qkv_bias": False}, "Qwen2 has biases on q_proj"),
    ],
)
def test_export_refuses_what_the_class_cannot_express(name: str, change: dict[str, Any], says: str) -> None:
    arch = build_llama(EXPORTS[name].replace(**change))
    with pytest.raises(CheckpointError) as error:
        export_state_dict(arch, random_theta(arch, seed=0), name)
    assert says in str(error.value)


# -- the config tables ------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", HF_CLASSES)
def test_every_key_transformers_writes_is_in_the_table(model_type: str, tmp_path: Path) -> None:
    """Every key of the config class's to_dict() (this transformers version's full list) and of a
    saved config.json is modelled, ignored or refused with a reason."""
    config_class, model_class = HF_CLASSES[model_type]
    table = layout(f"hf-{model_type}").config_keys
    written = set(config_class().to_dict())
    model_class(config_class(vocab_size=8, hidden_size=8, intermediate_size=4, num_hidden_layers=1, num_attention_heads=2,
                             num_key_value_heads=2)).save_pretrained(tmp_path)
    written |= set(json.loads((tmp_path / "config.json").read_text()))
    missing = sorted(written - set(table))
    assert not missing, f"config keys {missing} are not in the hf-{model_type} table"
    assert all(rule.reason for rule in table.values())


DELETE = object()
"""A change that deletes the key (None writes null)."""


def write_config(directory: Path, model_type: str, **changes: Any) -> None:
    """A small checkpoint of ``model_type`` whose config.json is then edited by ``changes``
    (:data:`DELETE` deletes the key; ``_kv`` sets the saved model's key/value heads, default 1)."""
    config_class, model_class = HF_CLASSES[model_type]
    kv = changes.pop("_kv", 1)
    model_class(config_class(vocab_size=8, hidden_size=8, intermediate_size=4, num_hidden_layers=2, num_attention_heads=2,
                             num_key_value_heads=kv)).save_pretrained(directory)
    raw = json.loads((directory / "config.json").read_text())
    for key, value in changes.items():
        if value is DELETE:
            raw.pop(key, None)
        else:
            raw[key] = value
    (directory / "config.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("model_type", "changes", "says"),
    [
        ("llama", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4, "original_max_position_embeddings": 8}}, "YaRN"),
        ("llama", {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}}, "dynamic NTK"),
        ("mistral", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}}, "LongRoPE"),
        ("llama", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "attention_factor": 2.0, "rope_theta": 1e4}}, "attention_factor"),
        ("llama", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}}, "partial_rotary_factor"),
        ("llama", {"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
        ("llama", {"rope_scaling": {"type": "linear", "factor": 2.0}}, "keep one of the two"),
        ("llama", {"rope_theta": 5.0}, "rope_theta=10000.0 as rope_parameters says"),
        ("llama", {"hidden_act": "gelu_fast"}, "hidden_act='gelu_fast'"),
        ("llama", {"qk_layernorm": True}, "qk_layernorm"),
        ("llama", {"num_key_value_heads": 3, "num_attention_heads": 4, "hidden_size": 8}, "a divisor of num_attention_heads=4"),
        ("qwen2", {"use_sliding_window": False, "layer_types": ["full_attention", "sliding_attention"]}, "no sliding_attention layer"),
        ("qwen2", {"layer_types": ["full_attention"]}, "a list of 2 entries"),
        ("mistral", {"is_encoder_decoder": True}, "is_encoder_decoder"),
        ("mistral", {"num_key_value_heads": None}, "MistralConfig refuses null"),
        ("llama", {"is_llama_config": True, "rope_interleaved": True}, "interleaved pairing the Hugging Face model does not apply"),
    ],
)
def test_config_options_that_are_not_modelled_are_refused_by_name(tmp_path: Path, model_type: str, changes: dict[str, Any], says: str) -> None:
    write_config(tmp_path, model_type, **changes)
    with pytest.raises(CheckpointError) as error:
        load(tmp_path)
    assert says in str(error.value), f"message {error.value} does not say {says!r}"


@pytest.mark.parametrize(
    ("model_type", "changes", "want"),
    [
        ("llama", {"rope_parameters": DELETE, "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}},
         {"rope_base": 500000.0, "rope_scaling": "linear", "rope_factor": 2.0}),
        ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0}, "max_position_embeddings": 64},
         {"rope_scaling": "llama3", "rope_original_n_ctx": 64}),
        ("mistral", {"sliding_window": None}, {"attention": ("full",), "sliding_window": None}),
        ("mistral", {"sliding_window": 3}, {"attention": ("sliding",), "sliding_window": 3}),
        ("llama", {"num_key_value_heads": None, "_kv": 2}, {"n_kv_heads": None}),
        ("mistral", {"sliding_window": DELETE}, {"attention": ("sliding",), "sliding_window": 4096}),
        ("qwen2", {"layer_types": DELETE, "use_sliding_window": True, "sliding_window": 3, "max_window_layers": 1},
         {"attention": ("full", "sliding"), "sliding_window": 3}),
        ("qwen2", {"layer_types": DELETE, "use_sliding_window": False, "sliding_window": 3, "max_window_layers": 1},
         {"attention": ("full",), "sliding_window": None}),

        ("llama", {"is_llama_config": True, "rope_interleaved": False}, {"rope_pairing": "half"}),  # nanotron exports (SmolLM2)
    ],
)
def test_config_spellings_are_read_as_transformers_reads_them(tmp_path: Path, model_type: str, changes: dict[str, Any], want: dict[str, Any]) -> None:
    """Older spellings (rope_theta + rope_scaling), defaults filled as the config classes fill
    them, Qwen2's layer types derived from max_window_layers — each checked against what
    transformers itself makes of the same config.json."""
    write_config(tmp_path, model_type, **changes)
    arch, _ = load(tmp_path)
    got = {key: getattr(arch.config, key) for key in want}
    assert got == want
    hf = HF_CLASSES[model_type][0].from_pretrained(tmp_path)
    if model_type == "qwen2":
        assert [k.split("_")[0] for k in hf.layer_types] == [arch.config.layer_kind(i) for i in range(2)]
    if model_type == "mistral":
        assert hf.sliding_window == arch.config.sliding_window and hf.num_key_value_heads == arch.config.kv_heads
    if "rope_scaling" in want:
        params = hf.rope_parameters
        assert params["rope_type"] == want["rope_scaling"] and params["rope_theta"] == arch.config.rope_base


def test_layouts_name_their_modules_and_cover_theta() -> None:
    for lay in LLAMA_LAYOUTS:
        config = EXPORTS[lay.name]
        arch = build_llama(config)
        for module, path in lay.module_paths(config).items():
            value_path(arch, path)  # every DAG path exists
            assert module.startswith(("model.", "lm_head"))
        filled = {name.format(i=i) for _, rule, i in lay.rules(config) if isinstance(rule, Tensor) for name in rule.theta}
        assert filled == set(arch.theta), f"{lay.name}: Θ entries {set(arch.theta) ^ filled} are not in the table"


def test_theta_file_round_trips_a_llama_model(tmp_path: Path) -> None:
    """The θ file stores the family and config: a Llama model comes back as itself."""
    from gptspec.checkpoint import load_theta, save_theta

    arch = build_llama(EXPORTS["hf-qwen2"])
    theta = random_theta(arch, seed=4)
    save_theta(tmp_path / "theta.safetensors", arch, theta)
    again_arch, again = load_theta(tmp_path / "theta.safetensors")
    assert again_arch.config == arch.config and all(np.array_equal(again[k], theta[k]) for k in theta)


@pytest.mark.parametrize(("base", "says"), [(None, None), (20000.0, "differs from rope_theta")])
def test_stored_rotary_frequencies_of_old_checkpoints(tmp_path: Path, base: float | None, says: str | None) -> None:
    """transformers before 4.31 saved ``rotary_emb.inv_freq`` with the weights: accepted when it
    agrees with config.json (the logits are unchanged), refused by name when it does not."""
    from gptspec import safetensors_io

    write_config(tmp_path, "llama")
    config = json.loads((tmp_path / "config.json").read_text())
    d = config["hidden_size"] // config["num_attention_heads"]
    theta_base = base or config.get("rope_theta") or config["rope_parameters"]["rope_theta"]
    inv_freq = (1.0 / theta_base ** (np.arange(0, d, 2) / d)).astype(np.float32)
    _, clean = load(tmp_path)
    state = safetensors_io.read(tmp_path / "model.safetensors")
    state |= {f"model.layers.{i}.self_attn.rotary_emb.inv_freq": inv_freq for i in range(config["num_hidden_layers"])}
    safetensors_io.write(tmp_path / "model.safetensors", state)
    if says is None:
        for lazy in (False, True):
            _, theta = load(tmp_path, lazy=lazy)
            assert set(theta) == set(clean) and all(np.array_equal(theta[k], clean[k]) for k in clean)
    else:
        with pytest.raises(CheckpointError, match=says):
            load(tmp_path)
