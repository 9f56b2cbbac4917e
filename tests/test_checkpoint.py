"""Checkpoint reading and writing: our safetensors reader/writer against the `safetensors`
package, θ round trips, the Hugging Face GPT-2 layout (built here by an independent inverse of
the loader, with numpy only), and every refusal naming what it refuses."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

from gptspec import safetensors_io
from gptspec.checkpoint import (
    HF_GPT2_KEYS,
    THETA_FORMAT,
    hf_gpt2_config,
    load,
    load_hf_gpt2,
    load_theta,
    save_theta,
)
from reference import forward
from spec import CheckpointError, GPTConfig, ShapeError, build_gpt
from spec.theta import random_theta

# -- safetensors reader/writer -------------------------------------------------------------


def raw_file(path: Path, header: dict[str, Any], data: bytes, *, length: int | None = None) -> Path:
    """A safetensors file written byte by byte, so a test can break any part of it."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def test_our_files_load_with_the_safetensors_package(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {
        "a": rng.normal(size=(3, 4)),
        "b.c": rng.normal(size=(5,)).astype(np.float32),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3)),
        "strided": rng.normal(size=(4, 6))[:, ::2],
    }
    path = tmp_path / "ours.safetensors"
    safetensors_io.write(path, tensors, {"note": "hello", "ü": "ß"})
    theirs = safetensors.numpy.load_file(str(path))
    assert sorted(theirs) == sorted(tensors), f"names={sorted(theirs)}, but expected {sorted(tensors)} [safetensors.numpy]"
    for name, value in tensors.items():
        assert theirs[name].dtype == value.dtype, f"{name} dtype={theirs[name].dtype}, but expected {value.dtype}"
        assert np.array_equal(theirs[name], value), f"{name} values differ [safetensors.numpy.load_file]"
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"note": "hello", "ü": "ß"}
    ours = safetensors_io.read(path)
    assert list(ours) == list(tensors)  # file order is write order
    for name, value in tensors.items():
        assert ours[name].dtype == value.dtype and np.array_equal(ours[name], value), f"{name} [round trip]"
    assert safetensors_io.read_header(path).metadata == {"note": "hello", "ü": "ß"}


def test_files_the_safetensors_package_writes_load_with_ours(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tensors: dict[str, np.ndarray] = {
        "f64": rng.normal(size=(2, 3)),
        "f32": rng.normal(size=(4,)).astype(np.float32),
        "f16": rng.normal(size=(3, 3)).astype(np.float16),
        "i64": rng.integers(-5, 5, size=(6,)),
        "i32": rng.integers(-5, 5, size=(2, 2)).astype(np.int32),
        "i8": rng.integers(-5, 5, size=(3,)).astype(np.int8),
        "u8": rng.integers(0, 255, size=(3,)).astype(np.uint8),
        "bool": rng.integers(0, 2, size=(2, 2)).astype(bool),
    }
    path = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"k": "v"})
    ours = safetensors_io.read(path)
    for name, value in tensors.items():
        assert ours[name].dtype == value.dtype, f"{name} dtype={ours[name].dtype}, but expected {value.dtype}"
        assert np.array_equal(ours[name], value), f"{name} values differ [ours reading safetensors.numpy]"
    assert safetensors_io.read_header(path).metadata == {"k": "v"}


def test_bf16_written_by_torch_reads_exactly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import safetensors.torch

    torch.manual_seed(0)
    special = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.0e38, 1.0e-40, float("inf"), -float("inf")])
    tensors = {"w": torch.randn(5, 7).to(torch.bfloat16), "special": special.to(torch.bfloat16)}
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    ours = safetensors_io.read(path)
    for name, value in tensors.items():
        want = value.float().numpy()
        assert ours[name].dtype == np.float32, f"{name} dtype={ours[name].dtype}, but expected float32"
        assert np.array_equal(ours[name], want), f"{name}: bf16 widened wrongly [ours vs torch .float()]"
    assert np.signbit(ours["special"][1]), "-0.0 lost its sign [bf16]"


