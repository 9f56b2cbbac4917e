"""The nanoGPT layout (``nanogpt``): karpathy/nanoGPT's ``GPT`` state dict and ``GPTConfig`` ↔ the
spec's GPT (spec/architectures/gpt.py), as one table.

nanoGPT keeps GPT-2's module names but stores every projection as a ``torch.nn.Linear``: weights
(out, in), computing x Wᵀ + b — the transpose of Hugging Face's ``Conv1D`` (hf-gpt2). So
``c_attn.weight`` is "(k h e) d" (rows: Q | K | V, heads inside each), ``attn.c_proj.weight`` "d (h e)",
``c_fc.weight`` "m d", ``mlp.c_proj.weight`` "d m". The square ``attn.c_proj`` would load silently
transposed through hf-gpt2's table; this one reads it the right way round. The head is tied to
``wte`` (nanoGPT ties them in ``__init__``; the state dict holds both names). ``bias=False``
removes every bias, the layer norms' β too — the spec's ``bias`` means the same.

The config is nanoGPT's ``GPTConfig``: block_size, vocab_size, n_layer, n_head, n_embd, dropout,
bias. What nanoGPT fixes in code — d_mlp = 4·n_embd, ε = 1e-5, the head tied, learned positions,
1/√d_head — is refused at other values. The MLP activation is not a config key: nanoGPT's code
computes exact-erf ``nn.GELU()`` (read as ``gelu_erf``), while GPT-2's weights were trained with the
tanh form; writing a config leaves the activation to the spec config (``gptspec verify
--identify`` tells which one a model computes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.layout import Alias, ConfigKey, Layout, Tensor, flag, ignore, model, register_layout, whole
from spec.architectures import GPTConfig
from spec.config import Config
from spec.errors import CheckpointError

NANOGPT_KEYS: dict[str, ConfigKey] = {
    "block_size": model("n_ctx: the rows of wpe, the longest sequence"),
    "vocab_size": model("n_vocab: the rows of wte, the width of the logits"),
    "n_layer": model("n_layers: the number of blocks"),
    "n_head": model("n_heads; d_head = n_embd / n_head"),
    "n_embd": model("d_model: the width of the residual stream"),
    "bias": model("false: no bias in any Linear or LayerNorm (the spec's bias=False)", default=True),
    **ignore("dropout: the identity at inference (eval mode), the function the spec defines", "dropout"),
}
"""Every nanoGPT ``GPTConfig`` field, with its role and reason."""

NANOGPT_EPS = 1e-5
"""The ε nanoGPT's ``LayerNorm`` passes to ``F.layer_norm`` (fixed in code)."""


def read_config(values: Mapping[str, object], where: str) -> Config:
    """The :class:`GPTConfig` a nanoGPT ``GPTConfig`` describes (activation: nanoGPT's gelu_erf)."""
    d_model, n_heads = whole(values, "n_embd", where), whole(values, "n_head", where)
    if d_model % n_heads:
        raise CheckpointError(f"config key n_embd={d_model}, but expected a multiple of n_head={n_heads} [checkpoint {where}]; nanoGPT asserts it too")
    return GPTConfig(
        n_vocab=whole(values, "vocab_size", where), n_ctx=whole(values, "block_size", where), d_model=d_model,
        n_layers=whole(values, "n_layer", where), n_heads=n_heads, activation="gelu_erf", eps=NANOGPT_EPS,
        bias=flag(values, "bias", where), tied=True, name="nanogpt",
    )


