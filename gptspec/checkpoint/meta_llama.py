"""Meta's Llama layout (``meta-llama``): the checkpoint names and ``params.json`` of Meta's reference
code (meta-llama/llama and llama3 ``llama/model.py``: ``Transformer(ModelArgs)``) ↔ the spec's Llama
family (spec/architectures/llama.py), as one table.

Meta's names: ``tok_embeddings``, ``layers.{i}.attention.wq/wk/wv/wo``, ``feed_forward.w1`` (the
gate), ``w3`` (up), ``w2`` (down), ``attention_norm``, ``ffn_norm``, ``norm``, ``output``. Every
projection is an ``nn.Linear`` (fairscale's parallel layers store the same (out, in) arrays), so
each is the transpose of the spec's row-convention map, as in hf-llama. Meta's rotary embedding
multiplies adjacent features (2k, 2k + 1) as one complex number: ``rope_pairing="interleaved"``
(Hugging Face's conversion permutes W_Q and W_K rows to use the half pairing instead; this layout
reads Meta's files as they are, so it refuses the half pairing).

The config is ``ModelArgs`` / ``params.json``. The SwiGLU width is not stored: Meta's
``FeedForward`` derives it from dim, ``multiple_of`` and ``ffn_dim_multiplier``
(:func:`meta_ffn_width`); writing a config solves that rule for d_mlp (:func:`solve_meta_ffn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.layout import ConfigKey, Layout, Tensor, flag, ignore, model, number, register_layout, whole
from spec.architectures import LlamaConfig
from spec.config import Config
from spec.errors import CheckpointError

META_SCALED_ROPE = {"rope_scaling": "llama3", "rope_factor": 8.0, "rope_low_freq_factor": 1.0, "rope_high_freq_factor": 4.0,
                    "rope_original_n_ctx": 8192}
"""What Llama 3.1's ``use_scaled_rope=True`` applies (its ``apply_scaling`` constants)."""