def test_writer_refuses_other_dtypes(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"dtype=int64.*tensor ids\].*astype"):
        safetensors_io.write(tmp_path / "x.safetensors", {"ids": np.arange(3)})
    assert not list(tmp_path.iterdir()), "a refused write left a file behind"


@pytest.mark.parametrize(
    ("header", "data", "pattern"),
    [
        ({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0", r"dtype='F8_E4M3'.*tensor w"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, r"span 4 bytes.*= 8.*tensor w"),
        (
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
            b"\0" * 8, r"begin=4, but expected begin=8 \(it overlaps a\).*tensor b",
        ),
        (
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}},
            b"\0" * 12, r"leaves a hole after a.*tensor b",
        ),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 10, r"end=16.*≤ 10.*tensor w.*truncated"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 6, r"buffer size=6.*trailing"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, r"shape=\[-1\].*tensor w"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, r"data_offsets=\[4, 0\].*tensor w"),
        ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, r"expected an object with keys dtype, shape, data_offsets.*tensor w"),
        ({"__metadata__": {"n": 1}}, b"", r"__metadata__=.*strings"),
    ],
)
def test_reader_refuses_malformed_files(tmp_path: Path, header: dict[str, Any], data: bytes, pattern: str) -> None:
    path = raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(CheckpointError, match=pattern) as error:
        safetensors_io.read(path)
    assert str(path) in str(error.value), f"message={error.value}, but expected it to name the file"


def test_reader_refuses_truncation_and_junk(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    safetensors_io.write(good, {"a": np.ones(4), "b": np.ones(3)})
    blob = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(blob[:-5])
    with pytest.raises(CheckpointError, match=r"end=56.*tensor b.*truncated"):
        safetensors_io.read(cut)
    cut.write_bytes(blob[:20])
    with pytest.raises(CheckpointError, match=r"header length=.*truncated or not safetensors"):
        safetensors_io.read(cut)
    cut.write_bytes(blob[:5])
    with pytest.raises(CheckpointError, match=r"at least 8"):
        safetensors_io.read(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 4) + b"[1,2")
    with pytest.raises(CheckpointError, match=r"expected a JSON object"):
        safetensors_io.read(junk)
    dup = tmp_path / "dup.safetensors"
    text = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    dup.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * 4)
    with pytest.raises(CheckpointError, match=r"names 'a' twice"):
        safetensors_io.read(dup)


# -- θ in the spec's own names ----------------------------------------------------------------

CONFIGS = {
    "tied": GPTConfig(n_vocab=23, n_ctx=9, d_model=8, n_layers=2, n_heads=2, name="tied"),
    "untied-odd": GPTConfig(
        n_vocab=11, n_ctx=5, d_model=6, n_layers=1, n_heads=3, d_head=4, d_mlp=10, activation="relu",
        eps=1e-3, tied=False, attn_scale=0.3, scale_by_inverse_layer=True, name="odd",
    ),
    "banded-sinusoidal": GPTConfig(
        n_vocab=13, n_ctx=7, d_model=4, n_layers=3, n_heads=1, positional="sinusoidal",
        attention=("dense", "banded"), band_width=2, bias=False, activation="gelu_erf", name="gpt3ish",
    ),
}


@pytest.mark.parametrize("key", CONFIGS)
def test_save_theta_round_trips_bit_exactly(tmp_path: Path, key: str) -> None:
    arch = build_gpt(CONFIGS[key])
    theta = random_theta(arch, seed=3, std=0.7)
    theta["W_E"][0, 0] = 5e-324  # a subnormal survives too
    path = tmp_path / "theta.safetensors"
    save_theta(path, arch, theta)
    for loaded_arch, loaded in (load_theta(path), load(path)):
        assert loaded_arch.config == arch.config and loaded_arch.name == arch.name, f"config={loaded_arch.config}"
        assert loaded_arch.theta == arch.theta
        assert list(loaded) == list(arch.theta), "Θ order changed [load_theta]"
        for name, value in theta.items():
            assert loaded[name].dtype == np.float64 and loaded[name].tobytes() == value.tobytes(), f"{name} [round trip]"
    theirs = safetensors.numpy.load_file(str(path))  # and the file is plain safetensors
    assert all(np.array_equal(theirs[n], theta[n]) for n in theta)


