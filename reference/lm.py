"""Scoring and generation, literally (spec/lm.py): the reference forward pass on the whole
sequence, every time — no cache."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from reference.interpreter import forward
from spec.graph import Architecture
from spec.lm import Sampler, check_generation, check_sampler
from spec.lm import cross_entropy as ce_of_logits
from spec.lm import log_likelihood as ll_of_logits
from spec.lm import token_log_probs as lp_of_logits
from spec.theta import check_architecture


def token_log_probs(arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: Sequence[int]) -> npt.NDArray[np.float64]:
    """ℓ_t = log softmax(f_θ(x)_t)[x_{t+1}], t = 1 … T−1."""
    return lp_of_logits(forward(arch, theta, ids), ids)


def log_likelihood(arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: Sequence[int]) -> float:
    """LL(x) = Σ_t log softmax(f_θ(x)_t)[x_{t+1}]."""
    return ll_of_logits(forward(arch, theta, ids), ids)


def generate(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    prompt: Sequence[int],
    max_new_tokens: int,
    sampler: Sampler = Sampler(),
    stop: Collection[int] = (),
) -> list[int]:
    """The new tokens: at each step, f_θ on the whole sequence so far, its last row through
    the sampler's rule; stops after a token in ``stop``."""
    check_architecture(arch, "reference generate")
    check_sampler(sampler, "reference generate")
    check_generation(len(prompt), max_new_tokens, arch.dim("n_ctx"), "reference generate")
    rng = sampler.rng()
    x = [int(v) for v in prompt]
    new: list[int] = []
    for _ in range(max_new_tokens):
        z = forward(arch, theta, x)  # [T, n_vocab], recomputed from scratch
        v = sampler.next_token(z[-1], rng)
        x.append(v)
        new.append(v)
        if v in stop:
            break
    return new


def cross_entropy(arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: Sequence[int]) -> float:
    """H(x) = −LL(x) / (T − 1) nats per predicted token (T ≥ 2)."""
    return ce_of_logits(forward(arch, theta, ids), ids)
