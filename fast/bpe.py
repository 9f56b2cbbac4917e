"""The efficient BPE trainer and encoder: the same maps as ``reference/bpe.py`` (spec/tokenizer.py
definitions 3–6), computed incrementally.

* Training keeps the pair counts n(a, b) and, for each pair, the words it occurs in; a merge
  touches only those words and updates the counts by the difference it makes. The next pair
  comes from a heap ordered by the spec's own key (:func:`spec.tokenizer.pair_priority`), with
  lazy deletion: an entry whose count is no longer current is skipped.
* Encoding caches each pre-token's ids; a new pre-token is merged with a heap of
  (rank, position) over a linked list of its tokens — O(n log n) in its length instead of the
  reference's O(n²) rescans — which pops exactly the lowest rank, leftmost on a tie.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence

from spec.tokenizer import (
    BASE_SIZE,
    BPE,
    GPT2_PATTERN,
    Pair,
    Training,
    check_target,
    pair_priority,
    pretoken_counts,
    pretokenize,
    split_special,
    trained,
    utf8,
)

IdPair = tuple[int, int]


def train(
    corpus: str | Iterable[str],
    vocab_size: int,
    special: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
    progress: Callable[[int, int], None] | None = None,
) -> Training:
    """Definition 3 with incremental pair counts and a priority queue; equal to
    ``reference.bpe.train`` on every corpus."""
    n_merges = check_target(vocab_size, special)
    counts = pretoken_counts(corpus, pattern, special)
    text: list[bytes] = [bytes([b]) for b in range(BASE_SIZE)]  # id → token
    ids: dict[bytes, int] = {t: i for i, t in enumerate(text)}
    words: list[list[int]] = [list(w) for w in counts]  # one-byte token ids are the byte values
    freq: list[int] = list(counts.values())
    n: dict[IdPair, int] = defaultdict(int)
    where: dict[IdPair, set[int]] = defaultdict(set)
    for k, word in enumerate(words):
        for pair in zip(word, word[1:]):
            n[pair] += freq[k]
            where[pair].add(k)
    heap = [(pair_priority((text[a], text[b]), c), a, b) for (a, b), c in n.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    vocabulary = BASE_SIZE
    while vocabulary < BASE_SIZE + n_merges:
        best: IdPair | None = None
        while heap:
            key, a, b = heapq.heappop(heap)
            if -key[0] == n.get((a, b), 0) > 0:  # a current entry (stale ones are skipped)
                best = (a, b)
                break
        if best is None:
            break
        a, b = best
        merged = text[a] + text[b]
        merges.append((text[a], text[b]))
        new = ids.get(merged)
        if new is None:
            new = ids[merged] = len(text)
            text.append(merged)
            vocabulary += 1
        delta: dict[IdPair, int] = defaultdict(int)
        for k in where.pop(best, ()):
            word = words[k]
            if len(word) < 2:
                continue
            rewritten: list[int] = []
            i = 0
            changed = False
            while i < len(word):  # left to right, without overlap (spec.tokenizer.merge_word)
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    rewritten.append(new)
                    i += 2
                    changed = True
                else:
                    rewritten.append(word[i])
                    i += 1
            if not changed:
                continue
            c = freq[k]
            for pair in zip(word, word[1:]):
                delta[pair] -= c
            for pair in zip(rewritten, rewritten[1:]):
                delta[pair] += c
                where[pair].add(k)
            words[k] = rewritten
        for pair, d in delta.items():
            if d:
                n[pair] += d
                if n[pair] > 0:
                    heapq.heappush(heap, (pair_priority((text[pair[0]], text[pair[1]]), n[pair]), *pair))
        n.pop(best, None)
        if progress is not None:
            progress(vocabulary - BASE_SIZE, n_merges)
    exhausted = vocabulary < BASE_SIZE + n_merges
    return Training(trained(merges, special, pattern), vocab_size, exhausted)


class Encoder:
    """encode / decode for one :class:`spec.tokenizer.BPE`, with a cache of pre-tokens."""

    def __init__(self, bpe: BPE, cache_size: int = 1 << 18) -> None:
        self.bpe = bpe
        self.byte_id = [bpe.ids[bytes([b])] for b in range(BASE_SIZE)]
        self.rank: dict[IdPair, tuple[int, int]] = {
            (bpe.ids[a], bpe.ids[b]): (r, bpe.ids[a + b]) for (a, b), r in bpe.ranks.items()
        }
        self.table: dict[int, bytes] = dict(bpe.tokens) | {i: name.encode("utf-8") for name, i in bpe.special.items()}
        self.cache: dict[str, list[int]] = {}
        self.cache_size = cache_size

    def encode_word(self, word: bytes) -> list[int]:
        """Definition 4: a heap of (rank, start byte) over the live tokens; popping the least
        entry is "lowest rank, leftmost"; stale entries (a side already merged away) are skipped."""
        ids = [self.byte_id[b] for b in word]
        size = len(ids)
        if size < 2:
            return ids
        rank = self.rank
        after = list(range(1, size + 1))  # next live token's start (size = the end)
        before = list(range(-1, size - 1))
        alive = [True] * size
        heap = [(found[0], i, ids[i], ids[i + 1]) for i in range(size - 1) if (found := rank.get((ids[i], ids[i + 1])))]
        heapq.heapify(heap)
        while heap:
            _, i, a, b = heapq.heappop(heap)
            j = after[i]
            if not alive[i] or j >= size or ids[i] != a or ids[j] != b:
                continue
            ids[i] = rank[(a, b)][1]
            alive[j] = False
            after[i] = after[j]
            if after[j] < size:
                before[after[j]] = i
            p, q = before[i], after[i]
            if p >= 0 and (found := rank.get((ids[p], ids[i]))):
                heapq.heappush(heap, (found[0], p, ids[p], ids[i]))
            if q < size and (found := rank.get((ids[i], ids[q]))):
                heapq.heappush(heap, (found[0], i, ids[i], ids[q]))
        out = []
        i = 0
        while i < size:
            out.append(ids[i])
            i = after[i]
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        """encode with no special tokens allowed: pre-tokens through the cache."""
        out: list[int] = []
        cache = self.cache
        for w in pretokenize(text, self.bpe.pattern):
            found = cache.get(w)
            if found is None:
                found = self.encode_word(utf8(w))
                if len(cache) >= self.cache_size:
                    cache.clear()
                cache[w] = found
            out.extend(found)
        return out

    def encode(self, text: str, allowed_special: Collection[str] | str = "none") -> list[int]:
        """Definition 5."""
        utf8(text)
        allowed = self.bpe.allowed(allowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        for piece, is_special in split_special(text, allowed):
            if is_special:
                out.append(self.bpe.special[piece])
            else:
                out.extend(self.encode_ordinary(piece))
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Definition 6, before UTF-8 decoding."""
        table = self.table
        sequence = list(ids)
        try:
            return b"".join([table[i] for i in sequence])
        except (KeyError, TypeError):
            return self.bpe.decode_bytes(sequence)  # raises the spec's error, naming the position

    def decode(self, ids: Iterable[int]) -> str:
        """Definition 6: errors="replace"."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def encode(bpe: BPE, text: str, allowed_special: Collection[str] | str = "none") -> list[int]:
    """One-shot :meth:`Encoder.encode` (keep an :class:`Encoder` to reuse its cache)."""
    return Encoder(bpe).encode(text, allowed_special)


def decode(bpe: BPE, ids: Iterable[int]) -> str:
    """One-shot :meth:`Encoder.decode`."""
    return Encoder(bpe).decode(ids)

