"""The verification engine: draw examples, run an implementation and the reference, judge the
error against the tolerance policy, shrink a failure to a minimal counterexample, report.

The check functions (:func:`check_op`, :func:`check_model`, :func:`check_decode`) are plain
functions of one example, used both by pytest's property tests and by :func:`verify`, which
drives them with hypothesis for ``gptspec check``. They are ``gptspec verify``'s checks
(gptspec/verify/cases.py) under ``check``'s settings — the ``zero`` empty-row convention, the
``DEFAULT`` policy, θ given — with its one verdict (:class:`Verdict`, also named ``Outcome``),
its one row judge and its one reference cache (gptspec/verify/oracle.py, keyed by content);
:func:`run_components` is the one component loop of decoder-only, encoder–decoder
(gptspec/verify/seq2seq.py) and ``--all-ops`` (gptspec/verify/coverage.py) runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

import reference
from gptspec.verify.cases import Batch, Context, Verdict, check_context, decode_verdict, model_verdict
from gptspec.verify.compare import Comparison, compare
from gptspec.verify.component import Component, Result, Target, run_component, run_components
from gptspec.verify.conventions import EmptyRows, empty_softmax_rows
from gptspec.verify.implementation import Implementation
from gptspec.verify.seq2seq import pair_components
from gptspec.verify.strategies import (
    BatchExample,
    OpExample,
    batch_examples,
    describe,
    distinct_ops,
    op_arrays,
    op_examples,
    sizes_of,
)
from gptspec.verify.tolerance import DEFAULT, Policy, dtype_name, rounded, storer, unit_roundoff
from spec.graph import Architecture
from spec.op import Primitive
from spec.seq2seq import is_seq2seq
from spec.theta import preset_theta

Outcome = Verdict
"""One example's verdict: the one verdict type of ``check`` and ``verify`` (gptspec/verify/cases.py)."""


def check_op(
    impl: Implementation, op: Primitive, example: OpExample, policy: Policy = DEFAULT, empty_rows: EmptyRows = "zero"
) -> Outcome | None:
    """``impl.op`` against the reference on one example (None if ``impl`` has no such op). A
    ``masked_softmax`` row with no allowed key is judged by the ``empty_rows`` convention
    (docs/verify.md); every other entry against the reference."""
    op = op.bind(sizes_of(op, example))  # dims no array determines (a one-hot's n_vocab) are the example's
    inputs, params = op_arrays(op, example)
    want = reference.run_op(op, inputs, params)
    D = dtype_name(impl.dtype)
    store = storer(D, example.seed)

    def stored(a: np.ndarray) -> np.ndarray:
        return a if a.dtype.kind in "iub" else store(a)

    in_D = {k: stored(v) for k, v in inputs.items()}
    p_D = {k: stored(v) for k, v in params.items()}
    e_store = compare(stored(reference.run_op(op, in_D, p_D)), want).max_abs
    cast = rounded(D) if D == "bfloat16" else (lambda a: a.astype(D))
    as_D = {k: (v if v.dtype.kind in "iub" else cast(v)) for k, v in inputs.items()}
    got = impl.op(op, as_D, {k: cast(v) for k, v in params.items()})
    if got is None:
        return None
    got = np.asarray(got, dtype=np.float64)
    mask = getattr(op, "mask", None)
    if op.kind == "masked_softmax" and mask is not None and got.shape == want.shape and got.ndim == 2:
        t, s = np.arange(got.shape[0])[:, None], np.arange(got.shape[1])[None, :]
        empty = np.asarray(~np.broadcast_to(np.asarray(mask.allowed_array(t, s), dtype=bool), got.shape).any(axis=-1))
        if empty.any():
            violation = empty_softmax_rows(got[empty], empty_rows, unit_roundoff(D))
            if violation is not None:
                magnitude, note = violation
                row = int(np.flatnonzero(empty)[0])
                return Verdict(Comparison(magnitude, 0.0, (row,), magnitude, 0.0), 0.0, 0.0, note)
            got = np.where(empty[:, None], want, got)  # judged above by the convention
    comparison = compare(got, want)
    return Verdict(comparison, policy.budget(D, e_store, comparison.scale), e_store)


def _batch(example: BatchExample | Batch, arch: Architecture) -> Batch:
    return example if isinstance(example, Batch) else example.batch(arch.dim("n_vocab"))


def check_model(
    impl: Implementation, arch: Architecture, theta: Mapping[str, np.ndarray], example: BatchExample | Batch,
    policy: Policy = DEFAULT, ctx: Context | None = None,
) -> Verdict:
    """``impl.model`` on a padded batch against the reference on each row's real tokens; padded
    rows must be 0 (verify's padded-batch check under :func:`check_context`)."""
    ctx = ctx or check_context(impl.dtype, arch, theta, policy)
    return model_verdict(impl, ctx, _batch(example, arch), theta, ctx.theta_key)


def check_decode(
    impl: Implementation, arch: Architecture, theta: Mapping[str, np.ndarray], example: BatchExample | Batch,
    policy: Policy = DEFAULT, ctx: Context | None = None,
) -> Verdict | None:
    """Prefill half of the positions, decode the rest one at a time (KV cache), and judge the
    logits against the reference like :func:`check_model`. None if ``impl`` cannot decode."""
    if getattr(impl, "decode", None) is None:
        return None
    ctx = ctx or check_context(impl.dtype, arch, theta, policy)
    return decode_verdict(impl, ctx, _batch(example, arch), theta, ctx.theta_key)


