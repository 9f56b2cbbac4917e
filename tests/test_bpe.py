"""Byte-level BPE (spec/tokenizer.py): the definitions on worked examples, fast/ = reference/
under property tests, and independent checks — Hugging Face ``tokenizers``/``transformers``
and tiktoken load our files and encode and decode exactly as we do."""

from __future__ import annotations

import base64
import json
import os
import random

os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast.bpe as F
import reference.bpe as R
from gptspec import bpe_files
from spec.errors import CheckpointError, ConfigError, FileError, TokenError
from spec.tokenizer import (
    BPE,
    END_OF_TEXT,
    GPT2_PATTERN,
    bytes_to_unicode,
    merge_word,
    pair_priority,
    pretokenize,
    split_special,
    text_to_token,
    token_to_text,
    trained,
)

# -- strategies: text with the hard parts of Unicode -------------------------------------------

FRAGMENTS = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2028", "\x0b", "\x0c",  # whitespace runs
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇯🇵", "🫠", "\u2764\ufe0f",  # emoji: modifier, ZWJ sequence, flag, variation selector
    "e\u0301", "\u0301", "a\u0308\u0323", "\u0915\u094d\u0937",  # combining marks, a Devanagari conjunct
    "Привет", "γειά", "你好世界", "こんにちは", "안녕", "مرحبا", "שלום", "ไทย",  # scripts
    "'s", "'ll", "'re", "'ve", "'m", "'d", "'t", "’s", "'S",  # GPT-2's contractions (and near misses)
    "123", "٣٤", "½", "²", "Ⅻ", "3.14", "1,000",  # numbers, ASCII and not
    "hello", "world", "the", " the", "The", "low", "lower", "newest", "widest",
    "!", "?!", "...", "--", "()", "{}", "\\", "#", "<|", "|>", END_OF_TEXT, "\x00", "\x7f", "\ufffd",
]
ASSIGNED = st.characters(exclude_categories=("Cs", "Cn"))  # scalar values assigned in Python's Unicode (14.0)


def texts(max_parts: int = 16) -> st.SearchStrategy[str]:
    """Unicode text: fragments with whitespace runs, emoji, combining marks, mixed scripts,
    contractions, numbers, special-token names, and arbitrary assigned characters; "" included."""
    part = st.one_of(st.sampled_from(FRAGMENTS), st.text(ASSIGNED, max_size=4))
    return st.lists(part, max_size=max_parts).map("".join)


def small_alphabet_corpora() -> st.SearchStrategy[str]:
    """Corpora with many repeats, so that many merges tie and chain (aaaa, abab, …)."""
    return st.lists(st.sampled_from(["a", "b", "ab", " ", "aa", "ba ", "é", "😀", "\n", " a", "'s"]), max_size=60).map("".join)


