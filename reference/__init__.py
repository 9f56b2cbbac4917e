"""The literal reference implementation: the meaning of f_θ(x), in float64.

Imports spec/ only.
"""

from reference.interpreter import evaluate, forward
from reference.ops import REFERENCE

__all__ = ["REFERENCE", "evaluate", "forward"]
