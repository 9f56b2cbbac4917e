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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptspec.estimate import Estimate, available_memory, check_fits, estimate, largest_live_theta, parameters_of
from spec import Architecture, ConfigError, build, preset
from spec.architectures import PRESETS
from spec.config import Config
from spec.counting import count
from spec.theta import LazyTheta, preset_theta

MAX_RANDOM_THETA_BYTES = 8 * 2**30
"""Seeded random float64 weights are drawn for presets only up to this size (8 GiB)."""


@dataclass
class Model:
    """An architecture, its θ when there is one, and where they came from. A checkpoint resolved
    with ``lazy=True`` has a :class:`~spec.theta.LazyTheta` (entries read from memory maps when
    used); ``estimate`` is the run's cost when :func:`resolve` was told the run (``run=``)."""

    arch: Architecture
    theta: Mapping[str, np.ndarray] | None
    source: str
    note: str = ""
    estimate: Estimate | None = None


@dataclass(frozen=True)
class Run:
    """What will be run on the model, for the estimate and the memory check made before any θ is
    drawn or read (gptspec/estimate.py): the implementation, its dtype, and the positions."""

    impl: str
    dtype: str = "float64"
    tokens: int = 16
    batch: int = 1
    command: str = "command line"


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


TORCH_EXTRA = ("torch", "transformers")
"""The packages of the ``gptspec[torch]`` extra (pyproject.toml): a target that needs one that is
missing is told to install the extra."""


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
            missing = (error.name or "").split(".")[0]
            fix = (f"{missing} is in the torch extra: pip install 'gptspec[torch]' (from a clone: pip install '.[torch]'; README, \"Install\")"
                   if missing in TORCH_EXTRA else "check the name and sys.path")
            raise ConfigError(f"{what} module {module_name!r} could not be imported ({error}) [command line]; {fix}") from error
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
    max_theta_bytes: int = MAX_RANDOM_THETA_BYTES, lazy: bool = False, run: Run | None = None,
) -> Model:
    """A preset name (with ``--set`` overrides; seeded θ when ``need_theta``), a checkpoint path
    (its own θ; read lazily, from memory maps, with ``lazy``), or a builder reference (seeded θ when
    ``need_theta``). With ``run``, the run's cost is estimated first (gptspec/estimate.py) and a run
    that cannot fit in the available memory is refused with the numbers — for a preset before its
    DAG is built or its θ drawn; the estimate is printed on standard error for a large model."""
    if not isinstance(target, str) or not target:
        raise ConfigError(f"model={target!r}, but expected a preset name, a checkpoint path or module:builder [command line]")
    check_seed(seed, "--seed")
    builder = ":" in target and target not in PRESETS and not os.path.lexists(target)
    if not builder and (os.path.lexists(target) or target.endswith((".safetensors", ".json")) or os.sep in target):
        # a path (even a broken link or a loop): the checkpoint reader says precisely what is wrong with it
        if overrides:
            raise ConfigError(f"--set {list(overrides)}, but expected no overrides for a checkpoint [{target}]; a checkpoint fixes its config")
        from gptspec.checkpoint import load, load_architecture

        if not need_theta and run is None:  # the config alone (a directory may hold no weights at all)
            _say(progress, f"reading the architecture of checkpoint {target} …")
            return Model(load_architecture(target), None, f"checkpoint {target}")
        _say(progress, f"loading checkpoint {target} …")
        arch, weights = load(target, lazy=lazy or run is not None)
        found: Estimate | None = None
        if run is not None and isinstance(weights, LazyTheta):
            found = _check_run(arch.config, run, count(arch), progress, weights.nbytes, "lazy" if lazy else "loaded",
                             largest_live_theta(arch) if run.impl == "reference" else None)
            if not lazy:
                weights = {name: weights[name] for name in weights}  # read whole, now that it is known to fit
        return Model(arch, weights, f"checkpoint {target}", estimate=found)
    note = ""
    est: Estimate | None = None
    if builder:
        if overrides:
            raise ConfigError(f"--set {list(overrides)}, but expected no overrides for a builder [{target}]; change the builder")
        arch = architecture_of(load_object(target, "builder"), target)
        source = f"builder {target}"
    else:
        chosen = preset(target)  # an unknown name: the error suggests the nearest ones
        config = parse_overrides(chosen.config, overrides)
        note = chosen.note
        if need_theta:  # refuse a θ that cannot be drawn before building the DAG: a hostile size is refused at once
            n = parameters_of(config)
            _check_theta_size(n, target, f"preset {target}", max_theta_bytes)
            if run is not None:
                est = _check_run(config, run, n, progress)
        layers = getattr(config, "n_layers", 0)
        _say(progress and isinstance(layers, int) and layers > 12, f"building {target} ({layers} layers) …")
        arch = build(config)
        source = f"preset {target}"
    theta: dict[str, np.ndarray] | None = None
    if need_theta:
        n = count(arch)
        _check_theta_size(n, target, source, max_theta_bytes)
        if run is not None and est is None:
            est = _check_run(arch.config, run, n, progress)
        _say(progress and n > 10**6, f"drawing random θ for {target} ({n:,} parameters, seed {seed}) …")
        theta = preset_theta(arch, seed)
        source += f" (seeded random weights, seed {seed})"
    return Model(arch, theta, source, note, est)


def _check_theta_size(n: int, target: str, source: str, max_theta_bytes: int) -> None:
    """Seeded random weights are float64 in memory: at most ``max_theta_bytes`` and what the machine has."""
    if 8 * n > max_theta_bytes:
        raise ConfigError(
            f"{target} has {n:,} parameters = {8 * n / 2**30:.1f} GiB in float64, but expected at most "
            f"{max_theta_bytes / 2**30:.0f} GiB for seeded random weights [{source}]; "
            "use a smaller preset, or a checkpoint"
        )
    if 8 * n > available_memory():
        raise ConfigError(
            f"{target} has {n:,} parameters = {8 * n / 2**30:.1f} GiB in float64, but expected at most the "
            f"{available_memory() / 2**30:.1f} GiB this machine has available [{source}]; use a smaller preset, or a checkpoint"
        )


LARGE = 10**8
"""Parameters from which a run's estimate is printed before it starts."""


def _check_run(
    config: object, run: Run, n: int, progress: bool, bytes_to_read: int = 0, theta: str = "drawn", largest_block: int | None = None,
) -> Estimate:
    est = estimate(config, impl=run.impl, dtype=run.dtype, tokens=run.tokens, batch=run.batch, parameters=n,
                   bytes_to_read=bytes_to_read, theta=theta, largest_block=largest_block)
    _say(progress and n >= LARGE, est.line())
    check_fits(est, f"gptspec {run.command}")
    return est


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
