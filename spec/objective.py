"""The training objective: next-token cross-entropy over a batch, as a spec object.

A batch is B sequences; sequence b has ids x_b ∈ V^{T_b}, labels λ_b ∈ (V ∪ {ι})^{T_b} (by default
the ids themselves; ι = ``ignore_index`` marks a position that is not scored: padding, a prompt)
and logits z_b = f_θ(x_b) ∈ ℝ^{T_b × n_vocab}. Row t of the logits predicts the *next* label
(the **label shift**, spec/lm.py):

    target      y_{bt} = λ_{b,t+1}                             t = 0 … T_b − 2 (the last row predicts nothing)
    counted     c_{bt} = [t ≤ T_b − 2 and y_{bt} ≠ ι]
    log-probs   log p_{bt} = log softmax(z_{bt})                (spec.lm.log_softmax, reused)
    normaliser  log Z_{bt} = log Σ_v exp z_{btv}
    smoothed    q_{btv} = (1 − ε) [v = y_{bt}] + ε / n_vocab   (label smoothing ε; Vaswani et al. use 0.1)
    per token   ℓ_{bt} = −Σ_v q_{btv} log p_{btv} + ζ (log Z_{bt})²   (z-loss ζ ≥ 0, PaLM: 10⁻⁴)

The loss is a weighted sum of the counted tokens' losses, L = Σ_b Σ_t w_{bt} ℓ_{bt}, where the
**reduction** is a stated choice that fixes the weights:

* ``"mean"`` — mean over every counted token of the whole batch: w_{bt} = c_{bt} / N,
  N = Σ_b Σ_t c_{bt} (PyTorch's ``reduction="mean"`` on the flattened batch; N ≥ 1 required);
* ``"sequence"`` — mean over sequences of each sequence's token mean:
  w_{bt} = c_{bt} / (B · N_b), N_b = Σ_t c_{bt} (every sequence must count ≥ 1 token);
* ``"sum"`` — w_{bt} = c_{bt}.

**Micro-batch accumulation.** Split the batch into k micro-batches (disjoint sets of whole
sequences) and let D be the *whole batch's* denominator (N, B or 1). Each micro-batch contributes
L_j = Σ_{b ∈ j} s_b / D, with s_b = Σ_t c_{bt} ℓ_{bt} (mean, sum) or Σ_t c_{bt} ℓ_{bt} / N_b
(sequence); then Σ_j L_j = L and, because the weights do not depend on θ, Σ_j ∇_θ L_j = ∇_θ L
(theorem ``accumulation_equals_full_batch``). The mean of the micro-batches' own means,
(1/k) Σ_j (Σ_{b∈j} s_b / N_j), is *not* the batch's loss when the micro-batches count different
numbers of tokens (theorem ``per_micro_batch_mean_is_not_the_batch_mean``; the gradient-
accumulation bug of many training loops).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import sympy

from spec.errors import ConfigError, ShapeError, TokenError
from spec.lm import log_softmax

Array = npt.NDArray[np.float64]
Reduction = Literal["mean", "sequence", "sum"]
REDUCTIONS: tuple[str, ...] = ("mean", "sequence", "sum")


@dataclass(frozen=True)
class Objective:
    """Next-token cross-entropy with an ignore index, label smoothing ε, z-loss ζ and a reduction
    (module docstring). ``Objective()`` is the plain token-mean cross-entropy of Hugging Face's
    causal LMs (labels = ids, ι = −100)."""

    kind: ClassVar[str] = "next_token_cross_entropy"
    title: ClassVar[str] = "next-token cross-entropy"
    latex: ClassVar[str] = (
        r"y_{bt} = \lambda_{b,t+1} \qquad c_{bt} = [t \le T_b - 2]\,[y_{bt} \ne \iota] \qquad "
        r"q_{btv} = (1 - \varepsilon)[v = y_{bt}] + \varepsilon / n_\mathrm{vocab} \qquad "
        r"\ell_{bt} = -\sum_v q_{btv} \log \operatorname{softmax}(z_{bt})_v + \zeta \,(\log Z_{bt})^2 \qquad "
        r"L = \sum_{b,t} w_{bt}\, \ell_{bt},\ w_{bt} = \begin{cases} c_{bt} / N & \text{mean} \\ "
        r"c_{bt} / (B N_b) & \text{sequence} \\ c_{bt} & \text{sum} \end{cases}"
    )
    citation: ClassVar[str] = (
        "Vaswani et al. 2017 §5.4 (docs/sources.md §5): label smoothing ε_ls = 0.1, the target "
        "(1 − ε) one-hot + ε uniform over the vocabulary (Szegedy et al. 2016, as PyTorch's "
        "label_smoothing). z-loss: Chowdhery et al. 2022 (PaLM) §5, ζ log² Z with ζ = 10⁻⁴. The "
        "label shift and ι = −100 are Hugging Face's causal-LM convention."
    )

    ignore_index: int = -100
    label_smoothing: float = 0.0
    z_loss: float = 0.0
    reduction: Reduction = "mean"

    def __post_init__(self) -> None:
        where = "Objective"
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, (int, np.integer)) or self.ignore_index >= 0:
            raise ConfigError(
                f"ignore_index={self.ignore_index!r}, but expected a negative whole number [{where}]; "
                "a non-negative one is a token id (Hugging Face uses −100)"
            )
        for name, value, high in (("label_smoothing", self.label_smoothing, 1.0), ("z_loss", self.z_loss, math.inf)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value <= high) or math.isnan(value):
                raise ConfigError(f"{name}={value!r}, but expected a number in [0, {high}] [{where}]")
        if not math.isfinite(self.z_loss):
            raise ConfigError(f"z_loss={self.z_loss!r}, but expected a finite number ≥ 0 [{where}]; PaLM uses 1e-4")
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"reduction={self.reduction!r}, but expected one of {list(REDUCTIONS)} [{where}]")

    # -- the formula, once: one token's loss ---------------------------------------------------

    def token_definition(self, z: sympy.IndexedBase, y: int | sympy.Expr, n_vocab: int) -> sympy.Expr:
        """ℓ of one counted row in index notation: z an IndexedBase of n_vocab logits, y the
        target; log Z = log Σ_v exp z_v, log p_v = z_v − log Z."""
        eps, zeta = sympy.nsimplify(self.label_smoothing), sympy.nsimplify(self.z_loss)
        v = sympy.Dummy("v", integer=True, nonnegative=True)
        log_Z = sympy.log(sympy.Sum(sympy.exp(z[v]), (v, 0, n_vocab - 1)))
        smoothed = sympy.Sum(z[v] - log_Z, (v, 0, n_vocab - 1)) / n_vocab
        return -(1 - eps) * (z[y] - log_Z) - eps * smoothed + zeta * log_Z**2

    def token_losses(self, logits: npt.ArrayLike, labels: Sequence[int] | npt.ArrayLike) -> Array:
        """ℓ_t for every row t of one sequence (0 where c_t = 0), in float64, from the definition's
        terms: log p = spec.lm.log_softmax(z), log Z = z_v − log p_v at the row's maximum v."""
        z, y, counted = self.targets(logits, labels, "objective token losses")
        T, n_vocab = z.shape
        losses = np.zeros(T)
        for t in np.flatnonzero(counted):
            log_p = log_softmax(z[t])  # log p_tv
            top = int(np.argmax(z[t]))
            log_Z = z[t, top] - log_p[top]  # log Z_t = z_tv − log p_tv (any v; the maximum keeps it exact)
            cross = -(1.0 - self.label_smoothing) * log_p[y[t]] - self.label_smoothing * math.fsum(log_p) / n_vocab
            losses[t] = cross + self.z_loss * log_Z**2  # ℓ_t
        return losses

    # -- the reduction and the accumulation rule ----------------------------------------------

    def counted(self, labels: Sequence[int] | npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """c_t for one sequence's labels: [t ≤ T − 2 and λ_{t+1} ≠ ι]."""
        lam = self._labels(labels, "objective counted")
        c = np.zeros(lam.size, dtype=bool)
        c[: max(lam.size - 1, 0)] = lam[1:] != self.ignore_index
        return c

    def denominator(self, batch_labels: Sequence[Sequence[int] | npt.ArrayLike]) -> int:
        """D of the whole batch: N (mean), B (sequence) or 1 (sum). Refuses a batch the reduction
        does not define (no counted token; a sequence with none under ``"sequence"``)."""
        where = f"objective denominator ({self.reduction})"
        counts = [int(self.counted(lam).sum()) for lam in batch_labels]
        if not counts:
            raise ShapeError(f"batch of 0 sequences, but expected at least 1 [{where}]")
        if self.reduction == "sum":
            return 1
        if self.reduction == "sequence":
            empty = [b for b, n in enumerate(counts) if n == 0]
            if empty:
                raise TokenError(
                    f"sequence {empty[0]} counts 0 tokens, but expected ≥ 1 under reduction='sequence' [{where}]; "
                    "its token mean is undefined: drop the sequence or use reduction='mean'"
                )
            return len(counts)
        if sum(counts) == 0:
            raise TokenError(f"counted tokens N=0, but expected N ≥ 1 [{where}]; every label is ignored or T ≤ 1")
        return sum(counts)

    def exact_weights(self, labels: Sequence[int] | npt.ArrayLike, denominator: int) -> tuple[sympy.Rational, ...]:
        """w_t of one sequence of a batch whose denominator is D, exactly: c_t / D (mean, sum) or
        c_t / (N_b D) (sequence) — the coefficient of ℓ_t in L. The definition of the reduction."""
        if isinstance(denominator, bool) or not isinstance(denominator, (int, np.integer)) or denominator < 1:
            raise ConfigError(f"denominator={denominator!r}, but expected a whole number ≥ 1 [objective weights]; "
                              "use Objective.denominator(batch labels)")
        c = [int(flag) for flag in self.counted(labels)]
        if self.reduction == "sequence":
            n_b = sum(c)
            if n_b == 0:
                raise TokenError("sequence counts 0 tokens, but expected ≥ 1 under reduction='sequence' [objective weights]")
            return tuple(sympy.Rational(c_t, n_b * int(denominator)) for c_t in c)
        return tuple(sympy.Rational(c_t, int(denominator)) for c_t in c)

    def weights(self, labels: Sequence[int] | npt.ArrayLike, denominator: int) -> Array:
        """:meth:`exact_weights` rounded to float64."""
        return np.array([float(w) for w in self.exact_weights(labels, denominator)], dtype=np.float64)

    def micro_batch_expression(
        self,
        token_losses: Sequence[Sequence[sympy.Expr]],
        labels: Sequence[Sequence[int] | npt.ArrayLike],
        denominator: int,
    ) -> sympy.Expr:
        """L_j = Σ_{b ∈ j} Σ_t w_bt ℓ_bt with symbolic token losses (proofs/theorems/objective.py):
        the same weighted sum :meth:`micro_batch_loss` evaluates in float64."""
        return sympy.Add(*(w * l for losses, lam in zip(token_losses, labels) for w, l in zip(self.exact_weights(lam, denominator), losses)))

    def micro_batch_loss(
        self,
        logits: Sequence[npt.ArrayLike],
        labels: Sequence[Sequence[int] | npt.ArrayLike],
        denominator: int,
    ) -> float:
        """L_j = Σ_{b ∈ j} Σ_t w_bt ℓ_bt for the sequences of one micro-batch, with D the whole
        batch's :meth:`denominator`: summed over the micro-batches, this is :meth:`loss`."""
        if len(logits) != len(labels):
            raise ShapeError(f"{len(logits)} logits arrays, but expected one per labels sequence ({len(labels)}) [objective]")
        terms = [float(self.weights(lam, denominator) @ self.token_losses(z, lam)) for z, lam in zip(logits, labels)]
        return math.fsum(terms)

    def loss(self, logits: Sequence[npt.ArrayLike], labels: Sequence[Sequence[int] | npt.ArrayLike]) -> float:
        """L of the whole batch: one micro-batch that is the batch."""
        return self.micro_batch_loss(logits, labels, self.denominator(labels))

    # -- checks ---------------------------------------------------------------------------------

    def _labels(self, labels: Sequence[int] | npt.ArrayLike, where: str) -> npt.NDArray[np.int64]:
        lam = np.asarray(labels)
        if lam.ndim != 1 or (lam.size and not np.issubdtype(lam.dtype, np.integer)):
            raise ShapeError(f"labels of shape {lam.shape} and dtype {lam.dtype}, but expected a sequence of whole numbers [{where}]")
        return lam.astype(np.int64)

    def targets(
        self, logits: npt.ArrayLike, labels: Sequence[int] | npt.ArrayLike, where: str
    ) -> tuple[Array, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The logits (T, n_vocab), the targets y_t (−1 where uncounted) and c_t, checked."""
        z = np.asarray(logits, dtype=np.float64)
        lam = self._labels(labels, where)
        if z.ndim != 2 or z.shape[0] != lam.size:
            raise ShapeError(f"logits of shape {z.shape}, but expected (T, n_vocab) with T={lam.size} as the labels [{where}]")
        if not np.all(np.isfinite(z)):
            raise TokenError(f"logits with inf or NaN, but expected finite logits [{where}]")
        counted = self.counted(lam)
        y = np.full(lam.size, -1, dtype=np.int64)
        if lam.size:
            y[:-1] = np.where(counted[:-1], lam[1:], -1)  # y_t = λ_{t+1}: the label shift
        bad = counted & ((y < 0) | (y >= z.shape[1]))
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise TokenError(
                f"label at position {t + 1}={int(y[t])}, but expected 0 ≤ label < n_vocab={z.shape[1]} or "
                f"ignore_index={self.ignore_index} [{where}]"
            )
        return z, y, counted