def meta_ffn_width(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's ``FeedForward`` hidden width: ⅔ of 4·dim (truncated), times ``ffn_dim_multiplier``
    (truncated), rounded up to a multiple of ``multiple_of``."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def solve_meta_ffn(dim: int, d_mlp: int) -> tuple[int, float | None]:
    """(multiple_of, ffn_dim_multiplier) for which :func:`meta_ffn_width` gives ``d_mlp``: the
    largest power of two ≤ 256 that does it with no multiplier, else d_mlp itself, else a
    multiplier with multiple_of 1."""
    for multiple_of in (256, 128, 64, 32, 16, 8, 4, 2, 1, d_mlp):
        if meta_ffn_width(dim, multiple_of, None) == d_mlp:
            return multiple_of, None
    base = int(2 * (4 * dim) / 3)
    multiplier = (d_mlp + 0.5) / base
    if meta_ffn_width(dim, 1, multiplier) != d_mlp:  # not reachable for d_mlp ≥ 1; kept as a check
        raise CheckpointError(f"d_mlp={d_mlp}, but expected a width Meta's FeedForward rule gives for dim={dim} [export to meta-llama]")
    return 1, multiplier


META_LLAMA_KEYS: dict[str, ConfigKey] = {
    "dim": model("d_model: the width of the residual stream"),
    "n_layers": model("n_layers: the number of TransformerBlocks"),
    "n_heads": model("n_heads; head_dim = dim / n_heads"),
    "n_kv_heads": model("n_kv_heads: key/value heads (grouped-query attention); null means n_heads", default=None),
    "vocab_size": model("n_vocab: the rows of tok_embeddings, the width of the logits"),
    "multiple_of": model("with ffn_dim_multiplier, fixes the SwiGLU width d_mlp (meta_ffn_width)", default=256),
    "ffn_dim_multiplier": model("scales the SwiGLU width before rounding (meta_ffn_width); null: 1", default=None),
    "norm_eps": model("eps: the ε inside every RMS norm's square root", default=1e-5),
    "rope_theta": model("the rotary base θ (Llama 2's code fixes 10000; Llama 3's params.json says 500000)", default=10000.0),
    "use_scaled_rope": model("true: Llama 3.1's frequency scaling (llama3 with factor 8, low 1, high 4, original 8192)", default=False),
    "max_seq_len": model("n_ctx: the longest sequence (a ModelArgs field, not in params.json; ModelArgs' default 2048)", default=2048),
    **ignore("the KV cache's rows: how many sequences a forward may take, not the function", "max_batch_size"),
}
"""Every Meta ``params.json`` / ``ModelArgs`` key gptspec reads, with its role and reason."""


def read_config(values: Mapping[str, object], where: str) -> Config:
    """The :class:`LlamaConfig` of Meta's ``params.json`` (interleaved rotary pairs)."""
    dim, n_heads = whole(values, "dim", where), whole(values, "n_heads", where)
    if dim % n_heads:
        raise CheckpointError(f"config key dim={dim}, but expected a multiple of n_heads={n_heads} [checkpoint {where}]; head_dim = dim // n_heads")
    multiplier = values["ffn_dim_multiplier"]
    fields: dict[str, Any] = {
        "n_vocab": whole(values, "vocab_size", where), "n_ctx": whole(values, "max_seq_len", where), "d_model": dim,
        "n_layers": whole(values, "n_layers", where), "n_heads": n_heads,
        "n_kv_heads": None if values["n_kv_heads"] is None else whole(values, "n_kv_heads", where),
        "d_mlp": meta_ffn_width(dim, whole(values, "multiple_of", where), None if multiplier is None else number(values, "ffn_dim_multiplier", where)),
        "eps": number(values, "norm_eps", where), "rope_base": number(values, "rope_theta", where), "rope_pairing": "interleaved",
    }
    if flag(values, "use_scaled_rope", where):
        fields |= META_SCALED_ROPE
    return LlamaConfig(**fields, name="meta-llama")


def write_config(config: Any) -> dict[str, object]:
    """``ModelArgs`` fields of a spec Llama config; refuses what Meta's code cannot express."""
    c: LlamaConfig = config
    refuse = []
    if c.rope_pairing != "interleaved":
        refuse.append(f"rope_pairing={c.rope_pairing!r} (Meta's code pairs adjacent features: interleaved)")
    if c.head_width * c.n_heads != c.d_model:
        refuse.append(f"d_head={c.head_width} (Meta's head_dim is dim // n_heads)")
    if c.qkv_bias or c.out_bias or c.mlp_bias:
        refuse.append("biases (Meta's projections have none)")
    if c.tied:
        refuse.append("tied=True (Meta's output is its own weight)")
    if c.activation != "silu":
        refuse.append(f"activation={c.activation!r} (Meta's FeedForward is SwiGLU: silu)")
    if set(c.attention) != {"full"}:
        refuse.append(f"attention={c.attention} (Meta's attention is full causal)")
    scaled = c.rope_scaling != "none"
    if scaled and {k: getattr(c, k) for k in META_SCALED_ROPE} | {"rope_original_n_ctx": c.rope_original_n_ctx} != META_SCALED_ROPE:
        refuse.append(f"rope_scaling={c.rope_scaling!r} with other factors than Llama 3.1's use_scaled_rope")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config Meta's ModelArgs can express [export {c.name} to meta-llama]")
    multiple_of, multiplier = solve_meta_ffn(c.d_model, c.d_mlp)
    return {"dim": c.d_model, "n_layers": c.n_layers, "n_heads": c.n_heads, "n_kv_heads": c.kv_heads, "vocab_size": c.n_vocab,
            "multiple_of": multiple_of, "ffn_dim_multiplier": multiplier, "norm_eps": c.eps, "rope_theta": c.rope_base,
            "use_scaled_rope": scaled, "max_seq_len": c.n_ctx}


META_LLAMA = register_layout(Layout(
    name="meta-llama",
    family="llama",
    description="Meta's reference Llama 2/3 (llama/model.py Transformer, consolidated.*.pth names, params.json): interleaved rotary",
    config_keys=META_LLAMA_KEYS,
    read_config=read_config,
    write_config=write_config,
    layers=lambda c: c.n_layers,
    tensors=(
        Tensor("tok_embeddings.weight", ("W_E",), "v d", "v d"),
        Tensor("layers.{i}.attention_norm.weight", ("blocks.{i}.norm_1.gamma",), "d", "d"),
        # nn.Linear (out, in): rows h·d_head + e are head h's output e
        Tensor("layers.{i}.attention.wq.weight", ("blocks.{i}.attn.W_Q",), "(h e) d", "h d e"),
        Tensor("layers.{i}.attention.wk.weight", ("blocks.{i}.attn.W_K",), "(g e) d", "g d e"),
        Tensor("layers.{i}.attention.wv.weight", ("blocks.{i}.attn.W_V",), "(g e) d", "g d e"),
        Tensor("layers.{i}.attention.wo.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor("layers.{i}.ffn_norm.weight", ("blocks.{i}.norm_2.gamma",), "d", "d"),
        Tensor("layers.{i}.feed_forward.w1.weight", ("blocks.{i}.mlp.W_gate",), "m d", "d m"),
        Tensor("layers.{i}.feed_forward.w3.weight", ("blocks.{i}.mlp.W_up",), "m d", "d m"),
        Tensor("layers.{i}.feed_forward.w2.weight", ("blocks.{i}.mlp.W_down",), "d m", "m d"),
        Tensor("norm.weight", ("norm_f.gamma",), "d", "d"),
        Tensor("output.weight", ("W_U",), "v d", "d v"),
    ),
    modules=(
        ("tok_embeddings", "token_embedding"),
        ("layers.{i}", "blocks.{i}"),
        ("layers.{i}.attention_norm", "blocks.{i}.norm_1"),
        ("layers.{i}.attention", "blocks.{i}.attn"),
        ("layers.{i}.attention.wo", "blocks.{i}.attn.W_O"),
        ("layers.{i}.ffn_norm", "blocks.{i}.norm_2"),
        ("layers.{i}.feed_forward", "blocks.{i}.mlp"),
        ("layers.{i}.feed_forward.w1", "blocks.{i}.mlp.W_gate"),
        ("layers.{i}.feed_forward.w3", "blocks.{i}.mlp.W_up"),
        ("layers.{i}.feed_forward.w2", "blocks.{i}.mlp.W_down"),
        ("norm", "norm_f"),
        ("output", "unembed"),
    ),
    notes=("the SwiGLU width is derived from multiple_of and ffn_dim_multiplier (meta_ffn_width)",),
    # two layers, grouped-query heads, interleaved pairs; d_mlp 48 = 16·⌈⌊⅔·64⌋/16⌉ (multiple_of 16)
    default=LlamaConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=48, eps=1e-5,
                        rope_pairing="interleaved", name="meta-llama-small-default"),
))
