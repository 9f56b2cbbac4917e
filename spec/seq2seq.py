"""Sequence-to-sequence semantics: what an encoder–decoder's logits mean, how a target is scored
given a source, how it is generated, and what padding a batch means. Pure functions and values;
no model is evaluated here (reference/seq2seq.py and fast/lm.py do that).

An encoder–decoder (spec/architectures/transformer.py) maps a source x = x₀ … x_{S−1} (input
``source``) and a target y = y₀ … y_{T−1} (input ``ids``) to logits z = f_θ(x, y) ∈ ℝ^{T×n_vocab};
row t is the distribution of the *next* target token given the whole source and the target up
to t:

    p(y_{t+1} = v | y₀ … y_t, x) = softmax(z_t)_v.

Row t depends on y₀ … y_t only (the decoder's self-attention is causal) and on every source
position (the encoder and the cross-attention see all of x) — the theorem ``seq2seq_dependency``
(docs/proofs.md). So, exactly as for a decoder-only model (spec/lm.py), with y₀ given (the
decoder start token — Marian uses its pad id) and not scored:

    token log-probabilities  ℓ_t = log softmax(z_t)[y_{t+1}]         t = 0 … T−2
    log-likelihood           log p(y | x) = Σ_t ℓ_t                  (T ≤ 1: 0)

computed by :func:`spec.lm.token_log_probs` and :func:`spec.lm.log_likelihood` on the logits of
(x, y). Generation from a source x and a target prompt y₀ … y_{P−1} (P ≥ 1, usually the start
token alone) for n steps: y_{P+s} = choose(f_θ(x, y₀ … y_{P+s−1})_{P+s−1}) for s = 0 … n−1, with
the next-token rule of spec/lm.py (greedy or sampled, :class:`spec.lm.Sampler`), stopping after a
token in the stop set; the source is fixed throughout and P + n ≤ n_ctx, S ≤ n_ctx.

**Padding** is no part of one pair's function: f_θ is defined on unpadded sequences. A batch pads
sources and targets to common lengths with masks of real positions; an implementation must give,
at every real target row, f_θ of the row's real source and real target. Equivalently (and this is
how the padded batch is written in the spec): every attention whose keys are a padded sequence's
positions intersects its mask with that sequence's key padding (:func:`with_key_padding`), so the
encoder never attends to padded source positions, the cross-attention never reads them, and the
decoder's self-attention never reads padded target positions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import sympy

from spec.dims import concrete
from spec.errors import ShapeError
from spec.graph import Architecture, Composite, Graph, graph_input
from spec.masks import Intersection, KeyPadding
from spec.op import Op
from spec.ops import MaskedSoftmax, OneHot
from spec.theta import token_array

SOURCE = "source"
"""The encoder's token input (S positions)."""
TARGET = "ids"
"""The decoder's token input (T positions): the target so far, as a decoder-only model's ``ids``."""


def is_seq2seq(arch: Architecture) -> bool:
    """Whether ``arch`` reads a source sequence besides its target ``ids``."""
    return SOURCE in arch.inputs and TARGET in arch.inputs


def vocabulary(arch: Architecture, name: str) -> int:
    """How many token ids input ``name`` takes: the vocabulary of the one-hot that reads it (an
    encoder's source vocabulary may differ from the target's, Marian's decoder_vocab_size), else
    the glossary's n_vocab."""
    for node in arch.nodes.values():
        if isinstance(node.op, OneHot) and graph_input(name) in node.inputs.values():
            return concrete(node.op.n_vocab, arch.dims)
    return arch.dim("n_vocab")


def source_array(arch: Architecture, source: Sequence[int] | npt.ArrayLike, where: str) -> npt.NDArray[np.int64]:
    """A source sequence as int64 ids, refusing ids outside the source vocabulary and S > n_ctx."""
    return token_array(source, vocabulary(arch, SOURCE), arch.dim("n_ctx"), f"{where} source")


def inputs(arch: Architecture, source: Sequence[int] | npt.ArrayLike | None, ids: Sequence[int] | npt.ArrayLike, where: str) -> dict[str, npt.NDArray[np.int64]]:
    """The input mapping of one (source, target) pair for ``arch``: ``{"ids": y}`` for a
    decoder-only model (which takes no source), ``{"source": x, "ids": y}`` for an encoder–decoder
    (which needs one)."""
    target = token_array(ids, arch.dim("n_vocab"), arch.dim("n_ctx"), f"{where} ids")
    if not is_seq2seq(arch):
        if source is not None:
            raise ShapeError(f"a source sequence, but expected none for {arch.name}, which reads only {list(arch.inputs)} [{where}]")
        return {TARGET: target}
    if source is None:
        raise ShapeError(
            f"source=None, but expected a source sequence for the encoder–decoder {arch.name} [{where}]; "
            "give the source token ids (gptspec forward takes them as --source)"
        )
    return {SOURCE: source_array(arch, source, where), TARGET: target}


def with_key_padding(arch: Architecture, valid: Mapping[str, Sequence[bool]]) -> Architecture:
    """``arch`` with the padding of a batch row written into its masks: every masked softmax whose
    keys are the positions of input ``name`` (its key rows are that input's length, S for
    ``source``, T for ``ids``) gets mask ∧ KeyPadding(valid[name]). Θ and everything else are
    shared with ``arch``; the lengths are fixed by the masks (len(valid[name]))."""
    lengths: dict[sympy.Expr, tuple[bool, ...]] = {}
    for name, flags in valid.items():
        if name not in arch.inputs:
            raise ShapeError(f"padding for input {name!r}, but expected one of {list(arch.inputs)} [with_key_padding {arch.name}]")
        lengths[sympy.sympify(arch.inputs[name].shape[0])] = tuple(bool(f) for f in flags)

    def graph(g: Graph) -> Graph | None:
        """``g`` with its masks padded, or None when nothing in it changes (it is then shared)."""
        ops: dict[str, Op] = {}
        for node in g.nodes.values():
            op = node.op
            if isinstance(op, Composite):
                body = graph(op.body)
                if body is not None:
                    ops[node.name] = Composite(op.kind, op.title, body, op.description)
            elif isinstance(op, MaskedSoftmax) and sympy.sympify(op.k_rows) in lengths:
                padding = KeyPadding(lengths[sympy.sympify(op.k_rows)])
                ops[node.name] = dataclasses.replace(op, mask=Intersection((op.mask, padding)))
        if not ops:
            return None
        new = Graph(g.name, g.inputs)
        for node in g.nodes.values():
            new.add(node.name, ops.get(node.name, node.op), node.inputs, node.params)
        for name, src in g.outputs.items():
            new.output(name, src)
        return new

    body = graph(arch) or arch
    out = Architecture(f"{arch.name} (padded)", arch.inputs, arch.dims, config=arch.config)
    out.theta = dict(arch.theta)
    out.nodes, out.outputs = body.nodes, body.outputs
    out.validate_structure()  # only masks changed: every type, view and Θ entry is the validated architecture's
    return out
