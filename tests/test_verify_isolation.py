"""``gptspec verify`` as a CI gate a target cannot fool (docs/verify.md, "What verify guarantees"):
each row of that table is a test here, with a hostile target written as a small file.

Most targets are numpy callables over a state dict (a child process that imports torch costs
seconds); torch appears only where the row is about torch. Runs are kept tiny (one or two
examples, the components a row needs).
"""

from __future__ import annotations

import json
import os
import textwrap
import xml.dom.minidom
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptspec.cli import main
from gptspec.verify import verify_target
from spec.errors import ConfigError

pytest_plugins = ["pytester"]

GOOD = textwrap.dedent('''
    import numpy as np

    def _ln(x, g, b, eps):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * g + b

    def _gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def good(sd, ids, mask, config):
        """GPT-2 in numpy over Hugging Face's names (layout hf-gpt2)."""
        with np.errstate(under="ignore"):
            B, T = ids.shape
            d, H, eps = config["n_embd"], config["n_head"], config["layer_norm_epsilon"]
            dh = d // H
            pos = np.where(mask > 0, np.cumsum(mask, -1) - 1, 0)
            x = sd["wte.weight"][ids] + sd["wpe.weight"][pos]
            keep = np.tril(np.ones((T, T), bool))[None, None] & (mask[:, None, None, :] > 0)
            for layer in range(config["n_layer"]):
                p = f"h.{layer}."
                h = _ln(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
                q, k, v = np.split(h @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"], 3, -1)
                q, k, v = (t.reshape(B, T, H, dh).transpose(0, 2, 1, 3) for t in (q, k, v))
                s = np.where(keep, q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh), -1e300)
                e = np.where(keep, np.exp(s - s.max(-1, keepdims=True)), 0.0)
                z = e.sum(-1, keepdims=True)
                a = e / np.where(z > 0, z, 1.0)
                x = x + (a @ v).transpose(0, 2, 1, 3).reshape(B, T, d) @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
                h = _ln(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
                u = _gelu(h @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"])
                x = x + u @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
            return _ln(x, sd["ln_f.weight"], sd["ln_f.bias"], eps) @ sd["wte.weight"].T
''')

SMALL: dict[str, Any] = {"layout": "hf-gpt2", "examples": 2, "generation_examples": 1, "components": ("model",), "identify": False}


def target(tmp_path: Path, body: str, prelude: str = "", name: str = "t") -> str:
    """A file target ``tmp_path/name.py:forward``: ``prelude`` (module level), the correct
    numpy GPT-2 ``good``, then ``body`` (which defines ``forward``)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(prelude) + GOOD + textwrap.dedent(body))
    return f"{path}:forward"


def statuses(report: Any) -> list[str]:
    return [r.status for r in report.results]


def errors(report: Any) -> str:
    return " | ".join(r.error or "" for r in report.results)


# -- the target's process ends -----------------------------------------------------------------


@pytest.mark.parametrize(("how", "said"), [
    ("sys.exit(0)", "sys.exit(0)"),
    ("sys.exit('giving up')", "sys.exit('giving up')"),
    ("os._exit(0)", "exited with status 0"),
    ("os._exit(3)", "exited with status 3"),
    ("os.kill(os.getpid(), signal.SIGSEGV)", "SIGSEGV"),
    ("ctypes.string_at(0)", "SIGSEGV"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
])
def test_a_target_that_ends_its_process_failed_to_run(tmp_path: Path, how: str, said: str) -> None:
    t = target(tmp_path, f"""
        def forward(sd, ids, mask, config):
            {how}
        """, "import os, sys, signal, ctypes\n")
    report = verify_target(t, **SMALL)
    assert report.exit_code == 2 and statuses(report) == ["error"], statuses(report)
    assert said in errors(report) and "failed to run" in errors(report)


def test_memory_error_is_the_target_failing_to_run(tmp_path: Path) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            raise MemoryError("out of memory")
        """)
    report = verify_target(t, **SMALL)
    assert report.exit_code == 2 and "MemoryError" in errors(report)


