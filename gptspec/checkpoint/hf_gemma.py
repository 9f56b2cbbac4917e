"""The Hugging Face Gemma layouts (``hf-gemma``, ``hf-gemma2``): ``GemmaForCausalLM`` and
``Gemma2ForCausalLM`` state dicts and ``config.json`` ↔ the spec's Gemma family
(spec/architectures/gemma.py).

The tensors are the Llama family's (gptspec/checkpoint/hf_llama.py: ``nn.Linear`` (out, in),
q_proj "(h e) d", o_proj "d (h e)"); every RMSNorm ``weight`` is the γ of a gain 1 + γ (the
spec's ``offset``). Gemma's ``post_attention_layernorm`` is the norm before the MLP; Gemma 2's is
the norm *after* attention (a sandwich norm), and its MLP's norms are ``pre_feedforward_layernorm``
and ``post_feedforward_layernorm``. The embedding is multiplied by √hidden_size and the head is
``embed_tokens`` (tied) unless ``tie_word_embeddings`` is false.

The config: every key this transformers version writes for GemmaConfig / Gemma2Config is
modelled, ignored with a reason or refused, as are the older spellings on the Hub (Gemma 1's
legacy ``hidden_act="gelu"``, which GemmaConfig reads as the tanh GELU; ``rope_theta``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gptspec.checkpoint.hf_common import HF_PRETRAINED_KEYS
from gptspec.checkpoint.hf_gpt2 import HF_ACTIVATIONS
from gptspec.checkpoint.hf_llama import read_rope
from gptspec.checkpoint.layout import (
    Alias,
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
from spec.architectures.gemma import GemmaConfig
from spec.config import Config
from spec.errors import CheckpointError, ConfigError

NATIVE_ACTIVATION = {"gelu_tanh": "gelu_pytorch_tanh", "gelu_erf": "gelu_python", "relu": "relu", "silu": "silu"}
"""The spec's gate activation → the name written on export (Gemma 1 reads a plain ``gelu`` as the
tanh form, so the exact GELU is written under its other name)."""

GATE_ACTIVATIONS = {**HF_ACTIVATIONS, "silu": "silu", "swish": "silu"}

COMMON: dict[str, ConfigKey] = {
    "vocab_size": model("n_vocab: the rows of embed_tokens, the width of the logits"),
    "hidden_size": model("d_model: the residual stream's width; the embedding is multiplied by √hidden_size"),
    "intermediate_size": model("d_mlp: the GeGLU's hidden width"),
    "num_hidden_layers": model("n_layers: the number of decoder layers"),
    "num_attention_heads": model("n_heads: the query heads of every layer"),
    "num_key_value_heads": model("n_kv_heads: key/value heads (grouped-query attention)", default=None),
    "head_dim": model("d_head (Gemma's is 256 whatever hidden_size / num_attention_heads is)", default=256),
    "max_position_embeddings": model("n_ctx: the longest sequence the model is defined for"),
    "rms_norm_eps": model("eps: the ε inside every RMS norm's square root", default=1e-6),
    "tie_word_embeddings": model("true: the unembedding is embed_tokensᵀ; false: lm_head.weight", default=True),
    "attention_bias": model("true: q_proj, k_proj, v_proj and o_proj have biases", default=False),
    "rope_parameters": model("the rotary embedding: rope_theta and rope_type (default only)", default=None),
    "rope_theta": model("the base as older configs spell it", default=None),
    "rope_scaling": model("the scaling as older configs spell it (none only)", default=None),
    "use_bidirectional_attention": require("true makes attention bidirectional (an encoder), which is not this causal model", None, False),
    "is_encoder_decoder": require("true makes this the decoder of an encoder-decoder model, which the spec does not model", False),
    **ignore("dropout: the identity at inference (eval mode), the function the spec defines", "attention_dropout"),
    **ignore("initialisation of new weights; the checkpoint supplies them", "initializer_range"),
    **ignore("chunked feed-forward is a BERT-style memory option these decoder classes do not call", "chunk_size_feed_forward"),
    **HF_PRETRAINED_KEYS,
}

GEMMA_KEYS: dict[str, ConfigKey] = {
    **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type gemma", "gemma"),
    "hidden_act": model("the gate's activation (GeGLU: gelu_pytorch_tanh; the legacy 'gelu' is read as it, as GemmaConfig does)",
                        default="gelu_pytorch_tanh"),
    **ignore("written by later Gemma 1 releases; GemmaForCausalLM reads hidden_act", "hidden_activation"),
}
"""Every Hugging Face Gemma ``config.json`` key gptspec reads, with its role and reason."""

GEMMA2_KEYS: dict[str, ConfigKey] = {
    **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type gemma2", "gemma2"),
    "hidden_activation": model("the gate's activation (GeGLU: gelu_pytorch_tanh)", default="gelu_pytorch_tanh"),
    "query_pre_attn_scalar": model("the score scale is query_pre_attn_scalar^(−1/2)", default=256),
    "sliding_window": model("W of the sliding layers (t − W < s ≤ t)", default=4096),
    "layer_types": model("sliding_attention / full_attention per layer; null alternates, sliding first", default=None),
    "attn_logit_softcapping": model("c of the scores' soft cap c·tanh(a / c); null: no cap", default=50.0),
    "final_logit_softcapping": model("c' of the logits' soft cap; null: no cap", default=30.0),
    **ignore("not read by Gemma2ForCausalLM (it reads hidden_activation)", "hidden_act"),
    **ignore("an older spelling of sliding_window that no code of this version reads", "sliding_window_size"),
    **ignore("the generation cache's kind: the same logits, computed incrementally", "cache_implementation"),
}
"""Every Hugging Face Gemma 2 ``config.json`` key gptspec reads, with its role and reason."""


def _fail(key: str, value: object, want: str, where: str, fix: str = "") -> CheckpointError:
    shown = repr(value) if isinstance(value, str) else str(value)
    return CheckpointError(f"config key {key}={shown[:80]}, but expected {want} [checkpoint {where}]" + (f"; {fix}" if fix else ""))


def _activation(values: Mapping[str, object], key: str, where: str, legacy: bool) -> str:
    act = values[key]
    if legacy and act == "gelu":
        return "gelu_tanh"  # GemmaConfig.__post_init__: the legacy value means the tanh approximation
    if not isinstance(act, str) or act not in GATE_ACTIVATIONS:
        raise _fail(key, act, f"one of {list(GATE_ACTIVATIONS)}", where, "every other Hugging Face activation is another function")
    return GATE_ACTIVATIONS[act]


def _base(values: Mapping[str, object], where: str) -> dict[str, Any]:
    rope = read_rope(values, where)
    if rope["rope_scaling"] != "none":
        raise _fail("rope_type", rope["rope_scaling"], "'default'", where, "the Gemma layouts model unscaled rotary embedding only")
    n_heads = whole(values, "num_attention_heads", where)
    kv = n_heads if values["num_key_value_heads"] is None else whole(values, "num_key_value_heads", where)
    return {
        "n_vocab": whole(values, "vocab_size", where), "n_ctx": whole(values, "max_position_embeddings", where),
        "d_model": whole(values, "hidden_size", where), "n_layers": whole(values, "num_hidden_layers", where), "n_heads": n_heads,
        "n_kv_heads": kv, "d_head": whole(values, "head_dim", where), "d_mlp": whole(values, "intermediate_size", where),
        "eps": number(values, "rms_norm_eps", where), "rope_base": rope["rope_base"], "tied": flag(values, "tie_word_embeddings", where),
        "attention_bias": flag(values, "attention_bias", where),
    }


def _config(fields: Mapping[str, Any], name: str, where: str) -> GemmaConfig:
    try:
        return GemmaConfig(**fields, name=name)
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


def read_gemma(values: Mapping[str, object], where: str) -> Config:
    """The :class:`GemmaConfig` of a Hugging Face Gemma ``config.json``'s modelled keys."""
    return _config(_base(values, where) | {"activation": _activation(values, "hidden_act", where, legacy=True)}, "gemma", where)


LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding"}


def read_gemma2(values: Mapping[str, object], where: str) -> Config:
    """The :class:`GemmaConfig` of a Hugging Face Gemma 2 ``config.json``'s modelled keys."""
    fields = _base(values, where)
    n = fields["n_layers"]
    types = values["layer_types"]
    if types is None:
        kinds = tuple("sliding" if (i + 1) % 2 else "full" for i in range(n))  # Gemma2Config.__post_init__
    elif isinstance(types, list) and len(types) == n and all(isinstance(k, str) and k in LAYER_TYPES for k in types):
        kinds = tuple(LAYER_TYPES[str(k)] for k in types)
    else:
        raise _fail("layer_types", types, f"a list of {n} entries, each one of {list(LAYER_TYPES)}", where)
    period = next(p for p in range(1, n + 1) if all(kinds[i] == kinds[i % p] for i in range(n)))
    kinds = kinds[:period]  # the shortest pattern that repeats to the layer types: ("sliding", "full") for Gemma 2
    window = None if values["sliding_window"] is None else whole(values, "sliding_window", where)
    if "sliding" in kinds and window is None:
        raise _fail("sliding_window", None, "a whole number ≥ 1 (some layers slide)", where)
    caps = {}
    for key, field_name in (("attn_logit_softcapping", "attn_softcap"), ("final_logit_softcapping", "final_softcap")):
        caps[field_name] = None if values[key] is None else number(values, key, where)
    fields |= caps | {
        "activation": _activation(values, "hidden_activation", where, legacy=False), "attention": kinds,
        "sliding_window": window if "sliding" in kinds else None, "query_pre_attn_scalar": whole(values, "query_pre_attn_scalar", where),
        "sandwich_norms": True,
    }
    return _config(fields, "gemma2", where)


