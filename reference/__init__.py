"""The literal reference implementation: the meaning of f_θ(x), in float64.

The public way to run it: :func:`run_op` (one primitive on one sequence), :func:`evaluate`
(every value of an architecture, by path) and :func:`forward` (the logits). Imports spec/ only.
"""

from reference.interpreter import evaluate, forward, run_op
from reference.ops import REFERENCE

__all__ = ["REFERENCE", "evaluate", "forward", "run_op"]
