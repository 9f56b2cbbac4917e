"""The literal reference implementation: the meaning of f_θ(x), in float64.

The public way to run it: :func:`run_op` (one primitive on one sequence), :func:`evaluate`
(every value of an architecture, by path) and :func:`forward` (the logits); the derivative:
:func:`backward` (the DAG run backwards from the outputs' cotangents) and :func:`value_and_grad`
(a batch's loss under a spec.objective.Objective and ∂L/∂θ; docs/training.md). Imports spec/ only.
"""

from reference.backward import backward, value_and_grad
from reference.interpreter import evaluate, forward, run_op
from reference.ops import REFERENCE

__all__ = ["REFERENCE", "backward", "evaluate", "forward", "run_op", "value_and_grad"]
