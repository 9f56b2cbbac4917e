"""An encoder–decoder on an empty source: fast/ computes what the reference defines.

The spec defines it (docs/conventions.md, masked softmax): the encoder runs on no rows, and every
cross-attention row has no key to attend to, so its output is 0 and the decoder sees only its own
tokens. fast/ once failed reshaping the encoder's zero rows; here it equals the reference in the
forward pass, in a padded batch where one source is empty and another is not, in prefill and
decoding, in scoring and generation, and through the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fast
from fast.lm import generate as fast_generate
from fast.lm import log_likelihood as fast_log_likelihood
from gptspec.cli import main
from reference.seq2seq import forward, generate, log_likelihood
from spec import build, preset
from spec.lm import Sampler
from spec.seq2seq import SOURCE
from spec.theta import random_theta

TARGET = [0, 3, 5, 2]


@pytest.fixture(scope="module")
def model() -> tuple[object, dict[str, np.ndarray]]:
    arch = build(preset("transformer-tiny").config)
    return arch, random_theta(arch, 3, std=0.5)


def test_forward_on_an_empty_source_equals_the_reference(model: tuple[object, dict[str, np.ndarray]]) -> None:
    arch, theta = model
    want = forward(arch, theta, [], TARGET)  # type: ignore[arg-type]
    program = fast.compile(arch, theta, "float64", block=2)  # type: ignore[arg-type]
    got = program.forward(np.array([TARGET]), context={SOURCE: np.zeros((1, 0), dtype=np.int64)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
    assert not np.allclose(want, forward(arch, theta, [7], TARGET)), "the source matters when there is one"  # type: ignore[arg-type]


def test_a_batch_with_one_empty_source_equals_the_reference_row_by_row(model: tuple[object, dict[str, np.ndarray]]) -> None:
    arch, theta = model
    sources = np.array([[0, 0, 0], [4, 5, 6]])
    source_valid = np.array([[False, False, False], [True, True, True]])  # the first source is empty
    program = fast.compile(arch, theta, "float64", block=2)  # type: ignore[arg-type]
    got = program.forward(np.array([TARGET, TARGET]), context={SOURCE: sources}, context_valid={SOURCE: source_valid})
    np.testing.assert_allclose(got[0], forward(arch, theta, [], TARGET), rtol=1e-9, atol=1e-11)  # type: ignore[arg-type]
    np.testing.assert_allclose(got[1], forward(arch, theta, [4, 5, 6], TARGET), rtol=1e-9, atol=1e-11)  # type: ignore[arg-type]


def test_prefill_decode_scoring_and_generation_on_an_empty_source(model: tuple[object, dict[str, np.ndarray]]) -> None:
    arch, theta = model
    want = forward(arch, theta, [], TARGET)  # type: ignore[arg-type]
    program = fast.compile(arch, theta, "float64", block=2)  # type: ignore[arg-type]
    empty = {SOURCE: np.zeros((1, 0), dtype=np.int64)}
    first, state = program.prefill(np.array([TARGET[:2]]), context=empty)
    steps = [first] + [program.decode(state, np.array([token])) for token in TARGET[2:]]
    np.testing.assert_allclose(np.concatenate(steps, axis=1)[0], want, rtol=1e-9, atol=1e-11)
    got = fast_log_likelihood(program, [TARGET], {SOURCE: [[]]})
    np.testing.assert_allclose(got, [log_likelihood(arch, theta, [], TARGET)], rtol=1e-10)  # type: ignore[arg-type]
    for sampler in (Sampler(), Sampler(temperature=1.2, top_k=8, seed=5)):
        assert fast_generate(program, [[0]], 5, sampler, context={SOURCE: [[]]}) == [generate(arch, theta, [], [0], 5, sampler)]  # type: ignore[arg-type]


def test_the_command_line_forward_on_an_empty_source(tmp_path: Path) -> None:
    """The command of the bug report: fast and the reference print the same logits."""
    for impl in ("fast", "reference"):
        argv = ["forward", "transformer-tiny", "--source", "", "--tokens", "0 3", "--impl", impl, "--show", "0", "--out", str(tmp_path / f"{impl}.npy")]
        assert main(argv) == 0
    np.testing.assert_allclose(np.load(tmp_path / "fast.npy"), np.load(tmp_path / "reference.npy"), rtol=1e-9, atol=1e-11)
