"""Resolving what the user names on the command line: a preset, a checkpoint, or a builder.

Every command that takes a model (``params``, ``forward``, ``generate``, ``score``, ``check``,
``docs``, ``verify``) resolves it here, through the architecture registry
(spec/architectures/registry.py), so any registered family works with every command:

* a **preset** name (``gpt2-small``), optionally changed with ``--set key=value`` — parsed and
  type-checked by the family's config class — with the documented seeded θ
  (``spec.theta.preset_theta``) when weights are needed;
* a **checkpoint** path: a Hugging Face directory or a gptspec θ file (its own config and θ);
* a **builder** ``module.path:name`` or ``path/to/file.py:name``: a config, an architecture, or
  a function of no arguments returning either.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec import Architecture, ConfigError, build, preset
from spec.architectures import PRESETS
from spec.config import Config
from spec.counting import count
from spec.theta import preset_theta

MAX_RANDOM_THETA_BYTES = 8 * 2**30
"""Seeded random float64 weights are drawn for presets only up to this size (8 GiB)."""


@dataclass
class Model:
    """An architecture, its θ when there is one, and where they came from."""

    arch: Architecture
    theta: dict[str, np.ndarray] | None
    source: str
    note: str = ""


def check_seed(seed: object, option: str) -> int:
    """A seed as numpy's generators take it: a whole number 0 ≤ seed < 2⁶³."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"{option} {seed!r}, but expected a whole number 0 ≤ seed < 2^63 [command line]; numpy's generators take no negative seeds")
    return seed


def parse_overrides(config: Config, items: Sequence[str]) -> Config:
    """``config`` with ``key=value`` overrides applied, each parsed and type-checked by the
    config's class (``Config.parse_field``): JSON values (``4``, ``1e-6``, ``false``), a bare word
    for a string field, a comma list for a tuple field (``dense,banded``)."""
    changes: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}, but expected KEY=VALUE [command line]; e.g. --set band_width=128")
        changes[key] = type(config).parse_field(key, text)
    return config.replace(**changes) if changes else config


def load_object(reference: str, what: str = "target") -> object:
    """The object ``module.path:name`` or ``path/to/file.py:name`` names."""
    module_name, sep, attribute = reference.rpartition(":")
    if not sep or not module_name or not attribute.isidentifier():
        raise ConfigError(f"{what}={reference!r}, but expected module.path:name or path/to/file.py:name [command line]")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ConfigError(f"{what} file {path} does not exist, but expected a Python file [command line]")
        spec = importlib.util.spec_from_file_location(f"gptspec_user_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{what} file {path} could not be loaded as Python [command line]")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # the user's code failed: say where, do not hide it
            raise ConfigError(f"{what} file {path} raised {type(error).__name__}: {error} while loading [command line]") from error
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(f"{what} module {module_name!r} could not be imported ({error}) [command line]; check the name and sys.path") from error
    if not hasattr(module, attribute):
        raise ConfigError(f"{what} {module_name} has no attribute {attribute!r} [command line]")
    return getattr(module, attribute)


def architecture_of(obj: object, where: str) -> Architecture:
    """A builder's result as an architecture: an Architecture, a registered config (built), or a
    function of no arguments returning either."""
    if callable(obj) and not isinstance(obj, (Architecture, Config)) and not isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as error:
            raise ConfigError(f"builder {where} could not be called with no arguments ({error}), but expected a function of none [command line]") from error
    if isinstance(obj, Config):
        return build(obj)
    if isinstance(obj, Architecture):
        return obj
    raise ConfigError(f"{where} gave {type(obj).__name__}, but expected a spec.Architecture or a registered config [command line]")


def resolve(
    target: str, overrides: Sequence[str] = (), *, need_theta: bool, seed: int = 0, progress: bool = True,
    max_theta_bytes: int = MAX_RANDOM_THETA_BYTES,
) -> Model:
    """A preset name (with ``--set`` overrides; seeded θ when ``need_theta``), a checkpoint path
    (its own θ), or a builder reference (seeded θ when ``need_theta``)."""
    if not isinstance(target, str) or not target:
        raise ConfigError(f"model={target!r}, but expected a preset name, a checkpoint path or module:builder [command line]")
    check_seed(seed, "--seed")
    builder = ":" in target and target not in PRESETS and not os.path.lexists(target)
    if not builder and (os.path.lexists(target) or target.endswith((".safetensors", ".json")) or os.sep in target):
        # a path (even a broken link or a loop): the checkpoint reader says precisely what is wrong with it
        if overrides:
            raise ConfigError(f"--set {list(overrides)}, but expected no overrides for a checkpoint [{target}]; a checkpoint fixes its config")
        from gptspec.checkpoint import load

        _say(progress, f"loading checkpoint {target} …")
        arch, weights = load(target)
        return Model(arch, weights, f"checkpoint {target}")
    note = ""
    if builder:
        if overrides:
            raise ConfigError(f"--set {list(overrides)}, but expected no overrides for a builder [{target}]; change the builder")
        arch = architecture_of(load_object(target, "builder"), target)
        source = f"builder {target}"
    else:
        chosen = preset(target)  # an unknown name: the error suggests the nearest ones
        config = parse_overrides(chosen.config, overrides)
        note = chosen.note
        layers = getattr(config, "n_layers", 0)
        _say(progress and isinstance(layers, int) and layers > 12, f"building {target} ({layers} layers) …")
        arch = build(config)
        source = f"preset {target}"
    theta: dict[str, np.ndarray] | None = None
    if need_theta:
        n = count(arch)
        if 8 * n > max_theta_bytes:
            raise ConfigError(
                f"{target} has {n:,} parameters = {8 * n / 2**30:.1f} GiB in float64, but expected at most "
                f"{max_theta_bytes / 2**30:.0f} GiB for seeded random weights [{source}]; "
                "use a smaller preset, or a checkpoint"
            )
        _say(progress and n > 10**6, f"drawing random θ for {target} ({n:,} parameters, seed {seed}) …")
        theta = preset_theta(arch, seed)
        source += f" (seeded random weights, seed {seed})"
    return Model(arch, theta, source, note)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
