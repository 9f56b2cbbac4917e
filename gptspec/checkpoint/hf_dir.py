"""Reading a Hugging Face checkpoint directory: ``config.json`` plus ``model.safetensors`` (or the
shards ``model.safetensors.index.json`` lists), through the layout its ``model_type`` selects.

Only safetensors and JSON are read: pickle-based files (``pytorch_model.bin``, ``*.pt``, ``*.pth``,
``*.ckpt``, ``*.pkl``) are refused, because unpickling can run arbitrary code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, overload

import numpy as np

from gptspec import safetensors_io
from gptspec.checkpoint.layout import (
    Layout,
    Stored,
    layout_for_model_type,
    lazy_theta,
    others,
    read_native_config,
    spelling,
    strip_prefix,
    to_theta,
)
from gptspec.files import read_json
from gptspec.safetensors_io import PathLike
from spec import build
from spec.errors import CheckpointError
from spec.graph import Architecture
from spec.theta import LazyTheta, Theta

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""File suffixes of pickle-based checkpoints, which are refused."""

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
"""Stored dtypes a parameter may have. Integer parameters would be quantised values whose
scales live elsewhere, so they are refused rather than read as numbers."""

CONVERT_FIX = (
    "unpickling can run arbitrary code, so gptspec reads safetensors only; convert it once, "
    "where you trust the file, in Python with transformers: "
    "AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
)


def pickles(directory: Path) -> list[str]:
    """Pickle-based files in a directory, by name."""
    return sorted(p.name for p in directory.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)


def refuse_pickle(path: Path, where: Path) -> CheckpointError:
    return CheckpointError(
        f"weights file={path.name} (a pickle), but expected safetensors (model.safetensors) [checkpoint {where}]; {CONVERT_FIX}"
    )


def read_config_json(directory: Path) -> dict[str, object]:
    """``config.json`` as a JSON object (size, depth and encoding checked by gptspec.files)."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"config.json is missing, but expected it [checkpoint {directory}]")
    raw = read_json(config_file, f"checkpoint {directory}", CheckpointError)
    if not isinstance(raw, dict):
        raise CheckpointError(f"config.json holds {type(raw).__name__}, but expected a JSON object [checkpoint {directory}]")
    return raw


def weight_headers(directory: Path) -> dict[str, safetensors_io.Header]:
    """Tensor name → the header of the file that holds it: ``model.safetensors``, or the shards
    its index lists (the single file wins when both exist, as in transformers)."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        header = safetensors_io.read_header(single)
        return {name: header for name in header.tensors}
    if index.is_file():
        return _shard_headers(directory, index)
    found = pickles(directory)
    if found:
        raise refuse_pickle(directory / found[0], directory)
    raise CheckpointError(
        f"weights file=none, but expected model.safetensors or model.safetensors.index.json "
        f"[checkpoint {directory}]; save the model with save_pretrained(dir, safe_serialization=True)"
    )


def _shard_headers(directory: Path, index: Path) -> dict[str, safetensors_io.Header]:
    raw = read_json(index, f"checkpoint {directory}", CheckpointError)
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise CheckpointError(
            f"{index.name} weight_map={str(weight_map)[:80]}, but expected an object of tensor names to shard file names [checkpoint {directory}]"
        )
    out: dict[str, safetensors_io.Header] = {}
    for shard in dict.fromkeys(weight_map.values()):
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index.name} shard={shard!r}, but expected a file name in the checkpoint directory [checkpoint {directory}]")
        if not (directory / shard).is_file():
            raise CheckpointError(f"shard {shard} (listed in {index.name}) is missing, but expected a file [checkpoint {directory}]")
        header = safetensors_io.read_header(directory / shard)
        listed = [name for name, file in weight_map.items() if file == shard]
        stray = [name for name in header.tensors if weight_map.get(name) != shard]
        if stray:
            raise CheckpointError(
                f"{stray[0]}{others(stray)} is in shard {shard}, but expected only the tensors {index.name} maps to it "
                f"[checkpoint {directory}]; the index and the shards disagree"
            )
        absent = [name for name in listed if name not in header.tensors]
        if absent:
            raise CheckpointError(f"{absent[0]}{others(absent)} is missing from shard {shard}, but expected there by {index.name} [checkpoint {directory}]")
        out |= {name: header for name in listed}
    return out


