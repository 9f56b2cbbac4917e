"""Language-model semantics: what the logits mean, how a sequence is scored, how the next
token is chosen. Pure functions of logits (numpy arrays); no model is evaluated here.

A GPT function maps ids x₁ … x_T to logits z ∈ ℝ^{T×n_vocab}; row t is read as the
distribution of the *next* token:

    p(x_{t+1} = v | x₁ … x_t) = softmax(z_t)_v,   log softmax(z)_v = z_v − m − log Σ_u exp(z_u − m),
                                                  m = max_u z_u.

Scoring (all sums in nats, natural logarithm):

    token log-probabilities  ℓ_t = log softmax(z_t)[x_{t+1}]              t = 1 … T−1
    log-likelihood           LL(x) = Σ_{t=1}^{T−1} ℓ_t   (the first token is given, not scored;
                                                          T ≤ 1 gives the empty sum 0)
    cross-entropy            H(x) = −LL(x) / (T − 1)     (nats per predicted token; T ≥ 2)
    perplexity               exp H(x)

Choosing the next token from one row z ∈ ℝ^{n_vocab} (float64; every entry must be finite):

* **Greedy**: the lowest id among the maxima, min{v : z_v = max_u z_u}.
* **Sampling** with temperature τ > 0 and top-k (k ≥ 1, or none = all ids):
    1. K = the first k ids of the order "larger z first, then lower id" (ties at the k-th
       place go to the lower ids), taken in increasing id order v₁ < v₂ < … < v_{|K|};
    2. m = max z; weights w_j = exp((z_{v_j} − m) / τ), in float64, in that order
       (computed as ``np.exp((z[K] - m) / tau)``);
    3. cumulative sums C_j = w₁ + … + w_j, added left to right (``np.cumsum``), W = C_{|K|};
    4. one uniform draw u ∈ [0, 1): ``rng.random()`` of a ``numpy.random.Generator``
       (``np.random.default_rng(seed)``, PCG64), exactly one draw per sampled token;
    5. the token is v_j for the first j with u·W < C_j; if rounding leaves none (u·W ≥ W), the
       last v_j with w_j > 0.
  This is inverse-CDF sampling of p_j = w_j / W without dividing. Temperature τ = 0 means
  greedy (the limit τ → 0⁺ when the maximum is unique) and draws nothing.

Generation from a prompt x₁ … x_P (P ≥ 1) for n steps: x_{P+s+1} = choose(f_θ(x₁ … x_{P+s})_{P+s})
for s = 0 … n−1, stopping after a token in the stop set (it is kept); the whole sequence must
fit n_ctx (P + n ≤ n_ctx), or it is refused — nothing is truncated or slid. The reference
evaluates f_θ on the whole growing sequence at every step; an implementation with a KV cache
must produce the same tokens (it computes the same logits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spec.errors import ConfigError, ShapeError, TokenError

Array = npt.NDArray[np.float64]


def _row(z: npt.ArrayLike, where: str) -> Array:
    row = np.asarray(z, dtype=np.float64)
    if row.ndim != 1 or row.size == 0:
        raise ShapeError(f"logits of shape {row.shape}, but expected one row (n_vocab,) with n_vocab ≥ 1 [{where}]")
    if not np.all(np.isfinite(row)):
        bad = int(np.flatnonzero(~np.isfinite(row))[0])
        raise TokenError(f"logit {bad}={row[bad]}, but expected finite logits [{where}]; the model produced inf or NaN")
    return row


def log_softmax(z: npt.ArrayLike) -> Array:
    """log softmax over the last axis: z − m − log Σ exp(z − m), m the row maximum."""
    x = np.asarray(z, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    y: Array = x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
    return y


def _check_scored(logits: npt.ArrayLike, ids: Sequence[int] | npt.ArrayLike, where: str) -> tuple[Array, npt.NDArray[np.int64]]:
    z = np.asarray(logits, dtype=np.float64)
    x = np.asarray(ids, dtype=np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != x.size:
        raise ShapeError(f"logits of shape {z.shape}, but expected (T, n_vocab) with T={x.size} as the ids [{where}]")
    if x.size and (x.min() < 0 or x.max() >= z.shape[1]):
        t = int(np.flatnonzero((x < 0) | (x >= z.shape[1]))[0])
        raise TokenError(f"token id at position {t}={int(x[t])}, but expected 0 ≤ id < n_vocab={z.shape[1]} [{where}]")
    if not np.all(np.isfinite(z)):
        raise TokenError(f"logits with inf or NaN, but expected finite logits [{where}]")
    return z, x


def token_log_probs(logits: npt.ArrayLike, ids: Sequence[int] | npt.ArrayLike) -> Array:
    """ℓ_t = log softmax(z_t)[x_{t+1}] for t = 1 … T−1: a vector of T − 1 (empty when T ≤ 1)."""
    z, x = _check_scored(logits, ids, "token log-probabilities")
    if x.size < 2:
        return np.zeros(0)
    return np.array([log_softmax(z[t])[x[t + 1]] for t in range(x.size - 1)])


def log_likelihood(logits: npt.ArrayLike, ids: Sequence[int] | npt.ArrayLike) -> float:
    """LL(x) = Σ_{t=1}^{T−1} log softmax(z_t)[x_{t+1}], in nats (0 when T ≤ 1)."""
    return float(math.fsum(token_log_probs(logits, ids)))


def cross_entropy(logits: npt.ArrayLike, ids: Sequence[int] | npt.ArrayLike) -> float:
    """H(x) = −LL(x) / (T − 1), nats per predicted token; T < 2 predicts nothing and is refused."""
    n = np.asarray(ids).size
    if n < 2:
        raise TokenError(f"sequence length T={n}, but expected T ≥ 2 [cross-entropy]; with fewer tokens nothing is predicted")
    return -log_likelihood(logits, ids) / (n - 1)


def greedy(z: npt.ArrayLike) -> int:
    """min{v : z_v = max z}: the lowest id among the maxima."""
    row = _row(z, "greedy")
    return int(np.flatnonzero(row == row.max())[0])


def top_k_ids(z: npt.ArrayLike, k: int | None) -> npt.NDArray[np.int64]:
    """K: the first k ids by (larger z first, lower id first), returned in increasing id order."""
    row = _row(z, "top-k")
    if k is None or k >= row.size:
        return np.arange(row.size, dtype=np.int64)
    order = np.lexsort((np.arange(row.size), -row))  # primary −z, then the id
    return np.sort(order[:k]).astype(np.int64)


def sample(z: npt.ArrayLike, u: float, temperature: float = 1.0, top_k: int | None = None) -> int:
    """Steps 1–5 of the sampling definition for one draw u ∈ [0, 1)."""
    check_rule(temperature, top_k)
    if not 0.0 <= u < 1.0:
        raise ConfigError(f"u={u}, but expected 0 ≤ u < 1 [sampling]")
    row = _row(z, "sampling")
    K = top_k_ids(row, top_k)
    m = row.max()
    w = np.exp((row[K] - m) / temperature)  # w_j = exp((z_{v_j} − m)/τ), v_j in increasing id order
    C = np.cumsum(w)  # C_j = w_1 + … + w_j, left to right
    W = C[-1]
    j = int(np.searchsorted(C, u * W, side="right"))  # first j with u·W < C_j
    if j >= K.size:
        j = int(np.flatnonzero(w > 0)[-1])
    return int(K[j])


def check_rule(temperature: float, top_k: int | None) -> None:
    """τ ≥ 0 and finite; k a whole number ≥ 1 or None."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"temperature={temperature!r}, but expected a finite number ≥ 0 [sampling]; 0 means greedy")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ConfigError(f"top-k={top_k}, but expected a whole number ≥ 1, or none for all ids [sampling]")


