"""The Hugging Face Llama-family layouts (``hf-llama``, ``hf-mistral``, ``hf-qwen2``):
``LlamaForCausalLM``, ``MistralForCausalLM`` and ``Qwen2ForCausalLM`` state dicts and
``config.json`` ↔ the spec's Llama family (spec/architectures/llama.py), one table per
``model_type``, sharing the rules where the three agree.

The tensors: ``torch.nn.Linear`` stores its weight as (out, in) and computes x Wᵀ + b, so every
projection is the transpose of the spec's row-convention map — ``q_proj.weight`` is "(h e) d"
against W_Q's "h d e" (rows h·d_head + e are head h's output e), ``o_proj.weight`` "d (h e)"
against W_O's "h e d". K and V hold n_kv_heads heads. Rotary embedding has no parameters
(``inv_freq`` is a non-persistent buffer today; files saved by transformers before 4.31 hold it,
and it is accepted when it agrees with config.json — :func:`check_inv_freq`); Hugging Face pairs features
(k, k + d_head/2) (``rotate_half``), so the spec's ``rope_pairing`` is ``half``: Meta's original
checkpoints pair adjacent features, and Hugging Face's conversion permutes the rows of W_Q and
W_K so that the half pairing computes the same function (docs/conventions.md, "The Llama family").

The config: every key this version of transformers writes for these classes is in the table —
modelled, ignored (it does not change the logits) or refused unless at given values, each with
its reason — as are the older spellings still on the Hub (``rope_theta``, ``rope_scaling``,
``torch_dtype``); anything else is refused. Rotary scalings ``linear`` and ``llama3`` are
modelled; every other ``rope_type`` is refused by name (spec.ops.rotary.REFUSED_SCALINGS).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gptspec.checkpoint.hf_common import HF_PRETRAINED_KEYS
from gptspec.checkpoint.hf_gpt2 import HF_ACTIVATIONS
from gptspec.checkpoint.layout import (
    Alias,
    Buffer,
    ConfigKey,
    Layout,
    Tensor,
    flag,
    ignore,
    model,
    number,
    register_layout,
    require,
    whole,
)
from spec.architectures import LlamaConfig
from spec.config import Config
from spec.errors import CheckpointError, ConfigError
from spec.ops.rotary import REFUSED_SCALINGS

GATE_ACTIVATIONS: dict[str, str] = {
    # torch.nn.functional.silu: x σ(x) (transformers' SiLUActivation)
    "silu": "silu",
    # the same function, torch.nn.SiLU
    "swish": "silu",
    **HF_ACTIVATIONS,
}
"""Hugging Face ``hidden_act`` → the spec's gate activation (SwiGLU: silu; the GELUs and ReLU
give GeGLU and ReGLU). Every other name is another function and is refused."""

NATIVE_GATE_ACTIVATION = {"silu": "silu", "gelu_tanh": "gelu_pytorch_tanh", "gelu_erf": "gelu", "relu": "relu"}
"""The spec's gate activation → the name written on export."""

ROPE_TYPES = ("default", "linear", "llama3")
"""``rope_type`` values the layouts model: no scaling, linear, llama3."""

ROPE_KEYS: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}
"""The keys of ``rope_parameters`` each modelled type reads (besides rope_type, type and
rope_theta, and partial_rotary_factor = 1)."""


# -- the config tables ---------------------------------------------------------------------

SIZES: dict[str, ConfigKey] = {
    "vocab_size": model("n_vocab: the rows of embed_tokens, the width of the logits"),
    "hidden_size": model("d_model: the width of the residual stream"),
    "intermediate_size": model("d_mlp: the gated MLP's hidden width"),
    "num_hidden_layers": model("n_layers: the number of decoder layers"),
    "num_attention_heads": model("n_heads: the query heads of every layer"),
    "max_position_embeddings": model("n_ctx: the longest sequence the model is defined for (the spec refuses longer ones)"),
}

