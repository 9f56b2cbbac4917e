"""Dependency typing over two sequences: what an encoder–decoder's logits read of its source and
of its target, with and without a batch's padding."""

from __future__ import annotations

import itertools

import numpy as np
import sympy
from hypothesis import strategies as st

import reference
from proofs.core import Kind, ProofFailed, Scope, for_all, require, theorem, witness_check
from proofs.dependency import ALL, Summaries, Windows, relation, relation_at
from proofs.theorems._common import seeds
from proofs.theorems.causality import rely_on
from spec.architectures.registry import build
from spec.architectures.transformer import TransformerConfig
from spec.graph import Architecture, Composite
from spec.masks import Causal
from spec.seq2seq import SOURCE, TARGET, with_key_padding
from spec.theta import random_theta

oo = sympy.oo

PADDED_LENGTHS = 3
"""The exhaustive part covers every padding pattern of sources and targets up to this length."""


def small(n_layers: int, n_decoder_layers: int | None = None, n_heads: int = 1, d_model: int = 2) -> Architecture:
    """A small encoder–decoder Transformer (the registered family)."""
    return build(TransformerConfig(
        n_vocab=7, n_ctx=8, d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_decoder_layers=n_decoder_layers,
        d_mlp=2 * d_model, name=f"transformer-{n_layers}+{n_decoder_layers or n_layers}",
    ))


