"""The Hugging Face GPT-2 layout (``hf-gpt2``): ``GPT2LMHeadModel`` / ``GPT2Model`` state dicts and
``config.json`` ↔ the spec's GPT (spec/architectures/gpt.py), as one table.

Hugging Face's ``Conv1D`` stores weights as (d_in, d_out) and computes x W + b — the spec's row
convention — so most tensors are Θ entries as they are; ``c_attn`` holds Q | K | V side by side
with the heads inside each, ``c_proj`` stacks the heads' rows, and a separate ``lm_head`` is
stored (n_vocab, d_model), the transpose of the spec's W_U.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gptspec.checkpoint.hf_common import HF_PRETRAINED_KEYS
from gptspec.checkpoint.layout import (
    Alias,
    Buffer,
    ConfigKey,
    Layout,
    Tensor,
    alias,
    flag,
    ignore,
    model,
    number,
    register_layout,
    require,
    whole,
)
from spec.architectures import GPTConfig
from spec.config import Config
from spec.errors import CheckpointError

HF_ACTIVATIONS: dict[str, str] = {
    # ½x(1 + tanh(√(2/π)(x + 0.044715x³))), written out in transformers' NewGELUActivation
    "gelu_new": "gelu_tanh",
    # the same formula, computed by torch.nn.functional.gelu(approximate="tanh")
    "gelu_pytorch_tanh": "gelu_tanh",
    # the same formula again, written out in Python (GELUTanh(use_gelu_tanh_python=True))
    "gelu_python_tanh": "gelu_tanh",
    # torch.nn.functional.gelu: the exact ½x(1 + erf(x/√2))
    "gelu": "gelu_erf",
    # the same, written out in Python (GELUActivation(use_gelu_python=True))
    "gelu_python": "gelu_erf",
    "relu": "relu",
}
"""Hugging Face ``activation_function`` → the spec's activation op. Every other name is a
different function and is refused: gelu_fast truncates √(2/π) to 0.7978845608, gelu_accurate
and quick_gelu are other approximations, gelu_10 clips, silu/swish/mish are other functions."""

HF_GPT2_KEYS: dict[str, ConfigKey] = {
    # Keys that change the function, modelled by GPTConfig.
    "vocab_size": model("n_vocab: the rows of wte, the width of the logits"),
    "n_positions": model("n_ctx: the rows of wpe, the longest sequence"),
    "n_embd": model("d_model: the width of the residual stream"),
    "n_layer": model("n_layers: the number of blocks"),
    "n_head": model("n_heads; GPT2Attention sets d_head = n_embd / n_head"),
    "n_inner": model("d_mlp: the MLP's hidden width; null means 4·n_embd", default=None),
    "activation_function": model("the MLP activation, mapped by HF_ACTIVATIONS", default="gelu_new"),
    "layer_norm_epsilon": model("eps: the ε inside every layer norm's square root", default=1e-5),
    "scale_attn_weights": model("false: scores are not divided by √d_head (attn_scale = 1)", default=True),
    "scale_attn_by_inverse_layer_idx": model(
        "true: layer l's score scale is further divided by l + 1 (scale_by_inverse_layer)", default=False
    ),
    "tie_word_embeddings": model("true: the unembedding is wteᵀ (tied); false: lm_head.weight", default=True),
    # Aliases Hugging Face accepts for the sizes.
    "hidden_size": alias("n_embd", "GPT2Config.attribute_map: another name for n_embd"),
    "max_position_embeddings": alias("n_positions", "GPT2Config.attribute_map: another name for n_positions"),
    "num_attention_heads": alias("n_head", "GPT2Config.attribute_map: another name for n_head"),
    "num_hidden_layers": alias("n_layer", "GPT2Config.attribute_map: another name for n_layer"),
    # Keys that would change the function in ways the spec does not model, unless at these values.
    "model_type": require("another model type is another function; gptspec reads GPT-2 only", "gpt2"),
    "add_cross_attention": require(
        "true adds a cross-attention sublayer reading an encoder's states to every block, which the "
        "spec's decoder-only GPT does not model", False,
    ),
    "pruned_heads": require(
        "pruning leaves some layers with fewer heads, which the spec does not model (every layer has n_heads heads)", {}
    ),
    "is_encoder_decoder": require(
        "true makes this the decoder of an encoder-decoder model, which the spec does not model", False
    ),
    # Keys that do not change the logits: every Hugging Face config's (hf_common.py), then GPT-2's own.
    **HF_PRETRAINED_KEYS,
    **ignore("the key/value cache, an older name: the same logits, computed incrementally", "output_past"),
    **ignore(
        "dropout: the identity at inference (eval mode), the function the spec defines",
        "resid_pdrop", "embd_pdrop", "attn_pdrop",
    ),
    **ignore("initialisation of new weights; the checkpoint supplies them", "initializer_range"),
    **ignore(
        "GPT2DoubleHeadsModel's multiple-choice classifier, not the language model",
        "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
    ),
    **ignore(
        "numerics only: upcasts scores to float32 and scales K before QKᵀ, the same function in exact arithmetic",
        "reorder_and_upcast_attn",
    ),
    **ignore(
        "legacy: sized the causal-mask buffer in old versions; n_positions sizes wpe and bounds T",
        "n_ctx",
    ),
    **ignore(
        "not read by GPT-2's decoder-only stack (its self-attention is causal whatever is_decoder says; "
        "the others matter only with cross-attention or to encoder-decoder models)",
        "is_decoder", "tie_encoder_decoder", "cross_attention_hidden_size", "chunk_size_feed_forward",
    ),
}
"""Every Hugging Face GPT-2 ``config.json`` key gptspec reads, with its role and reason. A key
not here is refused: it may change the function."""




def read_config(values: Mapping[str, object], where: str) -> Config:
    """The :class:`GPTConfig` of a Hugging Face GPT-2 ``config.json``'s modelled keys."""
    d_model, n_heads = whole(values, "n_embd", where), whole(values, "n_head", where)
    if d_model % n_heads:
        raise CheckpointError(
            f"config key n_embd={d_model}, but expected a multiple of n_head={n_heads} [checkpoint {where}]; "
            "Hugging Face's GPT2Attention refuses it too"
        )
    d_mlp = None if values["n_inner"] is None else whole(values, "n_inner", where)
    activation = values["activation_function"]
    if not isinstance(activation, str) or activation not in HF_ACTIVATIONS:
        raise CheckpointError(
            f"config key activation_function={activation!r}, but expected one of {list(HF_ACTIVATIONS)} "
            f"[checkpoint {where}]; the spec models gelu_tanh, gelu_erf and relu, and every other "
            "Hugging Face activation is a different function (see gptspec.checkpoint.hf_gpt2.HF_ACTIVATIONS)"
        )
    eps = number(values, "layer_norm_epsilon", where)
    return GPTConfig(
        n_vocab=whole(values, "vocab_size", where), n_ctx=whole(values, "n_positions", where), d_model=d_model,
        n_layers=whole(values, "n_layer", where), n_heads=n_heads,
        d_mlp=None if d_mlp == 4 * d_model else d_mlp,
        activation=HF_ACTIVATIONS[activation], eps=eps, bias=True,
        tied=flag(values, "tie_word_embeddings", where), positional="learned", attention=("dense",),
        attn_scale=None if flag(values, "scale_attn_weights", where) else 1.0,
        scale_by_inverse_layer=flag(values, "scale_attn_by_inverse_layer_idx", where), name="gpt2",
    )


