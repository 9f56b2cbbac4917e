"""The Mixtral family (Mistral AI): a Llama-family decoder whose every MLP is a mixture of experts.

    h_{l+1} = block_l(h_l)   (pre-RMSNorm: h + attn(RMSNorm₁ h), then + moe(RMSNorm₂ ·))
    moe(x)_t = Σ_{e ∈ K_t} G_te E_e(x_t)   K_t: the top_k experts of router logits x_t W_router;
                                          G: softmax over all experts, then renormalised over K_t
    E_e: a SwiGLU MLP of width d_mlp (expert e's own W_gate, W_up, W_down)

Everything but the MLP is Llama's (spec/architectures/llama.py: grouped-query attention, rotary,
sliding window): :class:`MixtralConfig` is a :class:`~spec.architectures.llama.LlamaConfig` with two
more fields, and its blocks are Llama's blocks with :class:`~spec.moe_blocks.MoeMLP` in the MLP slot
(spec/ops/moe.py: the router, its tie rule — equal logits, lower index first — and the experts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from spec import dims as D
from spec.architectures.llama import LlamaConfig, build_llama, llama_configs
from spec.architectures.registry import register_family
from spec.blocks import Block
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.moe_blocks import MoeMLP

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def check_experts(config: LlamaConfig, n_experts: int, top_k: int) -> None:
    """The routed-experts fields every MoE family shares: ``n_experts`` ≥ 1, 1 ≤ ``top_k`` ≤
    n_experts, and no MLP bias (routed experts are bias-free gated MLPs)."""
    where = config._where()
    if n_experts < 1:
        raise ConfigError(f"n_experts={n_experts!r}, but expected a whole number ≥ 1 [{where}]")
    if not 1 <= top_k <= n_experts:
        raise ConfigError(f"top_k={top_k!r}, but expected 1 ≤ top_k ≤ n_experts={n_experts} [{where}]; each position chooses top_k experts")
    if config.mlp_bias:
        raise ConfigError(f"mlp_bias=True, but expected mlp_bias=False [{where}]; routed experts are bias-free gated MLPs")


@dataclass(frozen=True)
class MixtralConfig(LlamaConfig):
    """A Llama-family config (every field of :class:`~spec.architectures.llama.LlamaConfig`, with
    ``d_mlp`` the width of each expert) whose MLPs route: ``n_experts`` experts, ``top_k`` chosen
    per position, their softmax weights renormalised over the chosen (Mixtral's router)."""

    family: ClassVar[str] = "mixtral"

    n_experts: int = 8
    top_k: int = 2
    name: str = field(default="mixtral", compare=False)

    def validate(self) -> None:
        super().validate()
        check_experts(self, self.n_experts, self.top_k)

    def block(self, layer: int) -> Block:
        """Llama's block ``layer`` with the routed experts in the MLP slot."""
        moe = MoeMLP(D.d_mlp, self.activation, n_experts=self.n_experts, top_k=self.top_k, norm="softmax_topk_renorm")
        return dataclasses.replace(super().block(layer), mlp=moe)


def mixtral_instances() -> dict[str, MixtralConfig]:
    """Mixtral's fixed hard instance: top-2 of 4 experts renormalised, under a sliding window with
    multi-query attention (top-1 and the unnormalised router are the Qwen-MoE family's instances)."""
    return {
        "top-2 of 4 experts, sliding, multi-query": MixtralConfig(
            n_vocab=7, n_ctx=12, d_model=4, n_layers=2, n_heads=2, n_kv_heads=1, d_mlp=3, attention=("sliding",),
            sliding_window=3, n_experts=4, top_k=2, name="mixtral-sliding"),
    }


def moe_configs(make: type[LlamaConfig], *, max_layers: int = 2, **fixed: object) -> SearchStrategy[LlamaConfig]:
    """Small configs of a routed family: a drawn Llama-family config (spec/architectures/llama.py's
    strategy, without MLP biases) as ``make``, with 1–4 experts and top_k from 1 to all of them;
    ``fixed`` fields, and fields given as strategies, are the family's own."""
    from hypothesis import strategies as st

    @st.composite
    def draw_config(draw: st.DrawFn) -> LlamaConfig:
        base = draw(llama_configs(max_layers=max_layers))
        n_experts = draw(st.integers(1, 4), label="n_experts")
        own: dict[str, Any] = {k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in fixed.items()}
        fields: dict[str, Any] = {f: getattr(base, f) for f in LlamaConfig.field_names()} | {"mlp_bias": False}
        own |= {"n_experts": n_experts, "top_k": draw(st.integers(1, n_experts), label="top_k")}
        return make(**fields, **own)

    return draw_config()


def mixtral_configs(*, max_layers: int = 2) -> SearchStrategy[LlamaConfig]:
    """Small Mixtral configs: every Llama option (GQA, windows, rotary scalings, Q/K/V/O biases),
    1–4 experts, any top_k."""
    return moe_configs(MixtralConfig, max_layers=max_layers)


@register_family(
    "mixtral", MixtralConfig,
    "Mixtral: the Llama family with a mixture of SwiGLU experts in every block (top-k of a softmax router, renormalised)",
    instances=mixtral_instances, configs=mixtral_configs,
)
def build_mixtral(config: MixtralConfig) -> Architecture:
    """The Mixtral architecture of ``config``, validated: Llama's graph (build_llama) with the
    blocks ``config.block`` gives."""
    if not isinstance(config, MixtralConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a MixtralConfig [build_mixtral]")
    return build_llama(config)
