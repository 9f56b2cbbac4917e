"""The Qwen families beyond Qwen2 (which is a Llama-family config, spec/architectures/llama.py):
Qwen3 — Llama plus an RMS norm of every head's queries and keys — and the Qwen mixtures of
experts, Qwen2-MoE (a shared expert beside the routed ones) and Qwen3-MoE (QK-norm, routed only).

    Qwen3:     q_h = rotary(RMSNorm_q(x W_Q,h)),  k_g = rotary(RMSNorm_k(x W_K,g))    (norm, then rotation)
    Qwen-MoE:  mlp(x)_t = Σ_{e ∈ K_t} G_te E_e(x_t) [+ σ(x_t · w_shared) E_shared(x_t)]
               G: softmax over all experts; kept as is (norm_topk_prob false) or renormalised over K_t

Both are :class:`~spec.architectures.llama.LlamaConfig` subclasses: the fields are Llama's, the
block is Llama's block with the QK-norm in the attention's head-transform slot
(:class:`~spec.blocks.QKNorm`, gains q_norm and k_norm of width d_head shared by the heads) and,
for the MoE family, :class:`~spec.moe_blocks.MoeMLP` in the MLP slot.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.architectures.llama import LlamaConfig, build_llama, llama_configs
from spec.architectures.mixtral import check_experts, moe_configs
from spec.architectures.registry import register_family
from spec.blocks import Block, QKNorm
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.moe_blocks import MoeMLP

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def with_qk_norm(block: Block, eps: float) -> Block:
    """``block`` with an RMS norm (ε ``eps``) of every head's Q and K before its other head
    transforms (Qwen3's order: q_norm, then rotary)."""
    attention = dataclasses.replace(block.attention, transforms=(QKNorm(eps), *block.attention.transforms))
    return dataclasses.replace(block, attention=attention)


@dataclass(frozen=True)
class Qwen3Config(LlamaConfig):
    """A Llama-family config (every field of :class:`~spec.architectures.llama.LlamaConfig`) whose
    attention normalises every head's queries and keys (RMS over d_head, ε = ``eps``, one gain for
    all query heads and one for all key heads) before rotating them."""

    family: ClassVar[str] = "qwen3"

    name: str = field(default="qwen3", compare=False)

    def block(self, layer: int) -> Block:
        """Llama's block ``layer`` with the QK-norm first in the head-transform slot."""
        return with_qk_norm(super().block(layer), self.eps)


@dataclass(frozen=True)
class QwenMoeConfig(LlamaConfig):
    """A Llama-family config whose every MLP routes (Qwen2-MoE, Qwen3-MoE): ``n_experts`` SwiGLU
    experts of width ``d_mlp``, ``top_k`` chosen per position by a softmax router whose weights are
    renormalised over the chosen when ``norm_topk_prob``; a shared expert of width ``d_shared``
    (None: none) scaled by σ(x · w_shared) (Qwen2-MoE); ``qk_norm`` adds Qwen3's QK-norm."""

    family: ClassVar[str] = "qwen-moe"

    n_experts: int = 4
    top_k: int = 2
    norm_topk_prob: bool = False
    d_shared: int | None = None
    qk_norm: bool = False
    name: str = field(default="qwen-moe", compare=False)

    def validate(self) -> None:
        super().validate()
        check_experts(self, self.n_experts, self.top_k)
        if self.d_shared is not None and self.d_shared < 1:
            raise ConfigError(f"d_shared={self.d_shared!r}, but expected a whole number ≥ 1 or None [{self._where()}]")

    def block(self, layer: int) -> Block:
        """Llama's block ``layer`` with the routed (and shared) experts in the MLP slot, and the
        QK-norm when ``qk_norm``."""
        moe = MoeMLP(
            D.d_mlp, self.activation, n_experts=self.n_experts, top_k=self.top_k,
            norm="softmax_topk_renorm" if self.norm_topk_prob else "softmax_topk",
            d_shared=None if self.d_shared is None else sympy.Integer(self.d_shared),
        )
        block = dataclasses.replace(super().block(layer), mlp=moe)
        return with_qk_norm(block, self.eps) if self.qk_norm else block


def qwen3_instances() -> dict[str, Qwen3Config]:
    """Qwen3's fixed hard instance: QK-norm on heads wider than d_model / n_heads under grouped
    queries, a sliding then a full layer, a tied head (one instance: the rest is Llama's)."""
    return {
        "QK-norm, GQA 4:2, d_head 4 of d_model 8, sliding then full, tied": Qwen3Config(
            n_vocab=7, n_ctx=12, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=3, attention=("sliding", "full"),
            sliding_window=3, tied=True, eps=1e-2, name="qwen3-small"),
    }


def qwen3_configs(*, max_layers: int = 2) -> SearchStrategy[LlamaConfig]:
    """Small Qwen3 configs: every Llama option (spec/architectures/llama.py's strategy) with the QK-norm."""
    return llama_configs(max_layers=max_layers).map(lambda c: Qwen3Config(**{f: getattr(c, f) for f in LlamaConfig.field_names()}))


def qwen_moe_instances() -> dict[str, QwenMoeConfig]:
    """The Qwen-MoE family's fixed hard instances: Qwen2-MoE (shared expert, Q/K/V biases, top-2
    of 4 kept unnormalised, a sliding layer) and Qwen3-MoE (QK-norm, top-1 of 3 renormalised — every
    weight 1 —, tied)."""
    return {
        "qwen2-moe: shared expert, qkv biases, top-2 of 4 unnormalised": QwenMoeConfig(
            n_vocab=7, n_ctx=12, d_model=4, n_layers=2, n_heads=2, n_kv_heads=1, d_mlp=2, attention=("full", "sliding"),
            sliding_window=3, qkv_bias=True, n_experts=4, top_k=2, d_shared=3, name="qwen2-moe-small"),
        "qwen3-moe: QK-norm, top-1 of 3 renormalised, tied": QwenMoeConfig(
            n_vocab=5, n_ctx=8, d_model=8, n_layers=1, n_heads=4, n_kv_heads=2, d_mlp=2, n_experts=3, top_k=1,
            norm_topk_prob=True, qk_norm=True, tied=True, name="qwen3-moe-small"),
    }


def qwen_moe_configs(*, max_layers: int = 2) -> SearchStrategy[LlamaConfig]:
    """Small Qwen-MoE configs: every Llama option, 1–4 experts, any top_k, both normalisations,
    with or without a shared expert and the QK-norm."""
    from hypothesis import strategies as st

    return moe_configs(
        QwenMoeConfig, max_layers=max_layers, norm_topk_prob=st.booleans(), d_shared=st.sampled_from([None, 1, 3]), qk_norm=st.booleans(),
    )


@register_family(
    "qwen3", Qwen3Config,
    "Qwen3: the Llama family with an RMS norm of every head's queries and keys before rotary (QK-norm)",
    instances=qwen3_instances, configs=qwen3_configs,
)
def build_qwen3(config: Qwen3Config) -> Architecture:
    """The Qwen3 architecture of ``config``, validated: Llama's graph with QK-normed heads."""
    if not isinstance(config, Qwen3Config):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a Qwen3Config [build_qwen3]")
    return build_llama(config)


@register_family(
    "qwen-moe", QwenMoeConfig,
    "Qwen2-MoE and Qwen3-MoE: the Llama family with routed SwiGLU experts (softmax, top-k, optionally renormalised), "
    "Qwen2-MoE's sigmoid-gated shared expert, Qwen3-MoE's QK-norm",
    instances=qwen_moe_instances, configs=qwen_moe_configs,
)
def build_qwen_moe(config: QwenMoeConfig) -> Architecture:
    """The Qwen-MoE architecture of ``config``, validated: Llama's graph with the blocks ``config.block`` gives."""
    if not isinstance(config, QwenMoeConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a QwenMoeConfig [build_qwen_moe]")
    return build_llama(config)