NATIVE_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu_erf": "gelu", "relu": "relu"}
"""The spec's activation → the name Hugging Face's GPT-2 uses for it on export."""


def write_config(config: GPTConfig) -> dict[str, object]:
    """The Hugging Face ``GPT2Config`` keys of a spec GPT config. Refuses what GPT-2 cannot
    express: no biases, sinusoidal positions, banded layers, n_heads·d_head ≠ d_model, an
    attention scale other than 1/√d_head or 1."""
    where = f"export {config.name} to hf-gpt2"
    refuse = []
    if not config.bias:
        refuse.append("bias=false (GPT-2 has biases on every affine map and layer norm)")
    if config.positional != "learned":
        refuse.append(f"positional={config.positional!r} (GPT-2 learns its positions)")
    if set(config.attention) != {"dense"}:
        refuse.append(f"attention={config.attention} (GPT-2's layers are all dense)")
    if config.head_width * config.n_heads != config.d_model:
        refuse.append("n_heads·d_head ≠ d_model (GPT2Attention splits n_embd into heads)")
    if config.attn_scale not in (None, 1.0):
        refuse.append(f"attn_scale={config.attn_scale} (GPT-2 scales by 1/√d_head or not at all)")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config GPT-2 can express [{where}]")
    return {
        "model_type": "gpt2", "vocab_size": config.n_vocab, "n_positions": config.n_ctx, "n_embd": config.d_model,
        "n_layer": config.n_layers, "n_head": config.n_heads, "n_inner": None if config.d_mlp is None else config.mlp_width,
        "activation_function": NATIVE_ACTIVATION[config.activation], "layer_norm_epsilon": config.eps,
        "scale_attn_weights": config.attn_scale is None,
        "scale_attn_by_inverse_layer_idx": config.scale_by_inverse_layer, "tie_word_embeddings": config.tied,
    }


def check_causal_buffer(name: str, value: np.ndarray, where: str) -> None:
    """Old checkpoints store the causal mask as a buffer: accept exactly lower-triangular ones
    (shape (1, 1, N, N) or (N, N)), the mask the spec's GPT uses; refuse anything else."""
    shape = value.shape
    square = len(shape) >= 2 and shape[-1] == shape[-2] and all(s == 1 for s in shape[:-2])
    if not square:
        raise CheckpointError(
            f"{name} has shape {shape}, but expected the causal-mask buffer of shape (1, 1, N, N) "
            f"[checkpoint {where}]"
        )
    n = shape[-1]
    if not np.array_equal(value.reshape(n, n).astype(np.float64), np.tril(np.ones((n, n)))):
        raise CheckpointError(
            f"{name} is not lower-triangular ones, but expected the causal mask tril(ones(N, N)) "
            f"[checkpoint {where}]; a different attention mask is a different function, which "
            "Hugging Face's current GPT-2 would ignore and the spec does not model"
        )