def test_save_theta_refusals(tmp_path: Path) -> None:
    arch = build_gpt(CONFIGS["tied"])
    theta = random_theta(arch)
    del theta["ln_f.beta"]
    with pytest.raises(ShapeError, match=r"ln_f\.beta"):
        save_theta(tmp_path / "x.safetensors", arch, theta)
    arch.config = None
    with pytest.raises(CheckpointError, match=r"config of type NoneType, but expected a registered config"):
        save_theta(tmp_path / "x.safetensors", arch, random_theta(build_gpt(CONFIGS["tied"])))


def test_load_theta_refusals(tmp_path: Path) -> None:
    arch = build_gpt(CONFIGS["tied"])
    theta = random_theta(arch)
    config = json.dumps({"n_vocab": 23, "n_ctx": 9, "d_model": 8, "n_layers": 2, "n_heads": 2})
    meta = {"format": THETA_FORMAT, "config": config}
    path = tmp_path / "t.safetensors"

    safetensors_io.write(path, theta, {"format": "other"})
    with pytest.raises(CheckpointError, match=r"format='other'.*not written by gptspec"):
        load_theta(path)
    safetensors_io.write(path, theta, meta | {"config": config[:-1] + ', "heads": 2}'})
    with pytest.raises(CheckpointError, match=r"config fields \['heads'\]"):
        load_theta(path)
    safetensors_io.write(path, theta, meta | {"config": config.replace('"n_heads": 2', '"n_heads": 3')})
    with pytest.raises(CheckpointError, match=r"not divisible by n_heads=3"):
        load_theta(path)
    safetensors_io.write(path, {k: v for k, v in theta.items() if k != "blocks.1.attn.W_V"}, meta)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.W_V is missing.*\(n_heads, d_model, d_head\) = \(2, 8, 4\)"):
        load_theta(path)
    safetensors_io.write(path, theta | {"blocks.0.attn.W_Q": np.zeros((2, 4, 8))}, meta)
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.W_Q has shape \(2, 4, 8\), but expected \(n_heads, d_model, d_head\) = \(2, 8, 4\)"):
        load_theta(path)
    safetensors_io.write(path, theta | {"W_U": np.zeros((8, 23))}, meta)
    with pytest.raises(CheckpointError, match=r"W_U is unexpected"):
        load_theta(path)


# -- Hugging Face layout, built independently with numpy ---------------------------------------


def hf_config(**changes: Any) -> dict[str, Any]:
    """A small GPT-2 config.json as transformers 5 writes it."""
    config: dict[str, Any] = {
        "activation_function": "gelu_new", "add_cross_attention": False, "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1, "bos_token_id": 0, "dtype": "float32", "embd_pdrop": 0.1, "eos_token_id": 0,
        "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_embd": 8,
        "n_head": 2, "n_inner": None, "n_layer": 2, "n_positions": 9, "pad_token_id": None,
        "reorder_and_upcast_attn": False, "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True, "summary_activation": None, "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
        "tie_word_embeddings": True, "transformers_version": "5.23.0", "use_cache": True, "vocab_size": 23,
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not ...}


