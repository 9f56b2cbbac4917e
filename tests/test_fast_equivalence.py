"""fast/ against the reference, driven by one declarative table, through the verification
engine (the same checks `gptspec check` runs), plus the invariances a batched implementation
must keep. Failures shrink to a minimal example; the assertion prints how to reproduce it.

A failing example is reported in the suite's normal time: hypothesis's shrinking of a failure
is capped at :data:`SHRINK_SECONDS` per test (the examples here are whole models, and shrinking
one re-runs it hundreds of times). Deterministic tests kill what random draws rarely reach: the
op-by-op attention path on padded batches, row-wise kernels cut into tiny chunks, ids outside
the vocabulary at real and at padded positions, sequences longer than n_ctx
(docs/mutation.md lists the mutants each one kills)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import fast.kernels.table
import fast.program
import reference
from gptspec.verify import FastImplementation, Outcome, check_decode, check_model, check_op
from gptspec.verify.strategies import BatchExample, OpExample, batch_examples, gpt_configs, small_op_examples
from gptspec.verify.tolerance import DEFAULT, storer, unit_roundoff
from spec import GPTConfig, build_gpt
from spec.errors import TokenError
from spec.masks import Banded, Causal, Relation
from spec.op import PRIMITIVES, Primitive
from spec.ops import MaskedSoftmax
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", [Causal(), Banded(2)], ids=repr)
def test_softmax_ignores_disallowed_scores_however_large(dtype: str, mask: Relation) -> None:
    """The row maximum is taken over the allowed keys only: a disallowed score far above every
    allowed one (a future key's, before masking) must not push the allowed exponentials to 0.
    Deterministic, because random draws seldom put every allowed score 745 below a masked one."""
    T = 6
    x = np.random.default_rng(0).uniform(-1.0, 1.0, (T, T))
    allowed = np.array([[bool(mask.allowed(t, s)) for s in range(T)] for t in range(T)])
    x[~allowed] = 1e4
    op = MaskedSoftmax(mask)
    got, want = fast.run_op(op, {"x": x}, dtype=dtype), reference.run_op(op, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-12, atol=0)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-6)


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


def close(got: np.ndarray, want: np.ndarray, dtype: str, ulps: float = 64, slack: float = 0.0) -> bool:
    """Two fast results that differ only in blocking or summation order: within ``ulps`` unit
    roundoffs of the scale (docs/tolerances.md, invariances), or within ``slack``."""
    scale = float(np.max(np.abs(want), initial=0.0))
    return bool(np.max(np.abs(got - want), initial=0.0) <= max(ulps * unit_roundoff(dtype) * scale, slack))


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
    # 64 ulps of the scale, unless the example is ill-conditioned (d_model = 2: a layer norm of two
    # features amplifies every rounding): then two results that are each within the tolerance
    # policy's budget of the reference may differ by twice that budget, and no more.
    outcome = check_model(FastImplementation(dtype), arch, theta, batch)  # type: ignore[arg-type]
    assert outcome.passed, explain(outcome, f"{config!r}, seed {seed}, {batch!r}")
    slack = 2 * outcome.budget
    assert np.all(together[~valid] == 0), "a padded query row is not 0"
    for b in range(ids.shape[0]):
        real = ids[b, valid[b]]
        alone = program.forward(real[None, :])[0]
        assert close(together[b, valid[b]], alone, dtype, slack=slack), f"row {b} depends on the rest of the batch [batch invariance]"
        left = np.concatenate([np.zeros(3, dtype=np.int64), real])
        left_valid = np.arange(len(left)) >= 3
        padded = program.forward(left[None, :], left_valid[None, :])[0]
        assert close(padded[3:], alone, dtype, slack=slack), f"row {b} changes under left padding [padding invariance]"
    prefix = max(1, ids.shape[1] // 2)
    first, state = program.prefill(ids[:, :prefix], valid[:, :prefix])
    steps = [first] + [program.decode(state, ids[:, t], valid[:, t]) for t in range(prefix, ids.shape[1])]
    assert close(np.concatenate(steps, axis=1), together, dtype, slack=slack), "KV-cache decoding differs from the full forward"


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


# -- what random whole-model draws rarely reach ---------------------------------------------


CONFIGS = {
    "dense, learned, biases": GPTConfig(n_vocab=11, n_ctx=12, d_model=6, n_layers=2, n_heads=2, d_mlp=5),
    "banded, sinusoidal, untied, no biases": GPTConfig(n_vocab=11, n_ctx=12, d_model=6, n_layers=2, n_heads=3, d_head=2, d_mlp=5,
                                                       attention=("dense", "banded"), band_width=2, positional="sinusoidal",
                                                       tied=False, bias=False, activation="gelu_erf"),
}
BATCHES = [BatchExample((5, 2, 7), (False, True, True), 3), BatchExample((1, 6), (True, False), 4), BatchExample((7,), (False,), 5)]


@pytest.mark.parametrize("name", CONFIGS)
def test_op_by_op_attention_matches_reference_on_padded_batches(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the fused attention switched off, attention runs primitive by primitive (as for any
    composite fast/ does not fuse): the op-level mask must drop padded keys and queries too."""
    monkeypatch.setattr(fast.program, "match", lambda node, dims=None: None)
    arch, theta = theta_for(CONFIGS[name], 7)
    for dtype in DTYPES:
        impl = FastImplementation(dtype, block=3)
        assert all(step.plan is None for step in impl._program(arch, theta).steps), "the fused path was not switched off"  # type: ignore[arg-type]
        for batch in BATCHES:
            outcome = check_model(impl, arch, theta, batch)  # type: ignore[arg-type]
            assert outcome.passed, explain(outcome, f"op by op, {name}, {dtype}, {batch!r}")
            decoded = check_decode(impl, arch, theta, batch)  # type: ignore[arg-type]
            assert decoded is not None and decoded.passed, explain(decoded, f"op by op, decode, {name}, {dtype}, {batch!r}") if decoded else "no decode"


ROW_WISE = ("layer_norm", "rms_norm", "gelu_tanh", "silu")
"""The kernels that cut their rows into chunks (fast/kernels/table.py: by_rows)."""


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8])
def test_row_wise_kernels_cut_into_small_chunks(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """by_rows cuts rows into chunks of CHUNK elements (2¹⁸: never more than one chunk at test
    sizes); with tiny chunks every row must still be computed once, chunk boundaries anywhere."""
    monkeypatch.setattr(fast.kernels.table, "CHUNK", chunk)
    rng = np.random.default_rng(chunk)
    for kind in ROW_WISE:
        for op in PRIMITIVES[kind].instances(7):
            bound = op.bind({})
            inputs = {name: rng.normal(size=tuple(int(d) for d in t.shape)) for name, t in bound.inputs().items()}
            params = {name: rng.normal(size=tuple(int(d) for d in shape)) for name, shape in bound.params().items()}
            want = reference.run_op(bound, inputs, params)
            got = fast.run_op(bound, inputs, params, "float64")
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, err_msg=f"{kind} in chunks of {chunk} elements")
    arch, theta = theta_for(CONFIGS["dense, learned, biases"], 1)
    outcome = check_model(FastImplementation("float64"), arch, theta, BATCHES[0])  # type: ignore[arg-type]
    assert outcome.passed, explain(outcome, f"CHUNK = {chunk}, {BATCHES[0]!r}")


