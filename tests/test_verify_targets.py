"""The target kinds and the layout table: a torch module class built from the native config as
a dict, a factory, an Implementation with op-level components (gptspec's fast/, one more
Implementation), a ``file.py:name`` target; what makes a target impossible to run; the layout
as one table for export, import and module names (bit-exact round trip, a user's own layout
registered and used); the pytest plugin, one item per component.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from gptspec.checkpoint import LAYOUTS, Layout, Tensor, export_state_dict, import_state_dict, layout, register_layout
from gptspec.checkpoint.hf_gpt2 import HF_GPT2
from gptspec.verify import FastImplementation, verify_target
from spec import build
from spec.errors import ConfigError
from spec.theta import random_theta

transformers.utils.logging.set_verbosity_error()

pytest_plugins = ["pytester"]


class MyGPT(torch.nn.Module):
    """A user's own module class: built from the native config (a dict that also reads as
    attributes), called as forward(input_ids, attention_mask), no cache."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        assert config.n_embd == config["n_embd"]
        hf = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in config.items() if k != "model_type"}, attn_implementation="eager"))
        self.transformer, self.lm_head = hf.transformer, hf.lm_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).last_hidden_state
        out: torch.Tensor = self.lm_head(hidden)
        return out


def test_a_module_class_built_from_the_native_config() -> None:
    report = verify_target(MyGPT, layout="hf-gpt2", examples=3, generation_examples=1)
    statuses = {r.key: r.status for r in report.results}
    assert statuses == {"model": "passed", "decode": "not run", "generate": "passed"}, report.results
    assert report.dtype == "float32" and report.exit_code == 0


def test_fast_is_one_more_implementation_with_op_components() -> None:
    report = verify_target(FastImplementation("float64"), layout="hf-gpt2", examples=2, generation_examples=1, op_examples=3)
    ops = [r for r in report.results if r.key == "ops"]
    assert len(ops) >= 8 and all(r.status == "passed" for r in ops), [(r.component, r.status, r.detail) for r in ops]
    assert {r.key: r.status for r in report.results if r.key != "ops"} == {"model": "passed", "decode": "passed", "generate": "passed"}


def test_a_file_target(tmp_path: Path) -> None:
    source = tmp_path / "my_model.py"
    source.write_text("from tests.test_verify_blackbox import correct as forward\n")
    report = verify_target(f"{source}:forward", layout="hf-gpt2", examples=2, components=("model",))
    assert report.exit_code == 0 and report.target == f"{source}:forward"


class UniformSoftmax(FastImplementation):
    """fast/, except that a softmax row with no allowed key is 1/S on every key (Hugging Face's
    finite-mask behaviour)."""

    def op(self, op: Any, inputs: Any, params: Any) -> Any:
        out = super().op(op, inputs, params)
        if op.kind == "masked_softmax":
            t, s = np.arange(out.shape[0])[:, None], np.arange(out.shape[1])[None, :]
            empty = ~np.broadcast_to(op.mask.allowed_array(t, s), out.shape).any(-1)
            out[empty] = 1.0 / out.shape[1]
        return out


def test_empty_softmax_rows_are_judged_by_the_convention() -> None:
    from gptspec.verify.engine import check_op
    from gptspec.verify.strategies import OpExample
    from spec.dims import S, T
    from spec.masks import Causal, Intersection, KeyPadding
    from spec.ops import MaskedSoftmax

    op = MaskedSoftmax(Intersection((Causal(), KeyPadding((False, True, True)))), T, S)
    example = OpExample(rows=3, keys=3, seed=5)
    outcomes = {c: check_op(UniformSoftmax("float64"), op, example, empty_rows=c) for c in ("zero", "uniform", "any-finite", "ignore")}
    assert {c: o.passed for c, o in outcomes.items() if o is not None} == {"zero": False, "uniform": True, "any-finite": True, "ignore": True}
    assert "no allowed key is not 0" in outcomes["zero"].note  # type: ignore[union-attr]
    fast = check_op(FastImplementation("float64"), op, example, empty_rows="uniform")
    assert fast is not None and not fast.passed and "not 1/S" in fast.note  # fast/ gives 0 rows: not the uniform convention


