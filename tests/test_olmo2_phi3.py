"""OLMo 2 and Phi-3: presets with Hugging Face's parameter counts for the published configs, and
end to end against ``Olmo2ForCausalLM`` and ``Phi3ForCausalLM``: random models saved with
``save_pretrained`` and read through gptspec compute the same logits and the same output of every
module the layouts name (OLMo 2's q_proj, q_norm, k_proj, k_norm over all heads included), through
the reference and through fast/ (attention fused); export is the exact inverse of import and loads
into Hugging Face; every config key these classes write is in the layouts' tables; unmodelled
options are refused by name; the two classes pass ``gptspec verify``.

**Hugging Face in float64**, as tests/test_neox_gemma.py: ``torch.float32`` / ``torch.float`` read as
float64 inside the modeling modules (the RMS norms' and the rotary frequencies' casts, the
softmax's dtype).
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
import sympy
import torch
import transformers
import transformers.modeling_rope_utils
import transformers.models.olmo2.modeling_olmo2 as modeling_olmo2
import transformers.models.phi3.modeling_phi3 as modeling_phi3
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import Olmo2Config, Olmo2ForCausalLM, Phi3Config, Phi3ForCausalLM

import reference
from gptspec.checkpoint import Tensor, export_state_dict, import_state_dict, layout, load, load_architecture, native_config
from reference import evaluate, forward
from spec import CheckpointError, ConfigError, build, count, preset
from spec import dims as D
from spec.architectures.olmo2 import Olmo2Config as Olmo2ConfigSpec
from spec.architectures.phi3 import Phi3Config as Phi3ConfigSpec
from spec.blocks import MLP, Attention, Block, Norm, QKNorm
from spec.graph import Composite
from spec.masks import Banded, Causal
from spec.ops import Rotary, TakeHead
from spec.theta import random_theta
from tests.hf_equal import assert_reference_and_fast_equal, hf_run, value_path
from tests.test_attention_slot import attention_arch, fused

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

RTOL = 1e-9
MODELING = (modeling_olmo2, modeling_phi3, transformers.modeling_rope_utils)
HF_CLASSES: dict[str, tuple[Any, Any]] = {"olmo2": (Olmo2Config, Olmo2ForCausalLM), "phi3": (Phi3Config, Phi3ForCausalLM)}
LAYOUT = {"olmo2": "hf-olmo2", "phi3": "hf-phi3"}

# -- the presets: Hugging Face's counts for the published configs --------------------------------

PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "olmo-2-1b": {
        "architectures": ["Olmo2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": None,
        "eos_token_id": 100257, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
        "max_position_embeddings": 4096, "model_type": "olmo2", "num_attention_heads": 16, "num_hidden_layers": 16,
        "num_key_value_heads": 16, "pad_token_id": 100277, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 500000,
        "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.48.3", "use_cache": True,
        "vocab_size": 100352,
    },
    "phi-3-mini-4k": {
        "_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"], "attention_bias": False,
        "attention_dropout": 0.0, "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config",
                                               "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"},
        "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072,
        "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3",
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
        "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0,
        "sliding_window": 2047, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
        "use_cache": True, "vocab_size": 32064,
    },
}
"""The config.json files of allenai/OLMo-2-0425-1B and microsoft/Phi-3-mini-4k-instruct as published
(keys and values)."""


@pytest.mark.parametrize("name", PUBLISHED_CONFIGS)
def test_presets_and_published_configs_count_what_hugging_face_counts(name: str, tmp_path: Path) -> None:
    raw = PUBLISHED_CONFIGS[name]
    config_class, model_class = HF_CLASSES[raw["model_type"]]
    with torch.device("meta"):  # sizes only: no memory for the weights
        hf = model_class(config_class(**{k: v for k, v in raw.items() if k not in ("model_type", "auto_map")}))
    want = hf.num_parameters()
    (tmp_path / "config.json").write_text(json.dumps(raw))
    from_file = load_architecture(tmp_path)  # built once (a 7B graph takes seconds): the preset is the same config
    assert from_file.config == preset(name).config, "the published config.json reads as the preset"
    assert count(from_file) == want


# -- the spec's new pieces: a full-width QK-norm and a post-norm block -----------------------------


def test_full_width_qk_norm_is_one_rms_norm_over_all_heads_then_each_heads_slice() -> None:
    """The attention's Q is RMSNorm over the n_heads·d_head features of all heads at once (not each
    head's own d_head), with the gain q_norm (n_heads, d_head) read row-major: written out with
    numpy here and compared with the reference's value of every head."""
    config = Olmo2ConfigSpec(n_vocab=5, n_ctx=8, d_model=6, n_layers=1, n_heads=3, n_kv_heads=1, d_head=2, d_mlp=2, eps=1e-2)
    arch = build(config)
    theta = random_theta(arch, seed=2, std=0.8)
    values = evaluate(arch, theta, {"ids": [1, 4, 0, 2]})
    x = values["blocks.0"] if False else values["token_embedding"]
    p = "blocks.0.attn"
    q = np.concatenate([x @ theta[f"{p}.W_Q"][h] for h in range(3)], axis=1)  # (T, 3·2)
    want = q / np.sqrt(np.mean(q**2, axis=1, keepdims=True) + 1e-2) * theta[f"{p}.q_norm"].reshape(-1)
    per_head = q[:, :2] / np.sqrt(np.mean(q[:, :2] ** 2, axis=1, keepdims=True) + 1e-2)
    assert not np.allclose(want[:, :2], per_head * theta[f"{p}.q_norm"][0]), "the case must tell full-width from per-head"
    for h in range(3):
        np.testing.assert_allclose(values[f"{p}.head_{h}.norm_Q"], want[:, 2 * h : 2 * h + 2], rtol=0, atol=1e-14)
    k = x @ theta[f"{p}.W_K"][0]
    np.testing.assert_allclose(values[f"{p}.head_2.norm_K"], k / np.sqrt(np.mean(k**2, axis=1, keepdims=True) + 1e-2) * theta[f"{p}.k_norm"][0],
                               rtol=0, atol=1e-14)
    assert theta[f"{p}.q_norm"].shape == (3, 2) and theta[f"{p}.k_norm"].shape == (1, 2)


