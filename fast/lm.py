"""Scoring and generation, batched (spec/lm.py, spec/seq2seq.py): a padded batch through a compiled
:class:`fast.program.Program`; generation prefills the prompts once and then decodes one token
per step with the KV cache. The next-token rule is the spec's own (:class:`spec.lm.Sampler`),
so with the same logits the tokens are the same as ``reference.lm.generate``'s, bit for bit.

An encoder–decoder takes its sources in ``context`` (``{"source": [x_0, x_1, …]}``, one per
sequence, right-padded together): the prefill runs the encoder once per batch and keeps the
cross-attention keys and values (fast/program.py, static steps); every decoding step then runs
the decoder alone, with its own KV cache."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from fast.program import Program
from spec.errors import ConfigError, TokenError
from spec.lm import Sampler, check_generation, check_sampler, log_softmax


def _batch(sequences: Sequence[Sequence[int]], left: bool) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Pad to a (B, T) batch, on the left (prompts: every row ends at the last column) or on
    the right (scoring)."""
    width = max((len(s) for s in sequences), default=0)
    ids = np.zeros((len(sequences), width), dtype=np.int64)
    valid = np.zeros((len(sequences), width), dtype=bool)
    for b, s in enumerate(sequences):
        columns = slice(width - len(s), width) if left else slice(0, len(s))
        ids[b, columns] = np.asarray(s, dtype=np.int64)
        valid[b, columns] = True
    return ids, valid


Context = Mapping[str, Sequence[Sequence[int]]]
"""Context sequences by input name, one per sequence of the batch (an encoder–decoder's sources)."""


def _context(program: Program, context: Context | None, rows: int) -> tuple[dict[str, npt.NDArray[np.int64]], dict[str, npt.NDArray[np.bool_]]]:
    """Each context input right-padded to a (B, S) batch, with its mask."""
    ids: dict[str, npt.NDArray[np.int64]] = {}
    valid: dict[str, npt.NDArray[np.bool_]] = {}
    for name, sequences in (context or {}).items():
        if len(sequences) != rows:
            raise ConfigError(f"{name}: {len(sequences)} sequences, but expected one per sequence of the batch = {rows} [fast]")
        ids[name], valid[name] = _batch(sequences, left=False)
    return ids, valid


def token_log_probs(program: Program, sequences: Sequence[Sequence[int]], context: Context | None = None) -> list[npt.NDArray[np.float64]]:
    """ℓ_t = log softmax(z_t)[x_{t+1}] for every sequence of the batch (one forward pass,
    right padding), log-softmax in float64 over the whole batch; an encoder–decoder's sources in
    ``context`` (log p(y | x) term by term)."""
    ids, valid = _batch(sequences, left=False)
    if ids.shape[1] == 0:
        return [np.zeros(0) for _ in sequences]
    c_ids, c_valid = _context(program, context, len(sequences))
    z = program.forward(ids, valid, context=c_ids or None, context_valid=c_valid or None).astype(np.float64)  # (B, T, n_vocab)
    lp = np.take_along_axis(log_softmax(z[:, :-1, :]), ids[:, 1:, None], axis=-1)[..., 0]  # log softmax(z_t)[x_{t+1}]
    return [lp[b, : max(len(s) - 1, 0)] for b, s in enumerate(sequences)]


def log_likelihood(program: Program, sequences: Sequence[Sequence[int]], context: Context | None = None) -> list[float]:
    """LL(x) (an encoder–decoder: log p(y | x)) for every sequence of the batch."""
    return [float(math.fsum(lp)) for lp in token_log_probs(program, sequences, context)]


def cross_entropy(program: Program, sequences: Sequence[Sequence[int]], context: Context | None = None) -> list[float]:
    """H(x) = −LL(x) / (T − 1) for every sequence of the batch (each needs T ≥ 2)."""
    for s in sequences:
        if len(s) < 2:
            raise TokenError(f"sequence length T={len(s)}, but expected T ≥ 2 [fast cross-entropy]; with fewer tokens nothing is predicted")
    return [-ll / (len(s) - 1) for ll, s in zip(log_likelihood(program, sequences, context), sequences)]


def generate(
    program: Program,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    sampler: Sampler | Sequence[Sampler] = Sampler(),
    stop: Collection[int] = (),
    context: Context | None = None,
) -> list[list[int]]:
    """The new tokens of every prompt. Prompts are left-padded and prefilled together; each
    step feeds every unfinished row its last token through the KV cache (a finished row is
    fed as padding). Row b follows ``sampler[b]`` (or the one sampler) with its own generator.
    An encoder–decoder's sources come in ``context``: encoded once, at the prefill."""
    if not isinstance(sampler, Sampler | Sequence):
        check_sampler(sampler, "fast generate")
    samplers = [sampler] * len(prompts) if isinstance(sampler, Sampler) else list(sampler)
    for s in samplers:
        check_sampler(s, "fast generate")
    if len(samplers) != len(prompts):
        raise ConfigError(f"samplers={len(samplers)}, but expected one per prompt={len(prompts)} [fast generate]")
    for p in prompts:
        check_generation(len(p), max_new_tokens, program.n_ctx, "fast generate")
    if not prompts or max_new_tokens == 0:
        return [[] for _ in prompts]
    rngs = [s.rng() for s in samplers]
    ids, valid = _batch(prompts, left=True)
    c_ids, c_valid = _context(program, context, len(prompts))
    logits, state = program.prefill(ids, valid, context=c_ids or None, context_valid=c_valid or None)
    last = logits[:, -1, :]  # left padding: column −1 is every row's last prompt token
    new: list[list[int]] = [[] for _ in prompts]
    running = np.ones(len(prompts), dtype=bool)
    for step in range(max_new_tokens):
        fed = np.zeros(len(prompts), dtype=np.int64)
        for b in np.flatnonzero(running):
            v = samplers[b].next_token(last[b], rngs[b])
            new[b].append(v)
            fed[b] = v
            if v in stop:
                running[b] = False
        if step == max_new_tokens - 1 or not running.any():
            break
        last = program.decode(state, fed, running.copy())[:, 0, :]  # (B, n_vocab): one new row each
    return new
