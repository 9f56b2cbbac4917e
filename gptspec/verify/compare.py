"""Comparing two arrays: the largest error, where it is, and the scale it is judged against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Comparison:
    """``max_abs`` = max |got − want| at index ``where``; ``scale`` = max |want|."""

    max_abs: float
    scale: float
    where: tuple[int, ...]
    got: float
    want: float

    @property
    def relative(self) -> float:
        """max_abs / scale (0 when both are 0)."""
        if self.max_abs == 0:
            return 0.0
        return self.max_abs / self.scale if self.scale > 0 else float("inf")

    def describe(self, axes: str = "") -> str:
        at = ", ".join(map(str, self.where))
        return f"max |Δ| = {self.max_abs:.3g} at [{at}]{(' ' + axes) if axes else ''} (got {self.got:.17g}, want {self.want:.17g}), scale {self.scale:.3g}"


def compare(got: npt.ArrayLike, want: npt.ArrayLike) -> Comparison:
    """Compare ``got`` with ``want`` (shapes must match). NaN or ±inf in ``got`` where ``want``
    is finite is an infinite error."""
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        from spec.errors import ShapeError

        raise ShapeError(f"result shape={g.shape}, but expected shape={w.shape} [compare]")
    if g.size == 0:
        return Comparison(0.0, 0.0, (), 0.0, 0.0)
    with np.errstate(invalid="ignore"):
        diff = np.abs(g - w)
    agree = (np.isnan(g) & np.isnan(w)) | (np.isinf(g) & (g == w))
    diff = np.where(agree, 0.0, np.where(np.isnan(diff), np.inf, diff))
    flat = int(np.argmax(diff))
    where = tuple(int(i) for i in np.unravel_index(flat, g.shape))
    scale = float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0))
    return Comparison(float(diff.flat[flat]), scale, where, float(g.flat[flat]), float(w.flat[flat]))