def test_the_slot_and_the_block_refuse_what_they_cannot_mean() -> None:
    full = QKNorm(1e-6, scope="full")
    with pytest.raises(ConfigError, match=r"QKNorm\(scope='full'\) at position 1, but expected it first"):
        Attention(D.n_heads, D.d_head, Causal(), sympy.Integer(1), transforms=(Rotary(D.d_head), full))
    with pytest.raises(ConfigError, match=r"2 QK-norms, but expected one"):
        Attention(D.n_heads, D.d_head, Causal(), sympy.Integer(1), transforms=(full, QKNorm()))
    with pytest.raises(ConfigError, match=r"scope='heads', but expected 'head'"):
        QKNorm(scope="heads")  # type: ignore[arg-type]
    attention = Attention(D.n_heads, D.d_head, Causal(), sympy.Integer(1))
    with pytest.raises(ConfigError, match=r"post_norms=True, but expected False with placement='post'"):
        Block(attention, Norm("rms", 1e-6), MLP(D.d_mlp, "silu", False, gated=True), post_norms=True, placement="post")
    with pytest.raises(ConfigError, match=r"placement='after', but expected 'pre'"):
        Block(attention, Norm("rms", 1e-6), MLP(D.d_mlp, "silu", False, gated=True), placement="after")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"head=2, but expected 0 ≤ head < n_heads=2"):
        TakeHead(2, 3, 2)
    with pytest.raises(ConfigError, match=r"partial_rotary_factor=0.25 rotates int\(d_head · partial_rotary_factor\)=1 features"):
        Phi3ConfigSpec(n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=1, d_mlp=2, partial_rotary_factor=0.25)
    block = build(preset("olmo-2-1b").config.replace(n_layers=1, n_vocab=8, d_model=4, n_heads=2, d_mlp=2)).nodes["blocks.0"].op
    assert isinstance(block, Composite) and "post-RMSNorm" in block.title and "norm_1" not in block.body.nodes


def test_the_partial_rotary_of_phi3_rotates_its_first_features_only() -> None:
    config = Phi3ConfigSpec(n_vocab=5, n_ctx=8, d_model=8, n_layers=1, n_heads=2, d_mlp=2, partial_rotary_factor=0.5)
    assert config.rotary().rotated == 2 and Phi3ConfigSpec(n_vocab=5, n_ctx=8, d_model=8, n_layers=1, n_heads=2, d_mlp=2).rotary().rotated is None
    arch = build(config)
    theta = random_theta(arch, seed=1, std=0.8)
    values = evaluate(arch, theta, {"ids": [1, 2, 3]})
    q, rotated = values["blocks.0.attn.head_0.Q"], values["blocks.0.attn.head_0.rotary_Q"]
    np.testing.assert_array_equal(q[:, 2:], rotated[:, 2:])
    assert not np.allclose(q[1:, :2], rotated[1:, :2])


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 2), st.sampled_from([1, 2]), st.sampled_from([2, 4]), st.booleans(), st.sampled_from([None, 2]), st.booleans(),
       st.sampled_from([Causal(), Banded(2)]), st.integers(0, 2**16))