def preset_target(name: str, seed: int = 0) -> Target:
    """A preset with the documented random θ of a preset and a seed (``spec.theta.preset_theta``),
    as ``gptspec check PRESET`` and ``gptspec forward PRESET`` use."""
    from spec import build, preset

    arch = build(preset(name).config)
    theta = preset_theta(arch, seed)
    return Target(
        f"preset {name} (random θ, seed {seed})", arch, theta,
        f"from gptspec.verify.engine import preset_target\ntarget = preset_target({name!r}, seed={seed})",
    )


def op_script(
    impl_snippet: str, op: Primitive, example: OpExample, policy: Policy = DEFAULT, empty_rows: EmptyRows = "zero", exit_status: bool = False,
) -> str:
    """Python that reruns one op's check on one example (a failure's reproduction, for ``check``,
    ``--all-ops`` and ``verify`` alike): ``impl_snippet`` defines ``impl``; the policy and the
    convention are the run's. ``exit_status``: the script exits 1 when the check fails."""
    options = (f", policy={policy!r}" if policy != DEFAULT else "") + (f", empty_rows={empty_rows!r}" if empty_rows != "zero" else "")
    head = (
        "import numpy as np\nfrom sympy import sqrt, Rational, Integer\nfrom spec.dims import T, S\n"
        "from spec.masks import *\nfrom spec.ops import *\n"
        f"{impl_snippet}\nfrom gptspec.verify.engine import check_op\nfrom gptspec.verify.strategies import OpExample\n"
        + ("from gptspec.verify.tolerance import Policy\n" if policy != DEFAULT else "")
        + f"op = {op!r}\n"
    )
    if not exit_status:
        return head + f"print(check_op(impl, op, {example!r}{options}))"
    return head + f"outcome = check_op(impl, op, {example!r}{options})\nprint(outcome)\nraise SystemExit(0 if outcome is None or outcome.passed else 1)"


def components(target: Target, impl: Implementation, impl_snippet: str, policy: Policy = DEFAULT, max_len: int | None = None) -> Iterator[Component]:
    """Every op the architecture uses, then :func:`model_components`: the whole model on padded
    batches and with KV-cache decoding (of (source, target) pairs for an encoder–decoder)."""
    arch = target.arch
    for label, (op, paths) in distinct_ops(arch).items():
        where = paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"

        def check(example: OpExample, op: Primitive = op) -> Verdict | None:
            return check_op(impl, op, example, policy)

        def snippet(example: OpExample, op: Primitive = op) -> str:
            return op_script(impl_snippet, op, example, policy)

        yield Component(f"{label}  [{where}]", op_examples(op), check, snippet)

    yield from model_components(target, impl, impl_snippet, policy, max_len)


def model_components(
    target: Target, impl: Implementation, impl_snippet: str, policy: Policy = DEFAULT, max_len: int | None = None,
) -> Iterator[Component]:
    """The whole model: padded batches and KV-cache decoding — of (source, target) pairs for an
    encoder–decoder (gptspec/verify/seq2seq.py)."""
    arch, theta = target.arch, target.theta
    if is_seq2seq(arch):
        yield from pair_components(target, impl, policy)
        return
    length = min(arch.dim("n_ctx"), max_len or 8)
    ctx = check_context(impl.dtype, arch, theta, policy)  # θ hashed once: every example of the run shares its reference values
    model_snippet = f"{target.load_snippet}\n{impl_snippet}\nfrom gptspec.verify.strategies import BatchExample\n"

    def model(example: BatchExample) -> Verdict:
        return check_model(impl, arch, theta, example, policy, ctx)

    yield Component(
        f"model: padded batches (B ≤ 3, T ≤ {length}, left/right padding)", batch_examples(max_batch=3, max_len=length), model,
        lambda ex: model_snippet + f"from gptspec.verify.engine import check_model\nprint(check_model(impl, target.arch, target.theta, {ex!r}))",
    )

    def decode(example: BatchExample) -> Verdict | None:
        return check_decode(impl, arch, theta, example, policy, ctx)

    yield Component(
        "model: prefill then decode one token at a time (KV cache)", batch_examples(max_batch=3, max_len=length), decode,
        lambda ex: model_snippet + f"from gptspec.verify.engine import check_decode\nprint(check_decode(impl, target.arch, target.theta, {ex!r}))",
    )


def verify(
    target: Target, impl: Implementation, impl_snippet: str, *, examples: int = 25, seed: int = 0,
    policy: Policy = DEFAULT, on_result: Callable[[Result], None] | None = None,
    on_start: Callable[[str], None] | None = None, shard: tuple[int, int] = (1, 1),
) -> list[Result]:
    """Run every component of :func:`components` through :func:`run_components` (of ``shard``
    only)."""
    return run_components(components(target, impl, impl_snippet, policy), examples=examples, seed=seed, shard=shard,
                          on_result=on_result, on_start=on_start)


__all__ = [
    "Component", "Outcome", "Result", "Target", "Verdict", "check_context", "check_decode", "check_model", "check_op", "components",
    "describe", "model_components", "op_script", "preset_target", "run_component", "run_components", "verify",
]