def hf_tensors(theta: dict[str, np.ndarray], config: GPTConfig, prefix: str = "transformer.") -> dict[str, np.ndarray]:
    """θ → Hugging Face GPT-2 tensors: the inverse of the loader's mapping, written the other way
    round (heads concatenated along columns, per Conv1D's (d_in, d_out) layout)."""
    out = {prefix + "wte.weight": theta["W_E"], prefix + "wpe.weight": theta["W_P"]}
    for layer in range(config.n_layers):
        b, h = f"blocks.{layer}.", f"{prefix}h.{layer}."
        qkv = [np.concatenate(list(theta[b + f"attn.W_{x}"]), axis=1) for x in "QKV"]  # each (d, n_heads·d_head)
        out |= {
            h + "ln_1.weight": theta[b + "ln_1.gamma"], h + "ln_1.bias": theta[b + "ln_1.beta"],
            h + "attn.c_attn.weight": np.concatenate(qkv, axis=1),
            h + "attn.c_attn.bias": np.concatenate([theta[b + f"attn.b_{x}"].ravel() for x in "QKV"]),
            h + "attn.c_proj.weight": np.concatenate(list(theta[b + "attn.W_O"]), axis=0),
            h + "attn.c_proj.bias": theta[b + "attn.b_O"],
            h + "ln_2.weight": theta[b + "ln_2.gamma"], h + "ln_2.bias": theta[b + "ln_2.beta"],
            h + "mlp.c_fc.weight": theta[b + "mlp.W_in"], h + "mlp.c_fc.bias": theta[b + "mlp.b_in"],
            h + "mlp.c_proj.weight": theta[b + "mlp.W_out"], h + "mlp.c_proj.bias": theta[b + "mlp.b_out"],
        }
    out |= {prefix + "ln_f.weight": theta["ln_f.gamma"], prefix + "ln_f.bias": theta["ln_f.beta"]}
    if not config.tied:
        out["lm_head.weight"] = theta["W_U"].T
    return out


def spec_config(**hf: Any) -> GPTConfig:
    raw = hf_config(**hf)
    return hf_gpt2_config(raw, "test")


def write_hf(directory: Path, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(directory / "model.safetensors"))
    return directory


def hf_case(tmp_path: Path, **changes: Any) -> tuple[dict[str, Any], GPTConfig, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A config.json, its GPTConfig, a random θ, and θ's Hugging Face tensors (float32-exact)."""
    raw = hf_config(**changes)
    config = hf_gpt2_config(raw, "test")
    theta = {k: v.astype(np.float32).astype(np.float64) for k, v in random_theta(build_gpt(config), seed=5, std=0.5).items()}
    return raw, config, theta, hf_tensors(theta, config)


@pytest.mark.parametrize(
    "changes",
    [{}, {"n_head": 4, "n_inner": 12, "n_layer": 3}, {"n_head": 8}, {"tie_word_embeddings": False, "n_head": 1}],
    ids=["base", "heads4-inner", "d_head1", "untied"],
)
def test_hf_layout_maps_to_theta_exactly(tmp_path: Path, changes: dict[str, Any]) -> None:
    raw, config, theta, tensors = hf_case(tmp_path, **changes)
    for dtype in (np.float32, np.float64):
        directory = write_hf(tmp_path / f"hf-{np.dtype(dtype).name}", raw, {k: v.astype(dtype) for k, v in tensors.items()})
        arch, loaded = load_hf_gpt2(directory)
        assert arch.config == config, f"config={arch.config}, but expected {config}"
        assert list(loaded) == list(arch.theta)
        for name, value in theta.items():
            assert loaded[name].dtype == np.float64 and np.array_equal(loaded[name], value), f"{name} [{dtype.__name__}]"
        arch2, loaded2 = load(directory)  # the dispatcher agrees
        assert arch2.config == config and all(np.array_equal(loaded2[n], theta[n]) for n in theta)


def test_hf_layout_without_prefix_and_with_old_buffers(tmp_path: Path) -> None:
    raw, config, theta, _ = hf_case(tmp_path)
    old = hf_tensors(theta, config, prefix="")
    n = config.n_ctx
    old["h.0.attn.bias"] = np.tril(np.ones((n, n), dtype=np.float32)).reshape(1, 1, n, n)
    old["h.1.attn.bias"] = np.tril(np.ones((n + 3, n + 3), dtype=bool)).reshape(1, 1, n + 3, n + 3)
    old["h.0.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    old["lm_head.weight"] = theta["W_E"]  # tied and equal: accepted
    old["multiple_choice_head.summary.weight"] = np.ones((1, 8))
    _, loaded = load_hf_gpt2(write_hf(tmp_path / "old", raw, old))
    assert all(np.array_equal(loaded[k], theta[k]) for k in theta)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_hf_half_precision_weights_are_widened_exactly(tmp_path: Path, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    import safetensors.torch

    raw, config, _, tensors = hf_case(tmp_path)
    torch_dtype = {"F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    halves = {k: torch.from_numpy(v).to(torch_dtype) for k, v in tensors.items()}
    directory = tmp_path / "half"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(raw))
    safetensors.torch.save_file(halves, str(directory / "model.safetensors"))
    _, loaded = load_hf_gpt2(directory)
    want = hf_tensors(loaded, config)
    for name, value in halves.items():
        assert np.array_equal(want[name], value.double().numpy()), f"{name} [{dtype} → float64]"


def test_sharded_checkpoint(tmp_path: Path) -> None:
    raw, _, theta, tensors = hf_case(tmp_path)
    directory = tmp_path / "sharded"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(raw))
    names = list(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, part in shards.items():
        safetensors_io.write(directory / file, {n: tensors[n] for n in part})
    weight_map = {n: f for f, part in shards.items() for n in part}
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    _, loaded = load(directory)
    assert all(np.array_equal(loaded[k], theta[k]) for k in theta)

    weight_map[names[0]] = "model-00002-of-00002.safetensors"
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=rf"{names[0]} is (in|missing from) shard"):
        load(directory)
    weight_map[names[0]] = "../elsewhere.safetensors"
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"shard='\.\./elsewhere\.safetensors'"):
        load(directory)
    weight_map[names[0]] = "model-00003-of-00002.safetensors"
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"shard model-00003-of-00002\.safetensors .* is missing"):
        load(directory)


