"""Checkpoints: external layouts in and out, and θ in the spec's own names.

* :mod:`gptspec.safetensors_io` — our safetensors reader and writer (no dependency but numpy);
* :mod:`gptspec.checkpoint.layout` — layouts as data: external tensor names ↔ Θ, native config
  keys ↔ spec config fields, module names ↔ DAG paths; import and export from one table;
* one module per external layout: :mod:`gptspec.checkpoint.hf_gpt2` (``hf-gpt2``),
  :mod:`gptspec.checkpoint.hf_marian` (``hf-marian``), :mod:`gptspec.checkpoint.nanogpt` (``nanogpt``),
  :mod:`gptspec.checkpoint.meta_llama` (``meta-llama``: Meta's reference names, interleaved rotary),
  :mod:`gptspec.checkpoint.gpt_fast` (``gpt-fast``) and :mod:`gptspec.checkpoint.litgpt` (``litgpt``): fused QKV under grouped-query attention;
* :mod:`gptspec.checkpoint.hf_dir` — reading a Hugging Face directory through its layout;
* :mod:`gptspec.checkpoint.theta_file` — θ under Θ's names with the family and config inside.

:func:`load` reads any of them; :func:`export_state_dict` / :func:`import_state_dict` convert θ
to and from a layout's state dict (bit-exact both ways).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, overload

import numpy as np

from gptspec import safetensors_io
from gptspec.checkpoint import gpt_fast as _gpt_fast  # noqa: F401  (registers the gpt-fast layout)
from gptspec.checkpoint import hf_gemma as _hf_gemma  # noqa: F401  (registers the hf-gemma, hf-gemma2 layouts)
from gptspec.checkpoint import hf_gpt2 as _hf_gpt2  # noqa: F401  (registers the hf-gpt2 layout)
from gptspec.checkpoint import hf_llama as _hf_llama  # noqa: F401  (registers the hf-llama, hf-mistral, hf-qwen2 layouts)
from gptspec.checkpoint import hf_marian as _hf_marian  # noqa: F401  (registers the hf-marian layout)
from gptspec.checkpoint import hf_mixtral as _hf_mixtral  # noqa: F401  (registers the hf-mixtral layout)
from gptspec.checkpoint import hf_neox as _hf_neox  # noqa: F401  (registers the hf-neox layout)
from gptspec.checkpoint import hf_olmo2 as _hf_olmo2  # noqa: F401  (registers the hf-olmo2 layout)
from gptspec.checkpoint import hf_phi3 as _hf_phi3  # noqa: F401  (registers the hf-phi3 layout)
from gptspec.checkpoint import hf_qwen as _hf_qwen  # noqa: F401  (registers the hf-qwen3, hf-qwen2-moe, hf-qwen3-moe layouts)
from gptspec.checkpoint import litgpt as _litgpt  # noqa: F401  (registers the litgpt, litgpt-legacy layouts)
from gptspec.checkpoint import meta_llama as _meta_llama  # noqa: F401  (registers the meta-llama layout)
from gptspec.checkpoint import nanogpt as _nanogpt  # noqa: F401  (registers the nanogpt layout)
from gptspec.checkpoint.hf_dir import PICKLE_SUFFIXES, directory_architecture, load_directory, pickles, refuse_pickle
from gptspec.checkpoint.hf_gpt2 import HF_ACTIVATIONS, HF_GPT2, HF_GPT2_KEYS
from gptspec.checkpoint.layout import (
    LAYOUTS,
    Alias,
    ConfigKey,
    Layout,
    Tensor,
    from_theta,
    layout,
    read_native_config,
    register_layout,
    strip_prefix,
    to_theta,
)
from gptspec.checkpoint.theta_file import THETA_FORMAT, load_theta, save_theta
from gptspec.safetensors_io import PathLike
from spec import build
from spec.config import Config
from spec.errors import CheckpointError, ConfigError, FileError
from spec.graph import Architecture
from spec.theta import LazyTheta, Theta, float64_theta


def hf_gpt2_config(raw: Mapping[str, object], where: str, name: str = "gpt2") -> Config:
    """The spec config a Hugging Face GPT-2 ``config.json`` describes (see :data:`HF_GPT2_KEYS`)."""
    return read_native_config(HF_GPT2, raw, where).replace(name=name)


def load_hf_gpt2(directory: PathLike) -> tuple[Architecture, Theta]:
    """The architecture and float64 θ of a Hugging Face GPT-2 directory."""
    return load_directory(directory, HF_GPT2, False)


def export_state_dict(arch: Architecture, theta: Mapping[str, np.ndarray], layout_name: str = "hf-gpt2", prefixed: bool = True) -> dict[str, np.ndarray]:
    """θ as the state dict of an external layout (float64 arrays under its names, with the
    full model's prefix when ``prefixed``): e.g. what ``GPT2LMHeadModel.load_state_dict`` takes
    (as torch tensors). Bit-exact: :func:`import_state_dict` gives θ back."""
    lay = layout(layout_name)
    where = f"export to {lay.name}"
    _check_family(lay, arch, where)
    lay.write_config(arch.config)  # refuses a config the layout cannot express, by name
    return from_theta(lay, arch, float64_theta(arch, theta, where), prefixed)


def import_state_dict(config: Config, state: Mapping[str, object], layout_name: str = "hf-gpt2") -> tuple[Architecture, Theta]:
    """The architecture of ``config`` and θ from a layout's state dict (names with or without the
    prefix; numpy arrays or anything ``np.asarray`` reads, e.g. CPU torch tensors)."""
    lay = layout(layout_name)
    where = f"import from {lay.name}"
    arch = build(config)
    _check_family(lay, arch, where)
    by_key = strip_prefix(lay, state, where)
    return arch, to_theta(lay, arch, {key: np.asarray(state[name]) for key, name in by_key.items()}, where)


def native_config(arch: Architecture, layout_name: str = "hf-gpt2") -> dict[str, object]:
    """The layout's native config (e.g. Hugging Face ``GPT2Config`` keys) of an architecture."""
    lay = layout(layout_name)
    _check_family(lay, arch, f"native config of {lay.name}")
    return lay.write_config(arch.config)


