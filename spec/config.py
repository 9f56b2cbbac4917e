"""Configs: the values that fix an architecture's function family, type-checked wherever they
are read.

An architecture family's config is a frozen dataclass deriving from :class:`Config`. Its fields
are checked against their annotations when the object is made — in Python, from the command
line (``--set key=value``), from a θ file's metadata, from a checkpoint's config table — so a
string where a flag belongs, a bool where a size belongs, NaN or ∞ where a number belongs, or a
list where a tuple belongs is refused by name, never read as something else.

The field types a config may use: ``int`` (a whole number, not a bool), ``float`` (a finite
real, ints accepted), ``bool`` (``true``/``false`` only), ``str``, ``Literal[...]``,
``tuple[X, ...]`` of those, and ``X | None``. A family adds its own rules (divisibility, ranges
between fields) in :meth:`Config.validate`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

import sympy

from spec.errors import ConfigError

C = TypeVar("C", bound="Config")

GRAPH_SIZE: Callable[[Config], int] | None = None
"""How many nodes a config's graph has: spec.architectures.registry.graph_size, set when the
registry is imported (the registry imports this module, so this one cannot import it)."""

MAX_JSON_BYTES = 1_000_000
"""A config's JSON is a few hundred bytes; anything this large is not one."""
MAX_JSON_DEPTH = 16
"""A config's JSON nests two deep (an object of lists); deeper text is refused before parsing,
so a hostile nesting never reaches the recursive parser."""
MAX_FIELD_TEXT = 1_000
"""The longest value text ``--set key=value`` takes: a field's value is a number, a word or a
short list."""


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text (outside strings), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str, where: str) -> object:
    """JSON text of a config or a config value: size and depth checked before parsing; NaN and
    infinities (which Python's parser accepts) are left for the field checks to refuse."""
    if len(text) > MAX_JSON_BYTES:
        raise ConfigError(f"JSON of {len(text):,} characters, but expected at most {MAX_JSON_BYTES:,} [{where}]")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ConfigError(f"JSON nesting depth={depth}, but expected at most {MAX_JSON_DEPTH} [{where}]; a config nests two deep")
    return json.loads(text)


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every architecture family's config (a frozen dataclass).

    Subclasses declare fields with the types listed in the module docstring, a ``name`` field
    (``compare=False``) for messages, and override :meth:`validate` and :meth:`dims`.
    """

    family: ClassVar[str] = ""
    """The registered family name (``gpt``, ``llama``, …); set by the family's module."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name), hints[f.name], self._where())
        self.validate()

    def _where(self) -> str:
        name = getattr(self, "name", "")
        return f"{type(self).__name__} {name}".strip()

    def validate(self) -> None:
        """Rules between fields (a family overrides this); raise ConfigError."""

    def dims(self) -> dict[sympy.Symbol, int]:
        """Values of the glossary's dims (spec/dims.py) that this config fixes."""
        raise NotImplementedError(f"{type(self).__name__}.dims")

    def graph_size(self) -> int:
        """The number of DAG nodes the family's builder makes for this config, from small built
        graphs (spec.architectures.registry.graph_size, which registers itself here as
        :data:`GRAPH_SIZE`), so a hostile size is refused before the whole graph is built."""
        if GRAPH_SIZE is None:
            raise ConfigError(f"{self._where()}: no architecture registry is loaded [Config.graph_size]; import spec.architectures")
        return GRAPH_SIZE(self)

    def layer_period(self) -> int:
        """After how many layers the blocks' structure repeats (1 unless a family inserts something
        every few layers); graph_size builds whole periods."""
        return 1

    # -- changing and reading ---------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self: C, **changes: object) -> C:
        """A copy with some fields changed (checked again)."""
        unknown = [k for k in changes if k not in self.field_names()]
        if unknown:
            raise ConfigError(
                f"config fields {unknown}{_hint(unknown[0], self.field_names())}, but expected fields of "
                f"{type(self).__name__}: {self.field_names()} [{self._where()}]"
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse_field(cls, key: str, text: str, where: str = "--set") -> object:
        """The value of field ``key`` written as text on a command line: JSON (``4``, ``1e-6``,
        ``true``, ``null``, ``"gelu_erf"``), a bare word for a string field, a comma list for a
        tuple field. Checked against the field's type (``bool`` takes only true/false)."""
        names = cls.field_names()
        if key not in names:
            raise ConfigError(f"{where} {key}{_hint(key, names)}, but expected a field of {cls.__name__}: {names} [command line]")
        annotation = _hints(cls)[key]
        if len(text) > MAX_FIELD_TEXT:
            raise ConfigError(f"{where} {key}= a value of {len(text):,} characters, but expected at most {MAX_FIELD_TEXT:,} [command line]")
        value: object
        if _origin_is_tuple(_without_none(annotation)) and not text.strip().startswith("["):
            value = tuple(part.strip() for part in text.split(",")) if text.strip() else ()
        else:
            try:
                value = loads(text, f"{where} {key}")
            except ValueError as error:
                if isinstance(error, ConfigError):
                    raise
                value = text
            if isinstance(value, list):
                value = tuple(value)
        check_value(key, value, annotation, f"{where} {key}={text}")
        return value

    def to_json(self) -> str:
        """Every field as JSON (tuples as lists)."""
        return json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str, where: str) -> C:
        """The config :meth:`to_json` wrote; refuse anything else (unknown or missing fields,
        wrong types) with a ConfigError naming ``where``."""
        if not isinstance(text, str) or len(text) > MAX_JSON_BYTES:
            raise ConfigError(f"config of {len(text) if isinstance(text, str) else type(text).__name__} characters, but expected a JSON object of a few hundred [{where}]")
        try:
            fields = loads(text, where)
        except ValueError as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"config is not JSON ({str(error)[:80]}), but expected a {cls.__name__} object [{where}]") from None
        return cls.from_mapping(fields, where)

    @classmethod
    def from_mapping(cls: type[C], fields: object, where: str) -> C:
        """A config from a mapping of field names to JSON values (lists become tuples)."""
        names = cls.field_names()
        if not isinstance(fields, dict):
            raise ConfigError(f"config={type(fields).__name__}, but expected a JSON object of {cls.__name__} fields [{where}]")
        unknown = sorted(set(fields) - set(names))
        if unknown:
            raise ConfigError(
                f"config fields {unknown}, but expected only {cls.__name__} fields {names} [{where}]; "
                "the file was written by another version of gptspec, or edited"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in values]
        if missing:
            raise ConfigError(f"config fields {missing} are missing, but expected every required field of {cls.__name__} [{where}]")
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{error} [{where}]") from None


