"""Config inference: build a module class from its own config type (docs/verify.md, "Verify a
codebase you did not write").

A class that is not a Hugging Face class (no ``config_class``) is built from the config type it
declares, with the spec config mapped onto that type's fields through :data:`SYNONYMS` — the
same quantity under the names codebases give it (nanoGPT's ``block_size``, Meta's ``max_seq_len``
and Hugging Face's ``max_position_embeddings`` are all n_ctx). The config type is found, in order:

1. the annotation of ``__init__``'s first parameter, when it is a dataclass (Meta's
   ``Transformer(params: ModelArgs)``, litgpt's ``GPT(config: Config)``);
2. for an unannotated first parameter named like a config (:data:`CONFIG_NAMES`), the one
   dataclass in the class's module whose fields name the most known quantities, at least three
   (nanoGPT's ``GPT(config)`` with ``GPTConfig`` beside it);
3. ``cls.get_default_config()`` (minGPT's style), whose attributes are then set;
4. keyword arguments of ``__init__`` itself (``GPT(vocab_size=…, d_model=…)``).

Fields with no synonym keep their defaults (listed in the report); dropout fields are set to 0;
``max_batch_size`` (a KV cache's rows) to :data:`MAX_BATCH`; Meta's ``multiple_of`` and
``ffn_dim_multiplier`` are solved so the SwiGLU width is d_mlp
(:func:`gptspec.checkpoint.meta_llama.solve_meta_ffn`). Whether the result has the spec's shapes
is checked when its parameters are matched to Θ (gptspec/verify/layouts.py). When nothing
works, :class:`~spec.errors.ConfigError` lists what was tried and suggests a factory.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spec.errors import ConfigError

SYNONYMS: dict[str, tuple[str, ...]] = {
    "n_ctx": ("block_size", "n_positions", "max_seq_len", "max_position_embeddings", "n_ctx", "context_length", "max_seq_length",
              "seq_len", "max_len"),
    "d_model": ("n_embd", "dim", "hidden_size", "d_model", "n_embed", "embed_dim", "emb_dim", "model_dim"),
    "n_layers": ("n_layer", "n_layers", "num_hidden_layers", "num_layers", "depth"),
    "n_heads": ("n_head", "n_heads", "num_attention_heads", "num_heads"),
    "n_kv_heads": ("n_kv_heads", "num_key_value_heads", "n_kv_head", "num_kv_heads", "n_query_groups", "n_local_heads"),
    "n_vocab": ("vocab_size", "n_vocab", "d_vocab", "padded_vocab_size", "num_tokens"),
    "d_head": ("head_dim", "d_head", "head_size"),
    "d_mlp": ("intermediate_size", "d_mlp", "n_inner", "ffn_dim", "ffn_hidden_size", "mlp_dim"),
    "eps": ("norm_eps", "layer_norm_epsilon", "rms_norm_eps", "layer_norm_eps", "ln_eps", "eps", "norm_epsilon"),
    "rope_base": ("rope_theta", "rope_base", "rotary_base", "theta"),
    "bias": ("bias", "use_bias"),
    "activation": ("activation", "activation_function", "hidden_act", "act_fn", "act"),
    "tied": ("tie_word_embeddings", "tie_embeddings", "tied", "weight_tying", "tie_weights"),
}
"""Spec quantity → the field names codebases give it (the first found in a config type is set).
``n_ctx`` … ``d_mlp`` are sizes; ``d_head`` and ``d_mlp`` resolved (d_model / n_heads, 4·d_model);
``n_kv_heads`` resolved to n_heads where the family has none."""

DROPOUT = ("dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout", "attn_dropout",
           "resid_dropout", "embd_dropout", "dropout_p", "dropout_rate", "ffn_dropout")
"""Fields set to 0: dropout is the identity at inference, the function the spec defines."""

MAX_BATCH = 8
"""``max_batch_size`` (a cache sized for that many rows): more rows than any drawn batch has."""
BATCH_FIELDS = ("max_batch_size", "max_batch")

FFN_RULE = ("multiple_of", "ffn_dim_multiplier")
"""Meta's fields fixing the SwiGLU width: solved for d_mlp (gptspec.checkpoint.meta_llama)."""

ACTIVATION_NAMES = {"gelu_tanh": "gelu_new", "gelu_erf": "gelu", "relu": "relu", "silu": "silu"}
"""The spec's activation → the name a config field takes (Hugging Face's, which TransformerLens shares)."""

CONFIG_NAMES = ("config", "cfg", "conf", "args", "params", "model_args", "hparams", "settings")
"""Names of an unannotated first parameter that is taken to be a config object (nanoGPT's ``GPT(config)``)."""

MIN_KNOWN = 3
"""How many known quantities a module-level dataclass must name to be taken as the config type."""


