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
