"""The original Transformer: Vaswani et al. 2017's encoder–decoder (docs/sources.md §5).

Two token inputs: ``source`` (S positions, the sequence to translate) and ``ids`` (T positions,
the target so far — the decoder's input, as ``ids`` is a decoder-only GPT's):

    E_x = one_hot(source) W_E · c + PE[:S]            c = √d_model when scale_embedding (§3.4), else 1
    memory = encoder_{N−1}(… encoder_0(E_x))          post-LN blocks, self-attention over the source
    E_y = one_hot(ids) W_E' · c + PE[:T]              W_E' = W_E when shared_embeddings (§3.4); else its own, of the target vocabulary
    h = decoder_{M−1}(… decoder_0(E_y, memory))       causal self-attention, cross-attention over memory
    logits = h W_U (+ b_U)                            W_U = W_E'ᵀ when tied (§3.4); b_U ∈ ℝ^{1×n_vocab} when logits_bias

The glossary's n_vocab is the target vocabulary (the width of the logits, the range of ``ids``); the
source's is ``TransformerConfig.n_vocab`` — the same unless ``n_vocab_target`` differs (Marian's
decoder_vocab_size), and then a number in the encoder's one-hot and W_E shapes.

PE is the sinusoidal encoding (§3.5) in the paper's interleaved layout or the concatenated one of
Hugging Face Marian (``positional``). Row t of the logits is the distribution of target token
t + 1 given the source and the target up to t (spec/seq2seq.py). Padding of a batch is no part of
one sequence's function: fast/ masks padded keys in every attention (docs/conventions.md).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import sympy

from spec import dims as D
from spec.architectures.registry import register_family
from spec.blocks import GATE_ACTIVATIONS as FFN_ACTIVATIONS
from spec.blocks import MLP, Attention, Norm
from spec.blocks_seq2seq import post_ln_decoder_block, post_ln_encoder_block
from spec.config import Config, positive
from spec.errors import ConfigError
from spec.graph import Architecture, ParamRef, Source, graph_input
from spec.masks import Causal, Full, Relation
from spec.ops import Add, Affine, OneHot, Scale, SinusoidalPositional, TokenEmbedding
from spec.seq2seq import SOURCE, TARGET
from spec.types import token_ids


@dataclass(frozen=True)
class TransformerConfig(Config):
    """Everything that fixes an encoder–decoder Transformer's function family.

    ``n_layers`` encoder blocks and ``n_decoder_layers`` decoder blocks (None: as many);
    ``n_heads`` heads and an FFN of width ``d_mlp`` in the encoder, ``n_decoder_heads`` and
    ``d_decoder_mlp`` in the decoder (None: the encoder's; Marian's encoder_* and decoder_* keys);
    the FFN's ``activation`` (relu in the paper, silu — swish — in the opus-mt checkpoints); biases on
    every affine map and layer norm when ``bias``; ``n_ctx`` bounds both sequences (the sinusoidal
    encoding defines every position; a bound is what a finite table, such as Hugging Face Marian's,
    gives). A decoder width that differs from the encoder's is a number in Θ's shapes, not a glossary
    symbol (the symbols n_heads, d_head, d_mlp are the encoder's).
    """

    family: ClassVar[str] = "transformer"

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int
    n_heads: int
    n_decoder_layers: int | None = None
    d_mlp: int | None = None
    n_decoder_heads: int | None = None
    d_decoder_mlp: int | None = None
    n_vocab_target: int | None = None
    activation: str = "relu"
    eps: float = 1e-5
    bias: bool = True
    positional: Literal["interleaved", "concatenated"] = "interleaved"
    scale_embedding: bool = True
    shared_embeddings: bool = True
    tied: bool = True
    logits_bias: bool = False
    name: str = field(default="transformer", compare=False)

    def validate(self) -> None:
        positive(self, "n_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "n_decoder_layers", "d_mlp", "n_decoder_heads", "d_decoder_mlp", "n_vocab_target")
        where = f"config {self.name}"
        if self.shared_embeddings and self.target_vocab != self.n_vocab:
            raise ConfigError(
                f"n_vocab_target={self.n_vocab_target}, but expected n_vocab={self.n_vocab} with shared_embeddings=True [{where}]; "
                "one embedding matrix has one vocabulary: set shared_embeddings=False for a separate target vocabulary"
            )
        for key, heads in (("n_heads", self.n_heads), ("n_decoder_heads", self.decoder_heads)):
            if self.d_model % heads:
                raise ConfigError(
                    f"d_model={self.d_model} is not divisible by {key}={heads}, but expected d_head = d_model / {key} "
                    f"to be whole [{where}]; Vaswani et al. use d_k = d_v = d_model / h"
                )
        if self.activation not in FFN_ACTIVATIONS:
            close = ["silu"] if self.activation == "swish" else difflib.get_close_matches(self.activation, list(FFN_ACTIVATIONS), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"activation={self.activation!r}, but expected one of {list(FFN_ACTIVATIONS)} [{where}]{hint}")
        if self.eps < 0:
            raise ConfigError(f"eps={self.eps!r}, but expected a number ≥ 0 [{where}]")

    @property
    def decoder_layers(self) -> int:
        return self.n_layers if self.n_decoder_layers is None else self.n_decoder_layers

    @property
    def target_vocab(self) -> int:
        """The decoder's vocabulary: the rows of its embedding, the width of the logits."""
        return self.n_vocab if self.n_vocab_target is None else self.n_vocab_target

    @property
    def decoder_heads(self) -> int:
        return self.n_heads if self.n_decoder_heads is None else self.n_decoder_heads

    @property
    def head_width(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        return 4 * self.d_model if self.d_mlp is None else self.d_mlp

    @property
    def decoder_mlp_width(self) -> int:
        return self.mlp_width if self.d_decoder_mlp is None else self.d_decoder_mlp


    def dims(self) -> dict[sympy.Symbol, int]:
        return {
            D.n_vocab: self.target_vocab, D.n_ctx: self.n_ctx, D.d_model: self.d_model, D.n_layers: self.n_layers,
            D.n_heads: self.n_heads, D.d_head: self.head_width, D.d_mlp: self.mlp_width,
        }


def _embed(
    arch: Architecture, c: TransformerConfig, side: str, ids: Source, W_E: ParamRef, rows: sympy.Expr, vocab: sympy.Expr,
) -> Source:
    """one_hot(ids) W_E · √d_model (when scaled) + PE, on ``rows`` rows of a ``vocab``-token
    vocabulary; nodes under ``side.``."""
    d = D.d_model
    X = arch.add(f"{side}.one_hot", OneHot(vocab, rows), {"ids": ids})
    E = arch.add(f"{side}.token_embedding", TokenEmbedding(vocab, d, rows), {"X": X}, {"W_E": W_E})
    if c.scale_embedding:
        E = arch.add(f"{side}.scale", Scale(d, sympy.sqrt(d), rows), {"x": E})
    P = arch.add(f"{side}.positional", SinusoidalPositional(d, rows, layout=c.positional), {"ids": ids})
    return arch.add(f"{side}.embed", Add(d, rows), {"a": E, "b": P})


@register_family(
    "transformer", TransformerConfig,
    "the original encoder–decoder Transformer (Vaswani et al. 2017): post-LN blocks, sinusoidal positions, cross-attention",
    kind="encoder-decoder", theorems=("seq2seq_dependency",),
    instances=lambda: {
        "one block each, two heads": TransformerConfig(n_vocab=11, n_ctx=8, d_model=4, n_layers=1, n_heads=2, d_mlp=6, name="transformer-small"),
        "Marian as published: swish, a separate target vocabulary, unequal stacks": TransformerConfig(
            n_vocab=11, n_vocab_target=7, n_ctx=8, d_model=4, n_layers=1, n_decoder_layers=2, n_heads=2, n_decoder_heads=1, d_mlp=6,
            d_decoder_mlp=3, activation="silu", positional="concatenated", shared_embeddings=False, logits_bias=True,
            name="transformer-marian-small"),
    },
)
def build_transformer(config: TransformerConfig) -> Architecture:
    """The encoder–decoder Transformer of ``config``, validated."""
    if not isinstance(config, TransformerConfig):
        raise ConfigError(
            f"config of type {type(config).__name__}, but expected a TransformerConfig [build_transformer]; "
            "e.g. TransformerConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=2, n_heads=2)"
        )
    c = config
    arch = Architecture(c.name, {SOURCE: token_ids(D.S), TARGET: token_ids(D.T)}, c.dims(), config=c)
    declare = arch.declare
    d = D.d_model
    norm = Norm("layer", c.eps, c.bias)

    # the glossary's symbols are the encoder's widths and the target's vocabulary; the other side's, when they differ, are numbers
    def own(symbol: sympy.Symbol, value: int, shared: int) -> sympy.Expr:
        return symbol if value == shared else sympy.Integer(value)

    def attention(mask: Relation, heads: int) -> Attention:
        width = c.d_model // heads
        return Attention(own(D.n_heads, heads, c.n_heads), own(D.d_head, width, c.head_width), mask, 1 / sympy.sqrt(sympy.Integer(width)), bias=c.bias)

    ffn = MLP(D.d_mlp, c.activation, c.bias)
    decoder_ffn = MLP(own(D.d_mlp, c.decoder_mlp_width, c.mlp_width), c.activation, c.bias)
    source_vocab = own(D.n_vocab, c.n_vocab, c.target_vocab)
    W_E = declare("W_E", (D.n_vocab, d)) if c.shared_embeddings else declare("encoder.W_E", (source_vocab, d))
    x = _embed(arch, c, "encoder", graph_input(SOURCE), W_E, D.S, source_vocab)
    for layer in range(c.n_layers):
        prefix = f"encoder.blocks.{layer}"
        block = post_ln_encoder_block(declare, prefix, arch.dims, d=d, attention=attention(Full(), c.n_heads), mlp=ffn, norm=norm, rows=D.S)
        x = arch.add(prefix, block, {"x": x})

    W_E_target = W_E if c.shared_embeddings else declare("decoder.W_E", (D.n_vocab, d))
    y = _embed(arch, c, "decoder", graph_input(TARGET), W_E_target, D.T, D.n_vocab)
    for layer in range(c.decoder_layers):
        prefix = f"decoder.blocks.{layer}"
        block = post_ln_decoder_block(
            declare, prefix, arch.dims, d=d, self_attention=attention(Causal(), c.decoder_heads),
            cross_attention=attention(Full(), c.decoder_heads), rows=D.T, memory_rows=D.S, mlp=decoder_ffn, norm=norm,
        )
        y = arch.add(prefix, block, {"x": y, "memory": x})

    W_U = ParamRef(W_E_target.name, transpose=True) if c.tied else declare("W_U", (d, D.n_vocab))
    params = {"W": W_U}
    if c.logits_bias:  # stored (1, n_vocab), as Hugging Face Marian's final_logits_bias; read as its row 0
        params["b"] = ParamRef(declare("b_U", (1, D.n_vocab)).name, index=(0,))
    arch.output("logits", arch.add("unembed", Affine(d, D.n_vocab, c.logits_bias), {"x": y}, params))
    return arch.validate()