ROPE: dict[str, ConfigKey] = {
    "rope_parameters": model(
        "the rotary embedding: rope_theta (the base θ of ω_k = θ^(−2k/d_head)) and rope_type with its factors "
        "(default, linear, llama3 modelled; others refused by name)", default=None,
    ),
    "rope_theta": model("the base θ as older configs spell it (outside rope_parameters)", default=None),
    "rope_scaling": model("the scaling as older configs spell it: {type or rope_type, factor, …}", default=None),
    "partial_rotary_factor": require(
        "a factor below 1 rotates only part of each head, which the spec's Llama family does not model", 1.0, 1,
    ),
}

COMMON: dict[str, ConfigKey] = {
    "rms_norm_eps": model("eps: the ε inside every RMS norm's square root", default=1e-6),
    "hidden_act": model("the gate's activation (silu: SwiGLU), mapped by GATE_ACTIVATIONS", default="silu"),
    "tie_word_embeddings": model("true: the unembedding is embed_tokensᵀ (tied); false: lm_head.weight", default=False),
    "is_encoder_decoder": require("true makes this the decoder of an encoder-decoder model, which the spec does not model", False),
    "add_cross_attention": require("true adds cross-attention, which these decoder-only classes do not have", False),
    "pruned_heads": require("pruning leaves layers with fewer heads, which the spec does not model", {}),
    **ignore("dropout: the identity at inference (eval mode), the function the spec defines", "attention_dropout"),
    **ignore("initialisation of new weights; the checkpoint supplies them", "initializer_range"),
    **HF_PRETRAINED_KEYS,  # every Hugging Face config's keys that do not change the logits (hf_common.py)
    **ignore(
        "not read by these decoder-only stacks (their self-attention is causal whatever is_decoder says; "
        "chunked feed-forward is a BERT-style memory option the Llama-family classes do not call)",
        "is_decoder", "tie_encoder_decoder", "cross_attention_hidden_size", "chunk_size_feed_forward",
    ),
}
"""What the three layouts share."""

LLAMA_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type llama", "llama"),
    "num_key_value_heads": model("n_kv_heads: key/value heads (grouped-query attention); null means num_attention_heads", default=None),
    "head_dim": model("d_head; null means hidden_size // num_attention_heads", default=None),
    "attention_bias": model("true: q_proj, k_proj, v_proj and o_proj all have biases (qkv_bias = out_bias)", default=False),
    "mlp_bias": model("true: gate_proj, up_proj and down_proj have biases", default=False),
    **ignore(
        "a marker nanotron's Llama export writes (SmolLM, SmolLM2); no transformers code reads it",
        "is_llama_config",
    ),
    "rope_interleaved": require(
        "written by nanotron's Llama export; transformers does not read it and always pairs dimension i with i + d_head/2 "
        "(rotate-half), so true would mean the weights expect the interleaved pairing the Hugging Face model does not apply",
        False,
    ),
    **ignore(
        "read by no code of this transformers version's LlamaForCausalLM; older versions split the projections "
        "into pretraining_tp slices and summed them: the same function, a different summation order",
        "pretraining_tp",
    ),
}
"""Every Hugging Face Llama ``config.json`` key gptspec reads, with its role and reason."""

MISTRAL_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type mistral", "mistral"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; MistralConfig's default is 8 (null is refused, as MistralConfig does)", default=8),
    "head_dim": model("d_head; null means hidden_size // num_attention_heads", default=None),
    "sliding_window": model(
        "W: every layer's position t attends to t − W < s ≤ t (null: causal); MistralConfig's default is 4096",
        default=4096,
    ),
    **ignore(
        "MistralModel does not read it (it warns and applies one mask to every layer; Ministral models read it)",
        "layer_types",
    ),
}
"""Every Hugging Face Mistral ``config.json`` key gptspec reads, with its role and reason."""

