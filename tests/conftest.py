"""Hypothesis profiles: ``ci`` (the default: sized so the whole suite runs in a few minutes on
2 cores) and ``long`` (for local soak runs: ``HYPOTHESIS_PROFILE=long pytest``).

Under ``ci`` hypothesis shrinks a failure for at most :data:`SHRINK_SECONDS` (its default is
300 s: a failing whole-model example would keep the suite busy for minutes before reporting it;
benchmarks/mutation.py measures how long a failure takes to be reported). ``GPTSPEC_SHRINK_SECONDS``
overrides it under any profile."""

from __future__ import annotations

import os
from collections.abc import Iterator

import hypothesis.internal.conjecture.engine as hypothesis_engine
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

SHRINK_SECONDS: dict[str, int] = {"ci": 10}
"""The most seconds hypothesis spends shrinking one failure, by profile (absent: its default)."""


@pytest.fixture(autouse=True)
def _shrink_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Cap the shrinking of a failure: hypothesis reads ``MAX_SHRINKING_SECONDS`` from its engine
    module when a failure starts shrinking (an internal constant, checked by
    tests/test_mutation.py to still exist)."""
    seconds = os.environ.get("GPTSPEC_SHRINK_SECONDS") or SHRINK_SECONDS.get(PROFILE)
    if seconds is not None:
        monkeypatch.setattr(hypothesis_engine, "MAX_SHRINKING_SECONDS", int(seconds))
    yield
