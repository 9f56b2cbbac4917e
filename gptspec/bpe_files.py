"""Tokenizer files: GPT-2's byte-level ``vocab.json`` + ``merges.txt``, and tiktoken rank files.

A directory written by :func:`save` holds

* ``vocab.json`` — ``{token: id}``, each ordinary token written through GPT-2's byte ↔ unicode
  map (:func:`spec.tokenizer.bytes_to_unicode`), each special token under its own name (as
  GPT-2's file lists ``<|endoftext|>``);
* ``merges.txt`` — ``#version: 0.2``, then one merge per line in rank order, its two tokens in
  the byte-level alphabet separated by one space (the alphabet has no space: 0x20 is ``Ġ``);
* ``gptspec_tokenizer.json`` — the pre-tokenization pattern and the special tokens;
* ``tokenizer.tiktoken`` — tiktoken's format: ``base64(token) id`` per line (ordinary tokens).

So Hugging Face ``tokenizers``/``transformers`` (``ByteLevelBPETokenizer(vocab, merges)``,
``GPT2TokenizerFast(vocab_file, merges_file)``) and tiktoken load it directly. :func:`load`
reads such a directory, a foreign GPT-2-format directory (no ``gptspec_tokenizer.json``: GPT-2's
pattern, and every ``vocab.json`` entry that is neither a one-byte token nor a merge's result is
a special token under its own name — ``<|endoftext|>`` for GPT-2), or a ``.tiktoken`` file.

A path that cannot be read as asked (missing, a directory where a file is expected, a FIFO, a
symlink loop, larger than :data:`gptspec.files.MAX_FILE_BYTES`) is a :class:`FileError`; file
content that is malformed (not UTF-8, not JSON or nested too deep, malformed lines, repeated
entries, a multi-byte vocabulary token that no merge makes — the sign of an empty or truncated
``merges.txt``) is a :class:`CheckpointError`; a vocabulary and merges that do not fit together
are the spec's :class:`TokenError` (:meth:`spec.tokenizer.BPE.check`).

:func:`save` writes the directory atomically (:func:`gptspec.files.atomic_directory`): the four
files appear together or not at all, and an existing directory's four files are replaced (a
stale ``tokenizer.tiktoken`` removed when the new vocabulary has none), other files left alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gptspec.files import MAX_FILE_BYTES, as_path, atomic_directory, kind, loads_json, os_problem, read_text, write_text
from spec.errors import CheckpointError, ConfigError, FileError, TokenError
from spec.tokenizer import BASE_SIZE, BPE, GPT2_PATTERN, Pair, text_to_token, token_to_text

VOCAB = "vocab.json"
MERGES = "merges.txt"
META = "gptspec_tokenizer.json"
TIKTOKEN = "tokenizer.tiktoken"
MERGES_HEADER = "#version: 0.2"


FILES = (VOCAB, MERGES, META, TIKTOKEN)
"""The files :func:`save` writes (and replaces in an existing directory)."""


def save(bpe: BPE, directory: str | os.PathLike[str]) -> Path:
    """Write the files of a tokenizer directory (module docstring), atomically; returns the
    directory. Its parent must exist; a file at ``directory`` is refused (:class:`FileError`)."""
    _check_bpe(bpe, "save tokenizer")
    out = as_path(directory, "save tokenizer")
    vocab = {token_to_text(t): i for i, t in sorted(bpe.tokens.items())}
    for name, i in sorted(bpe.special.items(), key=lambda item: item[1]):
        if name in vocab:
            raise TokenError(
                f"special token {name!r}, but expected a name that is not also an ordinary token's byte-level text "
                f"[{out / VOCAB}]; vocab.json could not tell them apart"
            )
        vocab[name] = i
    lines = [MERGES_HEADER, *(f"{token_to_text(a)} {token_to_text(b)}" for a, b in bpe.merges)]
    meta = {"format": "gptspec byte-level BPE", "pattern": bpe.pattern, "special": dict(bpe.special), "n_vocab": bpe.n_vocab}
    try:
        ranks: str | None = tiktoken_text(bpe)
    except TokenError:
        ranks = None  # not expressible as tiktoken ranks: leave the file out
    with atomic_directory(out, f"save tokenizer {out}", owned=FILES) as building:
        (building / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        (building / MERGES).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (building / META).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if ranks is not None:
            (building / TIKTOKEN).write_text(ranks, encoding="ascii")
    return out


def tiktoken_text(bpe: BPE) -> str:
    """The text of tiktoken's rank file: ``base64(token) rank`` per line, rank = id (ordinary
    tokens); a vocabulary that has no such ranks is a :class:`TokenError`."""
    ranks = bpe.rank_of_token()
    lines = [f"{base64.b64encode(t).decode('ascii')} {r}" for t, r in sorted(ranks.items(), key=lambda item: item[1])]
    return "\n".join(lines) + "\n"


def save_tiktoken(bpe: BPE, path: str | os.PathLike[str]) -> Path:
    """Write tiktoken's rank file (:func:`tiktoken_text`) atomically; returns the path."""
    _check_bpe(bpe, "save tiktoken ranks")
    return write_text(as_path(path, "save tiktoken ranks"), tiktoken_text(bpe), f"save tiktoken ranks {path}")


