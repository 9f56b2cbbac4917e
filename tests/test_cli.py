"""The command line: outputs users script against, and errors users read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gptspec.cli import main
from gptspec.lm_cli import parse_ids
from reference import forward
from spec import TokenError, build_gpt, preset
from spec.theta import preset_theta


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_params_last_line_is_the_exact_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "params", "gpt2-medium")
    assert code == 0 and out.splitlines()[-1] == "354823168"
    assert "blocks.*.mlp.*" in out


def test_params_symbolic_prints_a_formula_then_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "params", "gpt3-13b", "--symbolic")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "12853386240"
    assert any("n_layers*(" in line for line in lines)
    assert lines[0].startswith("note:") and "5140" in lines[0]


def test_params_with_override(capsys: pytest.CaptureFixture[str]) -> None:
    _, base, _ = run(capsys, "params", "tiny")
    _, untied, _ = run(capsys, "params", "tiny", "--set", "tied=false")
    assert int(untied.splitlines()[-1]) - int(base.splitlines()[-1]) == 16 * 64


def test_forward_writes_the_reference_logits(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "logits.npy"
    code, out, _ = run(capsys, "forward", "tiny", "--tokens", "1, 2 3", "--seed", "7", "--out", str(out_file))
    assert code == 0 and "3 × 64" in out
    arch = build_gpt(preset("tiny").config)
    expected = forward(arch, preset_theta(arch, seed=7), [1, 2, 3])  # the documented draw of a preset and a seed
    np.testing.assert_array_equal(np.load(out_file), expected)


def test_forward_of_the_empty_sequence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "empty.npy"
    code, _, _ = run(capsys, "forward", "tiny", "--tokens", "", "--out", str(out_file))
    assert code == 0 and np.load(out_file).shape == (0, 64)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["forward", "tiny", "--tokens", "1 2 64"], "position 2 is 64"),
        (["forward", "tiny", "--tokens", "1 x"], "token 1='x', but expected a whole number"),
        (["forward", "tiny", "--tokens", " ".join(["1"] * 33)], "T=33, but expected T ≤ n_ctx=32"),
        (["params", "gpt2-smal"], "did you mean 'gpt2-small'"),
        (["params", "tiny", "--set", "d_modle=8"], "did you mean 'd_model'"),
        (["params", "tiny", "--set", "d_model"], "expected KEY=VALUE"),
        (["forward", "gpt2-xl", "--tokens", "1"], "GiB"),
    ],
)
def test_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Bad input is "could not run" (2), never the status of a failed check (1)."""
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err, err


def test_an_unknown_implementation_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["forward", "tiny", "--tokens", "1", "--impl", "cuda"])
    assert stop.value.code == 2 and "invalid choice: 'cuda'" in capsys.readouterr().err


def test_parse_ids_accepts_spaces_and_commas() -> None:
    assert parse_ids("464 2068,7586 , 1", "test") == [464, 2068, 7586, 1]
    assert parse_ids("  ", "test") == []
    with pytest.raises(TokenError):
        parse_ids("1.5", "test")


def test_console_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "gptspec", "params", "tiny"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "8128"
    result = subprocess.run([sys.executable, "-m", "gptspec", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "forward" in result.stdout
