"""The θ every model check draws for itself (docs/verify.md, "What is drawn").

A user's weights may hide bugs (biases and layer-norm β initialised to 0, gains to 1, small
attention scores), so verification never relies on them alone. Every draw has

- every entry random: weights and biases N(0, 0.2²), layer-norm/RMS gains 1 + N(0, 0.2²) — so
  biases and β are nonzero and gains ≠ 1, and a dropped bias or a swapped γ/β shows;
- a **magnitude**: ``plain`` leaves the scores as drawn (|score| up to ~5); ``medium`` and
  ``large`` scale the Θ entries that make each attention's Q and K (``structure.score_params``)
  so the largest |score| over a probe sequence reaches 30 and 1e4 — an overflowing softmax
  (exp of an unshifted score) is then caught.

In the half precisions the target is capped (``SCORE_CAP``). bfloat16 resolves a score of 1e4
only to ±32 (its spacing there is 64): the softmax of such scores is a coin toss between
near-tied keys, decided by each implementation's order of roundings, which no budget derived
from one rounding per value bounds (measured: HF GPT-2 in bfloat16 off by 1.4 × the budget at
|s| ≈ 1e4); at 16 a bfloat16 score is off by at most 0.06. float16's range ends at 65504, so a
score below −16 plus a finite mask constant (Hugging Face's eager finfo.min = −65504) overflows
to −∞, and a row with no allowed key whose scores all do is NaN: measured on HF GPT-2 eager in
float16 with scores drawn up to 16 (a fully padded row, seed 106 of the false-positive sweep).
So float16 draws stop at 8, where no row of a drawn model comes near −16. The price: an
unshifted softmax is caught by the float32 and float64 checks (scores to 1e4, past exp's
overflow at 88.7), not reliably by the half-precision ones.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

import reference
from gptspec.verify.structure import structure
from gptspec.verify.tolerance import dtype_name
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.theta import PRESET_STD, Theta, random_theta

MAGNITUDES = ("plain", "medium", "large")
"""Plainest first: shrinking moves a counterexample towards ``plain``."""
SCORE_TARGET = {"medium": 30.0, "large": 1e4}
"""The largest |attention score| each magnitude aims at."""
SCORE_CAP = {"float16": 8.0, "bfloat16": 16.0}
"""Per-dtype cap on the score target (see the module docstring)."""


def score_target(magnitude: str, dtype: str) -> float | None:
    """The |score| a magnitude aims at in ``dtype`` (None: as drawn)."""
    if magnitude not in MAGNITUDES:
        raise ConfigError(f"magnitude={magnitude!r}, but expected one of {list(MAGNITUDES)} [θ draw]")
    target = SCORE_TARGET.get(magnitude)
    if target is None:
        return None
    return min(target, SCORE_CAP.get(dtype_name(dtype), target))


@dataclass(frozen=True)
class ThetaDraw:
    """A drawn θ: a seed and a magnitude (module docstring)."""

    seed: int
    magnitude: str = "plain"

    def key(self, arch: Architecture, dtype: str) -> Hashable:
        return ("draw", arch.config if arch.config is not None else id(arch), self.seed, score_target(self.magnitude, dtype))

    def describe(self, dtype: str = "float64") -> str:
        target = score_target(self.magnitude, dtype)
        return f"θ seed {self.seed}" + ("" if target is None else f", scores scaled to |s| ≤ {target:g}")


_CACHE: dict[Hashable, Theta] = {}


def draw_theta(arch: Architecture, draw: ThetaDraw, dtype: str) -> Theta:
    """θ for ``draw`` (cached: the same object for the same architecture config, seed and
    target, so every check and the reference cache see one θ)."""
    key = draw.key(arch, dtype)
    if key in _CACHE:
        return _CACHE[key]
    theta = random_theta(arch, draw.seed, PRESET_STD)
    target = score_target(draw.magnitude, dtype)
    if target is not None:
        theta = scale_scores(arch, theta, target)
    if len(_CACHE) > 512:
        _CACHE.clear()
    _CACHE[key] = theta
    return theta


def probe_ids(arch: Architecture) -> np.ndarray:
    """A fixed sequence of every position up to min(n_ctx, 16), to measure the scores on."""
    n = min(arch.dim("n_ctx"), 16)
    return (np.arange(n, dtype=np.int64) * 7 + 3) % arch.dim("n_vocab")


def max_scores(arch: Architecture, theta: Theta) -> dict[tuple[str, ...], float]:
    """The largest |score| per group of attention_scores ops sharing their Q/K entries."""
    values = reference.evaluate(arch, theta, {"ids": probe_ids(arch)})
    out: dict[tuple[str, ...], float] = {}
    for path, names in structure(arch).score_params.items():
        if names:
            out[names] = max(out.get(names, 0.0), float(np.max(np.abs(values[path]), initial=0.0)))
    return out


def scale_scores(arch: Architecture, theta: Theta, target: float) -> Theta:
    """θ with each group's Q and K entries scaled by one factor f (scores scale by f²) so its
    largest |score| on :func:`probe_ids` is about ``target`` (two passes: a layer's scale
    barely moves a later layer's normalised inputs)."""
    out = dict(theta)
    for _ in range(2):
        for names, largest in max_scores(arch, out).items():
            if largest <= 0:
                continue
            f = float(np.sqrt(target / largest))
            for name in names:
                out[name] = out[name] * f
    return out
