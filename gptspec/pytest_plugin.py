"""pytest plugin (registered through the ``pytest11`` entry point): verify your transformer from
your own test suite, one pytest item per component.

    def test_my_gpt(gptspec_verify):
        gptspec_verify("mypkg.model:MyGPT", layout="hf-gpt2")

collects as ``test_my_gpt[model]``, ``test_my_gpt[decode]``, ``test_my_gpt[generate]``,
``test_my_gpt[weights]`` and ``test_my_gpt[ops]``. The first item to call ``gptspec_verify``
runs the verification (any keyword of :class:`gptspec.verify.Options`: ``model=``, ``dtype=``,
``empty_rows=``, ``examples=``, …); the others reuse its report. Each item passes when its
component passes, fails with the minimal counterexample, the localisation and the script that
reproduces it, and is skipped when the component was not run (the target does not offer it).
A target that cannot run fails every item with the reason. A target named by a string runs in a
child process, as ``gptspec verify`` runs it (docs/verify.md, "Isolation"): a target that calls
``sys.exit``/``os._exit`` or crashes makes its items fail, never the session pass or end.
``@pytest.mark.gptspec_components("model",
"decode")`` limits the items. docs/ci.md shows it in a CI workflow.

Training code has its own items, chosen with the marker (they are not collected by default):
``@pytest.mark.gptspec_components("grad", "own-loss", "train-step")`` runs ``gptspec verify
--grad`` (and ``--train-step`` with ``train_step="mypkg.train:step"``; ``grad_examples=`` and
``objective=`` a :class:`spec.objective.Objective` as keywords) once for those items
(gptspec/verify/grad.py; docs/verify.md, "Verifying training code").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

COMPONENT_KEYS = ("model", "decode", "generate", "weights", "ops")
GRAD_KEYS = ("grad", "own-loss", "train-step")
"""Gradient components (gptspec/verify/grad.py): collected only when the marker names them."""
_REPORTS: dict[tuple[object, ...], Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gptspec_components(*keys): the gptspec verify components to collect as items (model, decode, generate, weights, ops)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gptspec_verify" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("gptspec_components")
    keys = tuple(marker.args) if marker is not None and marker.args else COMPONENT_KEYS
    unknown = [k for k in keys if k not in COMPONENT_KEYS + GRAD_KEYS]
    if unknown:
        raise pytest.UsageError(f"gptspec_components{unknown}, but expected some of {list(COMPONENT_KEYS + GRAD_KEYS)}")
    metafunc.parametrize("gptspec_component", keys, ids=list(keys), indirect=True)


@pytest.fixture
def gptspec_component(request: pytest.FixtureRequest) -> str:
    """The component this item judges (parametrized by the plugin)."""
    return str(getattr(request, "param", "model"))


def _key(target: object, options: dict[str, Any]) -> tuple[object, ...]:
    return (target if isinstance(target, str) else id(target), tuple(sorted((k, repr(v)) for k, v in options.items())))


@pytest.fixture
def gptspec_verify(gptspec_component: str) -> Callable[..., Any]:
    """``gptspec_verify(target, **options)``: verify ``target`` (module:name, file.py:name or the
    object) and judge this item's component; returns the report."""

    def run(target: object, **options: Any) -> Any:
        from gptspec.verify import verify_target
        from gptspec.verify.report import result_lines
        from spec.errors import GptSpecError

        grad = gptspec_component in GRAD_KEYS
        key = _key(target, {**options, "__grad__": grad})
        if key not in _REPORTS:
            try:
                _REPORTS[key] = _verify_grad(target, options) if grad else verify_target(target, **options)
            except GptSpecError as error:
                _REPORTS[key] = error
        report = _REPORTS[key]
        if isinstance(report, Exception):
            pytest.fail(f"gptspec verify could not run: {report}", pytrace=False)
        results = [r for r in report.results if r.key in (gptspec_component, "run")]  # "run": the whole run stopped (--timeout)
        if not results:
            why = "no checkpoint weights were given (weights=True with model=<checkpoint>)" if gptspec_component == "weights" else "not selected"
            pytest.skip(f"gptspec verify {gptspec_component}: not run — {why}")
        header = f"gptspec verify {report.target} [{report.dtype}, layout {report.layout}, empty rows {report.empty_rows}]"
        bad = [r for r in results if r.status in ("failed", "error")]
        if bad:
            pytest.fail("\n".join([header] + [line for r in bad for line in result_lines(r)]), pytrace=False)
        if all(r.status == "not run" for r in results):
            pytest.skip(f"gptspec verify {gptspec_component}: not run — {results[0].skipped}")
        return report

    return run


def _verify_grad(target: object, options: dict[str, Any]) -> Any:
    """The gradient run of the grad items: ``train_step``, ``grad_examples`` and ``objective`` go
    to :class:`gptspec.verify.grad.GradOptions`, the rest to :class:`gptspec.verify.Options`."""
    from gptspec.verify.grad import GradOptions, verify_grad
    from spec.objective import Objective

    rest = dict(options)
    grad = GradOptions(grad=True, train_step=rest.pop("train_step", None), objective=rest.pop("objective", Objective()),
                       examples=rest.pop("grad_examples", GradOptions.examples))
    return verify_grad(target, grad=grad, **rest)
