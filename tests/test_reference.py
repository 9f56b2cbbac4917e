"""The literal interpreter: whole-model behaviour and refusals (per-op meaning is checked
against the sympy definitions in test_spec_vs_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import evaluate, forward
from spec import GPTConfig, ShapeError, TokenError, build_gpt, preset
from spec.theta import random_theta

TINY = build_gpt(preset("tiny").config)
THETA = random_theta(TINY, seed=1, std=0.3)


def test_empty_sequence_gives_zero_rows_of_logits() -> None:
    logits = forward(TINY, THETA, [])
    assert logits.shape == (0, 64) and logits.dtype == np.float64


def test_out_of_range_token_names_position_and_id() -> None:
    with pytest.raises(TokenError, match=r"position 2 is 64, but expected 0 ≤ id < n_vocab=64"):
        forward(TINY, THETA, [1, 2, 64])
    with pytest.raises(TokenError, match=r"position 0 is -1"):
        forward(TINY, THETA, [-1])


def test_sequence_longer_than_n_ctx_is_refused_and_n_ctx_itself_is_fine() -> None:
    assert forward(TINY, THETA, [0] * 32).shape == (32, 64)
    with pytest.raises(TokenError, match=r"T=33, but expected T ≤ n_ctx=32"):
        forward(TINY, THETA, [0] * 33)


def test_non_integer_tokens_are_refused() -> None:
    with pytest.raises(TokenError, match="whole numbers"):
        forward(TINY, THETA, np.array([1.5, 2.0]))


def test_theta_with_a_missing_or_misshaped_entry_is_refused() -> None:
    bad = dict(THETA)
    del bad["blocks.1.mlp.W_in"]
    with pytest.raises(ShapeError, match=r"blocks.1.mlp.W_in"):
        forward(TINY, bad, [1])
    bad = dict(THETA) | {"W_P": np.zeros((31, 16))}
    with pytest.raises(ShapeError, match=r"W_P has shape \(31, 16\), but the spec expects \(n_ctx, d_model\) = \(32, 16\)"):
        forward(TINY, bad, [1])


@given(
    ids=st.lists(st.integers(0, 63), min_size=2, max_size=10),
    data=st.data(),
)
def test_causality_changing_a_future_token_leaves_earlier_logits_identical(ids: list[int], data: st.DataObject) -> None:
    t = data.draw(st.integers(1, len(ids) - 1), label="changed position")
    other = list(ids)
    other[t] = data.draw(st.integers(0, 63).filter(lambda v: v != ids[t]), label="new token")
    a, b = forward(TINY, THETA, ids), forward(TINY, THETA, other)
    np.testing.assert_array_equal(a[:t], b[:t], err_msg=f"logits before position {t} changed [causality]")
    assert not np.array_equal(a[t:], b[t:]), "changing a token changed nothing at or after it"


def test_banded_layers_limit_the_receptive_field() -> None:
    """One banded layer of width w: position t sees tokens t−w+1 … t only (positions with no
    other path: a single layer, so nothing else mixes positions)."""
    config = GPTConfig(n_vocab=16, n_ctx=16, d_model=8, n_layers=1, n_heads=2, attention=("banded",), band_width=3)
    arch = build_gpt(config)
    theta = random_theta(arch, seed=2, std=0.5)
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    base = forward(arch, theta, ids)
    for changed in range(len(ids)):
        other = list(ids)
        other[changed] = (ids[changed] + 1) % 16
        moved = np.any(forward(arch, theta, other) != base, axis=1)
        expected = [changed <= t < changed + 3 for t in range(len(ids))]
        assert moved.tolist() == expected, f"changing token {changed} moved rows {np.flatnonzero(moved)}"


def test_every_value_has_the_shape_the_spec_declares() -> None:
    values = evaluate(TINY, THETA, {"ids": np.array([5, 6, 7])})
    assert values["blocks.0.attn.head_0.softmax"].shape == (3, 3)
    assert values["blocks.1.attn.concat"].shape == (3, 16)
    assert values["logits"].shape == (3, 64)
    rows = values["blocks.0.attn.head_1.softmax"]
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-15)
    assert np.all(np.triu(rows, k=1) == 0.0), "softmax puts weight on a future key"


def test_tied_unembedding_reads_w_e_transposed() -> None:
    values = evaluate(TINY, THETA, {"ids": np.array([5, 6])})
    expected = values["ln_f"] @ THETA["W_E"].T
    # same products, possibly another BLAS summation order: a few float64 ulps of the scale
    np.testing.assert_allclose(values["logits"], expected, rtol=0, atol=1e-14 * np.abs(expected).max())


@pytest.mark.parametrize(
    "changes",
    [
        {"positional": "sinusoidal"},
        {"activation": "relu", "bias": False, "tied": False},
        {"activation": "gelu_erf", "eps": 1e-6, "attn_scale": 0.5},
        {"n_heads": 3, "d_head": 1},
        {"n_heads": 1},
    ],
)
def test_variants_evaluate(changes: dict[str, object]) -> None:
    arch = build_gpt(preset("tiny").config.replace(**changes))
    logits = forward(arch, random_theta(arch, seed=3), [1, 2, 3, 4])
    assert logits.shape == (4, 64) and np.all(np.isfinite(logits))
