"""Tokenization: from text to token ids and back — byte-level byte-pair encoding (BPE).

Becker-Kahn (arXiv 2410.19370, §2; docs/sources.md §1) builds the vocabulary V from a corpus by BPE
but never defines the *encode map* Text → V*. This module defines both, once; ``reference/bpe.py``
follows the definitions literally and ``fast/bpe.py`` efficiently, and tests hold them equal.

Glossary (used in every docstring here and in docs/tokenizer.md)

* A **token** is a non-empty byte string τ ∈ B⁺, B = {0, …, 255}. Text is a string of Unicode
  scalar values; utf8 : Text → B* is its UTF-8 encoding.
* The **base vocabulary** V₀ = {(b) : b ∈ B}: the 256 one-byte tokens. Every text is a sequence
  of base tokens, so no text is out of vocabulary.
* A **merge list** M = (m₀, …, m_{K−1}), m_r = (a_r, b_r), a pair of tokens; r is its **rank**
  (lower merges first). Merging m_r makes the token a_r b_r (concatenation).
* A **vocabulary** is an injective map id : tokens → ℕ (ordinary tokens) plus **special tokens**:
  names (strings such as ``<|endoftext|>``) with their own ids, disjoint from the ordinary ones.
  n_vocab = 1 + the largest id (the width of a one-hot row); an id below n_vocab that names no
  token is unused and is refused on decode.
* A **pattern** P is a regular expression (``regex`` module syntax); GPT-2's is the default.

Definitions

1. Pre-tokenization. pre_P(s) = the list of non-overlapping matches of P in s, left to right
   (``regex.findall``). For GPT-2's pattern the matches tile s exactly (its last alternative
   ``\\s+`` and the ``[^\\s\\p{L}\\p{N}]+`` class leave no character unmatched), so nothing is
   lost; :func:`pretokenize` refuses a pattern whose matches do not tile the text.

2. Special tokens in text. Given a set A of allowed special names, split(s, A) cuts s into
   pieces left to right: at each position, if some name in A starts there, the longest such
   name is a special piece; otherwise the character belongs to the current ordinary piece.
   With A = ∅ (the default) special names are ordinary text.

3. Training (the vocabulary from a corpus C, to a target size N, with special names S):
   the words of C are W = the multiset of utf8(w) for w ∈ pre_P(c), c an ordinary piece of
   split(C, S) (special names never take part in training), with multiplicity c(w).
   Each word is a sequence of tokens, initially its bytes. Start with V = V₀ (the token (b) has
   id b) and M = (). While |V| + |S| < N:
     count every adjacent pair: n(a, b) = Σ_w c(w) · #{i : w_i = a, w_{i+1} = b};
     if no pair has n(a, b) > 0, stop (the corpus has nothing left to merge: V is smaller
     than N, and the trainers report it);
     choose the pair with the largest n(a, b); **tie-break**: among equal counts, the pair
     (a, b) that is smallest in the lexicographic order of (a, b) as byte strings (compare a
     first, then b; a proper prefix sorts first) — :func:`pair_priority` is this order;
     append (a, b) to M; if the token ab is not yet in V it gets the next id, |V|;
     in every word replace each occurrence of a, b by ab, scanning left to right without
     overlap (a a a with (a, a) becomes aa a) — :func:`merge_word`.
   Then the special names get the ids |V|, |V| + 1, … in the order given. A target N smaller
   than |V₀| + |S| is refused.

4. Encoding a word (a byte string β = β₁ … β_n, n ≥ 1): x ← (β₁, …, β_n) as base tokens.
   While some adjacent pair of x is in M: let i be the position of the adjacent pair
   (x_i, x_{i+1}) of lowest rank, the leftmost such position on a tie; replace x_i, x_{i+1}
   by x_i x_{i+1}. The result is bpe(β), and encode_word(β) = (id(x₁), …, id(x_m)).
   (This is the "lowest rank first, leftmost on ties" rule of Hugging Face tokenizers and
   tiktoken. GPT-2's original Python merges *all* occurrences of the lowest pair in one pass;
   the two agree when every merge's parts are made by earlier merges — which :class:`BPE`
   requires — and no two merges make the same token: a merge of rank r then creates only
   pairs of rank > r, so the remaining occurrences of its pair are merged next, left to right.)

5. Encoding text with allowed specials A:
   encode(s) = concatenation, over the pieces of split(s, A), of the special's id for a
   special piece, and of encode_word(utf8(w)) for w ∈ pre_P(piece) for an ordinary piece.
   Text that is not a string of Unicode scalar values (a lone surrogate) is refused.

6. Decoding: decode_bytes(ids) = the concatenation of the ids' tokens (a special's token is the
   UTF-8 of its name); decode(ids) = the UTF-8 decoding of that with **errors="replace"**: each
   maximal ill-formed subsequence becomes U+FFFD (Python's and Rust's ``from_utf8_lossy`` rule,
   as GPT-2 and tiktoken do). An id with no token is refused. For every text s and every A,
   decode(encode(s)) = s; decode(encode(·)) is not injective the other way (many id sequences
   spell the same text).

7. Text as a matrix: X = one_hot(encode(s)) ∈ {0,1}^{T×n_vocab} (the ``one_hot`` op,
   spec/ops/one_hot.py), the input of the GPT function.

The byte-level file format (GPT-2's ``vocab.json`` / ``merges.txt``) writes a token as a
string of printable characters: :func:`bytes_to_unicode` is GPT-2's bijection B → 256
characters (printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 … U+0143
in byte order), so ``Ġ`` (U+0120) is the space byte 0x20.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex  # type: ignore[import-untyped]

from spec.errors import ConfigError, TokenError

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenization pattern (openai/gpt-2 ``encoder.py``; also Hugging Face's
``ByteLevel`` pre-tokenizer and tiktoken's ``r50k_base``/``gpt2``). It needs ``\\p{L}`` and
``\\p{N}`` (Unicode letters and numbers), hence the ``regex`` module."""

