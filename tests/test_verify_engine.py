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
from gptspec.verify.engine import Component, Target, check_model, run_component, verify
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


def run_script(text: str) -> int:
    """Run a counterexample script in this process (the fixtures' mutants apply): its exit status."""
    try:
        exec(compile(text, "<counterexample>", "exec"), {"__name__": "__main__"})
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


@pytest.mark.usefixtures("leaky_causal_mask")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_mask_that_leaks_the_future_is_caught_op_by_op_and_whole(dtype: str) -> None:
    snippet = f"from gptspec.verify import FastImplementation\nimpl = FastImplementation({dtype!r})"
    results = {r.component.split("(")[0]: r for r in verify(TINY, FastImplementation(dtype), snippet, examples=8, seed=0)}
    softmax, model, decode = results["op masked_softmax"], results["model: padded batches"], results["model: incremental decoding"]
    assert softmax.status == model.status == decode.status == "failed"
    assert "minimal counterexample" in softmax.detail and "rows=2" in softmax.detail, softmax.detail
    assert run_script(softmax.counterexample or "") == 1  # the op's reproduction fails as the run did
    # the model's failure is shrunk (verify's shrinking, gptspec/verify/shrink.py) to one row of two tokens — the
    # least a leak into the next position can show in — and its script reruns that batch against the same θ
    assert model.example and "B=1, T=2: 2 tokens" in model.example and "θ given" in model.example, model.example
    assert "check_model(impl, target.arch, target.theta, Batch(" in (model.counterexample or "")
    assert run_script(model.counterexample or "") == 1


def test_policy_budget_follows_its_formula() -> None:
    policy = Policy(factor=4.0, floor_ulps=256.0)
    assert policy.budget("float32", 1e-6, 2.0) == 4e-6 + 256 * 2.0**-24 * 2.0 + 256 * 2.0**-149
    assert DEFAULT.budget("float64", 0.0, 1.0) == 256 * unit_roundoff("float64") + 256 * 2.0**-1074
    # the largest attention score enters verify's budget, not check's (docs/tolerances.md)
    from gptspec.verify.tolerance import VERIFY

    assert VERIFY.budget("float32", 0.0, 1.0, scores=100.0) == (256 + 100) * 2.0**-24 + 256 * 2.0**-149
    assert DEFAULT.budget("float32", 0.0, 1.0, scores=100.0) == 256 * 2.0**-24 + 256 * 2.0**-149
    assert "max|score|" in VERIFY.describe("float32") and "max|score|" not in DEFAULT.describe("float32")


def test_a_subnormal_result_is_judged_by_the_underflow_term_and_flushing_it_still_fails() -> None:
    """Hypothesis's example (docs/tolerances.md): moe_experts in float32 with inputs and weights of
    1e-8 has outputs near 2e-41, subnormal in float32, where two correct evaluations differ by a
    few steps of 2⁻¹⁴⁹ — more than any relative floor allows. The η term admits those steps and
    nothing like the result itself: an implementation flushing subnormals to zero still fails."""
    from gptspec.verify import check_op
    from gptspec.verify.strategies import OpExample
    from spec.ops import MoeExperts

    op = MoeExperts(1, 2, 2, None, "silu")
    example = OpExample(rows=4, keys=4, seed=250, input_scale=1e-8, param_scale=1e-8, scores="normal")
    outcome = check_op(FastImplementation("float32"), op, example, DEFAULT)
    assert outcome is not None and outcome.passed, outcome
    assert outcome.comparison.scale < 2.0**-126  # the whole result is subnormal in float32
    assert outcome.budget < outcome.comparison.scale / 10  # a flush to zero errs by the scale itself


def test_a_float64_op_takes_the_worst_of_several_storing_directions() -> None:
    """Hypothesis's example (docs/tolerances.md): the gate value −16.7 comes from a dot product that
    cancels tenfold and the GELU's tail amplifies it ~1000×; one draw of ulp directions (seed 1)
    cancels and measures no conditioning, so fast/'s correct 1.5e-169 failed a 7.6e-170 budget.
    The worst of the draws sees the conditioning, and a wrong result still fails."""
    from gptspec.verify import check_op
    from gptspec.verify.strategies import OpExample
    from spec.ops import MoeExperts

    op = MoeExperts(2, 2, 1, None, "gelu_tanh")
    example = OpExample(rows=1, keys=1, seed=1, input_scale=10000.0, param_scale=0.02, scores="normal")
    outcome = check_op(FastImplementation("float64"), op, example, DEFAULT)
    assert outcome is not None and outcome.passed, outcome
    assert outcome.e_store > 100 * 2.0**-53 * outcome.comparison.scale  # the conditioning (~7600 ulps), not one ulp
    assert outcome.budget < 1e-9 * outcome.comparison.scale  # an error of a part in 1e9 still fails


