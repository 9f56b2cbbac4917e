"""The Llama family: Llama 2 and 3, Mistral, Qwen2 — decoder-only, no positional table.

    ids ──one_hot──▶ X ──token_embedding(W_E)──▶ h₀
    h_{l+1} = block_l(h_l)       (pre-RMSNorm: h + attn(RMSNorm₁ h), then + gated_mlp(RMSNorm₂ ·))
    attn: grouped-query attention, Q and K rotated at their positions (RoPE), causal or sliding window
    logits = RMSNorm_f(h_L) · W_U   (W_U = W_Eᵀ when tied)

A separate builder from GPT's (docs/architecture.md, "Separate decoder builders, shared blocks"):
the two share the block values and composites of spec/blocks.py, not a config — a GPT config has
no rotary base, a Llama config no learned positions, and one builder over both would be a union
of options where most combinations mean nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import sympy

from spec import dims as D
from spec.architectures.registry import register_family
from spec.blocks import GATE_ACTIVATIONS, MLP, Attention, Block, Norm, pre_norm_block, rms_norm
from spec.config import Config, positive
from spec.errors import ConfigError
from spec.graph import Architecture, ParamRef, graph_input
from spec.masks import Banded, Causal, Relation
from spec.ops import Affine, OneHot, Rotary, TokenEmbedding
from spec.types import token_ids

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

LayerKind = Literal["full", "sliding"]


@dataclass(frozen=True)
class LlamaConfig(Config):
    """Everything that fixes a Llama-family model's function.

    ``n_kv_heads`` (default n_heads) must divide ``n_heads``: query head h reads key/value head
    ⌊h / (n_heads / n_kv_heads)⌋. ``d_head`` defaults to d_model / n_heads and may be anything
    even (rotary pairs features). ``attention`` is a pattern of layer kinds repeated along depth
    — ``("full",)`` is Llama, ``("sliding",)`` Mistral 7B v0.1 with ``sliding_window`` W (position
    t sees t − W < s ≤ t) — or one kind per layer (Qwen2's layer_types).
    Rotary: ``rope_base`` θ, ``rope_pairing`` (``half``: Hugging Face; ``interleaved``: Meta's
    original code), ``rope_scaling`` (none, linear, llama3; the others are refused by name) with ``rope_factor``, ``rope_low_freq_factor``,
    ``rope_high_freq_factor`` and ``rope_original_n_ctx`` (llama3; default n_ctx).
    Biases are off unless switched on per projection: ``qkv_bias`` (Qwen2), ``out_bias``,
    ``mlp_bias``. ``activation`` is the gate's (SwiGLU: silu).
    """

    family: ClassVar[str] = "llama"

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    d_mlp: int
    n_kv_heads: int | None = None
    d_head: int | None = None
    activation: str = "silu"
    eps: float = 1e-6
    rope_base: float = 10000.0
    rope_pairing: Literal["half", "interleaved"] = "half"
    rope_scaling: str = "none"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_n_ctx: int | None = None
    attention: tuple[LayerKind, ...] = ("full",)
    sliding_window: int | None = None
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    tied: bool = False
    name: str = field(default="llama", compare=False)

    def validate(self) -> None:
        positive(self, "n_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_mlp", "n_kv_heads", "d_head",
                 "rope_original_n_ctx", "sliding_window")
        where = f"config {self.name}"
        if self.d_head is None and self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}, but expected d_head = d_model / "
                f"n_heads to be whole [{where}]; set d_head explicitly"
            )
        if self.head_width % 2:
            raise ConfigError(f"d_head={self.head_width}, but expected an even width [{where}]; rotary embedding rotates pairs of features")
        if self.n_heads % self.kv_heads:
            raise ConfigError(
                f"n_kv_heads={self.kv_heads}, but expected a divisor of n_heads={self.n_heads} [{where}]; each key/value "
                "head serves n_heads / n_kv_heads query heads"
            )
        if self.activation not in GATE_ACTIVATIONS:
            raise ConfigError(f"activation={self.activation!r}, but expected one of {list(GATE_ACTIVATIONS)} [{where}]")
        if self.eps < 0:
            raise ConfigError(f"eps={self.eps!r}, but expected a number ≥ 0 [{where}]")
        if not self.attention:
            raise ConfigError(f"attention=(), but expected a non-empty pattern of 'full'/'sliding' [{where}]")
        if "sliding" in self.attention and self.sliding_window is None:
            raise ConfigError(f"sliding_window=None, but expected a whole number ≥ 1 for sliding layers [{where}]; set sliding_window")
        if not self.rope_base > 0:
            raise ConfigError(f"rope_base={self.rope_base!r}, but expected a number > 0 [{where}]; Llama 2 uses 10000, Llama 3 500000")
        try:
            self.rotary()  # the op checks the scaling by name, its factors and the llama3 thresholds
        except ConfigError as error:
            message = re.sub(r"\b(base|pairing|scaling|factor|low_freq_factor|high_freq_factor|original_n_ctx)=", r"rope_\1=", str(error))
            raise ConfigError(message.replace("[Rotary]", f"[{where}]")) from None


    @property
    def head_width(self) -> int:
        """d_head, resolved."""
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """n_kv_heads, resolved."""
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    def layer_kind(self, layer: int) -> LayerKind:
        """Full or sliding, for block ``layer``."""
        return self.attention[layer % len(self.attention)]

    def mask(self, layer: int) -> Relation:
        """Block ``layer``'s attention mask: causal, or the sliding window t − W < s ≤ t."""
        if self.layer_kind(layer) == "sliding":
            if self.sliding_window is None:  # excluded by validate
                raise ConfigError(f"sliding_window=None, but expected a whole number [config {self.name}]")
            return Banded(self.sliding_window)
        return Causal()

    def scale(self) -> sympy.Expr:
        """The attention score scale 1/√d_head, exactly."""
        return 1 / sympy.sqrt(sympy.Integer(self.head_width))

    def rotary(self) -> Rotary:
        """The rotary op every head applies to its Q and K (its width and rows are the head's)."""
        return Rotary(
            D.d_head, self.rope_base, self.rope_pairing, self.rope_scaling, self.rope_factor,
            self.rope_low_freq_factor, self.rope_high_freq_factor,
            self.rope_original_n_ctx if self.rope_original_n_ctx is not None else self.n_ctx,
        )

    def block(self, layer: int) -> Block:
        """Block ``layer``: pre-RMSNorm, grouped-query attention rotated at its positions, its mask,
        a gated MLP, a bias switch per projection."""
        attention = Attention(
            D.n_heads, D.d_head, self.mask(layer), self.scale(), n_kv_heads=D.n_kv_heads, transforms=(self.rotary(),),
            bias=self.qkv_bias, out_bias=self.out_bias,
        )
        return Block(attention, Norm("rms", self.eps), MLP(D.d_mlp, self.activation, self.mlp_bias, gated=True))

    def dims(self) -> dict[sympy.Symbol, int]:
        """Values of the glossary's symbols."""
        return {
            D.n_vocab: self.n_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model, D.n_layers: self.n_layers,
            D.n_heads: self.n_heads, D.n_kv_heads: self.kv_heads, D.d_head: self.head_width, D.d_mlp: self.d_mlp,
        }


def llama_instances() -> dict[str, LlamaConfig]:
    """The Llama family's fixed hard instances: multi-query and 4:2 grouped queries, sliding and
    full layers in one model, both pairings, llama3 rotary scaling, every bias, tied."""
    return {
        "sliding, multi-query, SwiGLU": LlamaConfig(
            n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=2, n_kv_heads=1, d_head=2, d_mlp=2, attention=("sliding",),
            sliding_window=2, name="llama-sliding-mqa"),
        "GQA 4:2, sliding then full, llama3 interleaved rotary, biases, tied": LlamaConfig(
            n_vocab=7, n_ctx=12, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_head=2, d_mlp=3, attention=("sliding", "full"),
            sliding_window=3, rope_pairing="interleaved", rope_scaling="llama3", rope_factor=8.0, rope_original_n_ctx=8,
            qkv_bias=True, out_bias=True, mlp_bias=True, tied=True, name="llama-gqa-llama3"),
    }


def llama_configs(*, max_layers: int = 2) -> SearchStrategy[LlamaConfig]:
    """Small Llama-family configs across the builder's options: GQA ratios 1, 2, 4 and
    multi-query, d_head ≠ d_model / n_heads, both pairings, every scaling, full and sliding
    layers (windows shorter than the sequences), biases per projection, tied and untied."""
    from hypothesis import strategies as st

    @st.composite
    def draw_config(draw: st.DrawFn) -> LlamaConfig:
        kv = draw(st.integers(1, 3), label="n_kv_heads")
        group = draw(st.sampled_from([1, 2, 4]), label="group")
        d_head = draw(st.sampled_from([2, 4]), label="d_head")
        d_model = draw(st.sampled_from([kv * group * d_head, draw(st.integers(2, 9))]), label="d_model")
        patterns: list[tuple[LayerKind, ...]] = [("full",), ("sliding",), ("sliding", "full")]
        pattern = draw(st.sampled_from(patterns), label="attention")
        scaling = draw(st.sampled_from(["none", "linear", "llama3"]), label="rope_scaling")
        return LlamaConfig(
            n_vocab=draw(st.integers(2, 30)), n_ctx=16, d_model=d_model, n_layers=draw(st.integers(1, max_layers)),
            n_heads=kv * group, n_kv_heads=kv, d_head=d_head, d_mlp=draw(st.integers(1, 8)),
            activation=draw(st.sampled_from(sorted(GATE_ACTIVATIONS))), eps=draw(st.sampled_from([1e-6, 1e-2])),
            rope_base=draw(st.sampled_from([10000.0, 2.0, 500000.0])), rope_pairing=draw(st.sampled_from(["half", "interleaved"])),
            rope_scaling=scaling, rope_factor=draw(st.sampled_from([2.0, 8.0])) if scaling != "none" else 1.0,
            rope_high_freq_factor=8.0, rope_original_n_ctx=32,
            attention=pattern, sliding_window=draw(st.integers(1, 3)) if "sliding" in pattern else None,
            qkv_bias=draw(st.booleans()), out_bias=draw(st.booleans()), mlp_bias=draw(st.booleans()), tied=draw(st.booleans()),
            name="drawn",
        )

    return draw_config()


@register_family(
    "llama", LlamaConfig,
    "Llama family: pre-RMSNorm, rotary positions, SwiGLU, grouped-query and sliding-window attention (Llama 2/3, Mistral, Qwen2)",
    instances=llama_instances, configs=llama_configs,
)
def build_llama(config: LlamaConfig) -> Architecture:
    """The Llama-family architecture of ``config``, validated."""
    if not isinstance(config, LlamaConfig):
        raise ConfigError(
            f"config of type {type(config).__name__}, but expected a LlamaConfig [build_llama]; e.g. "
            "build_llama(LlamaConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=40))"
        )
    c = config
    arch = Architecture(c.name, {"ids": token_ids(D.T)}, c.dims(), config=c)
    declare = arch.declare
    d = D.d_model

    X = arch.add("one_hot", OneHot(D.n_vocab), {"ids": graph_input("ids")})
    W_E = declare("W_E", (D.n_vocab, d))
    h = arch.add("token_embedding", TokenEmbedding(D.n_vocab, d), {"X": X}, {"W_E": W_E})
    for layer in range(c.n_layers):
        prefix = f"blocks.{layer}"
        h = arch.add(prefix, pre_norm_block(declare, prefix, arch.dims, c.block(layer), d=d), {"x": h})

    norm_f, p_f = rms_norm(declare, "norm_f", d=d, eps=c.eps)
    h = arch.add("norm_f", norm_f, {"x": h}, p_f)
    W_U = ParamRef(W_E.name, transpose=True) if c.tied else declare("W_U", (d, D.n_vocab))
    arch.output("logits", arch.add("unembed", Affine(d, D.n_vocab, bias=False), {"x": h}, {"W": W_U}))
    return arch.validate()