def _check_bpe(bpe: object, where: str) -> None:
    if not isinstance(bpe, BPE):
        raise TokenError(f"tokenizer of type {type(bpe).__name__}, but expected a spec.tokenizer.BPE [{where}]")


def _check_options(pattern: object, special: object, where: str) -> None:
    if pattern is not None and not isinstance(pattern, str):
        raise ConfigError(f"pattern of type {type(pattern).__name__}, but expected a regular expression string or None [{where}]")
    if special is not None and not isinstance(special, Mapping):
        raise ConfigError(f"special of type {type(special).__name__}, but expected a mapping of names to ids or None [{where}]")


def load(path: str | os.PathLike[str], pattern: str | None = None, special: Mapping[str, int] | None = None) -> BPE:
    """A tokenizer directory (ours or GPT-2's format) or a ``.tiktoken`` rank file.
    ``pattern`` overrides the stored one (default GPT-2's); ``special`` gives a rank file's
    special tokens (a directory lists its own)."""
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) in ("", b""):
        raise FileError(
            f"tokenizer={path!r}, but expected a directory with {VOCAB} and {MERGES}, or a .tiktoken file [load tokenizer]"
        )
    _check_options(pattern, special, "load tokenizer")
    where = Path(path)
    try:
        mode = os.stat(where).st_mode
    except OSError as error:
        raise FileError(
            f"tokenizer={str(where)!r} {os_problem(error)}, but expected a directory with {VOCAB} and {MERGES}, or a "
            ".tiktoken rank file [load tokenizer]; train one with `gptspec bpe train CORPUS --vocab-size N --out DIR`"
        ) from None
    if stat.S_ISDIR(mode):
        if special is not None:
            raise CheckpointError(f"special={dict(special)}, but expected none for a directory [{where}]; vocab.json lists them")
        return load_gpt2(where / VOCAB, where / MERGES, pattern)
    if stat.S_ISREG(mode):
        return load_tiktoken(where, pattern or GPT2_PATTERN, special or {})
    raise FileError(
        f"tokenizer={str(where)!r} is {kind(mode)}, but expected a directory with {VOCAB} and {MERGES}, or a "
        ".tiktoken rank file [load tokenizer]"
    )


def _read(path: Path) -> str:
    if not os.path.lexists(path):
        raise FileError(f"{path.name} is missing, but expected it in {path.parent} [load tokenizer]")
    return read_text(path, f"load tokenizer {path.parent}", MAX_FILE_BYTES, CheckpointError)


