"""One exit-code contract for every command (README, "Exit status"): 0 success or pass, 1 a check,
verification or proof failed, 2 could not run (bad input, an unknown model or target, a missing
file, argparse's usage errors, an internal error).

Every command the parser has is run each way it can end; a command added to the parser without
rows here fails :func:`test_every_command_has_rows`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptspec.cli import COULD_NOT_RUN, FAILED, PASS, build_parser, main
from tests.test_verify_blackbox import correct

CORPUS = "the cat sat on the mat; the lower, the newer, the wider. " * 20

NOT_CAUSAL = "from spec.architectures.conv_gpt import conv_gpt\n\n\ndef symmetric():\n    return conv_gpt(3, 1)\n"
"""A builder of a ConvGPT whose reducer reads a future token: ``check`` checks every defined
component and fails the gate, as KV-cache decoding is not defined for it."""


def doubled(sd: Any, ids: Any, mask: Any, config: Any) -> np.ndarray:
    """A target computing twice GPT-2's logits: ``verify`` fails it."""
    return 2.0 * correct(sd, ids, mask, config)


VERIFY = ["--layout", "hf-gpt2", "--examples", "1", "--generation-examples", "1", "--no-shrink", "--no-localise", "--components", "model"]

ROWS: list[tuple[str, list[str], int]] = [
    # (command, argv with {tmp} for a fresh directory and {tok} for a trained tokenizer, the status)
    ("presets", ["presets"], PASS),
    ("presets", ["presets", "--bogus"], COULD_NOT_RUN),
    ("params", ["params", "tiny"], PASS),
    ("params", ["params", "tiny-gpt"], COULD_NOT_RUN),
    ("params", ["params", "{tmp}/missing-dir/"], COULD_NOT_RUN),
    ("forward", ["forward", "tiny", "--tokens", "1 2"], PASS),
    ("forward", ["forward", "tiny", "--tokens", "1 64"], COULD_NOT_RUN),
    ("forward", ["forward", "{tmp}/missing.safetensors", "--tokens", "1"], COULD_NOT_RUN),
    ("forward", ["forward", "tiny"], COULD_NOT_RUN),  # --tokens is required: a usage error
    ("check", ["check", "tiny", "--examples", "1", "--shard", "1/17"], PASS),
    ("check", ["check", "{tmp}/not_causal.py:symmetric", "--examples", "1"], FAILED),
    ("check", ["check", "no-such-model"], COULD_NOT_RUN),
    ("check", ["check", "tiny", "--examples", "0"], COULD_NOT_RUN),
    ("verify", ["verify", "tests.test_verify_blackbox:correct", *VERIFY], PASS),
    ("verify", ["verify", "tests.test_exit_codes:doubled", *VERIFY, "--no-identify"], FAILED),
    ("verify", ["verify", "tests.test_exit_codes:no_such_function", *VERIFY], COULD_NOT_RUN),
    ("prove", ["prove", "softmax_shift_invariance", "--examples", "1"], PASS),
    ("prove", ["prove", "false_scale_invariance", "--examples", "0"], FAILED),
    ("prove", ["prove", "no_such_theorem"], COULD_NOT_RUN),
    ("docs", ["docs", "tiny", "--out", "{tmp}/site"], PASS),
    ("docs", ["docs", "tiny", "--out", "{tmp}/not_causal.py"], COULD_NOT_RUN),  # a file where a directory goes
    ("generate", ["generate", "tiny", "--tokens", "1 2", "--max-new-tokens", "2"], PASS),
    ("generate", ["generate", "tiny", "--tokens", "1 2", "--max-new-tokens", "-1"], COULD_NOT_RUN),
    ("generate", ["generate", "tiny", "--tokenizer", "{tmp}/no-tokenizer", "--prompt", "hi", "--max-new-tokens", "1"], COULD_NOT_RUN),
    ("score", ["score", "tiny", "--tokens", "1 2 3"], PASS),
    ("score", ["score", "tiny"], COULD_NOT_RUN),
    ("bpe train", ["bpe", "train", "{tmp}/corpus.txt", "--vocab-size", "260", "--out", "{tmp}/tok", "--quiet"], PASS),
    ("bpe train", ["bpe", "train", "{tmp}/no-corpus.txt", "--vocab-size", "260", "--out", "{tmp}/tok", "--quiet"], COULD_NOT_RUN),
    ("bpe encode", ["bpe", "encode", "{tok}", "the cat"], PASS),
    ("bpe encode", ["bpe", "encode", "{tmp}/no-tokenizer", "the cat"], COULD_NOT_RUN),
    ("bpe decode", ["bpe", "decode", "{tok}", "116 104"], PASS),
    ("bpe decode", ["bpe", "decode", "{tok}", "9999"], COULD_NOT_RUN),
    ("bpe", ["bpe"], COULD_NOT_RUN),  # no subcommand: a usage error
    ("diff", ["diff", "tiny", "tiny", "--set-b", "tied=false"], PASS),
    ("diff", ["diff", "tiny", "no-such-model"], COULD_NOT_RUN),
]