def test_ids_outside_the_vocabulary_are_refused_at_real_positions() -> None:
    arch, theta = theta_for(CONFIGS["dense, learned, biases"], 2)
    program = fast.compile(arch, theta, "float64")
    V = arch.dim("n_vocab")  # type: ignore[attr-defined]
    for bad in (V, V + 1, -1):
        with pytest.raises(TokenError, match="n_vocab"):
            program.forward(np.array([[1, bad, 2]]))
        with pytest.raises(TokenError, match="n_vocab"):
            program.prefill(np.array([[bad]]))
        _, state = program.prefill(np.array([[1, 2]]))
        with pytest.raises(TokenError, match="n_vocab"):
            program.decode(state, np.array([bad]))
    program.forward(np.array([[0, V - 1]]))  # the ends of the vocabulary are fine


def test_padded_positions_may_hold_any_id() -> None:
    """Padding is marked by ``valid``; what the padded slots hold must not matter (nor raise)."""
    arch, theta = theta_for(CONFIGS["banded, sinusoidal, untied, no biases"], 3)
    V = arch.dim("n_vocab")  # type: ignore[attr-defined]
    program = fast.compile(arch, theta, "float64", block=2)
    valid = np.array([[False, False, True, True, True], [True, True, True, False, False]])
    clean = np.where(valid, np.array([[0, 0, 3, 4, 5], [6, 7, 8, 0, 0]]), 0)
    want = program.forward(clean, valid)
    for junk in (V, V + 7, -1, -(2**40), 2**40):
        dirty = np.where(valid, clean, junk)
        np.testing.assert_array_equal(program.forward(dirty, valid), want, err_msg=f"padded slots holding {junk}")
        first, state = program.prefill(dirty[:, :3], valid[:, :3])
        steps = [first] + [program.decode(state, dirty[:, t], valid[:, t]) for t in range(3, 5)]
        assert close(np.concatenate(steps, axis=1), want, "float64"), f"decoding with padded slots holding {junk}"


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_a_row_that_sits_out_a_decode_step_continues_at_its_own_next_position(positional: str) -> None:
    """A decode step may leave a row out (valid false: a sequence waiting while the others
    advance); the row's next token must take the position after its last real token, not
    restart from 0 — the same function as the row's real tokens evaluated alone."""
    config = GPTConfig(n_vocab=11, n_ctx=12, d_model=8, n_layers=2, n_heads=2, positional=positional)  # type: ignore[arg-type]
    arch, theta = theta_for(config, 5)
    program = fast.compile(arch, theta, "float64", block=2)
    ids = np.array([[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 1, 2, 3, 4]])
    valid = np.ones_like(ids, dtype=bool)
    valid[0, 3:5] = False  # row 0 sits out two decode steps, then continues
    first, state = program.prefill(ids[:, :3], valid[:, :3])
    steps = [first] + [program.decode(state, ids[:, t], valid[:, t]) for t in range(3, ids.shape[1])]
    decoded = np.concatenate(steps, axis=1)
    for b in range(ids.shape[0]):
        alone = reference.forward(arch, theta, ids[b, valid[b]])
        np.testing.assert_allclose(decoded[b, valid[b]], alone, rtol=0, atol=1e-12 * float(np.max(np.abs(alone))),
                                   err_msg=f"row {b} after sitting out decode steps")


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_sequences_longer_than_n_ctx_are_refused(positional: str) -> None:
    config = GPTConfig(n_vocab=5, n_ctx=4, d_model=4, n_layers=1, n_heads=2, positional=positional)  # type: ignore[arg-type]
    arch, theta = theta_for(config, 0)
    program = fast.compile(arch, theta, "float64")
    program.forward(np.array([[1, 2, 3, 4]]))
    with pytest.raises(TokenError, match="n_ctx"):
        program.forward(np.array([[1, 2, 3, 4, 0]]))
    _, state = program.prefill(np.array([[1, 2, 3, 4]]))
    with pytest.raises(TokenError, match="n_ctx"):
        program.decode(state, np.array([1]))
    left = np.array([[0, 0, 1, 2, 3, 4]])  # padding does not count: 4 real tokens fit
    program.forward(left, np.array([[False, False, True, True, True, True]]))
