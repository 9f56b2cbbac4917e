"""The decoder-only GPT: Becker-Kahn's architecture with GPT-2 / GPT-3 conventions.

    ids ──one_hot──▶ X ──token_embedding(W_E)──▶ E ─┐
    ids ──positional(W_P)─────────────────────────▶ P ─┴─add──▶ h₀
    h_{l+1} = block_l(h_l)         (pre-LN: h + attn(LN₁ h), then + mlp(LN₂ ·))
    logits = LN_f(h_L) · W_U       (W_U = W_Eᵀ when tied)

Everything real GPTs vary is an option of :class:`GPTConfig`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import sympy

from spec import dims as D
from spec.architectures.registry import register_family
from spec.blocks import ACTIVATIONS, layer_norm, pre_ln_block
from spec.config import Config, positive
from spec.errors import ConfigError
from spec.graph import Architecture, ParamRef, graph_input
from spec.masks import Banded, Causal, Relation
from spec.ops import Add, Affine, LearnedPositional, OneHot, SinusoidalPositional, TokenEmbedding
from spec.types import token_ids

AttentionKind = Literal["dense", "banded"]


@dataclass(frozen=True)
class GPTConfig(Config):
    """Everything that fixes a GPT's function family.

    ``d_head`` defaults to d_model / n_heads (which must then divide); ``d_mlp`` to 4·d_model.
    ``attention`` is a pattern of layer kinds repeated along depth: ``("dense",)`` is GPT-2,
    ``("dense", "banded")`` is GPT-3's alternation, whose band width is not published
    (``band_width`` is ours to choose; see the presets' notes).
    ``attn_scale`` is the score scale (None: 1/√d_head); ``scale_by_inverse_layer`` divides
    layer l's scale by l + 1 (Hugging Face ``scale_attn_by_inverse_layer_idx``).
    Every field is type-checked when the config is made (spec/config.py).
    """

    family: ClassVar[str] = "gpt"

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    d_head: int | None = None
    d_mlp: int | None = None
    activation: str = "gelu_tanh"
    eps: float = 1e-5
    bias: bool = True
    tied: bool = True
    positional: Literal["learned", "sinusoidal"] = "learned"
    attention: tuple[AttentionKind, ...] = ("dense",)
    band_width: int | None = None
    attn_scale: float | None = None
    scale_by_inverse_layer: bool = False
    name: str = field(default="gpt", compare=False)

    def validate(self) -> None:
        positive(self, "n_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_head", "d_mlp", "band_width")
        where = f"config {self.name}"
        if self.d_head is None and self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}, but expected "
                f"d_head = d_model / n_heads to be whole [{where}]; "
                "set d_head explicitly (n_heads·d_head may differ from d_model)"
            )
        if self.activation not in ACTIVATIONS:
            close = difflib.get_close_matches(self.activation, list(ACTIVATIONS), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"activation={self.activation!r}, but expected one of {list(ACTIVATIONS)} [{where}]{hint}")
        if self.eps < 0:
            raise ConfigError(f"eps={self.eps!r}, but expected a number ≥ 0 [{where}]")
        if not self.attention:
            raise ConfigError(f"attention=(), but expected a non-empty pattern of 'dense'/'banded' [{where}]")
        if "banded" in self.attention and self.band_width is None:
            raise ConfigError(f"band_width=None, but expected a whole number ≥ 1 for banded layers [{where}]; set band_width")
        if self.attn_scale is not None and not self.attn_scale > 0:
            raise ConfigError(f"attn_scale={self.attn_scale!r}, but expected a number > 0 or None [{where}]")

    def graph_size(self) -> int:
        """Per block: the block, 6 sublayer nodes, 3 MLP nodes, attention's concat and W_O, and 7
        nodes per head (the head and its six primitives); plus 8 outside the blocks."""
        return self.n_layers * (12 + 7 * self.n_heads) + 8

    @property
    def head_width(self) -> int:
        """d_head, resolved."""
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        """d_mlp, resolved."""
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    def layer_kind(self, layer: int) -> AttentionKind:
        """Dense or banded, for block ``layer``."""
        return self.attention[layer % len(self.attention)]

    def mask(self, layer: int) -> Relation:
        """Block ``layer``'s attention mask."""
        if self.layer_kind(layer) == "banded":
            if self.band_width is None:  # excluded by validate
                raise ConfigError(f"band_width=None, but expected a whole number [config {self.name}]")
            return Banded(self.band_width)
        return Causal()

    def scale(self, layer: int) -> sympy.Expr:
        """Block ``layer``'s attention score scale, exactly."""
        base = (
            1 / sympy.sqrt(sympy.Integer(self.head_width))
            if self.attn_scale is None
            else sympy.nsimplify(self.attn_scale)
        )
        return base / (layer + 1) if self.scale_by_inverse_layer else base

    def dims(self) -> dict[sympy.Symbol, int]:
        """Values of the glossary's symbols."""
        return {
            D.n_vocab: self.n_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model,
            D.n_layers: self.n_layers, D.n_heads: self.n_heads, D.d_head: self.head_width,
            D.d_mlp: self.mlp_width,
        }


@register_family("gpt", GPTConfig, "decoder-only GPT: GPT-2 and GPT-3 conventions (learned or sinusoidal positions, pre-LN, dense or banded attention)")
def build_gpt(config: GPTConfig) -> Architecture:
    """The GPT architecture of ``config``, validated."""
    if not isinstance(config, GPTConfig):
        raise ConfigError(
            f"config of type {type(config).__name__}, but expected a GPTConfig [build_gpt]; "
            "e.g. build_gpt(GPTConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=2, n_heads=2))"
        )
    c = config
    arch = Architecture(c.name, {"ids": token_ids(D.T)}, c.dims(), config=c)
    declare = arch.declare
    d = D.d_model
    ids = graph_input("ids")

    X = arch.add("one_hot", OneHot(D.n_vocab), {"ids": ids})
    W_E = declare("W_E", (D.n_vocab, d))
    E = arch.add("token_embedding", TokenEmbedding(D.n_vocab, d), {"X": X}, {"W_E": W_E})
    if c.positional == "learned":
        P = arch.add("positional", LearnedPositional(D.n_ctx, d), {"ids": ids}, {"W_P": declare("W_P", (D.n_ctx, d))})
    else:
        P = arch.add("positional", SinusoidalPositional(d), {"ids": ids})
    h = arch.add("embed", Add(d), {"a": E, "b": P})

    for layer in range(c.n_layers):
        prefix = f"blocks.{layer}"
        block = pre_ln_block(
            declare, prefix, arch.dims, d=d, n_heads=D.n_heads, d_head=D.d_head, d_mlp=D.d_mlp,
            mask=c.mask(layer), scale=c.scale(layer), eps=c.eps, activation=c.activation,
            attn_bias=c.bias, mlp_bias=c.bias, ln_bias=c.bias,
        )
        h = arch.add(prefix, block, {"x": h})

    ln_f, p_f = layer_norm(declare, "ln_f", d=d, eps=c.eps, bias=c.bias)
    h = arch.add("ln_f", ln_f, {"x": h}, p_f)
    W_U = ParamRef(W_E.name, transpose=True) if c.tied else declare("W_U", (d, D.n_vocab))
    logits = arch.add("unembed", Affine(d, D.n_vocab, bias=False), {"x": h}, {"W": W_U})
    arch.output("logits", logits)
    return arch.validate()
