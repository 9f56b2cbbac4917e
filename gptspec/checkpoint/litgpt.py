"""The litgpt layout (``litgpt``): the state dict and ``Config`` of Lightning-AI/litgpt's
``litgpt/model.py`` (``GPT``) for its Llama-style models (RMSNorm, ``LLaMAMLP``) ↔ the spec's Llama
family (spec/architectures/llama.py), as one table.

litgpt's names: ``transformer.wte``, ``transformer.h.{i}.norm_1``, ``attn.qkv``, ``attn.proj``,
``norm_2``, ``mlp.fc_1`` (the gate), ``mlp.fc_2`` (up), ``mlp.proj`` (down), ``transformer.ln_f``,
``lm_head``. The fused ``attn.qkv`` is an ``nn.Linear`` whose rows are three blocks of unequal size
under grouped-query attention, [Q: n_head·head_size | K: n_query_groups·head_size | V: the same]
(``qkv.split((query_size, key_size, value_size))``) — the pattern ``[h e | g e | g e] d``. Older
releases (``litgpt-legacy``) named it ``attn.attn`` and interleaved its rows per query group: for
each group g, the n_head / n_query_groups query heads of the group, then k_g, then v_g — the
pattern ``(g [r e | e | e]) d``. The rotary embedding pairs feature j with j + head_size/2
(``rope_pairing="half"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.layout import ConfigKey, Layout, Tensor, model, number, register_layout, whole
from spec.architectures import LlamaConfig
from spec.config import Config
from spec.errors import CheckpointError

LITGPT_KEYS: dict[str, ConfigKey] = {
    "block_size": model("n_ctx: the longest sequence (the rotary cache's rows)"),
    "padded_vocab_size": model("n_vocab: the rows of wte, the width of the logits"),
    "n_layer": model("n_layers: the number of Blocks"),
    "n_head": model("n_heads: query heads"),
    "n_embd": model("d_model: the width of the residual stream"),
    "n_query_groups": model("n_kv_heads: key/value heads (grouped-query attention)"),
    "head_size": model("d_head: the width of one head"),
    "intermediate_size": model("d_mlp: the LLaMAMLP width"),
    "norm_eps": model("eps: the ε inside every RMS norm's square root", default=1e-5),
    "rope_base": model("the rotary base θ", default=10000),
}
"""Every litgpt ``Config`` key gptspec reads, with its role and reason."""


def read_config(values: Mapping[str, object], where: str) -> Config:
    """The :class:`LlamaConfig` of a litgpt ``Config`` (half-split rotary pairs)."""
    return LlamaConfig(
        n_vocab=whole(values, "padded_vocab_size", where), n_ctx=whole(values, "block_size", where),
        d_model=whole(values, "n_embd", where), n_layers=whole(values, "n_layer", where), n_heads=whole(values, "n_head", where),
        n_kv_heads=whole(values, "n_query_groups", where), d_head=whole(values, "head_size", where),
        d_mlp=whole(values, "intermediate_size", where), eps=number(values, "norm_eps", where),
        rope_base=number(values, "rope_base", where), rope_pairing="half", name="litgpt",
    )


def write_config(config: Any) -> dict[str, object]:
    """``Config`` fields of a spec Llama config; refuses what litgpt's Llama-style model cannot express."""
    c: LlamaConfig = config
    refuse = []
    if c.rope_pairing != "half":
        refuse.append(f"rope_pairing={c.rope_pairing!r} (litgpt pairs feature j with j + head_size/2: half)")
    if c.qkv_bias or c.out_bias or c.mlp_bias:
        refuse.append("biases (this layout reads litgpt's bias=False models)")
    if c.tied:
        refuse.append("tied=True (lm_head is its own weight here)")
    if c.activation != "silu":
        refuse.append(f"activation={c.activation!r} (LLaMAMLP is SwiGLU: silu)")
    if set(c.attention) != {"full"}:
        refuse.append(f"attention={c.attention} (full causal attention only)")
    if c.rope_scaling != "none":
        refuse.append(f"rope_scaling={c.rope_scaling!r}")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config litgpt's Config can express [export {c.name} to litgpt]")
    return {"block_size": c.n_ctx, "padded_vocab_size": c.n_vocab, "n_layer": c.n_layers, "n_head": c.n_heads, "n_embd": c.d_model,
            "n_query_groups": c.kv_heads, "head_size": c.head_width, "intermediate_size": c.d_mlp, "norm_eps": c.eps,
            "rope_base": c.rope_base}


