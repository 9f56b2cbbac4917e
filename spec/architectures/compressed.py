"""What the three compressed decoder-only GPTs of Suresh & P. (docs/sources.md §2) share: their
config fields, the embedding, a block at a given width, the final norm and head, the comparison
with their baseline, and the presets at the authors' configuration.

The three families live in their own modules (parallel_gpt.py, linear_gpt.py, conv_gpt.py); each
is a builder made of the spec's existing composites (spec/blocks.py) plus, for ParallelGPT, the
sigmoid gate (spec/ops/gate.py) and, for ConvGPT, the 1-D convolution (spec/ops/conv1d.py).

Widths that change along depth are sympy expressions in d_model (d_model/2, d_model/4, …), so
the symbolic count (``gptspec params --symbolic``) is a formula in the glossary's dims.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from spec import dims as D
from spec.architectures.gpt import GPTConfig
from spec.blocks import ACTIVATIONS, MLP, Attention, Block, Norm, layer_norm, pre_norm_block
from spec.config import Config, positive
from spec.counting import count
from spec.errors import ConfigError
from spec.graph import Architecture, Composite, ParamRef, Source, graph_input
from spec.masks import Causal
from spec.ops import Add, Affine, LearnedPositional, OneHot, TokenEmbedding
from spec.types import token_ids

AUTHORS_VOCAB = 50304
"""The GPT-2 vocabulary (50,257) padded to a multiple of 64, as the authors' configuration has it."""


@dataclass(frozen=True)
class CompressedGPTConfig(Config):
    """The fields the three compressed GPTs share with their baseline, at the authors'
    configuration by default: no biases in attention, MLP or layer norm; untied embedding and head;
    learned positions; GELU (the exact erf form of PyTorch's ``nn.GELU()``; the count does not
    depend on it); d_mlp = ``mlp_ratio`` × the block's width. Not registered itself: each family
    derives its config from it."""

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    mlp_ratio: int = 4
    activation: str = "gelu_erf"
    eps: float = 1e-5
    bias: bool = False
    tied: bool = False
    name: str = field(default="compressed-gpt", compare=False)

    def validate(self) -> None:
        positive(self, "n_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "mlp_ratio")
        where = f"config {self.name}"
        if self.activation not in ACTIVATIONS:
            close = difflib.get_close_matches(self.activation, list(ACTIVATIONS), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"activation={self.activation!r}, but expected one of {list(ACTIVATIONS)} [{where}]{hint}")
        if self.eps < 0:
            raise ConfigError(f"eps={self.eps!r}, but expected a number ≥ 0 [{where}]")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}, but expected d_head = d_model / n_heads "
                f"to be whole [{where}]"
            )

    def dims(self) -> dict[sympy.Symbol, int]:
        """The glossary's dims at the full width (blocks at reduced widths use expressions in them)."""
        return {
            D.n_vocab: self.n_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model, D.n_layers: self.n_layers,
            D.n_heads: self.n_heads, D.d_head: self.d_model // self.n_heads, D.d_mlp: self.mlp_ratio * self.d_model,
        }

    def baseline(self) -> GPTConfig:
        """The decoder-only GPT these variants compress: the same vocabulary, context, width, depth,
        heads, biases, tying and activation, every block at the full width."""
        return GPTConfig(
            n_vocab=self.n_vocab, n_ctx=self.n_ctx, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
            d_mlp=self.mlp_ratio * self.d_model, activation=self.activation, eps=self.eps, bias=self.bias, tied=self.tied,
            name=f"{self.name} baseline",
        )


def embed(arch: Architecture, c: CompressedGPTConfig) -> Source:
    """h₀ = one_hot(ids) W_E + W_P[:T] at width d_model."""
    ids = graph_input("ids")
    X = arch.add("one_hot", OneHot(D.n_vocab), {"ids": ids})
    E = arch.add("token_embedding", TokenEmbedding(D.n_vocab, D.d_model), {"X": X}, {"W_E": arch.declare("W_E", (D.n_vocab, D.d_model))})
    P = arch.add("positional", LearnedPositional(D.n_ctx, D.d_model), {"ids": ids}, {"W_P": arch.declare("W_P", (D.n_ctx, D.d_model))})
    return arch.add("embed", Add(D.d_model), {"a": E, "b": P})


def start(c: CompressedGPTConfig) -> Architecture:
    """An empty architecture for ``c`` with the token input ``ids``."""
    return Architecture(c.name, {"ids": token_ids(D.T)}, c.dims(), config=c)


def block(arch: Architecture, c: CompressedGPTConfig, prefix: str, width: sympy.Expr) -> Composite:
    """A GPT block at ``width`` (an expression in d_model): n_heads heads of width/n_heads, an MLP
    of mlp_ratio·width, causal attention scaled by 1/√d_head."""
    d_head = width / D.n_heads
    head_width = int(sympy.sympify(d_head).subs(arch.dims))
    attention = Attention(D.n_heads, d_head, Causal(), 1 / sympy.sqrt(sympy.Integer(head_width)), bias=c.bias)
    spec = Block(attention, Norm("layer", c.eps, c.bias), MLP(c.mlp_ratio * width, c.activation, c.bias))
    return pre_norm_block(arch.declare, prefix, arch.dims, spec, d=width)


def head(arch: Architecture, c: CompressedGPTConfig, h: Source, width: sympy.Expr) -> Architecture:
    """The final layer norm and the unembedding at ``width``; declares the output and validates."""
    ln_f, params = layer_norm(arch.declare, "ln_f", d=width, eps=c.eps, bias=c.bias)
    h = arch.add("ln_f", ln_f, {"x": h}, params)
    if c.tied and sympy.simplify(width - D.d_model) != 0:
        raise ConfigError(
            f"tied=true, but expected an unembedding at the embedding's width d_model={c.d_model} [config {c.name}]; "
            "the final width differs, so W_Eᵀ cannot be the head: set tied=false"
        )
    W_U = ParamRef("W_E", transpose=True) if c.tied else arch.declare("W_U", (width, D.n_vocab))
    arch.output("logits", arch.add("unembed", Affine(width, D.n_vocab, bias=False), {"x": h}, {"W": W_U}))
    return arch.validate()


def reduction_report(published: str) -> Callable[[Architecture], list[str]]:
    """A family ``report`` hook: this model's count against its baseline's (the same config with
    every block at full width, :meth:`CompressedGPTConfig.baseline`), and the paper's figure."""

    def report(arch: Architecture) -> list[str]:
        from spec.architectures.registry import build

        config = arch.config
        if not isinstance(config, CompressedGPTConfig):
            return []
        mine, base = count(arch), count(build(config.baseline()))
        change = (base - mine) / base
        direction = "fewer" if mine <= base else "more"
        return [
            f"against its baseline (the decoder-only GPT with the same n_vocab, n_ctx, d_model, n_layers, n_heads): "
            f"{mine:,} vs {base:,} parameters, {abs(change):.1%} {direction} ({published})",
        ]

    return report
