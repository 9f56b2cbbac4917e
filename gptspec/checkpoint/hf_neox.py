"""The Hugging Face GPT-NeoX layout (``hf-neox``): ``GPTNeoXForCausalLM`` state dicts (Pythia,
GPT-NeoX-20B) and ``config.json`` ↔ the spec's GPT-NeoX family (spec/architectures/neox.py).

The tensors: ``torch.nn.Linear`` stores (out, in). ``query_key_value`` holds Q, K and V of every
head in one matrix, **interleaved per head**: GPTNeoXAttention views its output as (heads,
3·d_head) and splits each head's slice into Q | K | V, so row h·3·d_head + k·d_head + e is
projection k ∈ (Q, K, V) of head h, feature e — the pattern "(h k e) d", not GPT-2's
"(k h e)". ``dense`` is the output projection "d (h e)". The head is ``lm_head`` as this
transformers version names it in memory (and loads it); files written by ``save_pretrained`` and
every published checkpoint spell it ``embed_out``, which is read as the same tensor. Old files also hold the causal mask
(``attention.bias``), its fill value (``attention.masked_bias``) and the rotary frequencies
(``attention.rotary_emb.inv_freq``): accepted when they agree with the config, never written.

The config: every key this transformers version writes for GPTNeoXConfig is modelled, ignored
with a reason or refused, as are the older spellings on the Hub (``rotary_pct``,
``rotary_emb_base``, ``rope_scaling``); rotary scalings other than none are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gptspec.checkpoint.hf_common import HF_PRETRAINED_KEYS
from gptspec.checkpoint.hf_gpt2 import HF_ACTIVATIONS, check_causal_buffer, check_masked_bias
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
from spec.architectures.neox import NeoXConfig
from spec.config import Config
from spec.errors import CheckpointError, ConfigError
from spec.ops.rotary import REFUSED_SCALINGS

NATIVE_ACTIVATION = {"gelu_erf": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
"""The spec's MLP activation → the name written on export."""

NEOX_KEYS: dict[str, ConfigKey] = {
    "model_type": require("another model type is another function; this layout reads model_type gpt_neox", "gpt_neox"),
    "vocab_size": model("n_vocab: the rows of embed_in, the width of the logits"),
    "hidden_size": model("d_model: the width of the residual stream (d_head = hidden_size / num_attention_heads)"),
    "num_hidden_layers": model("n_layers: the number of layers"),
    "num_attention_heads": model("n_heads: the heads of every layer"),
    "intermediate_size": model("d_mlp: the MLP's hidden width"),
    "max_position_embeddings": model("n_ctx: the longest sequence the model is defined for"),
    "hidden_act": model("the MLP activation, mapped by hf_gpt2.HF_ACTIVATIONS (gelu: the exact erf form)", default="gelu"),
    "layer_norm_eps": model("eps: the ε inside every layer norm's square root", default=1e-5),
    "use_parallel_residual": model("true: x + (mlp(LN₂ x) + attn(LN₁ x)); false: GPT-2's sequential block", default=True),
    "attention_bias": model("true: query_key_value and dense have biases (the MLP always has)", default=True),
    "tie_word_embeddings": model("true: the head is embed_inᵀ; false: embed_out.weight", default=False),
    "rope_parameters": model(
        "the rotary embedding: rope_theta (the base), partial_rotary_factor (the fraction of each head rotated), rope_type "
        "(default only; the scalings are refused by name)", default=None,
    ),
    "rotary_pct": model("partial_rotary_factor as older configs spell it (GPTNeoXConfig's default 0.25)", default=None),
    "rotary_emb_base": model("rope_theta as older configs spell it (default 10000)", default=None),
    "rope_scaling": model("rope_parameters as older configs spell it", default=None),
    "rope_theta": model("the base as some configs spell it outside rope_parameters", default=None),
    "is_encoder_decoder": require("true makes this the decoder of an encoder-decoder model, which the spec does not model", False),
    "add_cross_attention": require("true adds cross-attention, which GPTNeoXForCausalLM does not have", False),
    **ignore("dropout: the identity at inference (eval mode), the function the spec defines",
             "attention_dropout", "hidden_dropout", "classifier_dropout"),
    **ignore("initialisation of new weights; the checkpoint supplies them", "initializer_range"),
    **ignore("GPTNeoXModel's attention is causal whatever is_decoder says", "is_decoder"),
    **ignore("chunked feed-forward is a BERT-style memory option these decoder classes do not call", "chunk_size_feed_forward"),
    **ignore(
        "old training options no transformers code of this version reads (fused kernels, bf16 training, the Megatron "
        "tokenizer, gradient checkpointing)",
        "use_memory_efficient_attention", "gradient_checkpointing",
    ),
    **HF_PRETRAINED_KEYS,
}
"""Every Hugging Face GPT-NeoX ``config.json`` key gptspec reads, with its role and reason."""


