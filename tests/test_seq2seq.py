"""The original encoder–decoder Transformer: counts from Θ, sequence-to-sequence semantics in the
reference and in fast/ (the encoder once, cross-attention K/V kept, the decoder's KV cache), the
padding of a batch, and dependency typing over two sequences."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import reference
from fast.lm import generate as fast_generate
from fast.lm import log_likelihood as fast_log_likelihood
from gptspec.cli import main
from gptspec.typing_report import verdict
from proofs.dependency import ALL, Windows, relation, relation_at
from reference.seq2seq import forward, generate, log_likelihood
from spec import build, count, preset
from spec.architectures.transformer import TransformerConfig
from spec.errors import ShapeError
from spec.graph import Architecture
from spec.lm import Sampler
from spec.lm import log_likelihood as ll_of_logits
from spec.seq2seq import SOURCE, TARGET, with_key_padding
from spec.theta import random_theta


def test_table_3_counts_from_theta() -> None:
    """Vaswani et al. Table 3 prints 65M (base) and 213M (big); with the shared 37,000-token
    vocabulary Θ counts these (docs/conventions.md says why they differ)."""
    base, big = build(preset("transformer-base").config), build(preset("transformer-big").config)
    assert count(base) == 63_082_496 and count(big) == 214_245_376
    for arch, d, f in ((base, 512, 2048), (big, 1024, 4096)):
        V, N = 37_000, 6
        attn, ffn, ln = 4 * d * d + 4 * d, 2 * d * f + f + d, 2 * d  # W_Q, W_K, W_V, W_O and their biases; the FFN; γ, β
        assert count(arch) == V * d + N * (attn + ffn + 2 * ln) + N * (2 * attn + ffn + 3 * ln), "one shared embedding, no final norm"
    assert abs(count(base) / 65e6 - 1) == pytest.approx(0.0295, abs=5e-4) and abs(count(big) / 213e6 - 1) == pytest.approx(0.0058, abs=5e-4)


def small(**changes: object) -> TransformerConfig:
    config = TransformerConfig(n_vocab=17, n_ctx=12, d_model=8, n_layers=2, n_heads=2, d_mlp=12, name="small")
    return config.replace(**changes)


CONFIGS = [
    small(),
    small(positional="concatenated", logits_bias=True, activation="gelu_erf", scale_embedding=False),
    small(shared_embeddings=False, tied=False, n_decoder_layers=1, bias=False),
    small(n_layers=1, n_heads=1, d_model=4, d_mlp=4, positional="concatenated"),
]


def padded_batch(rng: np.random.Generator, rows: list[tuple[int, bool]], n_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(n for n, _ in rows)
    ids = rng.integers(0, n_vocab, size=(len(rows), width))
    valid = np.zeros(ids.shape, dtype=bool)
    for b, (n, left) in enumerate(rows):
        if left:
            valid[b, width - n:] = True
        else:
            valid[b, :n] = True
    return ids, valid


def lengths(max_len: int) -> st.SearchStrategy[tuple[int, bool]]:
    return st.tuples(st.integers(1, max_len), st.booleans())


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.positional}-{c.shared_embeddings}-{c.n_heads}")
def test_fast_equals_the_reference_on_padded_pairs_and_decodes_with_the_encoder_run_once(config: TransformerConfig) -> None:
    arch = build(config)
    theta = random_theta(arch, 2, std=0.4)
    program = fast.compile(arch, theta, "float64", block=2)
    cross = [step.path for step in program.steps if step.plan is not None and step.plan.cross]
    assert len(cross) == config.decoder_layers, "every cross-attention takes the fused path"
    assert len(program.static_kept) == 1, f"decoding reads the encoder only through its output: {program.static_kept}"

    @settings(max_examples=3)
    @given(st.integers(0, 2**16), st.integers(1, 3).flatmap(lambda B: st.tuples(st.lists(lengths(6), min_size=B, max_size=B),
                                                                                  st.lists(lengths(6), min_size=B, max_size=B))))
    def prop(seed: int, shape: tuple[list[tuple[int, bool]], list[tuple[int, bool]]]) -> None:
        rng = np.random.default_rng(seed)
        src, src_valid = padded_batch(rng, shape[0], config.n_vocab)
        tgt, tgt_valid = padded_batch(rng, shape[1], config.n_vocab)
        want = [forward(arch, theta, src[b, src_valid[b]], tgt[b, tgt_valid[b]]) for b in range(len(src))]
        context, context_valid = {SOURCE: src}, {SOURCE: src_valid}
        full = program.forward(tgt, tgt_valid, context=context, context_valid=context_valid)
        for b in range(len(src)):
            np.testing.assert_allclose(full[b, tgt_valid[b]], want[b], rtol=1e-9, atol=1e-11)
            assert np.all(full[b, ~tgt_valid[b]] == 0), "padded rows are 0"
        prefix = max(1, tgt.shape[1] // 2)
        first, state = program.prefill(tgt[:, :prefix], tgt_valid[:, :prefix], context=context, context_valid=context_valid)
        assert set(state.static) == set(program.static_kept), "the cross-attention K/V are kept from the prefill"
        assert {path for path, _ in state.cache} == {*cross, *(p for p, _ in state.cache if "self_attn" in p)}, sorted(state.cache)
        kept = {path: value for path, value in state.static.items()} | {key: value for key, value in state.cache.items() if key[0] in cross}
        assert len(kept) == 1 + 2 * len(cross), "the encoder's output and each cross-attention's K and V are kept from the prefill"
        steps = [first] + [program.decode(state, tgt[:, t], tgt_valid[:, t]) for t in range(prefix, tgt.shape[1])]
        now = state.static | state.cache
        assert all(now[key] is value for key, value in kept.items()), "decoding never recomputes or extends the encoder's K/V"
        decoded = np.concatenate(steps, axis=1)
        for b in range(len(src)):
            np.testing.assert_allclose(decoded[b, tgt_valid[b]], want[b], rtol=1e-9, atol=1e-11)

    prop()


def test_decoding_runs_no_encoder_step() -> None:
    """Count the kernel calls of one decoding step: none on the source's rows."""
    from fast.batch import Batch
    from fast.kernels import KERNELS

    arch = build(CONFIGS[0])
    program = fast.compile(arch, random_theta(arch, 0), "float64")
    _, state = program.prefill(np.array([[1, 2]]), context={SOURCE: np.array([[3, 4, 5, 6]])})
    calls: list[int] = []

    def counted(op: object, batch: Batch, **arrays: np.ndarray) -> np.ndarray:
        calls.append(batch.positions.shape[1])
        result: np.ndarray = old(op, batch, **arrays)
        return result

    old = KERNELS.override("layer_norm", counted)
    try:
        program.decode(state, np.array([7]))
    finally:
        KERNELS.override("layer_norm", old)
    assert calls == [1] * (3 * CONFIGS[0].decoder_layers), f"one row per decoder layer norm, none of the encoder's: {calls}"