@pytest.mark.parametrize(
    ("target", "options", "message"),
    [
        ("numpy:no_such_name", {"layout": "hf-gpt2"}, "has no attribute"),
        ("tests.test_verify_blackbox:correct", {}, "expected --layout"),  # a callable names no parameters: its layout is not inferred
        ("tests.test_verify_targets:MyGPT", {"layout": "hf-gpt2", "model": "tiny-llama"}, "expected gpt for layout hf-gpt2"),
        ("tests.test_verify_targets:MyGPT", {"layout": "hf-marian"}, "describes an encoder–decoder .*gptspec forward DIR"),
        ("tests.test_verify_targets:MyGPT", {"layout": "hf-gpt2", "model": "transformer-tiny"}, r"inputs=\['source', 'ids'\].*gptspec check"),
        ("tests.test_verify_targets:two_args", {"layout": "hf-gpt2"}, "takes 2 required arguments"),
        ("tests.test_verify_targets:MyGPT", {"layout": "hf-gpt2", "empty_rows": "nan"}, "empty_rows='nan'"),
        ("tests.test_verify_targets:MyGPT", {"layout": "hf-gpt2", "dtype": "bfloat16", "attn_implementation": "eager"}, "no config_class"),
    ],
)
def test_what_cannot_run_is_refused_by_name(target: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        verify_target(target, **options)


def two_args(a: object, b: object) -> None:
    """Neither a factory nor a state-dict callable."""


# -- layouts -------------------------------------------------------------------------------


def test_theta_to_state_dict_and_back_is_bit_exact() -> None:
    arch = build(HF_GPT2.default)
    theta = random_theta(arch, seed=3, std=0.7)
    state = export_state_dict(arch, theta, "hf-gpt2")
    assert "transformer.h.1.attn.c_attn.weight" in state and np.array_equal(state["lm_head.weight"], state["transformer.wte.weight"])
    _, back = import_state_dict(arch.config, state, "hf-gpt2")
    assert all(np.array_equal(back[k], theta[k]) for k in theta)


MY_LAYOUT = "my-gpt (test)"


def my_layout() -> Layout:
    """A user's naming scheme: GPT-2's config table, its own tensor names, separate Q/K/V."""
    if MY_LAYOUT in LAYOUTS:
        return LAYOUTS[MY_LAYOUT]
    rules = (
        Tensor("tok.weight", ("W_E",), "v d", "v d"),
        Tensor("pos.weight", ("W_P",), "n d", "n d"),
        *[Tensor(f"layers.{{i}}.{n}.{w}", (f"blocks.{{i}}.{t}",), "d", "d") for n, t0 in (("norm1", "ln_1"), ("norm2", "ln_2")) for w, t in (("g", f"{t0}.gamma"), ("b", f"{t0}.beta"))],
        *[Tensor(f"layers.{{i}}.{x}.weight", (f"blocks.{{i}}.attn.W_{x.upper()}",), "(h e) d", "h d e") for x in "qkv"],
        *[Tensor(f"layers.{{i}}.{x}.bias", (f"blocks.{{i}}.attn.b_{x.upper()}",), "(h e)", "h e") for x in "qkv"],
        Tensor("layers.{i}.o.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor("layers.{i}.o.bias", ("blocks.{i}.attn.b_O",), "d", "d"),
        Tensor("layers.{i}.up.weight", ("blocks.{i}.mlp.W_in",), "m d", "d m"),
        Tensor("layers.{i}.up.bias", ("blocks.{i}.mlp.b_in",), "m", "m"),
        Tensor("layers.{i}.down.weight", ("blocks.{i}.mlp.W_out",), "d m", "m d"),
        Tensor("layers.{i}.down.bias", ("blocks.{i}.mlp.b_out",), "d", "d"),
        Tensor("norm.g", ("ln_f.gamma",), "d", "d"),
        Tensor("norm.b", ("ln_f.beta",), "d", "d"),
    )
    return register_layout(Layout(
        name=MY_LAYOUT, family="gpt", description="a test's own layout", config_keys=HF_GPT2.config_keys,
        read_config=HF_GPT2.read_config, write_config=HF_GPT2.write_config, tensors=rules, layers=lambda c: c.n_layers,
        default=HF_GPT2.default,
    ))


def to_hf_names(sd: dict[str, np.ndarray], config: Any) -> dict[str, np.ndarray]:
    """The test's layout read back into GPT-2's names (Linear-style (out, in) weights)."""
    out = {"wte.weight": sd["tok.weight"], "wpe.weight": sd["pos.weight"], "ln_f.weight": sd["norm.g"], "ln_f.bias": sd["norm.b"]}
    out["lm_head.weight"] = sd["tok.weight"]
    for i in range(config["n_layer"]):
        p, q = f"layers.{i}.", f"h.{i}."
        out[q + "ln_1.weight"], out[q + "ln_1.bias"] = sd[p + "norm1.g"], sd[p + "norm1.b"]
        out[q + "ln_2.weight"], out[q + "ln_2.bias"] = sd[p + "norm2.g"], sd[p + "norm2.b"]
        out[q + "attn.c_attn.weight"] = np.concatenate([sd[p + f"{x}.weight"].T for x in "qkv"], axis=1)
        out[q + "attn.c_attn.bias"] = np.concatenate([sd[p + f"{x}.bias"] for x in "qkv"])
        out[q + "attn.c_proj.weight"], out[q + "attn.c_proj.bias"] = sd[p + "o.weight"].T, sd[p + "o.bias"]
        out[q + "mlp.c_fc.weight"], out[q + "mlp.c_fc.bias"] = sd[p + "up.weight"].T, sd[p + "up.bias"]
        out[q + "mlp.c_proj.weight"], out[q + "mlp.c_proj.bias"] = sd[p + "down.weight"].T, sd[p + "down.bias"]
    return out


def my_model(sd: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray, config: Any) -> np.ndarray:
    from tests.test_verify_blackbox import gpt2

    return gpt2(to_hf_names(sd, config), ids, mask, config)


def test_a_users_own_layout_is_registered_and_used() -> None:
    lay = my_layout()
    arch = build(lay.default)
    theta = random_theta(arch, seed=4)
    state = export_state_dict(arch, theta, MY_LAYOUT)
    assert set(state) >= {"tok.weight", "layers.1.q.weight", "norm.g"} and state["layers.0.q.weight"].shape == (16, 16)
    _, back = import_state_dict(arch.config, state, MY_LAYOUT)
    assert all(np.array_equal(back[k], theta[k]) for k in theta)
    report = verify_target(my_model, layout=MY_LAYOUT, examples=3, components=("model",))
    assert report.exit_code == 0, [(r.component, r.detail) for r in report.results]


def test_module_names_map_to_dag_paths() -> None:
    paths = layout("hf-gpt2").module_paths(HF_GPT2.default)
    assert paths["transformer.h.1.attn"] == "blocks.1.attn" and paths["transformer.h.0.mlp.c_proj"] == "blocks.0.mlp.W_out"
    arch = build(HF_GPT2.default)
    placed = {p.path: p for p in arch.placed()}
    assert all(path in placed for path in paths.values())
    assert placed["blocks.0.attn"].output == "blocks.0.attn.W_O" and placed["blocks.0.ln_2"].inputs["x"] == "blocks.0.add_attn"


# -- the pytest plugin ---------------------------------------------------------------------


def test_the_pytest_plugin_makes_one_item_per_component(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mine="""
        def test_my_gpt(gptspec_verify):
            gptspec_verify("tests.test_verify_blackbox:correct", layout="hf-gpt2", examples=1, generation_examples=1)

        def test_buggy(gptspec_verify):
            gptspec_verify("tests.test_verify_blackbox:buggy_mask", layout="hf-gpt2", examples=1, components=("model",), shrink=False)
        """
    )
    from importlib.metadata import entry_points

    installed = any(e.value == "gptspec.pytest_plugin" for e in entry_points(group="pytest11"))
    load = [] if installed else ["-p", "gptspec.pytest_plugin"]  # a source checkout not reinstalled since the entry point was added
    result = pytester.runpytest(*load, "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, skipped=7)
    out = result.stdout.str()
    for item in ("test_my_gpt[model] PASSED", "test_my_gpt[decode] SKIPPED", "test_my_gpt[generate] PASSED", "test_buggy[model] FAILED"):
        assert item in out, out
    assert "localisation: blocks.0.ln_1+blocks.0.attn" in out and "minimal counterexample" in out, out


def test_the_plugin_is_registered_for_pytest() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"gptspec": "gptspec.pytest_plugin"}


# -- the tolerance policy's half precisions --------------------------------------------------


def test_bfloat16_rounding_is_round_to_nearest_even() -> None:
    from gptspec.verify.tolerance import round_bfloat16

    rng = np.random.default_rng(0)
    x = (rng.normal(size=20000) * 10.0 ** rng.integers(-40, 38, size=20000)).astype(np.float32)  # float32: torch rounds once
    x = np.concatenate([x, np.float32([0.0, -0.0, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 3.3895314e38, np.inf, -np.inf])])
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float64).numpy()
    np.testing.assert_array_equal(round_bfloat16(x.astype(np.float64)), want)
    assert round_bfloat16(np.array([1.0 + 2.0**-8]))[0] == 1.0  # a tie goes to even


def test_verify_policy_formula() -> None:
    from gptspec.verify.tolerance import DEFAULT, VERIFY, unit_roundoff

    assert VERIFY.budget("float32", 1e-6, 2.0, scores=100.0) == 8e-6 + (256 + 100) * 2.0**-24 * 2.0
    assert VERIFY.budget("bfloat16", 0.0, 1.0) == 8 * unit_roundoff("bfloat16")
    assert DEFAULT.budget("float64", 1.0, 0.0) == 4.0  # gptspec check's factor is unchanged