@dataclass(frozen=True)
class Sampler:
    """A next-token rule: greedy when ``temperature`` is 0, else sampling with ``top_k`` and
    the draws of ``np.random.default_rng(seed)``."""

    temperature: float = 0.0
    top_k: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_rule(self.temperature, self.top_k)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed={self.seed!r}, but expected a whole number 0 ≤ seed < 2^63 [Sampler]; numpy's generators take no negative seeds")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def rng(self) -> np.random.Generator:
        """A fresh generator for one sequence: the same seed gives the same draws."""
        return np.random.default_rng(self.seed)

    def next_token(self, z: npt.ArrayLike, rng: np.random.Generator) -> int:
        """choose(z): greedy draws nothing; sampling draws exactly one u from ``rng``."""
        if self.greedy:
            return greedy(z)
        return sample(z, float(rng.random()), self.temperature, self.top_k)


def check_sampler(sampler: object, where: str) -> None:
    """``sampler`` is a :class:`Sampler` (e.g. ``Sampler()`` for greedy decoding)."""
    if not isinstance(sampler, Sampler):
        raise ConfigError(f"sampler of type {type(sampler).__name__}, but expected a spec.lm.Sampler [{where}]; "
                          "Sampler() is greedy, Sampler(temperature, top_k, seed) samples")


def check_generation(prompt_length: int, max_new_tokens: int, n_ctx: int, where: str) -> None:
    """A prompt of P ≥ 1 tokens and n ≥ 0 steps with P + n ≤ n_ctx; anything else is refused."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ConfigError(f"max new tokens={max_new_tokens}, but expected a whole number ≥ 0 [{where}]")
    if prompt_length < 1:
        raise TokenError(
            f"prompt length={prompt_length}, but expected at least 1 token [{where}]; the first token has no logits "
            "to be predicted from — start with a token such as <|endoftext|>"
        )
    if prompt_length + max_new_tokens > n_ctx:
        raise TokenError(
            f"prompt length + max new tokens={prompt_length} + {max_new_tokens}, but expected ≤ n_ctx={n_ctx} [{where}]; "
            "the model has no positions beyond n_ctx: shorten the prompt or generate fewer tokens"
        )