def test_scoring_and_generation_in_fast_equal_the_reference() -> None:
    arch = build(CONFIGS[1])
    theta = random_theta(arch, 4, std=0.6)
    program = fast.compile(arch, theta, "float64")
    sources, targets = [[3, 4, 5], [6, 7, 8, 9, 10]], [[0, 5, 6, 7], [0, 1]]
    want = [log_likelihood(arch, theta, x, y) for x, y in zip(sources, targets)]
    got = fast_log_likelihood(program, targets, {SOURCE: sources})
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert want[0] == pytest.approx(ll_of_logits(forward(arch, theta, sources[0], targets[0]), targets[0]), rel=0, abs=0)
    for sampler in (Sampler(), Sampler(temperature=1.1, top_k=6, seed=3)):
        expected = [generate(arch, theta, x, [0], 6, sampler) for x in sources]
        assert fast_generate(program, [[0], [0]], 6, sampler, context={SOURCE: sources}) == expected


def test_a_source_is_required_exactly_when_the_model_reads_one(capsys: pytest.CaptureFixture[str]) -> None:
    arch = build(CONFIGS[0])
    theta = random_theta(arch, 0)
    with pytest.raises(ShapeError, match="input source is missing"):
        fast.compile(arch, theta).forward(np.array([[1, 2]]))
    with pytest.raises(ShapeError, match="expected a source sequence"):
        forward(arch, theta, None, [1, 2])  # type: ignore[arg-type]
    assert main(["forward", "transformer-tiny", "--tokens", "0 3 4", "--source", "5 6 7 8", "--impl", "fast", "--show", "0"]) == 0
    assert main(["forward", "transformer-tiny", "--tokens", "0 3 4"]) == 2  # could not run
    assert "--source" in capsys.readouterr().err
    assert main(["forward", "tiny", "--tokens", "0 3 4", "--source", "1"]) == 2


