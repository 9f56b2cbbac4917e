"""The gpt-fast layout (``gpt-fast``): the state dict and ``ModelArgs`` of pytorch-labs/gpt-fast's
``model.py`` (``Transformer``) ↔ the spec's Llama family (spec/architectures/llama.py), as one table.

gpt-fast keeps Meta's names (``tok_embeddings``, ``layers.{i}.attention``, ``feed_forward.w1/w2/w3``,
``attention_norm``, ``ffn_norm``, ``norm``, ``output``) but fuses the query, key and value
projections into one ``nn.Linear`` ``attention.wqkv`` whose rows are three blocks of unequal size
under grouped-query attention: [Q: n_head·head_dim | K: n_local_heads·head_dim | V:
n_local_heads·head_dim] — the pattern ``[h e | g e | g e] d``. Its rotary embedding multiplies
adjacent features (2k, 2k + 1) as one complex number (its checkpoint converter permutes Hugging
Face's W_Q and W_K rows for it): ``rope_pairing="interleaved"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.layout import Alias, ConfigKey, Layout, Tensor, ignore, model, number, register_layout, whole
from gptspec.checkpoint.meta_llama import META_LLAMA
from spec.architectures import LlamaConfig
from spec.config import Config
from spec.errors import CheckpointError

GPT_FAST_KEYS: dict[str, ConfigKey] = {
    "block_size": model("n_ctx: the longest sequence (the rotary table's and KV cache's rows)"),
    "vocab_size": model("n_vocab: the rows of tok_embeddings, the width of the logits"),
    "n_layer": model("n_layers: the number of TransformerBlocks"),
    "n_head": model("n_heads: query heads"),
    "dim": model("d_model: the width of the residual stream"),
    "intermediate_size": model("d_mlp: the SwiGLU width"),
    "n_local_heads": model("n_kv_heads: key/value heads (grouped-query attention); -1 means n_head", default=-1),
    "head_dim": model("d_head: the width of one head (dim // n_head in gpt-fast's ModelArgs)", default=None),
    "rope_base": model("the rotary base θ", default=10000.0),
    "norm_eps": model("eps: the ε inside every RMS norm's square root", default=1e-5),
    **ignore("a rotary scaling gpt-fast applies only when set; its absence is the plain rotary", "rope_scaling"),
}
"""Every gpt-fast ``ModelArgs`` key gptspec reads, with its role and reason."""


def read_config(values: Mapping[str, object], where: str) -> Config:
    """The :class:`LlamaConfig` of a gpt-fast ``ModelArgs`` (interleaved rotary pairs)."""
    dim, n_head = whole(values, "dim", where), whole(values, "n_head", where)
    local = values["n_local_heads"]
    head_dim = values["head_dim"]
    return LlamaConfig(
        n_vocab=whole(values, "vocab_size", where), n_ctx=whole(values, "block_size", where), d_model=dim,
        n_layers=whole(values, "n_layer", where), n_heads=n_head,
        n_kv_heads=None if local == -1 else whole(values, "n_local_heads", where),
        d_head=None if head_dim is None else whole(values, "head_dim", where),
        d_mlp=whole(values, "intermediate_size", where), eps=number(values, "norm_eps", where),
        rope_base=number(values, "rope_base", where), rope_pairing="interleaved", name="gpt-fast",
    )


def write_config(config: Any) -> dict[str, object]:
    """``ModelArgs`` fields of a spec Llama config; refuses what gpt-fast's code cannot express."""
    c: LlamaConfig = config
    refuse = []
    if c.rope_pairing != "interleaved":
        refuse.append(f"rope_pairing={c.rope_pairing!r} (gpt-fast pairs adjacent features: interleaved)")
    if c.qkv_bias or c.out_bias or c.mlp_bias:
        refuse.append("biases (gpt-fast's projections have none)")
    if c.tied:
        refuse.append("tied=True (gpt-fast's output is its own weight)")
    if c.activation != "silu":
        refuse.append(f"activation={c.activation!r} (gpt-fast's FeedForward is SwiGLU: silu)")
    if set(c.attention) != {"full"}:
        refuse.append(f"attention={c.attention} (gpt-fast's attention is full causal)")
    if c.rope_scaling != "none":
        refuse.append(f"rope_scaling={c.rope_scaling!r}")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config gpt-fast's ModelArgs can express [export {c.name} to gpt-fast]")
    return {"block_size": c.n_ctx, "vocab_size": c.n_vocab, "n_layer": c.n_layers, "n_head": c.n_heads, "dim": c.d_model,
            "intermediate_size": c.d_mlp, "n_local_heads": c.kv_heads, "head_dim": c.head_width, "rope_base": c.rope_base,
            "norm_eps": c.eps}


SEPARATE_QKV = ("layers.{i}.attention.wq.weight", "layers.{i}.attention.wk.weight", "layers.{i}.attention.wv.weight")
"""Meta's three projections, which gpt-fast stores as one."""

WQKV = Tensor("layers.{i}.attention.wqkv.weight", ("blocks.{i}.attn.W_Q", "blocks.{i}.attn.W_K", "blocks.{i}.attn.W_V"),
              "[h e | g e | g e] d", "h d e | g d e | g d e")
"""nn.Linear (out, in); rows: the h query heads, then the g key heads, then the g value heads."""


def fused_qkv(tensors: tuple[Tensor | Alias, ...]) -> tuple[Tensor | Alias, ...]:
    """Meta's rows (gptspec/checkpoint/meta_llama.py) with wq, wk, wv replaced by gpt-fast's one wqkv."""
    return tuple(WQKV if t.external == SEPARATE_QKV[0] else t for t in tensors if t.external not in SEPARATE_QKV[1:])


GPT_FAST = register_layout(Layout(
    name="gpt-fast",
    family="llama",
    description="pytorch-labs/gpt-fast (model.py Transformer, ModelArgs): Meta's names, fused wqkv [Q | K | V], interleaved rotary",
    config_keys=GPT_FAST_KEYS,
    read_config=read_config,
    write_config=write_config,
    layers=lambda c: c.n_layers,
    tensors=fused_qkv(META_LLAMA.tensors),
    modules=META_LLAMA.modules,
    # two layers, grouped-query heads (4 query, 2 key/value), interleaved pairs
    default=LlamaConfig(n_vocab=59, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=40, eps=1e-5,
                        rope_pairing="interleaved", name="gpt-fast-small-default"),
))
