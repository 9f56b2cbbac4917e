"""The check functions: plain functions of one example under ``check``'s settings —
:func:`check_op` (one op against the reference), :func:`check_model` (a padded batch),
:func:`check_decode` (KV-cache decoding) — and :func:`op_script`, the Python that reruns one op's
check. pytest's property tests call them, the verify run's op components
(gptspec/verify/session.py) call them, and the counterexample scripts ``check`` and ``verify``
print call them (through :mod:`gptspec.verify.engine`, which re-exports them). They sit below
the run so that the run and its entry points (gptspec/verify/engine.py) import them, never each
other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

import reference
from gptspec.verify.cases import Batch, Context, Verdict, check_context, decode_verdict, model_verdict
from gptspec.verify.compare import Comparison, compare
from gptspec.verify.conventions import EmptyRows, empty_softmax_rows
from gptspec.verify.implementation import Implementation
from gptspec.verify.strategies import BatchExample, OpExample, op_arrays, sizes_of
from gptspec.verify.tolerance import DEFAULT, Policy, dtype_name, rounded, storer, unit_roundoff
from spec.graph import Architecture
from spec.op import Primitive
from spec.seq2seq import SOURCE, vocabulary

Outcome = Verdict
"""One example's verdict: the one verdict type of ``check`` and ``verify`` (gptspec/verify/cases.py)."""


STORE_DRAWS = 8
"""How many random one-ulp directions :func:`check_op` stores a float64 op's values in; e_store is
the worst (rounding to a coarser dtype has one direction, so one draw)."""


def _stored_error(
    op: Primitive, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray], want: np.ndarray, store: Callable[[np.ndarray], np.ndarray],
) -> float:
    """The error of the reference itself with every real input, parameter and its result stored by ``store``."""

    def stored(a: np.ndarray) -> np.ndarray:
        return a if a.dtype.kind in "iub" else store(a)

    in_D = {k: stored(v) for k, v in inputs.items()}
    p_D = {k: stored(v) for k, v in params.items()}
    return compare(stored(reference.run_op(op, in_D, p_D)), want).max_abs


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
    # float64 stores by moving each value one ulp in a random direction; one draw of directions can
    # cancel inside the op (a dot product whose perturbations sum to less than an ulp) and miss its
    # conditioning, so the op alone — cheap — takes the worst of STORE_DRAWS draws (docs/tolerances.md)
    e_store = max(_stored_error(op, inputs, params, want, storer(D, example.seed + k)) for k in range(STORE_DRAWS if D == "float64" else 1))
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


def _sources(arch: Architecture, source: BatchExample | Batch | None) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    if source is None:
        return None
    n_source = vocabulary(arch, SOURCE)
    return {SOURCE: (source if isinstance(source, Batch) else source.batch(n_source)).arrays(n_source)}


def check_model(
    impl: Implementation, arch: Architecture, theta: Mapping[str, np.ndarray], example: BatchExample | Batch,
    policy: Policy = DEFAULT, ctx: Context | None = None, *, source: BatchExample | Batch | None = None, empty_rows: EmptyRows = "zero",
) -> Verdict:
    """``impl.model`` on a padded batch against the reference on each row's real tokens; padded
    rows by the ``empty_rows`` convention (``check``'s: ``zero``). ``source``: an
    encoder–decoder's source batch (as many rows)."""
    ctx = ctx or check_context(impl.dtype, arch, theta, policy, empty_rows=empty_rows)
    return model_verdict(impl, ctx, _batch(example, arch), theta, ctx.theta_key, _sources(arch, source))


def check_decode(
    impl: Implementation, arch: Architecture, theta: Mapping[str, np.ndarray], example: BatchExample | Batch,
    policy: Policy = DEFAULT, ctx: Context | None = None, *, source: BatchExample | Batch | None = None, empty_rows: EmptyRows = "zero",
) -> Verdict | None:
    """Prefill half of the positions, decode the rest one at a time (KV cache), and judge the
    logits against the reference like :func:`check_model`. None if ``impl`` cannot decode."""
    if getattr(impl, "decode", None) is None:
        return None
    ctx = ctx or check_context(impl.dtype, arch, theta, policy, empty_rows=empty_rows)
    return decode_verdict(impl, ctx, _batch(example, arch), theta, ctx.theta_key, _sources(arch, source))


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