# -- config.json: modelled, ignored, refused ----------------------------------------------------


@pytest.mark.parametrize(
    ("hf", "want"),
    [
        ("gelu_new", "gelu_tanh"),
        ("gelu_pytorch_tanh", "gelu_tanh"),
        ("gelu_python_tanh", "gelu_tanh"),
        ("gelu", "gelu_erf"),
        ("gelu_python", "gelu_erf"),
        ("relu", "relu"),
    ],
)
def test_activation_mapping(hf: str, want: str) -> None:
    assert spec_config(activation_function=hf).activation == want


def test_modelled_keys_reach_the_config() -> None:
    base = spec_config()
    assert base == GPTConfig(n_vocab=23, n_ctx=9, d_model=8, n_layers=2, n_heads=2), f"config={base}"
    changed = {
        "vocab_size": 24, "n_positions": 10, "n_embd": 12, "n_layer": 3, "n_head": 4, "n_inner": 7,
        "activation_function": "relu", "layer_norm_epsilon": 1e-3, "scale_attn_weights": False,
        "scale_attn_by_inverse_layer_idx": True, "tie_word_embeddings": False,
    }
    modelled = {k for k, rule in HF_GPT2_KEYS.items() if rule.role == "model"}
    assert modelled == set(changed), f"modelled keys={sorted(modelled)}, but this test covers {sorted(changed)}"
    for key, value in changed.items():
        assert spec_config(**{key: value}) != base, f"{key}={value!r} did not change the GPTConfig"
    c = spec_config(n_inner=None, scale_attn_weights=False, layer_norm_epsilon=1e-3, scale_attn_by_inverse_layer_idx=True)
    assert (c.mlp_width, c.attn_scale, c.eps, c.scale_by_inverse_layer) == (32, 1.0, 1e-3, True)
    assert spec_config(n_inner=32) == base  # n_inner = 4·n_embd is the default, normalised