def write_config(config: Any) -> dict[str, object]:
    """nanoGPT's ``GPTConfig`` fields of a spec GPT config; refuses what nanoGPT fixes in code."""
    c: GPTConfig = config
    refuse = []
    if c.head_width * c.n_heads != c.d_model:
        refuse.append(f"d_head={c.head_width} (nanoGPT's is n_embd / n_head = {c.d_model // c.n_heads})")
    if c.mlp_width != 4 * c.d_model:
        refuse.append(f"d_mlp={c.mlp_width} (nanoGPT's is 4·n_embd = {4 * c.d_model})")
    if c.eps != NANOGPT_EPS:
        refuse.append(f"eps={c.eps} (nanoGPT's LayerNorm uses {NANOGPT_EPS})")
    if not c.tied:
        refuse.append("tied=False (nanoGPT ties lm_head to wte)")
    if c.positional != "learned":
        refuse.append(f"positional={c.positional!r} (nanoGPT learns wpe)")
    if set(c.attention) != {"dense"}:
        refuse.append(f"attention={c.attention} (nanoGPT's attention is dense causal)")
    if c.attn_scale is not None or c.scale_by_inverse_layer:
        refuse.append("a score scale other than 1/√d_head")
    if refuse:
        raise CheckpointError(f"config {'; '.join(refuse)}, but expected a config nanoGPT's GPTConfig can express [export {c.name} to nanogpt]")
    return {"block_size": c.n_ctx, "vocab_size": c.n_vocab, "n_layer": c.n_layers, "n_head": c.n_heads, "n_embd": c.d_model,
            "dropout": 0.0, "bias": c.bias}


def _bias(c: Any) -> bool:
    return bool(c.bias)


NANOGPT = register_layout(Layout(
    name="nanogpt",
    family="gpt",
    description="karpathy/nanoGPT's GPT (model.py): nn.Linear weights (out, in) under GPT-2's names, the head tied to wte",
    config_keys=NANOGPT_KEYS,
    read_config=read_config,
    write_config=write_config,
    layers=lambda c: c.n_layers,
    prefix="transformer.",
    unprefixed=("lm_head.weight",),
    tensors=(
        Tensor("wte.weight", ("W_E",), "v d", "v d"),
        Tensor("wpe.weight", ("W_P",), "n d", "n d"),
        Tensor("h.{i}.ln_1.weight", ("blocks.{i}.ln_1.gamma",), "d", "d"),
        Tensor("h.{i}.ln_1.bias", ("blocks.{i}.ln_1.beta",), "d", "d", when=_bias),
        # nn.Linear (out, in): rows [Q | K | V], head-major inside each
        Tensor("h.{i}.attn.c_attn.weight", ("blocks.{i}.attn.W_Q", "blocks.{i}.attn.W_K", "blocks.{i}.attn.W_V"), "(k h e) d", "h d e"),
        Tensor("h.{i}.attn.c_attn.bias", ("blocks.{i}.attn.b_Q", "blocks.{i}.attn.b_K", "blocks.{i}.attn.b_V"), "(k h e)", "h e", when=_bias),
        # columns h·d_head + e read head h's output e
        Tensor("h.{i}.attn.c_proj.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor("h.{i}.attn.c_proj.bias", ("blocks.{i}.attn.b_O",), "d", "d", when=_bias),
        Tensor("h.{i}.ln_2.weight", ("blocks.{i}.ln_2.gamma",), "d", "d"),
        Tensor("h.{i}.ln_2.bias", ("blocks.{i}.ln_2.beta",), "d", "d", when=_bias),
        Tensor("h.{i}.mlp.c_fc.weight", ("blocks.{i}.mlp.W_in",), "m d", "d m"),
        Tensor("h.{i}.mlp.c_fc.bias", ("blocks.{i}.mlp.b_in",), "m", "m", when=_bias),
        Tensor("h.{i}.mlp.c_proj.weight", ("blocks.{i}.mlp.W_out",), "d m", "m d"),
        Tensor("h.{i}.mlp.c_proj.bias", ("blocks.{i}.mlp.b_out",), "d", "d", when=_bias),
        Tensor("ln_f.weight", ("ln_f.gamma",), "d", "d"),
        Tensor("ln_f.bias", ("ln_f.beta",), "d", "d", when=_bias),
        Alias("lm_head.weight", of="wte.weight", reason="nanoGPT ties lm_head.weight to transformer.wte.weight"),
    ),
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
    notes=("the MLP activation is fixed in nanoGPT's code (nn.GELU(): gelu_erf), not in its config",),
    # GPT-2's function at the hf-gpt2 default's size: what nanoGPT's from_pretrained("gpt2") claims to compute
    default=GPTConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=2, name="nanogpt-small-default"),
))