# -- type checking of one value ------------------------------------------------------------


@typing.no_type_check
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _without_none(annotation: Any) -> Any:
    args = get_args(annotation)
    if isinstance(annotation, types.UnionType) or get_origin(annotation) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _origin_is_tuple(annotation: Any) -> bool:
    return get_origin(annotation) is tuple


def describe_type(annotation: Any) -> str:
    """The type as a user reads it: ``a whole number``, ``true or false``, ``one of 'a', 'b'``."""
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a finite number"
    if annotation is str:
        return "a string"
    if annotation is type(None):
        return "null"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a tuple of ({describe_type(args[0])})"
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return " or ".join(describe_type(a) for a in args)
    return str(annotation)


def _conforms(value: object, annotation: Any) -> bool:
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    if annotation is type(None):
        return value is None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is tuple:
        element = args[0]
        return isinstance(value, tuple) and all(_conforms(v, element) for v in value)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return any(_conforms(value, a) for a in args)
    raise ConfigError(f"field type {annotation!r}, but expected a type spec.config checks [Config]; use int, float, bool, str, Literal, tuple or None")


def check_value(name: str, value: object, annotation: Any, where: str) -> None:
    """Refuse ``value`` unless it has the field's type (see the module docstring)."""
    if not _conforms(value, annotation):
        fix = ""
        if isinstance(value, list):
            fix = "; give a tuple (or a comma list on the command line)"
        elif isinstance(value, str) and _without_none(annotation) is bool:
            fix = "; write true or false"
        elif isinstance(value, float) and not math.isfinite(value):
            fix = "; infinity and NaN are not numbers the spec defines"
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "…"
        raise ConfigError(f"{name}={shown}, but expected {describe_type(annotation)} [{where}]{fix}")


def _hint(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def positive(config: Config, *names: str) -> None:
    """Refuse fields (whole numbers or None) that are not ≥ 1."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name}={value!r}, but expected a whole number ≥ 1 [{config._where()}]")


def mapping_of(config: Config) -> Mapping[str, object]:
    """The fields of a config by name (what the docs and the θ file show)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