def test_a_full_width_qk_norm_runs_fused_and_equals_the_reference_whole_and_decoding(
    kv: int, group: int, d_head: int, offset: bool, rotated: int | None, bias: bool, mask: Causal | Banded, seed: int,
) -> None:
    """tests/test_attention_slot.py's property for the full-width QK-norm (first in the slot, then
    rotary or nothing): fast/'s fused step equals the reference's heads, whole and decoding with the
    KV cache (prefill 4 rows, then one at a time), grouped queries and biases included."""
    slot: tuple[QKNorm | Rotary, ...] = (QKNorm(0.1, offset, "full"),)
    if rotated is not None:
        slot += (Rotary(D.d_head, 10000.0, rotated=rotated),)
    attention = Attention(D.n_heads, D.d_head, mask, 1 / sympy.sqrt(d_head), n_kv_heads=D.n_kv_heads, transforms=slot, bias=bias)
    arch = attention_arch(attention, 5, {D.n_heads: kv * group, D.n_kv_heads: kv, D.d_head: d_head})
    theta = random_theta(arch, seed, std=0.7)
    x = np.random.default_rng(seed).normal(size=(7, 5))
    want = reference.evaluate(arch, theta, {"x": x})["y"]
    atol = 1e-12 * np.max(np.abs(want))
    np.testing.assert_allclose(fused(arch, theta, x, np.arange(7), 7, None), want, rtol=0, atol=atol)
    cache: dict[tuple[str, str], np.ndarray] = {}
    decoded = [fused(arch, theta, x[:4], np.arange(4), 4, cache)]
    decoded += [fused(arch, theta, x[t:t + 1], np.array([t]), t + 1, cache) for t in range(4, 7)]
    np.testing.assert_allclose(np.concatenate(decoded), want, rtol=0, atol=atol)


# -- Hugging Face in float64 -------------------------------------------------------------------


