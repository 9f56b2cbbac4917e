"""Language-model semantics (spec/lm.py): scoring and the next-token rules on their own; the
reference (no cache) and fast (KV cache) generations and scores agree; independent checks
against torch's cross-entropy and Hugging Face GPT-2's greedy ``generate``; the CLI."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fast
import fast.lm as FL
import reference.lm as RL
from spec import GPTConfig, build_gpt
from spec.errors import ConfigError, ShapeError, TokenError
from spec.lm import (
    Sampler,
    cross_entropy,
    greedy,
    log_likelihood,
    log_softmax,
    sample,
    token_log_probs,
    top_k_ids,
)
from spec.theta import random_theta

# -- the formulas ----------------------------------------------------------------------------

rows = hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(-30, 30, width=64))
tied_rows = st.lists(st.sampled_from([-1.0, 0.0, 2.5, 2.5]), min_size=1, max_size=10).map(np.array)


def test_log_likelihood_is_the_sum_of_next_token_log_probs() -> None:
    z = np.array([[0.0, 1.0, 2.0], [3.0, 3.0, 3.0], [1.0, 0.0, 0.0]])
    ids = [2, 0, 1]
    # row 0 predicts ids[1] = 0: 0 − log(1 + e + e²); row 1 predicts ids[2] = 1: 3 − log(3e³)
    expected = (0.0 - math.log(1 + math.e + math.e**2)) + (3.0 - math.log(3 * math.e**3))
    np.testing.assert_allclose(token_log_probs(z, ids), [-math.log(1 + math.e + math.e**2), -math.log(3)], rtol=1e-15)
    assert log_likelihood(z, ids) == pytest.approx(expected, rel=1e-15)
    assert cross_entropy(z, ids) == pytest.approx(-expected / 2, rel=1e-15)
    assert log_likelihood(z[:1], [2]) == 0.0 and log_likelihood(np.zeros((0, 3)), []) == 0.0


@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 9)), elements=st.floats(-50, 50)), st.data())
def test_cross_entropy_equals_torch(z: np.ndarray, data: st.DataObject) -> None:
    import torch

    ids = data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0], max_size=z.shape[0]))
    theirs = torch.nn.functional.cross_entropy(torch.tensor(z[:-1]), torch.tensor(ids[1:])).item()
    assert cross_entropy(z, ids) == pytest.approx(theirs, rel=1e-12, abs=1e-12)


def test_scoring_refuses_what_it_does_not_define() -> None:
    with pytest.raises(TokenError, match="T ≥ 2"):
        cross_entropy(np.zeros((1, 3)), [0])
    with pytest.raises(ShapeError, match="expected \\(T, n_vocab\\) with T=2"):
        log_likelihood(np.zeros((3, 3)), [0, 1])
    with pytest.raises(TokenError, match="0 ≤ id < n_vocab=3"):
        log_likelihood(np.zeros((2, 3)), [0, 3])
    with pytest.raises(TokenError, match="finite"):
        log_likelihood(np.array([[np.nan, 0.0], [0.0, 0.0]]), [0, 1])


@given(tied_rows)
def test_greedy_takes_the_lowest_id_among_the_maxima(z: np.ndarray) -> None:
    v = greedy(z)
    assert z[v] == z.max() and all(z[u] < z.max() for u in range(v))


@given(tied_rows, st.integers(1, 12))
def test_top_k_breaks_ties_toward_lower_ids(z: np.ndarray, k: int) -> None:
    K = top_k_ids(z, k)
    assert list(K) == sorted(K) and len(K) == min(k, z.size)
    outside = [v for v in range(z.size) if v not in K]
    for v in outside:  # everything left out is smaller, or equal with a larger id than some kept one
        assert all(z[u] > z[v] or (z[u] == z[v] and u < v) for u in K)


def test_sampling_inverts_the_cdf_in_id_order() -> None:
    z = np.log(np.array([0.5, 0.25, 0.125, 0.125]))  # p = (1/2, 1/4, 1/8, 1/8): exact in binary
    assert [sample(z, u) for u in (0.0, 0.4999, 0.5, 0.7499, 0.75, 0.8749, 0.875, 0.9999)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [sample(z, u, top_k=2) for u in (0.0, 0.66, 0.67)] == [0, 0, 1]  # K = {0, 1}, p = (2/3, 1/3)
    assert sample(z, 0.99, temperature=1e-3) == 0  # a tiny τ puts every weight on the maximum
    assert sample(np.zeros(4), 0.5, temperature=7.0) == 2  # uniform: u = 1/2 lands at the start of id 2


@given(rows, st.floats(0.05, 5.0), st.one_of(st.none(), st.integers(1, 14)), st.floats(0, 1, exclude_max=True))
def test_a_sample_lies_in_top_k_and_is_monotone_in_u(z: np.ndarray, tau: float, k: int | None, u: float) -> None:
    v = sample(z, u, tau, k)
    assert v in set(top_k_ids(z, k))
    assert sample(z, u / 2, tau, k) <= v  # the CDF is inverted in increasing id order


def test_sampler_draws_one_uniform_per_token_and_zero_for_greedy() -> None:
    z = np.array([0.1, 0.7, -0.3, 0.7])
    rule = Sampler(0.8, 3, seed=11)
    rng = rule.rng()
    got = [rule.next_token(z, rng) for _ in range(20)]
    draws = np.random.default_rng(11).random(20)
    assert got == [sample(z, float(u), 0.8, 3) for u in draws]
    greedy_rng = Sampler().rng()
    assert Sampler().next_token(z, greedy_rng) == 1 and greedy_rng.random() == np.random.default_rng(0).random()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"temperature": -1.0}, "temperature=-1.0"), ({"temperature": math.inf}, "temperature=inf"),
     ({"temperature": 1.0, "top_k": 0}, "top-k=0")],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Sampler(**kwargs)


def test_log_softmax_is_stable_at_large_logits() -> None:
    z = np.array([1e4, 1e4 - 1.0, -1e4])
    np.testing.assert_allclose(np.exp(log_softmax(z)).sum(), 1.0, rtol=1e-15)
    assert np.all(np.isfinite(log_softmax(z)))


# -- reference (no cache) = fast (KV cache) ----------------------------------------------------

CONFIG = GPTConfig(n_vocab=40, n_ctx=16, d_model=8, n_layers=2, n_heads=2, name="lm-test")


@pytest.fixture(scope="module")
def model() -> tuple[Any, dict[str, np.ndarray], Any]:
    arch = build_gpt(CONFIG)
    theta = {k: v * 25 for k, v in random_theta(arch, 5).items()}  # larger weights: peaked, varied logits
    theta = {k: (1 + v / 25) if k.endswith(".gamma") else v for k, v in theta.items()}
    return arch, theta, fast.compile(arch, theta, "float64")


@settings(max_examples=8)
@given(
    st.lists(st.lists(st.integers(0, 39), min_size=1, max_size=6), min_size=1, max_size=3),
    st.sampled_from([Sampler(), Sampler(1.0, None, 3), Sampler(0.7, 5, 4), Sampler(2.0, 2, 9)]),
    st.integers(0, 6),
    st.sets(st.integers(0, 39), max_size=3),
)
def test_fast_generation_with_kv_cache_equals_reference(model: Any, prompts: list[list[int]], rule: Sampler, n: int, stop: set[int]) -> None:
    arch, theta, program = model
    assert FL.generate(program, prompts, n, rule, stop) == [RL.generate(arch, theta, p, n, rule, stop) for p in prompts]


def test_generation_is_seeded_and_stops(model: Any) -> None:
    arch, theta, program = model
    a = FL.generate(program, [[1, 2]], 8, Sampler(1.5, None, 7))[0]
    assert a == FL.generate(program, [[1, 2]], 8, Sampler(1.5, None, 7))[0]
    assert a != FL.generate(program, [[1, 2]], 8, Sampler(1.5, None, 8))[0]
    first = a[0]
    assert FL.generate(program, [[1, 2]], 8, Sampler(1.5, None, 7), stop={first})[0] == [first]
    per_row = FL.generate(program, [[1, 2], [1, 2]], 5, [Sampler(1.5, None, 7), Sampler()])
    assert per_row[0] == a[:5] and per_row[1] == RL.generate(arch, theta, [1, 2], 5)


def test_generation_refuses_what_it_does_not_define(model: Any) -> None:
    arch, theta, program = model
    with pytest.raises(TokenError, match="at least 1 token"):
        RL.generate(arch, theta, [], 3)
    with pytest.raises(TokenError, match=r"prompt length \+ max new tokens=10 \+ 7, but expected ≤ n_ctx=16"):
        FL.generate(program, [[0] * 10], 7)
    with pytest.raises(ConfigError, match="max new tokens=-1"):
        RL.generate(arch, theta, [1], -1)
    with pytest.raises(ConfigError, match="one per prompt"):
        FL.generate(program, [[1], [2]], 2, [Sampler()])


@settings(max_examples=10)
@given(st.lists(st.lists(st.integers(0, 39), max_size=16), min_size=1, max_size=4))
def test_fast_log_likelihood_equals_reference(model: Any, sequences: list[list[int]]) -> None:
    arch, theta, program = model
    fast_ll = FL.log_likelihood(program, sequences)
    for s, value in zip(sequences, fast_ll):
        assert value == pytest.approx(RL.log_likelihood(arch, theta, s), rel=1e-10, abs=1e-10)


def test_cross_entropy_in_reference_and_fast(model: Any) -> None:
    arch, theta, program = model
    seqs = [[1, 2, 3, 4, 5], [7, 7]]
    for s, h in zip(seqs, FL.cross_entropy(program, seqs)):
        assert h == pytest.approx(RL.cross_entropy(arch, theta, s), rel=1e-12)
        assert h == pytest.approx(-RL.log_likelihood(arch, theta, s) / (len(s) - 1), rel=1e-12)
    with pytest.raises(TokenError, match="T ≥ 2"):
        FL.cross_entropy(program, [[1]])


def test_greedy_equals_hugging_face_generate(tmp_path: Path) -> None:
    """minGPT's end-to-end check: a random HF GPT-2, greedy tokens equal."""
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from gptspec.checkpoint import load

    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=24, n_embd=16, n_layer=2, n_head=2)).to(torch.float64).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.5)
    hf.save_pretrained(tmp_path)
    arch, theta = load(str(tmp_path))
    program = fast.compile(arch, theta, "float64")
    prompt = [3, 14, 15, 9, 2]
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, pad_token_id=0,
                          attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    theirs = out[0, len(prompt):].tolist()
    assert FL.generate(program, [prompt], 12)[0] == theirs == RL.generate(arch, theta, prompt, 12)


