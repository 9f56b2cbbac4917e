"""The literal meaning of every primitive op, in float64, one sequence at a time.

One function per op ``kind`` (the same name as in spec/), in a module named as the op's module in
spec/ops/; variables are named after the letters of the op's LaTeX (``spec.ops.*.latex``), with
the equation on the right. Loops run over positions, keys and heads where the math sums over
them; numpy does the inner products. Readable first, fast second.

Importing this package registers every function in :data:`REFERENCE`.
"""

from reference.ops.table import REFERENCE, Array, Ids
from spec.ops import import_all

import_all(__name__)  # the reference functions, one module per module of spec/ops/ (spec.ops.MODULES)

__all__ = ["REFERENCE", "Array", "Ids"]
