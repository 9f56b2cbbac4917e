"""``gptspec verify --grad``, ``--train-step`` and ``gptspec check --grad`` (gptspec/verify/grad.py;
docs/verify.md, "Verifying training code").

Real Hugging Face GPT-2 and Llama (tiny random configs, eager and sdpa, float32 and bfloat16)
pass with no false positive; small models with hand-written backward passes
(tests/fixtures/training/models.py) are caught and localised, one realistic bug each; training
steps (tests/fixtures/training/steps.py) that normalise per micro-batch or shift labels wrongly are
caught, the first diagnosed. Runs are in-process (cheap) except one, which goes through the child
process as the CLI does.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path
from typing import Any

import pytest

from gptspec.verify.grad import GradCase, GradOptions, verify_grad
from spec.errors import ConfigError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()

FIXTURES = Path(__file__).parent / "fixtures" / "training"
MODELS = f"{FIXTURES / 'models.py'}"
STEPS = f"{FIXTURES / 'steps.py'}"


def run(target: str, *, grad: GradOptions | None = None, **options: Any) -> Any:
    options.setdefault("isolate", False)
    return verify_grad(target, grad=grad or GradOptions(examples=2), **options)


def statuses(report: Any) -> dict[str, str]:
    return {r.key: r.status for r in report.results}


@pytest.mark.parametrize(
    ("target", "attn", "dtype"),
    [
        ("transformers:GPT2LMHeadModel", "eager", "float32"),
        ("transformers:GPT2LMHeadModel", "sdpa", "bfloat16"),
        ("transformers:LlamaForCausalLM", "sdpa", "float32"),
        ("transformers:LlamaForCausalLM", "eager", "bfloat16"),
    ],
)
def test_hugging_face_passes(target: str, attn: str, dtype: str) -> None:
    report = run(target, attn_implementation=attn, dtype=dtype)
    assert statuses(report) == {"grad": "passed", "own-loss": "passed"}, [r.detail for r in report.results]
    assert all(r.examples == 2 and 0 < r.ratio <= 1 for r in report.results)  # judged: nonzero errors, within budget
    assert report.exit_code == 0


def test_correct_hand_written_backwards_pass() -> None:
    for factory, layout in (("gpt", "hf-gpt2"), ("llama", "hf-llama")):
        report = run(f"{MODELS}:{factory}", layout=layout, dtype="float32", grad=GradOptions(examples=1))
        assert statuses(report) == {"grad": "passed", "own-loss": "passed"}, [r.detail for r in report.results]


@pytest.mark.parametrize(
    ("factory", "layout", "path", "kind", "said"),
    [
        ("gpt_layer_norm_without_mean", "hf-gpt2", "blocks.1.ln_2", "layer_norm", "sends to its input"),
        ("gpt_softmax_without_correction", "hf-gpt2", "blocks.0.attn", "multi_head_attention", "masked_softmax"),
        ("gpt_gelu_erf_derivative", "hf-gpt2", "blocks.0.mlp.gelu_tanh", "gelu_tanh", "output of blocks.0.mlp.W_in"),
        ("llama_rotary_sin_flipped", "hf-llama", "blocks.0.attn", "multi_head_attention", "rotary"),
        ("llama_gqa_unsummed", "hf-llama", "blocks.0.attn", "multi_head_attention", "sum over the heads"),
    ],
)
def test_backward_bugs_are_caught_and_localised(factory: str, layout: str, path: str, kind: str, said: str) -> None:
    report = run(f"{MODELS}:{factory}", layout=layout, dtype="float32", shrink=False, grad=GradOptions(examples=1, own_loss=False))
    (result,) = report.results
    assert result.status == "failed" and result.ratio > 2, result.detail  # the GELU forms differ by ≤ 1e-3: caught at ~8× the budget
    loc = result.localisation or {}
    assert (loc.get("path"), loc.get("kind"), loc.get("method")) == (path, kind, "cotangents"), loc
    assert said in loc["detail"], loc["detail"]


def test_a_failure_shrinks_to_a_script_that_reproduces_it(capsys: pytest.CaptureFixture[str]) -> None:
    report = run(f"{MODELS}:gpt_softmax_without_correction", layout="hf-gpt2", dtype="float32", max_len=8,
                 grad=GradOptions(examples=1, own_loss=False))
    (result,) = report.results
    assert result.status == "failed"
    assert "n_layers=1" in (result.example or "") and "shrunk in" in (result.example or "")
    assert (result.localisation or {}).get("path") == "blocks.0.attn"
    script = result.counterexample or ""
    assert "reproduce_grad(" in script
    with pytest.raises(SystemExit) as ended:
        exec(compile(script, "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102 - the script verify printed
    assert ended.value.code == 1
    assert "FAIL: worst" in capsys.readouterr().out


@pytest.mark.parametrize(("step", "status"), [("accumulate", "passed"), ("per_micro_batch_mean", "failed"), ("unshifted_labels", "failed")])
def test_training_steps(step: str, status: str) -> None:
    report = run("transformers:GPT2LMHeadModel", dtype="float32", shrink=False, max_len=6,
                 grad=GradOptions(grad=False, train_step=f"{STEPS}:{step}", examples=2 if status == "passed" else 1))
    (result,) = report.results
    assert (result.key, result.status) == ("train-step", status), result.detail
    if step == "per_micro_batch_mean":
        assert (result.localisation or {}).get("kind") == "micro-batch accumulation"
        assert "whole batch's counted tokens N" in (result.localisation or {})["detail"]
    if step == "unshifted_labels":
        assert "label shift" in (result.localisation or {})["detail"]


def test_every_training_case_has_micro_batches_of_different_counts() -> None:
    from gptspec.verify.grad import counted_ok, grad_cases

    for case in grad_cases(None, 16, 61, examples=6, seed=0, max_len=16, train=True):
        lam = case.labels(-100)
        counts = [int((lam[a:b, 1:] != -100).sum()) for a, b in case.micro_batches()]
        assert counted_ok(case) and len(set(counts)) > 1, counts


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from gptspec.cli import main

    code = main(["verify", f"{MODELS}:gpt_gelu_erf_derivative", "--layout", "hf-gpt2", "--grad", "--grad-examples", "1", "--no-shrink",
                 "--quiet", "--in-process", "--max-len", "8"])
    out = capsys.readouterr().out
    assert code == 1
    assert "localisation: blocks.0.mlp.gelu_tanh (gelu_tanh), by cotangents" in out
    assert "FAIL     gradient: the target's own loss" in out


def test_the_child_answers_gradient_calls(tmp_path: Path) -> None:
    """The isolated protocol's child side (gptspec/verify/child.py): a torch target offers grad and
    train_step, and answers them with θ read from the shared file, as the parent sends it."""
    from gptspec.verify.child import Server
    from gptspec.verify.draws import ThetaDraw, draw_theta
    from gptspec.verify.grad import to_theta_grads
    from gptspec.verify.isolate import CALLS, write_theta
    from gptspec.verify.session import Options, setup

    s = setup(f"{MODELS}:gpt", Options(layout="hf-gpt2", max_len=4))
    server = Server(None)  # type: ignore[arg-type]
    server.impl, server.label = s.impl, s.label
    info = {"methods": __import__("gptspec.verify.grad", fromlist=["child_methods"]).child_methods(s.impl, s.arch)}
    assert {"grad", "train_step"} <= set(CALLS) and info["methods"] == ("grad", "train_step", "own_loss")
    theta = draw_theta(s.arch, ThetaDraw(0), "float32")
    path = str(tmp_path / "theta.bin")
    size, entries = write_theta(path, theta)
    ids = torch.arange(4).reshape(1, 4).numpy()
    got = server.call("grad", s.arch.config, ("new", 1, path, size, entries), (ids, None, ids.copy(), False))
    grads = to_theta_grads(s.layout, s.arch, got["grads"])
    assert set(grads) == set(s.arch.theta) and got["loss"] > 0


def test_check_grad_judges_fast_backward() -> None:
    from gptspec.verify.engine import preset_target
    from gptspec.verify.grad import check_grad

    results = check_grad(preset_target("tiny"), "float64", examples=1, seed=0)
    assert [r.status for r in results] == ["passed", "passed"], [r.detail or r.error for r in results]


def test_refusals() -> None:
    with pytest.raises(ConfigError, match="module:function"):
        GradOptions(train_step="steps.py").check()
    with pytest.raises(ConfigError, match="--grad or --train-step"):
        GradOptions(grad=False).check()
    case = GradCase(None, __import__("gptspec.verify.draws", fromlist=["ThetaDraw"]).ThetaDraw(0), ((1, 2, 3),), ((1,),))
    assert case.labels(-100).tolist() == [[1, -100, 3]]


def test_the_pytest_plugin_routes_gradient_options() -> None:
    from gptspec.pytest_plugin import GRAD_KEYS, _verify_grad

    assert GRAD_KEYS == ("grad", "own-loss", "train-step")
    report = _verify_grad(f"{MODELS}:gpt", {"layout": "hf-gpt2", "grad_examples": 1, "max_len": 4, "isolate": False,
                                             "train_step": f"{STEPS}:accumulate"})
    assert statuses(report) == {"grad": "passed", "own-loss": "passed", "train-step": "passed"}