def test_compare_reports_where_and_treats_nan_as_infinite() -> None:
    c = compare(np.array([[1.0, 2.0], [3.0, 4.5]]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert (c.max_abs, c.where, c.scale) == (0.5, (1, 1), 4.0)
    assert compare(np.array([np.nan]), np.array([1.0])).max_abs == float("inf")
    assert compare(np.array([np.nan]), np.array([np.nan])).max_abs == 0.0


def test_check_cli_passes_on_tiny_and_reports_json(capsys: pytest.CaptureFixture[str]) -> None:
    from gptspec.verify.strategies import distinct_ops

    assert main(["check", "--examples", "3", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ops = distinct_ops(TINY.arch)
    kinds = {op.kind for op, _ in ops.values()}
    # verify's components: the model on padded batches, decoding, each distinct op, and each op kind's hard cases
    assert report["passed"] and len(report["results"]) == 2 + len(ops) + len(kinds)
    assert [r["component"] for r in report["results"][:2]] == ["model: padded batches", "model: incremental decoding"]
    assert {r["component"].split("(")[0] for r in report["results"]} >= {"op layer_norm", "op masked_softmax", "op gelu_tanh"}
    assert all(r["examples"] == 3 for r in report["results"])


@pytest.mark.usefixtures("leaky_causal_mask")
def test_check_cli_exits_1_with_a_reproduction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--examples", "10"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "reproduce with:" in out and "check_op(impl, op, OpExample(" in out
    assert "FAILED: model: padded batches, model: incremental decoding, op masked_softmax" in out.splitlines()[-1]
    assert "minimal counterexample: GPTConfig(" in out and "check_model(impl, target.arch, target.theta, Batch(" in out


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


TRANSFORMER = preset_target("transformer-tiny", seed=0)


def test_check_is_verify_on_fast_with_theta_given() -> None:
    """``check``'s run is verify's Runner (gptspec/verify/session.py) on FastImplementation: θ
    given (every case judged on the target's θ, named by content), the zero convention, the
    DEFAULT policy; an encoder–decoder's cases carry a source batch of as many rows."""
    from gptspec.verify.engine import CHECK_COMPONENTS, check_options
    from gptspec.verify.session import COMPONENTS, Runner, given

    options = check_options(examples=5, seed=3)
    assert (options.empty_rows, options.policy, options.components) == ("zero", DEFAULT, CHECK_COMPONENTS)
    assert set(CHECK_COMPONENTS) <= set(COMPONENTS)
    for target in (TINY, TRANSFORMER):
        runner = Runner(given(target, FastImplementation("float64"), ""), options, None)
        plan = runner.plan()
        assert len(plan["model"]) == 5 and all(case.draw is None for case in plan["model"])
        ctx = runner.context(plan["model"][0], "model")
        assert ctx.theta is runner.s.theta and ctx.empty_rows == "zero" and ctx.policy is DEFAULT
        pairs = target is TRANSFORMER
        assert all((case.source is not None) == pairs for case in plan["model"])
        if pairs:
            assert all(c.source is not None and len(c.source.tokens) == len(c.batch.tokens) and min(c.source.lengths) >= 1 for c in plan["model"])


def test_one_driver_runs_decoder_only_and_encoder_decoder_models() -> None:
    for target in (TINY, TRANSFORMER):
        results = verify(target, FastImplementation("float64"), "", examples=2, seed=0)
        assert [r.component for r in results[:2]] == ["model: padded batches", "model: incremental decoding"]
        assert all(r.status == "passed" and r.examples >= 1 for r in results), [(r.component, r.detail) for r in results if not r.passed]


class LeakyPairPadding(FastImplementation):
    """fast/ on an encoder–decoder with a nonzero value on padded target positions."""

    def model(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: Any, valid: Any, context: Any = None) -> np.ndarray:
        assert context is not None and set(context) == {"source"}  # the run gives the source with every batch
        out = super().model(arch, theta, ids, valid, context).copy()
        out[~valid] = 1.0
        return out


def test_an_encoder_decoder_failure_is_shrunk_with_its_source_and_reproduced() -> None:
    snippet = "from tests.test_verify_engine import LeakyPairPadding\nimpl = LeakyPairPadding('float64')"
    results = {r.component: r for r in verify(TRANSFORMER, LeakyPairPadding("float64"), snippet, examples=4, seed=0)}
    model = results["model: padded batches"]
    assert model.status == "failed" and "convention zero" in model.detail, model.detail
    assert model.example and "B=1" in model.example and "; source B=1" in model.example, model.example  # rows dropped in both batches
    assert ", source=Batch(" in (model.counterexample or "") and run_script(model.counterexample or "") == 1