def expected(valid_source: tuple[bool, ...], valid_target: tuple[bool, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The claim at real target rows t: source positions {s : valid_source[s]}; target {s ≤ t : valid_target[s]}."""
    T, S = len(valid_target), len(valid_source)
    src = np.array([[valid_source[s] for s in range(S)] for _ in range(T)], dtype=bool).reshape(T, S)
    tgt = np.array([[s <= t and valid_target[s] for s in range(T)] for t in range(T)], dtype=bool).reshape(T, T)
    return src, tgt


def check_padded(arch: Architecture, valid_source: tuple[bool, ...], valid_target: tuple[bool, ...]) -> None:
    """The typing at concrete lengths of ``arch`` with the padding in its masks gives the claim
    at every real target row."""
    padded = with_key_padding(arch, {SOURCE: valid_source, TARGET: valid_target})
    got = relation_at(padded, {SOURCE: len(valid_source), TARGET: len(valid_target)}, "logits")
    want_src, want_tgt = expected(valid_source, valid_target)
    real = np.array(valid_target, dtype=bool)
    require(np.array_equal(got[SOURCE][real], want_src[real]),
            f"source {valid_source}, target {valid_target}: real rows read source positions {got[SOURCE][real].astype(int).tolist()}")
    require(np.array_equal(got[TARGET][real], want_tgt[real]),
            f"source {valid_source}, target {valid_target}: real rows read target positions {got[TARGET][real].astype(int).tolist()}")


def _patterns(n: int) -> list[tuple[bool, ...]]:
    return [tuple(p) for p in itertools.product((True, False), repeat=n)]


def _witness(examples: int) -> None:
    def check(case: tuple[int, tuple[bool, ...], tuple[bool, ...], int, int]) -> None:
        seed, valid_source, valid_target, which_s, which_t = case
        arch = small(2, 1, n_heads=2, d_model=4)
        padded = with_key_padding(arch, {SOURCE: valid_source, TARGET: valid_target})
        theta = random_theta(arch, seed, std=0.5)
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 7, size=len(valid_source))
        y = rng.integers(0, 7, size=len(valid_target))
        base = reference.evaluate(padded, theta, {SOURCE: x, TARGET: y})["logits"]
        real = np.flatnonzero(valid_target)
        s = which_s % len(x)
        other = x.copy()
        other[s] = (x[s] + 1) % 7
        moved = np.any(reference.evaluate(padded, theta, {SOURCE: other, TARGET: y})["logits"][real] != base[real], axis=1)
        witness_check(bool(np.all(moved)) if valid_source[s] else not bool(np.any(moved)),
                      f"source {valid_source}: changing source position {s} moved real rows {real[moved].tolist()}")
        p = which_t % len(y)
        other_y = y.copy()
        other_y[p] = (y[p] + 1) % 7
        moved = np.any(reference.evaluate(padded, theta, {SOURCE: x, TARGET: other_y})["logits"][real] != base[real], axis=1)
        want = np.array([valid_target[p] and t >= p for t in real], dtype=bool)
        witness_check(np.array_equal(moved, want), f"target {valid_target}: changing target position {p} moved real rows {real[moved].tolist()}, expected {real[want].tolist()}")

    def padding(n: int) -> st.SearchStrategy[tuple[bool, ...]]:
        return st.lists(st.booleans(), min_size=n, max_size=n).map(tuple).filter(any)

    cases = st.tuples(seeds, st.integers(1, 5).flatmap(padding), st.integers(1, 5).flatmap(padding), st.integers(0, 9), st.integers(0, 9))
    for_all(cases, max(2, examples // 4), check)  # 3 reference evaluations each


@theorem(
    name="seq2seq_dependency",
    title="an encoder–decoder's logits row t reads target positions s ≤ t and every source position that is not padding",
    statement="In the encoder–decoder Transformer (post-LN encoder blocks with unmasked self-attention, decoder blocks "
    "with causal self-attention and unmasked cross-attention over the encoder's output), the logits' row t depends on "
    "the target positions s ≤ t and on every source position, at any depth: the typing gives each encoder block the "
    "relation 'all s' to its input and each decoder block 's ≤ t' to its target input and 'all s' to the memory, and "
    "these compose to exactly that. With a batch's padding written into the masks (key padding on the source in the "
    "encoder and the cross-attention, on the target in the decoder's self-attention), a real target row t depends on "
    "exactly the real target positions s ≤ t and the real source positions — padded positions are read by no real row.",
    latex=r"\frac{\partial\, \mathrm{logits}_t}{\partial\, y_s} \ne 0 \Rightarrow s \le t \wedge \mathrm{valid}^y_s,"
    r"\qquad \frac{\partial\, \mathrm{logits}_t}{\partial\, x_s} \ne 0 \Rightarrow \mathrm{valid}^x_s",
    hypotheses=("the padding of a batch is written into the masks as key padding (spec.seq2seq.with_key_padding); "
                "fast/ computes exactly that from its valid masks",
                "'exactly' for the typing's relation; that each real position does change the logits needs generic "
                "parameters (the witness draws them)"),
    scope=Scope(Kind.MIXED, "unpadded: the typing of built models with 1–3 encoder and 1–3 decoder blocks, and the composite "
                "summaries of one encoder and one decoder block (composition is the same at every depth); padded: "
                f"exhaustive over every source and target padding pattern of lengths ≤ {PADDED_LENGTHS} (1 + 1 blocks) and "
                "≤ 2 (2 + 2 blocks), typed at concrete lengths with key padding read exactly; witness: max(2, ⌊n/4⌋) "
                "drawn models and paddings (S, T ≤ 5), one source and one target token changed, the real rows that move "
                "compared with the claim bit for bit"),
    witness=_witness,
    derived_from="the dependency typing of Transformers built by the registered `transformer` family (after checking their ops' rules against their definitions and their masks against themselves), and the concrete-length typing with key padding (`spec.seq2seq.with_key_padding`)",
    families=('transformer',),
)
def seq2seq_dependency() -> None:
    """Every op of the built Transformer is checked against its definition and the causal mask against itself (proofs/definitions.py); then the typing (memoised per composite) of built Transformers of every depth up to 3 + 3, the per-block summaries (the induction step), and the concrete-length typing of every padding pattern up to the stated lengths."""
    arch = small(1)
    rely_on([arch], [Causal()], "seq2seq_dependency")
    summaries = Summaries()
    encoder = arch.nodes["encoder.blocks.0"].op
    decoder = arch.nodes["decoder.blocks.0"].op
    if not (isinstance(encoder, Composite) and isinstance(decoder, Composite)):
        raise ProofFailed("the encoder and decoder blocks are composites")
    enc, dec = summaries.summary(encoder), summaries.summary(decoder)
    require(enc is not None and enc["y"]["x"] == ALL, f"an encoder block's row reads all of its input: {enc}")
    require(dec is not None and dec["y"]["x"] == Windows.of((-oo, 0)) and dec["y"]["memory"] == ALL,
            f"a decoder block's row t reads its input s ≤ t and all of the memory: {dec}")
    # induction: ALL ∘ ALL = ALL (the encoder at any depth); [−∞, 0] ∘ [−∞, 0] = [−∞, 0], and the memory's ALL composed
    # with anything non-empty is ALL (the decoder at any depth)
    require(ALL.then(ALL) == ALL and Windows.of((-oo, 0)).then(Windows.of((-oo, 0))) == Windows.of((-oo, 0)),
            "composition keeps the relations at every depth")
    for n_enc in (1, 2, 3):
        for n_dec in (1, 2, 3):
            built = small(n_enc, n_dec)
            require(relation(built, "logits", TARGET) == Windows.of((-oo, 0)), f"{n_enc}+{n_dec}: target s ≤ t")
            require(relation(built, "logits", SOURCE) == ALL, f"{n_enc}+{n_dec}: every source position")
    for arch_, longest in ((small(1), PADDED_LENGTHS), (small(2), 2)):
        for S in range(1, longest + 1):
            for T in range(1, longest + 1):
                for valid_source in _patterns(S):
                    for valid_target in _patterns(T):
                        check_padded(arch_, valid_source, valid_target)