def test_defaults_and_aliases_and_ignored_keys() -> None:
    minimal = {"model_type": "gpt2", "vocab_size": 23, "n_positions": 9, "n_embd": 8, "n_layer": 2, "n_head": 2}
    assert hf_gpt2_config(minimal, "t") == spec_config()
    aliased = {"model_type": "gpt2", "vocab_size": 23, "max_position_embeddings": 9, "hidden_size": 8,
               "num_hidden_layers": 2, "num_attention_heads": 2}
    assert hf_gpt2_config(aliased, "t") == spec_config()
    old_hub = minimal | {  # keys of the original hub gpt2 and distilgpt2 configs
        "n_ctx": 1024, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "_num_labels": 1, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "output_past": True,
        "torch_dtype": "float32", "resid_pdrop": 0.3, "pruned_heads": {}, "is_decoder": False,
    }
    assert hf_gpt2_config(old_hub, "t") == spec_config()
    for key, rule in HF_GPT2_KEYS.items():
        assert rule.reason, f"{key} has no reason [HF_GPT2_KEYS]"


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"add_cross_attention": True}, r"add_cross_attention=true, but expected add_cross_attention=false.*cross-attention"),
        ({"frobnicate": 3}, r"config key frobnicate=3.*refused.*delete it from config.json"),
        ({"n_embdd": 8}, r"n_embdd=8 \(did you mean 'n_embd'\?\)"),
        ({"quantization_config": {"bits": 4}}, r"config key quantization_config="),
        ({"activation_function": "silu"}, r"activation_function='silu', but expected one of"),
        ({"activation_function": "gelu_fast"}, r"activation_function='gelu_fast'"),
        ({"activation_function": "quick_gelu"}, r"activation_function='quick_gelu'"),
        ({"model_type": "gpt_neo"}, r"model_type='gpt_neo', but expected one of \[.*'gpt2'"),
        ({"pruned_heads": {"0": [1]}}, r"pruned_heads=\{\"0\": \[1\]\}, but expected pruned_heads=\{\}"),
        ({"is_encoder_decoder": True}, r"is_encoder_decoder=true"),
        ({"add_cross_attention": 0}, r"add_cross_attention=0, but expected add_cross_attention=false"),
        ({"n_head": 3}, r"n_embd=8, but expected a multiple of n_head=3"),
        ({"n_embd": ...}, r"config key n_embd is missing"),
        ({"model_type": ...}, r"model_type is missing"),
        ({"hidden_size": 16}, r"hidden_size=16, but expected n_embd=8"),
        ({"n_layer": 0}, r"n_layer=0, but expected a whole number ≥ 1"),
        ({"n_layer": 2.0}, r"n_layer=2.0, but expected a whole number"),
        ({"tie_word_embeddings": "yes"}, r"tie_word_embeddings='yes', but expected true or false"),
        ({"layer_norm_epsilon": -1}, r"layer_norm_epsilon=-1"),
    ],
)
def test_config_refusals_name_the_key(tmp_path: Path, changes: dict[str, Any], pattern: str) -> None:
    raw, _, _, tensors = hf_case(tmp_path)
    raw = hf_config(**changes)
    directory = write_hf(tmp_path / "hf", raw, tensors)
    with pytest.raises(CheckpointError, match=pattern) as error:
        load_hf_gpt2(directory)
    assert str(directory) in str(error.value), f"message={error.value}, but expected it to name the checkpoint"


# -- tensors: missing, unexpected, mis-shaped, inconsistent --------------------------------------


