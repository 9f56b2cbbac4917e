"""The Hugging Face Marian layout (``hf-marian``): ``MarianMTModel`` state dicts and ``config.json`` ↔
the spec's encoder–decoder Transformer (spec/architectures/transformer.py), as one table.

What Marian is, in the spec's terms: post-LN encoder and decoder blocks with biases everywhere
and layer-norm ε = 1e-5 (PyTorch's default; not in the config), the sinusoidal encoding in the
*concatenated* layout (sines, then cosines: ``SinusoidalPositional(layout="concatenated")``),
token embeddings scaled by √d_model when ``scale_embedding``, one embedding for source and target
when ``share_encoder_decoder_embeddings`` (else the encoder's, ``vocab_size`` rows, and the decoder's,
``decoder_vocab_size`` rows: ``n_vocab_target``), the head tied to the target embedding when
``tie_word_embeddings``, encoder and decoder of their own depth, head count and FFN width
(``encoder_*`` / ``decoder_*``: the config's ``n_decoder_layers``, ``n_decoder_heads``,
``d_decoder_mlp``), the FFN activation of ``activation_function`` (the opus-mt checkpoints' ``swish``
is SiLU), and the ``final_logits_bias`` added to the logits (Θ ``b_U``, kept in
Marian's (1, n_vocab) shape). ``nn.Linear`` stores (d_out, d_in) and computes x Wᵀ + b, so every
weight is the transpose of its Θ entry; q/k/v_proj stack the heads' columns ("(h e) d"), out_proj
reads them ("d (h e)").

The positional tables are not parameters: Marian does not save them (``_keys_to_ignore_on_save``);
a checkpoint that does is accepted only if they are the sinusoidal table (to float32 rounding, as
Marian computes it through ``torch.FloatTensor``) — a learned table would be another function.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gptspec.checkpoint.hf_common import HF_PRETRAINED_KEYS
from gptspec.checkpoint.hf_gpt2 import HF_ACTIVATIONS, NATIVE_ACTIVATION
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
    register_layout,
    require,
    whole,
)
from spec.architectures.transformer import TransformerConfig
from spec.config import Config
from spec.errors import CheckpointError

MARIAN_ACTIVATIONS = {**HF_ACTIVATIONS, "swish": "silu", "silu": "silu"}
"""Marian's ``activation_function`` → the spec's FFN activation: GPT-2's table (hf_gpt2.HF_ACTIVATIONS)
and SiLU, x σ(x), under both of Hugging Face's names (ACT2FN maps ``swish`` and ``silu`` to
``nn.SiLU``) — the opus-mt checkpoints use ``swish``."""
NATIVE_MARIAN_ACTIVATION = {**NATIVE_ACTIVATION, "silu": "swish"}
"""The spec's FFN activation → the name written to a Marian config.json."""

MARIAN_EPS = 1e-5
"""Marian's layer norms are ``nn.LayerNorm(d_model)``: PyTorch's default ε, not a config key."""

