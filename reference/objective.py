"""The objective's derivative with respect to the logits, literally (spec/objective.py).

For a counted row t with weight w_t (the coefficient of ℓ_t in the batch loss L), p_t =
softmax(z_t), q_t the smoothed target and log Z_t the normaliser:

    ∂L/∂z_tv = w_t (p_tv − q_tv + 2 ζ log Z_t p_tv)

(−Σ_v q_v log p_v has derivative p − q because Σ_v q_v = 1; ζ log² Z has 2 ζ log Z · p.) Rows
that are not counted get 0. tests/test_objective.py checks it against the derivative of
``Objective.token_definition`` (sympy) and central finite differences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from spec.lm import log_softmax
from spec.objective import Objective

Array = npt.NDArray[np.float64]


def logits_vjp(objective: Objective, logits: npt.ArrayLike, labels: Sequence[int] | npt.ArrayLike, denominator: int) -> Array:
    """∂L/∂z for one sequence of a batch whose denominator is D (``Objective.denominator``)."""
    z, y, counted = objective.targets(logits, labels, "objective vjp")
    w = objective.weights(labels, denominator)  # w_t: c_t / D, or c_t / (N_b D)
    T, n_vocab = z.shape
    eps, zeta = objective.label_smoothing, objective.z_loss
    g = np.zeros_like(z)
    for t in np.flatnonzero(counted):
        log_p = log_softmax(z[t])  # log p_tv
        p = np.exp(log_p)  # p_tv
        q = np.full(n_vocab, eps / n_vocab)  # q_tv = ε / n_vocab …
        q[y[t]] += 1.0 - eps  # … + (1 − ε) [v = y_t]
        top = int(np.argmax(z[t]))
        log_Z = z[t, top] - log_p[top]  # log Z_t
        g[t] = w[t] * (p - q + 2.0 * zeta * log_Z * p)  # ∂L/∂z_tv = w_t (p_tv − q_tv + 2ζ log Z_t p_tv)
    return g
