"""The tolerance policy, implemented once (docs/tolerances.md gives the numbers' reasons).

An implementation computing in dtype D is judged against the float64 reference. Its error
budget is tied to what D can do:

    budget = factor × e_store + floor_ulps(D) × (u_D × scale + η_D)

- ``e_store`` is the error of the reference itself when every value it stores — θ, the
  inputs, and each op's result — is stored in D (``reference.evaluate(store=storer(D))``):
  rounded to D, or for float64, where rounding is the identity, moved one unit in the last
  place in a random direction. It is what any implementation in D inevitably loses (how much
  the rest of the model amplifies one rounding per value), measured on the same example and
  independent of the implementation under test;
- ``u_D`` is D's unit roundoff (2⁻⁵³ for float64, 2⁻²⁴ for float32, 2⁻¹¹ for float16, 2⁻⁸ for
  bfloat16) and ``scale`` the largest magnitude of the float64 result: the floor covers what
  storing does not model (accumulation inside an op, a different summation order), and is all
  there is for float64, where storing loses nothing. In the half precisions the floor is
  smaller (``half_floor_ulps``): their u_D is so coarse that 256 u would be most of the scale,
  and implementations accumulate them in float32, so what storing does not model is a few
  roundings, not a long sum's.
- ``η_D`` is D's smallest positive subnormal (2⁻¹⁰⁷⁴, 2⁻¹⁴⁹, 2⁻²⁴, 2⁻¹³³): below the normal range a
  rounding errs by up to η_D / 2 whatever the value's size (fl(x) = x(1 + δ) + η, |η| ≤ η_D / 2 —
  gradual underflow), which a relative floor cannot cover when the whole result is subnormal
  (weights and inputs of 1e-8 give float32 results near 1e-41). Anywhere above the subnormals
  the term is negligible (in float32 it is 2⁻¹⁴⁹·256 ≈ 4e-43).

In a model with long reductions (a dot product of K terms) an implementation in D rounds about
√K times per value where storing rounds once, and the model amplifies both alike, so the factor
is at least √K / 2 for the model's longest reduction K (:func:`longest_reduction`; 4 at K = 64,
about 28 at GPT-2's d_mlp = 3072, docs/tolerances.md "float32 at GPT-2 size").

Dtypes are named by strings (``"bfloat16"`` has no numpy dtype); :func:`dtype_name` reads a
numpy dtype, a string or a torch dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from spec.graph import Architecture

UNIT_ROUNDOFF: dict[str, float] = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
SUBNORMAL: dict[str, float] = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24, "bfloat16": 2.0**-133}
"""η_D: each dtype's smallest positive subnormal, the absolute error unit of gradual underflow."""
HALF = ("float16", "bfloat16")
"""The half precisions, whose floor is ``Policy.half_floor_ulps``."""


def dtype_name(dtype: object) -> str:
    """``"float64"``, ``"float32"``, ``"float16"`` or ``"bfloat16"`` for a numpy dtype, a string or
    a torch dtype (``torch.bfloat16``); anything else is refused."""
    text = str(dtype).removeprefix("torch.")
    if text not in UNIT_ROUNDOFF:
        try:
            text = np.dtype(dtype).name  # type: ignore[call-overload]
        except TypeError:
            pass
    if text not in UNIT_ROUNDOFF:
        from spec.errors import ConfigError

        raise ConfigError(f"dtype={dtype}, but expected one of {list(UNIT_ROUNDOFF)} [tolerance policy]")
    return text


def unit_roundoff(dtype: object) -> float:
    """u_D: half the distance from 1 to the next number of the dtype."""
    return UNIT_ROUNDOFF[dtype_name(dtype)]