QWEN2_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type qwen2", "qwen2"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; Qwen2Config's default is 32, null means num_attention_heads", default=32),
    "head_dim": model(
        "d_head: not a Qwen2Config field, but Qwen2Attention reads it when config.json has it; "
        "absent means hidden_size // num_attention_heads", default=None,
    ),
    "use_sliding_window": model("false: no layer has a window, whatever layer_types and sliding_window say", default=False),
    "sliding_window": model("W of the sliding layers (t − W < s ≤ t); read only with use_sliding_window", default=4096),
    "max_window_layers": model("without layer_types: layers i ≥ max_window_layers slide (with use_sliding_window)", default=28),
    "layer_types": model("one of full_attention / sliding_attention per layer; null derives it from max_window_layers", default=None),
}
"""Every Hugging Face Qwen2 ``config.json`` key gptspec reads, with its role and reason."""


# -- reading a native config -----------------------------------------------------------------


def _fail(key: str, value: object, want: str, where: str, fix: str = "") -> CheckpointError:
    shown = repr(value) if isinstance(value, str) else str(value)
    return CheckpointError(f"config key {key}={shown[:80]}, but expected {want} [checkpoint {where}]" + (f"; {fix}" if fix else ""))


def read_rope(values: Mapping[str, object], where: str) -> dict[str, Any]:
    """The LlamaConfig rope fields of a native config: ``rope_parameters`` (or the older
    ``rope_scaling`` + ``rope_theta``), as this transformers version reads them, refusing
    conflicting spellings, unmodelled types by name, and keys a type does not read."""
    params, scaling, theta = values["rope_parameters"], values["rope_scaling"], values["rope_theta"]
    for key, value in (("rope_parameters", params), ("rope_scaling", scaling)):
        if value is not None and not isinstance(value, dict):
            raise _fail(key, value, "a JSON object or null", where)
    if params and scaling:
        raise _fail("rope_scaling", scaling, f"it absent next to rope_parameters={params}", where, "keep one of the two (rope_parameters is the current spelling)")
    chosen = scaling or params or {}
    rope: dict[str, object] = dict(chosen) if isinstance(chosen, dict) else {}
    if theta is not None:
        number(values, "rope_theta", where)
        if "rope_theta" in rope and rope["rope_theta"] != theta:
            raise _fail("rope_theta", theta, f"rope_theta={rope['rope_theta']} as rope_parameters says", where, "keep one of the two")
        rope.setdefault("rope_theta", theta)
    if "type" in rope and "rope_type" in rope and rope["type"] != rope["rope_type"]:
        raise _fail("rope_parameters.type", rope["type"], f"rope_type={rope['rope_type']!r}, which it is another name for", where)
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind in REFUSED_SCALINGS:
        raise _fail("rope_type", kind, f"one of {list(ROPE_TYPES)}", where, REFUSED_SCALINGS[str(kind)])
    if kind not in ROPE_TYPES:
        raise _fail("rope_type", kind, f"one of {list(ROPE_TYPES)}", where, "another rotary variant is another function")
    partial = rope.get("partial_rotary_factor", 1.0)
    if isinstance(partial, bool) or partial not in (1, 1.0):
        raise _fail("rope_parameters.partial_rotary_factor", partial, "1.0", where, ROPE["partial_rotary_factor"].reason)
    known = {"rope_type", "type", "rope_theta", "partial_rotary_factor", *ROPE_KEYS[str(kind)]}
    stray = sorted(set(rope) - known)
    if stray:
        raise _fail(
            f"rope_parameters.{stray[0]}", rope[stray[0]], f"only the keys rope_type {kind!r} reads: {sorted(known)}", where,
            f"Hugging Face's {kind} rotary embedding does not read it (it logs 'unrecognized keys'); remove it",
        )
    sub = dict(rope)
    base = number(sub | {"rope_theta": sub.get("rope_theta", 10000.0)}, "rope_theta", where)
    if not base > 0:
        raise _fail("rope_theta", base, "a number > 0", where)
    fields: dict[str, Any] = {"rope_base": base, "rope_scaling": "none" if kind == "default" else kind}
    if kind in ("linear", "llama3"):
        if "factor" not in sub:
            raise _fail("rope_parameters.factor", None, f"a number > 0 (rope_type {kind!r} needs it)", where)
        fields["rope_factor"] = number(sub, "factor", where)
    if kind == "llama3":
        for key in ("low_freq_factor", "high_freq_factor"):
            if key not in sub:
                raise _fail(f"rope_parameters.{key}", None, "a number (rope_type 'llama3' needs it)", where)
        fields["rope_low_freq_factor"] = number(sub, "low_freq_factor", where)
        fields["rope_high_freq_factor"] = number(sub, "high_freq_factor", where)
        original = sub.get("original_max_position_embeddings", values["max_position_embeddings"])
        fields["rope_original_n_ctx"] = whole({"original_max_position_embeddings": original}, "original_max_position_embeddings", where)
    return fields


