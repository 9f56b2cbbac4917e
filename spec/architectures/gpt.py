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
from typing import TYPE_CHECKING, ClassVar, Literal

import sympy

from spec import dims as D
from spec.architectures.registry import register_family
from spec.blocks import ACTIVATIONS, MLP, Attention, Block, Norm, layer_norm, pre_norm_block
from spec.config import Config, positive
from spec.errors import ConfigError
from spec.graph import Architecture, ParamRef, graph_input
from spec.masks import Banded, Causal, Relation
from spec.ops import Add, Affine, LearnedPositional, OneHot, SinusoidalPositional, TokenEmbedding
from spec.types import token_ids

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

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

    def block(self, layer: int) -> Block:
        """Block ``layer``: pre-LN, its mask and scale, one bias switch for every projection and norm."""
        attention = Attention(D.n_heads, D.d_head, self.mask(layer), self.scale(layer), bias=self.bias)
        return Block(attention, Norm("layer", self.eps, self.bias), MLP(D.d_mlp, self.activation, self.bias))

    def dims(self) -> dict[sympy.Symbol, int]:
        """Values of the glossary's symbols."""
        return {
            D.n_vocab: self.n_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model,
            D.n_layers: self.n_layers, D.n_heads: self.n_heads, D.d_head: self.head_width,
            D.d_mlp: self.mlp_width,
        }


def gpt_instances() -> dict[str, GPTConfig]:
    """GPT's fixed hard instances: dense and banded layers in one model, learned and sinusoidal
    positions, every activation, biases or none, tied or untied, n_heads·d_head ≠ d_model, a
    scale other than 1/√d_head and one divided by the layer's index."""
    return {
        "dense+banded, learned, gelu_tanh, biases, untied": GPTConfig(
            n_vocab=5, n_ctx=8, d_model=4, n_layers=2, n_heads=2, d_head=2, d_mlp=3, attention=("dense", "banded"), band_width=2,
            tied=False, name="gpt-dense-banded"),
        "banded, sinusoidal, gelu_erf, no biases, tied, n_heads·d_head ≠ d_model": GPTConfig(
            n_vocab=5, n_ctx=8, d_model=3, n_layers=1, n_heads=1, d_head=2, d_mlp=2, attention=("banded",), band_width=2,
            positional="sinusoidal", activation="gelu_erf", bias=False, name="gpt-banded-sinusoidal"),
        "relu, two heads, scale 0.5 / layer": GPTConfig(
            n_vocab=5, n_ctx=8, d_model=4, n_layers=2, n_heads=2, d_mlp=2, activation="relu", attn_scale=0.5,
            scale_by_inverse_layer=True, name="gpt-relu-scaled"),
    }


def gpt_configs(*, max_layers: int = 2, max_heads: int = 3, max_vocab: int = 40, banded: bool | None = None) -> SearchStrategy[GPTConfig]:
    """Small valid GPT configs covering every option of :class:`GPTConfig`: one head, d_head = 1,
    n_heads·d_head ≠ d_model, dense / banded / mixed layers (only banded or only dense when
    ``banded`` says so), every activation, biases or none, tied or untied, both positional
    encodings, scales other than 1/√d_head."""
    from hypothesis import strategies as st

    @st.composite
    def draw_config(draw: st.DrawFn) -> GPTConfig:
        n_heads = draw(st.integers(1, max_heads), label="n_heads")
        d_head = draw(st.integers(1, 4), label="d_head")
        d_model = draw(st.sampled_from([n_heads * d_head, max(1, n_heads * d_head + draw(st.integers(-1, 2)))]), label="d_model")
        patterns: list[tuple[AttentionKind, ...]] = [("dense",), ("dense", "banded"), ("banded",)]
        if banded is not None:
            patterns = [("banded",)] if banded else [("dense",)]
        pattern = draw(st.sampled_from(patterns), label="attention")
        return GPTConfig(
            n_vocab=draw(st.integers(2, max_vocab), label="n_vocab"),
            n_ctx=draw(st.integers(8, 16), label="n_ctx"),
            d_model=d_model,
            n_layers=draw(st.integers(1, max_layers), label="n_layers"),
            n_heads=n_heads,
            d_head=d_head,
            d_mlp=draw(st.integers(1, 12), label="d_mlp"),
            activation=draw(st.sampled_from(["gelu_tanh", "gelu_erf", "relu"]), label="activation"),
            eps=draw(st.sampled_from([1e-5, 1e-6, 0.1]), label="eps"),
            bias=draw(st.booleans(), label="bias"),
            tied=draw(st.booleans(), label="tied"),
            positional=draw(st.sampled_from(["learned", "sinusoidal"]), label="positional"),
            attention=pattern,
            band_width=draw(st.integers(1, 4), label="band_width") if "banded" in pattern else None,
            attn_scale=draw(st.sampled_from([None, 0.5, 2.0]), label="attn_scale"),
            scale_by_inverse_layer=draw(st.booleans(), label="scale_by_inverse_layer"),
            name="drawn",
        )

    return draw_config()


@register_family(
    "gpt", GPTConfig, "decoder-only GPT: GPT-2 and GPT-3 conventions (learned or sinusoidal positions, pre-LN, dense or banded attention)",
    instances=gpt_instances, configs=gpt_configs,
)
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
        h = arch.add(prefix, pre_norm_block(declare, prefix, arch.dims, c.block(layer), d=d), {"x": h})

    ln_f, p_f = layer_norm(declare, "ln_f", d=d, eps=c.eps, bias=c.bias)
    h = arch.add("ln_f", ln_f, {"x": h}, p_f)
    W_U = ParamRef(W_E.name, transpose=True) if c.tied else declare("W_U", (d, D.n_vocab))
    logits = arch.add("unembed", Affine(d, D.n_vocab, bias=False), {"x": h}, {"W": W_U})
    arch.output("logits", logits)
    return arch.validate()
