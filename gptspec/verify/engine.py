"""The verification engine: draw examples, run an implementation and the reference, judge the
error against the tolerance policy, shrink a failure to a minimal counterexample, report.

The check functions (:func:`check_op`, :func:`check_model`, :func:`check_decode`) are plain
functions of one example, used both by pytest's property tests and by :func:`verify`, which
drives them with hypothesis for ``gptspec check``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import reference
from gptspec.verify.compare import Comparison, compare
from gptspec.verify.conventions import EmptyRows, empty_softmax_rows
from gptspec.verify.implementation import Implementation
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
from gptspec.verify.tolerance import DEFAULT, Policy, dtype_name, longest_reduction, rounded, storer, unit_roundoff
from spec.graph import Architecture
from spec.op import Primitive
from spec.theta import preset_theta


@dataclass(frozen=True)
class Outcome:
    """One example's verdict."""

    comparison: Comparison
    budget: float
    e_store: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.comparison.max_abs <= self.budget

    @property
    def ratio(self) -> float:
        if self.comparison.max_abs == 0:
            return 0.0
        return self.comparison.max_abs / self.budget if self.budget > 0 else float("inf")


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
                return Outcome(Comparison(magnitude, 0.0, (row,), magnitude, 0.0), 0.0, 0.0, note)
            got = np.where(empty[:, None], want, got)  # judged above by the convention
    comparison = compare(got, want)
    return Outcome(comparison, policy.budget(D, e_store, comparison.scale), e_store)


@dataclass
class ReferenceCache:
    """Reference logits per (θ, sequence, stored dtype), reused across examples and checks."""

    values: dict[tuple[int, tuple[int, ...], str], np.ndarray] = field(default_factory=dict)

    def logits(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: np.ndarray, stored_in: np.dtype[Any] | None) -> np.ndarray:
        key = (id(theta), tuple(int(i) for i in ids), "" if stored_in is None else stored_in.name)
        if key not in self.values:
            store = None if stored_in is None else storer(stored_in, seed=len(ids))
            self.values[key] = reference.forward(arch, theta, ids, store=store)
        return self.values[key]


def _judge_rows(
    got: np.ndarray, arch: Architecture, theta: Mapping[str, np.ndarray], ids: np.ndarray, valid: np.ndarray,
    dtype: np.dtype[Any], policy: Policy, cache: ReferenceCache,
) -> Outcome:
    worst: Outcome | None = None
    for b in range(ids.shape[0]):
        real = ids[b, valid[b]]
        want = cache.logits(arch, theta, real, None)
        stored = cache.logits(arch, theta, real, dtype)
        comparison = compare(got[b, valid[b]], want)
        e_store = compare(stored, want).max_abs
        where = np.flatnonzero(valid[b])
        comparison = Comparison(
            comparison.max_abs, comparison.scale,
            (b, int(where[comparison.where[0]]), comparison.where[1]) if comparison.where else (b,),
            comparison.got, comparison.want,
        )
        outcome = Outcome(comparison, policy.budget(dtype, e_store, comparison.scale, reduction=longest_reduction(arch)), e_store)
        if worst is None or outcome.ratio > worst.ratio:
            worst = outcome
        padded = got[b, ~valid[b]]
        if padded.size and not np.all(padded == 0):
            bad = Comparison(float(np.max(np.abs(padded))), 0.0, (b,), float(np.max(np.abs(padded))), 0.0)
            return Outcome(bad, 0.0, 0.0, "a padded row is not 0")
    if worst is None:
        return Outcome(Comparison(0.0, 0.0, (), 0.0, 0.0), 0.0, 0.0)
    return worst


def check_model(
    impl: Implementation, arch: Architecture, theta: Mapping[str, np.ndarray], example: BatchExample,
    policy: Policy = DEFAULT, cache: ReferenceCache | None = None,
) -> Outcome:
    """``impl.model`` on a padded batch against the reference on each row's real tokens; padded
    rows must be 0."""
    ids, valid = example.arrays(arch.dim("n_vocab"))
    got = np.asarray(impl.model(arch, theta, ids, valid), dtype=np.float64)
    return _judge_rows(got, arch, theta, ids, valid, impl.dtype, policy, cache or ReferenceCache())


def check_decode(
    impl: Implementation, arch: Architecture, theta: Mapping[str, np.ndarray], example: BatchExample,
    policy: Policy = DEFAULT, cache: ReferenceCache | None = None,
) -> Outcome | None:
    """Prefill half of the positions, decode the rest one at a time (KV cache), and judge the
    logits against the reference like :func:`check_model`. None if ``impl`` cannot decode."""
    decode = getattr(impl, "decode", None)
    if decode is None:
        return None
    ids, valid = example.arrays(arch.dim("n_vocab"))
    prefix = max(1, ids.shape[1] // 2)
    got = np.asarray(decode(arch, theta, ids, valid, prefix), dtype=np.float64)
    return _judge_rows(got, arch, theta, ids, valid, impl.dtype, policy, cache or ReferenceCache())


# -- driving the checks with hypothesis ---------------------------------------------------


@dataclass
class Result:
    """One line of the report. ``status`` is ``passed``, ``failed``, ``not run`` (the
    implementation does not expose the component: ``skipped`` says why; never counted as
    passed) or ``error`` (the implementation raised or broke its calling convention:
    ``error`` says how). ``counterexample`` is Python that reproduces a failure;
    ``example`` describes the minimal failing example, ``localisation`` where the fault is."""

    component: str
    examples: int = 0
    max_error: float = 0.0
    budget: float = 0.0
    ratio: float = 0.0
    passed: bool = True
    seconds: float = 0.0
    detail: str = ""
    counterexample: str | None = None
    skipped: str | None = None
    error: str | None = None
    example: str | None = None
    localisation: dict[str, str] | None = None
    key: str = ""
    e_store: float = 0.0
    """e_store of the worst example (docs/tolerances.md), for model-level components."""

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.skipped is not None:
            return "not run"
        return "passed" if self.passed else "failed"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status
        return out


class Counterexample(Exception):
    def __init__(self, example: object, outcome: Outcome) -> None:
        super().__init__(f"{example}: {outcome.comparison.describe()} > budget {outcome.budget:.3g}")
        self.example = example
        self.outcome = outcome


@dataclass
class Component:
    """Something to verify: a name, a strategy of examples, the check, and how to reproduce a
    failing example in Python."""

    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], Outcome | None]
    reproduce: Callable[[Any], str]


