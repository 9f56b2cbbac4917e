"""The GPT-NeoX family: GPT-NeoX-20B and Pythia (EleutherAI) — decoder-only, pre-LN, rotary
positions on part of each head, and a parallel residual.

    ids ──one_hot──▶ X ──token_embedding(W_E)──▶ h₀
    h_{l+1} = h_l + (mlp(LN₂ h_l) + attn(LN₁ h_l))     (parallel residual; or sequential, as GPT-2)
    attn: every head rotates the first ``rotated`` features of Q and K (partial rotary, pairs (k, k + r/2))
    logits = LN_f(h_L) · W_U     (W_U untied unless ``tied``)

Made from the blocks of spec/blocks.py (:class:`~spec.blocks.Block` with ``residual="parallel"``)
and the partial :class:`~spec.ops.Rotary`; nothing here is new math.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.architectures.registry import register_family
from spec.blocks import ACTIVATIONS, MLP, Attention, Block, Norm, layer_norm, pre_norm_block
from spec.config import Config, positive
from spec.errors import ConfigError
from spec.graph import Architecture, ParamRef, graph_input
from spec.masks import Causal
from spec.ops import Affine, OneHot, Rotary, TokenEmbedding
from spec.types import token_ids

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@dataclass(frozen=True)
class NeoXConfig(Config):
    """Everything that fixes a GPT-NeoX model's function.

    ``d_head`` = d_model / n_heads. ``rotary_pct`` of each head's features are rotated —
    ``int(d_head · rotary_pct)`` of them, which must be even (Hugging Face's ``rotary_ndims``);
    0 rotates none. ``parallel_residual`` (Pythia, NeoX-20B) adds the attention and MLP of the
    same input; otherwise the block is sequential. ``attention_bias`` switches the biases of the
    QKV and output projections; the MLP and layer norms always have theirs. ``activation`` is the
    MLP's (Hugging Face ``gelu``: the exact erf form)."""

    family: ClassVar[str] = "gpt-neox"

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    d_mlp: int | None = None
    rotary_pct: float = 0.25
    rope_base: float = 10000.0
    parallel_residual: bool = True
    activation: str = "gelu_erf"
    eps: float = 1e-5
    attention_bias: bool = True
    tied: bool = False
    name: str = field(default="gpt-neox", compare=False)

    def validate(self) -> None:
        positive(self, "n_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_mlp")
        where = f"config {self.name}"
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}, but expected a whole d_head [{where}]")
        if not 0 <= self.rotary_pct <= 1:
            raise ConfigError(f"rotary_pct={self.rotary_pct!r}, but expected a fraction in [0, 1] [{where}]; Pythia uses 0.25")
        if self.rotated % 2:
            raise ConfigError(
                f"rotary_pct={self.rotary_pct!r} rotates int(d_head · rotary_pct)={self.rotated} features, but expected an even "
                f"number [{where}]; rotary embedding rotates pairs of features"
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation={self.activation!r}, but expected one of {list(ACTIVATIONS)} [{where}]")
        if self.eps < 0:
            raise ConfigError(f"eps={self.eps!r}, but expected a number ≥ 0 [{where}]")
        if not self.rope_base > 0:
            raise ConfigError(f"rope_base={self.rope_base!r}, but expected a number > 0 [{where}]")

    @property
    def head_width(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def rotated(self) -> int:
        """The features of each head the rotary embedding rotates: int(d_head · rotary_pct)."""
        return int(self.head_width * self.rotary_pct)

    def block(self) -> Block:
        """Every block: pre-LN, causal, 1/√d_head, the first ``rotated`` features rotated."""
        transforms = () if self.rotated == 0 else (Rotary(D.d_head, self.rope_base, rotated=self.rotated),)
        attention = Attention(D.n_heads, D.d_head, Causal(), 1 / sympy.sqrt(sympy.Integer(self.head_width)),
                              transforms=transforms, bias=self.attention_bias)
        return Block(attention, Norm("layer", self.eps), MLP(D.d_mlp, self.activation, True),
                     residual="parallel" if self.parallel_residual else "sequential")

    def dims(self) -> dict[sympy.Symbol, int]:
        return {
            D.n_vocab: self.n_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model, D.n_layers: self.n_layers,
            D.n_heads: self.n_heads, D.d_head: self.head_width, D.d_mlp: self.mlp_width,
        }


def neox_instances() -> dict[str, NeoXConfig]:
    """GPT-NeoX's fixed hard instances: a partial rotation (2 of 4 features) with the parallel
    residual, a full one with the sequential residual and no attention biases, none at all."""
    return {
        "parallel residual, rotary on 2 of 4 features": NeoXConfig(
            n_vocab=5, n_ctx=8, d_model=8, n_layers=2, n_heads=2, d_mlp=3, rotary_pct=0.5, name="neox-partial"),
        "sequential residual, full rotary, no attention biases, tied, relu": NeoXConfig(
            n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=2, d_mlp=2, rotary_pct=1.0, parallel_residual=False,
            attention_bias=False, tied=True, activation="relu", name="neox-sequential"),
        "no rotation": NeoXConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=1, d_mlp=2, rotary_pct=0.0, name="neox-unrotated"),
    }


def neox_configs(*, max_layers: int = 2) -> SearchStrategy[NeoXConfig]:
    """Small GPT-NeoX configs: 1–3 heads of width 2, 4 or 6, rotary fractions giving 0 to all
    features, both residuals, every activation, biases or not, tied or not."""
    from hypothesis import strategies as st

    @st.composite
    def draw_config(draw: st.DrawFn) -> NeoXConfig:
        n_heads = draw(st.integers(1, 3), label="n_heads")
        d_head = draw(st.sampled_from([2, 4, 6]), label="d_head")
        pct = draw(st.sampled_from([p for p in (0.0, 0.25, 0.5, 1.0) if int(d_head * p) % 2 == 0]), label="rotary_pct")
        return NeoXConfig(
            n_vocab=draw(st.integers(2, 30)), n_ctx=16, d_model=n_heads * d_head, n_layers=draw(st.integers(1, max_layers)),
            n_heads=n_heads, d_mlp=draw(st.integers(1, 8)), rotary_pct=pct, rope_base=draw(st.sampled_from([10000.0, 2.0])),
            parallel_residual=draw(st.booleans()), activation=draw(st.sampled_from(sorted(ACTIVATIONS))),
            eps=draw(st.sampled_from([1e-5, 1e-2])), attention_bias=draw(st.booleans()), tied=draw(st.booleans()), name="drawn",
        )

    return draw_config()


@register_family(
    "gpt-neox", NeoXConfig,
    "GPT-NeoX / Pythia: pre-LN, parallel residual, rotary on part of each head (rotary_pct), untied head",
    instances=neox_instances, configs=neox_configs,
)
def build_neox(config: NeoXConfig) -> Architecture:
    """The GPT-NeoX architecture of ``config``, validated."""
    if not isinstance(config, NeoXConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a NeoXConfig [build_neox]")
    c = config
    arch = Architecture(c.name, {"ids": token_ids(D.T)}, c.dims(), config=c)
    declare, d = arch.declare, D.d_model
    X = arch.add("one_hot", OneHot(D.n_vocab), {"ids": graph_input("ids")})
    W_E = declare("W_E", (D.n_vocab, d))
    h = arch.add("token_embedding", TokenEmbedding(D.n_vocab, d), {"X": X}, {"W_E": W_E})
    spec = c.block()
    for layer in range(c.n_layers):
        prefix = f"blocks.{layer}"
        h = arch.add(prefix, pre_norm_block(declare, prefix, arch.dims, spec, d=d), {"x": h})
    ln_f, p_f = layer_norm(declare, "ln_f", d=d, eps=c.eps, bias=True)
    h = arch.add("ln_f", ln_f, {"x": h}, p_f)
    W_U = ParamRef(W_E.name, transpose=True) if c.tied else declare("W_U", (d, D.n_vocab))
    arch.output("logits", arch.add("unembed", Affine(d, D.n_vocab, bias=False), {"x": h}, {"W": W_U}))
    return arch.validate()