def _json_object(path: Path) -> dict[str, Any]:
    value = loads_json(_read(path), f"{path}")
    if not isinstance(value, dict):
        raise CheckpointError(f"{path.name} holds a {type(value).__name__}, but expected a JSON object [{path}]")
    return value


def load_gpt2(vocab_path: str | os.PathLike[str], merges_path: str | os.PathLike[str], pattern: str | None = None) -> BPE:
    """GPT-2's byte-level ``vocab.json`` and ``merges.txt`` (and our ``gptspec_tokenizer.json``
    beside them, when present)."""
    _check_options(pattern, None, "load tokenizer")
    vocab_file, merges_file = as_path(vocab_path, "load tokenizer vocab"), as_path(merges_path, "load tokenizer merges")
    vocab = _json_object(vocab_file)
    entries: dict[str, int] = {}
    ids_seen: dict[int, str] = {}
    for key, i in vocab.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise CheckpointError(f"{key!r}={i!r}, but expected an id, a whole number ≥ 0 [{vocab_file}]")
        if i in ids_seen:
            raise CheckpointError(f"{key!r} and {ids_seen[i]!r} both have id={i}, but expected one token per id [{vocab_file}]")
        ids_seen[i] = key
        entries[key] = i
    merges: list[Pair] = []
    for number, line in enumerate(_read(merges_file).splitlines(), start=1):
        if line.startswith("#version") or not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise CheckpointError(
                f"{merges_file.name} line {number}={line!r}, but expected two byte-level tokens separated by one space "
                f"[{merges_file}]"
            )
        merges.append((text_to_token(parts[0], f"{merges_file} line {number}"), text_to_token(parts[1], f"{merges_file} line {number}")))
    meta_file = vocab_file.parent / META
    named: dict[str, int] | None = None
    if os.path.lexists(meta_file):
        meta = _json_object(meta_file)
        stored_pattern, stored_special = meta.get("pattern"), meta.get("special")
        if not isinstance(stored_pattern, str) or not isinstance(stored_special, dict):
            raise CheckpointError(f"{META} pattern/special={stored_pattern!r}/{stored_special!r}, but expected a string and an object [{meta_file}]")
        pattern = pattern or stored_pattern
        named = {str(k): v for k, v in stored_special.items()}
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in named.values()):
            raise CheckpointError(f"{META} special={stored_special!r}, but expected an object of names to ids [{meta_file}]")
        for name, i in named.items():
            if entries.get(name) != i:
                raise CheckpointError(
                    f"special token {name!r} has id {entries.get(name)!r} in {VOCAB}, but expected id={i!r} as in {META} "
                    f"[{vocab_file.parent}]; the files do not belong together"
                )
    made = {bytes([b]) for b in range(BASE_SIZE)} | {a + b for a, b in merges}
    tokens: dict[int, bytes] = {}
    special: dict[str, int] = {}
    for key, i in sorted(entries.items(), key=lambda item: item[1]):
        if named is not None:
            if key in named:
                special[key] = i
            else:
                tokens[i] = text_to_token(key, f"{vocab_file}")
                if tokens[i] not in made:
                    raise _unmade(key, i, vocab_file, merges_file, len(merges))
            continue
        try:
            token = text_to_token(key, f"{vocab_file}")
        except TokenError:
            token = b""
        if token in made:
            tokens[i] = token
        elif token and not _special_looking(key):
            raise _unmade(key, i, vocab_file, merges_file, len(merges))
        else:
            special[key] = i  # neither a byte nor a merge's result: GPT-2's <|endoftext|>
    seen: dict[bytes, int] = {}
    for i, token in tokens.items():
        if token in seen:
            raise CheckpointError(
                f"{token_to_text(token)!r} (id {i}) spells the same bytes as id {seen[token]}, but expected each token once "
                f"[{vocab_file}]"
            )
        seen[token] = i
    return BPE(tokens, tuple(merges), special, pattern or GPT2_PATTERN)