HF_MARIAN_KEYS: dict[str, ConfigKey] = {
    # Keys that change the function, modelled by TransformerConfig.
    "vocab_size": model("n_vocab: the source vocabulary (the rows of the shared or the encoder's embedding)"),
    "decoder_vocab_size": model(
        "n_vocab_target: the rows of the decoder's embedding and lm_head, the width of the logits; null means vocab_size; "
        "with share_encoder_decoder_embeddings, MarianMTModel uses vocab_size for both and so does gptspec",
        default=None,
    ),
    "max_position_embeddings": model("n_ctx: the rows of the positional tables, the longest source or target"),
    "d_model": model("d_model: the width of both stacks"),
    "encoder_layers": model("n_layers: the encoder's blocks"),
    "decoder_layers": model("n_decoder_layers: the decoder's blocks"),
    "encoder_attention_heads": model("n_heads: the encoder's heads; MarianAttention sets d_head = d_model / heads"),
    "decoder_attention_heads": model("n_decoder_heads: the heads of the decoder's self- and cross-attention"),
    "encoder_ffn_dim": model("d_mlp: the encoder FFN's hidden width"),
    "decoder_ffn_dim": model("d_decoder_mlp: the decoder FFN's hidden width"),
    "activation_function": model("the FFN activation, mapped by MARIAN_ACTIVATIONS (gelu is the exact erf form, swish is silu)", default="gelu"),
    "scale_embedding": model("true: token embeddings are multiplied by √d_model (embed_scale)", default=False),
    "share_encoder_decoder_embeddings": model("true: one embedding (model.shared) for source and target", default=True),
    "tie_word_embeddings": model("true: lm_head is the target embedding (transposed)", default=True),
    # Aliases Hugging Face accepts (MarianConfig.attribute_map).
    "hidden_size": alias("d_model", "MarianConfig.attribute_map: another name for d_model"),
    "num_attention_heads": alias("encoder_attention_heads", "MarianConfig.attribute_map: another name for encoder_attention_heads"),
    "num_hidden_layers": alias("encoder_layers", "MarianConfig.attribute_map: another name for encoder_layers"),
    # Keys that would change the function in ways the spec does not model, unless at these values.
    "model_type": require("another model type is another function; this layout reads Marian only", "marian"),
    "is_encoder_decoder": require("false would make it a decoder alone (MarianForCausalLM), not the encoder–decoder", True),
    "is_decoder": require("true configures MarianForCausalLM, the decoder without an encoder", False),
    "normalize_before": require("older configs: true would put the layer norms before the sublayers (pre-LN); Marian is post-LN", False),
    "add_final_layer_norm": require("older configs: true adds a final layer norm to each stack, which Marian does not have", False),
    "normalize_embedding": require("older configs: true adds a layer norm after the embeddings, which Marian does not have", False),
    "static_position_embeddings": require("older configs: false would mean learned positions; Marian's are sinusoidal", True),
    "add_bias_logits": require("older configs: true adds a bias layer before the logits besides final_logits_bias", False),
    # Keys that do not change the logits.
    **ignore(
        "dropout and layer drop: the identity at inference (eval mode), the function the spec defines",
        "dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "decoder_layerdrop", "classif_dropout",
        "classifier_dropout",
    ),
    **ignore("initialisation of new weights; the checkpoint supplies them", "init_std"),
    **HF_PRETRAINED_KEYS,  # every Hugging Face config's keys that do not change the logits (hf_common.py); Marian's own below
    **ignore(
        "a special token's id: tokenisation and generation, not the logits (pad_token_id is also nn.Embedding's "
        "padding_idx, which only zeroes that row's gradient)",
        "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "forced_eos_token_id", "forced_bos_token_id",
        "sep_token_id",
    ),
    **ignore("chunks the FFN over positions: the same function", "chunk_size_feed_forward"),
    **ignore(
        "older configs: the position offset of BART's learned positions; Marian's static positions start at 0",
        "extra_pos_embeddings",
    ),
    **ignore("decoding, an older name: how tokens are chosen from the logits, not the logits", "force_bos_token_to_be_generated"),
    **ignore(
        "used only when the model is part of another encoder–decoder framework",
        "tie_encoder_decoder", "cross_attention_hidden_size", "add_cross_attention",
    ),
}
"""Every Hugging Face Marian ``config.json`` key gptspec reads — every key ``MarianConfig().to_dict()``
writes, and those of older configs — with its role and reason. A key not here is refused."""


def _unless(decoder: int, encoder: int) -> int | None:
    """A decoder-side value as TransformerConfig spells it: None when the encoder's (its default)."""
    return None if decoder == encoder else decoder


def read_config(values: Mapping[str, object], where: str) -> Config:
    """The :class:`TransformerConfig` of a Hugging Face Marian ``config.json``'s modelled keys."""
    shared = flag(values, "share_encoder_decoder_embeddings", where)
    n_vocab = whole(values, "vocab_size", where)
    # MarianMTModel sizes lm_head and final_logits_bias by vocab_size when the embeddings are shared, and
    # ties the decoder's embedding to model.shared: decoder_vocab_size then changes nothing
    target = n_vocab if shared or values["decoder_vocab_size"] is None else whole(values, "decoder_vocab_size", where)
    d_model = whole(values, "d_model", where)
    n_heads, decoder_heads = whole(values, "encoder_attention_heads", where), whole(values, "decoder_attention_heads", where)
    for key, heads in (("encoder_attention_heads", n_heads), ("decoder_attention_heads", decoder_heads)):
        if d_model % heads:
            raise CheckpointError(
                f"config key d_model={d_model}, but expected a multiple of {key}={heads} [checkpoint {where}]; "
                "Hugging Face's MarianAttention refuses it too"
            )
    n_layers, decoder_layers = whole(values, "encoder_layers", where), whole(values, "decoder_layers", where)
    d_mlp, decoder_mlp = whole(values, "encoder_ffn_dim", where), whole(values, "decoder_ffn_dim", where)
    activation = values["activation_function"]
    if not isinstance(activation, str) or activation not in MARIAN_ACTIVATIONS:
        raise CheckpointError(
            f"config key activation_function={activation!r}, but expected one of {list(MARIAN_ACTIVATIONS)} [checkpoint {where}]; "
            "the spec models gelu (erf), gelu_new (tanh), relu and swish (silu); the rest are other functions"
        )
    return TransformerConfig(
        n_vocab=n_vocab, n_vocab_target=_unless(target, n_vocab), n_ctx=whole(values, "max_position_embeddings", where), d_model=d_model,
        n_layers=n_layers, n_decoder_layers=_unless(decoder_layers, n_layers), n_heads=n_heads,
        n_decoder_heads=_unless(decoder_heads, n_heads), d_mlp=d_mlp, d_decoder_mlp=_unless(decoder_mlp, d_mlp),
        activation=MARIAN_ACTIVATIONS[activation], eps=MARIAN_EPS, bias=True, positional="concatenated",
        scale_embedding=flag(values, "scale_embedding", where),
        shared_embeddings=shared,
        tied=flag(values, "tie_word_embeddings", where), logits_bias=True, name="marian",
    )


