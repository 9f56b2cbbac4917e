"""The architecture registry: family name → config class + builder, and the one table of named
presets.

Every tool — presets, ``params``, ``forward``, ``check``, ``verify``, ``docs``, the θ file — goes
through this registry, so an architecture family registered here (a builder made of existing
ops) works everywhere without edits elsewhere:

    @register_family("gpt", GPTConfig, "decoder-only GPT (GPT-2, GPT-3)")
    def build_gpt(config: GPTConfig) -> Architecture: ...

    register_preset("gpt2-small", GPTConfig(...), note="…")

A builder must return a validated :class:`~spec.graph.Architecture` whose ``config`` is the
config it was given, so the architecture can be rebuilt from its config alone (the θ file
relies on it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from spec.config import Config
from spec.errors import ConfigError
from spec.graph import Architecture

MAX_GRAPH_NODES = 400_000
"""The largest DAG a builder is asked to make (about 6× GPT-3 175B's 66,000 nodes, ~60 s to
build): a config that would make more is refused before any work, with its size."""

Builder = Callable[[Any], Architecture]
B = TypeVar("B", bound=Builder)


Report = Callable[[Architecture], list[str]]
"""A family's optional report on one of its architectures: lines ``gptspec params`` prints (e.g. a
compressed model's reduction against its baseline)."""


@dataclass(frozen=True)
class Family:
    """One registered architecture family."""

    name: str
    config: type[Config]
    builder: Builder
    description: str
    report: Report | None = None


FAMILIES: dict[str, Family] = {}
"""Every registered family by name, in registration order."""


def register_family(name: str, config: type[Config], description: str, report: Report | None = None) -> Callable[[B], B]:
    """Decorator for a builder ``config → Architecture``: register it under ``name`` (with an
    optional :data:`Report` hook)."""

    def decorate(builder: B) -> B:
        if name in FAMILIES:
            raise ConfigError(f"family={name!r} is registered twice, but expected unique family names [architecture registry]")
        if any(f.config is config for f in FAMILIES.values()):
            raise ConfigError(f"config class {config.__name__} is registered for two families, but expected one [architecture registry]")
        if getattr(config, "family", "") != name:
            raise ConfigError(
                f"{config.__name__}.family={getattr(config, 'family', '')!r}, but expected family={name!r} "
                "[architecture registry]; set the ClassVar family on the config class"
            )
        FAMILIES[name] = Family(name, config, builder, description, report)
        return builder

    return decorate


def family(name: str) -> Family:
    """The family called ``name``; an unknown name suggests the nearest ones."""
    if name not in FAMILIES:
        raise ConfigError(f"family={name!r}, but expected one of {list(FAMILIES)} [architecture registry]{_suggest(name, FAMILIES)}")
    return FAMILIES[name]


def family_of(config: object) -> Family:
    """The family whose config class ``config`` is an instance of."""
    for f in FAMILIES.values():
        if type(config) is f.config:
            return f
    known = ", ".join(f.config.__name__ for f in FAMILIES.values())
    raise ConfigError(
        f"config of type {type(config).__name__}, but expected a registered config ({known}) [architecture registry]; "
        "build one, e.g. spec.GPTConfig(n_vocab=…, n_ctx=…, d_model=…, n_layers=…, n_heads=…)"
    )


def build(config: Config) -> Architecture:
    """The architecture of ``config``, by its family's builder, after refusing a graph too large
    to build."""
    fam = family_of(config)
    size = config.graph_size()
    if size > MAX_GRAPH_NODES:
        raise ConfigError(
            f"{config._where()} would make a DAG of about {size:,} nodes, but expected at most {MAX_GRAPH_NODES:,} "
            "[architecture registry]; reduce n_layers or n_heads (the largest preset, gpt3-175b, has about 66,000)"
        )
    arch = fam.builder(config)
    if arch.config is not config:
        raise ConfigError(f"builder {fam.builder.__name__} returned an architecture without its config [architecture registry]")
    return arch


# -- presets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named config and what a user should know about it."""

    config: Config
    note: str = ""

    @property
    def family(self) -> str:
        return family_of(self.config).name


PRESETS: dict[str, Preset] = {}
"""Every named preset, in registration order (the table ``gptspec presets`` prints)."""


def register_preset(name: str, config: Config, note: str = "") -> Preset:
    """Add a preset under ``name``."""
    if name in PRESETS:
        raise ConfigError(f"preset={name!r} is registered twice, but expected unique preset names [presets]")
    family_of(config)  # refuses an unregistered config class
    PRESETS[name] = Preset(config, note)
    return PRESETS[name]


def preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name suggests the nearest ones."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"preset={name!r}, but expected one of {list(PRESETS)} [presets]{_suggest(str(name), PRESETS)}")
    return PRESETS[name]


def _suggest(name: str, options: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""
