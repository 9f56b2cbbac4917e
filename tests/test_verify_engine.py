"""The verification engine must be able to fail: implementations with the bugs it exists to
catch (a wrong ε, GELU variant, scale, or a mask that leaks the future) are caught, in float64
and in float32, and a failure comes with a minimal counterexample and Python to reproduce it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

import fast
import fast.attention
import fast.kernels
import fast.kernels.attention
from gptspec.cli import main
from gptspec.verify import FastImplementation, compare, preset_target
from gptspec.verify.engine import Component, Target, check_model, components, run_component
from gptspec.verify.strategies import batch_examples
from gptspec.verify.tolerance import DEFAULT, Policy, unit_roundoff
from spec import build_gpt, preset
from spec.graph import Architecture
from spec.masks import Causal, Relation

TINY = preset_target("tiny", seed=0)


class MutantModel(FastImplementation):
    """fast/ running a *different* architecture than the one it is judged against."""

    def __init__(self, dtype: str, mutant: Architecture) -> None:
        super().__init__(dtype)
        self.mutant = mutant

    def model(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: Any, valid: Any) -> np.ndarray:
        result: np.ndarray = fast.compile(self.mutant, theta, self.dtype).forward(ids, valid)
        return result


def model_component(impl: FastImplementation, target: Target = TINY) -> Component:
    return Component(
        "model", batch_examples(max_batch=2, max_len=6),
        lambda ex: check_model(impl, target.arch, target.theta, ex), lambda ex: repr(ex),
    )


MUTANTS = {
    "eps 1e-3 instead of 1e-5": {"eps": 1e-3},
    "exact GELU instead of tanh GELU": {"activation": "gelu_erf"},
    "attention scale off by 0.1%": {"attn_scale": 1.001 / np.sqrt(8)},
    "scale divided by layer index": {"scale_by_inverse_layer": True},
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MUTANTS)
def test_config_mutants_are_caught(name: str, dtype: str) -> None:
    mutant = build_gpt(preset("tiny").config.replace(**MUTANTS[name]))
    result = run_component(model_component(MutantModel(dtype, mutant)), examples=20, seed=0)
    assert not result.passed, f"{name} went unnoticed in {dtype}: worst ratio {result.ratio:.3g}"
    assert result.counterexample and "BatchExample" in result.counterexample


def test_the_unmutated_implementation_passes() -> None:
    for dtype in ("float64", "float32"):
        result = run_component(model_component(FastImplementation(dtype)), examples=20, seed=0)
        assert result.passed, result.detail


@pytest.fixture
def leaky_causal_mask(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A causal mask off by one: position t also sees t + 1."""
    original = fast.kernels.attention.allowed

    def leaky(relation: Relation, q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
        if isinstance(relation, Causal):
            return np.asarray(k_pos[:, None, :] <= q_pos[:, :, None] + 1)
        return original(relation, q_pos, k_pos)

    monkeypatch.setattr(fast.kernels.attention, "allowed", leaky)  # the op-by-op masked softmax
    monkeypatch.setattr(fast.attention, "allowed", leaky)  # the fused attention
    yield


@pytest.mark.usefixtures("leaky_causal_mask")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_mask_that_leaks_the_future_is_caught_op_by_op_and_whole(dtype: str) -> None:
    impl = FastImplementation(dtype)
    found = {c.name.split("(")[0]: c for c in components(TINY, impl, "") if c.name.startswith(("masked_softmax", "model: padded"))}
    softmax = run_component(found["masked_softmax"], examples=20, seed=0)
    model = run_component(found["model: padded batches "], examples=20, seed=0)
    assert not softmax.passed
    assert "minimal counterexample" in softmax.detail and "rows=2" in softmax.detail, softmax.detail
    compile(softmax.counterexample or "", "<snippet>", "exec")  # the reproduction is valid Python
    assert not model.passed


def test_policy_budget_follows_its_formula() -> None:
    policy = Policy(factor=4.0, floor_ulps=256.0)
    assert policy.budget("float32", 1e-6, 2.0) == 4e-6 + 256 * 2.0**-24 * 2.0
    assert DEFAULT.budget("float64", 0.0, 1.0) == 256 * unit_roundoff("float64")
    # the largest attention score enters verify's budget, not check's (docs/tolerances.md)
    from gptspec.verify.tolerance import VERIFY

    assert VERIFY.budget("float32", 0.0, 1.0, scores=100.0) == (256 + 100) * 2.0**-24
    assert DEFAULT.budget("float32", 0.0, 1.0, scores=100.0) == 256 * 2.0**-24
    assert "max|score|" in VERIFY.describe("float32") and "max|score|" not in DEFAULT.describe("float32")


def test_compare_reports_where_and_treats_nan_as_infinite() -> None:
    c = compare(np.array([[1.0, 2.0], [3.0, 4.5]]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert (c.max_abs, c.where, c.scale) == (0.5, (1, 1), 4.0)
    assert compare(np.array([np.nan]), np.array([1.0])).max_abs == float("inf")
    assert compare(np.array([np.nan]), np.array([np.nan])).max_abs == 0.0


def test_check_cli_passes_on_tiny_and_reports_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--examples", "3", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and len(report["results"]) == 17
    assert {r["component"].split("(")[0] for r in report["results"]} >= {"layer_norm", "masked_softmax", "gelu_tanh"}


@pytest.mark.usefixtures("leaky_causal_mask")
def test_check_cli_exits_1_with_a_reproduction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--examples", "10"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "reproduce with:" in out and "check_op(impl, op, OpExample(" in out
    assert out.splitlines()[-1].startswith("15 of 17 components pass") or "FAILED" in out.splitlines()[-1]


def test_the_factor_grows_with_the_longest_reduction_only_where_it_is_long() -> None:
    """max(factor, √K/2): unchanged for the small models the tests use (K ≤ 64), about 28 for
    gpt2-small (d_mlp = 3072) — docs/tolerances.md, "float32 at GPT-2 size"."""
    from gptspec.verify.tolerance import DEFAULT, VERIFY, longest_reduction
    from spec import build, preset

    tiny, small = build(preset("tiny").config), build(preset("gpt2-small").config)
    assert longest_reduction(tiny) == 64 and longest_reduction(small) == 3072  # not n_vocab: the one-hot has one nonzero term
    assert DEFAULT.budget("float32", 1.0, 0.0, reduction=64) == DEFAULT.budget("float32", 1.0, 0.0) == 4.0
    assert VERIFY.budget("float32", 1.0, 0.0, reduction=64) == 8.0
    assert abs(DEFAULT.budget("float32", 1.0, 0.0, reduction=3072) - 3072**0.5 / 2) < 1e-12
    assert "√3072/2" in DEFAULT.describe("float32", 3072) and "√" not in DEFAULT.describe("float32", 64)


# -- one engine: check's checks are verify's (issue 21, "One verification engine") ----------


def test_check_and_verify_share_one_verdict_one_row_judge_and_one_batch_type() -> None:
    from gptspec.verify import engine
    from gptspec.verify.cases import Batch, Verdict, model_verdict
    from gptspec.verify.strategies import BatchExample

    assert engine.Outcome is Verdict
    example = BatchExample((5, 2, 0), (False, True, True), 3)
    batch = example.batch(TINY.arch.dim("n_vocab"))
    assert isinstance(batch, Batch) and batch.lengths == (5, 2, 0) and batch.width == 5
    ids, valid = example.arrays(TINY.arch.dim("n_vocab"))
    assert [tuple(int(i) for i in ids[b, valid[b]]) for b in range(3)] == list(batch.tokens)
    assert valid[1].tolist() == [False, False, False, True, True]  # left-padded
    impl = FastImplementation("float32")
    ctx = engine.check_context(impl.dtype, TINY.arch, TINY.theta)
    assert ctx.empty_rows == "zero" and ctx.policy is DEFAULT
    direct = model_verdict(impl, ctx, batch, TINY.theta, ctx.theta_key)
    via_check = check_model(impl, TINY.arch, TINY.theta, example)
    assert isinstance(via_check, Verdict) and via_check.passed
    assert (via_check.comparison, via_check.budget, via_check.e_store) == (direct.comparison, direct.budget, direct.e_store)


class LeakyPadding(FastImplementation):
    """fast/ with a nonzero value on padded positions: check's ``zero`` convention refuses it."""

    def model(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: Any, valid: Any) -> np.ndarray:
        out = super().model(arch, theta, ids, valid).copy()
        out[~valid] = 1.0
        return out


def test_check_judges_padded_positions_by_the_zero_convention() -> None:
    from gptspec.verify.strategies import BatchExample

    verdict = check_model(LeakyPadding("float64"), TINY.arch, TINY.theta, BatchExample((4, 2), (False, True), 1))
    assert not verdict.passed and verdict.padding and "convention zero" in verdict.note


def test_the_reference_cache_is_keyed_by_content_not_identity() -> None:
    from gptspec.verify.oracle import ORACLE, content_key
    from gptspec.verify.strategies import BatchExample

    theta = {name: value.copy() for name, value in TINY.theta.items()}
    key = content_key(TINY.arch, theta)
    assert content_key(TINY.arch, {name: value.copy() for name, value in theta.items()}) == key  # another object, same content
    example = BatchExample((3,), (False,), 11)
    impl = FastImplementation("float64")
    check_model(impl, TINY.arch, theta, example)
    before = ORACLE.evaluations
    check_model(impl, TINY.arch, {name: value.copy() for name, value in theta.items()}, example)
    assert ORACLE.evaluations == before, "a copy of θ is the same θ: its reference values are reused"
    changed = dict(theta)
    first = next(iter(changed))
    changed[first] = changed[first] + 0.5
    assert content_key(TINY.arch, changed) != key
    check_model(impl, TINY.arch, changed, example)
    assert ORACLE.evaluations > before, "another θ is evaluated afresh, whatever object holds it"


def test_the_reference_cache_is_bounded_in_bytes() -> None:
    from gptspec.verify.oracle import Oracle

    oracle = Oracle(max_bytes=1)
    for n in (2, 3, 4):
        oracle.values(TINY.arch, TINY.theta, "k", np.arange(n))
    assert len(oracle._values) == 1 and oracle.evaluations == 3  # only the newest entry is kept


def test_one_component_loop_runs_decoder_only_and_encoder_decoder_models() -> None:
    from gptspec.verify.engine import model_components
    from spec import build
    from spec.theta import preset_theta

    decoder = [c.name for c in model_components(TINY, FastImplementation("float64"), "")]
    assert decoder[0].startswith("model: padded batches") and "KV cache" in decoder[1]
    arch = build(preset("transformer-tiny").config)
    pair = Target("transformer-tiny", arch, dict(preset_theta(arch, 0)), "")
    found = [c.name.split(" (")[0] for c in model_components(pair, FastImplementation("float64"), "")]
    assert found == ["model: padded", "model: prefill then decode one target token at a time"]