def _check_family(lay: Layout, arch: Architecture, where: str) -> None:
    from spec import family_of

    if not isinstance(arch, Architecture) or family_of(arch.config).name != lay.family:
        got = type(getattr(arch, "config", None)).__name__
        raise CheckpointError(f"architecture config {got}, but expected a {lay.family} config for layout {lay.name} [{where}]")


EXPECTED = (
    "a Hugging Face directory (config.json with a model_type gptspec has a layout for + model.safetensors) "
    "or a .safetensors file written by gptspec.checkpoint.save_theta"
)


def load_architecture(path: PathLike) -> Architecture:
    """The architecture of any checkpoint gptspec reads, without reading its weights when it can:
    a Hugging Face directory's ``config.json`` alone (the weights may be absent), a gptspec θ
    file's header."""
    p = Path(path)
    if p.is_dir() and (p / "config.json").exists():
        return directory_architecture(p)
    arch, _ = load(p, lazy=True)
    return arch


@overload
def load(path: PathLike, lazy: Literal[False] = False) -> tuple[Architecture, Theta]: ...
@overload
def load(path: PathLike, lazy: Literal[True]) -> tuple[Architecture, LazyTheta]: ...
@overload
def load(path: PathLike, lazy: bool) -> tuple[Architecture, Theta | LazyTheta]: ...


def load(path: PathLike, lazy: bool = False) -> tuple[Architecture, Theta | LazyTheta]:
    """Load any checkpoint gptspec reads (see :data:`EXPECTED`): the architecture and θ.
    ``lazy``: θ as a :class:`~spec.theta.LazyTheta` over memory maps of the files, each entry read
    and made float64 only when used (for checkpoints larger than memory in float64; the values
    are the same, bit for bit)."""
    if not isinstance(path, str | os.PathLike) or isinstance(path, str) and not path:
        raise FileError(f"path={path!r} of type {type(path).__name__}, but expected a checkpoint path (a str or os.PathLike) [load]; {EXPECTED}")
    if not isinstance(lazy, bool):
        raise ConfigError(f"lazy={lazy!r}, but expected True or False [load]")
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise FileError(f"path={p} is a broken symbolic link or a symlink loop, but expected {EXPECTED} [load]")
    if not p.exists():
        raise CheckpointError(f"path={p} does not exist, but expected {EXPECTED} [load]")
    if p.is_dir():
        if (p / "config.json").exists():
            return load_directory(p, None, lazy)
        found = pickles(p)
        if found:
            raise refuse_pickle(p / found[0], p)
        raise CheckpointError(f"directory {p} has no config.json, but expected {EXPECTED} [load]")
    if p.suffix in PICKLE_SUFFIXES:
        raise refuse_pickle(p, p)
    if p.suffix != ".safetensors":
        raise CheckpointError(f"file={p.name}, but expected {EXPECTED} [load]")
    header = safetensors_io.read_header(p)
    if header.metadata.get("format") == THETA_FORMAT:
        return load_theta(p, lazy=lazy)
    if (p.parent / "config.json").is_file():
        raise CheckpointError(
            f"file={p.name} has no gptspec metadata, but expected {EXPECTED} [load {p}]; "
            f"it looks like part of a Hugging Face checkpoint: pass the directory {p.parent}"
        )
    raise CheckpointError(f"file={p.name} has no gptspec metadata (format={THETA_FORMAT!r}), but expected {EXPECTED} [load {p}]")


__all__ = [
    "HF_ACTIVATIONS", "HF_GPT2", "HF_GPT2_KEYS", "LAYOUTS", "THETA_FORMAT", "Alias", "ConfigKey", "Layout", "Tensor",
    "export_state_dict", "hf_gpt2_config", "import_state_dict", "layout", "load", "load_architecture", "load_hf_gpt2", "load_theta",
    "native_config", "register_layout", "save_theta",
]
