"""The literal meaning of every primitive op, in float64, one sequence at a time.

One function per op ``kind`` (the same name as in spec/), in a module named as the op's module in
spec/ops/; variables are named after the letters of the op's LaTeX (``spec.ops.*.latex``), with
the equation on the right. Loops run over positions, keys and heads where the math sums over
them; numpy does the inner products. Readable first, fast second.

Importing this package registers every function in :data:`REFERENCE`, and every primitive's
vector–Jacobian product (its derivative, next to its forward) in :data:`VJP`.
"""

from reference.ops.table import REFERENCE, VJP, Array, Ids
from spec.ops import import_all

import_all(__name__)  # the reference functions, one module per module of spec/ops/ (spec.ops.MODULES)

__all__ = ["REFERENCE", "VJP", "Array", "Ids"]