def _common(c: GemmaConfig, model_type: str, refuse: list[str]) -> dict[str, object]:
    if c.activation not in NATIVE_ACTIVATION:
        refuse.append(f"activation={c.activation!r}")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config {model_type} can express [export {c.name} to hf-{model_type}]")
    return {
        "model_type": model_type, "vocab_size": c.n_vocab, "hidden_size": c.d_model, "intermediate_size": c.d_mlp,
        "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads, "num_key_value_heads": c.kv_heads, "head_dim": c.head_width,
        "max_position_embeddings": c.n_ctx, "rms_norm_eps": c.eps, "tie_word_embeddings": c.tied, "attention_bias": c.attention_bias,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_base},
    }


def write_gemma(config: GemmaConfig) -> dict[str, object]:
    """The Hugging Face ``GemmaConfig`` keys; refuses what Gemma 1 has not (Gemma 2's options)."""
    c, refuse = config, []
    if c.sandwich_norms or c.attn_softcap is not None or c.final_softcap is not None or "sliding" in c.attention:
        refuse.append("Gemma 2 options (sandwich norms, soft-capping, sliding layers): export to hf-gemma2")
    if c.query_pre_attn_scalar not in (None, c.head_width):
        refuse.append(f"query_pre_attn_scalar={c.query_pre_attn_scalar} (GemmaForCausalLM scales by 1/√head_dim)")
    return _common(c, "gemma", refuse) | {"hidden_act": NATIVE_ACTIVATION.get(c.activation, "")}


def write_gemma2(config: GemmaConfig) -> dict[str, object]:
    """The Hugging Face ``Gemma2Config`` keys; refuses a model without sandwich norms."""
    c, refuse = config, []
    if not c.sandwich_norms:
        refuse.append("sandwich_norms=false (every Gemma 2 layer normalises after its sublayers): export to hf-gemma")
    kinds = [c.attention[i % len(c.attention)] for i in range(c.n_layers)]
    return _common(c, "gemma2", refuse) | {
        "hidden_activation": NATIVE_ACTIVATION.get(c.activation, ""),
        "query_pre_attn_scalar": c.query_pre_attn_scalar if c.query_pre_attn_scalar is not None else c.head_width,
        "sliding_window": c.sliding_window, "layer_types": [f"{k}_attention" for k in kinds],
        "attn_logit_softcapping": c.attn_softcap, "final_logit_softcapping": c.final_softcap,
    }