def test_in_process_still_classifies_sys_exit(tmp_path: Path) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            raise SystemExit(0)
        """)
    report = verify_target(t, isolate=False, **SMALL)
    assert report.exit_code == 2 and "sys.exit(0)" in errors(report)
    assert any("--in-process" in n for n in report.notes)


# -- load failures: exit 2, one line in the house shape, no traceback ----------------------------


LOADS = {
    "syntax error": ("def forward(:\n", "SyntaxError"),
    "import raises": ("raise RuntimeError('broken at import')\n", "RuntimeError: broken at import"),
    "sys.exit(0) at import": ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    "BrokenPipeError at import": ("raise BrokenPipeError(32, 'Broken pipe')\n", "BrokenPipeError"),
    "name missing": ("x = 1\n", "has no attribute 'forward'"),
    "os._exit(0) at import": ("import os\nos._exit(0)\n", "exited with status 0"),
}


@pytest.mark.parametrize("kind", ["file", "module"])
@pytest.mark.parametrize("case", list(LOADS))
def test_load_failures_exit_2_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 case: str, kind: str) -> None:
    source, said = LOADS[case]
    module = f"broken_{kind}_{abs(hash(case)) % 10**6}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)  # a module:name target imports from the working directory
    name = f"{module}.py:forward" if kind == "file" else f"{module}:forward"
    code = main(["verify", name, "--layout", "hf-gpt2", "--quiet", "--examples", "1", "--components", "model"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "could not run" in err and said in err, err


def test_a_builder_that_raises_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    target(tmp_path, "forward = good\n")
    (tmp_path / "builders.py").write_text("def make():\n    raise ValueError('no such model')\n")
    monkeypatch.chdir(tmp_path)
    code = main(["verify", "t.py:forward", "--layout", "hf-gpt2", "--model", "builders:make", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "ValueError: no such model" in err and "Traceback" not in err, err


def test_an_implementation_whose_constructor_raises_exits_2(tmp_path: Path) -> None:
    (tmp_path / "impl.py").write_text(textwrap.dedent("""
        class Mine:
            name = "mine"
            dtype = "float64"
            def __init__(self):
                raise OSError("no GPU here")
            def model(self, arch, theta, ids, valid):
                raise AssertionError
            def op(self, op, inputs, params):
                return None
        """))
    with pytest.raises(ConfigError, match=r"raised OSError: no GPU here .*while building the implementation-class"):
        verify_target(f"{tmp_path / 'impl.py'}:Mine", **SMALL)


TORCH_CLASS = """
    import torch

    class NeedsTwo(torch.nn.Module):
        def __init__(self, width, depth):
            super().__init__()
"""


def test_a_class_that_cannot_take_the_native_config_shows_it_and_suggests_a_factory(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "cls.py").write_text(textwrap.dedent(TORCH_CLASS))
    with pytest.raises(ConfigError) as caught:
        verify_target(f"{tmp_path / 'cls.py'}:NeedsTwo", isolate=False, **SMALL)
    message = str(caught.value)
    assert "TypeError" in message and "'n_embd': 16" in message and "factory f(config) -> module" in message, message


def test_a_torch_class_calling_sys_exit_0_in_init_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    (tmp_path / "quits.py").write_text("import sys\nimport torch\n\nclass Quits(torch.nn.Module):\n    def __init__(self, config):\n"
                                       "        super().__init__()\n        sys.exit(0)\n")
    code = main(["verify", f"{tmp_path / 'quits.py'}:Quits", "--layout", "hf-gpt2", "--quiet", "--examples", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "called sys.exit(0) while being built" in err and "Traceback" not in err, err


def test_a_meta_device_instance_is_refused_at_setup(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=61, n_positions=16))
    with pytest.raises(ConfigError, match="meta device"):
        verify_target(model, examples=1, components=("model",))


# -- what the target returns ---------------------------------------------------------------


@pytest.mark.parametrize(("returns", "said"), [
    ("good(sd, ids, mask, config).astype(complex)", "complex values"),
    ("good(sd, ids, mask, config).astype(np.int64)", "integer values"),
    ("good(sd, ids, mask, config).astype(object)", "object values"),
    ("good(sd, ids, mask, config).tolist()", "returned a list"),
    ("good(sd, ids, mask, config)[:, :1]", "of shape"),
    ("None", "returned None"),
])
def test_wrong_return_types_are_refused_by_name(tmp_path: Path, returns: str, said: str) -> None:
    t = target(tmp_path, f"""
        def forward(sd, ids, mask, config):
            return {returns}
        """)
    report = verify_target(t, **SMALL)
    assert report.exit_code == 2 and said in errors(report), errors(report)


# -- global state: verify's numerics are its own -----------------------------------------------------


@pytest.mark.parametrize("isolate", [True, False])
def test_a_target_that_sets_numpy_errors_to_raise_still_passes(tmp_path: Path, isolate: bool) -> None:
    t = target(tmp_path, "forward = good\n", "import numpy as np\nnp.seterr(all='raise')\n")
    before = np.geterr()
    report = verify_target(t, isolate=isolate, **SMALL)
    assert report.exit_code == 0, [(r.status, r.error, r.detail) for r in report.results]
    assert np.geterr() == before  # the caller's state is the caller's


def test_a_target_that_changes_torch_global_state_still_passes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    t = target(tmp_path, "forward = good\n", """
        import torch
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        """)
    state = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    try:
        report = verify_target(t, isolate=False, **SMALL)
        assert report.exit_code == 0, errors(report)
    finally:
        torch.set_default_dtype(state[0])
        torch.set_grad_enabled(state[1])
        torch.use_deterministic_algorithms(state[2])
        torch.set_num_threads(state[3])


# -- time and size -------------------------------------------------------------------------------


def test_a_call_over_the_limit_is_a_failure_with_its_input(tmp_path: Path) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            while True:
                pass
        """)
    report = verify_target(t, call_timeout=1.0, **SMALL)
    (result,) = report.results
    assert report.exit_code == 1 and result.status == "failed", (result.status, result.error)
    assert "--call-timeout 1 s" in result.detail and result.example and result.counterexample