def _activation(values: Mapping[str, object], where: str) -> str:
    act = values["hidden_act"]
    if not isinstance(act, str) or act not in GATE_ACTIVATIONS:
        raise _fail(
            "hidden_act", act, f"one of {list(GATE_ACTIVATIONS)}", where,
            "every other Hugging Face activation is a different function (gptspec.checkpoint.hf_llama.GATE_ACTIVATIONS)",
        )
    return GATE_ACTIVATIONS[act]


def _heads(values: Mapping[str, object], where: str, llama: bool, kv_nullable: bool = True) -> dict[str, Any]:
    d_model, n_heads = whole(values, "hidden_size", where), whole(values, "num_attention_heads", where)
    if llama and d_model % n_heads:
        raise _fail(
            "hidden_size", d_model, f"a multiple of num_attention_heads={n_heads}", where,
            "LlamaConfig refuses it too, even with head_dim set",
        )
    if values["num_key_value_heads"] is None and not kv_nullable:
        raise _fail("num_key_value_heads", None, "a whole number ≥ 1", where, "MistralConfig refuses null too (its field is an int)")
    kv = None if values["num_key_value_heads"] is None else whole(values, "num_key_value_heads", where)
    head = d_model // n_heads if values["head_dim"] is None else whole(values, "head_dim", where)
    if kv is not None and n_heads % kv:
        raise _fail("num_key_value_heads", kv, f"a divisor of num_attention_heads={n_heads}", where, "each key/value head serves n_heads / n_kv_heads query heads")
    return {
        "d_model": d_model, "n_heads": n_heads, "n_kv_heads": None if kv in (None, n_heads) else kv,
        "d_head": None if head * n_heads == d_model else head,
    }


def _base(values: Mapping[str, object], where: str, llama: bool, kv_nullable: bool = True) -> dict[str, Any]:
    eps = number(values, "rms_norm_eps", where)
    return {
        "n_vocab": whole(values, "vocab_size", where), "n_ctx": whole(values, "max_position_embeddings", where),
        "n_layers": whole(values, "num_hidden_layers", where), "d_mlp": whole(values, "intermediate_size", where),
        **_heads(values, where, llama, kv_nullable), "activation": _activation(values, where), "eps": eps,
        "tied": flag(values, "tie_word_embeddings", where), **read_rope(values, where),
    }


def _config(fields: Mapping[str, Any], name: str, where: str) -> LlamaConfig:
    try:
        return LlamaConfig(**fields, name=name)
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


def read_llama(values: Mapping[str, object], where: str) -> Config:
    """The :class:`LlamaConfig` of a Hugging Face Llama ``config.json``'s modelled keys."""
    bias = flag(values, "attention_bias", where)
    fields = _base(values, where, llama=True) | {"qkv_bias": bias, "out_bias": bias, "mlp_bias": flag(values, "mlp_bias", where)}
    return _config(fields, "llama", where)


def read_mistral(values: Mapping[str, object], where: str) -> Config:
    """The :class:`LlamaConfig` of a Hugging Face Mistral ``config.json``'s modelled keys."""
    fields = _base(values, where, llama=False, kv_nullable=False)
    window = values["sliding_window"]
    if window is not None:
        fields |= {"attention": ("sliding",), "sliding_window": whole(values, "sliding_window", where)}
    return _config(fields, "mistral", where)


