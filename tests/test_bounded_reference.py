"""The reference in bounded memory (issue 13, item 1): checkpoints read lazily through memory maps
(single files, shards, θ files; F32, F16, BF16), θ entries made float64 only while the ops that
read them run, values dropped after their last reader — and every result equal, bit for bit, to
the in-memory reference. The large-model figures are benchmarks/reference_memory.py's
(docs/performance.md)."""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import fast
import reference
from gptspec import safetensors_io
from gptspec.checkpoint import export_state_dict, load, native_config, save_theta
from gptspec.checkpoint.layout import layout
from gptspec.estimate import largest_live_theta
from spec import CheckpointError, build, preset
from spec.architectures.gpt import GPTConfig
from spec.theta import LazyTheta, random_theta

RAW = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}


def write_dir(directory: Path, arch: object, theta: dict[str, np.ndarray], layout_name: str, dtype: str, shards: int = 1) -> None:
    """θ exported through the layout, stored in ``dtype`` (BF16 as raw bits), in ``shards`` files."""
    state = export_state_dict(arch, theta, layout_name, prefixed=False)  # type: ignore[arg-type]
    if layout(layout_name).name == "hf-gpt2":
        state.pop("lm_head.weight", None)
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(native_config(arch, layout_name)))  # type: ignore[arg-type]
    stored = {name: np.ascontiguousarray(value).astype(RAW[dtype]) for name, value in state.items()}
    names = list(stored)
    groups = [names[i::shards] for i in range(shards)]
    weight_map = {}
    for i, group in enumerate(groups):
        file = "model.safetensors" if shards == 1 else f"model-{i + 1:05d}-of-{shards:05d}.safetensors"

        def chunks(name: str) -> Iterator[np.ndarray]:
            array = stored[name]
            yield array.view(np.uint16) if dtype == "BF16" else array

        safetensors_io.write_stream(directory / file, {n: (dtype, stored[n].shape) for n in group}, chunks)
        weight_map |= {n: file for n in group}
    if shards > 1:
        (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


CASES = [("tiny", "hf-gpt2", "F32", 1), ("tiny", "hf-gpt2", "F16", 2), ("tiny-llama", "hf-llama", "BF16", 3), ("tiny-llama", "hf-llama", "F32", 1)]


@pytest.mark.parametrize(("name", "layout_name", "dtype", "shards"), CASES)
def test_lazy_checkpoints_equal_the_in_memory_reference_bit_for_bit(tmp_path: Path, name: str, layout_name: str, dtype: str, shards: int) -> None:
    arch = build(preset(name).config)
    write_dir(tmp_path / "ckpt", arch, random_theta(arch, seed=3, std=0.3), layout_name, dtype, shards)
    arch_eager, eager = load(tmp_path / "ckpt")
    arch_lazy, lazy = load(tmp_path / "ckpt", lazy=True)
    assert isinstance(lazy, LazyTheta) and list(lazy) == list(eager) and lazy.shapes == {n: v.shape for n, v in eager.items()}
    for key in eager:  # every entry: same float64 values, contiguous, fresh each read
        got = lazy[key]
        assert got.dtype == np.float64 and got.flags.c_contiguous and np.array_equal(got, eager[key]), key
    assert lazy.nbytes == sum(math.prod(s) for s in lazy.shapes.values() if True) * np.dtype(RAW[dtype]).itemsize or layout_name == "hf-llama"
    ids = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    want = reference.evaluate(arch_eager, eager, {"ids": ids})
    everything = reference.evaluate(arch_lazy, lazy, {"ids": ids})
    assert set(everything) == set(want) and all(np.array_equal(everything[k], want[k]) for k in want)
    assert np.array_equal(reference.forward(arch_lazy, lazy, ids), want["logits"])
    bounded = reference.evaluate(arch_lazy, lazy, {"ids": ids}, keep="outputs")
    assert set(bounded) == {"logits", arch_lazy.output_paths()["logits"]} and np.array_equal(bounded["logits"], want["logits"])
    path = "blocks.0.attn.head_1.softmax"
    some = reference.evaluate(arch_lazy, lazy, {"ids": ids}, keep=[path])
    assert np.array_equal(some[path], want[path]) and "blocks.0.ln_1" not in some
    # fast/ compiles a lazy θ an entry at a time, to the same program
    for dt in ("float64", "float32"):
        assert np.array_equal(fast.compile(arch_lazy, lazy, dt).forward(ids[None]), fast.compile(arch_eager, eager, dt).forward(ids[None]))


def test_lazy_theta_files(tmp_path: Path) -> None:
    arch = build(preset("tiny").config)
    theta = random_theta(arch, seed=1, std=0.4)
    save_theta(tmp_path / "t.safetensors", arch, theta)
    _, lazy = load(tmp_path / "t.safetensors", lazy=True)
    assert isinstance(lazy, LazyTheta)
    assert all(np.array_equal(lazy[k], theta[k]) for k in theta)
    assert np.array_equal(reference.forward(arch, lazy, [1, 2, 3]), reference.forward(arch, theta, [1, 2, 3]))


def test_lazy_loading_refuses_what_eager_loading_refuses(tmp_path: Path) -> None:
    arch = build(preset("tiny").config)
    write_dir(tmp_path / "nan", arch, random_theta(arch, seed=2, std=0.3), "hf-gpt2", "F32")
    tensors = safetensors_io.read(tmp_path / "nan" / "model.safetensors")
    tensors["h.1.mlp.c_proj.weight"][3, 2] = np.nan
    safetensors_io.write(tmp_path / "nan" / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match="h.1.mlp.c_proj.weight has 1 non-finite entries"):
        load(tmp_path / "nan")
    _, lazy = load(tmp_path / "nan", lazy=True)  # found when the entry is read, with the same message
    with pytest.raises(CheckpointError, match="h.1.mlp.c_proj.weight has 1 non-finite entries"):
        reference.forward(arch, lazy, [1, 2])
    # structure is checked up front, from the header alone
    other = build(GPTConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=3, n_heads=2, name="tiny"))
    write_dir(tmp_path / "deep", other, random_theta(other, seed=0), "hf-gpt2", "F32")
    config = json.loads((tmp_path / "deep" / "config.json").read_text())
    config["n_layer"] = 2
    (tmp_path / "deep" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"h\.2\..* is unexpected"):
        load(tmp_path / "deep", lazy=True)


