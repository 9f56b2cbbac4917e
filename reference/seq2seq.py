"""Sequence-to-sequence scoring and generation, literally (spec/seq2seq.py): the reference
evaluation of the whole (source, target) pair, every time — no cache, the encoder recomputed at
every step."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from reference.interpreter import evaluate
from spec.graph import Architecture
from spec.lm import Sampler, check_generation
from spec.lm import log_likelihood as ll_of_logits
from spec.lm import token_log_probs as lp_of_logits
from spec.seq2seq import inputs, source_array


def forward(
    arch: Architecture, theta: Mapping[str, npt.ArrayLike], source: Sequence[int] | npt.ArrayLike, ids: Sequence[int] | npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """The logits f_θ(x, y) ∈ ℝ^{T × n_vocab}: float64, one pair."""
    values = evaluate(arch, theta, inputs(arch, source, ids, f"{arch.name} forward"))
    logits: npt.NDArray[np.float64] = values["logits"]
    return logits


def token_log_probs(arch: Architecture, theta: Mapping[str, npt.ArrayLike], source: Sequence[int], ids: Sequence[int]) -> npt.NDArray[np.float64]:
    """ℓ_t = log softmax(f_θ(x, y)_t)[y_{t+1}], t = 0 … T−2."""
    return lp_of_logits(forward(arch, theta, source, ids), ids)


def log_likelihood(arch: Architecture, theta: Mapping[str, npt.ArrayLike], source: Sequence[int], ids: Sequence[int]) -> float:
    """log p(y | x) = Σ_t log softmax(f_θ(x, y)_t)[y_{t+1}]."""
    return ll_of_logits(forward(arch, theta, source, ids), ids)


def generate(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    source: Sequence[int],
    prompt: Sequence[int],
    max_new_tokens: int,
    sampler: Sampler = Sampler(),
    stop: Collection[int] = (),
) -> list[int]:
    """The new target tokens: at each step f_θ on the source and the whole target so far, its last
    row through the sampler's rule; stops after a token in ``stop``."""
    source_array(arch, source, "reference generate")
    check_generation(len(prompt), max_new_tokens, arch.dim("n_ctx"), "reference generate")
    rng = sampler.rng()
    y = [int(v) for v in prompt]
    new: list[int] = []
    for _ in range(max_new_tokens):
        z = forward(arch, theta, source, y)  # [T, n_vocab], encoder and decoder recomputed from scratch
        v = sampler.next_token(z[-1], rng)
        y.append(v)
        new.append(v)
        if v in stop:
            break
    return new