# -- the command line ----------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line as users run it (gptspec.cli.main: bad input exits 2, could not run)."""
    from gptspec.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "é", "😀", "naïve", "über", "东京"]
    rng = np.random.default_rng(0)
    path.write_text(" ".join(words[i] for i in rng.integers(0, len(words), 3000)) + "\n", encoding="utf-8")
    return path


def test_cli_bpe_train_encode_decode(capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus_file: Path) -> None:
    out_dir = tmp_path / "tok"
    code, out, err = run(capsys, "bpe", "train", str(corpus_file), "--vocab-size", "300", "--out", str(out_dir))
    assert code == 0 and "trained 300 tokens = 256 bytes + 43 merges + 1 special" in out
    assert "43/43 merges (100%)" in err
    code, out, _ = run(capsys, "bpe", "encode", str(out_dir), "the cat<|endoftext|>😀")
    ids = [int(v) for v in out.split()]
    assert code == 0 and 299 not in ids
    _, out_special, _ = run(capsys, "bpe", "encode", str(out_dir), "the cat<|endoftext|>😀", "--allow-special")
    assert 299 in [int(v) for v in out_special.split()]
    code, out, _ = run(capsys, "bpe", "decode", str(out_dir), " ".join(map(str, ids)))
    assert code == 0 and out == "the cat<|endoftext|>😀\n"
    code, out, err = run(capsys, "bpe", "decode", str(out_dir), "226 130")
    assert code == 0 and out == "\ufffd\n" and "not valid UTF-8" in err
    code, _, err = run(capsys, "bpe", "decode", str(out_dir), "5 300")
    assert code == 2 and "token id=300, but expected an id of the vocabulary" in err
    reference_dir = tmp_path / "ref"
    run(capsys, "bpe", "train", str(corpus_file), "--vocab-size", "300", "--out", str(reference_dir), "--impl", "reference", "--quiet")
    assert (reference_dir / "merges.txt").read_text() == (out_dir / "merges.txt").read_text()