QKV = ("blocks.{i}.attn.W_Q", "blocks.{i}.attn.W_K", "blocks.{i}.attn.W_V")

LITGPT = register_layout(Layout(
    name="litgpt",
    family="llama",
    description="Lightning-AI/litgpt (litgpt/model.py GPT, Llama-style Config): fused attn.qkv grouped per query group, half rotary",
    config_keys=LITGPT_KEYS,
    read_config=read_config,
    write_config=write_config,
    layers=lambda c: c.n_layers,
    tensors=(
        Tensor("transformer.wte.weight", ("W_E",), "v d", "v d"),
        Tensor("transformer.h.{i}.norm_1.weight", ("blocks.{i}.norm_1.gamma",), "d", "d"),
        # nn.Linear (out, in); rows: the h query heads, then the g key heads, then the g value heads
        Tensor("transformer.h.{i}.attn.qkv.weight", QKV, "[h e | g e | g e] d", "h d e | g d e | g d e"),
        Tensor("transformer.h.{i}.attn.proj.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor("transformer.h.{i}.norm_2.weight", ("blocks.{i}.norm_2.gamma",), "d", "d"),
        Tensor("transformer.h.{i}.mlp.fc_1.weight", ("blocks.{i}.mlp.W_gate",), "m d", "d m"),
        Tensor("transformer.h.{i}.mlp.fc_2.weight", ("blocks.{i}.mlp.W_up",), "m d", "d m"),
        Tensor("transformer.h.{i}.mlp.proj.weight", ("blocks.{i}.mlp.W_down",), "d m", "m d"),
        Tensor("transformer.ln_f.weight", ("norm_f.gamma",), "d", "d"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v"),
    ),
    modules=(
        ("transformer.wte", "token_embedding"),
        ("transformer.h.{i}", "blocks.{i}"),
        ("transformer.h.{i}.norm_1", "blocks.{i}.norm_1"),
        ("transformer.h.{i}.attn", "blocks.{i}.attn"),
        ("transformer.h.{i}.attn.proj", "blocks.{i}.attn.W_O"),
        ("transformer.h.{i}.norm_2", "blocks.{i}.norm_2"),
        ("transformer.h.{i}.mlp", "blocks.{i}.mlp"),
        ("transformer.h.{i}.mlp.fc_1", "blocks.{i}.mlp.W_gate"),
        ("transformer.h.{i}.mlp.fc_2", "blocks.{i}.mlp.W_up"),
        ("transformer.h.{i}.mlp.proj", "blocks.{i}.mlp.W_down"),
        ("transformer.ln_f", "norm_f"),
        ("lm_head", "unembed"),
    ),
    # two layers, grouped-query heads (4 query in 2 groups), half-split pairs
    default=LlamaConfig(n_vocab=57, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=40, eps=1e-5,
                        rope_pairing="half", name="litgpt-small-default"),
))

LITGPT_LEGACY = register_layout(dataclasses.replace(
    LITGPT,
    name="litgpt-legacy",
    description="older litgpt / lit-gpt (model.py GPT): fused attn.attn interleaved per query group [q heads of g, k_g, v_g], half rotary",
    tensors=tuple(
        # nn.Linear (out, in); rows: per query group g, its r = n_head / n_query_groups query heads, then k_g, then v_g
        Tensor("transformer.h.{i}.attn.attn.weight", QKV, "(g [r e | e | e]) d", "(g r) d e | g d e | g d e")
        if isinstance(rule, Tensor) and rule.theta == QKV else rule
        for rule in LITGPT.tensors
    ),
))
