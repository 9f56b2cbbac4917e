"""A plain numpy GPT-2 over Hugging Face state-dict names — the callable target kind
``f(state_dict, input_ids, attention_mask, config) -> logits`` — verified as a black box: the
correct one passes in float64 and float32; each realistic bug switched on fails, and the
ablation probes name the component; with ``capture`` the intermediates name it; a failure's
printed script runs on its own and fails; the CLI's exit codes and report formats.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptspec.cli import main
from gptspec.verify import verify_target

ROOT = Path(__file__).resolve().parent.parent


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mu) / np.sqrt(var + eps) * g + b
    return out


def gelu(x: np.ndarray, exact: bool) -> np.ndarray:
    if exact:
        from math import erf, sqrt

        out: np.ndarray = 0.5 * x * (1 + np.vectorize(erf)(x / sqrt(2.0)).astype(x.dtype))
        return out
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi).astype(x.dtype) * (x + 0.044715 * x**3)))


def gpt2(sd: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray, config: Any, capture: dict[str, Any] | None = None,
         bugs: frozenset[str] = frozenset()) -> np.ndarray:
    """GPT-2 in numpy, in the state dict's dtype; ``bugs`` switches realistic mistakes on."""
    d, H = config["n_embd"], config["n_head"]
    dh = d // H
    eps = config["layer_norm_epsilon"]
    B, T = ids.shape
    valid = mask.astype(bool)
    pos = np.arange(T)[None, :].repeat(B, 0) if "positions" in bugs else np.where(valid, np.cumsum(valid, 1) - 1, 0)
    x = sd["wte.weight"][ids] + sd["wpe.weight"][pos]
    for i in range(config["n_layer"]):
        p = f"h.{i}."
        a = layer_norm(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
        qkv = a @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]
        q, k, v = (qkv[..., j * d : (j + 1) * d].reshape(B, T, H, dh).transpose(0, 2, 1, 3) for j in range(3))
        scale = 1.0 / dh if "scale" in bugs else 1.0 / np.sqrt(dh)
        s = (q @ k.transpose(0, 1, 3, 2)) * np.asarray(scale, dtype=x.dtype)
        t_ = np.arange(T)
        allowed = t_[None, :] <= t_[:, None] + (1 if "mask" in bugs else 0)
        if "padding" not in bugs:
            allowed = allowed[None] & valid[:, None, :]
        allowed = np.broadcast_to(allowed[:, None] if allowed.ndim == 3 else allowed, s.shape)
        s = np.where(allowed, s, -np.inf)
        with np.errstate(all="ignore"):
            m = np.where(allowed.any(-1, keepdims=True), s.max(-1, keepdims=True), 0)
            e = np.where(allowed, np.exp(s if "nomax" in bugs else s - m), 0)
            w = e / np.maximum(e.sum(-1, keepdims=True), np.finfo(x.dtype).tiny)
        z = (w @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        out = z @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
        if capture is not None:
            capture[f"transformer.h.{i}.attn"] = out
        x = out if "residual" in bugs else x + out
        m2 = layer_norm(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
        hidden = gelu(m2 @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"], exact="gelu" in bugs)
        x = x + hidden @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
    x = layer_norm(x, sd["ln_f.weight"], sd["ln_f.bias"], eps * (100 if "eps" in bugs else 1))
    logits: np.ndarray = x @ sd["lm_head.weight"].T
    return logits


def correct(sd: Any, ids: Any, mask: Any, config: Any) -> np.ndarray:
    return gpt2(sd, ids, mask, config)


def with_decode(sd: Any, ids: Any, mask: Any, config: Any) -> np.ndarray:
    return gpt2(sd, ids, mask, config)


def decode_by_recomputing(sd: Any, ids: Any, mask: Any, config: Any, prefix: int) -> np.ndarray:
    """A decode that prefills ``prefix`` positions, then appends one position at a time,
    recomputing (what a cache must reproduce)."""
    steps = [gpt2(sd, ids[:, :prefix], mask[:, :prefix], config)]
    for t in range(prefix, ids.shape[1]):
        steps.append(gpt2(sd, ids[:, : t + 1], mask[:, : t + 1], config)[:, -1:])
    return np.concatenate(steps, axis=1)


with_decode.decode = decode_by_recomputing  # type: ignore[attr-defined]


def test_a_callable_offering_decode_is_decoded() -> None:
    report = verify_target(with_decode, layout="hf-gpt2", examples=2, components=("decode",))
    assert [(r.key, r.status) for r in report.results] == [("decode", "passed")], report.results


def with_capture(sd: Any, ids: Any, mask: Any, config: Any, capture: dict[str, Any] | None = None) -> np.ndarray:
    """The scale bug, but the intermediates it fills let verify name the attention."""
    return gpt2(sd, ids, mask, config, capture, frozenset({"scale"}))


BUGS = {
    # bug: localisation path fragment (ablation probes)
    "positions": "positional",
    "scale": "blocks.0.attn",
    "mask": "blocks.0.attn",
    "padding": "blocks.0.attn",
    "nomax": "blocks.0.attn.head_*.softmax",
    "gelu": "blocks.0.mlp",
    "eps": "ln_f",
    "residual": "blocks.*.add_attn",
}
for _bug in BUGS:
    globals()[f"buggy_{_bug}"] = (lambda bug: lambda sd, ids, mask, config: gpt2(sd, ids, mask, config, bugs=frozenset({bug})))(_bug)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_correct_numpy_gpt2_passes(dtype: str) -> None:
    report = verify_target(correct, layout="hf-gpt2", dtype=dtype, examples=3, generation_examples=1)
    assert report.exit_code == 0, [(r.component, r.status, r.detail) for r in report.results]
    statuses = {r.key: r.status for r in report.results}
    assert statuses == {"model": "passed", "decode": "not run", "generate": "passed"}  # no decode offered: not run, never passed
    assert report.count("not run") == 1 and report.count("passed") == 2


@pytest.mark.parametrize("bug", BUGS)
def test_each_bug_fails_and_the_probes_name_the_component(bug: str) -> None:
    report = verify_target(globals()[f"buggy_{bug}"], layout="hf-gpt2", examples=4, components=("model",), shrink=False)
    (result,) = report.results
    assert result.status == "failed", f"{bug}: {result.detail}"
    loc = result.localisation
    assert loc is not None and loc["method"] == "ablation", loc
    assert BUGS[bug] in loc["path"], f"{bug}: localised at {loc}, but expected {BUGS[bug]}"


def test_a_callable_that_captures_is_localised_by_its_intermediates() -> None:
    report = verify_target(with_capture, layout="hf-gpt2", examples=2, components=("model",), shrink=False)
    loc = report.results[0].localisation
    assert loc is not None and (loc["path"], loc["method"]) == ("blocks.0.attn", "intermediates"), loc


def test_the_printed_script_reproduces_the_minimal_failure(tmp_path: Path) -> None:
    target = "tests.test_verify_blackbox:buggy_scale"
    report = verify_target(target, layout="hf-gpt2", examples=2, components=("model",))
    (result,) = report.results
    assert result.status == "failed" and result.counterexample is not None
    assert "n_layers=1, n_heads=1" in (result.example or "") and "B=1, T=" in (result.example or ""), result.example
    width = int((result.example or "").split("B=1, T=")[1].split(":")[0])
    assert width <= 2, result.example  # the scale shows from two positions on (one position attends to itself only)
    path = tmp_path / "repro.py"
    path.write_text(result.counterexample)
    run = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.startswith("FAIL: max |Δ|"), run.stdout
    fixed = path.read_text().replace("buggy_scale", "correct")
    path.write_text(fixed)
    run = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("PASS"), run.stdout + run.stderr


def test_cli_exit_codes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--layout", "hf-gpt2", "--examples", "2", "--generation-examples", "1", "--no-shrink", "--components", "model,decode"]
    assert main(["verify", "tests.test_verify_blackbox:correct", *common]) == 0
    text = capsys.readouterr()
    assert "1 passed, 0 failed, 1 not run, 0 error" in text.out and "empty rows: any-finite" in text.out, text.out
    out = tmp_path / "report.json"
    assert main(["verify", "tests.test_verify_blackbox:buggy_mask", *common, "--format", "json", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    failed = [c for c in report["components"] if c["status"] == "failed"]
    assert failed and failed[0]["localisation"]["path"].endswith("blocks.0.attn") and report["exit_code"] == 1
    junit = tmp_path / "report.xml"
    assert main(["verify", "tests.test_verify_blackbox:buggy_mask", *common, "--format", "junit", "--out", str(junit)]) == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("1", "1", "0"), ET.tostring(ET.parse(junit).getroot())[:300]
    assert main(["verify", "tests.test_verify_blackbox:no_such_function", "--layout", "hf-gpt2"]) == 2
    assert main(["verify", "tests.test_verify_blackbox:correct"]) == 2  # the layout cannot be inferred from a function
    assert main(["verify", "tests.test_verify_blackbox:raises", *common]) == 2
    err = capsys.readouterr().err
    assert "expected --layout" in err and "raised ZeroDivisionError" in err, err


def raises(sd: Any, ids: Any, mask: Any, config: Any) -> np.ndarray:
    raise ZeroDivisionError("a target that raises")
