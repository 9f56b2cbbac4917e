"""Verification: an implementation under test judged against the spec's reference, op by op
and as a whole model, with drawn examples and a documented tolerance policy.

* :func:`verify_target` — ``gptspec verify``: anyone's transformer (a torch module, a callable
  over a state dict, an Implementation) against the reference, with localisation and minimal
  counterexamples (docs/verify.md);
* :func:`verify` — ``gptspec check``: the same run (gptspec/verify/session.py) on gptspec's own
  fast/ (``FastImplementation``, one more Implementation) with θ given, the ``zero`` empty-row
  convention and the ``DEFAULT`` policy (gptspec/verify/engine.py).
"""

from gptspec.verify.compare import Comparison, compare
from gptspec.verify.engine import Outcome, Result, Target, check_decode, check_model, check_op, preset_target, verify
from gptspec.verify.implementation import FastImplementation, Implementation
from gptspec.verify.session import COMPONENTS, Options, Report, load_implementation, reproduce, verify_target
from gptspec.verify.tolerance import DEFAULT, Policy, unit_roundoff

__all__ = [
    "COMPONENTS", "DEFAULT", "Comparison", "FastImplementation", "Implementation", "Options", "Outcome", "Policy", "Report",
    "Result", "Target", "check_decode", "check_model", "check_op", "compare", "load_implementation", "preset_target",
    "reproduce", "unit_roundoff", "verify", "verify_target",
]
