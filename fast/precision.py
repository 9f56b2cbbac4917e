"""Storage and compute dtypes: fast/ in float16 and bfloat16 (docs/tolerances.md, "Half precisions
in fast/").

In float64 and float32 fast/ stores and computes in the one dtype. In the half precisions the
dtype is a *storage* type and every op computes in float32:

- θ is rounded once, correctly, from float64 to the storage dtype when a program is compiled
  (:func:`to_storage`; bfloat16 through ``ml_dtypes``, rounded from float64 directly, never
  through float32 first, so there is no double rounding);
- every op reads its operands and parameters widened to float32 (exactly), computes in float32 —
  each GEMM accumulates in float32 (BLAS sgemm), each reduction (layer/RMS norm's mean and
  variance, softmax's max and sum, the online softmax's running max, normaliser and weighted
  sum) runs in float32 — and its result is rounded once to the storage dtype;
- the fused attention rounds where the op-by-op graph stores a value it keeps: Q, K and V after
  their projection (and again after the rotation, when rotary), each head's output, and the
  attention's output after W_O; the scores and the softmax probabilities of a tile stay in
  float32 (a fused kernel stores them nowhere). The KV cache holds K and V in the storage dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np
import numpy.typing as npt

from spec.errors import ConfigError

Array = npt.NDArray[Any]

BFLOAT16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
FLOAT16: np.dtype[Any] = np.dtype(np.float16)
FLOAT32: np.dtype[Any] = np.dtype(np.float32)
HALF = (FLOAT16, BFLOAT16)
"""The storage-only dtypes: computed in float32."""


def is_real(a: object) -> bool:
    """A floating-point array (bfloat16 included, whose numpy kind is ``V``)."""
    return isinstance(a, np.ndarray) and (a.dtype.kind == "f" or a.dtype == BFLOAT16)


def to_storage(a: Array, dtype: np.dtype[Any]) -> Array:
    """``a`` rounded once to ``dtype`` (to nearest, ties to even). A float64 array goes to
    bfloat16 through float32 rounded to odd (truncated, with the last bit set when inexact),
    which then rounds to bfloat16 exactly as float64 would directly: float32's 24 bits hold
    bfloat16's 8 and more than the two extra that this needs."""
    if dtype != BFLOAT16 or a.dtype != np.float64:
        with np.errstate(over="ignore"):  # beyond the dtype's range rounds to ±∞, as IEEE 754 defines
            out: Array = a.astype(dtype)
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        f = a.astype(np.float32)
        back = f.astype(np.float64)
        inexact = back != a
        over = inexact & (np.abs(back) > np.abs(a))  # rounded away from zero: step back towards it
    f = np.where(over, np.nextafter(f, np.float32(0)), f)
    odd = f.view(np.uint32) | inexact.astype(np.uint32)
    rounded: Array = odd.view(np.float32).astype(BFLOAT16)
    return rounded


@dataclass(frozen=True)
class Precision:
    """The storage dtype and the dtype ops compute in (float32 for the half precisions)."""

    storage: np.dtype[Any]
    compute: np.dtype[Any]

    @staticmethod
    def of(dtype: np.dtype[Any]) -> Precision:
        return Precision(dtype, FLOAT32 if dtype in HALF else dtype)

    @property
    def half(self) -> bool:
        return self.storage != self.compute

    def store(self, a: Array) -> Array:
        """``a`` in the storage dtype (rounded once); unchanged if it is already."""
        return a if a.dtype == self.storage else to_storage(a, self.storage)

    def load(self, a: Any) -> Any:
        """A stored array widened (exactly) to the compute dtype; anything else unchanged."""
        if self.half and isinstance(a, np.ndarray) and a.dtype == self.storage:
            return a.astype(self.compute)
        return a

    def round(self, a: Array) -> Array:
        """``a`` (in the compute dtype) rounded to the storage dtype's values, still in the compute
        dtype: a value the op-by-op graph would store, kept inside a fused kernel."""
        if not self.half:
            return a
        out: Array = to_storage(a, self.storage).astype(self.compute)
        return out


DTYPES: dict[str, np.dtype[Any]] = {
    "float64": np.dtype(np.float64), "float32": np.dtype(np.float32), "float16": FLOAT16, "bfloat16": BFLOAT16,
}
"""The dtypes fast/ runs in, by name: float64 and float32 store and compute in themselves;
float16 and bfloat16 are storage types, computed in float32 (this module)."""


def resolve_dtype(dtype: object, where: str = "fast") -> np.dtype[Any]:
    """One of :data:`DTYPES`, given by name or as a numpy dtype; anything else is refused."""
    for name, known in DTYPES.items():
        if (isinstance(dtype, str) and dtype == name) or (not isinstance(dtype, str) and _same_dtype(dtype, known)):
            return known
    raise ConfigError(f"dtype={dtype!r}, but expected one of {list(DTYPES)} [{where}]")


def _same_dtype(dtype: object, known: np.dtype[Any]) -> bool:
    try:
        return bool(np.dtype(dtype) == known)  # type: ignore[call-overload]
    except TypeError:
        return False