def _fail(key: str, value: object, want: str, where: str, fix: str = "") -> CheckpointError:
    shown = repr(value) if isinstance(value, str) else str(value)
    return CheckpointError(f"config key {key}={shown[:80]}, but expected {want} [checkpoint {where}]" + (f"; {fix}" if fix else ""))


def _rope(values: Mapping[str, object], where: str) -> tuple[float, float]:
    """(rope_base, rotary_pct), as GPTNeoXConfig.convert_rope_params_to_dict reads them: the old
    spellings fill what rope_parameters (or rope_scaling) lacks."""
    params, scaling = values["rope_parameters"], values["rope_scaling"]
    for key, value in (("rope_parameters", params), ("rope_scaling", scaling)):
        if value is not None and not isinstance(value, dict):
            raise _fail(key, value, "a JSON object or null", where)
    if params and scaling:
        raise _fail("rope_scaling", scaling, f"it absent next to rope_parameters={params}", where, "keep one of the two")
    rope: dict[str, object] = dict(scaling or params or {})  # type: ignore[call-overload]
    for key, old in (("rope_theta", "rotary_emb_base"), ("rope_theta", "rope_theta"), ("partial_rotary_factor", "rotary_pct")):
        if values[old] is not None:
            number(values, old, where)
            if key in rope and rope[key] != values[old]:
                raise _fail(old, values[old], f"{rope[key]} as rope_parameters.{key} says", where, "keep one of the two")
            rope.setdefault(key, values[old])
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind in REFUSED_SCALINGS:
        raise _fail("rope_type", kind, "'default'", where, REFUSED_SCALINGS[str(kind)])
    if kind != "default":
        raise _fail("rope_type", kind, "'default'", where, "a scaled rotary embedding is another function, which this layout does not model")
    stray = sorted(set(rope) - {"rope_type", "type", "rope_theta", "partial_rotary_factor"})
    if stray:
        raise _fail(f"rope_parameters.{stray[0]}", rope[stray[0]], "only rope_type, rope_theta and partial_rotary_factor", where)
    base = number(rope | {"rope_theta": rope.get("rope_theta", 10000.0)}, "rope_theta", where)
    pct = number(rope | {"partial_rotary_factor": rope.get("partial_rotary_factor", 0.25)}, "partial_rotary_factor", where)
    if not base > 0 or pct > 1:
        raise _fail("rope_parameters", rope, "rope_theta > 0 and partial_rotary_factor in [0, 1]", where)
    return base, pct


def read_neox(values: Mapping[str, object], where: str) -> Config:
    """The :class:`NeoXConfig` of a Hugging Face GPT-NeoX ``config.json``'s modelled keys."""
    act = values["hidden_act"]
    if not isinstance(act, str) or act not in HF_ACTIVATIONS:
        raise _fail("hidden_act", act, f"one of {list(HF_ACTIVATIONS)}", where, "every other Hugging Face activation is another function")
    base, pct = _rope(values, where)
    try:
        return NeoXConfig(
            n_vocab=whole(values, "vocab_size", where), n_ctx=whole(values, "max_position_embeddings", where),
            d_model=whole(values, "hidden_size", where), n_layers=whole(values, "num_hidden_layers", where),
            n_heads=whole(values, "num_attention_heads", where), d_mlp=whole(values, "intermediate_size", where),
            rotary_pct=pct, rope_base=base, parallel_residual=flag(values, "use_parallel_residual", where),
            activation=HF_ACTIVATIONS[act], eps=number(values, "layer_norm_eps", where),
            attention_bias=flag(values, "attention_bias", where), tied=flag(values, "tie_word_embeddings", where), name="gpt-neox",
        )
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


def write_neox(config: NeoXConfig) -> dict[str, object]:
    """The Hugging Face ``GPTNeoXConfig`` keys of a spec GPT-NeoX config."""
    c = config
    if c.activation not in NATIVE_ACTIVATION:
        raise CheckpointError(f"config activation={c.activation!r}, but expected one of {list(NATIVE_ACTIVATION)} [export {c.name} to hf-neox]")
    return {
        "model_type": "gpt_neox", "vocab_size": c.n_vocab, "hidden_size": c.d_model, "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads, "intermediate_size": c.mlp_width, "max_position_embeddings": c.n_ctx,
        "hidden_act": NATIVE_ACTIVATION[c.activation], "layer_norm_eps": c.eps, "use_parallel_residual": c.parallel_residual,
        "attention_bias": c.attention_bias, "tie_word_embeddings": c.tied,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_base, "partial_rotary_factor": c.rotary_pct},
    }


def check_inv_freq(name: str, value: np.ndarray, where: str, config: NeoXConfig) -> None:
    """``layers.{i}.attention.rotary_emb.inv_freq`` of old files: base^(−2k/r) for the rotated
    width r = int(d_head · rotary_pct); accepted only when it agrees with config.json."""
    r = config.rotated
    want = 1.0 / config.rope_base ** (np.arange(0, r, 2, dtype=np.float64) / r) if r else np.zeros(0)
    got = np.asarray(value, dtype=np.float64).ravel()
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=0):
        raise CheckpointError(
            f"{name} of shape {got.shape} differs from rope_theta^(−2k/r) with rope_theta={config.rope_base}, r={r}, but expected the "
            f"frequencies config.json implies [checkpoint {where}]; correct rotary_pct or rotary_emb_base"
        )