@dataclass
class Built:
    """How a class was built: the config type, each field set (and from which quantity), the
    fields left at their defaults, and the spec quantities with no field (the code fixes them)."""

    how: str
    config_type: str = ""
    values: dict[str, tuple[object, str]] = field(default_factory=dict)
    defaults: dict[str, object] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.config_type:
            return self.how
        shown = ", ".join(f"{k}={v!r}" for k, (v, _) in self.values.items())
        text = f"{self.how}: {self.config_type}({shown})"
        if self.defaults:
            text += f"; kept defaults {', '.join(f'{k}={v!r}' for k, v in self.defaults.items())}"
        if self.unmapped:
            text += f"; no field for {', '.join(self.unmapped)} (the code fixes them)"
        return text


def quantities(config: Any) -> dict[str, object]:
    """The spec config's values under :data:`SYNONYMS`' quantity names (resolved widths)."""
    out: dict[str, object] = {}
    for name in ("n_ctx", "d_model", "n_layers", "n_heads", "n_vocab"):
        out[name] = getattr(config, name)
    out["d_head"] = getattr(config, "head_width", None)
    out["d_mlp"] = getattr(config, "mlp_width", getattr(config, "d_mlp", None))
    out["n_kv_heads"] = getattr(config, "kv_heads", config.n_heads)
    out["eps"] = getattr(config, "eps", None)
    if hasattr(config, "rope_base"):
        out["rope_base"] = config.rope_base
    if hasattr(config, "bias"):
        out["bias"] = config.bias
    elif hasattr(config, "qkv_bias") and config.qkv_bias == config.out_bias == config.mlp_bias:
        out["bias"] = config.qkv_bias
    activation = getattr(config, "activation", None)
    if activation in ACTIVATION_NAMES:
        out["activation"] = ACTIVATION_NAMES[activation]
    if hasattr(config, "tied"):
        out["tied"] = config.tied
    return {k: v for k, v in out.items() if v is not None}


def assign(fields: Mapping[str, object], config: Any) -> tuple[dict[str, tuple[object, str]], list[str]]:
    """Values for those of ``fields`` (name → default, or REQUIRED) that a quantity, dropout, the
    batch bound or the FFN rule fixes; and the quantities no field takes."""
    values: dict[str, tuple[object, str]] = {}
    known = quantities(config)
    used: set[str] = set()
    for quantity, names in SYNONYMS.items():
        if quantity not in known:
            continue
        for name in names:
            if name in fields and name not in values:
                value = known[quantity]
                if quantity == "activation" and isinstance(fields[name], str) and fields[name] in ACTIVATION_NAMES:
                    value = next(k for k, v in ACTIVATION_NAMES.items() if v == known[quantity])  # a field already in the spec's names
                values[name] = (value, quantity)
                used.add(quantity)
                break
    for name in fields:
        if name in DROPOUT:
            values[name] = (0.0, "dropout (identity at inference)")
        elif name in BATCH_FIELDS:
            values[name] = (MAX_BATCH, "the largest batch drawn")
    if all(name in fields for name in FFN_RULE) and "d_mlp" in known and "d_mlp" not in used:
        from gptspec.checkpoint.meta_llama import solve_meta_ffn

        multiple_of, multiplier = solve_meta_ffn(int(known["d_model"]), int(known["d_mlp"]))  # type: ignore[call-overload]
        values["multiple_of"] = (multiple_of, "d_mlp (Meta's FFN width rule)")
        values["ffn_dim_multiplier"] = (multiplier, "d_mlp (Meta's FFN width rule)")
        used.add("d_mlp")
    unmapped: list[str] = [q for q in ("d_mlp", "eps", "activation", "rope_base", "bias", "tied") if q in quantities(config) and q not in used]
    return values, unmapped


REQUIRED = inspect.Parameter.empty


def _dataclass_fields(cls: type) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = REQUIRED
    return out