QWEN2_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding"}


def read_qwen2(values: Mapping[str, object], where: str) -> Config:
    """The :class:`LlamaConfig` of a Hugging Face Qwen2 ``config.json``'s modelled keys: biases on
    Q, K and V only (Qwen2Attention has them whatever the config says), and the layer types as
    Qwen2Config.__post_init__ derives them."""
    fields = _base(values, where, llama=False) | {"qkv_bias": True}
    return _config(fields | qwen2_layers(values, where, fields["n_layers"]), "qwen2", where)


def qwen2_layers(values: Mapping[str, object], where: str, n_layers: int) -> dict[str, Any]:
    """The LlamaConfig fields ``attention`` and ``sliding_window`` of Qwen2's (and Qwen3's) keys
    use_sliding_window, sliding_window, max_window_layers and layer_types, as their configs'
    ``__post_init__`` derives the layer types (empty when every layer is full)."""
    use = flag(values, "use_sliding_window", where)
    window = whole(values, "sliding_window", where) if use and values["sliding_window"] is not None else None
    types = values["layer_types"]
    if types is None:
        first = whole(values, "max_window_layers", where, least=0)
        kinds = tuple("sliding" if window is not None and i >= first else "full" for i in range(n_layers))
    else:
        if not isinstance(types, list) or len(types) != n_layers or not all(isinstance(k, str) and k in QWEN2_LAYER_TYPES for k in types):
            raise _fail("layer_types", types, f"a list of {n_layers} entries, each one of {list(QWEN2_LAYER_TYPES)}", where)
        kinds = tuple(QWEN2_LAYER_TYPES[str(k)] for k in types)
        if "sliding" in kinds and window is None:
            raise _fail(
                "layer_types", types, "no sliding_attention layer when use_sliding_window is false or sliding_window null", where,
                "Hugging Face's Qwen2Model fails on this config too; set use_sliding_window and sliding_window, or make every layer full_attention",
            )
    return {"attention": kinds, "sliding_window": window} if "sliding" in kinds else {}


# -- writing a native config -----------------------------------------------------------------


def _rope_parameters(c: LlamaConfig) -> dict[str, object]:
    out: dict[str, object] = {"rope_type": "default" if c.rope_scaling == "none" else c.rope_scaling, "rope_theta": c.rope_base}
    if c.rope_scaling in ("linear", "llama3"):
        out["factor"] = c.rope_factor
    if c.rope_scaling == "llama3":
        out |= {
            "low_freq_factor": c.rope_low_freq_factor, "high_freq_factor": c.rope_high_freq_factor,
            "original_max_position_embeddings": c.rope_original_n_ctx if c.rope_original_n_ctx is not None else c.n_ctx,
        }
    return out


def _common(c: LlamaConfig, model_type: str, refuse: list[str]) -> dict[str, object]:
    if c.rope_pairing != "half":
        refuse.append(
            f"rope_pairing={c.rope_pairing!r} (Hugging Face rotates the pairs (k, k + d_head/2); a model with interleaved "
            "pairs equals one with half pairs only after permuting W_Q's and W_K's features, which this layout does not do)"
        )
    if c.activation not in NATIVE_GATE_ACTIVATION:
        refuse.append(f"activation={c.activation!r}")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config {model_type} can express [export {c.name} to hf-{model_type}]")
    return {
        "model_type": model_type, "vocab_size": c.n_vocab, "hidden_size": c.d_model, "intermediate_size": c.d_mlp,
        "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads, "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_width, "hidden_act": NATIVE_GATE_ACTIVATION[c.activation], "max_position_embeddings": c.n_ctx,
        "rms_norm_eps": c.eps, "tie_word_embeddings": c.tied, "rope_parameters": _rope_parameters(c),
    }


def _kinds(c: LlamaConfig) -> list[str]:
    return [c.layer_kind(i) for i in range(c.n_layers)]


