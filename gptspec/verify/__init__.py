"""Verification: an implementation under test judged against the spec's reference, op by op
and as a whole model, with hypothesis-drawn examples and a documented tolerance policy."""

from gptspec.verify.compare import Comparison, compare
from gptspec.verify.engine import Outcome, Result, Target, check_decode, check_model, check_op, preset_target, verify
from gptspec.verify.implementation import FastImplementation, Implementation
from gptspec.verify.tolerance import DEFAULT, Policy, unit_roundoff

__all__ = [
    "DEFAULT", "Comparison", "FastImplementation", "Implementation", "Outcome", "Policy", "Result", "Target",
    "check_decode", "check_model", "check_op", "compare", "preset_target", "unit_roundoff", "verify",
]
