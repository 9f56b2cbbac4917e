"""The tolerance policy, implemented once (docs/tolerances.md gives the numbers' reasons).

An implementation computing in dtype D is judged against the float64 reference. Its error
budget is tied to what D can do:

    budget = factor × e_store + floor_ulps × u_D × scale

- ``e_store`` is the error of the reference itself when every value it stores — θ, the
  inputs, and each op's result — is stored in D (``reference.evaluate(store=storer(D))``):
  rounded to D, or for float64, where rounding is the identity, moved one unit in the last
  place in a random direction. It is what any implementation in D inevitably loses (how much
  the rest of the model amplifies one rounding per value), measured on the same example and
  independent of the implementation under test;
- ``u_D`` is D's unit roundoff (2⁻⁵³ for float64, 2⁻²⁴ for float32) and ``scale`` the
  largest magnitude of the float64 result: the floor covers what storing does not model
  (accumulation inside an op, a different summation order), and is all there is for float64,
  where storing loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

UNIT_ROUNDOFF: dict[str, float] = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def unit_roundoff(dtype: npt.DTypeLike) -> float:
    """u_D: half the distance from 1 to the next number of the dtype."""
    name = np.dtype(dtype).name
    if name not in UNIT_ROUNDOFF:
        from spec.errors import ConfigError

        raise ConfigError(f"dtype={name}, but expected one of {list(UNIT_ROUNDOFF)} [tolerance policy]")
    return UNIT_ROUNDOFF[name]


def storer(dtype: npt.DTypeLike, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """How a value is stored in ``dtype``: rounded to it and read back as float64; for float64,
    moved one unit in the last place up or down (a seeded random choice per entry), the
    largest error a correctly rounded float64 result can have."""
    target = np.dtype(dtype)
    unit_roundoff(target)  # refuse dtypes the policy does not know
    if target != np.float64:
        return lambda a: a.astype(target).astype(np.float64)
    rng = np.random.default_rng(seed)

    def one_ulp(a: np.ndarray) -> np.ndarray:
        direction = np.where(rng.random(a.shape) < 0.5, -np.inf, np.inf)
        moved: np.ndarray = np.nextafter(a, direction)
        return moved

    return one_ulp


@dataclass(frozen=True)
class Policy:
    """``budget = factor × e_store + floor_ulps × u_D × scale`` (see the module docstring)."""

    factor: float = 4.0
    floor_ulps: float = 256.0

    def budget(self, dtype: npt.DTypeLike, e_store: float, scale: float) -> float:
        return self.factor * e_store + self.floor_ulps * unit_roundoff(dtype) * scale


DEFAULT = Policy()
EXACT = Policy(factor=0.0, floor_ulps=0.0)
"""For values that must agree exactly (a padded row is 0; the reference is deterministic)."""