def test_the_whole_run_stops_at_its_timeout(tmp_path: Path) -> None:
    t = target(tmp_path, """
        import time
        def forward(sd, ids, mask, config):
            time.sleep(30)
        """)
    report = verify_target(t, timeout=1.5, **SMALL)
    assert report.exit_code == 2 and "--timeout" in errors(report)


def test_a_campaign_beyond_the_bounds_is_refused_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = target(tmp_path, "forward = good\n", "raise SystemExit('loaded: it must not be')\n")
    code = main(["verify", t, "--layout", "hf-gpt2", "--examples", "1000000000", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "campaign cost=" in err and "--no-cost-limit" in err and "loaded" not in err, err


def test_the_cost_estimate_scales_with_the_campaign_and_the_flag_lifts_the_bound() -> None:
    from gptspec.checkpoint import layout
    from gptspec.estimate import MAX_CAMPAIGN_FORWARDS, campaign
    from gptspec.verify.session import Options, _check_cost

    config = layout("hf-gpt2").default
    parts = ("model", "decode", "generate", "ops")
    small = campaign(config, examples=12, generation_examples=3, op_examples=10, max_len=16, components=parts)
    twice = campaign(config, examples=24, generation_examples=3, op_examples=10, max_len=16, components=parts)
    assert small.forwards < MAX_CAMPAIGN_FORWARDS and twice.forwards - small.forwards == 4 * 12 and twice.gflop > small.gflop
    huge = Options(layout="hf-gpt2", examples=10**9)
    with pytest.raises(ConfigError, match="--no-cost-limit"):
        _check_cost(config, huge)
    _check_cost(config, Options(layout="hf-gpt2", examples=10**9, cost_limit=False))  # the override: no refusal


# -- reports ---------------------------------------------------------------------------------------


def test_json_has_no_nan_or_infinity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            out = good(sd, ids, mask, config)
            out[...] = np.inf
            return out
        """)
    out = tmp_path / "r.json"
    code = main(["verify", t, "--layout", "hf-gpt2", "--quiet", "--examples", "1", "--components", "model", "--no-shrink",
                 "--no-localise", "--no-identify", "--format", "json", "--out", str(out)])
    assert code == 1

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the JSON report")

    report = json.loads(out.read_text(), parse_constant=refuse)
    assert report["components"][0]["ratio"] == "inf" and float(report["components"][0]["ratio"]) == float("inf")


def test_junit_is_well_formed_whatever_the_messages_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            raise RuntimeError("colour \\x1b[31m, bell \\x07, nul \\x00, fffe \\ufffe")
        """)
    out = tmp_path / "r.xml"
    code = main(["verify", t, "--layout", "hf-gpt2", "--quiet", "--examples", "1", "--components", "model", "--format", "junit",
                 "--out", str(out)])
    assert code == 2
    document = xml.dom.minidom.parseString(out.read_bytes())  # strict: raises on a character XML cannot hold
    error = document.getElementsByTagName("error")[0]
    assert "\\x1b" in error.getAttribute("message") and "\\x00" in error.getAttribute("message")


@pytest.mark.parametrize("isolate", [True, False])
def test_out_is_resolved_before_the_target_changes_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str], isolate: bool) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    t = target(tmp_path, "forward = good\n", f"import os\nos.chdir({str(elsewhere)!r})\n")
    monkeypatch.chdir(tmp_path)
    args = ["verify", t, "--layout", "hf-gpt2", "--quiet", "--examples", "1", "--components", "model", "--format", "json", "--out", "r.json"]
    code = main(args + ([] if isolate else ["--in-process"]))
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "r.json").is_file() and not (elsewhere / "r.json").exists()
    assert f"wrote {tmp_path / 'r.json'}" in capsys.readouterr().err


