"""Layouts: how an external naming scheme (Hugging Face GPT-2, Llama, a user's own module) maps
to the spec's parameter space Θ — as data.

A :class:`Layout` is one declarative table, read by import, export and intermediate capture
alike, so nothing restates it:

* **tensors** — each :class:`Tensor` rule names an external tensor (``h.{i}.attn.c_attn.weight``),
  the Θ entries it holds (``blocks.{i}.attn.W_Q``, ``…W_K``, ``…W_V``) and how its axes lay them
  out, in a small einops-like pattern language::

      external "d (k h e)"   ↔   Θ "h d e"      c_attn: Q | K | V side by side, heads inside each
      external "(h e) d"     ↔   Θ "h e d"      c_proj: the heads' rows stacked
      external "v d"         ↔   Θ "d v"        a transpose
      external "v d"         ↔   Θ "v d"        the same array

  An axis name stands for one axis; ``(a b)`` is axes a and b flattened row-major into one; the
  axis ``k`` of the external pattern indexes the rule's list of Θ entries (a fused tensor; over
  one entry it is an axis of size 1: ``nn.Linear(d, 1)``'s (1, d) weight as a (d,) vector).
  Every axis but ``k`` appears on both sides. Import reshapes and transposes (bit-exact), export
  does the inverse; sizes come from Θ's shapes.

  Parts of unequal size (a fused QKV under grouped-query attention) are written as a
  concatenation ``[a b | c d | …]``: one alternative per Θ entry, each the axes of that entry's
  part, laid end to end along one axis; axes in the same group before or after the brackets are
  outside the concatenation (repeated for every index), and the Θ pattern gives one pattern per
  entry, separated by ``|`` (a Θ pattern may then group axes, ``(g r)``, to split an axis)::

      external "[h e | g e | g e] d"    ↔  Θ "h d e | g d e | g d e"      Q | K | V blocks (gpt-fast wqkv)
      external "(g [r e | e | e]) d"    ↔  Θ "(g r) d e | g d e | g d e"  per kv group g: its r query
                                                                          heads, then k_g, then v_g (litgpt qkv) An :class:`Alias` is a second external name for
  the same values (a tied head), checked equal on import and written on export.
* **gathered** — a tensor files store split or under another name (:class:`Gather`): Mixtral's
  per-expert ``experts.{e}.w1.weight`` files, which transformers ≥ 5 stacks into its module's
  ``experts.gate_up_proj``; merged on import, so the rules above name the module's tensors.
* **config** — every key of the native config (``config.json``) in one table, each
  :class:`ConfigKey` modelled (mapped to a spec config field), ignored (it does not change the
  logits) or refused unless at given values, each with its reason; a key not in the table is
  refused. ``read_config`` / ``write_config`` convert between the native config and the spec's.
* **modules** — external module names ↔ the spec's DAG paths (``transformer.h.{i}.attn`` ↔
  ``blocks.{i}.attn``), for comparing intermediates (gptspec verify).

Layouts are registered by name (:func:`register_layout`); docs/verify.md shows how to write one.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import sympy

from spec.config import Config
from spec.dims import Shape, show
from spec.errors import CheckpointError, ConfigError
from spec.graph import Architecture
from spec.theta import LazyTheta, Theta

# -- the pattern language ------------------------------------------------------------------

STACK = "k"
"""The external pattern's axis that indexes a fused tensor's list of Θ entries."""

_TOKEN = re.compile(r"\(|\)|[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Pattern:
    """A parsed axis pattern: groups of axis names, each group one axis of the array."""

    text: str
    groups: tuple[tuple[str, ...], ...]

    @staticmethod
    def parse(text: str) -> Pattern:
        groups: list[tuple[str, ...]] = []
        current: list[str] | None = None
        consumed = "".join(_TOKEN.findall(text))
        if consumed != text.replace(" ", ""):
            raise ConfigError(f"pattern={text!r}, but expected axis names and parentheses only [layout pattern]")
        for token in _TOKEN.findall(text):
            if token == "(":
                if current is not None:
                    raise ConfigError(f"pattern={text!r} nests parentheses, but expected flat groups [layout pattern]")
                current = []
            elif token == ")":
                if not current:
                    raise ConfigError(f"pattern={text!r} has an empty or unopened group [layout pattern]")
                groups.append(tuple(current))
                current = None
            elif current is not None:
                current.append(token)
            else:
                groups.append((token,))
        if current is not None:
            raise ConfigError(f"pattern={text!r} leaves a parenthesis open [layout pattern]")
        names = [a for g in groups for a in g]
        if len(set(names)) != len(names):
            raise ConfigError(f"pattern={text!r} names an axis twice, but expected each axis once [layout pattern]")
        return Pattern(text, tuple(groups))

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(a for g in self.groups for a in g)

    def shape(self, sizes: Mapping[str, Any]) -> tuple[Any, ...]:
        """The array shape for axis sizes (ints, or sympy dims for the symbolic shape)."""
        return tuple(sympy.Mul(*[sizes[a] for a in g]) if any(isinstance(sizes[a], sympy.Basic) for a in g) else int(np.prod([sizes[a] for a in g])) for g in self.groups)


@dataclass(frozen=True)
class Tensor:
    """One external tensor and the Θ entries it holds (see the module docstring).

    ``external`` and ``theta`` are name templates; ``{i}`` is the layer index when the rule is
    per layer (``layers``). ``when`` keeps the rule only for configs it accepts (a bias rule when
    the model has biases)."""

    external: str
    theta: tuple[str, ...]
    external_pattern: str
    theta_pattern: str
    when: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if "[" in self.external_pattern or "|" in self.theta_pattern:
            Fused.parse(self)
            return
        ext, th = Pattern.parse(self.external_pattern), Pattern.parse(self.theta_pattern)
        stacked = STACK in ext.axes
        if STACK in th.axes:
            raise ConfigError(f"Θ pattern {self.theta_pattern!r} uses {STACK!r}, but expected it in the external pattern only [layout {self.external}]")
        if set(ext.axes) - {STACK} != set(th.axes):
            raise ConfigError(
                f"patterns {self.external_pattern!r} ↔ {self.theta_pattern!r} name different axes, but expected the same "
                f"(plus {STACK!r} for a fused tensor) [layout {self.external}]"
            )
        if any(len(g) > 1 for g in th.groups):
            raise ConfigError(f"Θ pattern {self.theta_pattern!r} groups axes, but expected one axis per Θ dimension [layout {self.external}]")
        if len(self.theta) > 1 and not stacked:  # k over one entry is an axis of size 1 (a Linear(d, 1) weight as a (d,) vector)
            raise ConfigError(
                f"{len(self.theta)} Θ entries with external pattern {self.external_pattern!r}, but expected the axis {STACK!r} "
                f"when a tensor holds several [layout {self.external}]"
            )


_CONCAT = re.compile(r"\[([^\[\]]*)\]")
_SLOT = "_parts_"


@dataclass(frozen=True)
class Fused:
    """A :class:`Tensor` rule whose external pattern concatenates its Θ entries' parts, of
    unequal sizes, along one axis (``[h e | g e | g e] d``; module docstring)."""

    groups: tuple[tuple[str, ...], ...]
    """The external groups, the concatenation's group holding :data:`_SLOT` where it sits."""
    at: int
    """The index of the group holding the concatenation."""
    parts: tuple[tuple[str, ...], ...]
    """Each Θ entry's axes inside the concatenation."""
    theta: tuple[Pattern, ...]
    """Each Θ entry's pattern."""

    @staticmethod
    def parse(rule: Tensor) -> Fused:
        where = f"[layout {rule.external}]"
        found = _CONCAT.findall(rule.external_pattern)
        if len(found) != 1:
            raise ConfigError(f"pattern={rule.external_pattern!r} has {len(found)} concatenations [...], but expected exactly one {where}")
        outer = Pattern.parse(_CONCAT.sub(f" {_SLOT} ", rule.external_pattern))
        parts = tuple(tuple(alt.split()) for alt in found[0].split("|"))
        thetas = tuple(Pattern.parse(t.strip()) for t in rule.theta_pattern.split("|"))
        if len(thetas) == 1:
            thetas *= len(parts)
        if not (len(parts) == len(thetas) == len(rule.theta)):
            raise ConfigError(
                f"{len(rule.theta)} Θ entries, {len(parts)} parts in {rule.external_pattern!r} and {len(thetas)} Θ patterns in "
                f"{rule.theta_pattern!r}, but expected one part and one Θ pattern per entry {where}"
            )
        if any(not p or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", a) for a in p) for p in parts):
            raise ConfigError(f"pattern={rule.external_pattern!r}, but expected every part of [...] to name axes (no parentheses) {where}")
        at = next(n for n, g in enumerate(outer.groups) if _SLOT in g)
        fused = Fused(outer.groups, at, parts, thetas)
        for k, th in enumerate(thetas):
            axes = fused.part_axes(k)
            if STACK in axes or STACK in th.axes or len(set(axes)) != len(axes) or set(axes) != set(th.axes):
                raise ConfigError(
                    f"part {k} of {rule.external_pattern!r} has axes {list(axes)} and its Θ pattern {th.text!r} has {list(th.axes)}, "
                    f"but expected the same axes, each once (and no {STACK!r}) {where}"
                )
        return fused

    def part_axes(self, k: int) -> tuple[str, ...]:
        """Part k's axes in external order (the concatenation replaced by part k's axes)."""
        return tuple(x for g in self.groups for a in g for x in (self.parts[k] if a == _SLOT else (a,)))

    def sizes(self, shapes: list[tuple[Any, ...]], where: str) -> dict[str, Any]:
        """Every axis' size, solved from the Θ entries' shapes (a grouped Θ axis gives its one
        unknown axis the quotient)."""
        sizes: dict[str, Any] = {}
        pending = [(g, d) for th, shape in zip(self.theta, shapes, strict=True) for g, d in zip(th.groups, shape, strict=True)]
        while pending:
            left = []
            for group, dim in pending:
                unknown = [a for a in group if a not in sizes]
                known = sympy.Mul(*[sizes[a] for a in group if a in sizes]) if any(isinstance(sizes.get(a), sympy.Basic) for a in group) or isinstance(dim, sympy.Basic) else int(np.prod([sizes[a] for a in group if a in sizes]))
                if len(unknown) == 1:
                    if isinstance(known, int) and isinstance(dim, int) and dim % known:
                        raise CheckpointError(f"axis {group} of size {dim}, but expected a multiple of {known} {where}")
                    sizes[unknown[0]] = dim // known if isinstance(known, int) and isinstance(dim, int) else dim / known
                elif not unknown:
                    if isinstance(known, int) and isinstance(dim, int) and known != dim:
                        raise CheckpointError(f"axes {group} of sizes {[sizes[a] for a in group]}, but expected their product {dim} {where}")
                else:
                    left.append((group, dim))
            if len(left) == len(pending):
                raise ConfigError(f"axes {sorted({a for g, _ in left for a in g if a not in sizes})} have no size the Θ shapes fix {where}")
            pending = left
        return sizes

    def lengths(self, sizes: Mapping[str, Any]) -> list[Any]:
        """Each part's length along the concatenated axis."""
        return [sympy.Mul(*[sizes[a] for a in p]) if any(isinstance(sizes[a], sympy.Basic) for a in p) else int(np.prod([sizes[a] for a in p])) for p in self.parts]

    def expanded(self, sizes: Mapping[str, Any]) -> tuple[list[Any], int]:
        """The external array's shape with every axis but the concatenation's unflattened, and
        the concatenated axis' position in it."""
        dims: list[Any] = []
        position = 0
        for g in self.groups:
            for a in g:
                if a == _SLOT:
                    position = len(dims)
                    dims.append(sum(self.lengths(sizes)))
                else:
                    dims.append(sizes[a])
        return dims, position

    def shape(self, sizes: Mapping[str, Any]) -> tuple[Any, ...]:
        total = sum(self.lengths(sizes))
        out = []
        for g in self.groups:
            factors = [total if a == _SLOT else sizes[a] for a in g]
            out.append(sympy.Mul(*factors) if any(isinstance(f, sympy.Basic) for f in factors) else int(np.prod(factors)))
        return tuple(out)

    def part(self, value: np.ndarray, sizes: Mapping[str, Any], k: int) -> np.ndarray:
        """Part k of the external array ``value``, in Θ entry k's shape."""
        dims, position = self.expanded(sizes)
        lengths = self.lengths(sizes)
        start = sum(lengths[:k])
        full = value.reshape(dims)
        piece = full[(slice(None),) * position + (slice(start, start + lengths[k]),)]
        axes = self.part_axes(k)
        piece = piece.reshape([sizes[a] for a in axes])
        th = self.theta[k]
        moved = piece.transpose([axes.index(a) for a in th.axes])
        return moved.reshape(th.shape(sizes))

    def join(self, arrays: list[np.ndarray], sizes: Mapping[str, Any]) -> np.ndarray:
        """The inverse of :meth:`part` over every k: the external array."""
        dims, position = self.expanded(sizes)
        pieces = []
        for k, (array, th) in enumerate(zip(arrays, self.theta, strict=True)):
            axes = self.part_axes(k)
            spread = array.reshape([sizes[a] for a in th.axes]).transpose([th.axes.index(a) for a in axes])
            pieces.append(spread.reshape(dims[:position] + [self.lengths(sizes)[k]] + dims[position + 1:]))
        return np.ascontiguousarray(np.concatenate(pieces, axis=position).reshape(self.shape(sizes)))


@dataclass(frozen=True)
class Alias:
    """A second external name for the values of another (a tied head: ``lm_head.weight`` is
    ``wte.weight``), when ``when`` accepts the config. Written on export; on import, checked equal
    to the tensor it aliases when present."""

    external: str
    of: str
    when: Callable[[Any], bool] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Buffer:
    """An external tensor that is not a parameter (a stored causal mask, stored rotary
    frequencies): accepted on import only if ``check(name, array, where)`` passes — with
    ``with_config``, ``check(name, array, where, config)``, the spec config the file's config.json
    gave; never exported."""

    external: str
    check: Callable[..., None]
    with_config: bool = False


@dataclass(frozen=True)
class Gather:
    """A tensor of the layout that files store under other names: ``external`` (a :class:`Tensor`
    rule's name; ``{i}`` the layer) is the concatenation along the first axis of ``parts`` (name
    templates). With ``experts`` (how many, for a config) it is, for each expert e, that
    concatenation of the parts named with ``{e}`` = e, stacked along a new leading axis: how
    transformers ≥ 5 merges a file's per-expert ``experts.{e}.w1.weight`` and ``…w3.weight`` into
    its module's ``experts.gate_up_proj``. Import reads the parts when a file holds them instead of
    the tensor (:func:`gathered`); export writes the layout's own name."""

    external: str
    parts: tuple[str, ...]
    experts: Callable[[Any], int] | None = None


# -- the config table ----------------------------------------------------------------------

Role = Literal["model", "ignore", "require", "alias"]
REQUIRED = object()
"""Default of a modelled key that must be present."""


@dataclass(frozen=True)
class ConfigKey:
    """How one native config key is read.

    ``model``: it changes the function and the spec models it (``default`` is the native default
    when the key is absent); ``ignore``: it does not change the logits; ``require``: any value
    other than those in ``accepts`` changes the function in a way the spec does not model, and is
    refused; ``alias``: another name (``target``) for a key."""

    role: Role
    reason: str
    default: object = REQUIRED
    accepts: tuple[object, ...] = ()
    target: str = ""


def model(reason: str, default: object = REQUIRED) -> ConfigKey:
    return ConfigKey("model", reason, default=default)


def ignore(reason: str, *keys: str) -> dict[str, ConfigKey]:
    return {key: ConfigKey("ignore", reason) for key in keys}


def require(reason: str, *accepts: object) -> ConfigKey:
    return ConfigKey("require", reason, accepts=accepts)


def alias(target: str, reason: str = "") -> ConfigKey:
    return ConfigKey("alias", reason or f"another name for {target}", target=target)


def same(a: object, b: object) -> bool:
    """Equal and of the same type (so 0 is not False)."""
    return type(a) is type(b) and a == b


# -- the layout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One external naming scheme, as data (module docstring)."""

    name: str
    """Registry name (``hf-gpt2``)."""
    family: str
    """The spec architecture family it maps to (``gpt``)."""
    description: str
    config_keys: Mapping[str, ConfigKey]
    read_config: Callable[[Mapping[str, object], str], Config]
    """Modelled native keys (after aliases and defaults) → the spec config."""
    write_config: Callable[[Any], dict[str, object]]
    """A spec config → the native config (every modelled key, plus ``model_type``)."""
    tensors: tuple[Tensor | Alias, ...]
    layers: Callable[[Any], int]
    """How many layers ``{i}`` runs over, for a config."""
    stacks: tuple[tuple[str, Callable[[Any], int]], ...] = ()
    """Stacks of other depths (an encoder–decoder's encoder and decoder): (the external name's
    start, the layers ``{i}`` runs over there); names no stack claims run over ``layers``."""
    model_type: str = ""
    """The native ``model_type`` that selects this layout when reading a directory."""
    prefix: str = ""
    """A prefix some files put on every tensor but those in ``unprefixed`` (``transformer.``)."""
    unprefixed: tuple[str, ...] = ()
    spellings: tuple[tuple[str, str], ...] = ()
    """Other names files use for a tensor: (the file's name, the layout's name), read on import."""
    buffers: tuple[Buffer, ...] = ()
    ignored_prefixes: tuple[str, ...] = ()
    gathered: tuple[Gather, ...] = ()
    """Tensors files may store split or renamed (:class:`Gather`), merged on import."""
    """External tensors under these prefixes are not the language model's (a classifier head)."""
    modules: tuple[tuple[str, str], ...] = ()
    """External module name ↔ DAG path templates (``{i}``: the layer): the module's output is
    the value at that path (for a composite, its output value, ``Graph.placed``); its first
    tensor argument is the value the node's first input port reads."""
    notes: tuple[str, ...] = field(default=())
    default: Any = None
    """A small config of the layout's family that the layout can express: the architecture
    ``gptspec verify`` checks against when none is named (docs/verify.md)."""

    # -- expansion -------------------------------------------------------------------------

    def rules(self, config: Any) -> list[tuple[str, Tensor | Alias, int | None]]:
        """Every rule for ``config``, expanded over layers: (external name, rule, layer)."""
        out: list[tuple[str, Tensor | Alias, int | None]] = []
        for rule in self.tensors:
            if rule.when is not None and not rule.when(config):
                continue
            if "{i}" in rule.external:
                out += [(rule.external.format(i=i), rule, i) for i in range(self.depth(config, rule.external))]
            else:
                out.append((rule.external, rule, None))
        return out

    def depth(self, config: Any, external: str) -> int:
        """How many layers ``{i}`` runs over in the external name (template) ``external``."""
        return next((count(config) for start, count in self.stacks if external.startswith(start)), self.layers(config))

    def external_name(self, name: str, prefixed: bool = True) -> str:
        """A tensor's name as the full model's state dict spells it."""
        return name if not prefixed or not self.prefix or name in self.unprefixed else self.prefix + name

    def module_paths(self, config: Any) -> dict[str, str]:
        """External module name → DAG path, expanded over layers."""
        out: dict[str, str] = {}
        for external, path in self.modules:
            if "{i}" in external:
                for i in range(self.depth(config, external.removeprefix(self.prefix))):
                    out[external.format(i=i)] = path.format(i=i)
            else:
                out[external] = path
        return out


LAYOUTS: dict[str, Layout] = {}
"""Every registered layout by name."""


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to :data:`LAYOUTS`."""
    if layout.name in LAYOUTS:
        raise ConfigError(f"layout={layout.name!r} is registered twice, but expected unique names [layouts]")
    LAYOUTS[layout.name] = layout
    return layout


def layout(name: str) -> Layout:
    """The layout called ``name``."""
    if not isinstance(name, str) or name not in LAYOUTS:
        close = difflib.get_close_matches(name, list(LAYOUTS), n=2) if isinstance(name, str) else []
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"layout={name!r}, but expected one of {list(LAYOUTS)} [layouts]{hint}")
    return LAYOUTS[name]


def layout_for_model_type(model_type: object, where: str) -> Layout:
    """The layout whose native ``model_type`` this is."""
    for candidate in LAYOUTS.values():
        if candidate.model_type and same(candidate.model_type, model_type):
            return candidate
    known = sorted(c.model_type for c in LAYOUTS.values() if c.model_type)
    raise CheckpointError(
        f"config.json model_type={model_type!r}, but expected one of {known} [checkpoint {where}]; "
        "gptspec reads the architectures it has layouts for (gptspec.checkpoint.LAYOUTS)"
    )


# -- the native config ---------------------------------------------------------------------


def read_native_config(lay: Layout, raw: Mapping[str, object], where: str) -> Config:
    """The spec config a native config describes, by the layout's table: unknown keys refused,
    aliases merged, required values checked, defaults filled, then ``lay.read_config``."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"config.json holds {type(raw).__name__}, but expected a JSON object [checkpoint {where}]")
    table = lay.config_keys
    values: dict[str, object] = {}
    for key, value in raw.items():
        rule = table.get(key)
        if rule is None:
            close = difflib.get_close_matches(str(key), list(table), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CheckpointError(
                f"config key {key}={_short(value)}{hint}, but expected one of the keys the {lay.name} layout knows "
                f"[checkpoint {where}]; an unknown key may change the function, so it is refused: if it does not "
                f"change the logits, delete it from config.json (or add it to the layout's table with the reason)"
            )
        if rule.role == "alias":
            if rule.target in raw and not same(raw[rule.target], value):
                raise CheckpointError(
                    f"config key {key}={_short(value)}, but expected {rule.target}={_short(raw[rule.target])}, "
                    f"which it is another name for [checkpoint {where}]; keep one of the two"
                )
            values[rule.target] = value
        elif rule.role == "model":
            values[key] = value
        elif rule.role == "require" and not any(same(value, a) for a in rule.accepts):
            accepted = " or ".join(json.dumps(a) for a in rule.accepts)
            raise CheckpointError(f"config key {key}={_short(value)}, but expected {key}={accepted} [checkpoint {where}]; {rule.reason}")
    for key, rule in table.items():
        if rule.role == "model" and key not in values:
            if rule.default is REQUIRED:
                raise CheckpointError(f"config key {key} is missing, but expected it ({rule.reason}) [checkpoint {where}]; add it to config.json")
            values[key] = rule.default
    try:
        return lay.read_config(values, where)
    except ConfigError as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


def _short(value: object) -> str:
    text = json.dumps(value, default=repr) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def whole(values: Mapping[str, object], key: str, where: str, least: int = 1) -> int:
    """A modelled key that must be a whole number ≥ ``least``."""
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise CheckpointError(f"config key {key}={_short(value)}, but expected a whole number ≥ {least} [checkpoint {where}]")
    return value


def flag(values: Mapping[str, object], key: str, where: str) -> bool:
    """A modelled key that must be true or false."""
    value = values[key]
    if not isinstance(value, bool):
        raise CheckpointError(f"config key {key}={_short(value)}, but expected true or false [checkpoint {where}]")
    return value


def number(values: Mapping[str, object], key: str, where: str, least: float = 0.0) -> float:
    """A modelled key that must be a finite number ≥ ``least``."""
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value >= least):
        raise CheckpointError(f"config key {key}={_short(value)}, but expected a finite number ≥ {least} [checkpoint {where}]")
    return float(value)


# -- import and export ---------------------------------------------------------------------

FLOAT_KINDS = "f"


def _fused(rule: Tensor) -> bool:
    """Whether the rule concatenates parts of unequal sizes (:class:`Fused`)."""
    return "[" in rule.external_pattern


def _sizes(rule: Tensor, names: list[str], shapes: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    th = Pattern.parse(rule.theta_pattern)
    sizes: dict[str, Any] = dict(zip(th.axes, shapes[names[0]], strict=True))
    sizes[STACK] = len(names)
    return sizes


def expected_shapes(lay: Layout, arch: Architecture) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every external tensor the layout expects for ``arch`` (its config): name → (shape,
    symbolic shape as text)."""
    concrete, symbolic = arch.theta_shapes(), arch.theta
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for name, rule, i in lay.rules(arch.config):
        if isinstance(rule, Alias):
            continue
        names = [t.format(i=i) for t in rule.theta]
        if _fused(rule):
            fused = Fused.parse(rule)
            shape = fused.shape(fused.sizes([concrete[n] for n in names], f"[layout {name}]"))
            sym_sizes = fused.sizes([tuple(sympy.sympify(d) for d in symbolic[n]) for n in names], f"[layout {name}]")
            out[name] = (tuple(int(d) for d in shape), show(tuple(sympy.simplify(d) for d in fused.shape(sym_sizes))))
            continue
        ext = Pattern.parse(rule.external_pattern)
        shape = ext.shape(_sizes(rule, names, concrete))
        sym: Shape = ext.shape(_sizes(rule, names, {n: tuple(sympy.sympify(d) for d in symbolic[n]) for n in names}) | {STACK: sympy.Integer(len(names))})
        out[name] = (tuple(int(d) for d in shape), show(sym))
    for name, rule, _ in lay.rules(arch.config):
        if isinstance(rule, Alias):
            out[name] = out[rule.of]
    return out


S = TypeVar("S")


def _names_checked(
    lay: Layout, arch: Architecture, state: Mapping[str, S], where: str, shown: Callable[[str], str], array: Callable[[S], np.ndarray]
) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, tuple[Tensor | Alias, int | None]]]:
    """(the expected shapes, the layout's rules by external name) once ``state`` is checked to
    hold every tensor of the layout for ``arch`` and nothing else but buffers (each read by
    ``array`` and checked) and ignored prefixes."""
    expected = expected_shapes(lay, arch)
    rules = {name: (rule, i) for name, rule, i in lay.rules(arch.config)}
    missing = [n for n, (rule, _) in rules.items() if isinstance(rule, Tensor) and n not in state]
    if missing:
        shape, sym = expected[missing[0]]
        raise CheckpointError(
            f"{shown(missing[0])} is missing{others([shown(m) for m in missing])}, but expected a tensor of shape {sym} = {shape} [checkpoint {where}]; "
            "the file does not hold the model its config describes"
        )
    buffers = {b.external: b for b in lay.buffers}
    unexpected = []
    for name, value in state.items():
        if name in rules or name.startswith(lay.ignored_prefixes):
            continue
        buffer = next((b for pattern, b in buffers.items() if _matches(pattern, name)), None)
        if buffer is not None:
            buffer.check(shown(name), array(value), where, *((arch.config,) if buffer.with_config else ()))
            continue
        unexpected.append(shown(name))
    if unexpected:
        raise CheckpointError(
            f"{unexpected[0]} is unexpected{others(unexpected)}, but expected only the tensors of a model with this config "
            f"[checkpoint {where}]; the file holds something the config does not describe (another model, another depth?)"
        )
    return expected, rules


def gathered(lay: Layout, config: Any, state: Mapping[str, S], where: str, merge: Callable[[str, list[list[tuple[str, S]]], bool, str], S]) -> dict[str, S]:
    """``state`` with every :class:`Gather` of the layout whose parts it holds merged into the
    layout's tensor by ``merge(name, parts per expert, stacked, where)``; a file holding some parts
    and not others, or the parts and the tensor, is refused by name."""
    out = dict(state)
    for g in lay.gathered:
        for i in range(lay.depth(config, g.external)) if "{i}" in g.external else [0]:
            name = g.external.format(i=i)
            count = None if g.experts is None else g.experts(config)
            groups = [[p.format(i=i, e=e) for p in g.parts] for e in (range(count) if count is not None else [0])]
            flat = [n for group in groups for n in group]
            present = [n for n in flat if n in out]
            if not present:
                continue
            if name in out:
                raise CheckpointError(f"{present[0]} and {name} both hold {name}, but expected one of them [checkpoint {where}]; remove one")
            absent = [n for n in flat if n not in out]
            if absent:
                raise CheckpointError(
                    f"{absent[0]} is missing{others(absent)}, but expected it beside {present[0]}: together they hold {name} "
                    f"[checkpoint {where}]; the file holds part of the model its config describes"
                )
            out[name] = merge(name, [[(n, out.pop(n)) for n in group] for group in groups], count is not None, where)
    return out


def _merge_arrays(name: str, groups: list[list[tuple[str, np.ndarray]]], stacked: bool, where: str) -> np.ndarray:
    """The arrays of a :class:`Gather`'s parts merged (concatenated along the first axis, stacked per expert)."""
    _merged_shape(name, [[(n, tuple(np.shape(a))) for n, a in group] for group in groups], stacked, where)
    rows = [np.concatenate([np.asarray(a) for _, a in group], axis=0) for group in groups]
    return np.stack(rows) if stacked else rows[0]


def _merge_stored(name: str, groups: list[list[tuple[str, Stored]]], stacked: bool, where: str) -> Stored:
    """:func:`_merge_arrays` for tensors not yet read: read and merged when opened."""
    shape = _merged_shape(name, [[(n, s.shape) for n, s in group] for group in groups], stacked, where)
    dtypes = sorted({s.dtype for group in groups for _, s in group})
    if len(dtypes) > 1:
        raise CheckpointError(f"the parts of {name} have dtypes {dtypes}, but expected one dtype [checkpoint {where}]")

    def read() -> np.ndarray:
        rows = [np.concatenate([np.asarray(s.open()) for _, s in group], axis=0) for group in groups]
        return np.stack(rows) if stacked else rows[0]

    return Stored(shape, dtypes[0], sum(s.nbytes for group in groups for _, s in group), read)


def _merged_shape(name: str, groups: list[list[tuple[str, tuple[int, ...]]]], stacked: bool, where: str) -> tuple[int, ...]:
    first_name, first = groups[0][0]
    for group in groups:
        for part, shape in group:
            if len(shape) < 1 or shape[1:] != first[1:]:
                raise CheckpointError(
                    f"{part} has shape {shape}, but expected (·, {', '.join(map(str, first[1:]))}) as {first_name} [checkpoint {where}]; "
                    f"the parts of {name} are joined along their first axis"
                )
    rows = [sum(shape[0] for _, shape in group) for group in groups]
    if len(set(rows)) > 1:
        raise CheckpointError(f"the experts' parts of {name} have {rows} rows, but expected equal [checkpoint {where}]")
    return ((len(groups),) if stacked else ()) + (rows[0], *first[1:])


def to_theta(
    lay: Layout, arch: Architecture, state: Mapping[str, np.ndarray], where: str, spell: Callable[[str], str] | None = None
) -> Theta:
    """θ (float64, Θ's names and order) from an external state dict under the layout's names
    (without the prefix; split tensors merged first, :func:`gathered`). The state must hold exactly
    the layout's tensors for ``arch`` (aliases optional and checked equal, buffers checked); every
    shape is checked. ``spell`` gives a name as the user's file spells it, for messages
    (:func:`spelling`)."""
    shown = spell or (lambda key: key)
    state = gathered(lay, arch.config, state, where, _merge_arrays)
    expected, rules = _names_checked(lay, arch, state, where, shown, lambda value: value)
    theta: Theta = {}
    for name, (rule, i) in rules.items():
        if isinstance(rule, Alias):
            continue
        value = float_tensor(shown(name), state[name], where)
        shape, sym = expected[name]
        if value.shape != shape:
            raise CheckpointError(f"{shown(name)} has shape {value.shape}, but expected {sym} = {shape} [checkpoint {where}]")
        names = [t.format(i=i) for t in rule.theta]
        for theta_name, part in zip(names, _split(rule, value, names, arch.theta_shapes()), strict=True):
            theta[theta_name] = part
    for name, (rule, _) in rules.items():
        if isinstance(rule, Alias) and name in state:
            value = float_tensor(shown(name), state[name], where)
            base = float_tensor(shown(rule.of), state[rule.of], where)
            if value.shape != base.shape or not np.array_equal(value, base):
                detail = f"shape {value.shape}" if value.shape != base.shape else f"max |Δ| = {np.max(np.abs(value - base)):.3g}"
                raise CheckpointError(
                    f"{shown(name)} differs from {shown(rule.of)} ({detail}), but expected them equal [checkpoint {where}]; {rule.reason}"
                )
    missing_theta = [n for n in arch.theta if n not in theta]
    if missing_theta:
        raise CheckpointError(f"Θ entries {missing_theta[:4]} are not filled by layout {lay.name} [checkpoint {where}]; the layout's table is incomplete")
    return {n: theta[n] for n in arch.theta}


def from_theta(lay: Layout, arch: Architecture, theta: Mapping[str, np.ndarray], prefixed: bool = True) -> dict[str, np.ndarray]:
    """The external state dict (float64 arrays, the layout's names, with the prefix where the
    full model has it) holding θ: the exact inverse of :func:`to_theta`."""
    shapes = arch.theta_shapes()
    out: dict[str, np.ndarray] = {}
    plain: dict[str, np.ndarray] = {}
    for name, rule, i in lay.rules(arch.config):
        if isinstance(rule, Alias):
            continue
        names = [t.format(i=i) for t in rule.theta]
        plain[name] = _join(rule, [np.asarray(theta[n], dtype=np.float64) for n in names], names, shapes)
    for name, rule, _ in lay.rules(arch.config):
        value = plain[rule.of].copy() if isinstance(rule, Alias) else plain[name]
        out[lay.external_name(name, prefixed)] = value
    return out


def _matches(template: str, name: str) -> bool:
    return re.fullmatch(re.escape(template).replace(re.escape("{i}"), r"\d+"), name) is not None


def _part(rule: Tensor, value: np.ndarray, names: list[str], shapes: Mapping[str, tuple[int, ...]], k: int) -> np.ndarray:
    """The view of external array ``value`` that is the rule's k-th Θ entry (reshape to every
    axis, take k along the stacked axis, transpose): no copy, so it applies as well to a
    memory-mapped tensor as to one in memory (a concatenation's part may be a copy)."""
    if _fused(rule):
        fused = Fused.parse(rule)
        return fused.part(value, fused.sizes([shapes[n] for n in names], f"[layout {rule.external}]"), k)
    ext, th = Pattern.parse(rule.external_pattern), Pattern.parse(rule.theta_pattern)
    sizes = _sizes(rule, names, shapes)
    axes = list(ext.axes)
    full = value.reshape([sizes[a] for a in axes])
    part = full[(slice(None),) * axes.index(STACK) + (k,)] if STACK in axes else full
    remaining = [a for a in axes if a != STACK]
    return part.transpose([remaining.index(a) for a in th.axes])


def _split(rule: Tensor, value: np.ndarray, names: list[str], shapes: Mapping[str, tuple[int, ...]]) -> list[np.ndarray]:
    """External array → the Θ arrays (:func:`_part` of each, made contiguous)."""
    return [np.ascontiguousarray(_part(rule, value, names, shapes, k)) for k in range(len(names))]


@dataclass(frozen=True)
class Stored:
    """An external tensor not yet read: its shape, its stored dtype (a safetensors name, e.g.
    ``BF16``), its size in bytes, and how to get it as an array (e.g. a memory map:
    :func:`gptspec.safetensors_io.map_tensor`, BF16 as raw bits)."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    open: Callable[[], np.ndarray]

    @property
    def floating(self) -> bool:
        return self.dtype in ("F64", "F32", "F16", "BF16")


def stored_float64(name: str, stored: Stored, view: Callable[[np.ndarray], np.ndarray], where: str) -> np.ndarray:
    """``view`` of a stored tensor as float64, converted a chunk at a time, every entry finite
    (:func:`float_tensor`'s rule and message)."""
    from gptspec.safetensors_io import to_float64

    out, bad = to_float64(view(stored.open()), stored.dtype)
    if bad:
        raise CheckpointError(
            f"{name} has {bad} non-finite entries, but expected real numbers "
            f"[checkpoint {where}]; the checkpoint is corrupt or diverged"
        )
    return out


def lazy_theta(
    lay: Layout, arch: Architecture, state: Mapping[str, Stored], where: str, spell: Callable[[str], str] | None = None
) -> LazyTheta:
    """θ as :func:`to_theta` gives it, but read lazily: the same checks up front from the
    tensors' shapes and dtypes (buffers and tied aliases are read and compared now, a chunk at a
    time), and each Θ entry read, split, transposed and made float64 only when it is used, every
    time it is used (:class:`~spec.theta.LazyTheta`). Bit-identical to :func:`to_theta`."""
    shown = spell or (lambda key: key)
    state = gathered(lay, arch.config, state, where, _merge_stored)
    expected, rules = _names_checked(lay, arch, state, where, shown, lambda value: np.array(value.open()))
    shapes = arch.theta_shapes()
    sources: dict[str, tuple[str, Tensor, list[str], int]] = {}
    nbytes = 0
    for name, (rule, i) in rules.items():
        if isinstance(rule, Alias):
            continue
        value = state[name]
        if not value.floating:
            raise CheckpointError(
                f"{shown(name)} has dtype {value.dtype}, but expected floating-point values [checkpoint {where}]; "
                "integer weights are quantised values, which the spec does not model: dequantise them first"
            )
        shape, sym = expected[name]
        if value.shape != shape:
            raise CheckpointError(f"{shown(name)} has shape {value.shape}, but expected {sym} = {shape} [checkpoint {where}]")
        names = [t.format(i=i) for t in rule.theta]
        nbytes += value.nbytes
        for k, theta_name in enumerate(names):
            sources[theta_name] = (name, rule, names, k)
    for name, (rule, _) in rules.items():
        if isinstance(rule, Alias) and name in state:
            _check_alias(shown(name), state[name], shown(rule.of), state[rule.of], where, rule.reason)
    missing_theta = [n for n in arch.theta if n not in sources]
    if missing_theta:
        raise CheckpointError(f"Θ entries {missing_theta[:4]} are not filled by layout {lay.name} [checkpoint {where}]; the layout's table is incomplete")

    def load(theta_name: str) -> np.ndarray:
        name, rule, names, k = sources[theta_name]
        return stored_float64(shown(name), state[name], lambda raw: _part(rule, raw, names, shapes, k), where)

    return LazyTheta({n: shapes[n] for n in arch.theta}, load, nbytes, where)


def _rows(start: int, stop: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda raw: raw[start:stop] if raw.ndim else raw


def _check_alias(name: str, value: Stored, base_name: str, base: Stored, where: str, reason: str) -> None:
    """A tied alias equals the tensor it names (compared a chunk of rows at a time, as float64)."""
    if value.shape != base.shape:
        raise CheckpointError(f"{name} differs from {base_name} (shape {value.shape}), but expected them equal [checkpoint {where}]; {reason}")
    rows = value.shape[0] if value.shape else 1
    step = max(1, (1 << 20) // max(1, int(np.prod(value.shape[1:], dtype=np.int64))))
    worst = 0.0
    for r in range(0, rows, step):
        rows_of = _rows(r, r + step)
        x = stored_float64(name, value, rows_of, where)
        y = stored_float64(base_name, base, rows_of, where)
        if not np.array_equal(x, y):
            worst = max(worst, float(np.max(np.abs(x - y))))
    if worst:
        raise CheckpointError(f"{name} differs from {base_name} (max |Δ| = {worst:.3g}), but expected them equal [checkpoint {where}]; {reason}")


def _join(rule: Tensor, arrays: list[np.ndarray], names: list[str], shapes: Mapping[str, tuple[int, ...]]) -> np.ndarray:
    """The Θ arrays → the external array (the inverse of :func:`_split`)."""
    if _fused(rule):
        fused = Fused.parse(rule)
        return fused.join(arrays, fused.sizes([shapes[n] for n in names], f"[layout {rule.external}]"))
    ext, th = Pattern.parse(rule.external_pattern), Pattern.parse(rule.theta_pattern)
    sizes = _sizes(rule, names, shapes)
    remaining = [a for a in ext.axes if a != STACK]
    moved = [a.transpose([th.axes.index(x) for x in remaining]) for a in arrays]
    full = np.stack(moved, axis=list(ext.axes).index(STACK)) if STACK in ext.axes else moved[0]
    return np.ascontiguousarray(full.reshape(ext.shape(sizes)))


def float_tensor(name: str, value: object, where: str) -> np.ndarray:
    """A stored parameter as float64: floating-point only (integer tensors are quantised values
    whose scales live elsewhere), every entry finite."""
    array = np.asarray(value)
    if array.dtype.kind not in FLOAT_KINDS:
        raise CheckpointError(
            f"{name} has dtype {array.dtype}, but expected floating-point values [checkpoint {where}]; "
            "integer weights are quantised values, which the spec does not model: dequantise them first"
        )
    out = array.astype(np.float64)
    if not np.isfinite(out).all():
        raise CheckpointError(
            f"{name} has {int(out.size - np.isfinite(out).sum())} non-finite entries, but expected real numbers "
            f"[checkpoint {where}]; the checkpoint is corrupt or diverged"
        )
    return out


def others(names: list[str]) -> str:
    """`` (and 2 more: [...])`` after the first of ``names``, or nothing."""
    rest = names[1:]
    return f" (and {len(rest)} more: {rest[:4]}{' …' if len(rest) > 4 else ''})" if rest else ""


def spelling(lay: Layout, by_key: Mapping[str, str]) -> Callable[[str], str]:
    """A layout name as the user's file spells it: as found, or with the prefix when the file
    uses it (for names it lacks)."""
    uses_prefix = bool(lay.prefix) and any(name.startswith(lay.prefix) for name in by_key.values())

    def spell(key: str) -> str:
        return by_key.get(key, lay.external_name(key, uses_prefix))

    return spell


def strip_prefix(lay: Layout, names: Iterable[str], where: str) -> dict[str, str]:
    """Name without the layout's prefix → the name in the file; two names for one tensor are refused."""
    by_key: dict[str, str] = {}
    respell = dict(lay.spellings)
    for name in names:
        key = name[len(lay.prefix):] if lay.prefix and name.startswith(lay.prefix) else name
        key = respell.get(key, key)
        if key in by_key:
            raise CheckpointError(f"tensors {by_key[key]} and {name} name the same parameter, but expected one of them [checkpoint {where}]; remove one")
        by_key[key] = name
    return by_key
