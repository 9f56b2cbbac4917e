"""The README's quick start is exactly two commands, and CI runs its test command verbatim."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S) for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, f"quick start commands={commands}, but expected exactly 2"
    assert "gptspec check" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = quick_start_commands()[1]
    assert test_command in [line.strip() for line in ci], f".ci/run does not run the README test command {test_command!r}"


NEEDS_WHAT_THE_README_DOES_NOT_SHIP = ("mypkg", "my_gpt.py", "path/to/", "corpus.txt", "tok/")
"""Commands about the reader's own files; the rest run here as printed."""

COVERED_ELSEWHERE = ("gptspec prove", "gptspec check gpt2-small", "gptspec verify transformers:")
"""Not run here: `prove` and `verify transformers:…` have their own tests (tests/test_proofs.py,
tests/test_verify_hf.py); `check gpt2-small` takes minutes (the reference of a 124M model), so it
is run by hand and its result is recorded in docs/tolerances.md ("float32 at GPT-2 size")."""


def console_commands() -> list[tuple[str, str]]:
    """(command, comment) of every ``$ gptspec …`` line of the README."""
    found = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("$ gptspec "):
            command, _, comment = line[2:].partition("  #")
            found.append((command.strip(), comment.strip()))
    return found


RUNNABLE = [(c, note) for c, note in console_commands()
            if not any(s in c for s in NEEDS_WHAT_THE_README_DOES_NOT_SHIP) and not c.startswith(COVERED_ELSEWHERE)]


def test_the_readme_lists_commands_to_run() -> None:
    assert len(RUNNABLE) >= 12, RUNNABLE


@pytest.mark.parametrize(("command", "comment"), RUNNABLE, ids=[c for c, _ in RUNNABLE])
def test_a_readme_command_runs_as_printed(command: str, comment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Exit code 0, and a count the comment states is the count printed (the last line)."""
    from gptspec.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(shlex.split(command)[1:])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    stated = re.search(r"\b(\d{7,})\b", comment)
    if command.startswith("gptspec params") and stated:
        assert out.strip().splitlines()[-1] == stated.group(1)
    if "--out" in command:
        assert (tmp_path / shlex.split(command)[shlex.split(command).index("--out") + 1]).exists()