def _known_count(names: typing.Iterable[str]) -> int:
    every = {n for names_ in SYNONYMS.values() for n in names_}
    return sum(1 for n in names if n in every)


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    try:
        signature = inspect.signature(getattr(cls, "__init__"))  # noqa: B009 - mypy refuses cls.__init__
    except (TypeError, ValueError):
        return []
    return [p for p in list(signature.parameters.values())[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def find_config_type(cls: type) -> tuple[str, Any, list[str]]:
    """(how, the config type or factory, what was tried): ``how`` is ``annotation``,
    ``module dataclass``, ``get_default_config``, ``keywords`` or ``""`` when none was found."""
    tried: list[str] = []
    params = _init_parameters(cls)
    first = params[0] if params else None
    if first is not None:
        hint = None
        try:
            hint = typing.get_type_hints(getattr(cls, "__init__")).get(first.name)  # noqa: B009
        except Exception:  # noqa: BLE001 - an unresolvable annotation is one more thing tried
            hint = first.annotation if isinstance(first.annotation, type) else None
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return "annotation", hint, tried
        tried.append(f"the annotation of {cls.__name__}.__init__'s {first.name!r} ({'none' if hint is None else getattr(hint, '__name__', hint)}: not a dataclass)")
    module = sys.modules.get(cls.__module__)
    if first is not None and module is not None and first.annotation is inspect.Parameter.empty and first.name in CONFIG_NAMES:
        found = [v for v in vars(module).values() if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == cls.__module__]
        scored = sorted(((_known_count(f.name for f in dataclasses.fields(v)), v) for v in found), key=lambda p: -p[0])
        good = [v for n, v in scored if n >= MIN_KNOWN]
        if len(good) == 1 or (len(good) > 1 and scored[0][0] > scored[1][0]):
            return "module dataclass", good[0], tried
        if len(good) > 1:
            tried.append(f"dataclasses in {cls.__module__} ({', '.join(v.__name__ for v in good)}: as many known fields each, so none is chosen)")
        else:
            tried.append(f"dataclasses in {cls.__module__} ({', '.join(v.__name__ for v in found) or 'none'} with ≥ {MIN_KNOWN} known fields: none)")
    default = getattr(cls, "get_default_config", None)
    if callable(default):
        return "get_default_config", default, tried
    tried.append(f"{cls.__name__}.get_default_config() (absent)")
    if params and _known_count(p.name for p in params) >= MIN_KNOWN:
        return "keywords", cls, tried
    tried.append(f"keyword arguments of {cls.__name__}.__init__ ({[p.name for p in params]}: fewer than {MIN_KNOWN} known names)")
    return "", None, tried


def _refuse(cls: type, why: str, tried: list[str]) -> ConfigError:
    return ConfigError(
        f"{cls.__name__} could not be built from its own config: {why}, but expected a config type whose fields name the spec's "
        f"sizes [gptspec verify]; tried {'; '.join(tried) or 'nothing else'}. Fix: pass a factory f(config) -> module "
        f"(TARGET=file.py:make_model), or name the fields as docs/verify.md's synonym table does"
    )


def build_own(cls: type, config: Any) -> tuple[Any, Built] | None:
    """``cls`` built for the spec config ``config`` from its own config type, and how; None when
    the class declares no config type this can find (the caller falls back to the layout's
    native config). Raises ConfigError when a config type is found but cannot be filled."""
    how, found, tried = find_config_type(cls)
    if not how:
        return None
    if how in ("annotation", "module dataclass"):
        fields = _dataclass_fields(found)
        values, unmapped = assign(fields, config)
        missing = [n for n, d in fields.items() if d is REQUIRED and n not in values]
        if missing:
            raise _refuse(cls, f"{found.__name__} requires {missing}, which no synonym names", tried + [f"{found.__name__} ({how})"])
        built = Built(f"built from its own config ({how})", found.__name__, values,
                      {n: d for n, d in fields.items() if n not in values}, unmapped)
        return cls(found(**{k: v for k, (v, _) in values.items()})), built
    if how == "get_default_config":
        obj = found()
        names = [n for n in dir(obj) if not n.startswith("_") and not callable(getattr(obj, n, None))]
        values, unmapped = assign({n: getattr(obj, n) for n in names}, config)
        for name, (value, _) in values.items():
            setattr(obj, name, value)
        if hasattr(obj, "model_type") and isinstance(obj.model_type, str) and "n_layers" in {q for _, q in values.values()}:
            obj.model_type = None  # minGPT-style: the sizes are given, not a named model type
        built = Built("built from get_default_config()", type(obj).__name__, values, {}, unmapped)
        return cls(obj), built
    params = {p.name: (p.default if p.default is not inspect.Parameter.empty else REQUIRED) for p in _init_parameters(cls)}
    values, unmapped = assign(params, config)
    missing = [n for n, d in params.items() if d is REQUIRED and n not in values]
    if missing:
        raise _refuse(cls, f"{cls.__name__}.__init__ requires {missing}, which no synonym names", tried)
    built = Built("built from keyword arguments", f"{cls.__name__}.__init__", values, {n: d for n, d in params.items() if n not in values}, unmapped)
    return cls(**{k: v for k, (v, _) in values.items()}), built


def own_config_maker(cls: type, fallback: Callable[[Any], Any]) -> tuple[Callable[[Any], Any], list[Built]]:
    """``make(arch)`` building ``cls`` from its own config type, or by ``fallback(arch)`` when it
    declares none; the list receives how each build went (for the report)."""
    log: list[Built] = []

    def make(arch: Any) -> Any:
        result = build_own(cls, arch.config)
        if result is None:
            log.append(Built("built with the layout's native config (no config type of its own found)"))
            return fallback(arch)
        module, built = result
        log.append(built)
        return module

    return make, log


__all__ = ["DROPOUT", "MAX_BATCH", "SYNONYMS", "Built", "build_own", "find_config_type", "own_config_maker", "quantities"]
