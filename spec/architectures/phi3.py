"""The Phi-3 family (Microsoft): Phi-3 and Phi-3.5 mini/medium, Phi-4 mini — a Llama-family
decoder whose rotary embedding may rotate only part of each head.

    ids ──one_hot──▶ X ──token_embedding(W_E)──▶ h₀
    h_{l+1} = block_l(h_l)       (pre-RMSNorm: h + attn(RMSNorm₁ h), then + gated_mlp(RMSNorm₂ ·))
    attn: grouped-query, the first int(d_head · partial_rotary_factor) features of Q and K rotated,
          causal or one sliding window for every layer
    logits = RMSNorm_f(h_L) · W_U

The function is the Llama family's with a partial :class:`~spec.ops.Rotary` (as GPT-NeoX's);
what makes Phi-3 look different is its checkpoint, which fuses Q, K and V into one ``qkv_proj``
and the gate and up projections into one ``gate_up_proj`` (gptspec/checkpoint/hf_phi3.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from spec.architectures.llama import LlamaConfig, build_llama, llama_configs
from spec.architectures.registry import register_family
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.ops import Rotary

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@dataclass(frozen=True)
class Phi3Config(LlamaConfig):
    """Everything that fixes a Phi-3 model's function: a :class:`LlamaConfig` (same fields, same
    meaning) plus ``partial_rotary_factor``: each head rotates its first int(d_head · factor)
    features (an even number; 1.0 rotates them all, as Phi-3 mini and medium do; Phi-4 mini uses
    0.75), with frequencies base^(−2k/rotated) and pairs (k, k + rotated/2), and passes the rest."""

    family: ClassVar[str] = "phi3"

    eps: float = 1e-5
    partial_rotary_factor: float = 1.0
    name: str = field(default="phi3", compare=False)

    def validate(self) -> None:
        where = f"config {self.name}"
        factor = self.partial_rotary_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
            raise ConfigError(f"partial_rotary_factor={factor!r}, but expected a fraction in (0, 1] [{where}]; Phi-3 mini uses 1.0")
        whole_heads = self.d_head is not None or (self.n_heads > 0 and self.d_model % self.n_heads == 0)
        if whole_heads and (self.rotated < 2 or self.rotated % 2):
            raise ConfigError(
                f"partial_rotary_factor={factor!r} rotates int(d_head · partial_rotary_factor)={self.rotated} features, but expected "
                f"an even number ≥ 2 [{where}]; rotary embedding rotates pairs of features"
            )
        super().validate()

    @property
    def rotated(self) -> int:
        """The features of each head the rotary embedding rotates: int(d_head · partial_rotary_factor)."""
        return int(self.head_width * self.partial_rotary_factor)

    def rotary(self) -> Rotary:
        """The Llama family's rotary op, on the first ``rotated`` features of each head."""
        full = super().rotary()
        return full if self.rotated == self.head_width else dataclasses.replace(full, rotated=self.rotated)


def phi3_instances() -> dict[str, Phi3Config]:
    """Phi-3's fixed hard instances: rotary on half of each head with grouped queries 4:2 and a
    sliding window; full rotary, multi-query, tied."""
    return {
        "GQA 4:2, rotary on 2 of 4 features, sliding window": Phi3Config(
            n_vocab=7, n_ctx=12, d_model=8, n_layers=1, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=3, attention=("sliding",),
            sliding_window=3, partial_rotary_factor=0.5, name="phi3-partial"),
        "multi-query, full rotary, tied": Phi3Config(
            n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=2, n_kv_heads=1, d_mlp=2, tied=True, name="phi3-mqa"),
    }


def phi3_configs(*, max_layers: int = 2) -> SearchStrategy[Phi3Config]:
    """Small Phi-3 configs: the Llama family's draws with rotary on all of each head or (for
    d_head 4) half of it."""
    from hypothesis import strategies as st

    def partial(c: LlamaConfig) -> SearchStrategy[Phi3Config]:
        factors = [1.0, 0.5] if c.head_width % 4 == 0 else [1.0]
        fields = {f: getattr(c, f) for f in LlamaConfig.field_names()}
        return st.sampled_from(factors).map(lambda f: Phi3Config(**fields, partial_rotary_factor=f))

    return llama_configs(max_layers=max_layers).flatmap(partial)


@register_family(
    "phi3", Phi3Config,
    "Phi-3: the Llama family's pre-RMSNorm, SwiGLU, grouped-query and sliding-window attention with partial rotary "
    "(partial_rotary_factor); fused qkv_proj and gate_up_proj in the checkpoint",
    instances=phi3_instances, configs=phi3_configs,
)
def build_phi3(config: Phi3Config) -> Architecture:
    """The Phi-3 architecture of ``config``, validated (the Llama builder over Phi-3's rotary)."""
    if not isinstance(config, Phi3Config):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a Phi3Config [build_phi3]")
    return build_llama(config)
