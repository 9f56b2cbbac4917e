"""The Gemma family: Gemma and Gemma 2 (Google) — decoder-only, pre-RMSNorm with gain 1 + γ,
rotary positions, GeGLU, the embedding scaled by √d_model; Gemma 2 adds sandwich norms,
alternating sliding-window and global layers, a score scale set by ``query_pre_attn_scalar`` and
soft-capping of the attention scores and of the logits.

    ids ──one_hot──▶ X ──token_embedding(W_E)──▶ · √d_model ──▶ h₀
    Gemma:   h ← h + attn(N₁ h), then h ← h + mlp(N₂ h)                  (N: RMSNorm, gain 1 + γ)
    Gemma 2: h ← h + N₁'(attn(N₁ h)), then h ← h + N₂'(mlp(N₂ h))        (sandwich: post-norms N')
    attn: grouped-query, rotary, scale 1/√query_pre_attn_scalar, scores capped to c·tanh(a/c)
    logits = N_f(h_L) · W_Eᵀ, then capped to c'·tanh(logits/c') (Gemma 2)

Made from spec/blocks.py's values (:class:`~spec.blocks.Block` with ``post_norms``,
:class:`~spec.blocks.Attention` with ``softcap``), the RMSNorm's ``offset``, the constant
:class:`~spec.ops.Scale` and :class:`~spec.ops.SoftCap`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.architectures.llama import LayerKind
from spec.architectures.registry import register_family
from spec.blocks import GATE_ACTIVATIONS, MLP, Attention, Block, Norm, pre_norm_block, rms_norm
from spec.config import Config, positive
from spec.errors import ConfigError
from spec.graph import Architecture, ParamRef, graph_input
from spec.masks import Banded, Causal, Relation
from spec.ops import Affine, OneHot, Rotary, Scale, SoftCap, TokenEmbedding
from spec.ops.softcap import check_cap
from spec.types import token_ids

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


@dataclass(frozen=True)
class GemmaConfig(Config):
    """Everything that fixes a Gemma or Gemma 2 model's function.

    As Llama's: ``n_kv_heads`` (default n_heads) divides n_heads; ``d_head`` (default d_model /
    n_heads) is even; ``attention`` a pattern of ``full`` / ``sliding`` layers repeated along
    depth (Gemma 2: ``("sliding", "full")``, window ``sliding_window``). Gemma's own:
    the embedding is multiplied by √d_model; every RMSNorm's gain is 1 + γ; ``activation`` is the
    gate's (GeGLU with the tanh GELU); the score scale is 1/√``query_pre_attn_scalar`` (None:
    d_head); ``attn_softcap`` and ``final_softcap`` cap the scores and the logits (None: no cap);
    ``sandwich_norms`` adds a norm after each sublayer (Gemma 2); ``attention_bias`` switches the
    biases of Q, K, V and O together."""

    family: ClassVar[str] = "gemma"

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    d_mlp: int
    n_kv_heads: int | None = None
    d_head: int | None = None
    activation: str = "gelu_tanh"
    eps: float = 1e-6
    rope_base: float = 10000.0
    attention: tuple[LayerKind, ...] = ("full",)
    sliding_window: int | None = None
    query_pre_attn_scalar: int | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None
    sandwich_norms: bool = False
    attention_bias: bool = False
    tied: bool = True
    name: str = field(default="gemma", compare=False)

    def validate(self) -> None:
        positive(self, "n_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_mlp", "n_kv_heads", "d_head", "sliding_window",
                 "query_pre_attn_scalar")
        where = f"config {self.name}"
        if self.d_head is None and self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}, but expected d_head to be whole [{where}]; set d_head")
        if self.head_width % 2:
            raise ConfigError(f"d_head={self.head_width}, but expected an even width [{where}]; rotary embedding rotates pairs of features")
        if self.n_heads % self.kv_heads:
            raise ConfigError(f"n_kv_heads={self.kv_heads}, but expected a divisor of n_heads={self.n_heads} [{where}]")
        if self.activation not in GATE_ACTIVATIONS:
            raise ConfigError(f"activation={self.activation!r}, but expected one of {list(GATE_ACTIVATIONS)} [{where}]")
        if self.eps < 0:
            raise ConfigError(f"eps={self.eps!r}, but expected a number ≥ 0 [{where}]")
        if not self.attention:
            raise ConfigError(f"attention=(), but expected a non-empty pattern of 'full'/'sliding' [{where}]")
        if "sliding" in self.attention and self.sliding_window is None:
            raise ConfigError(f"sliding_window=None, but expected a whole number ≥ 1 for sliding layers [{where}]; set sliding_window")
        if not self.rope_base > 0:
            raise ConfigError(f"rope_base={self.rope_base!r}, but expected a number > 0 [{where}]")
        for name in ("attn_softcap", "final_softcap"):
            value = getattr(self, name)
            if value is not None:
                try:
                    check_cap(value, where)
                except ConfigError as error:
                    raise ConfigError(re.sub(r"^cap=", f"{name}=", str(error))) from None

    @property
    def head_width(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    def mask(self, layer: int) -> Relation:
        """Block ``layer``'s mask: causal, or the sliding window t − W < s ≤ t."""
        if self.attention[layer % len(self.attention)] == "sliding":
            if self.sliding_window is None:  # excluded by validate
                raise ConfigError(f"sliding_window=None, but expected a whole number [config {self.name}]")
            return Banded(self.sliding_window)
        return Causal()

    def scale(self) -> sympy.Expr:
        """1/√query_pre_attn_scalar (default 1/√d_head), exactly."""
        scalar = self.query_pre_attn_scalar if self.query_pre_attn_scalar is not None else self.head_width
        return 1 / sympy.sqrt(sympy.Integer(scalar))

    def block(self, layer: int) -> Block:
        """Block ``layer``: pre-RMSNorm (1 + γ), grouped-query rotary attention with its mask, scale and
        score cap, GeGLU; sandwich norms when asked."""
        attention = Attention(
            D.n_heads, D.d_head, self.mask(layer), self.scale(), n_kv_heads=D.n_kv_heads, transforms=(Rotary(D.d_head, self.rope_base),),
            softcap=self.attn_softcap, bias=self.attention_bias,
        )
        return Block(attention, Norm("rms", self.eps, offset=True), MLP(D.d_mlp, self.activation, False, gated=True),
                     post_norms=self.sandwich_norms)

    def dims(self) -> dict[sympy.Symbol, int]:
        return {
            D.n_vocab: self.n_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model, D.n_layers: self.n_layers,
            D.n_heads: self.n_heads, D.n_kv_heads: self.kv_heads, D.d_head: self.head_width, D.d_mlp: self.d_mlp,
        }