class _Float64Torch(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return torch.float64 if name in ("float32", "float") else getattr(torch, name)


@contextlib.contextmanager
def hf_in_float64() -> Iterator[None]:
    saved = [(module, module.torch) for module in MODELING]
    try:
        for module, _ in saved:
            module.torch = _Float64Torch()  # type: ignore[attr-defined]
        yield
    finally:
        for module, original in saved:
            module.torch = original  # type: ignore[attr-defined]


T = 10
"""Tokens per test sequence (longer than the sliding windows below)."""

CASES: dict[str, dict[str, Any]] = {
    "olmo2-gqa-biases": {
        "model_type": "olmo2", "vocab_size": 37, "hidden_size": 24, "intermediate_size": 30, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "attention_bias": True, "rms_norm_eps": 1e-3, "_attn": "eager",
    },
    "olmo2-head_dim-tied-llama3-bf16": {
        "model_type": "olmo2", "vocab_size": 29, "hidden_size": 16, "intermediate_size": 20, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 6, "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 4},
        "_dtype": torch.bfloat16,
    },
    "phi3-gqa-partial-rotary-window": {
        "model_type": "phi3", "vocab_size": 31, "hidden_size": 32, "intermediate_size": 20, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": 3, "partial_rotary_factor": 0.75, "_attn": "eager",
    },
    "phi3-mha-full-rotary-tied-bf16": {
        "model_type": "phi3", "vocab_size": 33, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 2, "tie_word_embeddings": True, "rope_parameters": {"rope_type": "default", "rope_theta": 300.0},
        "_dtype": torch.bfloat16,
    },
}
"""OLMo 2 with grouped queries (so K's norm is narrower than Q's) and biases; with head_dim ≠ d/h,
multi-query, llama3 rotary scaling, tied; Phi-3 with grouped queries, rotary on 6 of 8 features of each head (Phi-4 mini's ¾) and
a window shorter than the sequence; with full rotary and a tied head; weights stored in float32 and
bfloat16."""


def hf_model(case: str) -> Any:
    options = CASES[case]
    settings = {k: v for k, v in options.items() if not k.startswith("_") and k != "model_type"}
    config_class, model_class = HF_CLASSES[options["model_type"]]
    config = config_class(max_position_embeddings=64, pad_token_id=0, **settings)  # Phi3Config's default pad id is past small vocabularies
    config._attn_implementation = options.get("_attn", "sdpa")
    torch.manual_seed(len(case))
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                torch.nn.init.normal_(parameter, mean=1.0, std=0.3)
            elif parameter.dim() == 1:
                torch.nn.init.normal_(parameter, mean=0.0, std=0.3)
            else:
                torch.nn.init.normal_(parameter, mean=0.0, std=1.0 / parameter.shape[1] ** 0.5)
    return model.eval()


def saved(case: str, directory: Path, **save: Any) -> Any:
    """The case's model saved in its storage dtype, returned in float64 holding exactly the stored values."""
    dtype = CASES[case].get("_dtype", torch.float32)
    with hf_in_float64():
        model = hf_model(case)
    copy.deepcopy(model).to(dtype).save_pretrained(directory, **save)
    model.double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.to(dtype).double())
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
    case = "phi3-gqa-partial-rotary-window"
    model = saved(case, tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file(), "expected save_pretrained to shard"
    arch, theta = load(tmp_path)
    ids = sequence(1, arch.dim("n_vocab"))
    with hf_in_float64():
        want = hf_run(model, ids, {})["logits"]
    assert np.max(np.abs(forward(arch, theta, ids) - want)) <= RTOL * np.max(np.abs(want))


# -- export ----------------------------------------------------------------------------------

EXPORTS = {
    "hf-olmo2": Olmo2ConfigSpec(n_vocab=7, n_ctx=12, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=3,
                                qkv_bias=True, out_bias=True, tied=True, name="olmo2-export"),
    "hf-phi3": Phi3ConfigSpec(n_vocab=7, n_ctx=12, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=3,
                              attention=("sliding",), sliding_window=3, partial_rotary_factor=0.5, name="phi3-export"),
}
"""d_head ≠ d_model / n_heads (OLMo 2) and a partial rotation under a window (Phi-3), both with
grouped queries, so the fused qkv_proj's parts are unequal."""


@pytest.mark.parametrize("name", EXPORTS)
def test_export_round_trips_bit_exactly_and_loads_into_hugging_face(name: str) -> None:
    arch = build(EXPORTS[name])
    theta = random_theta(arch, seed=3, std=0.5)
    state = export_state_dict(arch, theta, name)
    _, again = import_state_dict(arch.config, state, name)
    assert list(again) == list(theta) and all(np.array_equal(again[k], theta[k]) for k in theta), "import(export(θ)) ≠ θ"
    native = native_config(arch, name)
    lay = layout(name)
    assert lay.read_config({**{k: r.default for k, r in lay.config_keys.items() if r.role == "model"}, **native}, "round trip") == arch.config
    config_class, model_class = HF_CLASSES[str(native["model_type"])]
    with hf_in_float64():
        hf = model_class(config_class(**{"pad_token_id": 0} | {k: v for k, v in native.items() if k != "model_type"})).double().eval()
        hf.config._attn_implementation = "eager"
        missing, unexpected = hf.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        assert not unexpected and all(k == "lm_head.weight" for k in missing), f"{unexpected}, {missing}"
        ids = sequence(5, arch.dim("n_vocab"))[: arch.dim("n_ctx")]
        want = hf_run(hf, ids, {})["logits"]
    got = forward(arch, theta, ids)
    assert np.max(np.abs(got - want)) <= RTOL * np.max(np.abs(want)), f"HF with the exported weights differs [{name}]"


def test_layouts_name_their_modules_and_cover_theta() -> None:
    from spec.architectures.registry import instances

    configs = [*EXPORTS.values(), *(c for k, c in instances().items() if k.startswith(("olmo2:", "phi3:")))]
    for config in configs:
        name = "hf-olmo2" if isinstance(config, Olmo2ConfigSpec) else "hf-phi3"
        lay, arch = layout(name), build(config)
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
    small = {"vocab_size": 8, "hidden_size": 8, "intermediate_size": 4, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 1, "pad_token_id": 0}
    model_class(config_class(**small)).save_pretrained(tmp_path)
    written |= set(json.loads((tmp_path / "config.json").read_text()))
    missing = sorted(written - set(table))
    assert not missing, f"config keys {missing} are not in the {LAYOUT[model_type]} table"
    assert all(rule.reason for rule in table.values())


@pytest.mark.parametrize(
    ("case", "changes", "says"),
    [
        ("phi3-gqa-partial-rotary-window", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0] * 3,
                                                                  "long_factor": [1.0] * 3}}, "LongRoPE"),
        ("phi3-gqa-partial-rotary-window", {"rope_scaling": {"type": "su", "short_factor": [1.0] * 3, "long_factor": [1.0] * 3},
                                            "rope_parameters": None}, "reads it as longrope"),
        ("phi3-gqa-partial-rotary-window", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}},
         "Phi3Config accepts default and longrope only"),
        ("phi3-gqa-partial-rotary-window", {"attention_bias": True}, "attention_bias=true"),
        ("phi3-gqa-partial-rotary-window", {"partial_rotary_factor": 0.25}, "keep one of the two"),
        ("olmo2-gqa-biases", {"rope_parameters": {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}}, "YaRN"),
        ("olmo2-gqa-biases", {"partial_rotary_factor": 0.5}, "partial_rotary_factor=0.5"),
        ("olmo2-gqa-biases", {"sliding_window": 4}, "sliding_window"),
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