def read_state(headers: Mapping[str, safetensors_io.Header], names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors ``names`` (all when None), each read from its file (the layout then refuses a
    parameter that is not floating-point; buffers such as a stored causal mask may be BOOL)."""
    wanted = list(headers) if names is None else names
    by_file: dict[Path, list[str]] = {}
    for name in wanted:
        by_file.setdefault(headers[name].path, []).append(name)
    out: dict[str, np.ndarray] = {}
    for names_in_file in by_file.values():
        out |= safetensors_io.read_tensors(headers[names_in_file[0]], names_in_file)
    return out


def stored_tensors(headers: Mapping[str, safetensors_io.Header]) -> dict[str, Stored]:
    """Every tensor of the files as a :class:`Stored` whose ``open`` memory-maps it."""
    out: dict[str, Stored] = {}
    for name, header in headers.items():
        info = header.tensors[name]
        out[name] = Stored(info.shape, info.dtype, info.end - info.begin, _mapper(header, name))
    return out


def _mapper(header: safetensors_io.Header, name: str) -> Callable[[], np.ndarray]:
    return lambda: safetensors_io.map_tensor(header, name)


def _architecture(lay: Layout, raw: Mapping[str, object], path: Path) -> Architecture:
    config = read_native_config(lay, raw, str(path))
    config = config.replace(name=path.resolve().name or lay.name) if "name" in config.field_names() else config
    return build(config)


def directory_architecture(directory: PathLike) -> Architecture:
    """The architecture a Hugging Face directory's ``config.json`` describes, with the same checks
    as :func:`load_directory` (every key modelled, ignored with a reason, or refused) and no
    weights read: what counting parameters or drawing one's own θ needs."""
    path = Path(directory)
    raw = read_config_json(path)
    if "model_type" not in raw:
        raise CheckpointError(f"config key model_type is missing, but expected a model_type [checkpoint {path}]; add it to config.json")
    return _architecture(layout_for_model_type(raw["model_type"], str(path)), raw, path)


@overload
def load_directory(directory: PathLike, expected: Layout | None = None, lazy: Literal[False] = False) -> tuple[Architecture, Theta]: ...
@overload
def load_directory(directory: PathLike, expected: Layout | None, lazy: Literal[True]) -> tuple[Architecture, LazyTheta]: ...
@overload
def load_directory(directory: PathLike, expected: Layout | None, lazy: bool) -> tuple[Architecture, Theta | LazyTheta]: ...


def load_directory(directory: PathLike, expected: Layout | None = None, lazy: bool = False) -> tuple[Architecture, Theta | LazyTheta]:
    """The architecture and float64 θ of a Hugging Face directory, through the layout its
    ``model_type`` selects (or ``expected``, which it must then match). Everything the layout does
    not model is refused with a :class:`CheckpointError`. ``lazy``: θ as a
    :class:`~spec.theta.LazyTheta` over memory maps of the files (single or sharded), each entry
    read and made float64 when used (the same values, bit for bit)."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(f"path={path} is not a directory, but expected a Hugging Face checkpoint directory (config.json + model.safetensors) [load]")
    raw = read_config_json(path)
    if "model_type" not in raw:
        want = f"model_type={expected.model_type!r}" if expected is not None else "a model_type"
        raise CheckpointError(f"config key model_type is missing, but expected {want} [checkpoint {path}]; add it to config.json")
    lay = layout_for_model_type(raw["model_type"], str(path))
    if expected is not None and lay is not expected:
        raise CheckpointError(
            f"config.json model_type={raw['model_type']!r}, but expected model_type={expected.model_type!r} [checkpoint {path}]; "
            f"this reads {expected.description} only"
        )
    arch = _architecture(lay, raw, path)
    headers = weight_headers(path)
    by_key = strip_prefix(lay, headers, str(path))
    if lazy:
        stored = stored_tensors(headers)
        return arch, lazy_theta(lay, arch, {key: stored[name] for key, name in by_key.items()}, str(path), spelling(lay, by_key))
    state = read_state(headers)
    theta = to_theta(lay, arch, {key: state[name] for key, name in by_key.items()}, str(path), spelling(lay, by_key))
    return arch, theta