def write_llama(config: LlamaConfig) -> dict[str, object]:
    """The Hugging Face ``LlamaConfig`` keys of a spec Llama-family config; refuses what
    LlamaForCausalLM cannot express (a sliding window, separate attention bias switches,
    interleaved pairs, hidden_size not a multiple of the heads)."""
    c, refuse = config, []
    if "sliding" in _kinds(c):
        refuse.append("sliding layers (LlamaForCausalLM has no sliding window: export to hf-mistral or hf-qwen2)")
    if c.qkv_bias != c.out_bias:
        refuse.append(f"qkv_bias={c.qkv_bias}, out_bias={c.out_bias} (attention_bias switches all four projections' biases together)")
    if c.d_model % c.n_heads:
        refuse.append(f"d_model={c.d_model} not a multiple of n_heads={c.n_heads} (LlamaConfig refuses it even with head_dim)")
    return _common(c, "llama", refuse) | {"attention_bias": c.qkv_bias, "mlp_bias": c.mlp_bias}


def write_mistral(config: LlamaConfig) -> dict[str, object]:
    """The Hugging Face ``MistralConfig`` keys; refuses biases (Mistral has none), interleaved
    pairs, and layers that differ in their window (Mistral applies one mask to every layer)."""
    c, refuse = config, []
    if c.qkv_bias or c.out_bias or c.mlp_bias:
        refuse.append("biases (MistralForCausalLM has no bias on any projection)")
    kinds = set(_kinds(c))
    if len(kinds) > 1:
        refuse.append(f"attention={c.attention} (every Mistral layer has the same mask: export to hf-qwen2 for per-layer windows)")
    window = c.sliding_window if kinds == {"sliding"} else None
    return _common(c, "mistral", refuse) | {"sliding_window": window}


def write_qwen2(config: LlamaConfig) -> dict[str, object]:
    """The Hugging Face ``Qwen2Config`` keys; refuses what Qwen2 fixes otherwise: Q, K, V biases
    on, no O or MLP biases."""
    c, refuse = config, []
    if not c.qkv_bias or c.out_bias or c.mlp_bias:
        refuse.append(
            f"qkv_bias={c.qkv_bias}, out_bias={c.out_bias}, mlp_bias={c.mlp_bias} (Qwen2 has biases on q_proj, k_proj, v_proj and on "
            "nothing else)"
        )
    out = _common(c, "qwen2", refuse) | qwen2_layer_keys(c)
    if c.head_width * c.n_heads == c.d_model:
        del out["head_dim"]  # not a Qwen2Config field: written only when it differs from hidden_size / num_attention_heads
    return out


def qwen2_layer_keys(c: LlamaConfig) -> dict[str, object]:
    """Qwen2's (and Qwen3's) layer-type keys of a config: the inverse of :func:`qwen2_layers`."""
    kinds = _kinds(c)
    sliding = "sliding" in kinds
    return {
        "use_sliding_window": sliding, "sliding_window": c.sliding_window if sliding else None,
        "max_window_layers": kinds.index("sliding") if sliding else c.n_layers, "layer_types": [f"{k}_attention" for k in kinds],
    }


# -- the tensor tables -----------------------------------------------------------------------


Switch = Callable[[Any], bool] | None
"""When a bias rule applies: a predicate of the config, or ``None`` for never (the class has no
such bias, so the table does not list it)."""


