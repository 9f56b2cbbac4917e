"""Bad input, everywhere: one table of malformed and hostile inputs to the command line and the
Python API, each with the outcome it must have — a one-line error and exit status 2, could not
run (CLI; README, "Exit status"), or a typed :class:`~spec.errors.GptSpecError` (API) — never a
traceback, a hang, a half-written file, the status of a failed check (1) or a silently wrong
result.

To add a case, add a :class:`Case` to :data:`CASES`:

* ``run``: the argv of ``gptspec.cli.main`` (``{fx}`` is replaced by the directory of prepared
  inputs built by :func:`fx`, ``{out}`` by a fresh empty directory for outputs), or a callable
  ``run(fx, out)`` for an API case;
* ``expect``: for the CLI, a fragment of the error line (which must be the last line of standard
  error, start with ``gptspec COMMAND: error:`` and be one line); for the API, the error class
  (``match`` is then a fragment of its message);
* optional: ``stdin`` (bytes), ``setup(out)`` to put files in ``{out}`` first (they must be
  left exactly as they were), ``fault(monkeypatch)`` to inject a failure such as a full device,
  ``usage`` (an argparse usage error, which exits 2 through SystemExit with argparse's own
  message), ``xfail`` (why the case fails today: strict, so the marker must go once it passes).

After every case the test checks that ``{out}`` and the prepared inputs are unchanged: nothing
written, nothing half-written, no temporary file left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest

import fast
import fast.bpe as F
import reference
from gptspec import bpe_files, files, safetensors_io
from gptspec.checkpoint import THETA_FORMAT, save_theta
from gptspec.cli import COULD_NOT_RUN, main
from gptspec.lm_cli import parse_ids
from spec import GPTConfig, build, build_gpt, preset
from spec.errors import CheckpointError, ConfigError, FileError, GptSpecError, ShapeError, TokenError
from spec.theta import preset_theta, random_theta
from spec.tokenizer import END_OF_TEXT

FX = "{fx}"
OUT = "{out}"
Call = Callable[[Path, Path], object]


@dataclass(frozen=True)
class Case:
    """One malformed or hostile input and the outcome it must have (module docstring)."""

    id: str
    run: Sequence[str] | Call
    expect: str | type[GptSpecError]
    match: str = ""
    stdin: bytes | None = None
    setup: Callable[[Path], None] | None = None
    fault: Callable[[pytest.MonkeyPatch], None] | None = None
    usage: bool = False
    xfail: str = ""
    skip: str = ""


# -- helpers the table uses ----------------------------------------------------------------------

CORPUS = "the cat sat on the mat; the lower, the newer, the wider. " * 40


def a_file(name: str, content: bytes = b"precious\n") -> Callable[[Path], None]:
    """setup: an existing file in {out} (which a refused write must leave as it was)."""

    def setup(out: Path) -> None:
        (out / name).write_bytes(content)

    return setup


def a_tokenizer_with(name: str, *, directory_named: str = "") -> Callable[[Path], None]:
    """setup: an existing tokenizer directory {out}/name with old files (and a directory where a
    file would go, when asked)."""

    def setup(out: Path) -> None:
        (out / name).mkdir()
        for file in bpe_files.FILES:
            (out / name / file).write_text(f"old {file}\n")
        (out / name / "README").write_text("mine\n")
        if directory_named:
            (out / name / directory_named).unlink()
            (out / name / directory_named).mkdir()

    return setup


def full_device(target: str) -> Callable[[pytest.MonkeyPatch], None]:
    """fault: ``Path.write_text`` writes half of the text, then fails with ENOSPC — as a full
    device does (``target`` names the file that fails; others are written)."""

    def fault(monkeypatch: pytest.MonkeyPatch) -> None:
        original = Path.write_text

        def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
            if self.name != target:
                return original(self, data, *args, **kwargs)
            original(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

        monkeypatch.setattr(Path, "write_text", write_text)

    return fault


def npy_device_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """fault: writing a .npy writes some bytes, then fails with ENOSPC, as a full device does."""

    def write_array(stream: BinaryIO, array: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np.lib.format, "write_array", write_array)


def failing_writer(code: int) -> Callable[[BinaryIO], None]:
    """A ``write_atomic`` writer that writes some bytes, then fails with ``code`` (ENOSPC, EFBIG)."""

    def write(stream: BinaryIO) -> None:
        stream.write(b"x" * 10_000)
        raise OSError(code, os.strerror(code))

    return write


def ascii_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """fault: standard output that can only encode ASCII (PYTHONIOENCODING=ascii)."""
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))


def raw_safetensors(path: Path, header: Any, data: bytes = b"", text: str | None = None) -> None:
    blob = (text if text is not None else json.dumps(header)).encode("utf-8")
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def bpe_with_special(name: str) -> Any:
    return F.train(CORPUS, 270, [name]).bpe


MODEL = ["tiny", "--impl", "reference"]
GEN = ["generate", *MODEL, "--tokens", "1 2", "--max-new-tokens", "2"]
SCORE = ["score", *MODEL]
TRAIN = ["bpe", "train", f"{FX}/corpus.txt", "--vocab-size", "270", "--quiet"]
TOK = f"{FX}/tok"
FWD = ["forward", "tiny", "--tokens", "1 2"]
TINY = GPTConfig(n_vocab=7, n_ctx=4, d_model=4, n_layers=1, n_heads=2, name="tiny-api")


def complex_theta() -> dict[str, np.ndarray]:
    theta: dict[str, np.ndarray] = dict(preset_theta(build(TINY), 0))
    theta["W_E"] = theta["W_E"] + 1j
    return theta


def nan_theta() -> dict[str, np.ndarray]:
    theta = preset_theta(build(TINY), 0)
    theta["ln_f.gamma"][0] = np.nan
    return theta
DEEP = "[" * 100_000

CASES: list[Case] = [
    # -- bpe train: corpora --------------------------------------------------------------------
    Case("train-stdin-not-utf8", ["bpe", "train", "-", "--vocab-size", "270", "--out", f"{OUT}/tok", "--quiet"],
         "byte 0 of standard input=0xFF, but expected UTF-8 text", stdin=b"\xff\xfeabc"),
    Case("train-file-not-utf8", ["bpe", "train", f"{FX}/not-utf8.txt", "--vocab-size", "270", "--out", f"{OUT}/tok"],
         "byte 3 of", ),
    Case("train-corpus-directory", ["bpe", "train", f"{FX}/dir", "--vocab-size", "270", "--out", f"{OUT}/tok"], "is a directory"),
    Case("train-corpus-fifo-no-writer", ["bpe", "train", f"{FX}/fifo", "--vocab-size", "270", "--out", f"{OUT}/tok"], "of 0 bytes"),
    Case("train-corpus-symlink-loop", ["bpe", "train", f"{FX}/loop-a", "--vocab-size", "270", "--out", f"{OUT}/tok"], "symlink loop"),
    Case("train-corpus-missing", ["bpe", "train", f"{FX}/missing.txt", "--vocab-size", "270", "--out", f"{OUT}/tok"], "does not exist"),
    Case("train-corpus-dev-zero", ["bpe", "train", "/dev/zero", "--vocab-size", "270", "--out", f"{OUT}/tok"], "holds more than"),
    Case("train-corpus-unreadable", ["bpe", "train", f"{FX}/unreadable.txt", "--vocab-size", "270", "--out", f"{OUT}/tok"],
         "permission denied", skip="root reads files whatever their mode" if os.geteuid() == 0 else ""),
    Case("train-vocab-size-negative", [*TRAIN, "--vocab-size", "-1", "--out", f"{OUT}/tok"], "vocab size=-1"),
    Case("train-pattern-invalid", [*TRAIN, "--pattern", "(", "--out", f"{OUT}/tok"], "valid regular expression"),
    Case("train-pattern-empty", [*TRAIN, "--pattern", "", "--out", f"{OUT}/tok"], "unmatched"),
    Case("train-special-empty", [*TRAIN, "--special", "", "--out", f"{OUT}/tok"], "distinct non-empty names"),
    Case("train-special-a-byte", [*TRAIN, "--special", "a", "--out", f"{OUT}/tok"], "one-byte token"),
    Case("train-special-a-merge", [*TRAIN, "--special", "Ġthe", "--out", f"{OUT}/tok"], "not also an ordinary token"),
    Case("train-impl-unknown", [*TRAIN, "--impl", "gpu", "--out", f"{OUT}/tok"], "--impl 'gpu'"),
    Case("train-vocab-size-not-a-number", [*TRAIN, "--vocab-size", "many", "--out", f"{OUT}/tok"], "invalid int value", usage=True),
    # -- bpe train: the output directory ---------------------------------------------------------
    Case("train-out-onto-a-file", [*TRAIN, "--out", f"{OUT}/taken"], "is a regular file, but expected a directory",
         setup=a_file("taken")),
    Case("train-out-missing-parent", [*TRAIN, "--out", f"{OUT}/missing/tok"], "does not exist"),
    Case("train-out-under-a-file", [*TRAIN, "--out", f"{FX}/corpus.txt/tok"], "not a directory"),
    Case("train-out-empty", [*TRAIN, "--out", ""], "path=''"),
    Case("train-out-dev-null", [*TRAIN, "--out", "/dev/null"], "is a character device"),
    Case("train-out-symlink-loop", [*TRAIN, "--out", f"{FX}/loop-a"], "symlink loop"),
    Case("train-out-file-slot-is-a-directory", [*TRAIN, "--out", f"{OUT}/tok"], "vocab.json is a directory",
         setup=a_tokenizer_with("tok", directory_named="vocab.json")),
    Case("train-full-device-new-directory", [*TRAIN, "--out", f"{OUT}/tok"], "the device is full",
         fault=full_device("merges.txt")),
    Case("train-full-device-existing-directory", [*TRAIN, "--out", f"{OUT}/tok"], "the device is full",
         setup=a_tokenizer_with("tok"), fault=full_device("gptspec_tokenizer.json")),
    # -- bpe encode / decode ---------------------------------------------------------------------------
    Case("encode-stdin-not-utf8", ["bpe", "encode", TOK, "-"], "byte 2 of standard input=0xFF", stdin=b"ab\xffcd"),
    Case("encode-dev-zero", ["bpe", "encode", TOK, "@/dev/zero"], "holds more than 268,435,456 bytes"),
    Case("encode-at-nothing", ["bpe", "encode", TOK, "@"], "path=''"),
    Case("encode-at-directory", ["bpe", "encode", TOK, f"@{FX}/dir"], "is a directory"),
    Case("encode-at-symlink-loop", ["bpe", "encode", TOK, f"@{FX}/loop-a"], "symlink loop"),
    Case("encode-at-file-not-utf8", ["bpe", "encode", TOK, f"@{FX}/not-utf8.txt"], "byte 3 of"),
    Case("encode-at-name-with-a-newline", ["bpe", "encode", TOK, f"@{FX}/no\nsuch"], "no\\nsuch' does not exist"),
    Case("encode-tokenizer-empty-path", ["bpe", "encode", "", "hi"], "--tokenizer ''"),
    Case("encode-tokenizer-missing", ["bpe", "encode", f"{FX}/nowhere", "hi"], "does not exist"),
    Case("encode-tokenizer-fifo", ["bpe", "encode", f"{FX}/fifo", "hi"], "is a FIFO"),
    Case("encode-tokenizer-symlink-loop", ["bpe", "encode", f"{FX}/loop-a", "hi"], "symlink loop"),
    Case("encode-tokenizer-dev-null", ["bpe", "encode", "/dev/null", "hi"], "is a character device"),
    Case("encode-tokenizer-directory-without-files", ["bpe", "encode", f"{FX}/dir", "hi"], "vocab.json is missing"),
    Case("encode-tokenizer-not-a-rank-file", ["bpe", "encode", f"{FX}/corpus.txt", "hi"], "expected 'BASE64 RANK'"),
    Case("encode-vocab-is-a-directory", ["bpe", "encode", f"{FX}/tok-vocab-dir", "hi"], "is a directory"),
    Case("encode-vocab-fifo", ["bpe", "encode", f"{FX}/tok-vocab-fifo", "hi"], "JSON text is empty"),
    Case("encode-vocab-symlink-loop", ["bpe", "encode", f"{FX}/tok-vocab-loop", "hi"], "symlink loop"),
    Case("encode-vocab-deep", ["bpe", "encode", f"{FX}/tok-vocab-deep", "hi"], "nesting depth=100000"),
    Case("encode-vocab-nan", ["bpe", "encode", f"{FX}/tok-vocab-nan", "hi"], "holds NaN"),
    Case("encode-vocab-not-utf8", ["bpe", "encode", f"{FX}/tok-vocab-latin1", "hi"], "expected UTF-8 text"),
    Case("encode-meta-deep", ["bpe", "encode", f"{FX}/tok-meta-deep", "hi"], "nesting depth=100000"),
    Case("encode-meta-special-not-ids", ["bpe", "encode", f"{FX}/tok-meta-special", "hi"], "expected an object of names to ids"),
    Case("encode-merges-dev-zero", ["bpe", "encode", f"{FX}/tok-merges-zero", "hi"], "holds more than 100,000,000 bytes"),
    Case("encode-merges-truncated", ["bpe", "encode", f"{FX}/tok-truncated", "hi"], "is made by no merge of the 3"),
    Case("encode-merges-empty", ["bpe", "encode", f"{FX}/tok-empty-merges", "hi"], "is made by no merge of the 0"),
    Case("encode-foreign-merges-truncated", ["bpe", "encode", f"{FX}/tok-foreign-truncated", "hi"], "is made by no merge"),
    Case("decode-dev-zero", ["bpe", "decode", TOK, "@/dev/zero"], "holds more than"),
    Case("decode-huge-number", ["bpe", "decode", TOK, "9" * 5000], "(5,000 characters) is outside every vocabulary"),
    Case("decode-not-ascii-digits", ["bpe", "decode", TOK, "\u0661\u0662"], "expected a whole number"),
    Case("decode-fraction", ["bpe", "decode", TOK, "1.5"], "token 0='1.5'"),
    Case("decode-negative", ["bpe", "decode", TOK, "-1"], "token id=-1"),
    Case("decode-beyond-vocabulary", ["bpe", "decode", TOK, "270"], "token id=270"),
    Case("decode-output-not-encodable", ["bpe", "decode", TOK, "200 201"], "output encoding ascii", fault=ascii_stdout),
    Case("decode-stdin-not-utf8", ["bpe", "decode", TOK, "-"], "byte 1 of standard input", stdin=b"1\xff"),
    # -- generate / score: numeric options ---------------------------------------------------------------
    Case("generate-seed-negative", [*GEN, "--temperature", "1", "--seed", "-1"], "--seed -1, but expected a whole number 0 ≤ seed"),
    Case("generate-seed-too-large", [*GEN, "--temperature", "1", "--seed", str(2**63)], "< 2^63"),
    Case("generate-weights-seed-negative", [*GEN, "--weights-seed", "-1"], "--weights-seed -1"),
    Case("generate-max-new-tokens-negative", [*GEN, "--max-new-tokens", "-1"], "--max-new-tokens -1"),
    Case("generate-max-new-tokens-huge", [*GEN, "--max-new-tokens", str(10**20)], "expected ≤ n_ctx=32"),
    Case("generate-top-k-zero", [*GEN, "--temperature", "1", "--top-k", "0"], "top-k=0"),
    Case("generate-top-k-negative", [*GEN, "--top-k", "-3"], "top-k=-3"),
    Case("generate-temperature-nan", [*GEN, "--temperature", "nan"], "temperature=nan"),
    Case("generate-temperature-inf", [*GEN, "--temperature", "inf"], "temperature=inf"),
    Case("generate-temperature-negative", [*GEN, "--temperature", "-0.5"], "temperature=-0.5"),
    Case("generate-stop-negative", [*GEN, "--stop", "-5"], "--stop -5"),
    Case("generate-stop-beyond-vocabulary", [*GEN, "--stop", "64"], "0 ≤ stop < 64"),
    Case("generate-dtype-with-reference", [*GEN, "--dtype", "float32"], "--dtype float32 with --impl reference"),
    Case("generate-impl-unknown", ["generate", "tiny", "--impl", "cuda", "--tokens", "1", "--max-new-tokens", "1"], "--impl 'cuda'"),
    Case("generate-seed-not-a-number", [*GEN, "--seed", "1e3"], "invalid int value", usage=True),
    Case("generate-no-input", ["generate", *MODEL, "--max-new-tokens", "1"], "no input"),
    Case("generate-two-inputs", ["generate", *MODEL, "--prompt", "1", "--tokens", "1", "--max-new-tokens", "1"], "both a text and --tokens"),
    Case("generate-empty-prompt", ["generate", *MODEL, "--prompt", "", "--max-new-tokens", "1"], "prompt length=0"),
    Case("generate-prompt-dev-zero", ["generate", *MODEL, "--prompt", "@/dev/zero", "--max-new-tokens", "1"], "holds more than"),
    Case("generate-prompt-stdin-not-utf8", ["generate", *MODEL, "--prompt", "-", "--max-new-tokens", "1"], "byte 0 of standard input",
         stdin=b"\xc3("),
    Case("generate-tokens-not-numbers", ["generate", *MODEL, "--tokens", "1 x", "--max-new-tokens", "1"], "token 1='x'"),
    Case("generate-tokens-beyond-vocabulary", ["generate", *MODEL, "--tokens", "1 64", "--max-new-tokens", "1"], "is 64"),
    Case("generate-tokenizer-empty-path", ["generate", *MODEL, "--tokenizer", "", "--prompt", "hi", "--max-new-tokens", "1"], "--tokenizer ''"),
    Case("generate-tokenizer-symlink-loop", ["generate", *MODEL, "--tokenizer", f"{FX}/loop-a", "--prompt", "hi", "--max-new-tokens", "1"],
         "symlink loop"),
    Case("generate-tokenizer-truncated", ["generate", *MODEL, "--tokenizer", f"{FX}/tok-truncated", "--prompt", "hi", "--max-new-tokens", "1"],
         "made by no merge"),
    Case("generate-tokenizer-too-large", ["generate", *MODEL, "--tokenizer", TOK, "--prompt", "hi", "--max-new-tokens", "1"],
         "tokenizer n_vocab=270, but expected at most the model's n_vocab=64"),
    Case("generate-text-longer-than-the-context", ["generate", *MODEL, "--set", "n_vocab=300", "--tokenizer", TOK, "--prompt",
                                                   f"@{FX}/long.txt", "--max-new-tokens", "1"], "no longer text fits"),
    Case("score-more-ids-than-the-context", [*SCORE, "--tokens", " ".join(["1"] * 40)], "more than 32, but expected at most n_ctx=32"),
    Case("score-show-negative", [*SCORE, "--tokens", "1 2 3", "--show", "-1"], "--show -1"),
    Case("score-weights-seed-negative", [*SCORE, "--tokens", "1 2 3", "--weights-seed", "-3"], "--weights-seed -3"),
    Case("score-text-dev-zero", [*SCORE, "--text", "@/dev/zero"], "holds more than"),
    Case("score-text-stdin-not-utf8", [*SCORE, "--text", "-"], "byte 2 of standard input", stdin=b"1 \x80"),
    Case("score-text-not-ids", [*SCORE, "--text", "hello"], "token 0='hello'"),
    Case("score-dtype-with-reference", [*SCORE, "--tokens", "1 2", "--dtype", "float32"], "--dtype float32 with --impl reference"),
    # -- checkpoints read through gptspec.safetensors_io ---------------------------------------------------
    Case("model-header-dtype-list", ["generate", f"{FX}/dtype-list.safetensors", "--tokens", "1", "--max-new-tokens", "1"], "dtype=['F32']"),
    Case("model-header-deep", ["generate", f"{FX}/deep-header.safetensors", "--tokens", "1", "--max-new-tokens", "1"], "nesting depth"),
    Case("model-safetensors-fifo", ["score", f"{FX}/fifo.safetensors", "--tokens", "1"], "is a FIFO"),
    Case("model-config-json-deep", ["score", f"{FX}/hf-deep-config", "--tokens", "1"], "nesting depth"),
    # -- forward / check / params: outputs, seeds, options -----------------------------------------------------
    Case("forward-id-beyond-int64", ["forward", "tiny", "--tokens", "1 99999999999999999999999"], "token 1='99999999999999999999999' is outside every vocabulary"),
    Case("forward-id-below-int64", ["forward", "tiny", "--tokens", "-99999999999999999999999"], "outside every vocabulary"),
    Case("forward-id-1e18", ["forward", "tiny", "--tokens", "999999999999999999"], "expected 0 ≤ id < n_vocab=64"),
    Case("forward-out-missing-directory", [*FWD, "--out", f"{OUT}/no/x.npy"], "does not exist"),
    Case("forward-out-under-a-file", [*FWD, "--out", f"{FX}/corpus.txt/x.npy"], "not a directory"),
    Case("forward-out-a-directory", [*FWD, "--out", f"{OUT}"], "is a directory"),
    Case("forward-out-empty", [*FWD, "--out", ""], "path=''"),
    Case("forward-out-full-device", [*FWD, "--out", "/dev/full"], "the device is full"),
    Case("forward-out-keeps-the-old-file", [*FWD, "--out", f"{OUT}/x.npy"], "the device is full", setup=a_file("x.npy"),
         fault=npy_device_full),
    Case("forward-seed-negative", [*FWD, "--seed", "-1"], "--seed -1, but expected a whole number 0 ≤ seed"),
    Case("forward-show-negative", [*FWD, "--show", "-1"], "--show -1"),
    Case("forward-tokens-beyond-vocabulary", ["forward", "tiny", "--tokens", "1 64"], "is 64"),
    Case("forward-dtype-with-reference", [*FWD, "--dtype", "float32"], "--dtype float32, but expected float64 for --impl reference"),
    Case("forward-path-symlink-loop", ["forward", f"{FX}/loop-a", "--tokens", "1"], "symlink loop"),
    Case("forward-path-fifo", ["forward", f"{FX}/fifo.safetensors", "--tokens", "1"], "is a FIFO"),
    Case("forward-theta-nan", ["forward", f"{FX}/nan-theta.safetensors", "--tokens", "1"], "non-finite entries"),
    Case("check-theta-nan", ["check", f"{FX}/nan-theta.safetensors", "--examples", "1"], "non-finite entries"),
    Case("forward-theta-config-bool-string", ["forward", f"{FX}/bool-string-theta.safetensors", "--tokens", "1"],
         "bias='no', but expected true or false"),
    Case("forward-theta-config-deep", ["forward", f"{FX}/deep-config-theta.safetensors", "--tokens", "1"], "nesting depth"),
    Case("forward-theta-config-unknown-family", ["forward", f"{FX}/unknown-family-theta.safetensors", "--tokens", "1"], "family='gpt5'"),
    Case("check-seed-negative", ["check", "tiny", "--seed", "-2"], "--seed -2"),
    Case("check-examples-zero", ["check", "tiny", "--examples", "0"], "--examples 0"),
    Case("check-examples-huge", ["check", "tiny", "--examples", str(10**8)], "expected at most 100,000"),
    Case("check-too-large-for-random-weights", ["check", "gpt3-6.7b"], "GiB in float64, but expected at most 8 GiB"),
    Case("forward-too-large-for-random-weights", ["forward", "gpt3-6.7b", "--tokens", "1"], "GiB in float64"),
    Case("set-bool-False", ["params", "tiny", "--set", "bias=False"], "bias='False', but expected true or false"),
    Case("set-bool-no", ["params", "tiny", "--set", "bias=no"], "bias='no', but expected true or false"),
    Case("set-tied-no", ["params", "tiny", "--set", "tied=no"], "tied='no', but expected true or false"),
    Case("set-inverse-layer-no", ["params", "tiny", "--set", "scale_by_inverse_layer=no"], "scale_by_inverse_layer='no'"),
    Case("set-bool-one", ["params", "tiny", "--set", "bias=1"], "bias=1, but expected true or false"),
    Case("set-attn-scale-infinity", [*FWD, "--set", "attn_scale=Infinity"], "attn_scale=inf, but expected a finite number"),
    Case("set-attn-scale-nan", [*FWD, "--set", "attn_scale=NaN"], "attn_scale=nan"),
    Case("set-eps-infinity", [*FWD, "--set", "eps=Infinity"], "eps=inf, but expected a finite number"),
    Case("set-eps-negative", ["params", "tiny", "--set", "eps=-1"], "eps=-1"),
    Case("set-layers-float", ["params", "tiny", "--set", "n_layers=2.5"], "n_layers=2.5, but expected a whole number"),
    Case("set-layers-hostile", ["params", "tiny", "--set", "n_layers=1000000"], "would make a DAG of about"),
    Case("set-heads-hostile", ["params", "tiny", "--set", "n_heads=1000000", "--set", "d_head=1"], "would make a DAG of about"),
    Case("set-deep-json", ["params", "tiny", "--set", "n_layers=" + "[" * 100_000], "a value of 100,000 characters"),
    Case("set-huge-number", ["params", "tiny", "--set", "d_model=" + "9" * 5000], "a value of 5,000 characters"),
    Case("set-many-commas", ["params", "tiny", "--set", "attention=" + "," * 100_000], "a value of 100,000 characters"),
    Case("set-unknown-field", ["params", "tiny", "--set", "d_modle=8"], "did you mean 'd_model'"),
    Case("set-no-equals", ["params", "tiny", "--set", "d_model"], "expected KEY=VALUE"),
    Case("set-on-a-checkpoint", ["params", f"{FX}/ok-theta.safetensors", "--set", "bias=false"], "no overrides for a checkpoint"),
    Case("hf-config-hostile-layers", ["params", f"{FX}/hf-huge-layers"], "would make a DAG of about"),
    Case("hf-config-layers-a-string", ["params", f"{FX}/hf-string-layers"], "n_layer='2', but expected a whole number"),
    Case("builder-missing-module", ["params", "no_such_module_xyz:build"], "could not be imported"),
    Case("builder-not-a-config", ["params", f"{FX}/builder.py:NOT_A_CONFIG"], "gave int, but expected a spec.Architecture"),
    # -- API: wrong types reach no deep code ------------------------------------------------------------------
    Case("api-build-gpt-none", lambda fx, out: build_gpt(None), ConfigError, "config of type NoneType, but expected a GPTConfig"),  # type: ignore[arg-type]
    Case("api-build-a-dict", lambda fx, out: build({"n_vocab": 3}), ConfigError, "config of type dict"),  # type: ignore[arg-type]
    Case("api-config-attn-scale-bool", lambda fx, out: TINY.replace(attn_scale=True), ConfigError, "attn_scale=True"),
    Case("api-config-attention-list", lambda fx, out: TINY.replace(attention=["dense"]), ConfigError, "give a tuple"),
    Case("api-config-complex-eps", lambda fx, out: TINY.replace(eps=1j), ConfigError, "eps=1j"),
    Case("api-theta-a-list", lambda fx, out: reference.forward(build(TINY), [np.ones(2)], [1]), ShapeError, "θ of type list"),  # type: ignore[arg-type]
    Case("api-theta-complex", lambda fx, out: reference.forward(build(TINY), complex_theta(), [1]), ShapeError, "complex"),
    Case("api-theta-nan", lambda fx, out: fast.compile(build(TINY), nan_theta(), "float32"), ShapeError, "non-finite"),
    Case("api-fast-dtype-bogus", lambda fx, out: fast.compile(build(TINY), preset_theta(build(TINY), 0), "bogus"), ConfigError, "dtype='bogus'"),
    Case("api-fast-block-zero", lambda fx, out: fast.compile(build(TINY), preset_theta(build(TINY), 0), "float32", block=0), ConfigError, "block=0"),
    Case("api-run-op-not-an-op", lambda fx, out: reference.run_op(None, {}), ShapeError, "expected a spec primitive"),  # type: ignore[arg-type]
    Case("api-random-theta-negative-seed", lambda fx, out: random_theta(build(TINY), seed=-1), ConfigError, "seed=-1"),
    Case("api-preset-not-a-string", lambda fx, out: preset(3), ConfigError, "preset=3"),  # type: ignore[arg-type]
    Case("api-save-theta-not-an-architecture", lambda fx, out: save_theta(out / "t.safetensors", "arch", {}), CheckpointError,  # type: ignore[arg-type]
         "expected a spec.Architecture"),
    # -- API: safetensors headers of the wrong JSON types ----------------------------------------------------
    Case("api-header-dtype-list", lambda fx, out: safetensors_io.read(fx / "dtype-list.safetensors"), CheckpointError, "dtype=['F32']"),
    Case("api-header-dtype-object", lambda fx, out: safetensors_io.read(fx / "dtype-object.safetensors"), CheckpointError, "dtype={"),
    Case("api-header-shape-strings", lambda fx, out: safetensors_io.read(fx / "shape-strings.safetensors"), CheckpointError, "shape=['2']"),
    Case("api-header-shape-too-many-axes", lambda fx, out: safetensors_io.read(fx / "many-axes.safetensors"), CheckpointError, "100 axes"),
    Case("api-header-shape-huge-with-zero", lambda fx, out: safetensors_io.read(fx / "huge-axis.safetensors"), CheckpointError, "2^63 bytes"),
    Case("api-header-offsets-floats", lambda fx, out: safetensors_io.read(fx / "offsets-floats.safetensors"), CheckpointError, "data_offsets=[0.0, 8.0]"),
    Case("api-header-a-list", lambda fx, out: safetensors_io.read(fx / "header-list.safetensors"), CheckpointError, "expected a JSON object"),
    Case("api-header-entry-a-list", lambda fx, out: safetensors_io.read(fx / "entry-list.safetensors"), CheckpointError, "header entry=[1, 2]"),
    Case("api-header-metadata-not-strings", lambda fx, out: safetensors_io.read(fx / "metadata-int.safetensors"), CheckpointError, "__metadata__={'n': 1}"),
    Case("api-header-metadata-a-list", lambda fx, out: safetensors_io.read(fx / "metadata-list.safetensors"), CheckpointError, "__metadata__=[]"),
    Case("api-header-metadata-null", lambda fx, out: safetensors_io.read(fx / "metadata-null.safetensors"), CheckpointError, "__metadata__=None"),
    Case("api-header-deep", lambda fx, out: safetensors_io.read(fx / "deep-header.safetensors"), CheckpointError, "nesting depth=100001"),
    Case("api-header-nan", lambda fx, out: safetensors_io.read(fx / "nan-header.safetensors"), CheckpointError, "holds NaN"),
    Case("api-header-not-utf8", lambda fx, out: safetensors_io.read(fx / "latin1-header.safetensors"), CheckpointError, "header byte"),
    Case("api-header-name-with-a-newline", lambda fx, out: safetensors_io.read(fx / "newline-name.safetensors"), CheckpointError,
         "tensor 'a\\nb'"),
    Case("api-safetensors-directory", lambda fx, out: safetensors_io.read(fx / "dir"), FileError, "is a directory"),
    Case("api-safetensors-fifo", lambda fx, out: safetensors_io.read(fx / "fifo.safetensors"), FileError, "is a FIFO"),
    Case("api-safetensors-symlink-loop", lambda fx, out: safetensors_io.read(fx / "loop-a"), FileError, "symlink loop"),
    Case("api-safetensors-dev-zero", lambda fx, out: safetensors_io.read("/dev/zero"), FileError, "character device"),
    Case("api-safetensors-path-none", lambda fx, out: safetensors_io.read(None), FileError, "NoneType"),  # type: ignore[arg-type]
    Case("api-safetensors-names-a-string", lambda fx, out: safetensors_io.read(fx / "ok.safetensors", "w"), CheckpointError, "names='w'"),
    Case("api-safetensors-write-not-a-mapping", lambda fx, out: safetensors_io.write(out / "w.safetensors", [np.ones(2)]),  # type: ignore[arg-type]
         CheckpointError, "expected a mapping"),
    Case("api-safetensors-write-integers", lambda fx, out: safetensors_io.write(out / "w.safetensors", {"w": np.arange(2)}),
         CheckpointError, "dtype=int64"),
    # -- API: JSON and text -------------------------------------------------------------------------------------
    Case("api-json-deep", lambda fx, out: files.loads_json(DEEP, "test"), CheckpointError, "nesting depth=100000"),
    Case("api-json-deep-closed", lambda fx, out: files.loads_json("[" * 5000 + "]" * 5000, "test", ConfigError), ConfigError, "depth=5000"),
    Case("api-json-file-deep", lambda fx, out: files.read_json(fx / "hf-deep-config" / "config.json", "test"), CheckpointError, "depth"),
    Case("api-json-nan", lambda fx, out: files.loads_json('{"eps": NaN}', "test"), CheckpointError, "holds NaN"),
    Case("api-json-infinity", lambda fx, out: files.loads_json("[-Infinity]", "test"), CheckpointError, "holds -Infinity"),
    Case("api-json-overflow", lambda fx, out: files.loads_json('{"eps": 1e999}', "test"), CheckpointError, "overflows a float"),
    Case("api-json-long-integer", lambda fx, out: files.loads_json("9" * 5000, "test"), CheckpointError, "but expected valid JSON"),
    Case("api-json-repeated-key", lambda fx, out: files.loads_json('{"a": 1, "a": 2}', "test"), CheckpointError, "names 'a' twice"),
    Case("api-json-empty", lambda fx, out: files.loads_json(" \n", "test"), CheckpointError, "JSON text is empty"),
    Case("api-json-not-a-string", lambda fx, out: files.loads_json(b"{}", "test"), CheckpointError, "type bytes"),  # type: ignore[arg-type]
    Case("api-json-directory", lambda fx, out: files.read_json(fx / "dir", "test"), FileError, "is a directory"),
    Case("api-json-too-large", lambda fx, out: files.read_json(fx / "corpus.txt", "test", max_bytes=100), FileError, "at most 100 bytes"),
    Case("api-text-dev-zero", lambda fx, out: files.read_text("/dev/zero", "test", max_bytes=1000), FileError, "holds more than 1,000 bytes"),
    Case("api-text-not-utf8", lambda fx, out: files.read_text(fx / "not-utf8.txt", "test"), FileError, "byte 3 of"),
    Case("api-text-not-a-path", lambda fx, out: files.read_text(None, "test"), FileError, "NoneType"),  # type: ignore[arg-type]
    Case("api-text-nul-in-path", lambda fx, out: files.read_text("a\0b", "test"), FileError, "NUL"),
    Case("api-stdin-not-utf8", lambda fx, out: files.read_stdin("test"), FileError, "byte 1 of standard input", stdin=b"a\xff"),
    Case("api-stdin-too-long", lambda fx, out: files.read_stdin("test", max_bytes=3), FileError, "more than 3 bytes", stdin=b"abcd"),
    # -- API: writing files -------------------------------------------------------------------------------------
    Case("api-npy-onto-a-directory", lambda fx, out: files.write_npy(out, np.ones(2)), FileError, "is a directory"),
    Case("api-npy-missing-parent", lambda fx, out: files.write_npy(out / "no" / "x.npy", np.ones(2)), FileError, "does not exist"),
    Case("api-npy-under-a-file", lambda fx, out: files.write_npy(fx / "corpus.txt" / "x.npy", np.ones(2)), FileError, "not a directory"),
    Case("api-npy-fifo-without-reader", lambda fx, out: files.write_npy(fx / "fifo", np.ones(2)), FileError, "no process"),
    Case("api-npy-symlink-loop", lambda fx, out: files.write_npy(fx / "loop-a", np.ones(2)), FileError, "symlink loop"),
    Case("api-npy-empty-path", lambda fx, out: files.write_npy("", np.ones(2)), FileError, "path=''"),
    Case("api-npy-objects", lambda fx, out: files.write_npy(out / "x.npy", np.array([None])), ShapeError, "dtype=object"),
    Case("api-npy-full-device", lambda fx, out: files.write_npy("/dev/full", np.ones(2)), FileError, "the device is full"),
    Case("api-write-full-device", lambda fx, out: files.write_atomic(out / "x.npy", failing_writer(errno.ENOSPC)),
         FileError, "the device is full", setup=a_file("x.npy")),
    Case("api-write-size-limit", lambda fx, out: files.write_atomic(out / "new.bin", failing_writer(errno.EFBIG)),
         FileError, "file-size limit"),
    Case("api-directory-onto-a-file", lambda fx, out: files.atomic_directory(out / "taken").__enter__(), FileError,
         "is a regular file", setup=a_file("taken")),
    Case("api-safetensors-write-missing-parent", lambda fx, out: safetensors_io.write(out / "no" / "w.safetensors", {"w": np.ones(2)}),
         FileError, "does not exist"),
    Case("api-safetensors-write-onto-a-directory", lambda fx, out: safetensors_io.write(out, {"w": np.ones(2)}), FileError, "is a directory"),
    # -- API: tokenizer files -------------------------------------------------------------------------------------
    Case("api-tokenizer-truncated-merges", lambda fx, out: bpe_files.load(fx / "tok-truncated"), CheckpointError, "made by no merge"),
    Case("api-tokenizer-fifo", lambda fx, out: bpe_files.load(fx / "fifo"), FileError, "is a FIFO"),
    Case("api-tokenizer-save-not-a-bpe", lambda fx, out: bpe_files.save("bpe", out / "tok"), TokenError, "type str"),  # type: ignore[arg-type]
    Case("api-tokenizer-pattern-not-a-string", lambda fx, out: bpe_files.load(fx / "tok", pattern=3), ConfigError, "pattern of type int"),  # type: ignore[arg-type]
    Case("api-parse-ids-not-a-string", lambda fx, out: parse_ids(None, "test"), TokenError, "type NoneType"),  # type: ignore[arg-type]
    Case("api-tokenizer-not-a-path", lambda fx, out: bpe_files.load(3), FileError, "tokenizer=3"),  # type: ignore[arg-type]
    Case("api-tokenizer-save-onto-a-file", lambda fx, out: bpe_files.save(bpe_with_special(END_OF_TEXT), out / "taken"), FileError,
         "is a regular file", setup=a_file("taken")),
    Case("api-tokenizer-save-special-clash", lambda fx, out: bpe_files.save(bpe_with_special("Ġthe"), out / "tok"), TokenError,
         "not also an ordinary token"),
    Case("api-tiktoken-save-onto-a-directory", lambda fx, out: bpe_files.save_tiktoken(bpe_with_special(END_OF_TEXT), out), FileError,
         "is a directory"),
]


# -- the inputs the table refers to -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of prepared inputs: a corpus, a trained tokenizer and broken copies of it,
    malformed safetensors files, a FIFO, a symlink loop, a directory."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    (root / "not-utf8.txt").write_bytes(b"caf\xe9 au lait")
    (root / "long.txt").write_text("hello " * 1000)
    (root / "unreadable.txt").write_text("secret")
    (root / "unreadable.txt").chmod(0)
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    os.mkfifo(root / "fifo.safetensors")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    tok = bpe_files.save(F.train(CORPUS, 270, [END_OF_TEXT]).bpe, root / "tok")

    def copy(name: str, drop: Sequence[str] = ()) -> Path:
        shutil.copytree(tok, root / name)
        for file in drop:
            (root / name / file).unlink()
        return root / name

    merges = (tok / "merges.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (copy("tok-truncated") / "merges.txt").write_text("".join(merges[:4]), encoding="utf-8")
    (copy("tok-empty-merges") / "merges.txt").write_text("", encoding="utf-8")
    (copy("tok-foreign-truncated", ["gptspec_tokenizer.json", "tokenizer.tiktoken"]) / "merges.txt").write_text(
        "".join(merges[:6]), encoding="utf-8"
    )
    copy("tok-vocab-dir", ["vocab.json"])
    (root / "tok-vocab-dir" / "vocab.json").mkdir()
    copy("tok-vocab-fifo", ["vocab.json"])
    os.mkfifo(root / "tok-vocab-fifo" / "vocab.json")
    copy("tok-vocab-loop", ["vocab.json"])
    os.symlink("vocab.json", root / "tok-vocab-loop" / "vocab.json")
    (copy("tok-vocab-deep") / "vocab.json").write_text(DEEP)
    (copy("tok-vocab-nan") / "vocab.json").write_text('{"a": NaN}')
    (copy("tok-vocab-latin1") / "vocab.json").write_bytes(b'{"caf\xe9": 1}')
    (copy("tok-meta-deep") / "gptspec_tokenizer.json").write_text(DEEP)
    meta = json.loads((tok / "gptspec_tokenizer.json").read_text(encoding="utf-8"))
    (copy("tok-meta-special") / "gptspec_tokenizer.json").write_text(json.dumps(meta | {"special": {END_OF_TEXT: "269"}}))
    copy("tok-merges-zero", ["merges.txt"])
    os.symlink("/dev/zero", root / "tok-merges-zero" / "merges.txt")

    f32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    raw_safetensors(root / "dtype-list.safetensors", {"w": f32 | {"dtype": ["F32"]}}, b"\0" * 8)
    raw_safetensors(root / "dtype-object.safetensors", {"w": f32 | {"dtype": {"name": "F32"}}}, b"\0" * 8)
    raw_safetensors(root / "shape-strings.safetensors", {"w": f32 | {"shape": ["2"]}}, b"\0" * 8)
    raw_safetensors(root / "many-axes.safetensors", {"w": f32 | {"shape": [1] * 100, "data_offsets": [0, 4]}}, b"\0" * 4)
    raw_safetensors(root / "huge-axis.safetensors", {"w": f32 | {"shape": [0, 2**70], "data_offsets": [0, 0]}})
    raw_safetensors(root / "offsets-floats.safetensors", {"w": f32 | {"data_offsets": [0.0, 8.0]}}, b"\0" * 8)
    raw_safetensors(root / "header-list.safetensors", [f32])
    raw_safetensors(root / "newline-name.safetensors", {"a\nb": f32 | {"shape": [3]}}, b"\0" * 8)
    raw_safetensors(root / "entry-list.safetensors", {"w": [1, 2]})
    raw_safetensors(root / "metadata-int.safetensors", {"__metadata__": {"n": 1}})
    raw_safetensors(root / "metadata-list.safetensors", {"__metadata__": []})
    raw_safetensors(root / "metadata-null.safetensors", {"__metadata__": None})
    raw_safetensors(root / "deep-header.safetensors", None, text='{"w": ' + DEEP + "]" * 100_000 + "}")
    raw_safetensors(root / "nan-header.safetensors", None, text='{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}')
    (root / "latin1-header.safetensors").write_bytes(struct.pack("<Q", 8) + b'{"\xe9": 1}')
    safetensors_io.write(root / "ok.safetensors", {"w": np.ones(2)})
    (root / "hf-deep-config").mkdir()
    (root / "hf-deep-config" / "config.json").write_text(DEEP)
    arch = build(TINY)
    theta = preset_theta(arch, 0)
    save_theta(root / "ok-theta.safetensors", arch, theta)
    metadata = {"format": THETA_FORMAT, "family": "gpt", "config": TINY.to_json()}
    safetensors_io.write(root / "nan-theta.safetensors", {**theta, "ln_f.gamma": np.full(4, np.nan)}, metadata)
    safetensors_io.write(root / "bool-string-theta.safetensors", theta, metadata | {"config": TINY.to_json().replace('"bias": true', '"bias": "no"')})
    safetensors_io.write(root / "deep-config-theta.safetensors", theta, metadata | {"config": DEEP})
    safetensors_io.write(root / "unknown-family-theta.safetensors", theta, metadata | {"family": "gpt5"})
    hf = {"model_type": "gpt2", "vocab_size": 7, "n_positions": 4, "n_embd": 4, "n_head": 2}
    for name, layers in (("hf-huge-layers", 100_000_000), ("hf-string-layers", "2")):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(hf | {"n_layer": layers}))
    (root / "builder.py").write_text("NOT_A_CONFIG = 3\n")
    return root


# -- the one test ------------------------------------------------------------------------------------------


def listing(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under ``root`` (not following symlinks): its kind, size and content hash."""
    out: dict[str, tuple[str, int, str]] = {}
    for directory, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = Path(directory) / name
            info = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink() and info.st_mode & 0o444:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = (oct(info.st_mode), info.st_size, digest)
    return out