def _tensors(sandwich: bool) -> tuple[Tensor | Alias, ...]:
    attn, mlp, layer = "layers.{i}.self_attn", "layers.{i}.mlp", "layers.{i}"

    def biased(c: Any) -> bool:
        return bool(c.attention_bias)

    norms = (
        (Tensor(f"{layer}.post_attention_layernorm.weight", ("blocks.{i}.post_norm_1.gamma",), "d", "d"),
         Tensor(f"{layer}.pre_feedforward_layernorm.weight", ("blocks.{i}.norm_2.gamma",), "d", "d"),
         Tensor(f"{layer}.post_feedforward_layernorm.weight", ("blocks.{i}.post_norm_2.gamma",), "d", "d"))
        if sandwich else (Tensor(f"{layer}.post_attention_layernorm.weight", ("blocks.{i}.norm_2.gamma",), "d", "d"),)
    )
    return (
        Tensor("embed_tokens.weight", ("W_E",), "v d", "v d"),
        Tensor(f"{layer}.input_layernorm.weight", ("blocks.{i}.norm_1.gamma",), "d", "d"),
        Tensor(f"{attn}.q_proj.weight", ("blocks.{i}.attn.W_Q",), "(h e) d", "h d e"),
        Tensor(f"{attn}.k_proj.weight", ("blocks.{i}.attn.W_K",), "(g e) d", "g d e"),
        Tensor(f"{attn}.v_proj.weight", ("blocks.{i}.attn.W_V",), "(g e) d", "g d e"),
        Tensor(f"{attn}.q_proj.bias", ("blocks.{i}.attn.b_Q",), "(h e)", "h e", when=biased),
        Tensor(f"{attn}.k_proj.bias", ("blocks.{i}.attn.b_K",), "(g e)", "g e", when=biased),
        Tensor(f"{attn}.v_proj.bias", ("blocks.{i}.attn.b_V",), "(g e)", "g e", when=biased),
        Tensor(f"{attn}.o_proj.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor(f"{attn}.o_proj.bias", ("blocks.{i}.attn.b_O",), "d", "d", when=biased),
        *norms,
        Tensor(f"{mlp}.gate_proj.weight", ("blocks.{i}.mlp.W_gate",), "m d", "d m"),
        Tensor(f"{mlp}.up_proj.weight", ("blocks.{i}.mlp.W_up",), "m d", "d m"),
        Tensor(f"{mlp}.down_proj.weight", ("blocks.{i}.mlp.W_down",), "d m", "m d"),
        Tensor("norm.weight", ("norm_f.gamma",), "d", "d"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v", when=lambda c: not c.tied),
        Alias("lm_head.weight", of="embed_tokens.weight", when=lambda c: c.tied,
              reason="tie_word_embeddings=true: Hugging Face uses embed_tokens as the head"),
    )


def _modules(sandwich: bool) -> tuple[tuple[str, str], ...]:
    norms = ((("model.layers.{i}.post_attention_layernorm", "blocks.{i}.post_norm_1"),
              ("model.layers.{i}.pre_feedforward_layernorm", "blocks.{i}.norm_2"),
              ("model.layers.{i}.post_feedforward_layernorm", "blocks.{i}.post_norm_2"))
             if sandwich else (("model.layers.{i}.post_attention_layernorm", "blocks.{i}.norm_2"),))
    return (
        ("model.embed_tokens", "embed_scale"),  # Gemma's embedding module multiplies by √hidden_size itself
        ("model.layers.{i}", "blocks.{i}"),
        ("model.layers.{i}.input_layernorm", "blocks.{i}.norm_1"),
        ("model.layers.{i}.self_attn.o_proj", "blocks.{i}.attn.W_O"),
        *norms,
        ("model.layers.{i}.mlp", "blocks.{i}.mlp"),
        ("model.layers.{i}.mlp.gate_proj", "blocks.{i}.mlp.W_gate"),
        ("model.layers.{i}.mlp.up_proj", "blocks.{i}.mlp.W_up"),
        ("model.layers.{i}.mlp.down_proj", "blocks.{i}.mlp.W_down"),
        ("model.norm", "norm_f"),
    )


def _layout(name: str, model_type: str, cls: str, keys: Mapping[str, ConfigKey], read: Callable[[Mapping[str, object], str], Config],
            write: Callable[[Any], dict[str, object]], sandwich: bool, default: GemmaConfig, note: str) -> Layout:
    return register_layout(Layout(
        name=name, family="gemma", description=f"Hugging Face {cls} ({model_type}): config.json + safetensors", model_type=model_type,
        config_keys=keys, read_config=read, write_config=write, layers=lambda c: c.n_layers, prefix="model.",
        unprefixed=("lm_head.weight",), tensors=_tensors(sandwich), modules=_modules(sandwich), notes=(note,), default=default,
    ))


HF_GEMMA = _layout(
    "hf-gemma", "gemma", "GemmaForCausalLM", GEMMA_KEYS, read_gemma, write_gemma, False,
    GemmaConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_head=8, d_mlp=24, name="hf-gemma-small-default"),
    "RMSNorm weights are γ of a gain 1 + γ; the embedding is scaled by √hidden_size",
)
HF_GEMMA2 = _layout(
    "hf-gemma2", "gemma2", "Gemma2ForCausalLM", GEMMA2_KEYS, read_gemma2, write_gemma2, True,
    GemmaConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_head=8, d_mlp=24, attention=("sliding", "full"),
                sliding_window=3, query_pre_attn_scalar=8, attn_softcap=50.0, final_softcap=30.0, sandwich_norms=True,
                name="hf-gemma2-small-default"),
    "sandwich norms; sliding and full layers by layer_types; scores and logits soft-capped",
)
