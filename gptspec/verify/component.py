"""Components and their results: a :class:`Component` (a name, a hypothesis strategy of
examples, a check, a reproduction), :func:`run_component` running one with hypothesis shrinking,
and the :class:`Result` line every component gives (``gptspec verify``'s and ``gptspec check``'s
report lines, JSON and JUnit).

The one driver of a run is ``gptspec.verify.session.Runner.run`` (``check`` is that run on
fast/: gptspec/verify/engine.py). A component plugs into it in one of two ways:

- an example-level check — one op, or anything judged on examples hypothesis can draw and
  shrink: a :class:`Component` whose ``check(example)`` returns a :class:`Verdict` (None: the
  implementation does not offer it, reported ``not run``) and whose ``reproduce(example)``
  returns Python; run by ``Runner.op_component`` (progress, the target's exceptions as results,
  a localisation), which calls :func:`run_component`;
- a model-level check over the run's planned cases (padded batches, decoding, generation;
  gptspec/verify/cases.py: :class:`~gptspec.verify.cases.Case`): a function
  ``(impl, ctx, case) -> Verdict`` registered under a key in ``session.CHECKS`` (and its report
  name in ``session.COMPONENTS``), run by ``Runner.run_cases`` (greedy shrinking,
  localisation, counterexample script).

(``run_components``, the component loop ``check`` had of its own, is gone: ``check`` runs
through the Runner; a list of components is run by calling ``Runner.op_component`` on each.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from gptspec.verify.cases import Verdict
from spec.graph import Architecture

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
    def __init__(self, example: object, outcome: Verdict) -> None:
        super().__init__(f"{example}: {outcome.comparison.describe()} > budget {outcome.budget:.3g}")
        self.example = example
        self.outcome = outcome


@dataclass
class Component:
    """Something to verify: a name, a strategy of examples, the check, and how to reproduce a
    failing example in Python."""

    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], Verdict | None]
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


__all__ = ["Component", "Counterexample", "Result", "Target", "run_component"]
