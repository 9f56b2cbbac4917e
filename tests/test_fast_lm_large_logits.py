"""fast/'s scoring and generation (fast/lm.py, and ``gptspec score``/``generate`` through it) with
logits far beyond exp's range: near ±1e3 in float64 (exp(1000) overflows), near ±1e2 in float32.

The logits are made large the way a real model makes them, by the final norm's gain (ln_f's γ × 1000
or × 100), and every log-probability is compared with the reference's logits through an independent
log-sum-exp (``np.logaddexp.reduce``): a log-softmax without its max subtraction, anywhere on fast/'s
path, turns these into inf or nan and fails here. The bound is the one log-softmax itself allows:
|Δ(z_v − lse z)| ≤ 2·max|Δz| (each term moves at most as much as the largest logit error), plus the
float64 rounding of the log-sum-exp of values of that size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fast
import reference
import reference.lm as RL
from fast.lm import generate, log_likelihood, token_log_probs
from gptspec.checkpoint import save_theta
from gptspec.cli import main
from gptspec.verify import FastImplementation
from gptspec.verify.engine import check_model
from gptspec.verify.strategies import BatchExample
from spec import build, preset
from spec.lm import Sampler
from spec.theta import preset_theta

SEQUENCES = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]
EPS64 = float(np.finfo(np.float64).eps)


def model(gain: float) -> tuple[object, dict[str, np.ndarray]]:
    """tiny with the documented θ of seed 0, its final norm's gain scaled by ``gain``."""
    arch = build(preset("tiny").config)
    theta = dict(preset_theta(arch, 0))
    theta["ln_f.gamma"] = theta["ln_f.gamma"] * gain
    return arch, theta


def oracle_log_probs(z: np.ndarray, ids: list[int]) -> np.ndarray:
    """log softmax(z_t)[x_{t+1}] by numpy's own stable log-sum-exp, not the spec's function."""
    return np.array([z[t, ids[t + 1]] - np.logaddexp.reduce(z[t]) for t in range(len(ids) - 1)])


@pytest.mark.parametrize(("dtype", "gain", "size"), [("float64", 1000.0, 1e3), ("float32", 100.0, 1e2)])
def test_scoring_with_large_logits_equals_the_reference(dtype: str, gain: float, size: float) -> None:
    arch, theta = model(gain)
    program = fast.compile(arch, theta, dtype)  # type: ignore[arg-type]
    wants = [reference.forward(arch, theta, s) for s in SEQUENCES]  # type: ignore[arg-type]
    biggest = max(float(np.abs(z).max()) for z in wants)
    assert 0.5 * size < biggest < 5 * size and min(float(z.min()) for z in wants) < -0.3 * size, f"logits up to {biggest:.3g}"
    got = token_log_probs(program, SEQUENCES)  # one padded batch
    for s, z, lp in zip(SEQUENCES, wants, got):
        mine = program.forward(np.array([s]))[0].astype(np.float64)
        bound = 2 * float(np.abs(mine - z).max()) + 8 * EPS64 * float(np.abs(z).max())
        want = oracle_log_probs(z, s)
        assert np.all(np.isfinite(lp)) and np.all(lp <= 0), lp
        assert float(np.abs(lp - want).max()) <= bound, f"log p off by {np.abs(lp - want).max():.3g} > {bound:.3g} ({dtype}, {s})"
    assert np.isfinite(log_likelihood(program, SEQUENCES)).all()
    # the logits themselves, within the tolerance policy (docs/tolerances.md)
    outcome = check_model(FastImplementation(dtype), arch, theta, BatchExample((8, 3, 5), (False, True, False), 0))  # type: ignore[arg-type]
    assert outcome.passed, outcome


@pytest.mark.parametrize(("dtype", "gain"), [("float64", 1000.0), ("float32", 100.0)])
def test_generation_with_large_logits_equals_the_reference(dtype: str, gain: float) -> None:
    """Greedy and sampled tokens equal the reference's. Sampling at τ = (the smallest gap between
    a step's two largest logits) / 40 can only draw the argmax — every other id has a probability
    below e^-40 — while (z − m)/τ spans thousands: exp without the max subtraction overflows."""
    arch, theta = model(gain)
    program = fast.compile(arch, theta, dtype)  # type: ignore[arg-type]
    prompts = [[1, 2, 3], [4]]
    greedy = [RL.generate(arch, theta, p, 6, Sampler()) for p in prompts]  # type: ignore[arg-type]
    rows = np.concatenate([reference.forward(arch, theta, p + new[:-1])[len(p) - 1 :] for p, new in zip(prompts, greedy)])  # type: ignore[arg-type]
    top2 = np.sort(rows, axis=-1)[:, -2:]
    temperature = float(np.min(top2[:, 1] - top2[:, 0])) / 40
    assert float(np.abs(rows).max()) / temperature > 1000, "the scaled logits reach beyond exp's range (e^709)"
    assert generate(program, prompts, 6, Sampler()) == greedy
    sampler = Sampler(temperature=temperature, seed=11)
    assert generate(program, prompts, 6, sampler) == greedy
    assert [RL.generate(arch, theta, p, 6, sampler) for p in prompts] == greedy  # type: ignore[arg-type]


def test_score_and_generate_commands_with_large_logits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gptspec score`` and ``generate`` (fast/, the default) on a θ file with logits near ±1e3."""
    arch, theta = model(1000.0)
    path = save_theta(tmp_path / "large.safetensors", arch, theta)  # type: ignore[arg-type]
    ids = SEQUENCES[0]
    assert main(["score", str(path), "--tokens", " ".join(map(str, ids))]) == 0
    printed = float(capsys.readouterr().out.splitlines()[-1])
    want = float(np.sum(oracle_log_probs(reference.forward(arch, theta, ids), ids)))  # type: ignore[arg-type]
    assert np.isfinite(printed) and abs(printed - want) <= 1e-9 * abs(want), (printed, want)
    assert main(["generate", str(path), "--tokens", "1 2 3", "--max-new-tokens", "6"]) == 0
    out = capsys.readouterr().out.split()
    assert [int(v) for v in out] == RL.generate(arch, theta, [1, 2, 3], 6, Sampler()), out  # type: ignore[arg-type]
