"""fast/ in float16 and bfloat16 (issue 13, item 2): storage types computed in float32
(fast/precision.py, docs/tolerances.md "Half precisions in fast/"), judged against the float64
reference by the one tolerance policy, and usable from the command line."""

from __future__ import annotations

import numpy as np
import pytest

import fast
import reference
from fast.precision import BFLOAT16, Precision, to_storage
from gptspec.cli import main
from gptspec.verify import FastImplementation, preset_target, verify
from gptspec.verify.tolerance import DEFAULT, round_bfloat16, storer
from spec import build, preset
from spec.theta import preset_theta


def test_bfloat16_storage_rounds_float64_once() -> None:
    """fast/ rounds float64 → bfloat16 once, to nearest with ties to even, exactly as the tolerance
    policy's stored reference does (round_bfloat16) — at ties, just above a tie (where rounding
    through float32 first would land on the other side), overflow, subnormals, signed zero and ∞.
    Nothing here depends on how a given ml_dtypes version casts float64 (0.4 rounded twice, 0.7
    rounds once): the property is fast/'s, checked against the policy's own rounding and against
    hand-computed values."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=50_000) * 10.0 ** rng.integers(-44, 39, size=50_000)
    edges = [1 + 2**-8 + 2**-30, 1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8 + 2**-40), 3.3961e38, 3.39e38, 3.5e38, 1e-40, 5e-324, -0.0, np.inf]
    x = np.concatenate([x, edges])
    got = to_storage(x, BFLOAT16).astype(np.float64)
    assert np.array_equal(got, round_bfloat16(x))
    # hand-computed: bfloat16 keeps 8 significant bits (ulp 2^-7 on [1, 2))
    expected = {
        1 + 2**-8 + 2**-30: 1 + 2**-7,  # just above the tie: up (a double rounding via float32 gives 1)
        1 + 2**-8: 1.0,  # a tie: to even
        1 + 3 * 2**-8: 1 + 2**-6,  # a tie: to even, upwards
        -(1 + 2**-8 + 2**-40): -(1 + 2**-7),
    }
    for value, want in expected.items():
        assert to_storage(np.array([value]), BFLOAT16).astype(np.float64)[0] == want, value
    assert np.isinf(to_storage(np.array([3.5e38]), BFLOAT16).astype(np.float64)[0])
    assert np.signbit(to_storage(np.array([-0.0]), BFLOAT16).astype(np.float64)[0])


def test_precision_rounds_where_it_stores() -> None:
    p = Precision.of(np.dtype(np.float16))
    assert p.half and p.compute == np.float32
    x = np.array([1 + 2**-12, 70000.0], dtype=np.float32)
    assert p.store(x).dtype == np.float16 and p.store(x)[1] == np.inf
    assert p.round(x).dtype == np.float32 and p.round(x)[0] == 1.0
    assert Precision.of(np.dtype(np.float32)).load(x) is x


@pytest.mark.parametrize(("name", "dtype"), [("tiny", "float16"), ("tiny-llama", "bfloat16")])
def test_fast_in_half_precision_passes_the_policy(name: str, dtype: str) -> None:
    """Every component — each op, the model on padded batches, KV-cache decoding — within the
    policy's half-precision budget (DEFAULT: factor × e_store + floor, the floor 8 u·scale)."""
    target = preset_target(name, seed=0)
    results = verify(target, FastImplementation(dtype), "", examples=6, seed=0, policy=DEFAULT)
    failed = [f"{r.component}: {r.detail}" for r in results if not r.passed]
    assert not failed, failed
    model = next(r for r in results if r.component.startswith("model: padded"))
    assert model.examples == 6 and model.max_error > 0  # really run, and really rounding


def test_half_precision_results_are_stored_values_and_not_float32() -> None:
    """A half-precision program stores in the half dtype: its logits are the dtype's values, and
    differ from float32's by about the half precision's rounding, not float32's."""
    arch = build(preset("tiny").config)
    theta = preset_theta(arch, 0)
    ids = np.array([[5, 3, 9, 1, 2, 7]])
    want = reference.forward(arch, theta, ids[0])
    scale = float(np.max(np.abs(want)))
    errors = {}
    for dtype in ("float32", "float16", "bfloat16"):
        logits = fast.compile(arch, theta, dtype).forward(ids)
        assert logits.dtype == fast.resolve_dtype(dtype)
        errors[dtype] = float(np.max(np.abs(logits[0].astype(np.float64) - want))) / scale
    assert errors["float32"] < 1e-5 < errors["float16"] < errors["bfloat16"] < 0.1, errors
    # the error is the size of what storing in the dtype costs the reference itself (e_store)
    for dtype in ("float16", "bfloat16"):
        e_store = float(np.max(np.abs(reference.forward(arch, theta, ids[0], store=storer(dtype)) - want))) / scale
        assert errors[dtype] < 4 * e_store + 8 * {"float16": 2.0**-11, "bfloat16": 2.0**-8}[dtype], (dtype, errors[dtype], e_store)


def test_decoding_in_half_precision_equals_the_full_forward() -> None:
    arch = build(preset("tiny-llama").config)
    program = fast.compile(arch, preset_theta(arch, 1), "bfloat16", block=4)
    ids = np.array([[1, 2, 3, 4, 5, 6, 7, 8]])
    full = program.forward(ids)
    first, state = program.prefill(ids[:, :3])
    steps = [first] + [program.decode(state, ids[:, t]) for t in range(3, 8)]
    assert state.cache and all(v.dtype == BFLOAT16 for v in state.cache.values())  # the KV cache holds bfloat16
    np.testing.assert_array_equal(np.concatenate(steps, axis=1).astype(np.float64), full.astype(np.float64))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_command_line_half_precisions(dtype: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forward", "tiny", "--tokens", "1 2 3", "--impl", "fast", "--dtype", dtype]) == 0
    assert f"impl fast ({dtype})" in capsys.readouterr().out
    assert main(["score", "tiny", "--tokens", "1 2 3 4", "--dtype", dtype]) == 0
    assert "log-likelihood" in capsys.readouterr().out
    assert main(["generate", "tiny", "--tokens", "1 2 3", "--max-new-tokens", "3", "--dtype", dtype]) == 0
    assert len(capsys.readouterr().out.split()) == 3
    if dtype == "bfloat16":
        assert main(["check", "tiny", "--dtype", dtype, "--examples", "2", "--format", "json"]) == 0
        assert f'"implementation": "fast[{dtype}]"' in capsys.readouterr().out