def test_the_typing_over_two_sequences() -> None:
    arch = build(CONFIGS[0])
    assert relation(arch, "logits", TARGET) == Windows.of((-sympy.oo, 0)) and relation(arch, "logits", SOURCE) == ALL
    lines = verdict(arch).lines()
    assert "causal — logits row t depends on ids positions s ≤ t" in lines[0] and "source positions all s" in lines[1]
    padded = with_key_padding(arch, {SOURCE: (True, False, True, False), TARGET: (True, True, False)})
    at = relation_at(padded, {SOURCE: 4, TARGET: 3})
    assert at[SOURCE][:2].tolist() == [[True, False, True, False]] * 2, "real target rows read exactly the real source positions"
    assert at[TARGET][:2].tolist() == [[True, False, False], [True, True, False]]


def test_the_padded_architecture_is_what_fast_computes_on_a_right_padded_batch() -> None:
    arch = build(CONFIGS[1])
    theta = random_theta(arch, 6, std=0.5)
    src = np.array([[3, 4, 5, 1, 1], [6, 7, 8, 9, 2]])
    src_valid = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    tgt = np.array([[0, 5, 6], [0, 1, 2]])
    tgt_valid = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    got = fast.compile(arch, theta, "float64").forward(tgt, tgt_valid, context={SOURCE: src}, context_valid={SOURCE: src_valid})
    for b in range(2):
        padded = with_key_padding(arch, {SOURCE: tuple(src_valid[b]), TARGET: tuple(tgt_valid[b])})
        want = reference.evaluate(padded, theta, {SOURCE: src[b], TARGET: tgt[b]})["logits"]
        np.testing.assert_allclose(got[b, tgt_valid[b]], want[tgt_valid[b]], rtol=1e-10, atol=1e-12)


def test_params_and_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "transformer-base"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "63082496" and out[0].startswith("note:") and "65M" in out[0] and "37,000" in out[0]
    assert any("encoder.blocks.*.attn.*" in line for line in out) and any("decoder.blocks.*.cross_attn.*" in line for line in out)
    assert any("source positions all s" in line for line in out)


def test_the_blocks_are_post_ln() -> None:
    arch: Architecture = build(CONFIGS[0])
    theta = random_theta(arch, 1, std=0.5)
    values = reference.evaluate(arch, theta, {SOURCE: np.array([1, 2, 3]), TARGET: np.array([0, 4])})
    x = values["encoder.embed"]
    block = "encoder.blocks.0"
    np.testing.assert_allclose(values[f"{block}.add_1"], x + values[f"{block}.attn.W_O"], rtol=1e-14)
    added = values[f"{block}.add_2"]
    np.testing.assert_allclose(added, values[f"{block}.ln_1"] + values[f"{block}.mlp.W_out"], rtol=1e-14)
    mu, var = added.mean(axis=1, keepdims=True), added.var(axis=1, keepdims=True)
    normed = (added - mu) / np.sqrt(var + 1e-5) * theta[f"{block}.ln_2.gamma"] + theta[f"{block}.ln_2.beta"]
    np.testing.assert_allclose(values[f"{block}.ln_2"], normed, rtol=1e-12, atol=1e-12)  # LN(x + FFN(x)): the norm after the add
    assert values["decoder.blocks.0.add_2"].shape == (2, 8) and f"{block}.ln_3" not in values
    assert values["encoder.scale"] == pytest.approx(np.sqrt(8) * values["encoder.token_embedding"], rel=1e-15)
