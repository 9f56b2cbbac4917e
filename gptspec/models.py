"""Resolving what the user names on the command line: a preset or a checkpoint."""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from spec import PRESETS, Architecture, ConfigError, GPTConfig, build_gpt, preset
from spec.counting import count
from spec.theta import random_theta

MAX_RANDOM_THETA_BYTES = 8 * 2**30
"""Seeded random float64 weights are drawn for presets only up to this size (8 GiB)."""


@dataclass
class Model:
    """An architecture, its θ when there is one, and where they came from."""

    arch: Architecture
    theta: dict[str, np.ndarray] | None
    source: str
    note: str = ""


def parse_overrides(items: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs for GPTConfig fields; values are JSON (``4``, ``1e-6``, ``false``),
    a comma list for ``attention`` (``dense,banded``), or a bare string."""
    names = {f.name for f in fields(GPTConfig)}
    changes: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}, but expected KEY=VALUE [command line]; e.g. --set band_width=128")
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(f"--set {key}, but expected a GPTConfig field: {sorted(names)} [command line]{hint}")
        value: object
        if key == "attention":
            value = tuple(part.strip() for part in text.split(","))
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        changes[key] = value
    return changes


def resolve(target: str, overrides: Sequence[str] = (), *, need_theta: bool, seed: int = 0, progress: bool = True) -> Model:
    """A preset name (with ``--set`` overrides; seeded random θ when ``need_theta``) or a
    checkpoint path (its own θ)."""
    if os.path.exists(target):
        if overrides:
            raise ConfigError(f"--set {list(overrides)}, but expected no overrides for a checkpoint [{target}]; a checkpoint fixes its config")
        from gptspec.checkpoint import load

        _say(progress, f"loading checkpoint {target} …")
        arch, weights = load(target)
        return Model(arch, weights, f"checkpoint {target}")
    if target not in PRESETS:
        preset(target)  # raises the error with the nearest names
    chosen = preset(target)
    config = chosen.config.replace(**parse_overrides(overrides)) if overrides else chosen.config
    _say(progress and config.n_layers > 12, f"building {target} ({config.n_layers} layers) …")
    arch = build_gpt(config)
    theta: dict[str, np.ndarray] | None = None
    if need_theta:
        n = count(arch)
        if 8 * n > MAX_RANDOM_THETA_BYTES:
            raise ConfigError(
                f"{target} has {n:,} parameters = {8 * n / 2**30:.1f} GiB in float64, but expected at most "
                f"{MAX_RANDOM_THETA_BYTES / 2**30:.0f} GiB for seeded random weights [preset {target}]; "
                "use a smaller preset, or a checkpoint"
            )
        _say(progress and n > 10**6, f"drawing random θ for {target} ({n:,} parameters, seed {seed}) …")
        theta = random_theta(arch, seed)
    return Model(arch, theta, f"preset {target}" + (f" (seeded random weights, seed {seed})" if need_theta else ""), chosen.note)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