def write_config(config: TransformerConfig) -> dict[str, object]:
    """The Hugging Face ``MarianConfig`` keys of a spec Transformer config; refuses what Marian
    cannot express."""
    where = f"export {config.name} to hf-marian"
    refuse = []
    if config.positional != "concatenated":
        refuse.append(f"positional={config.positional!r} (Marian's sinusoidal table is concatenated: sines, then cosines)")
    if not config.bias:
        refuse.append("bias=false (Marian has biases on every affine map and layer norm)")
    if not config.logits_bias:
        refuse.append("logits_bias=false (Marian always adds final_logits_bias; use logits_bias=true with zeros)")
    if config.eps != MARIAN_EPS:
        refuse.append(f"eps={config.eps} (Marian's layer norms use PyTorch's default {MARIAN_EPS})")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config Marian can express [{where}]")
    return {
        "model_type": "marian", "vocab_size": config.n_vocab, "decoder_vocab_size": config.target_vocab,
        "max_position_embeddings": config.n_ctx, "d_model": config.d_model,
        "encoder_layers": config.n_layers, "decoder_layers": config.decoder_layers,
        "encoder_attention_heads": config.n_heads, "decoder_attention_heads": config.decoder_heads,
        "encoder_ffn_dim": config.mlp_width, "decoder_ffn_dim": config.decoder_mlp_width,
        "activation_function": NATIVE_MARIAN_ACTIVATION[config.activation], "scale_embedding": config.scale_embedding,
        "share_encoder_decoder_embeddings": config.shared_embeddings, "tie_word_embeddings": config.tied,
        "is_encoder_decoder": True,
    }


def sinusoidal_table(n_positions: int, d: int) -> np.ndarray:
    """Marian's positional table in float64 (MarianSinusoidalPositionalEmbedding.create_weight
    without its float32 rounding): the spec's SinusoidalPositional, concatenated layout."""
    half = (d + 1) // 2
    j = np.arange(d)
    i = np.where(j < half, j, j - half)
    angle = np.arange(n_positions)[:, None] / np.power(10000.0, 2 * i / d)
    return np.where(j < half, np.sin(angle), np.cos(angle))


def check_positions(name: str, value: np.ndarray, where: str) -> None:
    """A stored positional table (older checkpoints save it) must be the sinusoidal one, to the
    float32 rounding Marian computes it with."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2:
        raise CheckpointError(f"{name} has shape {array.shape}, but expected the (n_positions, d_model) sinusoidal table [checkpoint {where}]")
    error = float(np.max(np.abs(array - sinusoidal_table(*array.shape)))) if array.size else 0.0
    if error > 1e-6:
        raise CheckpointError(
            f"{name} differs from the sinusoidal table by up to {error:.3g}, but expected it to float32 rounding (1e-6) "
            f"[checkpoint {where}]; learned positions are another function, which the spec's Transformer does not model"
        )


def _attention(external: str, prefix: str) -> tuple[Tensor, ...]:
    """q/k/v/out_proj of one Marian attention ↔ Θ's per-head W_Q, W_K, W_V, W_O and biases."""
    out: list[Tensor] = []
    for part in ("Q", "K", "V"):
        proj = f"{external}.{part.lower()}_proj"
        out.append(Tensor(f"{proj}.weight", (f"{prefix}.W_{part}",), "(h e) d", "h d e"))  # rows h·d_head + e: head h's output e
        out.append(Tensor(f"{proj}.bias", (f"{prefix}.b_{part}",), "(h e)", "h e"))
    out.append(Tensor(f"{external}.out_proj.weight", (f"{prefix}.W_O",), "d (h e)", "h e d"))  # columns h·d_head + e read head h's e
    out.append(Tensor(f"{external}.out_proj.bias", (f"{prefix}.b_O",), "d", "d"))
    return tuple(out)


def _norm(external: str, prefix: str) -> tuple[Tensor, ...]:
    return (Tensor(f"{external}.weight", (f"{prefix}.gamma",), "d", "d"), Tensor(f"{external}.bias", (f"{prefix}.beta",), "d", "d"))