END_OF_TEXT = "<|endoftext|>"
"""GPT-2's one special token: it separates documents and is the usual start of a prompt."""

BASE_SIZE = 256
"""|V₀|: the one-byte tokens."""

Token = bytes
Pair = tuple[bytes, bytes]


# -- the byte ↔ unicode map of GPT-2's file format -----------------------------------------


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's bijection from the 256 bytes to printable characters (openai/gpt-2
    ``encoder.py``): the bytes 0x21–0x7E, 0xA1–0xAC and 0xAE–0xFF map to the character with
    the same code point; the remaining 68 bytes, in increasing order, map to U+0100, U+0101, …"""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(BASE_SIZE):
        if b not in table:
            table[b] = chr(BASE_SIZE + extra)
            extra += 1
    return table


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    """The inverse of :func:`bytes_to_unicode`."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_text(token: bytes) -> str:
    """A token in the byte-level file format: each byte through :func:`bytes_to_unicode`."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def text_to_token(text: str, where: str = "byte-level token") -> bytes:
    """The inverse of :func:`token_to_text`; a character outside the 256 of the map is refused."""
    table = unicode_to_bytes()
    out = bytearray()
    for i, c in enumerate(text):
        b = table.get(c)
        if b is None:
            raise TokenError(
                f"character {i} of {text!r}={c!r} (U+{ord(c):04X}), but expected one of the 256 characters of "
                f"GPT-2's byte-level alphabet [{where}]; the file is not in GPT-2's byte-level format"
            )
        out.append(b)
    return bytes(out)


# -- text: scalar values, special pieces, pre-tokens ---------------------------------------


def utf8(text: str, where: str = "encode") -> bytes:
    """utf8(s); text with a lone surrogate (not a Unicode scalar value) is refused."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise TokenError(
            f"character {error.start} of the text=U+{ord(text[error.start]):04X} (a lone surrogate), but expected "
            f"Unicode scalar values [{where}]; text must be valid Unicode (no unpaired surrogates)"
        ) from None


@functools.cache
def compiled(pattern: str) -> Any:
    """The pattern compiled once (``regex`` module syntax)."""
    try:
        return regex.compile(pattern)
    except regex.error as error:
        raise ConfigError(f"pattern={pattern!r}, but expected a valid regular expression [pre-tokenization]; {error}") from None


