"""Attention as a value (spec/blocks.py ``Attention``): every combination of the head-transform
slot (rotary full or partial, QK-norm, in either order), score soft-capping, grouped queries and
biases runs fused in fast/ and equals the reference — whole, op by op, and decoding with the KV
cache; the description is checked when it is made."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from fast.attention import fused_mha, match, pack
from fast.batch import Batch
from fast.precision import Precision
from spec import dims as D
from spec.blocks import Attention, QKNorm, multi_head_attention
from spec.errors import ConfigError
from spec.graph import Architecture, graph_input
from spec.masks import Banded, Causal, Relation
from spec.ops import Rotary
from spec.theta import random_theta
from spec.types import rows


def attention_arch(attention: Attention, d_model: int, dims: dict[sympy.Symbol, int]) -> Architecture:
    arch = Architecture("slot", {"x": rows(D.T, D.d_model)}, {D.d_model: d_model, D.n_vocab: 2, D.n_ctx: 16, **dims})
    mha = multi_head_attention(arch.declare, "attn", arch.dims, attention, d_in=D.d_model, d_out=D.d_model)
    arch.output("y", arch.add("attn", mha, {"x_q": graph_input("x"), "x_kv": graph_input("x")}))
    return arch.validate()


@st.composite
def attentions(draw: st.DrawFn) -> tuple[Attention, dict[sympy.Symbol, int]]:
    kv = draw(st.integers(1, 2))
    heads = kv * draw(st.sampled_from([1, 2]))
    d_head = draw(st.sampled_from([2, 4, 6]))
    slot: list[Rotary | QKNorm] = []
    if draw(st.booleans()):
        slot.append(Rotary(D.d_head, draw(st.sampled_from([10000.0, 3.0])), rotated=draw(st.sampled_from([None, 2]))))
    if draw(st.booleans()):
        slot.insert(draw(st.integers(0, len(slot))), QKNorm(draw(st.sampled_from([1e-6, 0.1])), draw(st.booleans())))
    mask: Relation = draw(st.sampled_from([Causal(), Banded(2)]))
    attention = Attention(
        D.n_heads, D.d_head, mask, 1 / sympy.sqrt(d_head), n_kv_heads=D.n_kv_heads, transforms=tuple(slot),
        softcap=draw(st.sampled_from([None, 0.5, 50.0])), bias=draw(st.booleans()),
    )
    return attention, {D.n_heads: heads, D.n_kv_heads: kv, D.d_head: d_head}


def fused(arch: Architecture, theta: dict[str, np.ndarray], x: np.ndarray, positions: np.ndarray, keys: int,
          cache: dict[tuple[str, str], np.ndarray] | None) -> np.ndarray:
    """fast/'s fused step for the attention node, as fast/program.py makes it (``match`` reads the
    description, ``pack`` the weights), on rows ``x`` at ``positions`` (keys 0 … keys − 1)."""
    plan = match(arch.nodes["attn"], arch.dims)
    assert plan is not None, "the attention takes the fused path"
    precision = Precision.of(np.dtype(np.float64))
    batch = Batch(positions[None], np.ones((1, len(positions)), bool), np.arange(keys)[None], np.ones((1, keys), bool), cache)
    out: np.ndarray = fused_mha(plan, pack(plan, theta, precision), batch, "attn", x[None], 2, precision)[0]
    return out


@settings(max_examples=20, deadline=None)
@given(attentions(), st.integers(0, 2**16))
def test_every_slot_runs_fused_and_equals_the_reference_whole_and_decoding(case: tuple[Attention, dict[sympy.Symbol, int]], seed: int) -> None:
    attention, dims = case
    arch = attention_arch(attention, 5, dims)
    theta = random_theta(arch, seed, std=0.7)
    x = np.random.default_rng(seed).normal(size=(7, 5))
    want = reference.evaluate(arch, theta, {"x": x})["y"]
    atol = 1e-12 * np.max(np.abs(want))
    np.testing.assert_allclose(fused(arch, theta, x, np.arange(7), 7, None), want, rtol=0, atol=atol)
    cache: dict[tuple[str, str], np.ndarray] = {}
    decoded = [fused(arch, theta, x[:4], np.arange(4), 4, cache)]  # prefill 4 rows, then one row at a time
    decoded += [fused(arch, theta, x[t:t + 1], np.array([t]), t + 1, cache) for t in range(4, 7)]
    np.testing.assert_allclose(np.concatenate(decoded), want, rtol=0, atol=atol)


def test_the_slot_order_is_the_graph_order_and_the_fused_step_follows_it() -> None:
    attention = Attention(D.n_heads, D.d_head, Causal(), sympy.Rational(1, 2), transforms=(QKNorm(1e-6, True), Rotary(D.d_head, rotated=2)),
                          softcap=1.0, bias=True)
    arch = attention_arch(attention, 6, {D.n_heads: 2, D.n_kv_heads: 2, D.d_head: 4})
    names = [path.rsplit(".", 1)[-1] for path, _, _ in arch.expand()][:8]
    assert names == ["Q", "K", "V", "norm_Q", "norm_K", "rotary_Q", "rotary_K", "scores"]
    theta = random_theta(arch, 1, std=0.7)
    x = np.random.default_rng(1).normal(size=(6, 6))
    want = reference.evaluate(arch, theta, {"x": x})["y"]
    np.testing.assert_allclose(fused(arch, theta, x, np.arange(6), 6, None), want, rtol=0, atol=1e-12 * np.max(np.abs(want)))
    swapped = attention_arch(Attention(D.n_heads, D.d_head, Causal(), sympy.Rational(1, 2),
                                       transforms=(Rotary(D.d_head, rotated=2), QKNorm(1e-6, True)), softcap=1.0, bias=True),
                             6, {D.n_heads: 2, D.n_kv_heads: 2, D.d_head: 4})
    other = reference.evaluate(swapped, theta, {"x": x})["y"]
    assert np.max(np.abs(other - want)) > 1e-6, "the order of the slot changes the function (norm then rotate ≠ rotate then norm)"


def test_a_description_is_checked_when_it_is_made() -> None:
    with pytest.raises(ConfigError, match=r"transform=.*but expected a Rotary or a QKNorm"):
        Attention(2, 2, Causal(), sympy.Integer(1), transforms=("rope",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"cap=0.0, but expected a finite number > 0"):
        Attention(2, 2, Causal(), sympy.Integer(1), softcap=0.0)
    with pytest.raises(ConfigError, match=r"mask='causal', but expected a spec.masks.Relation"):
        Attention(2, 2, "causal", sympy.Integer(1))  # type: ignore[arg-type]