def _ffn(external: str, prefix: str) -> tuple[Tensor, ...]:
    return (
        Tensor(f"{external}.fc1.weight", (f"{prefix}.mlp.W_in",), "m d", "d m"),
        Tensor(f"{external}.fc1.bias", (f"{prefix}.mlp.b_in",), "m", "m"),
        Tensor(f"{external}.fc2.weight", (f"{prefix}.mlp.W_out",), "d m", "m d"),
        Tensor(f"{external}.fc2.bias", (f"{prefix}.mlp.b_out",), "d", "d"),
    )


ENC, DEC = "encoder.layers.{i}", "decoder.layers.{i}"
ENC_P, DEC_P = "encoder.blocks.{i}", "decoder.blocks.{i}"

HF_MARIAN = register_layout(Layout(
    name="hf-marian",
    family="transformer",
    description="Hugging Face Marian (MarianMTModel): config.json + safetensors",
    model_type="marian",
    config_keys=HF_MARIAN_KEYS,
    read_config=read_config,
    write_config=write_config,
    layers=lambda c: c.n_layers,
    stacks=(("encoder.", lambda c: c.n_layers), ("decoder.", lambda c: c.decoder_layers)),
    prefix="model.",
    unprefixed=("lm_head.weight", "final_logits_bias"),
    tensors=(
        Tensor("shared.weight", ("W_E",), "v d", "v d", when=lambda c: c.shared_embeddings),
        Alias("encoder.embed_tokens.weight", of="shared.weight", when=lambda c: c.shared_embeddings,
              reason="share_encoder_decoder_embeddings=true means one embedding for source and target; the file holds two "
                     "(transformers ≥ 5 ties them to model.shared only when tie_word_embeddings is true as well)"),
        Alias("decoder.embed_tokens.weight", of="shared.weight", when=lambda c: c.shared_embeddings,
              reason="share_encoder_decoder_embeddings=true means one embedding for source and target; the file holds two "
                     "(transformers ≥ 5 ties them to model.shared only when tie_word_embeddings is true as well)"),
        Tensor("encoder.embed_tokens.weight", ("encoder.W_E",), "v d", "v d", when=lambda c: not c.shared_embeddings),
        Tensor("decoder.embed_tokens.weight", ("decoder.W_E",), "v d", "v d", when=lambda c: not c.shared_embeddings),
        *_attention(f"{ENC}.self_attn", f"{ENC_P}.attn"),
        *_norm(f"{ENC}.self_attn_layer_norm", f"{ENC_P}.ln_1"),
        *_ffn(ENC, ENC_P),
        *_norm(f"{ENC}.final_layer_norm", f"{ENC_P}.ln_2"),
        *_attention(f"{DEC}.self_attn", f"{DEC_P}.self_attn"),
        *_norm(f"{DEC}.self_attn_layer_norm", f"{DEC_P}.ln_1"),
        *_attention(f"{DEC}.encoder_attn", f"{DEC_P}.cross_attn"),
        *_norm(f"{DEC}.encoder_attn_layer_norm", f"{DEC_P}.ln_2"),
        *_ffn(DEC, DEC_P),
        *_norm(f"{DEC}.final_layer_norm", f"{DEC_P}.ln_3"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v", when=lambda c: not c.tied),
        Alias("lm_head.weight", of="shared.weight", when=lambda c: c.tied and c.shared_embeddings,
              reason="tie_word_embeddings=true: Hugging Face would overwrite the head with the shared embedding"),
        Alias("lm_head.weight", of="decoder.embed_tokens.weight", when=lambda c: c.tied and not c.shared_embeddings,
              reason="tie_word_embeddings=true: Hugging Face would overwrite the head with the decoder's embedding"),
        Tensor("final_logits_bias", ("b_U",), "o v", "o v", when=lambda c: c.logits_bias),
    ),
    buffers=(Buffer("encoder.embed_positions.weight", check_positions), Buffer("decoder.embed_positions.weight", check_positions)),
    modules=(
        ("model.encoder.layers.{i}", "encoder.blocks.{i}"),
        ("model.encoder.layers.{i}.self_attn", "encoder.blocks.{i}.attn"),
        ("model.encoder.layers.{i}.self_attn_layer_norm", "encoder.blocks.{i}.ln_1"),
        ("model.encoder.layers.{i}.final_layer_norm", "encoder.blocks.{i}.ln_2"),
        ("model.decoder.layers.{i}", "decoder.blocks.{i}"),
        ("model.decoder.layers.{i}.self_attn", "decoder.blocks.{i}.self_attn"),
        ("model.decoder.layers.{i}.self_attn_layer_norm", "decoder.blocks.{i}.ln_1"),
        ("model.decoder.layers.{i}.encoder_attn", "decoder.blocks.{i}.cross_attn"),
        ("model.decoder.layers.{i}.encoder_attn_layer_norm", "decoder.blocks.{i}.ln_2"),
        ("model.decoder.layers.{i}.final_layer_norm", "decoder.blocks.{i}.ln_3"),
        ("lm_head", "unembed"),
    ),
))