def corpus(seed: int, n_words: int) -> str:
    """A deterministic corpus of sentences from FRAGMENTS and a small word list."""
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "mat", "low", "lower", "lowest", "new", "newer", "wide", "aaaa", "abab"]
    syllables = ["ka", "to", "ri", "men", "st", "qu", "zh", "ё", "лю", "δα", "の", "字", "é", "ß", "ø", "x"]
    out = []
    for _ in range(n_words):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(words))
        elif r < 0.7:
            out.append(rng.choice(FRAGMENTS))
        else:
            out.append("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
        out.append(rng.choice([" ", " ", " ", ", ", ". ", "\n", "  "]))
    return "".join(out)


# -- shared tokenizers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe() -> BPE:
    return F.train(corpus(0, 4000), 700, [END_OF_TEXT, "<|pad|>"]).bpe


@pytest.fixture(scope="module")
def saved(bpe: BPE, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bpe_files.save(bpe, tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def encoder(bpe: BPE) -> F.Encoder:
    return F.Encoder(bpe)


@pytest.fixture(scope="module")
def hf(saved: Path) -> Any:
    import tokenizers

    return tokenizers.ByteLevelBPETokenizer(str(saved / "vocab.json"), str(saved / "merges.txt"))


@pytest.fixture(scope="module")
def tik(bpe: BPE) -> Any:
    import tiktoken

    return tiktoken.Encoding("gptspec-test", pat_str=bpe.pattern, mergeable_ranks=bpe.rank_of_token(), special_tokens=dict(bpe.special))


# -- the definitions on worked examples ------------------------------------------------------


def test_byte_to_unicode_map_is_gpt2s() -> None:
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert table[ord("!")] == "!" and table[ord("A")] == "A" and table[0xFF] == "ÿ"
    assert table[0x20] == "Ġ" and table[0x0A] == "Ċ" and table[0x00] == "Ā" and table[0xAD] == "Ń"  # U+0120, U+010A, U+0100, U+0143
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    every = bytes(range(256))
    assert text_to_token(token_to_text(every)) == every
    with pytest.raises(TokenError, match="byte-level alphabet"):
        text_to_token("a b")


def test_gpt2_pattern_pieces() -> None:
    assert pretokenize("Hello world's 123  x\n\n y") == ["Hello", " world", "'s", " 123", " ", " x", "\n\n", " y"]
    assert pretokenize("I'll  go!!") == ["I", "'ll", " ", " go", "!!"]
    assert pretokenize("") == []
    with pytest.raises(ConfigError, match="unmatched"):
        pretokenize("ab cd", r"\w+")
    with pytest.raises(ConfigError, match="valid regular expression"):
        pretokenize("x", "(")


@given(texts())
def test_pretokens_tile_the_text(text: str) -> None:
    assert "".join(pretokenize(text)) == text


def test_special_pieces_are_leftmost_longest() -> None:
    assert split_special("a<|x|>b<|x|><|xy|>", {"<|x|>", "<|xy|>"}) == [
        ("a", False), ("<|x|>", True), ("b", False), ("<|x|>", True), ("<|xy|>", True)
    ]
    assert split_special("ab", set()) == [("ab", False)] and split_special("", {"<|x|>"}) == []
    assert split_special("<|x|>yz", {"<|x|>", "<|x|>y"}) == [("<|x|>y", True), ("z", False)]


def test_training_on_the_classic_example() -> None:
    # "aaabdaaabac" (Gage 1994 / Wikipedia), one word: (a,a) is the most frequent pair (4);
    # then (aa,a) and (a,b) tie at 2 and the byte order picks (a,b) ("a" < "aa"); then (aa,ab).
    result = R.train("aaabdaaabac", 259, pattern=r"[\s\S]+")
    assert result.bpe.merges == ((b"a", b"a"), (b"a", b"b"), (b"aa", b"ab"))
    assert result.bpe.tokens[256] == b"aa" and result.bpe.tokens[258] == b"aaab" and not result.exhausted
    assert R.encode(result.bpe, "aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]


def test_tie_break_is_byte_order() -> None:
    pairs = [(b"b", b"a"), (b"a", b"b"), (b"aa", b"a"), (b"a", b"ab")]
    assert min(pairs, key=lambda p: pair_priority(p, 3)) == (b"a", b"ab")
    assert min([(b"z", b"z"), (b"a", b"a")], key=lambda p: pair_priority(p, 5 if p == (b"z", b"z") else 4)) == (b"z", b"z")
    # "ba ab" as two words: (b,a), (a,b), (a, ' ')… all once; (' ', a) / (a, b) / (b, a) tie → (' ', a) first (0x20 < 0x61)
    result = R.train("ba ab", 257, pattern=GPT2_PATTERN)
    assert result.bpe.merges == ((b" ", b"a"),)


def test_merge_word_left_to_right_without_overlap() -> None:
    assert merge_word((b"a", b"a", b"a"), (b"a", b"a")) == (b"aa", b"a")
    assert merge_word((b"a",) * 4, (b"a", b"a")) == (b"aa", b"aa")
    assert merge_word((b"x",), (b"a", b"a")) == (b"x",)


def test_encode_is_lowest_rank_first_leftmost_on_ties() -> None:
    # merges (b,c) then (a,b): "abc" → a bc (rank 0 first), and (a, bc) is no merge
    bpe = trained([(b"b", b"c"), (b"a", b"b")], [])
    assert R.encode(bpe, "abc") == [ord("a"), 256] == F.encode(bpe, "abc")
    # "abab": (a,b) at positions 0 and 2 share rank 1; leftmost first, both merge
    assert R.encode(bpe, "abab") == [257, 257] == F.encode(bpe, "abab")


def test_special_tokens_are_explicit(bpe: BPE, encoder: F.Encoder) -> None:
    eot = bpe.special[END_OF_TEXT]
    assert bpe.n_vocab == 700 and eot == 698 and bpe.special["<|pad|>"] == 699
    text = f"the cat{END_OF_TEXT}sat"
    assert eot in R.encode(bpe, text, "all") and eot not in R.encode(bpe, text)
    assert encoder.encode(text, {END_OF_TEXT}) == R.encode(bpe, text, "all")
    assert bpe.decode(R.encode(bpe, text, "all")) == text == bpe.decode(R.encode(bpe, text))
    with pytest.raises(TokenError, match="special tokens"):
        R.encode(bpe, text, {"<|nope|>"})
    # special names take no part in training: no merge spells part of one across the corpus
    trained_with = F.train(END_OF_TEXT * 50 + "ab ab", 300, [END_OF_TEXT]).bpe
    assert all(b"|" not in a + b for a, b in trained_with.merges)


def test_one_hot_matrix_of_a_text(bpe: BPE) -> None:
    ids = R.encode(bpe, "the cat 😀")
    X = R.one_hot_matrix(bpe, "the cat 😀")
    assert X.shape == (len(ids), 700)
    np.testing.assert_array_equal(X, np.eye(700)[ids])
    assert R.one_hot_matrix(bpe, "").shape == (0, 700)


# -- fast = reference ------------------------------------------------------------------------


@settings(max_examples=max(40, settings().max_examples))
@given(small_alphabet_corpora(), st.integers(256, 300), st.lists(st.sampled_from([END_OF_TEXT, "<|a|>", "ab"]), max_size=2, unique=True))
def test_fast_trainer_equals_reference(text: str, size: int, special: list[str]) -> None:
    size = max(size, 256 + len(special))
    ref, fast = R.train(text, size, special), F.train(text, size, special)
    assert fast.bpe.merges == ref.bpe.merges and fast.bpe.tokens == ref.bpe.tokens
    assert fast.bpe.special == ref.bpe.special and fast.exhausted == ref.exhausted


@given(st.lists(texts(8), min_size=1, max_size=4), st.integers(257, 330))
def test_fast_trainer_equals_reference_on_unicode(documents: list[str], size: int) -> None:
    ref, fast = R.train(documents, size, [END_OF_TEXT]), F.train(documents, size, [END_OF_TEXT])
    assert fast.bpe.merges == ref.bpe.merges and fast.exhausted == ref.exhausted


@settings(max_examples=max(60, settings().max_examples))
@given(texts(), st.sampled_from(["none", "all"]))
def test_fast_encoder_equals_reference_and_round_trips(bpe: BPE, encoder: F.Encoder, text: str, allowed: str) -> None:
    ids = R.encode(bpe, text, allowed)
    assert encoder.encode(text, allowed) == ids
    assert bpe.decode(ids) == text == encoder.decode(ids)


@given(small_alphabet_corpora(), small_alphabet_corpora())
def test_encoders_agree_on_chained_merges(training: str, text: str) -> None:
    bpe = F.train(training, 300, pattern=r"[\s\S]+").bpe  # one word: long chains of merges
    assert F.encode(bpe, text) == R.encode(bpe, text)
    assert bpe.decode(R.encode(bpe, text)) == text


def test_long_words_and_runs(bpe: BPE, encoder: F.Encoder) -> None:
    for text in ["a" * 500, " " * 300 + "x", "😀" * 120, "ab" * 200, "\u0301" * 100]:
        assert encoder.encode(text) == R.encode(bpe, text)
        assert encoder.decode(encoder.encode(text)) == text


def test_trained_tokenization_of_the_corpus_is_the_training_state() -> None:
    """Encoding a training word with the learned merges gives exactly the training's final
    segmentation (recomputed here by applying the merges in order)."""
    text = corpus(1, 600)
    result = R.train(text, 420)
    for w in set(pretokenize(text)):
        word = tuple(bytes([b]) for b in w.encode())
        for pair in result.bpe.merges:
            word = merge_word(word, pair)
        assert R.encode_word(result.bpe, w.encode()) == [result.bpe.ids[t] for t in word]


# -- independent implementations: Hugging Face tokenizers / transformers, tiktoken --------------


def test_directory_holds_gpt2_format_files(saved: Path, bpe: BPE) -> None:
    assert sorted(os.listdir(saved)) == ["gptspec_tokenizer.json", "merges.txt", "tokenizer.tiktoken", "vocab.json"]
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["Ġ"] == 32 and vocab["!"] == 33 and vocab[END_OF_TEXT] == 698 and len(vocab) == 700
    lines = (saved / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2" and len(lines) == 1 + len(bpe.merges)
    assert all(len(line.split(" ")) == 2 for line in lines[1:])
    again = bpe_files.load(saved)
    assert again.tokens == bpe.tokens and again.merges == bpe.merges and again.special == bpe.special


@settings(max_examples=max(60, settings().max_examples))
@given(texts())
def test_equals_hugging_face_and_tiktoken(encoder: F.Encoder, hf: Any, tik: Any, text: str) -> None:
    ids = encoder.encode(text)
    assert hf.encode(text).ids == ids
    assert tik.encode_ordinary(text) == ids
    assert tik.encode(text, allowed_special="all") == encoder.encode(text, "all")


def test_equals_transformers_gpt2_tokenizer(saved: Path, encoder: F.Encoder) -> None:
    from transformers import GPT2TokenizerFast

    gpt2 = GPT2TokenizerFast(str(saved / "vocab.json"), str(saved / "merges.txt"))
    for seed in range(20):
        text = corpus(100 + seed, 40)
        assert gpt2.encode(text) == encoder.encode(text, {END_OF_TEXT})  # transformers reads <|endoftext|> as special
        assert gpt2.decode(encoder.encode(text, "all")) == text


@given(st.lists(st.integers(0, 699), max_size=30))
def test_decode_equals_hugging_face_and_tiktoken_even_when_not_utf8(bpe: BPE, hf: Any, tik: Any, ids: list[int]) -> None:
    ours = bpe.decode(ids)
    assert ours == tik.decode(ids)  # errors="replace"
    ordinary = [i for i in ids if i < 698]
    assert bpe.decode(ordinary) == hf.decode(ordinary, skip_special_tokens=False)  # Rust from_utf8_lossy


def test_foreign_gpt2_layout_directory_loads(tmp_path: Path) -> None:
    """A directory as GPT-2 ships it: byte tokens numbered in the map's order (``!`` = 0,
    ``Ġ`` = 220), ``<|endoftext|>`` last in vocab.json, no gptspec file — loads, and encodes
    as transformers' GPT2TokenizerFast does."""
    from transformers import GPT2TokenizerFast

    merges = F.train(corpus(3, 3000), 600, [END_OF_TEXT]).bpe.merges
    layout = bpe_files.gpt2_layout(merges)
    vocab = {token_to_text(t): i for i, t in layout.tokens.items()} | {END_OF_TEXT: layout.special[END_OF_TEXT]}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{token_to_text(a)} {token_to_text(b)}\n" for a, b in merges), encoding="utf-8")
    loaded = bpe_files.load(tmp_path)
    assert loaded.tokens[0] == b"!" and loaded.tokens[220] == b" " and loaded.special == {END_OF_TEXT: 599}
    gpt2 = GPT2TokenizerFast(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    encoder = F.Encoder(loaded)
    for seed in range(10):
        text = corpus(200 + seed, 50) + END_OF_TEXT
        assert encoder.encode(text, "all") == gpt2.encode(text) == R.encode(loaded, text, "all")


def test_tiktoken_rank_files_load(tmp_path: Path, saved: Path, bpe: BPE, encoder: F.Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiktoken.load import load_tiktoken_bpe

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache files
    assert load_tiktoken_bpe(str(saved / "tokenizer.tiktoken")) == bpe.rank_of_token()  # tiktoken's own reader
    ranks = list(bpe.rank_of_token().items())
    random.Random(0).shuffle(ranks)  # a file in another order, written independently
    path = tmp_path / "ranks.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks))
    loaded = bpe_files.load(path, special=dict(bpe.special))
    assert loaded.merges == bpe.merges and loaded.tokens == bpe.tokens
    text = corpus(7, 200)
    assert F.encode(loaded, text, "all") == encoder.encode(text, "all")


# -- bad input ---------------------------------------------------------------------------------


def test_targets_below_the_base_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"vocab size=255, but expected vocab size ≥ 256"):
        F.train("abc", 255)
    with pytest.raises(ConfigError, match=r"≥ 256 bytes \+ 1 special = 257"):
        R.train("abc", 256, [END_OF_TEXT])
    with pytest.raises(ConfigError, match="distinct"):
        F.train("abc", 300, ["<|x|>", "<|x|>"])


@pytest.mark.parametrize("train", [R.train, F.train])
def test_empty_and_exhausted_corpora_give_a_smaller_vocabulary(train: Any) -> None:
    empty = train("", 300, [END_OF_TEXT])
    assert empty.exhausted and empty.bpe.merges == () and empty.bpe.n_vocab == 257
    small = train("abab", 300)
    assert small.exhausted and small.bpe.merges == ((b"a", b"b"), (b"ab", b"ab")) and small.bpe.n_vocab == 258


def test_decode_refuses_ids_outside_the_vocabulary(bpe: BPE, encoder: F.Encoder) -> None:
    for decode in (bpe.decode, encoder.decode, R.decode.__get__(bpe)):
        with pytest.raises(TokenError, match=r"token id=700, but expected an id of the vocabulary, 0 ≤ id < n_vocab=700"):
            decode([1, 700])
        with pytest.raises(TokenError, match="token id=-1"):
            decode([-1])
    gappy = BPE({b: bytes([b]) for b in range(256)}, (), {END_OF_TEXT: 300})
    with pytest.raises(TokenError, match="unused"):
        gappy.decode([299])


def test_invalid_utf8_decodes_with_replacement(bpe: BPE) -> None:
    assert bpe.decode([0xE2, 0x82]) == "\ufffd"  # a truncated 3-byte sequence: one maximal subpart
    assert bpe.decode([0xFF, 0xFE, ord("a")]) == "\ufffd\ufffda"
    assert bpe.decode([0xE2, 0x82, 0xAC]) == "€"  # split across ids, still one character
    assert bpe.decode_bytes([0xFF]) == b"\xff"


def test_lone_surrogates_are_refused(bpe: BPE, encoder: F.Encoder) -> None:
    for encode in (lambda s: R.encode(bpe, s), encoder.encode):
        with pytest.raises(TokenError, match="surrogate"):
            encode("a\ud800b")


def write(directory: Path, vocab: Any, merges: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "vocab.json").write_text(vocab if isinstance(vocab, str) else json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text(merges, encoding="utf-8")
    return directory


def base_vocab() -> dict[str, int]:
    return {token_to_text(bytes([b])): b for b in range(256)}


CORRUPT = {
    "not json": ("{", "#version: 0.2\n", CheckpointError, "expected valid JSON"),
    "a list": ("[1, 2]", "", CheckpointError, "holds a list"),
    "id not a number": (base_vocab() | {"ab": "x"}, "a b\n", CheckpointError, r"'ab'='x', but expected an id"),
    "two tokens one id": (base_vocab() | {"ab": 3}, "a b\n", CheckpointError, "both have id=3"),
    "repeated key": ('{"a": 1, "a": 2}', "", CheckpointError, "names 'a' twice"),
    "merge line of three": (base_vocab() | {"ab": 256}, "a b c\n", CheckpointError, "line 1='a b c', but expected two byte-level tokens"),
    "merge outside the alphabet": (base_vocab() | {"ab": 256}, "a \u4e00\n", TokenError, "byte-level alphabet"),
    "merge result missing": (base_vocab(), "a b\n", TokenError, "makes b'ab', but expected that token in the vocabulary"),
    "merges out of order": (base_vocab() | {"ab": 256, "abc": 257}, "ab c\na b\n", TokenError, "the merges are out of order"),
    "byte missing": ({k: v for k, v in base_vocab().items() if v != 7}, "", TokenError, r"\(1 of 256\) are missing"),
    "repeated merge": (base_vocab() | {"ab": 256}, "a b\na b\n", TokenError, "each pair once"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_or_inconsistent_files_are_refused(tmp_path: Path, case: str) -> None:
    vocab, merges, error, message = CORRUPT[case]
    with pytest.raises(error, match=message):
        bpe_files.load(write(tmp_path / "tok", vocab, merges))


def test_missing_files_and_mismatched_metadata_are_refused(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(FileError, match="merges.txt is missing"):
        bpe_files.load(write(tmp_path / "a", base_vocab(), "") and (os.remove(tmp_path / "a" / "merges.txt") or tmp_path / "a"))
    with pytest.raises(FileError, match="does not exist, but expected a directory with vocab.json"):
        bpe_files.load(tmp_path / "nowhere")
    copy = tmp_path / "b"
    copy.mkdir()
    for name in os.listdir(saved):
        (copy / name).write_bytes((saved / name).read_bytes())
    meta = json.loads((copy / "gptspec_tokenizer.json").read_text())
    meta["special"][END_OF_TEXT] = 5
    (copy / "gptspec_tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not belong together"):
        bpe_files.load(copy)


def test_corrupt_tiktoken_files_are_refused(tmp_path: Path) -> None:
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    cases = {
        "bad base64": (lines + ["!!! 256"], CheckpointError, "expected 'BASE64 RANK'"),
        "one field": (lines + ["YWI="], CheckpointError, "expected 'BASE64 RANK'"),
        "two tokens one rank": (lines + ["YWI= 5"], CheckpointError, "both have rank=5"),
        "not a merge list": (lines + ["YWJj 256"], TokenError, "splits into 3 parts"),  # "abc" with no "ab"/"bc"
        "byte missing": (lines[1:], TokenError, "one-byte tokens missing=1"),
    }
    for name, (content, error, message) in cases.items():
        path = tmp_path / f"{name}.tiktoken"
        path.write_text("\n".join(content) + "\n")
        with pytest.raises(error, match=message):
            bpe_files.load(path)


def test_inconsistent_values_are_refused() -> None:
    base = {b: bytes([b]) for b in range(256)}
    with pytest.raises(TokenError, match="one id per token"):
        BPE(base | {256: b"a"}, ())
    with pytest.raises(TokenError, match="already"):
        BPE(base, (), {END_OF_TEXT: 5})
    with pytest.raises(TokenError, match="increasing"):
        BPE(base | {257: b"ab", 256: b"abc"}, ((b"a", b"b"), (b"ab", b"c"))).rank_of_token()

