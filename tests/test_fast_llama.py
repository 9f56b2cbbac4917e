"""fast/ on the Llama family: the fused attention path is the one taken (RoPE inside it, K/V
once per key/value head, a KV cache of rotated keys), it equals the reference on padded batches
and when decoding with the cache, and key blocks outside a sliding window are skipped on both
sides. Judged by the verification engine's checks and tolerance policy, as for GPT
(tests/test_fast_equivalence.py)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import reference
from gptspec.verify import FastImplementation, Outcome, check_decode, check_model
from gptspec.verify.strategies import BatchExample, batch_examples
from spec import online_softmax, preset
from spec.architectures import LlamaConfig, build_llama, family
from spec.masks import Banded, Causal, Relation
from spec.theta import random_theta

DTYPES = ("float64", "float32")


def llama_configs(*, max_layers: int = 2) -> st.SearchStrategy[LlamaConfig]:
    """The Llama family record's strategy (spec/architectures/llama.py)."""
    drawn: st.SearchStrategy[LlamaConfig] = family("llama").configs(max_layers=max_layers)
    return drawn


cases = st.tuples(llama_configs(), st.integers(0, 2**16), batch_examples(max_batch=3, max_len=8))


def explain(outcome: Outcome, repro: str) -> str:
    return f"{outcome.comparison.describe()} > budget {outcome.budget:.3g} (e_store {outcome.e_store:.3g}); reproduce: {repro}"


def theta_for(config: LlamaConfig, seed: int) -> tuple[Any, dict[str, np.ndarray]]:
    arch = build_llama(config)
    return arch, random_theta(arch, seed, std=0.3)


