"""The reference's table of op functions: op kind → its literal implementation
``fn(op, **inputs, **params) -> y``, one sequence at a time, in float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from spec.op import Implementations

Array = npt.NDArray[np.float64]
Ids = npt.NDArray[np.int64]

REFERENCE: Implementations[Callable[..., Array]] = Implementations("reference", "reference/ops/")
"""op kind → its literal implementation ``fn(op, **inputs, **params) -> y``."""

VJP: Implementations[Callable[..., dict[str, Array]]] = Implementations("vjp", "reference/ops/")
"""op kind → its literal vector–Jacobian product ``fn(op, g, **inputs, **params) -> {name: ∂L/∂name}``:
given g = ∂L/∂y (the shape of the op's output) and the op's forward arguments, the cotangent of
every real input and every parameter (token ids have none). Registered with ``@VJP.implements(Op)``
next to the op's forward function; tests/test_vjp.py checks each against the derivative of the op's
own sympy definition and against central finite differences."""
