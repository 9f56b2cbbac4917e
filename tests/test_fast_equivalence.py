"""fast/ against the reference, driven by one declarative table, through the verification
engine (the same checks `gptspec check` runs), plus the invariances a batched implementation
must keep. Failures shrink to a minimal example; the assertion prints how to reproduce it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import reference
from gptspec.verify import FastImplementation, Outcome, check_decode, check_model, check_op
from gptspec.verify.strategies import BatchExample, OpExample, batch_examples, gpt_configs, small_op_examples
from gptspec.verify.tolerance import DEFAULT, storer, unit_roundoff
from spec import GPTConfig, build_gpt
from spec.op import PRIMITIVES, Primitive
from spec.theta import random_theta

DTYPES = ("float64", "float32")


def explain(outcome: Outcome, repro: str) -> str:
    return f"{outcome.comparison.describe()} > budget {outcome.budget:.3g} (e_store {outcome.e_store:.3g}); reproduce: {repro}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(PRIMITIVES))
def test_op_matches_reference(kind: str, dtype: str) -> None:
    """Every registered primitive, drawn from its own examples (spec.op.Primitive.examples),
    through fast.run_op against reference.run_op under the tolerance policy."""
    impl = FastImplementation(dtype)

    @given(small_op_examples(kind))
    def prop(case: tuple[Primitive, OpExample]) -> None:
        op, example = case
        outcome = check_op(impl, op, example, DEFAULT)
        assert outcome is not None, f"fast has no kernel for {op.kind}"
        assert outcome.passed, explain(outcome, f"check_op(FastImplementation({dtype!r}), {op!r}, {example!r})")

    prop()


def theta_for(config: GPTConfig, seed: int) -> tuple[object, dict[str, np.ndarray]]:
    arch = build_gpt(config)
    return arch, random_theta(arch, seed, std=0.3)


architectures = st.tuples(gpt_configs(), st.integers(0, 2**16), batch_examples(max_batch=3, max_len=8))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(case=architectures)
def test_whole_architectures_match_reference_on_padded_batches(dtype: str, case: tuple[GPTConfig, int, BatchExample]) -> None:
    config, seed, batch = case
    arch, theta = theta_for(config, seed)
    outcome = check_model(FastImplementation(dtype), arch, theta, batch)  # type: ignore[arg-type]
    assert outcome.passed, explain(outcome, f"check_model(FastImplementation({dtype!r}), build_gpt({config!r}), random_theta(.., {seed}, 0.3), {batch!r})")


@settings(max_examples=15)
@given(case=architectures)
def test_kv_cache_decoding_matches_reference(case: tuple[GPTConfig, int, BatchExample]) -> None:
    config, seed, batch = case
    arch, theta = theta_for(config, seed)
    outcome = check_decode(FastImplementation("float64"), arch, theta, batch)  # type: ignore[arg-type]
    assert outcome is not None and outcome.passed, explain(outcome, f"{config!r}, seed {seed}, {batch!r}") if outcome else "no decode"


def close(got: np.ndarray, want: np.ndarray, dtype: str, ulps: float = 64) -> bool:
    """Two fast results that differ only in blocking or summation order: within ``ulps`` unit
    roundoffs of the scale (docs/tolerances.md, invariances)."""
    scale = float(np.max(np.abs(want), initial=0.0))
    return bool(np.max(np.abs(got - want), initial=0.0) <= ulps * unit_roundoff(dtype) * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(case=architectures)
def test_invariances(dtype: str, case: tuple[GPTConfig, int, BatchExample]) -> None:
    """Batch invariance, padding invariance, zero padded rows, KV cache = full forward."""
    config, seed, batch = case
    arch, theta = theta_for(config, seed)
    program = fast.compile(arch, theta, dtype, block=3)
    ids, valid = batch.arrays(config.n_vocab)
    together = program.forward(ids, valid)
    assert np.all(together[~valid] == 0), "a padded query row is not 0"
    for b in range(ids.shape[0]):
        real = ids[b, valid[b]]
        alone = program.forward(real[None, :])[0]
        assert close(together[b, valid[b]], alone, dtype), f"row {b} depends on the rest of the batch [batch invariance]"
        left = np.concatenate([np.zeros(3, dtype=np.int64), real])
        left_valid = np.arange(len(left)) >= 3
        padded = program.forward(left[None, :], left_valid[None, :])[0]
        assert close(padded[3:], alone, dtype), f"row {b} changes under left padding [padding invariance]"
    prefix = max(1, ids.shape[1] // 2)
    first, state = program.prefill(ids[:, :prefix], valid[:, :prefix])
    steps = [first] + [program.decode(state, ids[:, t], valid[:, t]) for t in range(prefix, ids.shape[1])]
    assert close(np.concatenate(steps, axis=1), together, dtype), "KV-cache decoding differs from the full forward"


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(case=architectures, data=st.data())
def test_causality_in_fast(dtype: str, case: tuple[GPTConfig, int, BatchExample], data: st.DataObject) -> None:
    """Changing a future token leaves earlier logits within tolerance (exactly equal in the
    reference: tests/test_reference.py)."""
    config, seed, _ = case
    arch, theta = theta_for(config, seed)
    program = fast.compile(arch, theta, dtype)
    ids = np.array(data.draw(st.lists(st.integers(0, config.n_vocab - 1), min_size=2, max_size=8)))
    t = data.draw(st.integers(1, len(ids) - 1))
    other = ids.copy()
    other[t] = (ids[t] + 1) % config.n_vocab
    a, b = program.forward(ids), program.forward(other)
    assert close(a[0, :t], b[0, :t], dtype, ulps=4), f"logits before position {t} moved when token {t} changed"


def test_storing_in_float64_moves_each_value_by_one_ulp_and_float32_rounds() -> None:
    x = np.random.default_rng(0).normal(size=1000)
    moved = storer("float64", seed=1)(x)
    assert np.all((moved == np.nextafter(x, np.inf)) | (moved == np.nextafter(x, -np.inf)))
    assert 0.4 < np.mean(moved > x) < 0.6
    np.testing.assert_array_equal(storer("float32")(x), x.astype(np.float32).astype(np.float64))
    arch, theta = theta_for(GPTConfig(n_vocab=9, n_ctx=8, d_model=4, n_layers=1, n_heads=2), 0)
    ids = np.array([1, 2, 3])
    exact, noisy = reference.forward(arch, theta, ids), reference.forward(arch, theta, ids, store=storer("float64"))  # type: ignore[arg-type]
    assert 0 < np.max(np.abs(noisy - exact)) < 1e-13