def round_bfloat16(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to the nearest bfloat16 (ties to even; 8 significant bits, float32's
    exponent range, subnormals included, overflow to ±∞), returned as float64. Rounds float64
    directly, so there is no double rounding through float32."""
    x = np.asarray(a, dtype=np.float64)
    with np.errstate(all="ignore"):  # IEEE rounding: overflow to ±∞ and underflow are the result, under any global error state
        mantissa, exponent = np.frexp(x)  # x = mantissa · 2^exponent, 0.5 ≤ |mantissa| < 1
        exponent = np.maximum(exponent, -125)  # below 2^-126 the spacing stays 2^-133 (subnormals)
        quantum = np.ldexp(1.0, exponent - 8)
        rounded = np.rint(x / quantum) * quantum
        rounded = np.where(np.abs(rounded) > 3.3895313892515355e38, np.copysign(np.inf, x), rounded)
    out: np.ndarray = np.where(np.isfinite(x), rounded, x)
    return out


def storer(dtype: object, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """How a value is stored in ``dtype``: rounded to it and read back as float64; for float64,
    moved one unit in the last place up or down (a seeded random choice per entry), the
    largest error a correctly rounded float64 result can have."""
    name = dtype_name(dtype)
    if name == "bfloat16":
        return round_bfloat16
    if name != "float64":
        target = np.dtype(name)

        def rounded_to(a: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):  # beyond the dtype's range the stored value is ±inf (or 0), as it would be
                out: np.ndarray = np.asarray(a).astype(target).astype(np.float64)
            return out

        return rounded_to
    rng = np.random.default_rng(seed)

    def one_ulp(a: np.ndarray) -> np.ndarray:
        direction = np.where(rng.random(np.shape(a)) < 0.5, -np.inf, np.inf)
        with np.errstate(all="ignore"):  # a step from 0 underflows to a subnormal: that is the step, whatever np.seterr says
            moved: np.ndarray = np.nextafter(a, direction)
        return moved

    return one_ulp


def rounded(dtype: object) -> Callable[[np.ndarray], np.ndarray]:
    """Rounding to ``dtype`` (read back as float64), the identity for float64: how θ is handed to
    an implementation computing in ``dtype``, so that it holds exactly the values the reference's
    stored evaluation (:func:`storer`) starts from."""
    name = dtype_name(dtype)
    if name == "float64":
        return lambda a: np.asarray(a, dtype=np.float64)
    return storer(name)


@dataclass(frozen=True)
class Policy:
    """``budget = factor × e_store + floor × (u_D × scale + η_D)`` with ``floor = floor_ulps`` for float64
    and float32 and ``half_floor_ulps`` for float16 and bfloat16 (see the module docstring);
    with ``score_term``, ``+ max|score| × u_D × scale`` too (``gptspec verify``'s: docs/tolerances.md)."""

    factor: float = 4.0
    floor_ulps: float = 256.0
    half_floor_ulps: float = 8.0
    score_term: bool = False
    """Whether the example's largest attention score enters the budget (:meth:`budget`)."""

    def floor(self, dtype: object) -> float:
        """The floor, in units of u_D, for ``dtype``."""
        return self.half_floor_ulps if dtype_name(dtype) in HALF else self.floor_ulps

    def budget(self, dtype: object, e_store: float, scale: float, scores: float = 0.0, reduction: int = 0) -> float:
        """``max(factor, √reduction / 2) × e_store + (floor + scores) × u_D × scale + floor × η_D`` (scores with
        ``score_term`` only; η_D the dtype's smallest subnormal, for results in the underflow range).
        ``reduction`` is the longest sum in the model (:func:`longest_reduction`; 0 for an op
        alone, whose in-op accumulation the floor covers). ``scores`` is the largest
        |attention score| of the example (0 where there is none): a score carries an error of
        at least u_D·|s| in any implementation (more after a dot product's cancellation), and
        a softmax row split between near-tied keys passes an error of the score gap straight
        to its output — which storing one rounding per value can miss by chance in the one
        row where it matters (docs/tolerances.md, "gptspec verify")."""
        factor = max(self.factor, math.sqrt(reduction) / 2)
        floor = self.floor(dtype)
        return factor * e_store + (floor + (scores if self.score_term else 0.0)) * unit_roundoff(dtype) * scale + floor * SUBNORMAL[dtype_name(dtype)]

    def describe(self, dtype: object, reduction: int = 0) -> str:
        factor = f"{self.factor:g}" if math.sqrt(reduction) / 2 <= self.factor else f"max({self.factor:g}, √{reduction}/2)"
        floor = f"({self.floor(dtype):g} + max|score|)" if self.score_term else f"{self.floor(dtype):g}"
        return (f"budget = {factor} × e_store + {floor} u·scale + {self.floor(dtype):g} η "
                f"(u = 2^{int(np.log2(unit_roundoff(dtype)))}, η = 2^{int(np.log2(SUBNORMAL[dtype_name(dtype)]))}; docs/tolerances.md)")


_LONGEST: dict[int, tuple[Architecture, int]] = {}


def longest_reduction(arch: Architecture) -> int:
    """:func:`reduction_of`, remembered per architecture (checks ask once per example)."""
    found = _LONGEST.get(id(arch))
    if found is None or found[0] is not arch:
        if len(_LONGEST) > 64:
            _LONGEST.clear()
        found = _LONGEST[id(arch)] = (arch, reduction_of(arch))
    return found[1]


def reduction_of(arch: Architecture) -> int:
    """The longest sum a value of ``arch`` is computed with: the largest feature width any op
    reads (an affine map's d_in, a head's d_head, a norm's d) and its context length n_ctx (a
    softmax row and a weighted sum run over the keys). A one-hot axis does not count: its product
    has one nonzero term."""
    from spec.op import Primitive
    from spec.types import Axis

    contexts = [int(v) for k, v in arch.dims.items() if str(k) == "n_ctx"]
    longest = max(contexts, default=0)
    for _, node, _ in arch.expand():
        if not isinstance(node.op, Primitive):
            continue
        for ttype in node.op.bind(arch.dims).inputs().values():
            width = ttype.shape[-1] if ttype.axes and ttype.axes[-1] is Axis.FEATURE else None
            if width is not None and getattr(width, "is_Integer", isinstance(width, int)):
                longest = max(longest, int(width))
    return longest


DEFAULT = Policy()
"""``gptspec check``'s policy: fast/, gptspec's own implementation, on its preset θ."""
VERIFY = Policy(factor=8.0, score_term=True)
"""``gptspec verify``'s policy: implementations it does not know (another order of roundings,
GELU as six float ops, the score scale applied after the product), whose error per stored value
is more roundings than fast/'s — measured err/e_store up to 6.0 on Hugging Face GPT-2 in float32
on plain and medium draws (docs/tolerances.md, "gptspec verify")."""
EXACT = Policy(factor=0.0, floor_ulps=0.0, half_floor_ulps=0.0)
"""For values that must agree exactly (a padded row is 0; the reference is deterministic)."""
