"""fast/'s table of batched kernels, and the row-chunking helper the row-wise kernels share.

Layouts: a position-axis tensor is (B, T, features); token ids are (B, T); scores are
(B, T, S). A kernel is ``fn(op, batch, **inputs, **params)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from spec.op import Implementations

Array = npt.NDArray[Any]
Kernel = Callable[..., Any]

KERNELS: Implementations[Kernel] = Implementations("fast", "fast/kernels/")
"""op kind → batched kernel ``fn(op, batch, **inputs, **params)``."""


CHUNK = 1 << 18
"""Elements per chunk of a row-wise kernel: 1 MiB in float32, so the several passes of GELU or
layer norm over a chunk stay in cache (measured best at gpt2-small sizes, between 2¹⁴ and 2²²)."""


def by_rows(fn: Callable[[Array, Array], object], x: Array, chunk: int | None = None) -> Array:
    """A row-wise kernel ``fn(x_rows, out_rows)`` (rows: every axis but the last) run on chunks
    of about ``chunk`` elements (default :data:`CHUNK`; at least one row each)."""
    out: Array = np.empty(x.shape, dtype=x.dtype)
    if x.size:
        x2 = x.reshape(-1, x.shape[-1] if x.ndim else 1)
        y2 = out.reshape(x2.shape)
        step = max(1, CHUNK // x2.shape[1]) if chunk is None else max(1, chunk // x2.shape[1])
        for r in range(0, x2.shape[0], step):
            fn(x2[r : r + step], y2[r : r + step])
    return out