def _special_looking(name: str) -> bool:
    """A foreign ``vocab.json`` entry that no merge makes is read as a special token only when
    it looks like one — ``<…>`` (``<|endoftext|>``, ``<s>``, ``<pad>``) or ``[…]`` (``[CLS]``) —
    or is not byte-level text at all; anything else (``Ġthe``, ``ing``) is an ordinary token
    whose merge is missing."""
    return len(name) > 2 and (name[0], name[-1]) in (("<", ">"), ("[", "]"))


def _unmade(key: str, i: int, vocab_file: Path, merges_file: Path, n_merges: int) -> CheckpointError:
    return CheckpointError(
        f"{vocab_file.name} token {key!r} (id {i}) is made by no merge of the {n_merges} in {merges_file.name}, but expected "
        f"every multi-byte token to be a merge's result [{vocab_file.parent}]; {merges_file.name} is empty, truncated or "
        f"belongs to another vocabulary (a special token must be listed in {META}, or look like <name> or [NAME])"
    )


def tiktoken_merges(ranks: Mapping[bytes, int]) -> list[Pair]:
    """The merge list a rank file implies: for each multi-byte token t in rank order, BPE on t's
    bytes with the tokens of lower rank (tiktoken's rule: merge the adjacent pair whose
    concatenation has the lowest rank) must end in exactly two parts (a, b), and (a, b) is t's
    merge. (Hugging Face converts tiktoken files the same way.)"""
    merges: list[Pair] = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best: tuple[int, int] | None = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise TokenError(
                f"token {token!r} (rank {rank}) splits into {len(parts)} parts under the lower ranks, but expected 2 "
                "[tiktoken ranks]; the file is not a BPE merge list"
            )
        merges.append((parts[0], parts[1]))
    return merges


def load_tiktoken(path: str | os.PathLike[str], pattern: str = GPT2_PATTERN, special: Mapping[str, int] | None = None) -> BPE:
    """A tiktoken rank file (``base64(token) rank`` per line): id = rank, merges by
    :func:`tiktoken_merges`; ``special`` maps special names to ids (tiktoken keeps them in code)."""
    _check_options(pattern, special, "load tiktoken ranks")
    file = as_path(path, "load tiktoken ranks")
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(_read(file).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
        except (ValueError, binascii.Error):
            raise CheckpointError(f"{file.name} line {number}={line[:60]!r}, but expected 'BASE64 RANK' [{file}]") from None
        if token in ranks:
            raise CheckpointError(f"{file.name} line {number}: token {token!r} appears twice, but expected each token once [{file}]")
        ranks[token] = rank
    by_rank: dict[int, bytes] = {}
    for token, rank in ranks.items():
        if rank in by_rank:
            raise CheckpointError(f"{token!r} and {by_rank[rank]!r} both have rank={rank}, but expected one token per rank [{file}]")
        by_rank[rank] = token
    missing = [b for b in range(BASE_SIZE) if bytes([b]) not in ranks]
    if missing:
        raise TokenError(f"one-byte tokens missing={len(missing)}, but expected all 256 bytes [{file}]")
    return BPE(by_rank, tuple(tiktoken_merges(ranks)), dict(special or {}), pattern)


def gpt2_layout(merges: Sequence[Pair], special: Sequence[str] = ("<|endoftext|>",), pattern: str = GPT2_PATTERN) -> BPE:
    """The id layout of GPT-2's own files: the one-byte tokens numbered in the order of the
    byte ↔ unicode map (``!`` is 0, …, ``Ġ`` is 220), then each merge's token, then the
    special tokens. Useful to test that nothing assumes id = byte value."""
    from spec.tokenizer import bytes_to_unicode, trained

    order = sorted(range(BASE_SIZE), key=lambda b: ord(bytes_to_unicode()[b]))
    return trained(merges, special, pattern, base=order)
