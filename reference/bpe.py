"""The literal BPE trainer and encoder: spec/tokenizer.py's definitions 3–5, step by step.

Slow on purpose: the trainer recounts every pair of every word at every step, the encoder
rescans the whole word after every merge. ``fast/bpe.py`` is the efficient twin; tests hold
the two equal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from reference.ops import REFERENCE
from spec.ops import OneHot
from spec.tokenizer import (
    BASE_SIZE,
    BPE,
    GPT2_PATTERN,
    Pair,
    Training,
    check_target,
    merge_word,
    pair_priority,
    pretoken_counts,
    pretokenize,
    split_special,
    trained,
    utf8,
)


def train(
    corpus: str | Iterable[str],
    vocab_size: int,
    special: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
    progress: Callable[[int, int], None] | None = None,
) -> Training:
    """Definition 3, literally: every step counts n(a, b) over all words afresh, takes the
    pair of highest priority, and rewrites every word."""
    n_merges = check_target(vocab_size, special)
    counts = pretoken_counts(corpus, pattern, special)  # W with multiplicities c(w)
    words = {w: tuple(bytes([b]) for b in w) for w in counts}  # each word as base tokens
    merges: list[Pair] = []
    vocabulary = {bytes([b]) for b in range(BASE_SIZE)}
    exhausted = False
    while len(vocabulary) < BASE_SIZE + n_merges:
        n: Counter[Pair] = Counter()
        for w, tokens in words.items():
            for i in range(len(tokens) - 1):
                n[(tokens[i], tokens[i + 1])] += counts[w]  # n(a,b) = Σ_w c(w)·#{i : w_i=a, w_{i+1}=b}
        if not n:
            exhausted = True
            break
        best = min(n, key=lambda pair: pair_priority(pair, n[pair]))  # most frequent; ties: byte order
        merges.append(best)
        vocabulary.add(best[0] + best[1])
        words = {w: merge_word(tokens, best) for w, tokens in words.items()}
        if progress is not None:
            progress(len(vocabulary) - BASE_SIZE, n_merges)
    return Training(trained(merges, special, pattern), vocab_size, exhausted)


def encode_word(bpe: BPE, word: bytes) -> list[int]:
    """Definition 4: start from the bytes; while an adjacent pair is a merge, merge the one of
    lowest rank (the leftmost on a tie); then look up the ids."""
    x = [bytes([b]) for b in word]
    while True:
        ranked = [(bpe.ranks[(x[i], x[i + 1])], i) for i in range(len(x) - 1) if (x[i], x[i + 1]) in bpe.ranks]
        if not ranked:
            break
        _, i = min(ranked)  # lowest rank, then leftmost position
        x[i : i + 2] = [x[i] + x[i + 1]]
    return [bpe.ids[token] for token in x]


def encode(bpe: BPE, text: str, allowed_special: Collection[str] | str = "none") -> list[int]:
    """Definition 5: split off the allowed special tokens, pre-tokenize each ordinary piece,
    encode each pre-token's UTF-8 bytes."""
    utf8(text)  # refuse lone surrogates before anything else
    ids: list[int] = []
    for piece, is_special in split_special(text, bpe.allowed(allowed_special)):
        if is_special:
            ids.append(bpe.special[piece])
        else:
            for w in pretokenize(piece, bpe.pattern):
                ids.extend(encode_word(bpe, utf8(w)))
    return ids


def decode(bpe: BPE, ids: Iterable[int]) -> str:
    """Definition 6 (the spec's own; here so reference/ offers the whole map)."""
    return bpe.decode(ids)


def one_hot_matrix(bpe: BPE, text: str, allowed_special: Collection[str] | str = "none") -> npt.NDArray[np.float64]:
    """Definition 7: X = one_hot(encode(s)) ∈ {0,1}^{T × n_vocab}, by the reference one_hot op."""
    ids = encode(bpe, text, allowed_special)
    op = OneHot(n_vocab=bpe.n_vocab, rows=len(ids))
    return REFERENCE[op.kind](op, np.asarray(ids, dtype=np.int64))
