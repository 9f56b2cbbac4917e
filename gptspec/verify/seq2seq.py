"""``gptspec check`` on an encoder–decoder: the same op components as a decoder-only model, and the
whole model on padded batches of (source, target) pairs — run whole, and prefilled then decoded
one target token at a time (the encoder once, the cross-attention keys and values kept, the
decoder's KV cache) — each real target row judged against the reference on the row's real source
and target, under the tolerance policy (docs/tolerances.md).

The model components drive fast/ (the implementation ``check`` verifies) through its context
inputs; the implementation-under-test interface (gptspec/verify/implementation.py) has no
source sequence yet, so another implementation is verified op by op only. They are judged by the
one row judge (gptspec/verify/cases.py, the source given with each row) and run by the one
component loop (gptspec/verify/component.py), as a decoder's are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from gptspec.verify.cases import Context, Verdict, check_context, judge_rows
from gptspec.verify.component import Component, Target
from gptspec.verify.implementation import Implementation
from gptspec.verify.strategies import BatchExample
from gptspec.verify.tolerance import DEFAULT, Policy
from spec.graph import Architecture
from spec.seq2seq import SOURCE


@dataclass(frozen=True)
class PairExample:
    """A batch of (source, target) pairs: two batches of the same number of rows."""

    source: BatchExample
    target: BatchExample


def pair_examples(max_batch: int = 3, max_len: int = 6) -> st.SearchStrategy[PairExample]:
    """Batches of 1 … max_batch pairs, each sequence 1 … max_len long and padded left or right."""

    def of(rows: int) -> st.SearchStrategy[BatchExample]:
        return st.builds(
            BatchExample, lengths=st.tuples(*[st.integers(1, max_len)] * rows),
            left_padded=st.tuples(*[st.booleans()] * rows), seed=st.integers(0, 2**32 - 1),
        )

    return st.integers(1, max_batch).flatmap(lambda rows: st.builds(PairExample, of(rows), of(rows)))


def judge(
    got: np.ndarray, arch: Architecture, theta: Mapping[str, np.ndarray], example: PairExample, dtype: np.dtype[Any], policy: Policy,
    ctx: Context | None = None,
) -> Verdict:
    """Every real target row of ``got`` (B, T, n_vocab) against the reference on the row's real
    source and target; padded rows must be 0 — the one row judge (gptspec/verify/cases.py) with
    the source as the rows' context, under ``check``'s settings (engine.check_context)."""
    ctx = ctx or check_context(dtype, arch, theta, policy)
    n_vocab = arch.dim("n_vocab")
    tgt, tgt_valid = example.target.arrays(n_vocab)
    return judge_rows(ctx, theta, ctx.theta_key, got, tgt, tgt_valid, context={SOURCE: example.source.arrays(n_vocab)})


def run_fast(
    arch: Architecture, theta: Mapping[str, np.ndarray], example: PairExample, dtype: np.dtype[Any], decode: bool, program: Any = None,
) -> np.ndarray:
    """fast/'s logits for the batch: one forward, or a prefill of half the target then one token
    at a time (the source given once, at the prefill). ``program``: compiled already (block 4)."""
    import fast

    program = program if program is not None else fast.compile(arch, theta, dtype, block=4)
    n_vocab = arch.dim("n_vocab")
    src, src_valid = example.source.arrays(n_vocab)
    tgt, tgt_valid = example.target.arrays(n_vocab)
    context, context_valid = {SOURCE: src}, {SOURCE: src_valid}
    if not decode:
        out: np.ndarray = program.forward(tgt, tgt_valid, context=context, context_valid=context_valid)
        return out
    prefix = max(1, tgt.shape[1] // 2)
    first, state = program.prefill(tgt[:, :prefix], tgt_valid[:, :prefix], context=context, context_valid=context_valid)
    steps = [first] + [program.decode(state, tgt[:, t], tgt_valid[:, t]) for t in range(prefix, tgt.shape[1])]
    return np.concatenate(steps, axis=1)


def pair_components(target: Target, impl: Implementation, policy: Policy = DEFAULT, max_len: int = 6) -> Iterator[Component]:
    """The whole encoder–decoder on padded batches of pairs: forward, and prefill then decode
    (the model components :func:`gptspec.verify.engine.components` gives an encoder–decoder)."""
    arch, theta = target.arch, target.theta
    length = min(arch.dim("n_ctx"), max_len)
    dtype = np.dtype(impl.dtype)
    snippet = (f"{target.load_snippet}\nimport numpy as np\nfrom gptspec.verify.seq2seq import PairExample, judge, run_fast\n"
               "from gptspec.verify.strategies import BatchExample\nfrom gptspec.verify.tolerance import DEFAULT\n")

    import fast

    program = fast.compile(arch, theta, dtype, block=4)
    ctx = check_context(dtype, arch, theta, policy)  # θ hashed once for the run

    def check(decode: bool) -> Callable[[PairExample], Verdict]:
        def run(example: PairExample) -> Verdict:
            return judge(run_fast(arch, theta, example, dtype, decode, program), arch, theta, example, dtype, policy, ctx)

        return run

    def reproduce(decode: bool) -> Callable[[PairExample], str]:
        def text(ex: PairExample) -> str:
            return (snippet + f"ex = {ex!r}\nprint(judge(run_fast(target.arch, target.theta, ex, np.dtype({dtype.name!r}), {decode}), "
                    f"target.arch, target.theta, ex, np.dtype({dtype.name!r}), DEFAULT))")

        return text

    for decode, name in ((False, f"model: padded (source, target) pairs (B ≤ 3, S, T ≤ {length}, left/right padding)"),
                         (True, "model: prefill then decode one target token at a time (encoder once, cross-attention K/V kept, KV cache)")):
        yield Component(name, pair_examples(3, length), check(decode), reproduce(decode))


__all__ = ["PairExample", "judge", "pair_components", "pair_examples", "run_fast"]