def _tensors() -> tuple[Tensor | Alias, ...]:
    layer, attn, mlp = "layers.{i}", "layers.{i}.attention", "layers.{i}.mlp"

    def biased(c: Any) -> bool:
        return bool(c.attention_bias)

    return (
        Tensor("embed_in.weight", ("W_E",), "v d", "v d"),
        Tensor(f"{layer}.input_layernorm.weight", ("blocks.{i}.ln_1.gamma",), "d", "d"),
        Tensor(f"{layer}.input_layernorm.bias", ("blocks.{i}.ln_1.beta",), "d", "d"),
        # (heads, 3·d_head) per row block: head h's Q, then its K, then its V
        Tensor(f"{attn}.query_key_value.weight", ("blocks.{i}.attn.W_Q", "blocks.{i}.attn.W_K", "blocks.{i}.attn.W_V"),
               "(h k e) d", "h d e"),
        Tensor(f"{attn}.query_key_value.bias", ("blocks.{i}.attn.b_Q", "blocks.{i}.attn.b_K", "blocks.{i}.attn.b_V"),
               "(h k e)", "h e", when=biased),
        Tensor(f"{attn}.dense.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor(f"{attn}.dense.bias", ("blocks.{i}.attn.b_O",), "d", "d", when=biased),
        Tensor(f"{layer}.post_attention_layernorm.weight", ("blocks.{i}.ln_2.gamma",), "d", "d"),
        Tensor(f"{layer}.post_attention_layernorm.bias", ("blocks.{i}.ln_2.beta",), "d", "d"),
        Tensor(f"{mlp}.dense_h_to_4h.weight", ("blocks.{i}.mlp.W_in",), "m d", "d m"),
        Tensor(f"{mlp}.dense_h_to_4h.bias", ("blocks.{i}.mlp.b_in",), "m", "m"),
        Tensor(f"{mlp}.dense_4h_to_h.weight", ("blocks.{i}.mlp.W_out",), "d m", "m d"),
        Tensor(f"{mlp}.dense_4h_to_h.bias", ("blocks.{i}.mlp.b_out",), "d", "d"),
        Tensor("final_layer_norm.weight", ("ln_f.gamma",), "d", "d"),
        Tensor("final_layer_norm.bias", ("ln_f.beta",), "d", "d"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v", when=lambda c: not c.tied),
        Alias("lm_head.weight", of="embed_in.weight", when=lambda c: c.tied,
              reason="tie_word_embeddings=true: Hugging Face uses embed_in as the head"),
    )


MODULES: tuple[tuple[str, str], ...] = (
    ("gpt_neox.embed_in", "token_embedding"),
    ("gpt_neox.layers.{i}", "blocks.{i}"),
    ("gpt_neox.layers.{i}.input_layernorm", "blocks.{i}.ln_1"),
    ("gpt_neox.layers.{i}.attention", "blocks.{i}.attn"),
    ("gpt_neox.layers.{i}.attention.dense", "blocks.{i}.attn.W_O"),
    ("gpt_neox.layers.{i}.post_attention_layernorm", "blocks.{i}.ln_2"),
    ("gpt_neox.layers.{i}.mlp", "blocks.{i}.mlp"),
    ("gpt_neox.layers.{i}.mlp.dense_h_to_4h", "blocks.{i}.mlp.W_in"),
    ("gpt_neox.layers.{i}.mlp.dense_4h_to_h", "blocks.{i}.mlp.W_out"),
    ("gpt_neox.final_layer_norm", "ln_f"),
    ("lm_head", "unembed"),
)
"""External module name ↔ DAG path (``query_key_value`` holds every head's Q, K and V at once,
which the spec computes head by head, so it is not listed; the head module is ``lm_head`` in memory)."""


HF_NEOX = register_layout(Layout(
    name="hf-neox", family="gpt-neox", description="Hugging Face GPTNeoXForCausalLM (gpt_neox): config.json + safetensors",
    model_type="gpt_neox", config_keys=NEOX_KEYS, read_config=read_neox, write_config=write_neox, layers=lambda c: c.n_layers,
    prefix="gpt_neox.", unprefixed=("lm_head.weight",), spellings=(("embed_out.weight", "lm_head.weight"),), tensors=_tensors(), modules=MODULES,
    notes=("query_key_value interleaves Q, K and V per head", "partial rotary: rotary_pct of each head's features"),
    buffers=(
        Buffer("layers.{i}.attention.bias", check_causal_buffer),
        Buffer("layers.{i}.attention.masked_bias", check_masked_bias),
        Buffer("layers.{i}.attention.rotary_emb.inv_freq", check_inv_freq, with_config=True),
    ),
    default=NeoXConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=2, d_mlp=24, rotary_pct=0.25, name="hf-neox-small-default"),
))
