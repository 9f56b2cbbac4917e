"""The OLMo 2 family (Allen Institute for AI) — a Llama-family decoder with its norms moved after
the sublayers and a QK-norm over all heads at once.

    ids ──one_hot──▶ X ──token_embedding(W_E)──▶ h₀
    h ← h + RMSNorm₁(attn(h)), then h ← h + RMSNorm₂(gated_mlp(h))     (no norm before a sublayer)
    attn: Q = RMSNorm_Q(x W_Q) over all n_heads·d_head features, K = RMSNorm_K(x W_K) over all
          n_kv_heads·d_head, then split into heads and rotated (RoPE); grouped-query, causal
    logits = RMSNorm_f(h_L) · W_U   (W_U untied unless ``tied``)

A thin subclass of the Llama config (spec/architectures/llama.py): the same fields and the same
builder, and a different block value — :class:`~spec.blocks.Block` with ``placement="post"`` and
an :class:`~spec.blocks.Attention` whose slot starts with ``QKNorm(scope="full")`` (the heads'
concatenation, one RMS norm, each head's slice: spec/ops/heads.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from spec import dims as D
from spec.architectures.llama import LlamaConfig, build_llama, llama_configs
from spec.architectures.registry import register_family
from spec.blocks import MLP, Attention, Block, Norm, QKNorm
from spec.errors import ConfigError
from spec.graph import Architecture

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@dataclass(frozen=True)
class Olmo2Config(LlamaConfig):
    """Everything that fixes an OLMo 2 model's function: a :class:`LlamaConfig` (its fields mean
    the same: grouped-query heads, d_head, rotary base and scaling, sliding layers, biases per
    projection, tied head) read as OLMo 2's block — every norm after its sublayer, and Q and K
    RMS-normalised over all heads at once (ε = ``eps``, gains q_norm (n_heads, d_head), k_norm
    (n_kv_heads, d_head)) before rotary. Hugging Face's default ε is 1e-5 (published models: 1e-6)."""

    family: ClassVar[str] = "olmo2"

    eps: float = 1e-5
    name: str = field(default="olmo2", compare=False)

    def block(self, layer: int) -> Block:
        """Block ``layer``: attention with the full-width QK-norm then rotary, a gated MLP, each
        sublayer's output RMS-normalised before the residual add."""
        attention = Attention(
            D.n_heads, D.d_head, self.mask(layer), self.scale(), n_kv_heads=D.n_kv_heads,
            transforms=(QKNorm(self.eps, scope="full"), self.rotary()), bias=self.qkv_bias, out_bias=self.out_bias,
        )
        return Block(attention, Norm("rms", self.eps), MLP(D.d_mlp, self.activation, self.mlp_bias, gated=True), placement="post")


def olmo2_instances() -> dict[str, Olmo2Config]:
    """OLMo 2's fixed hard instances: grouped queries 4:2 (the K norm's width differs from Q's),
    biases and tied; multi-query with a sliding layer then a full one and llama3 rotary scaling."""
    return {
        "GQA 4:2, full-width QK-norm, post-norm, biases, tied": Olmo2Config(
            n_vocab=7, n_ctx=12, d_model=8, n_layers=1, n_heads=4, n_kv_heads=2, d_head=2, d_mlp=3,
            qkv_bias=True, out_bias=True, tied=True, name="olmo2-gqa"),
        "multi-query, sliding then full, llama3 rotary, d_head ≠ d_model / n_heads": Olmo2Config(
            n_vocab=5, n_ctx=8, d_model=6, n_layers=2, n_heads=2, n_kv_heads=1, d_head=4, d_mlp=2, attention=("sliding", "full"),
            sliding_window=2, rope_scaling="llama3", rope_factor=8.0, rope_original_n_ctx=4, name="olmo2-mqa"),
    }


def olmo2_configs(*, max_layers: int = 2) -> SearchStrategy[Olmo2Config]:
    """Small OLMo 2 configs: the Llama family's draws (GQA ratios, d_head, pairings, scalings,
    windows, biases, tied) read as OLMo 2 blocks."""
    return llama_configs(max_layers=max_layers).map(lambda c: Olmo2Config(**{f: getattr(c, f) for f in LlamaConfig.field_names()}))


@register_family(
    "olmo2", Olmo2Config,
    "OLMo 2: RMSNorm after each sublayer (no pre-norm), QK-norm over all heads at once, rotary, SwiGLU, untied head",
    instances=olmo2_instances, configs=olmo2_configs,
)
def build_olmo2(config: Olmo2Config) -> Architecture:
    """The OLMo 2 architecture of ``config``, validated (the Llama builder over OLMo 2's blocks)."""
    if not isinstance(config, Olmo2Config):
        raise ConfigError(f"config of type {type(config).__name__}, but expected an Olmo2Config [build_olmo2]")
    return build_llama(config)