def check_masked_bias(name: str, value: np.ndarray, where: str) -> None:
    """``h.{i}.attn.masked_bias``: the fill value old versions used for masked scores, one number;
    current code does not read it (masked scores are excluded, not filled)."""
    if np.size(value) != 1:
        raise CheckpointError(f"{name} has shape {np.shape(value)}, but expected a single fill value [checkpoint {where}]")


HF_GPT2 = register_layout(Layout(
    name="hf-gpt2",
    family="gpt",
    description="Hugging Face GPT-2 (GPT2LMHeadModel, GPT2Model): config.json + safetensors",
    model_type="gpt2",
    config_keys=HF_GPT2_KEYS,
    read_config=read_config,
    write_config=write_config,
    layers=lambda c: c.n_layers,
    prefix="transformer.",
    unprefixed=("lm_head.weight",),
    tensors=(
        Tensor("wte.weight", ("W_E",), "v d", "v d"),
        Tensor("wpe.weight", ("W_P",), "n d", "n d"),
        Tensor("h.{i}.ln_1.weight", ("blocks.{i}.ln_1.gamma",), "d", "d"),
        Tensor("h.{i}.ln_1.bias", ("blocks.{i}.ln_1.beta",), "d", "d"),
        # columns [Q | K | V], each head-major: column c·d + h·d_head + e is head h's e of part c
        Tensor("h.{i}.attn.c_attn.weight", ("blocks.{i}.attn.W_Q", "blocks.{i}.attn.W_K", "blocks.{i}.attn.W_V"), "d (k h e)", "h d e"),
        Tensor("h.{i}.attn.c_attn.bias", ("blocks.{i}.attn.b_Q", "blocks.{i}.attn.b_K", "blocks.{i}.attn.b_V"), "(k h e)", "h e"),
        # rows h·d_head + e read head h's output e
        Tensor("h.{i}.attn.c_proj.weight", ("blocks.{i}.attn.W_O",), "(h e) d", "h e d"),
        Tensor("h.{i}.attn.c_proj.bias", ("blocks.{i}.attn.b_O",), "d", "d"),
        Tensor("h.{i}.ln_2.weight", ("blocks.{i}.ln_2.gamma",), "d", "d"),
        Tensor("h.{i}.ln_2.bias", ("blocks.{i}.ln_2.beta",), "d", "d"),
        Tensor("h.{i}.mlp.c_fc.weight", ("blocks.{i}.mlp.W_in",), "d m", "d m"),
        Tensor("h.{i}.mlp.c_fc.bias", ("blocks.{i}.mlp.b_in",), "m", "m"),
        Tensor("h.{i}.mlp.c_proj.weight", ("blocks.{i}.mlp.W_out",), "m d", "m d"),
        Tensor("h.{i}.mlp.c_proj.bias", ("blocks.{i}.mlp.b_out",), "d", "d"),
        Tensor("ln_f.weight", ("ln_f.gamma",), "d", "d"),
        Tensor("ln_f.bias", ("ln_f.beta",), "d", "d"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v", when=lambda c: not c.tied),
        Alias("lm_head.weight", of="wte.weight", when=lambda c: c.tied,
              reason="tie_word_embeddings=true: Hugging Face would overwrite the head with wte; set it to false if the head is meant to be separate"),
    ),
    buffers=(Buffer("h.{i}.attn.bias", check_causal_buffer), Buffer("h.{i}.attn.masked_bias", check_masked_bias)),
    ignored_prefixes=("multiple_choice_head.",),
    modules=(
        ("transformer.wte", "token_embedding"),
        ("transformer.wpe", "positional"),
        ("transformer.h.{i}", "blocks.{i}"),
        ("transformer.h.{i}.ln_1", "blocks.{i}.ln_1"),
        ("transformer.h.{i}.attn", "blocks.{i}.attn"),
        ("transformer.h.{i}.attn.c_proj", "blocks.{i}.attn.W_O"),
        ("transformer.h.{i}.ln_2", "blocks.{i}.ln_2"),
        ("transformer.h.{i}.mlp", "blocks.{i}.mlp"),
        ("transformer.h.{i}.mlp.c_fc", "blocks.{i}.mlp.W_in"),
        ("transformer.h.{i}.mlp.c_proj", "blocks.{i}.mlp.W_out"),
        ("transformer.ln_f", "ln_f"),
        ("lm_head", "unembed"),
    ),
    # gptspec verify's default: two layers and two heads (so residual wiring, layer-dependent
    # scales and head layout show), d_head 8, every position of n_ctx reachable in a test
    default=GPTConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=2, name="hf-gpt2-small-default"),
))