def params() -> list[Any]:
    def marks(case: Case) -> list[Any]:
        return [
            *([pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []),
            *([pytest.mark.skip(reason=case.skip)] if case.skip else []),
        ]

    return [pytest.param(case, id=case.id, marks=marks(case)) for case in CASES]


class Hung(BaseException):
    """Raised by :func:`watchdog` (a BaseException, so no ``except OSError`` can mistake it)."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Fail a case that does not answer within ``seconds`` (a hang) instead of waiting forever."""

    def alarm(signum: int, frame: object) -> None:
        raise Hung(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", params())
def test_bad_input(case: Case, fx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if case.setup is not None:
        case.setup(out)
    before, inputs = listing(out), listing(fx)
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8", errors="surrogateescape"))
    if case.fault is not None:
        case.fault(monkeypatch)
    if callable(case.run):
        assert isinstance(case.expect, type), f"{case.id}: an API case expects an error class"
        with watchdog(20), pytest.raises(case.expect) as raised:
            case.run(fx, out)
        message = str(raised.value)
        assert isinstance(raised.value, GptSpecError) and case.match in message and "\n" not in message, message
    else:
        assert isinstance(case.expect, str), f"{case.id}: a CLI case expects a message fragment"
        argv = [a.replace(FX, str(fx)).replace(OUT, str(out)) for a in case.run]
        usage = False
        try:
            with watchdog(20):
                code: object = main(argv)
        except SystemExit as stop:  # argparse's usage errors
            code, usage = stop.code, True
        _, err = capsys.readouterr()
        assert "Traceback" not in err, err
        assert code == COULD_NOT_RUN, f"exit status {code}, but expected {COULD_NOT_RUN} (could not run); stderr: {err}"
        assert usage == case.usage, f"argparse usage error={usage}, but expected {case.usage}; stderr: {err}"
        lines = err.splitlines()
        assert lines and case.expect in lines[-1], f"expected {case.expect!r} in the last line of: {err}"
        if not case.usage:
            command = " ".join(argv[:2]) if argv[0] == "bpe" else argv[0]  # main names a bpe subcommand too
            errors = [line for line in lines if line.startswith(f"gptspec {command}: error: ")]
            assert errors == [lines[-1]], f"expected one error, on the last line of stderr: {err}"
    monkeypatch.undo()
    assert listing(out) == before, "an output was written, half-written or left behind"
    assert listing(fx) == inputs, "an input was changed"


# -- what the helpers do when all is well ----------------------------------------------------------------


def test_write_npy_writes_exactly_the_path_it_returns(tmp_path: Path) -> None:
    target = tmp_path / "logits.bin"
    written = files.write_npy(target, np.arange(6.0).reshape(2, 3))
    assert written == target and sorted(os.listdir(tmp_path)) == ["logits.bin"], os.listdir(tmp_path)
    np.testing.assert_array_equal(np.load(target), np.arange(6.0).reshape(2, 3))
    files.write_npy(target, np.zeros(1))  # replaces
    assert np.load(target).tolist() == [0.0] and sorted(os.listdir(tmp_path)) == ["logits.bin"]
    link = tmp_path / "link.npy"
    link.symlink_to("logits.bin")
    assert files.write_npy(link, np.ones(2)) == target and link.is_symlink() and np.load(target).tolist() == [1.0, 1.0]
    assert files.write_npy("/dev/null", np.ones(2)) == Path("/dev/null")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    files.write_text(target, "old")

    def half_then_interrupt(stream: BinaryIO) -> None:
        stream.write(b"new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(target, half_then_interrupt)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]


def test_atomic_directory_creates_or_replaces_only_its_files(tmp_path: Path) -> None:
    new = tmp_path / "new"
    with files.atomic_directory(new, "test", owned=("a", "b")) as building:
        assert not new.exists() and building.parent == tmp_path
        (building / "a").write_text("1")
    assert sorted(os.listdir(new)) == ["a"] and sorted(os.listdir(tmp_path)) == ["new"]
    (new / "b").write_text("stale")
    (new / "mine").write_text("keep")
    with files.atomic_directory(new, "test", owned=("a", "b")) as building:
        (building / "a").write_text("2")
    assert sorted(os.listdir(new)) == ["a", "mine"] and (new / "a").read_text() == "2" and (new / "mine").read_text() == "keep"
    with pytest.raises(RuntimeError), files.atomic_directory(new, "test", owned=("a", "b")) as building:
        (building / "a").write_text("3")
        raise RuntimeError("the body failed")
    assert (new / "a").read_text() == "2" and sorted(os.listdir(tmp_path)) == ["new"]


def test_bpe_train_replaces_a_previous_tokenizer_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "tok"
    out.mkdir()
    (out / "vocab.json").write_text("old")
    (out / "notes.md").write_text("mine")
    assert main(["bpe", "train", str(corpus), "--vocab-size", "270", "--out", f"{out}/", "--quiet"]) == 0
    assert sorted(os.listdir(out)) == sorted([*bpe_files.FILES, "notes.md"])
    assert bpe_files.load(out).n_vocab == 270 and (out / "notes.md").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "tok"], "a temporary directory was left behind"
    capsys.readouterr()


def test_fifos_read_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(files.read_text(fifo, "test")), daemon=True)
    reader.start()
    reader.join(timeout=60)  # a hang guard, not a speed bound: the read returns at once or never
    assert not reader.is_alive(), "reading a FIFO with no writer hangs"
    assert result == [""]  # no writer: empty, not a hang

    stop = time.monotonic() + 10
    received = threading.Event()

    def writer() -> None:
        # writes until the reader confirms: a reader that reads before this writer's open completes
        # sees end-of-file, and what is written after that is lost when it closes; so write again
        while not received.is_set() and time.monotonic() < stop:
            try:
                with open(fifo, "wb") as stream:
                    stream.write("héllo\r\n".encode())
            except BrokenPipeError:
                continue

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    text = ""
    while not text and time.monotonic() < stop:
        text = files.read_text(fifo, "test")
    received.set()
    one = "héllo\r\n"
    assert text and text == one * (len(text) // len(one)), text  # the writes exactly (maybe repeated): no newline translation


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    assert files.json_depth('{"a": "[[[[{{{{", "b": [[1], {"c": "\\"]]"}]}') == 3
    assert files.loads_json("[" * 100 + "]" * 100, "test") is not None
    with pytest.raises(CheckpointError, match="depth=101"):
        files.loads_json("[" * 101 + "]" * 101, "test")
    def parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("json.loads ran on a document the depth check should have refused")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files.json, "loads", parse)
        with pytest.raises(CheckpointError, match="depth=1000000"):  # refused by the scan, before the recursive parser
            files.loads_json("[" * 1_000_000, "test")


def test_read_stdin_keeps_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("a\r\nb\u00e9".encode()), encoding="latin-1"))
    assert files.read_stdin("test") == "a\r\nb\u00e9"  # read as bytes, whatever the stream's encoding
    monkeypatch.setattr(sys, "stdin", io.StringIO("plain \udcff"))  # a text stream with an escaped byte
    with pytest.raises(FileError, match="byte 6 of standard input=0xFF"):
        files.read_stdin("test")


@pytest.mark.skipif(sys.platform != "linux", reason="uses RLIMIT_FSIZE as Linux defines it")
def test_a_file_size_limit_fails_cleanly_and_leaves_nothing(tmp_path: Path) -> None:
    """A real RLIMIT_FSIZE (``ulimit -f``), in a child process: the write fails with EFBIG
    (SIGXFSZ ignored), the error is one line, and nothing is left in the output's parent."""
    import resource

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS * 4)
    out = tmp_path / "out"
    out.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run(
        [sys.executable, "-m", "gptspec", "bpe", "train", str(corpus), "--vocab-size", "600", "--out", str(out / "tok"), "--quiet"],
        capture_output=True, text=True, preexec_fn=limit, timeout=60, check=False,
    )
    assert result.returncode == COULD_NOT_RUN, result
    assert result.stderr.splitlines() == [result.stderr.strip()] and "file-size limit" in result.stderr, result.stderr
    assert os.listdir(out) == [], os.listdir(out)
