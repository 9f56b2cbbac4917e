"""The verification engine's entry points for gptspec's own fast/: ``gptspec check`` is
``gptspec verify``'s run (gptspec/verify/session.py: :class:`~gptspec.verify.session.Runner`)
on ``FastImplementation`` in this process, with θ given (the preset's random θ, or the
checkpoint's), the ``zero`` empty-row convention and the ``DEFAULT`` policy.

One engine: one batch type (:class:`gptspec.verify.cases.Batch`; a hypothesis-drawn
:class:`~gptspec.verify.strategies.BatchExample` names one), one verdict (:class:`Verdict`,
also named ``Outcome``), one row judge (:func:`gptspec.verify.cases.judge_rows`), one reference
cache (gptspec/verify/oracle.py, keyed by content), and one driver, ``Runner.run``, for a
decoder-only model, an encoder–decoder (each case with its source batch) and ``--all-ops``'s
coverage models (gptspec/verify/coverage.py). Its model-level components judge planned cases and
shrink a failure greedily (gptspec/verify/shrink.py); its op components draw examples with
hypothesis and shrink by hypothesis (gptspec/verify/component.py).

The check functions (:func:`check_op`, :func:`check_model`, :func:`check_decode`) are plain
functions of one example under ``check``'s settings (gptspec/verify/checks.py, re-exported
here), used by pytest's property tests, by the run's op components and by the counterexample
scripts ``check`` prints.
"""

from __future__ import annotations

from collections.abc import Callable

from gptspec.verify.cases import Verdict, check_context
from gptspec.verify.checks import Outcome, check_decode, check_model, check_op, op_script
from gptspec.verify.component import Component, Result, Target, run_component
from gptspec.verify.implementation import Implementation
from gptspec.verify.session import Options, Runner, given
from gptspec.verify.shard import WHOLE
from gptspec.verify.strategies import describe
from gptspec.verify.tolerance import DEFAULT, Policy
from spec.theta import preset_theta

CHECK_COMPONENTS = ("model", "decode", "ops")
"""The components of ``gptspec check`` (verify's keys, gptspec/verify/session.py: COMPONENTS):
padded batches, KV-cache decoding, and each op the model uses (with each kind's hard cases)."""

CHECK_MAX_LEN = 8
"""The longest batch ``check`` draws (or n_ctx, when shorter)."""


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


def check_options(
    examples: int = 25, seed: int = 0, policy: Policy = DEFAULT, shard: tuple[int, int] = WHOLE, components: tuple[str, ...] = CHECK_COMPONENTS,
) -> Options:
    """``check``'s settings as verify :class:`~gptspec.verify.session.Options`: ``examples``
    cases per model-level component and examples per op component, the ``zero`` empty-row
    convention, the policy, sequences up to :data:`CHECK_MAX_LEN`, shrinking on; no
    localisation, no identify, no isolation (fast/ runs in this process), no cost limit (θ is
    already drawn: ``gptspec.models.resolve`` bounds it)."""
    return Options(examples=examples, op_examples=examples, seed=seed, policy=policy, empty_rows="zero", max_len=CHECK_MAX_LEN,
                   components=components, shard=shard, localise=False, identify=False, isolate=False, cost_limit=False)


def run_given(
    target: Target, impl: Implementation, impl_snippet: str, *, examples: int = 25, seed: int = 0, policy: Policy = DEFAULT,
    shard: tuple[int, int] = WHOLE, on_result: Callable[[Result], None] | None = None, on_start: Callable[[str], None] | None = None,
    prefix: str = "", components: tuple[str, ...] = CHECK_COMPONENTS,
) -> list[Result]:
    """verify's run (:class:`~gptspec.verify.session.Runner`) of ``impl`` on ``target``, θ
    given, under ``check``'s settings (:func:`check_options`; ``components`` of
    :data:`CHECK_COMPONENTS`); each result's component name starts with ``prefix``
    (``--all-ops``: the coverage model's)."""
    options = check_options(examples, seed, policy, shard, components)
    options.check()
    runner = Runner(given(target, impl, impl_snippet), options, on_start)

    def named(result: Result) -> None:
        result.component = prefix + result.component
        if on_result is not None:
            on_result(result)

    return runner.run(named)


def verify(
    target: Target, impl: Implementation, impl_snippet: str, *, examples: int = 25, seed: int = 0,
    policy: Policy = DEFAULT, on_result: Callable[[Result], None] | None = None,
    on_start: Callable[[str], None] | None = None, shard: tuple[int, int] = WHOLE,
) -> list[Result]:
    """``gptspec check`` on ``target``: :func:`run_given` — verify's components ``model``,
    ``decode`` and ``ops`` (of ``shard`` only: its cases and op components, as ``verify
    --shard`` splits them). ``impl_snippet`` defines ``impl`` in the counterexample scripts."""
    return run_given(target, impl, impl_snippet, examples=examples, seed=seed, policy=policy, shard=shard, on_result=on_result, on_start=on_start)


__all__ = [
    "CHECK_COMPONENTS", "Component", "Outcome", "Result", "Target", "Verdict", "check_context", "check_decode", "check_model", "check_op",
    "check_options", "describe", "op_script", "preset_target", "run_component", "run_given", "verify",
]
