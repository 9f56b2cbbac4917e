"""fast/'s table of batched kernels, and the row-chunking helper the row-wise kernels share.

Layouts: a position-axis tensor is (B, T, features); token ids are (B, T); scores are
(B, T, S). A kernel is ``fn(op, batch, **inputs, **params)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from fast import parallel
from spec.op import Implementations

Array = npt.NDArray[Any]
Kernel = Callable[..., Any]

KERNELS: Implementations[Kernel] = Implementations("fast", "fast/kernels/")
"""op kind → batched kernel ``fn(op, batch, **inputs, **params)``."""


CHUNK = 1 << 18
"""Elements per chunk of a row-wise kernel: 1 MiB in float32, so the several passes of GELU or
layer norm over a chunk stay in cache (measured best at gpt2-small sizes, between 2¹⁴ and 2²²)."""


PARALLEL_LEAST = 1 << 14
"""Elements per thread below which a row-wise kernel runs on the calling thread alone: handing
work to a thread costs a wake-up of some tens of microseconds, as long as a pass over 2¹⁴ elements."""


def by_rows(fn: Callable[[Array, Array], object], x: Array, chunk: int | None = None) -> Array:
    """A row-wise kernel ``fn(x_rows, out_rows)`` (rows: every axis but the last) run on chunks
    of about ``chunk`` elements (default :data:`CHUNK`; at least one row each), over fast/'s
    threads (fast/parallel.py): with k threads the chunks are a multiple of k, each thread takes
    a contiguous run of them. Every row is computed alone, so the result does not depend on the
    chunks or the threads."""
    out: Array = np.empty(x.shape, dtype=x.dtype)
    if x.size:
        x2 = x.reshape(-1, x.shape[-1] if x.ndim else 1)
        y2 = out.reshape(x2.shape)
        rows = x2.shape[0]
        n = -(-x2.size // (chunk or CHUNK))  # chunks of about `chunk` elements
        k = parallel.threads()
        if k > 1 and x2.size >= PARALLEL_LEAST * k:
            n = -(-n // k) * k
        step = -(-rows // min(n, rows))

        def run(i: int) -> None:
            fn(x2[i * step : (i + 1) * step], y2[i * step : (i + 1) * step])

        parallel.each(run, -(-rows // step))
    return out