def commands() -> set[str]:
    """Every command of the ``gptspec`` parser, ``bpe`` with each of its subcommands."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = set()
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        found |= {f"{name} {s}" for s in nested[0].choices} if nested else {name}
    return found


def test_every_command_has_rows() -> None:
    """Each command succeeds once and could not run once; the judging commands also fail once."""
    for command in commands():
        codes = {code for name, _, code in ROWS if name == command}
        want = {PASS, FAILED, COULD_NOT_RUN} if command in ("check", "verify", "prove") else {PASS, COULD_NOT_RUN}
        assert codes == want, f"{command}: exit statuses {sorted(codes)} are tested, but expected {sorted(want)}"


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    (directory / "corpus.txt").write_text(CORPUS)
    assert main(["bpe", "train", str(directory / "corpus.txt"), "--vocab-size", "260", "--out", str(directory / "tok"), "--quiet"]) == PASS
    return directory / "tok"


@pytest.fixture
def false_theorem(monkeypatch: pytest.MonkeyPatch) -> None:
    """A theorem whose proof fails (LN(2x) = 2·LN(x), false: layer norm is scale invariant)."""
    import sympy

    from proofs import THEOREMS
    from proofs.core import Kind, Scope, Theorem, require_zero

    def prove() -> None:
        x = sympy.Symbol("x", positive=True)
        require_zero(x - 2 * x, "LN(2x) = 2·LN(x)")

    theorem = Theorem("false_scale_invariance", "false", "LN(2x) = 2·LN(x)", "", (), Scope(Kind.SYMBOLIC, "d"), prove, lambda n: None)
    monkeypatch.setitem(THEOREMS, theorem.name, theorem)


@pytest.mark.parametrize(("command", "argv", "code"), ROWS, ids=[f"{c}-{code}-{i}" for i, (c, _, code) in enumerate(ROWS)])
def test_exit_status(command: str, argv: list[str], code: int, tmp_path: Path, tok: Path, request: pytest.FixtureRequest,
                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if command == "prove":
        request.getfixturevalue("false_theorem")
    (tmp_path / "corpus.txt").write_text(CORPUS)
    (tmp_path / "not_causal.py").write_text(NOT_CAUSAL)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))  # verify imports tests.* targets
    args = [a.replace("{tmp}", str(tmp_path)).replace("{tok}", str(tok)) for a in argv]
    try:
        got = main(args)
        usage = False
    except SystemExit as stop:  # argparse's usage errors exit 2 themselves
        got, usage = stop.code, True
    out, err = capsys.readouterr()
    assert got == code, f"gptspec {' '.join(args)}: exit status {got}, but expected {code}; stderr: {err[-1500:]}"
    assert "Traceback" not in err, err
    if code == COULD_NOT_RUN:
        last = err.strip().splitlines()[-1]
        said = last.startswith(f"gptspec {command}: ") and ("error:" in last or "could not run:" in last) or usage and "error:" in last
        assert said, f"expected one error line on standard error, but got: {err[-1500:]}"
    if code == FAILED:
        assert "FAIL" in out, out[-1500:]


def test_an_internal_error_is_could_not_run_with_its_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bug of gptspec's own is shown in full and exits 2, never 1 (which a CI gate reads as
    "the model failed")."""
    import gptspec.cli

    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gptspec.cli, "cmd_params", broken)
    assert main(["params", "tiny"]) == COULD_NOT_RUN
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug" in err and err.strip().splitlines()[-1].startswith("gptspec params: error: an internal error")


def test_the_process_exits_with_the_status(tmp_path: Path) -> None:
    """Through the console entry point: the process's status is the contract's."""
    def status(*argv: str) -> tuple[int, str]:
        run = subprocess.run([sys.executable, "-m", "gptspec", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
        return run.returncode, run.stdout + run.stderr

    code, text = status("params", "no-such-preset")
    assert code == COULD_NOT_RUN and "gptspec params: error: preset='no-such-preset'" in text, text


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["no-such-command"])
    assert stop.value.code == COULD_NOT_RUN and "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import gptspec

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == PASS and capsys.readouterr().out == f"gptspec {gptspec.__version__}\n"


def test_shard_merge_follows_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m gptspec.verify.shard merge``: 0 merged and passing, 1 a shard failed, 2 a report
    missing — and, run as documented, no RuntimeWarning of the module run twice (its package
    imports it)."""
    from gptspec.verify.shard import main as merge_main

    ok = tmp_path / "ok.xml"
    ok.write_text('<testsuites><testsuite name="gptspec verify" tests="1"><testcase name="model"/></testsuite></testsuites>')
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="gptspec verify" tests="1" failures="1"><testcase name="decode"><failure message="x"/></testcase>'
                   "</testsuite></testsuites>")

    def merge(*reports: Path) -> list[str]:
        return ["merge", *map(str, reports), "--out", str(tmp_path / "all.xml")]

    assert merge_main(merge(ok, bad)) == FAILED
    assert merge_main(merge(ok, tmp_path / "missing.xml")) == COULD_NOT_RUN
    assert "gptspec.verify.shard merge: error:" in capsys.readouterr().err
    argv = [sys.executable, "-W", "error::RuntimeWarning", "-m", "gptspec.verify.shard", *merge(ok)]
    passed = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert (passed.returncode, passed.stderr) == (PASS, ""), passed
