"""θ in the spec's own names: a safetensors file (float64, Θ's names and order) whose
``__metadata__`` holds the architecture family and its config as JSON, so the file alone rebuilds
the architecture through the registry (spec/architectures/registry.py) — for any registered
family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, overload

import numpy as np

from gptspec import safetensors_io
from gptspec.checkpoint.hf_dir import FLOAT_DTYPES
from gptspec.checkpoint.layout import Stored, float_tensor, others, stored_float64
from gptspec.safetensors_io import PathLike
from spec import build, family_of
from spec.architectures import family
from spec.config import Config
from spec.dims import show
from spec.errors import CheckpointError, ConfigError
from spec.graph import Architecture
from spec.theta import LazyTheta, Theta, float64_theta

THETA_FORMAT = "gptspec.theta/1"
"""The ``format`` entry of the ``__metadata__`` of files :func:`save_theta` writes. Files with no
``family`` entry (the first version wrote none) are GPTs."""


def save_theta(path: PathLike, arch: Architecture, theta: Mapping[str, np.ndarray]) -> Path:
    """Write θ as safetensors (float64, Θ's names and order) with the architecture's family and
    config in ``__metadata__``, so :func:`load_theta` needs nothing else. Returns the path."""
    p = Path(path)
    where = f"save_theta {p}"
    if not isinstance(arch, Architecture):
        raise CheckpointError(f"architecture of type {type(arch).__name__}, but expected a spec.Architecture [{where}]")
    try:
        fam = family_of(arch.config)
    except ConfigError as error:
        raise CheckpointError(f"{error} [{where}]; save_theta writes architectures built from a registered config") from None
    config = arch.config
    if not isinstance(config, Config):
        raise CheckpointError(f"architecture {arch.name} has no registered config [{where}]")
    rebuilt = build(config)
    if rebuilt.theta != arch.theta:
        raise CheckpointError(
            f"architecture {arch.name} has a Θ that its config does not rebuild, but expected the same Θ [{where}]; "
            "the file could not be read back"
        )
    arrays = float64_theta(arch, theta, where)
    safetensors_io.write(p, arrays, {"format": THETA_FORMAT, "family": fam.name, "config": config.to_json()})
    return p


@overload
def load_theta(path: PathLike, lazy: Literal[False] = False) -> tuple[Architecture, Theta]: ...
@overload
def load_theta(path: PathLike, lazy: Literal[True]) -> tuple[Architecture, LazyTheta]: ...
@overload
def load_theta(path: PathLike, lazy: bool) -> tuple[Architecture, Theta | LazyTheta]: ...


def load_theta(path: PathLike, lazy: bool = False) -> tuple[Architecture, Theta | LazyTheta]:
    """Read a file :func:`save_theta` wrote: the architecture and θ (float64, finite). ``lazy``:
    θ as a :class:`~spec.theta.LazyTheta` over a memory map of the file, each entry read when
    used."""
    p = Path(path)
    header = safetensors_io.read_header(p)
    where = f"checkpoint {p}"
    if header.metadata.get("format") != THETA_FORMAT or "config" not in header.metadata:
        raise CheckpointError(
            f"__metadata__ format={header.metadata.get('format')!r}, but expected format={THETA_FORMAT!r} "
            f"with a config [{where}]; this safetensors file was not written by gptspec.checkpoint.save_theta"
        )
    try:
        fam = family(header.metadata.get("family", "gpt"))
        config = fam.config.from_json(header.metadata["config"], f"__metadata__ config, {where}")
        arch = build(config)
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    shapes = arch.theta_shapes()
    missing = [name for name in shapes if name not in header.tensors]
    if missing:
        raise CheckpointError(
            f"{missing[0]} is missing{others(missing)}, but expected a tensor of shape {show(arch.theta[missing[0]])} = {shapes[missing[0]]} [{where}]"
        )
    extra = [name for name in header.tensors if name not in shapes]
    if extra:
        raise CheckpointError(f"{extra[0]} is unexpected{others(extra)}, but expected only Θ's names [{where}]")
    for name, want in shapes.items():
        info = header.tensors[name]
        if info.shape != want:
            raise CheckpointError(f"{name} has shape {info.shape}, but expected {show(arch.theta[name])} = {want} [{where}]")
        if info.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{name} has dtype {info.dtype}, but expected one of {list(FLOAT_DTYPES)} [{where}]")
    if lazy:
        stored = {name: Stored(info.shape, info.dtype, info.end - info.begin, _mapper(header, name))
                  for name, info in ((n, header.tensors[n]) for n in shapes)}

        def entry(name: str) -> np.ndarray:
            return stored_float64(name, stored[name], _whole, str(p))

        return arch, LazyTheta(shapes, entry, sum(s.nbytes for s in stored.values()), str(p))
    arrays = safetensors_io.read_tensors(header, list(shapes))
    return arch, {name: float_tensor(name, value, str(p)) for name, value in arrays.items()}


def _whole(raw: np.ndarray) -> np.ndarray:
    return raw


def _mapper(header: safetensors_io.Header, name: str) -> Callable[[], np.ndarray]:
    return lambda: safetensors_io.map_tensor(header, name)