CONFIGS: dict[str, LlamaConfig] = {
    "tiny-llama": cast(LlamaConfig, preset("tiny-llama").config),
    "mqa-sliding-biases": LlamaConfig(n_vocab=20, n_ctx=32, d_model=12, n_layers=2, n_heads=4, n_kv_heads=1, d_head=4, d_mlp=6,
                                      attention=("sliding", "full"), sliding_window=3, qkv_bias=True, out_bias=True),
    "mha-interleaved-llama3": LlamaConfig(n_vocab=20, n_ctx=32, d_model=8, n_layers=1, n_heads=2, d_mlp=6, rope_pairing="interleaved",
                                          rope_scaling="llama3", rope_factor=8.0, rope_original_n_ctx=16),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_fused_attention_path_is_taken(name: str) -> None:
    """Every attention layer is one fused step that rotates, groups and caches; no attention or
    rotary primitive runs op by op; K and V are computed and cached once per key/value head."""
    config = CONFIGS[name]
    arch, theta = theta_for(config, 0)
    program = fast.compile(arch, theta, "float32")
    fused = {step.path: step for step in program.steps if step.plan is not None}
    assert sorted(fused) == [f"blocks.{i}.attn" for i in range(config.n_layers)]
    per_op = {step.op.kind for step in program.steps if step.op is not None}
    assert not per_op & {"rotary", "attention_scores", "masked_softmax", "weighted_sum", "concat_heads"}, per_op
    H, KV, dh = config.n_heads, config.kv_heads, config.head_width
    for i, step in enumerate(fused.values()):
        assert step.plan is not None and step.weights is not None
        assert step.plan.n_kv_heads == KV and step.plan.rotary is not None and step.plan.mask == config.mask(i)
        assert step.weights.W_qkv.shape == (config.d_model, (H + 2 * KV) * dh), "K and V once per key/value head"
    _, state = program.prefill(np.array([[1, 2, 3, 4, 5]]))
    assert state.cache[("blocks.0.attn", "K")].shape == (1, KV, 5, dh)
    assert state.cache[("blocks.0.attn", "V")].shape == (1, KV, 5, dh)


def test_the_cache_holds_rotated_keys_at_their_positions() -> None:
    """Left padding shifts the position ids; the cached K of key/value head g is the rotated K of
    its heads in the reference, row for row, at the real tokens' positions."""
    config = CONFIGS["tiny-llama"]
    arch, theta = theta_for(config, 1)
    program = fast.compile(arch, theta, "float64")
    tokens = np.array([5, 9, 2, 7])
    ids, valid = np.array([[0, 0, *tokens]]), np.array([[False, False, True, True, True, True]])
    _, state = program.prefill(ids, valid)
    values = reference.evaluate(arch, theta, {"ids": tokens})
    group = config.n_heads // config.kv_heads
    for layer in range(config.n_layers):
        cached = state.cache[(f"blocks.{layer}.attn", "K")][0]  # (KV, S, dh)
        for g in range(config.kv_heads):
            want = values[f"blocks.{layer}.attn.head_{g * group}.rotary_K"]
            np.testing.assert_allclose(cached[g, 2:], want, rtol=0, atol=1e-12 * np.max(np.abs(want)))
            unrotated = values[f"blocks.{layer}.attn.head_{g * group}.K"]
            assert np.max(np.abs(cached[g, 3:] - unrotated[1:])) > 1e-6, "the cache must hold rotated keys"


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(case=cases)
def test_whole_llama_models_match_reference_on_padded_batches(dtype: str, case: tuple[LlamaConfig, int, BatchExample]) -> None:
    config, seed, batch = case
    arch, theta = theta_for(config, seed)
    outcome = check_model(FastImplementation(dtype), arch, theta, batch)
    assert outcome.passed, explain(outcome, f"check_model(FastImplementation({dtype!r}), build_llama({config!r}), random_theta(.., {seed}, 0.3), {batch!r})")


@settings(max_examples=10)
@given(case=cases)
def test_kv_cache_decoding_matches_reference(case: tuple[LlamaConfig, int, BatchExample]) -> None:
    config, seed, batch = case
    arch, theta = theta_for(config, seed)
    outcome = check_decode(FastImplementation("float64"), arch, theta, batch)
    assert outcome is not None and outcome.passed, explain(outcome, f"{config!r}, seed {seed}, {batch!r}") if outcome else "no decode"


def test_fused_and_per_op_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same model with the fused kernel switched off (every op through its own kernel) gives
    the same logits, on a left-padded batch and when decoding."""
    config = CONFIGS["mqa-sliding-biases"]
    arch, theta = theta_for(config, 2)
    ids = np.random.default_rng(0).integers(0, config.n_vocab, size=(2, 11))
    valid = np.ones_like(ids, dtype=bool)
    valid[1, :4] = False
    fused = fast.compile(arch, theta, "float64", block=4).forward(ids, valid)
    monkeypatch.setattr(fast.program, "match", lambda node, dims=None: None)
    per_op = fast.compile(arch, theta, "float64", block=4)
    assert all(step.plan is None for step in per_op.steps)
    np.testing.assert_allclose(per_op.forward(ids, valid), fused, rtol=0, atol=1e-12 * np.max(np.abs(fused)))


# -- sliding windows: blocks skipped on both sides ---------------------------------------------


def key_blocks_needed(mask: Relation, T: int, block: int) -> int:
    """Query tiles × key blocks holding at least one pair the mask allows (one sequence, no
    padding): what blocked attention must visit, per layer."""
    allowed = mask.matrix(T, T)
    return sum(
        bool(allowed[t0 : t0 + block, s0 : s0 + block].any())
        for t0 in range(0, T, block) for s0 in range(0, T, block)
    )


def counted() -> tuple[list[int], Any]:
    """A list that grows by one per online-softmax step (one key block visited), and the
    counting step to put in its place (fast/attention.py calls spec.online_softmax.step)."""
    visits: list[int] = []
    step = online_softmax.step

    def counting(*args: Any) -> Any:
        visits.append(1)
        return step(*args)

    return visits, counting


@pytest.mark.parametrize(("window", "block"), [(3, 4), (4, 4), (9, 4), (5, 2)])
def test_key_blocks_outside_the_window_are_skipped(monkeypatch: pytest.MonkeyPatch, window: int, block: int) -> None:
    """Blocked attention visits exactly the key blocks the window reaches — not the tile's future
    (causal skipping) and not the blocks before the window — and gives the reference's logits."""
    T = 24
    config = LlamaConfig(n_vocab=16, n_ctx=32, d_model=8, n_layers=1, n_heads=2, n_kv_heads=1, d_mlp=6,
                         attention=("sliding",), sliding_window=window)
    arch, theta = theta_for(config, 3)
    visits, counting = counted()
    monkeypatch.setattr(online_softmax, "step", counting)
    ids = np.random.default_rng(window).integers(0, 16, size=T)
    got = fast.compile(arch, theta, "float64", block=block).forward(ids)[0]
    assert len(visits) == key_blocks_needed(Banded(window), T, block), f"visited {len(visits)} key blocks"
    assert len(visits) < key_blocks_needed(Causal(), T, block), "the window must skip blocks causal attention visits"
    want = reference.forward(arch, theta, ids)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.max(np.abs(want)))


def test_sliding_window_decoding_skips_old_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One decoded token visits only the key blocks its window reaches, however long the cache."""
    config = LlamaConfig(n_vocab=16, n_ctx=64, d_model=8, n_layers=1, n_heads=2, d_mlp=6, attention=("sliding",), sliding_window=3)
    arch, theta = theta_for(config, 4)
    program = fast.compile(arch, theta, "float64", block=2)  # one query row: key blocks of 2·2 / 1 = 4
    ids = np.random.default_rng(5).integers(0, 16, size=40)
    _, state = program.prefill(ids[None, :39])
    visits, counting = counted()
    monkeypatch.setattr(online_softmax, "step", counting)
    last = program.decode(state, ids[39:40])[0, 0]
    assert len(visits) == 1, f"position 39 with a window of 3 reads keys 37–39, one block of 4; visited {len(visits)}"
    want = reference.forward(arch, theta, ids)[-1]
    np.testing.assert_allclose(last, want, rtol=0, atol=1e-12 * np.max(np.abs(want)))