def run_component(component: Component, examples: int, seed: int) -> Result:
    """Run ``examples`` examples; on a failure, hypothesis shrinks it and the minimal one is
    reported with a snippet that reproduces it."""
    result = Result(component.name)
    start = time.perf_counter()

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples, database=None, deadline=None, derandomize=False,
        phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
    )
    @given(component.strategy)
    def prop(example: Any) -> None:
        outcome = component.check(example)
        if outcome is None:
            result.skipped = "the implementation does not provide it"
            return
        result.examples += 1
        if outcome.ratio >= result.ratio:
            result.ratio, result.max_error, result.budget = outcome.ratio, outcome.comparison.max_abs, outcome.budget
            result.detail = outcome.comparison.describe() + (f"; {outcome.note}" if outcome.note else "")
        if not outcome.passed:
            raise Counterexample(example, outcome)

    try:
        prop()
    except Counterexample as failure:
        result.passed = False
        o = failure.outcome
        result.max_error, result.budget, result.ratio = o.comparison.max_abs, o.budget, o.ratio
        result.detail = f"minimal counterexample {failure.example}: {o.comparison.describe()}" + (f"; {o.note}" if o.note else "")
        result.counterexample = component.reproduce(failure.example)
    result.seconds = time.perf_counter() - start
    if result.skipped and result.examples:
        result.skipped = None
    if result.skipped:
        result.passed = False  # not run is never passed
    return result


@dataclass
class Target:
    """What is verified: an architecture, its θ, and Python that rebuilds both."""

    label: str
    arch: Architecture
    theta: dict[str, np.ndarray]
    load_snippet: str


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


def components(target: Target, impl: Implementation, impl_snippet: str, policy: Policy = DEFAULT, max_len: int | None = None) -> Iterator[Component]:
    """Every op the architecture uses, the whole model on padded batches, and KV-cache decoding."""
    arch, theta = target.arch, target.theta
    for label, (op, paths) in distinct_ops(arch).items():
        where = paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"

        def check(example: OpExample, op: Primitive = op) -> Outcome | None:
            return check_op(impl, op, example, policy)

        def snippet(example: OpExample, op: Primitive = op) -> str:
            return (
                "import numpy as np\nfrom sympy import sqrt, Rational, Integer\nfrom spec.dims import T, S\n"
                "from spec.masks import *\nfrom spec.ops import *\n"
                f"{impl_snippet}\nfrom gptspec.verify.engine import check_op\nfrom gptspec.verify.strategies import OpExample\n"
                f"op = {op!r}\nprint(check_op(impl, op, {example!r}))"
            )

        yield Component(f"{label}  [{where}]", op_examples(op), check, snippet)

    n_ctx = arch.dim("n_ctx")
    length = min(n_ctx, max_len or 8)
    cache = ReferenceCache()
    model_snippet = f"{target.load_snippet}\n{impl_snippet}\nfrom gptspec.verify.strategies import BatchExample\n"

    def model(example: BatchExample) -> Outcome:
        return check_model(impl, arch, theta, example, policy, cache)

    yield Component(
        f"model: padded batches (B ≤ 3, T ≤ {length}, left/right padding)", batch_examples(max_batch=3, max_len=length), model,
        lambda ex: model_snippet + f"from gptspec.verify.engine import check_model\nprint(check_model(impl, target.arch, target.theta, {ex!r}))",
    )

    def decode(example: BatchExample) -> Outcome | None:
        return check_decode(impl, arch, theta, example, policy, cache)

    yield Component(
        "model: prefill then decode one token at a time (KV cache)", batch_examples(max_batch=3, max_len=length), decode,
        lambda ex: model_snippet + f"from gptspec.verify.engine import check_decode\nprint(check_decode(impl, target.arch, target.theta, {ex!r}))",
    )


def verify(
    target: Target, impl: Implementation, impl_snippet: str, *, examples: int = 25, seed: int = 0,
    policy: Policy = DEFAULT, on_result: Callable[[Result], None] | None = None,
    on_start: Callable[[str], None] | None = None, shard: tuple[int, int] = (1, 1),
) -> list[Result]:
    """Run every component (of ``shard`` i/n only: the components at positions k with
    k mod n = i − 1, each drawing exactly its unsharded examples; gptspec/verify/shard.py); call
    ``on_result`` as each finishes (progress)."""
    from gptspec.verify.shard import check_shard, owns

    check_shard(shard, "--shard")
    results = []
    for k, component in enumerate(components(target, impl, impl_snippet, policy)):
        if not owns(shard, k):
            continue
        if on_start is not None:
            on_start(component.name)
        result = run_component(component, examples, seed)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


__all__ = [
    "Component", "Outcome", "Result", "Target", "check_decode", "check_model", "check_op", "components",
    "describe", "preset_target", "run_component", "verify",
]