def test_a_bad_out_is_refused_before_the_target_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = target(tmp_path, "forward = good\n", "raise SystemExit('loaded: it must not be')\n")
    code = main(["verify", t, "--layout", "hf-gpt2", "--quiet", "--out", str(tmp_path / "missing" / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err and "loaded" not in err, err


# -- fresh inputs ----------------------------------------------------------------------------------


def test_writes_into_the_state_dict_never_reach_the_judgement(tmp_path: Path) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            out = good(sd, ids, mask, config)
            for value in sd.values():
                value *= 3.0            # after computing: the next call must get θ as drawn
            ids[...] = 0
            mask[...] = 0
            return out
        """)
    report = verify_target(t, layout="hf-gpt2", examples=2, generation_examples=2, components=("model", "generate"))
    assert report.exit_code == 0, [(r.status, r.detail, r.error) for r in report.results]


IMPLEMENTATION_WRITING = """
    import numpy as np

    class Writes:
        name = "writes"
        dtype = "float64"
        def model(self, arch, theta, ids, valid):
            next(iter(theta.values()))[...] = 0.0
            return np.zeros((*ids.shape, arch.dim("n_vocab")))
        def op(self, op, inputs, params):
            return None
"""


@pytest.mark.parametrize("isolate", [True, False])
def test_an_implementation_that_writes_into_theta_fails_saying_so(tmp_path: Path, isolate: bool) -> None:
    (tmp_path / "w.py").write_text(textwrap.dedent(IMPLEMENTATION_WRITING))
    report = verify_target(f"{tmp_path / 'w.py'}:Writes", isolate=isolate, **SMALL)
    (result,) = report.results
    assert report.exit_code == 1 and result.status == "failed" and "the target wrote into its inputs" in result.detail, (result.status, result.error)


# -- the pytest plugin ---------------------------------------------------------------------------------


def test_the_pytest_plugin_fails_the_items_of_a_target_that_exits(pytester: pytest.Pytester, tmp_path: Path) -> None:
    t = target(tmp_path, """
        def forward(sd, ids, mask, config):
            os._exit(0)
        """, "import os\n")
    pytester.makepyfile(test_exits=f"""
        def test_it(gptspec_verify):
            gptspec_verify({t!r}, layout="hf-gpt2", examples=1, generation_examples=1, identify=False)
        """)
    from importlib.metadata import entry_points

    installed = any(e.value == "gptspec.pytest_plugin" for e in entry_points(group="pytest11"))
    result = pytester.runpytest(*([] if installed else ["-p", "gptspec.pytest_plugin"]), "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 2 and "passed" not in outcomes, outcomes  # model and generate; decode, weights, ops skipped
    assert result.ret != 0 and "exited with status 0" in result.stdout.str()


# -- --set and the function in the header (issue 18) ---------------------------------------------------


def test_verify_set_changes_the_function_judged_and_the_header_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = target(tmp_path, "forward = good\n")
    code = main(["verify", t, "--layout", "hf-gpt2", "--quiet", "--examples", "2", "--components", "model", "--no-shrink",
                 "--no-localise", "--no-identify", "--set", "activation=gelu_erf", "--set", "eps=1e-3"])
    out = capsys.readouterr().out
    assert code == 1  # good() computes tanh-GELU with its config's ε: not the function asked for
    assert "function: activation=gelu_erf, eps=0.001" in out, out
    code = main(["verify", t, "--layout", "hf-gpt2", "--quiet", "--set", "tied=maybe"])
    assert code == 2 and "tied" in capsys.readouterr().err


def test_check_set_and_its_function_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tiny", "--set", "tied=false", "--examples", "1", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["function"]["tied"] is False and report["sets"] == ["tied=false"]
    assert report["function"]["activation"] == "gelu_tanh" and "n_layers" not in report["function"]
    assert main(["check", "tiny", "--set", "nope=1"]) != 0 and "nope" in capsys.readouterr().err


def test_every_report_format_names_the_function(tmp_path: Path) -> None:
    from gptspec.verify.report import as_json, junit, text

    report = verify_target(target(tmp_path, "forward = good\n"), layout="hf-gpt2", examples=1, components=("model",), shrink=False,
                           localise=False, identify=False, sets=("activation=relu",))
    assert "activation=relu, eps=1e-05, bias=True, tied=True, positional=learned" in text(report)
    assert json.loads(as_json(report))["function"]["activation"] == "relu"
    assert 'name="config.activation" value="relu"' in junit(report)
    assert os.path.basename(report.target).startswith("t.py")


def test_every_test_the_guarantees_table_names_exists() -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "verify.md").read_text()
    section = doc.split("## What verify guarantees", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", section))
    defined = set(re.findall(r"^def (test_[a-z0-9_]+)\(", Path(__file__).read_text(), re.M))
    assert len(named) >= 20 and named <= defined, named - defined