def test_a_tied_head_stored_twice_is_compared_chunk_by_chunk(tmp_path: Path) -> None:
    arch = build(preset("tiny").config)
    theta = random_theta(arch, seed=4, std=0.3)
    write_dir(tmp_path / "c", arch, theta, "hf-gpt2", "F32")
    header = safetensors_io.read_header(tmp_path / "c" / "model.safetensors")
    tensors = safetensors_io.read_tensors(header)
    for value, ok in ((tensors["wte.weight"], True), (tensors["wte.weight"] + np.float32(1e-3), False)):
        safetensors_io.write(tmp_path / "c" / "model.safetensors", tensors | {"lm_head.weight": value})
        if ok:
            load(tmp_path / "c", lazy=True)
        else:
            with pytest.raises(CheckpointError, match=r"lm_head.weight differs from .*wte.weight \(max \|Δ\| = 0.001\)"):
                load(tmp_path / "c", lazy=True)


def test_the_reference_holds_about_one_block_of_theta_at_a_time() -> None:
    """Every float64 entry a lazy θ hands out is tracked until it is freed: the most alive at
    once is what the plan predicts (an entry from the first op that reads it to the last), a
    small part of θ for a deep model, and no entry is read twice in one evaluation."""
    arch = build(GPTConfig(n_vocab=40, n_ctx=16, d_model=24, n_layers=8, n_heads=2, tied=False, name="deep"))
    theta = random_theta(arch, seed=0, std=0.3)
    live: dict[int, int] = {}
    peak, reads = [0], []

    def load_entry(name: str) -> np.ndarray:
        array = np.array(theta[name])
        reads.append(name)
        live[id(array)] = array.nbytes
        weakref.finalize(array, live.pop, id(array), None)
        peak[0] = max(peak[0], sum(live.values()))
        return array

    lazy = LazyTheta(arch.theta_shapes(), load_entry)
    out = reference.forward(arch, lazy, [1, 2, 3, 4])
    assert np.array_equal(out, reference.forward(arch, theta, [1, 2, 3, 4]))
    assert sorted(reads) == sorted(theta), "each entry read exactly once"
    total = sum(v.nbytes for v in theta.values())
    assert peak[0] <= largest_live_theta(arch), (peak[0], largest_live_theta(arch))
    assert peak[0] < total / 4, (peak[0], total)  # one block of eight plus the embeddings in flight