def test_cli_bpe_train_refuses_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus_file: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = run(capsys, "bpe", "train", str(empty), "--vocab-size", "300", "--out", str(tmp_path / "x"))
    assert code == 2 and "of 0 bytes, but expected some text" in err
    code, _, err = run(capsys, "bpe", "train", str(corpus_file), "--vocab-size", "256", "--out", str(tmp_path / "x"))
    assert code == 2 and "vocab size=256, but expected vocab size ≥ 256 bytes + 1 special = 257" in err
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9".encode("latin-1"))
    code, _, err = run(capsys, "bpe", "train", str(latin1), "--vocab-size", "300", "--out", str(tmp_path / "x"))
    assert code == 2 and "byte 3" in err and "expected UTF-8 text" in err
    code, _, err = run(capsys, "bpe", "train", str(corpus_file), "--vocab-size", "5000", "--out", str(tmp_path / "y"), "--quiet")
    assert code == 0 and "ran out of pairs" in err


def test_cli_generate_and_score(capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus_file: Path) -> None:
    from gptspec.models import resolve

    code, out, _ = run(capsys, "generate", "tiny", "--prompt", "1 2 3", "--max-new-tokens", "5", "--temperature", "0.9", "--top-k", "10", "--seed", "4")
    model = resolve("tiny", (), need_theta=True, seed=0, progress=False)
    assert model.theta is not None
    expected = RL.generate(model.arch, model.theta, [1, 2, 3], 5, Sampler(0.9, 10, 4))
    assert code == 0 and out.split() == [str(v) for v in expected]
    code, out_ref, _ = run(capsys, "generate", "tiny", "--tokens", "1 2 3", "--max-new-tokens", "5", "--temperature", "0.9", "--top-k", "10", "--seed", "4", "--impl", "reference")
    assert code == 0 and out_ref == out

    tok = tmp_path / "tok"
    run(capsys, "bpe", "train", str(corpus_file), "--vocab-size", "280", "--out", str(tok), "--quiet")
    code, text_out, _ = run(capsys, "generate", "tiny", "--set", "n_vocab=280", "--tokenizer", str(tok), "--prompt", "the cat", "--max-new-tokens", "4", "--echo")
    assert code == 0 and text_out.startswith("the cat")
    code, _, err = run(capsys, "generate", "tiny", "--tokenizer", str(tok), "--prompt", "the cat", "--max-new-tokens", "4")
    assert code == 2 and "tokenizer n_vocab=280, but expected at most the model's n_vocab=64" in err and "--set n_vocab=280" in err
    code, _, err = run(capsys, "generate", "tiny", "--prompt", "hello", "--max-new-tokens", "2")
    assert code == 2 and "without a tokenizer the input is token ids" in err
    code, _, err = run(capsys, "generate", "tiny", "--prompt", "1", "--max-new-tokens", "40")
    assert code == 2 and "expected ≤ n_ctx=32" in err

    code, out, _ = run(capsys, "score", "tiny", "--tokens", "1 2 3 4")
    assert code == 0 and float(out.splitlines()[-1]) == pytest.approx(RL.log_likelihood(model.arch, model.theta, [1, 2, 3, 4]), rel=1e-12)
    assert "perplexity" in out
    code, out, _ = run(capsys, "score", "tiny", "--set", "n_vocab=280", "--tokenizer", str(tok), "--text", "the cat sat", "--impl", "reference")
    assert code == 0 and "'" in out and math.isfinite(float(out.splitlines()[-1]))
    code, out, _ = run(capsys, "score", "tiny", "--tokens", "7")
    assert code == 0 and out.splitlines()[-1] == "0.0" and "undefined" in out
