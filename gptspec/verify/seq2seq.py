"""``gptspec check`` on an encoder–decoder: the same op components as a decoder-only model, and the
whole model on padded batches of (source, target) pairs — run whole, and prefilled then decoded
one target token at a time (the encoder once, the cross-attention keys and values kept, the
decoder's KV cache) — each real target row judged against the reference on the row's real source
and target, under the tolerance policy (docs/tolerances.md).

The model components drive fast/ (the implementation ``check`` verifies) through its context
inputs; the implementation-under-test interface (gptspec/verify/implementation.py) has no
source sequence yet, so another implementation is verified op by op only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
from gptspec.verify.compare import Comparison, compare
from gptspec.verify.engine import Component, Outcome, Result, Target, components, run_component
from gptspec.verify.implementation import Implementation
from gptspec.verify.strategies import BatchExample
from gptspec.verify.tolerance import DEFAULT, Policy, longest_reduction, storer
from spec.graph import Architecture
from spec.seq2seq import SOURCE, TARGET


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


def _reference(arch: Architecture, theta: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray, dtype: np.dtype[Any] | None) -> np.ndarray:
    store = None if dtype is None else storer(dtype, seed=len(x) + 7 * len(y))
    logits: np.ndarray = reference.evaluate(arch, theta, {SOURCE: x, TARGET: y}, store)["logits"]
    return logits


def judge(
    got: np.ndarray, arch: Architecture, theta: Mapping[str, np.ndarray], example: PairExample, dtype: np.dtype[Any], policy: Policy,
) -> Outcome:
    """Every real target row of ``got`` (B, T, n_vocab) against the reference on the row's real
    source and target; padded rows must be 0."""
    n_vocab = arch.dim("n_vocab")
    src, src_valid = example.source.arrays(n_vocab)
    tgt, tgt_valid = example.target.arrays(n_vocab)
    worst: Outcome | None = None
    for b in range(tgt.shape[0]):
        x, y = src[b, src_valid[b]], tgt[b, tgt_valid[b]]
        want = _reference(arch, theta, x, y, None)
        e_store = compare(_reference(arch, theta, x, y, dtype), want).max_abs
        comparison = compare(got[b, tgt_valid[b]], want)
        where = np.flatnonzero(tgt_valid[b])
        comparison = Comparison(
            comparison.max_abs, comparison.scale,
            (b, int(where[comparison.where[0]]), comparison.where[1]) if comparison.where else (b,), comparison.got, comparison.want,
        )
        outcome = Outcome(comparison, policy.budget(dtype, e_store, comparison.scale, reduction=longest_reduction(arch)), e_store)
        if worst is None or outcome.ratio > worst.ratio:
            worst = outcome
        padded = got[b, ~tgt_valid[b]]
        if padded.size and not np.all(padded == 0):
            size = float(np.max(np.abs(padded)))
            return Outcome(Comparison(size, 0.0, (b,), size, 0.0), 0.0, 0.0, "a padded row is not 0")
    return worst if worst is not None else Outcome(Comparison(0.0, 0.0, (), 0.0, 0.0), 0.0, 0.0)


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
    """The whole encoder–decoder on padded batches of pairs: forward, and prefill then decode."""
    arch, theta = target.arch, target.theta
    length = min(arch.dim("n_ctx"), max_len)
    dtype = np.dtype(impl.dtype)
    snippet = (f"{target.load_snippet}\nimport numpy as np\nfrom gptspec.verify.seq2seq import PairExample, judge, run_fast\n"
               "from gptspec.verify.strategies import BatchExample\nfrom gptspec.verify.tolerance import DEFAULT\n")

    import fast

    program = fast.compile(arch, theta, dtype, block=4)

    def check(decode: bool) -> Callable[[PairExample], Outcome]:
        def run(example: PairExample) -> Outcome:
            return judge(run_fast(arch, theta, example, dtype, decode, program), arch, theta, example, dtype, policy)

        return run

    def reproduce(decode: bool) -> Callable[[PairExample], str]:
        def text(ex: PairExample) -> str:
            return (snippet + f"ex = {ex!r}\nprint(judge(run_fast(target.arch, target.theta, ex, np.dtype({dtype.name!r}), {decode}), "
                    f"target.arch, target.theta, ex, np.dtype({dtype.name!r}), DEFAULT))")

        return text

    for decode, name in ((False, f"model: padded (source, target) pairs (B ≤ 3, S, T ≤ {length}, left/right padding)"),
                         (True, "model: prefill then decode one target token at a time (encoder once, cross-attention K/V kept, KV cache)")):
        yield Component(name, pair_examples(3, length), check(decode), reproduce(decode))


def verify_seq2seq(
    target: Target, impl: Implementation, impl_snippet: str, *, examples: int = 25, seed: int = 0, policy: Policy = DEFAULT,
    on_result: Callable[[Result], None] | None = None, on_start: Callable[[str], None] | None = None,
    shard: tuple[int, int] = (1, 1),
) -> list[Result]:
    """:func:`gptspec.verify.engine.verify` for an encoder–decoder: the engine's op components,
    then :func:`pair_components` in place of its single-sequence model components (of ``shard``
    only, as there)."""
    from gptspec.verify.shard import check_shard, select

    chosen = [c for c in components(target, impl, impl_snippet, policy) if not c.name.startswith("model:")]
    chosen += list(pair_components(target, impl, policy))
    results = []
    for component in select(chosen, check_shard(shard, "--shard")):
        if on_start is not None:
            on_start(component.name)
        result = run_component(component, examples, seed)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