@pytest.mark.parametrize(
    ("config_changes", "edit", "pattern"),
    [
        ({}, {"transformer.h.1.mlp.c_fc.bias": None},
         r"transformer\.h\.1\.mlp\.c_fc\.bias is missing, but expected a tensor of shape \(d_mlp,\) = \(32,\)"),
        ({"tie_word_embeddings": False}, {"lm_head.weight": None}, r"lm_head\.weight is missing.*\(n_vocab, d_model\) = \(23, 8\)"),
        ({}, {"transformer.h.0.attn.extra": np.zeros(2, np.float32)}, r"transformer\.h\.0\.attn\.extra is unexpected"),
        ({"n_layer": 1}, {}, r"transformer\.h\.1\.\S+ is unexpected \(and 11 more"),
        ({}, {"transformer.h.0.attn.c_attn.weight": np.zeros((8, 8), np.float32)},
         r"transformer\.h\.0\.attn\.c_attn\.weight has shape \(8, 8\), but expected \(d_model, 3\*d_head\*n_heads\) = \(8, 24\)"),
        ({}, {"transformer.wpe.weight": np.zeros((8, 8), np.float32)},
         r"transformer\.wpe\.weight has shape \(8, 8\), but expected \(n_ctx, d_model\) = \(9, 8\)"),
        ({}, {"lm_head.weight": np.zeros((23, 8), np.float32)}, r"lm_head\.weight differs from transformer\.wte\.weight.*tie_word_embeddings=true"),
        ({}, {"transformer.h.0.attn.bias": np.ones((1, 1, 9, 9), np.float32)}, r"transformer\.h\.0\.attn\.bias is not lower-triangular ones"),
        ({}, {"transformer.h.0.attn.bias": np.ones((2, 9, 9), np.float32)}, r"transformer\.h\.0\.attn\.bias has shape \(2, 9, 9\)"),
        ({}, {"transformer.ln_f.bias": np.zeros(8, np.int32)}, r"transformer\.ln_f\.bias has dtype int32.*quantised"),
        ({}, {"transformer.ln_f.bias": np.full(8, np.nan, np.float32)}, r"transformer\.ln_f\.bias has 8 non-finite entries"),
        ({}, {"wte.weight": np.zeros((23, 8), np.float32)}, r"transformer\.wte\.weight and wte\.weight name the same parameter"),
    ],
)
def test_tensor_refusals_name_the_tensor(
    tmp_path: Path, config_changes: dict[str, Any], edit: dict[str, Any], pattern: str
) -> None:
    raw, _, _, tensors = hf_case(tmp_path, **config_changes)
    if config_changes.get("n_layer") == 1:  # the file holds 2 layers, the config says 1
        tensors = hf_case(tmp_path)[3]
    tensors = dict(tensors)
    for name, value in edit.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    directory = write_hf(tmp_path / "hf", raw, tensors)
    with pytest.raises(CheckpointError, match=pattern) as error:
        load_hf_gpt2(directory)
    assert str(directory) in str(error.value)


# -- pickles and dispatch -----------------------------------------------------------------------


@pytest.mark.parametrize("file", ["pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt", "theta.pkl"])
def test_pickles_are_refused_with_the_reason_and_the_conversion(tmp_path: Path, file: str) -> None:
    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(hf_config()))
    (directory / file).write_bytes(b"\x80\x04K\x01.")  # a pickle; never opened
    for call in (load_hf_gpt2, load):
        with pytest.raises(CheckpointError, match=rf"{file} \(a pickle\).*arbitrary code.*safe_serialization=True"):
            call(directory)
    with pytest.raises(CheckpointError, match=rf"{file} \(a pickle\).*arbitrary code"):
        load(directory / file)
    (directory / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"arbitrary code"):
        load(directory)


def test_load_dispatch_refusals(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not exist, but expected a Hugging Face directory"):
        load(tmp_path / "nowhere")
    plain = tmp_path / "plain.safetensors"
    safetensors_io.write(plain, {"w": np.ones(2)})
    with pytest.raises(CheckpointError, match=r"plain\.safetensors has no gptspec metadata.*save_theta"):
        load(plain)
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(CheckpointError, match=r"file=notes\.txt, but expected"):
        load(text)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match=r"model_type='bert', but expected one of \[.*'gpt2'"):
        load(other)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        load(empty)
    (empty / "config.json").write_text(json.dumps(hf_config()))
    with pytest.raises(CheckpointError, match=r"expected model\.safetensors or model\.safetensors\.index\.json"):
        load(empty)
    raw, _, _, tensors = hf_case(tmp_path)
    hf = write_hf(tmp_path / "hf", raw, tensors)
    with pytest.raises(CheckpointError, match=r"pass the directory"):
        load(hf / "model.safetensors")


def test_loaded_hf_model_runs(tmp_path: Path) -> None:
    """A loaded checkpoint is a valid θ for the reference (the logits themselves are checked
    against Hugging Face in test_hf_gpt2.py)."""
    raw, _, _, tensors = hf_case(tmp_path)
    arch, theta = load(write_hf(tmp_path / "hf", raw, tensors))
    logits = forward(arch, theta, [1, 2, 3])
    assert logits.shape == (3, 23) and np.isfinite(logits).all()