def gemma_instances() -> dict[str, GemmaConfig]:
    """Gemma's fixed hard instances: Gemma (multi-query, d_head ≠ d_model / n_heads) and Gemma 2
    (sliding then global layers, sandwich norms, query_pre_attn_scalar ≠ d_head, both caps small
    enough to bend the values drawn)."""
    return {
        "gemma: multi-query, d_head 4 of d_model 6": GemmaConfig(
            n_vocab=7, n_ctx=8, d_model=6, n_layers=1, n_heads=2, n_kv_heads=1, d_head=4, d_mlp=3, name="gemma-mqa"),
        "gemma 2: sliding then full, sandwich norms, capped scores and logits": GemmaConfig(
            n_vocab=7, n_ctx=8, d_model=4, n_layers=2, n_heads=2, n_kv_heads=1, d_head=2, d_mlp=3, attention=("sliding", "full"),
            sliding_window=2, query_pre_attn_scalar=3, attn_softcap=1.5, final_softcap=2.0, sandwich_norms=True,
            attention_bias=True, name="gemma2-small"),
    }


def gemma_configs(*, max_layers: int = 2) -> SearchStrategy[GemmaConfig]:
    """Small Gemma and Gemma 2 configs across the builder's options."""
    from hypothesis import strategies as st

    @st.composite
    def draw_config(draw: st.DrawFn) -> GemmaConfig:
        kv = draw(st.integers(1, 2), label="n_kv_heads")
        group = draw(st.sampled_from([1, 2]), label="group")
        d_head = draw(st.sampled_from([2, 4]), label="d_head")
        patterns: list[tuple[LayerKind, ...]] = [("full",), ("sliding", "full")]
        pattern = draw(st.sampled_from(patterns), label="attention")
        return GemmaConfig(
            n_vocab=draw(st.integers(2, 30)), n_ctx=16, d_model=draw(st.sampled_from([kv * group * d_head, 6])),
            n_layers=draw(st.integers(1, max_layers)), n_heads=kv * group, n_kv_heads=kv, d_head=d_head, d_mlp=draw(st.integers(1, 8)),
            activation=draw(st.sampled_from(["gelu_tanh", "gelu_erf"])), eps=draw(st.sampled_from([1e-6, 1e-2])),
            attention=pattern, sliding_window=draw(st.integers(1, 3)) if "sliding" in pattern else None,
            query_pre_attn_scalar=draw(st.sampled_from([None, 3, 16])), attn_softcap=draw(st.sampled_from([None, 1.0, 50.0])),
            final_softcap=draw(st.sampled_from([None, 2.0, 30.0])), sandwich_norms=draw(st.booleans()),
            attention_bias=draw(st.booleans()), tied=draw(st.booleans()), name="drawn",
        )

    return draw_config()


@register_family(
    "gemma", GemmaConfig,
    "Gemma and Gemma 2: pre-RMSNorm (1 + γ), GeGLU, embedding × √d_model; Gemma 2's sandwich norms, local/global layers, "
    "score and logit soft-capping",
    instances=gemma_instances, configs=gemma_configs,
)
def build_gemma(config: GemmaConfig) -> Architecture:
    """The Gemma-family architecture of ``config``, validated."""
    if not isinstance(config, GemmaConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a GemmaConfig [build_gemma]")
    c = config
    arch = Architecture(c.name, {"ids": token_ids(D.T)}, c.dims(), config=c)
    declare, d = arch.declare, D.d_model
    X = arch.add("one_hot", OneHot(D.n_vocab), {"ids": graph_input("ids")})
    W_E = declare("W_E", (D.n_vocab, d))
    h = arch.add("token_embedding", TokenEmbedding(D.n_vocab, d), {"X": X}, {"W_E": W_E})
    h = arch.add("embed_scale", Scale(d, sympy.sqrt(D.d_model)), {"x": h})
    for layer in range(c.n_layers):
        prefix = f"blocks.{layer}"
        h = arch.add(prefix, pre_norm_block(declare, prefix, arch.dims, c.block(layer), d=d), {"x": h})
    norm_f, p_f = rms_norm(declare, "norm_f", d=d, eps=c.eps, offset=True)
    h = arch.add("norm_f", norm_f, {"x": h}, p_f)
    W_U = ParamRef(W_E.name, transpose=True) if c.tied else declare("W_U", (d, D.n_vocab))
    logits = arch.add("unembed", Affine(d, D.n_vocab, bias=False), {"x": h}, {"W": W_U})
    if c.final_softcap is not None:
        logits = arch.add("softcap", SoftCap(D.n_vocab, cap=c.final_softcap), {"x": logits})
    arch.output("logits", logits)
    return arch.validate()
