"""The gradient run goes through verify's one case loop (gptspec/verify/session.py: ``CaseLoop``;
docs/verify.md, "Verifying training code"): a gradient target that raises on some inputs, calls
``sys.exit``, hangs or runs past ``--timeout`` is reported as the forward run reports it.

The targets are the correct hand-written GPT-2 of tests/fixtures/training/models.py with one
hostile ``forward`` each, written as a small file; runs are in-process (cheap) except the hang,
which needs a child process to be stopped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from gptspec.verify.grad import GradOptions, GradRunner, verify_grad
from gptspec.verify.session import CaseLoop, Runner

pytest.importorskip("torch")

MODELS = Path(__file__).parent / "fixtures" / "training" / "models.py"

HOSTILE = textwrap.dedent('''
    import importlib.util
    import sys
    import time

    import torch

    _spec = importlib.util.spec_from_file_location("gptspec_training_models", {models!r})
    _models = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_models)


    class Hostile(_models.GPT):
        def forward(self, input_ids, attention_mask=None, labels=None):
            if torch.is_grad_enabled():
                {body}
            return super().forward(input_ids, attention_mask, labels)


    def make(config):
        return Hostile(config)
''')


def target(tmp_path: Path, body: str) -> str:
    """A file target ``tmp_path/hostile.py:make`` (layout hf-gpt2) whose forward runs ``body``
    first (under autograd only, for the calls setup makes without it to pass)."""
    path = tmp_path / "hostile.py"
    path.write_text(HOSTILE.format(models=str(MODELS), body=body))
    return f"{path}:make"


def run(t: str, **options: Any) -> Any:
    options.setdefault("isolate", False)
    return verify_grad(t, grad=GradOptions(examples=2, own_loss=False), layout="hf-gpt2", max_len=8, **options)


def test_a_target_raising_on_some_inputs_fails_with_the_smallest_that_raises(tmp_path: Path) -> None:
    report = run(target(tmp_path, 'if input_ids.shape[1] > 3: raise IndexError("rows past 3 tokens")'))
    (result,) = report.results
    assert (result.key, result.status, report.exit_code) == ("grad", "failed", 1), (result.error, result.detail)
    assert "raised IndexError: rows past 3 tokens" in result.detail and "runs on other inputs" in result.detail
    assert "T=4" in (result.example or "") and "the smallest that raises" in (result.example or ""), result.example
    assert (result.localisation or {}).get("method") == "exception"
    assert "reproduce_grad(" in (result.counterexample or "")


def test_a_target_raising_on_every_input_could_not_run(tmp_path: Path) -> None:
    report = run(target(tmp_path, 'raise IndexError("never")'), shrink=False)
    (result,) = report.results
    assert (result.status, report.exit_code) == ("error", 2)
    assert "raised IndexError: never" in (result.error or "") and "every smaller input tried" in (result.error or "")


def test_sys_exit_in_process_is_the_target_failing_to_run(tmp_path: Path) -> None:
    report = run(target(tmp_path, "sys.exit(3)"))
    (result,) = report.results
    assert (result.status, report.exit_code) == ("error", 2)
    assert (result.error or "").startswith("the target called sys.exit(3) on B="), result.error


def test_the_whole_gradient_run_stops_at_its_timeout(tmp_path: Path) -> None:
    report = run(target(tmp_path, "time.sleep(0.3)"), timeout=0.2)
    assert report.exit_code == 2 and report.results[-1].key == "run"
    assert "the run was stopped after --timeout 0.2 s; the components not reported did not run" in (report.results[-1].error or "")
    assert all(r.examples <= 1 for r in report.results)  # stopped between cases, not after all of them


def test_a_hanging_call_is_a_failure_with_its_input_and_script(tmp_path: Path) -> None:
    report = run(target(tmp_path, "while True: pass"), isolate=True, call_timeout=1.0)
    (result,) = report.results
    assert (result.status, report.exit_code) == ("failed", 1), (result.error, result.detail)
    assert "--call-timeout 1 s" in result.detail and "B=1, T=8" in (result.example or "")
    assert "reproduce_grad(" in (result.counterexample or "") and result.localisation is None  # a hang is neither shrunk nor localised


def test_forward_and_gradient_runs_share_the_loop() -> None:
    for method in ("run_cases", "fail", "raised_on", "broke", "on_time", "config_ok", "arch_for"):
        assert getattr(GradRunner, method) is getattr(CaseLoop, method) is getattr(Runner, method), method
    assert not hasattr(GradRunner, "run")  # the old loop of its own is gone


def test_check_grad_failures_go_through_the_same_loop(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``gptspec check --grad`` (fast/'s backward at a preset's θ): a wrong ∂L/∂W_O is shrunk (rows
    and length only: θ is given), localised, and scripted; the script exits 1 while it fails."""
    from gptspec.verify import grad
    from gptspec.verify.engine import preset_target

    right = grad.FastGradients.grad

    def wrong(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = right(self, *args, **kwargs)
        out["theta"] = {name: g * 1.001 if name.endswith("attn.W_O") else g for name, g in out["theta"].items()}
        return out

    monkeypatch.setattr(grad.FastGradients, "grad", wrong)
    first = grad.check_grad(preset_target("tiny"), "float64", examples=1, seed=0)[0]
    assert first.status == "failed" and "shrunk in" in (first.example or "") and "n_layers=2" in (first.example or ""), first.example
    loc = first.localisation or {}
    assert (loc.get("path"), loc.get("method")) == ("blocks.1.attn.W_O", "gradients"), loc  # the last W_O: first in backward order
    with pytest.raises(SystemExit) as ended:
        exec(compile(first.counterexample or "", "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102 - the script check printed
    assert ended.value.code == 1 and "FAIL: worst" in capsys.readouterr().out