def test_export_refuses_what_the_classes_cannot_express() -> None:
    olmo = build(EXPORTS["hf-olmo2"].replace(attention=("sliding",), sliding_window=2, mlp_bias=True))
    with pytest.raises(CheckpointError, match=r"sliding layers.*mlp_bias=True"):
        export_state_dict(olmo, random_theta(olmo, seed=0), "hf-olmo2")
    phi = build(EXPORTS["hf-phi3"].replace(qkv_bias=True, attention=("sliding", "full")))
    with pytest.raises(CheckpointError, match=r"biases.*every Phi-3 layer has the same mask"):
        export_state_dict(phi, random_theta(phi, seed=0), "hf-phi3")


# -- verify: the classes as they are pass, with no false positive ---------------------------------


@pytest.mark.parametrize(
    ("target", "layout_name", "dtype"),
    [("transformers:Olmo2ForCausalLM", "hf-olmo2", "float32"), ("transformers:Phi3ForCausalLM", "hf-phi3", "bfloat16")],
)
def test_the_hugging_face_classes_pass_gptspec_verify(target: str, layout_name: str, dtype: str) -> None:
    """Each class on its layout's default (OLMo 2: grouped queries, full-width QK-norm, post-norms;
    Phi-3: grouped queries, rotary on half of each head, a window shorter than the sequence), as it
    is: padded batches, incremental decoding and generation pass (the other dtype of each is in the
    report's measurements: both classes pass in float32 and bfloat16)."""
    from gptspec.verify import verify_target

    report = verify_target(target, dtype=dtype, seed=1, examples=2, generation_examples=1)
    statuses = {r.key: r.status for r in report.results}
    assert report.layout == layout_name and statuses == {"model": "passed", "decode": "passed", "generate": "passed"}, [
        (r.component, r.status, r.detail, r.error) for r in report.results
    ]
    assert 0 < max(r.ratio for r in report.results) < 1


@pytest.mark.parametrize("fused", [True, False])
def test_fast_backward_equals_the_reference_through_the_full_width_norm(fused: bool) -> None:
    """∂L/∂θ of an OLMo 2 model (the norm over all heads' Q and K, each head's slice, the post-norms)
    and of a Phi-3 one (partial rotary): fast/'s batched backward, attention fused or op by op,
    equals the reference's (tolerance as tests/test_fast_backward.py: 1e-12 · max(1, max|reference|))."""
    import importlib

    reference_backward = importlib.import_module("reference.backward")
    from fast.backward import value_and_grad

    ids = [1, 2, 3, 0, 4, 1]
    for config in EXPORTS.values():
        arch = build(config)
        theta = random_theta(arch, seed=5, std=0.6)
        got = value_and_grad(arch, theta, np.array([ids]), fused=fused)
        want = reference_backward.value_and_grad(arch, theta, [ids])
        assert abs(got.loss - want.loss) <= 1e-12 * max(1.0, abs(want.loss))
        for name, g in want.theta.items():
            assert np.max(np.abs(got.theta[name] - g)) <= 1e-12 * max(1.0, float(np.max(np.abs(g)))), f"{config.name}: ∂L/∂{name}"
        assert np.max(np.abs(want.theta["blocks.0.attn.W_K"])) > 0, "the keys' gradient flows through the norm"