def pretokenize(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """pre_P(s): the non-empty matches of P in s, left to right (definition 1). A pattern whose
    matches leave a character unmatched (so encode would lose text) is refused."""
    regexp = compiled(pattern)
    if regexp.groups == 0:
        found: list[str] = regexp.findall(text)
        if sum(len(p) for p in found) == len(text) and all(found):  # non-overlapping, so they tile
            return found
    pieces: list[str] = []
    covered = 0
    for match in regexp.finditer(text):
        if match.start() != covered:
            break
        if match.end() > covered:
            pieces.append(match.group())
            covered = match.end()
    if covered != len(text):
        raise ConfigError(
            f"pattern={pattern!r} leaves character {covered} of the text={text[covered:covered + 1]!r} unmatched, "
            "but expected matches that cover the whole text [pre-tokenization]; add a catch-all alternative such as "
            r"'|\s+|.' (GPT-2's pattern covers every text)"
        )
    return pieces


def split_special(text: str, allowed: Collection[str]) -> list[tuple[str, bool]]:
    """split(s, A) (definition 2): ``(piece, is_special)`` left to right; at each position the
    longest allowed name that starts there is a special piece. Empty ordinary pieces are omitted."""
    names = [n for n in allowed if n]
    if not names:
        return [(text, False)] if text else []
    longest_first = sorted(set(names), key=lambda n: (-len(n), n))
    alternation = compiled("|".join(regex.escape(n) for n in longest_first))
    pieces: list[tuple[str, bool]] = []
    start = 0
    for match in alternation.finditer(text):  # leftmost match; at a position, longest name first
        if match.start() > start:
            pieces.append((text[start:match.start()], False))
        pieces.append((match.group(), True))
        start = match.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def pretoken_counts(corpus: str | Iterable[str], pattern: str = GPT2_PATTERN, special: Collection[str] = ()) -> Counter[bytes]:
    """The training multiset W (definition 3): utf8 of every pre-token of every ordinary piece
    of the corpus (special names removed), with its multiplicity. ``corpus`` may be one text or
    several documents (pre-tokens never span two documents)."""
    if not isinstance(corpus, str | Iterable) or isinstance(corpus, bytes | bytearray):
        raise ConfigError(f"corpus of type {type(corpus).__name__}, but expected a text (str) or an iterable of texts [BPE training]; "
                          "decode bytes as UTF-8 first")
    documents = [corpus] if isinstance(corpus, str) else corpus
    counts: Counter[bytes] = Counter()
    for k, document in enumerate(documents):
        if not isinstance(document, str):
            raise ConfigError(f"corpus document {k} of type {type(document).__name__}, but expected a text (str) [BPE training]")
        for piece, is_special in split_special(document, special):
            if not is_special:
                counts.update(utf8(w, "training corpus") for w in pretokenize(piece, pattern))
    return counts


# -- training: the order of pairs and the merge of a word -----------------------------------


def pair_priority(pair: Pair, count: int) -> tuple[int, bytes, bytes]:
    """The training order (definition 3): the pair that is *smallest* under this key is merged
    next — the largest count first, then (a, b) in lexicographic byte order."""
    return (-count, pair[0], pair[1])


def merge_word(word: Sequence[bytes], pair: Pair) -> tuple[bytes, ...]:
    """Replace each occurrence of ``pair`` in ``word``, left to right, without overlap."""
    a, b = pair
    out: list[bytes] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def check_target(n_vocab: int, special: Sequence[str]) -> int:
    """The number of merges a target size N allows, N − |V₀| − |S|; a target below
    |V₀| + |S|, or repeated or empty special names, are refused."""
    if len(set(special)) != len(special) or any(not s for s in special):
        raise ConfigError(f"special tokens={list(special)}, but expected distinct non-empty names [BPE training]")
    least = BASE_SIZE + len(special)
    if isinstance(n_vocab, bool) or not isinstance(n_vocab, int) or n_vocab < least:
        kind = "" if isinstance(n_vocab, int) and not isinstance(n_vocab, bool) else f" of type {type(n_vocab).__name__}"
        raise ConfigError(
            f"vocab size={n_vocab!r}{kind}, but expected vocab size ≥ 256 bytes + {len(special)} special = {least} "
            "[BPE training]; the base vocabulary already has one token per byte"
        )
    return n_vocab - least


# -- the tokenizer as a value --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BPE:
    """A byte-level BPE tokenizer: the vocabulary, the ranked merges, the special tokens and
    the pre-tokenization pattern. Construction checks consistency (see :meth:`check`).

    ``tokens`` maps each ordinary id to its token; ``merges`` is M in rank order; ``special``
    maps each special name to its id."""

    tokens: Mapping[int, bytes]
    merges: tuple[Pair, ...]
    special: Mapping[str, int] = field(default_factory=dict)
    pattern: str = GPT2_PATTERN
    ids: dict[bytes, int] = field(init=False, repr=False)
    ranks: dict[Pair, int] = field(init=False, repr=False)
    n_vocab: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", dict(self.tokens))
        object.__setattr__(self, "merges", tuple((bytes(a), bytes(b)) for a, b in self.merges))
        object.__setattr__(self, "special", dict(self.special))
        object.__setattr__(self, "ids", {t: i for i, t in self.tokens.items()})
        object.__setattr__(self, "ranks", {m: r for r, m in reversed(list(enumerate(self.merges)))})
        every = [*self.tokens, *self.special.values()]
        object.__setattr__(self, "n_vocab", max(every) + 1 if every else 0)
        self.check()

    def check(self, where: str = "BPE") -> None:
        """Consistency: ids are whole numbers ≥ 0, one token per id and one id per token; every
        one-byte token is present; the ordinary and special ids are disjoint; every merge (a, b)
        has its parts already made — each a one-byte token or the result of an earlier merge —
        and its result ab in the vocabulary; no pair is listed twice; the pattern compiles."""
        for i, t in self.tokens.items():
            if not isinstance(i, int) or i < 0:
                raise TokenError(f"token id={i!r}, but expected a whole number ≥ 0 [{where}]")
            if not isinstance(t, bytes) or not t:
                raise TokenError(f"token {i}={t!r}, but expected a non-empty byte string [{where}]")
        if len(self.ids) != len(self.tokens):
            seen: dict[bytes, int] = {}
            for i, t in self.tokens.items():
                if t in seen:
                    raise TokenError(
                        f"token {t!r} has ids {seen[t]} and {i}, but expected one id per token [{where}]; "
                        "the vocabulary lists a token twice"
                    )
                seen[t] = i
        missing = [b for b in range(BASE_SIZE) if bytes([b]) not in self.ids]
        if missing:
            raise TokenError(
                f"one-byte tokens {[bytes([b]) for b in missing[:4]]}{' …' if len(missing) > 4 else ''} "
                f"({len(missing)} of 256) are missing, but expected all 256 bytes [{where}]; "
                "a byte-level vocabulary must spell every text"
            )
        for name, i in self.special.items():
            if not isinstance(name, str) or not name:
                raise TokenError(f"special token name={name!r}, but expected a non-empty string [{where}]")
            if not isinstance(i, int) or i < 0:
                raise TokenError(f"special token {name!r} id={i!r}, but expected a whole number ≥ 0 [{where}]")
            if i in self.tokens:
                raise TokenError(
                    f"special token {name!r} id={i}, but expected an id no ordinary token has [{where}]; "
                    f"id {i} is already {self.tokens[i]!r}"
                )
        if len(set(self.special.values())) != len(self.special):
            raise TokenError(f"special ids={sorted(self.special.values())}, but expected one id per special token [{where}]")
        made = {bytes([b]) for b in range(BASE_SIZE)}
        for r, (a, b) in enumerate(self.merges):
            for side, part in (("left", a), ("right", b)):
                if part not in made:
                    raise TokenError(
                        f"merge {r}={token_to_text(a)} {token_to_text(b)}: its {side} part {part!r}, but expected a "
                        f"one-byte token or the result of an earlier merge [{where}]; the merges are out of order or "
                        "one is missing"
                    )
            if a + b not in self.ids:
                raise TokenError(
                    f"merge {r}={token_to_text(a)} {token_to_text(b)} makes {a + b!r}, but expected that token "
                    f"in the vocabulary [{where}]; vocabulary and merges do not belong together"
                )
            if self.ranks[(a, b)] != r:
                raise TokenError(
                    f"merge {r}={token_to_text(a)} {token_to_text(b)}, but expected each pair once; it is "
                    f"already merge {self.ranks[(a, b)]} [{where}]"
                )
            made.add(a + b)
        compiled(self.pattern)

    # -- decode (definition 6) --------------------------------------------------------------

    def token(self, i: int, where: str = "decode") -> bytes:
        """The bytes of id i (a special's name in UTF-8); an id with no token is refused."""
        t = self.tokens.get(i)
        if t is not None:
            return t
        for name, j in self.special.items():
            if j == i:
                return name.encode("utf-8")
        raise TokenError(
            f"token id={i}, but expected an id of the vocabulary, 0 ≤ id < n_vocab={self.n_vocab}"
            + (" (this id is unused)" if 0 <= i < self.n_vocab else "")
            + f" [{where}]; the vocabulary defines no other ids"
        )

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """decode_bytes(ids): the concatenation of the ids' tokens."""
        out = bytearray()
        for t, i in enumerate(ids):
            if isinstance(i, bool) or not isinstance(i, int):
                try:
                    i = int(i)  # numpy integers
                except (TypeError, ValueError):
                    raise TokenError(f"token {t}={i!r}, but expected a whole number [decode]") from None
            out += self.token(i, f"decode, position {t}")
        return bytes(out)

    def decode(self, ids: Iterable[int]) -> str:
        """decode(ids): UTF-8 of the concatenated tokens, each maximal ill-formed byte
        subsequence replaced by U+FFFD (errors="replace", as GPT-2 and tiktoken)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- describing ------------------------------------------------------------------------

    def allowed(self, allowed_special: Collection[str] | str) -> frozenset[str]:
        """The allowed set A of definition 2: ``"all"``, ``"none"``, or a set of this
        tokenizer's special names (an unknown name is refused)."""
        if allowed_special == "all":
            return frozenset(self.special)
        if allowed_special == "none":
            return frozenset()
        if isinstance(allowed_special, str):
            raise TokenError(f"allowed_special={allowed_special!r}, but expected 'all', 'none' or a set of names [encode]")
        unknown = sorted(set(allowed_special) - set(self.special))
        if unknown:
            raise TokenError(
                f"allowed special tokens {unknown}, but expected names of this vocabulary's special tokens="
                f"{sorted(self.special)} [encode]"
            )
        return frozenset(allowed_special)

    def rank_of_token(self) -> dict[bytes, int]:
        """Every ordinary token's id, as tiktoken's ``mergeable_ranks``: valid when one-byte
        tokens come first in id order and each merge's result has a larger id than every
        earlier merge's (true of trained vocabularies and GPT-2's)."""
        made = {a + b for a, b in self.merges}
        stray = [t for t in self.tokens.values() if len(t) > 1 and t not in made]
        if stray:
            raise TokenError(
                f"token {stray[0]!r} is made by no merge, but expected every multi-byte token to be a merge's result "
                "[tiktoken ranks]; tiktoken would merge into it"
            )
        last = -1
        for r, (a, b) in enumerate(self.merges):
            i = self.ids[a + b]
            if i <= last:
                raise TokenError(
                    f"merge {r} makes id {i}, but expected ids increasing with the rank (> {last}) [tiktoken ranks]; "
                    "tiktoken orders merges by their token's id"
                )
            last = i
        return dict(self.ids)


def trained(
    merges: Sequence[Pair], special: Sequence[str], pattern: str = GPT2_PATTERN, base: Sequence[int] = range(BASE_SIZE)
) -> BPE:
    """The vocabulary of definition 3 from its merge list: the one-byte tokens numbered in the
    order ``base`` (byte b has id b by default), each merge's new token the next id, then the
    special names in order."""
    tokens: dict[int, bytes] = {i: bytes([b]) for i, b in enumerate(base)}
    ids = {t: i for i, t in tokens.items()}
    for a, b in merges:
        if a + b not in ids:
            ids[a + b] = len(tokens)
            tokens[len(tokens)] = a + b
    return BPE(tokens, tuple(merges), {name: len(tokens) + k for k, name in enumerate(special)}, pattern)


@dataclass(frozen=True)
class Training:
    """What a trainer returns: the tokenizer, and whether the corpus ran out of pairs before
    the target size (then ``bpe.n_vocab`` < ``target``)."""

    bpe: BPE
    target: int
    exhausted: bool
