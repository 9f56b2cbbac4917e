"""The architecture registry: one record per family, and the one table of named presets.

A family's record (:class:`Family`) holds everything every tool needs to know about it: the
builder and its config class, small-config hypothesis strategies, fixed hard instances, whether
it is a decoder or an encoder–decoder, the decoding it supports, and the theorems that apply to
it. Every table elsewhere is derived from :data:`FAMILIES` — ``--all-ops`` coverage models, the
causality and KV-cache theorems' instances, the verify draws, the family tests — so a family
registered here (a builder made of existing ops) works everywhere without edits elsewhere:

    @register_family("gpt", GPTConfig, "decoder-only GPT (GPT-2, GPT-3)",
                     configs=gpt_configs, instances=gpt_instances)
    def build_gpt(config: GPTConfig) -> Architecture: ...

    register_preset("gpt2-small", GPTConfig(...), note="…")

A builder must return a validated :class:`~spec.graph.Architecture` whose ``config`` is the
config it was given, so the architecture can be rebuilt from its config alone (the θ file
relies on it). How large a config's graph is comes from built graphs (:func:`graph_size`), never
from a formula kept beside the builder.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from spec import config as spec_config
from spec.config import Config
from spec.errors import ConfigError
from spec.graph import Architecture, Composite

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

MAX_GRAPH_NODES = 400_000
"""The largest DAG a builder is asked to make (about 6× GPT-3 175B's 66,000 nodes, ~60 s to
build): a config that would make more is refused before any work, with its size."""

Builder = Callable[[Any], Architecture]
B = TypeVar("B", bound=Builder)


Report = Callable[[Architecture], list[str]]
"""A family's optional report on one of its architectures: lines ``gptspec params`` prints (e.g. a
compressed model's reduction against its baseline)."""


Kind = Literal["decoder", "encoder-decoder"]
DECODINGS = ("kv-cache",)
"""What decoding a family may support: ``kv-cache`` — prefill, then one position at a time with
the cached inputs (spec/decoding.py; fast.Program.prefill / decode)."""

DECODER_THEOREMS = ("causal_at_any_depth", "kv_cache_equals_full_evaluation")
"""The theorems every decoder family is in unless its record says otherwise (proofs/theorems/causality.py)."""

Configs = Callable[..., "SearchStrategy[Any]"]
"""A family's small-config strategy: ``configs(max_layers=2)`` → a hypothesis strategy of small
valid configs covering its options (other keyword bounds are the family's own)."""


@dataclass(frozen=True)
class Family:
    """One registered architecture family: everything tools derive their per-family tables from.

    ``instances()`` gives fixed hard instances by name — small configs (widths ≤ 8, n_ctx ≤ 16)
    that together exercise every option that changes the graph; they are the ``--all-ops``
    coverage models, the causality and KV-cache theorems' instances and the family tests' cases.
    ``configs`` draws small configs (default: one of the instances)."""

    name: str
    config: type[Config]
    builder: Builder
    description: str
    report: Report | None = None
    kind: Kind = "decoder"
    instances: Callable[[], Mapping[str, Config]] = dict
    configs_: Configs | None = None
    decoding: tuple[str, ...] = DECODINGS
    theorems: tuple[str, ...] = DECODER_THEOREMS

    def configs(self, **bounds: Any) -> SearchStrategy[Any]:
        """Small configs: the family's strategy, or one of its instances."""
        if self.configs_ is not None:
            return self.configs_(**bounds)
        from hypothesis import strategies as st

        return st.sampled_from(list(self.instances().values()))


FAMILIES: dict[str, Family] = {}
"""Every registered family by name, in registration order."""


def register_family(
    name: str, config: type[Config], description: str, report: Report | None = None, *,
    instances: Callable[[], Mapping[str, Config]], configs: Configs | None = None, kind: Kind = "decoder",
    decoding: tuple[str, ...] = DECODINGS, theorems: tuple[str, ...] | None = None,
) -> Callable[[B], B]:
    """Decorator for a builder ``config → Architecture``: register its record under ``name``
    (:class:`Family`; ``theorems`` defaults to :data:`DECODER_THEOREMS` for a decoder, none for
    an encoder–decoder)."""
    if kind not in ("decoder", "encoder-decoder"):
        raise ConfigError(f"kind={kind!r}, but expected 'decoder' or 'encoder-decoder' [architecture registry, family {name}]")
    unknown = sorted(set(decoding) - set(DECODINGS))
    if unknown:
        raise ConfigError(f"decoding={unknown}, but expected some of {list(DECODINGS)} [architecture registry, family {name}]")
    applies = (DECODER_THEOREMS if kind == "decoder" else ()) if theorems is None else tuple(theorems)

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
        FAMILIES[name] = Family(name, config, builder, description, report, kind, instances, configs, tuple(decoding), applies)
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


def families(*, kind: Kind | None = None, theorem: str | None = None, decoding: str | None = None) -> list[Family]:
    """The registered families of ``kind``, in ``theorem``'s scope, supporting ``decoding`` (any, when None)."""
    return [
        f for f in FAMILIES.values()
        if (kind is None or f.kind == kind) and (theorem is None or theorem in f.theorems) and (decoding is None or decoding in f.decoding)
    ]


def instances(*, kind: Kind | None = None, theorem: str | None = None, decoding: str | None = None) -> dict[str, Config]:
    """Every selected family's fixed instances, by ``"<family>: <instance>"``."""
    return {f"{f.name}: {label}": c for f in families(kind=kind, theorem=theorem, decoding=decoding) for label, c in f.instances().items()}


def node_count(arch: Architecture) -> int:
    """The nodes of a built graph: every node at every level, composites and primitives."""
    return _count(arch)


def _count(graph: Any) -> int:
    total = 0
    for node in graph.nodes.values():
        total += 1
        if isinstance(node.op, Composite):
            total += _count(node.op.body)
    return total


DEPTH_FIELDS = ("n_layers", "n_decoder_layers")
"""Config fields that count repeated blocks: :func:`graph_size` extrapolates along them."""


def graph_size(config: Config) -> int:
    """The number of nodes ``config``'s graph has, from built graphs: a graph is a fixed part plus
    the same blocks repeated along each depth field, so it is built at depth 1 and at depth 2 per
    field (:data:`DEPTH_FIELDS`; in whole periods, ``Config.layer_period``), and the counts
    extrapolated — exact at a whole number of periods, an upper bound otherwise (a test compares
    it with full builds). A config whose layers × heads alone exceed the limit
    is refused before building anything (each head is at least one node)."""
    depths: dict[str, int] = {name: value for name in DEPTH_FIELDS if isinstance(value := getattr(config, name, None), int)}
    heads = getattr(config, "n_heads", 1)
    depth = sum(depths.values())
    if isinstance(heads, int) and depth * heads > MAX_GRAPH_NODES:
        return depth * heads
    period = max(1, config.layer_period())
    fields = list(depths)
    if all(depths[name] <= 2 * period for name in fields):
        return node_count(family_of(config).builder(config))
    base = {name: period for name in fields}
    small = node_count(family_of(config).builder(config.replace(**base)))
    total = small
    for name in fields:
        wider = node_count(family_of(config).builder(config.replace(**{**base, name: 2 * period})))
        total += -(-(wider - small) * (depths[name] - period) // period)  # ⌈·⌉: exact at whole periods, above otherwise
    return total


spec_config.GRAPH_SIZE = graph_size


def build(config: Config) -> Architecture:
    """The architecture of ``config``, by its family's builder, after refusing a graph too large
    to build."""
    fam = family_of(config)
    size = graph_size(config)
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
