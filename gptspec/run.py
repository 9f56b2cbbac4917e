"""The implementations the command line runs a model with, behind one small interface.

``gptspec forward``, ``generate`` and ``score`` pick an implementation by name and call the
same three methods on it, so the reference (the literal float64 meaning) and fast/ (batched,
with a KV cache) are interchangeable and answer the same questions:

* :meth:`Runner.logits` — f_θ(ids) ∈ ℝ^{T × n_vocab} (T = 0 gives 0 rows);
* :meth:`Runner.token_log_probs` — log p(x_{t+1} | x_≤t), t = 1 … T − 1 (spec/lm.py);
* :meth:`Runner.generate` — new tokens after a prompt under a sampler (spec/lm.py).

An encoder–decoder (spec/seq2seq.py) is run the same way on its target ``ids``, with its source
sequence given once to :func:`runner` (the command line's ``--source``): logits f_θ(x, y),
log p(y_{t+1} | y_≤t, x) and generation of y given x.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from spec.errors import ConfigError
from spec.graph import Architecture
from spec.lm import Sampler
from spec.seq2seq import SOURCE, inputs
from spec.theta import check_architecture, token_array

IMPLEMENTATIONS = ("reference", "fast")
"""The implementations a command can run, by name."""


class Runner(Protocol):
    """One implementation of a model (an architecture and its θ)."""

    name: str

    def logits(self, ids: Sequence[int]) -> npt.NDArray[np.float64]: ...

    def token_log_probs(self, ids: Sequence[int]) -> npt.NDArray[np.float64]: ...

    def generate(self, prompt: Sequence[int], max_new_tokens: int, sampler: Sampler, stop: Collection[int]) -> list[int]: ...


class ReferenceRunner:
    """The literal reference: float64, the whole sequence at every step, no cache."""

    def __init__(self, arch: Architecture, theta: Mapping[str, np.ndarray], source: Sequence[int] | None = None) -> None:
        self.arch, self.theta = arch, theta
        self.name = "reference (float64)"
        inputs(arch, source, [], "reference")  # a source exactly when the architecture reads one
        self.source = None if source is None else list(source)

    def logits(self, ids: Sequence[int]) -> npt.NDArray[np.float64]:
        if self.source is not None:
            from reference.seq2seq import forward as seq2seq_forward

            return seq2seq_forward(self.arch, self.theta, self.source, ids)
        from reference import forward

        return forward(self.arch, self.theta, ids)

    def token_log_probs(self, ids: Sequence[int]) -> npt.NDArray[np.float64]:
        if self.source is not None:
            from reference.seq2seq import token_log_probs as seq2seq_log_probs

            return seq2seq_log_probs(self.arch, self.theta, self.source, ids)
        from reference.lm import token_log_probs

        return token_log_probs(self.arch, self.theta, ids)

    def generate(self, prompt: Sequence[int], max_new_tokens: int, sampler: Sampler, stop: Collection[int]) -> list[int]:
        if self.source is not None:
            from reference.seq2seq import generate as seq2seq_generate

            return seq2seq_generate(self.arch, self.theta, self.source, prompt, max_new_tokens, sampler, stop)
        from reference.lm import generate

        return generate(self.arch, self.theta, prompt, max_new_tokens, sampler, stop)


class FastRunner:
    """fast/: batched, fused attention, KV-cache generation, in float64 or float32."""

    def __init__(self, arch: Architecture, theta: Mapping[str, np.ndarray], dtype: str = "float64", source: Sequence[int] | None = None) -> None:
        import fast

        self.arch = arch
        given = inputs(arch, source, [], "fast")  # a source exactly when the architecture reads one
        self.context = None if source is None else {SOURCE: [list(int(v) for v in given[SOURCE])]}
        self.program = fast.compile(arch, theta, dtype)
        self.name = f"fast ({self.program.dtype.name})"

    def _ids(self, ids: Sequence[int], where: str) -> npt.NDArray[np.int64]:
        return token_array(ids, self.arch.dim("n_vocab"), self.arch.dim("n_ctx"), where)

    def logits(self, ids: Sequence[int]) -> npt.NDArray[np.float64]:
        tokens = self._ids(ids, "fast forward")
        if tokens.size == 0:
            return np.zeros((0, self.arch.dim("n_vocab")))
        context = None if self.context is None else {name: np.asarray(seqs, dtype=np.int64) for name, seqs in self.context.items()}
        out: npt.NDArray[Any] = self.program.forward(tokens[None, :], context=context)[0]
        return out.astype(np.float64)

    def token_log_probs(self, ids: Sequence[int]) -> npt.NDArray[np.float64]:
        from fast.lm import token_log_probs

        return token_log_probs(self.program, [list(self._ids(ids, "fast score"))], self.context)[0]

    def generate(self, prompt: Sequence[int], max_new_tokens: int, sampler: Sampler, stop: Collection[int]) -> list[int]:
        from fast.lm import generate

        return generate(self.program, [list(self._ids(prompt, "fast generate"))], max_new_tokens, sampler, stop, self.context)[0]


def runner(name: str, arch: Architecture, theta: Mapping[str, np.ndarray], dtype: str = "float64", source: Sequence[int] | None = None) -> Runner:
    """The implementation called ``name`` (:data:`IMPLEMENTATIONS`) of a model. The reference
    always computes in float64; ``dtype`` is fast/'s. ``source``: an encoder–decoder's source
    sequence (required for one, refused for a decoder-only model)."""
    check_architecture(arch, "gptspec.run.runner")
    if name == "reference":
        if dtype != "float64":
            raise ConfigError(f"--dtype {dtype}, but expected float64 for --impl reference [command line]; the reference is the float64 meaning")
        return ReferenceRunner(arch, theta, source)
    if name == "fast":
        return FastRunner(arch, theta, dtype, source)
    raise ConfigError(f"--impl {name!r}, but expected one of {list(IMPLEMENTATIONS)} [command line]")