def _tensors(qkv_bias: Switch, out_bias: Switch, mlp_bias: Switch) -> tuple[Tensor | Alias, ...]:
    attn, mlp = "layers.{i}.self_attn", "layers.{i}.mlp"

    def rules(switch: Switch, *tensors: tuple[str, str, str, str]) -> tuple[Tensor, ...]:
        if switch is None:
            return ()
        return tuple(Tensor(external, (theta,), ext, th, when=switch) for external, theta, ext, th in tensors)

    return (
        Tensor("embed_tokens.weight", ("W_E",), "v d", "v d"),
        Tensor("layers.{i}.input_layernorm.weight", ("blocks.{i}.norm_1.gamma",), "d", "d"),
        # nn.Linear (out, in): rows h·d_head + e are head h's output e
        Tensor(f"{attn}.q_proj.weight", ("blocks.{i}.attn.W_Q",), "(h e) d", "h d e"),
        Tensor(f"{attn}.k_proj.weight", ("blocks.{i}.attn.W_K",), "(g e) d", "g d e"),
        Tensor(f"{attn}.v_proj.weight", ("blocks.{i}.attn.W_V",), "(g e) d", "g d e"),
        *rules(
            qkv_bias,
            (f"{attn}.q_proj.bias", "blocks.{i}.attn.b_Q", "(h e)", "h e"),
            (f"{attn}.k_proj.bias", "blocks.{i}.attn.b_K", "(g e)", "g e"),
            (f"{attn}.v_proj.bias", "blocks.{i}.attn.b_V", "(g e)", "g e"),
        ),
        # columns h·d_head + e read head h's output e
        Tensor(f"{attn}.o_proj.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        *rules(out_bias, (f"{attn}.o_proj.bias", "blocks.{i}.attn.b_O", "d", "d")),
        Tensor("layers.{i}.post_attention_layernorm.weight", ("blocks.{i}.norm_2.gamma",), "d", "d"),
        Tensor(f"{mlp}.gate_proj.weight", ("blocks.{i}.mlp.W_gate",), "m d", "d m"),
        Tensor(f"{mlp}.up_proj.weight", ("blocks.{i}.mlp.W_up",), "m d", "d m"),
        Tensor(f"{mlp}.down_proj.weight", ("blocks.{i}.mlp.W_down",), "d m", "m d"),
        *rules(
            mlp_bias,
            (f"{mlp}.gate_proj.bias", "blocks.{i}.mlp.b_gate", "m", "m"),
            (f"{mlp}.up_proj.bias", "blocks.{i}.mlp.b_up", "m", "m"),
            (f"{mlp}.down_proj.bias", "blocks.{i}.mlp.b_down", "d", "d"),
        ),
        Tensor("norm.weight", ("norm_f.gamma",), "d", "d"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v", when=lambda c: not c.tied),
        Alias("lm_head.weight", of="embed_tokens.weight", when=lambda c: c.tied,
              reason="tie_word_embeddings=true: Hugging Face uses embed_tokens as the head; set it to false if the head is meant to be separate"),
    )


MODULES: tuple[tuple[str, str], ...] = (
    ("model.embed_tokens", "token_embedding"),
    ("model.layers.{i}", "blocks.{i}"),
    ("model.layers.{i}.input_layernorm", "blocks.{i}.norm_1"),
    ("model.layers.{i}.self_attn", "blocks.{i}.attn"),
    ("model.layers.{i}.self_attn.o_proj", "blocks.{i}.attn.W_O"),
    ("model.layers.{i}.post_attention_layernorm", "blocks.{i}.norm_2"),
    ("model.layers.{i}.mlp", "blocks.{i}.mlp"),
    ("model.layers.{i}.mlp.gate_proj", "blocks.{i}.mlp.W_gate"),
    ("model.layers.{i}.mlp.up_proj", "blocks.{i}.mlp.W_up"),
    ("model.layers.{i}.mlp.down_proj", "blocks.{i}.mlp.W_down"),
    ("model.norm", "norm_f"),
    ("lm_head", "unembed"),
)
"""External module name ↔ DAG path, where one module's output is one value of the spec's DAG
(``self_attn`` returns a tuple whose first entry is that value; ``act_fn`` is ``blocks.{i}.mlp.<activation>``,
which depends on the config, so it is not listed; q_proj, k_proj and v_proj hold every head at
once, which the spec computes head by head, so they are not either)."""


def _layout(model_type: str, name: str, keys: Mapping[str, ConfigKey], read: Callable[[Mapping[str, object], str], Config],
            write: Callable[[Any], dict[str, object]], cls: str, tensors: tuple[Tensor | Alias, ...], notes: tuple[str, ...],
            default: LlamaConfig) -> Layout:
    return register_layout(Layout(
        name=name, family="llama", description=f"Hugging Face {cls} ({model_type}): config.json + safetensors",
        model_type=model_type, config_keys=keys, read_config=read, write_config=write, layers=lambda c: c.n_layers,
        prefix="model.", unprefixed=("lm_head.weight",), tensors=tensors, modules=MODULES, notes=notes, default=default,
        buffers=(Buffer("layers.{i}.self_attn.rotary_emb.inv_freq", check_inv_freq, with_config=True),),
    ))


def check_inv_freq(name: str, value: np.ndarray, where: str, config: LlamaConfig) -> None:
    """``layers.{i}.self_attn.rotary_emb.inv_freq``: the rotary frequencies θ^(−2j/d_head) that
    transformers before 4.31 saved with the weights. Current transformers ignores the stored copy
    and recomputes them from config.json, as the spec does; the copy is accepted when it agrees
    with the config (the spec's frequencies for it, scaled or unscaled), so a file whose
    frequencies came from another base or width is not read as if they matched."""
    d = config.head_width
    rotary = config.rotary()  # the spec's frequencies, scaled as the model uses them, and unscaled (older files)
    candidates = [np.array([float(op.frequency(k, d)) for k in range(d // 2)]) for op in (rotary, dataclasses.replace(rotary, scaling="none"))]
    got = np.asarray(value, dtype=np.float64)
    if got.shape != candidates[0].shape:
        raise CheckpointError(f"{name} has shape {got.shape}, but expected ({d // 2},) = d_head/2 rotary frequencies [checkpoint {where}]")
    if not any(np.allclose(got, want, rtol=1e-6, atol=0) for want in candidates):
        worst = min(float(np.max(np.abs(got / want - 1))) for want in candidates)
        raise CheckpointError(
            f"{name} differs from rope_theta^(−2j/d_head) with rope_theta={config.rope_base}, d_head={d} (largest relative difference "
            f"{worst:.3g}), but expected the frequencies config.json implies [checkpoint {where}]; transformers ignores this "
            "stored copy and recomputes them from config.json, so the file and its config disagree: correct rope_theta or head_dim"
        )


_SMALL = {"n_vocab": 61, "n_ctx": 16, "d_model": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_mlp": 24}
"""gptspec verify's default size for these layouts: two layers, grouped-query heads (2 query heads per
key/value head), so residual wiring, layer-dependent code and the GQA grouping are exercised."""


HF_LLAMA = _layout(
    "llama", "hf-llama", LLAMA_KEYS, read_llama, write_llama, "LlamaForCausalLM",
    _tensors(lambda c: c.qkv_bias, lambda c: c.out_bias, lambda c: c.mlp_bias),
    ("attention_bias covers q_proj, k_proj, v_proj and o_proj together",),
    LlamaConfig(**_SMALL, name="hf-llama-small-default"),  # type: ignore[arg-type]
)
HF_MISTRAL = _layout(
    "mistral", "hf-mistral", MISTRAL_KEYS, read_mistral, write_mistral, "MistralForCausalLM",
    _tensors(None, None, None),
    ("no biases; one sliding window for every layer (or none)",),
    LlamaConfig(**_SMALL, attention=("sliding",), sliding_window=3, name="hf-mistral-small-default"),  # type: ignore[arg-type]
)
HF_QWEN2 = _layout(
    "qwen2", "hf-qwen2", QWEN2_KEYS, read_qwen2, write_qwen2, "Qwen2ForCausalLM",
    _tensors(lambda c: c.qkv_bias, None, None),
    ("biases on q_proj, k_proj and v_proj only; per-layer windows by layer_types",),
    LlamaConfig(**_SMALL, qkv_bias=True, tied=True, name="hf-qwen2-small-default"),  # type: ignore[arg-type]
)

LLAMA_LAYOUTS = (HF_LLAMA, HF_MISTRAL, HF_QWEN2)
"""The three layouts, for tests and docs."""
