"""The batched implementation: the same function as reference/, fast. Imports spec/ only.

The public way to run it: :func:`run_op` (one primitive on one sequence, through its batched
kernel), :func:`compile` (an architecture and θ in a dtype) and the :class:`Program`'s
``forward``, ``prefill`` and ``decode``.
"""

from fast.precision import DTYPES, resolve_dtype
from fast.program import Program, State, compile, forward, run_op

__all__ = ["DTYPES", "Program", "State", "compile", "forward", "resolve_dtype", "run_op"]
