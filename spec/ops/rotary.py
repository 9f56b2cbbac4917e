"""Rotary position embedding (RoPE): each pair of features of row t is rotated by the angle
t·ω_k, so a dot product of a rotated query (row t) and a rotated key (row s) depends on the
positions only through t − s (proofs/, ``rotary_relative_position``).

The op reads the *position* of each row, not only its values. In the spec one sequence is
evaluated unpadded, so row t has position t; fast/ reads each row's position id from the batch
(left padding shifts them). Its dependency rule is row-wise: row t of the output reads row t of
the input (and the number t), nothing else — so incremental decoding needs no cache for it, and
the keys a KV cache holds are the rotated ones.

Two pairing conventions, both named (docs/conventions.md, "The Llama family"):

* ``half`` — pair k is features (k, k + d/2), Hugging Face's ``rotate_half`` layout (GPT-NeoX);
* ``interleaved`` — pair k is features (2k, 2k + 1), the adjacent pairs of Su et al. and of
  Meta's original Llama code (complex multiplication of adjacent pairs).

Frequencies ω_k = base^(−2k/d) for k = 0 … d/2 − 1 (Su et al. 2021 eq. 15 with base 10000),
then one of the published scalings: ``linear`` (ω_k / factor; position interpolation, Chen et
al. 2023) or ``llama3`` (Meta's Llama 3.1 rule: high frequencies kept, low ones divided by the
factor, a smooth ramp between). Other scalings change more than the frequencies and are refused
by name (:data:`REFUSED_SCALINGS`).

Partial rotary (GPT-NeoX, Pythia: ``rotary_pct``) rotates only the first ``rotated`` features of
each head, as a rotary embedding of width ``rotated`` (its frequencies and pairs), and passes the
others unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec.errors import ConfigError
from spec.masks import Relation, RowWise
from spec.op import Primitive, register
from spec.ops._base import DEFAULT_ROWS
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

PAIRINGS = ("half", "interleaved")
"""Which features form a rotated pair: (k, k + d/2) or (2k, 2k + 1)."""

SCALINGS = ("none", "linear", "llama3")
"""The frequency scalings the spec models."""

REFUSED_SCALINGS: dict[str, str] = {
    "dynamic": "dynamic NTK scaling recomputes the frequencies from the length of the sequence seen so far, so a "
    "position's encoding depends on how long the sequence is, which the spec does not model",
    "yarn": "YaRN ramps the frequencies between two corrections and also multiplies cos and sin by an attention "
    "factor, which the spec does not model",
    "longrope": "LongRoPE reads per-frequency factor lists and switches between two of them at "
    "original_max_position_embeddings, which the spec does not model",
    "proportional": "proportional RoPE rotates only part of each head with its own frequency layout, which the spec does "
    "not model",
}
"""Published scalings the spec does not model, with the reason each is refused."""


def exact(value: float | int) -> sympy.Rational:
    """A float attribute as the exact binary rational it is."""
    return sympy.Rational(value)


@register
@dataclass(frozen=True)
class Rotary(Primitive):
    """y = R_t x_t: pair k of row t rotated by the angle t·ω_k (see the module docstring).
    ``d`` is the row's width (a head's d_head), even unless ``rotated`` says how many of its first
    features rotate (partial rotary). ``base`` is θ of the frequency formula;
    ``scaling`` with ``factor`` (linear, llama3), and for llama3 ``low_freq_factor``,
    ``high_freq_factor`` and ``original_n_ctx`` (the context length the model was trained at)."""

    kind: ClassVar[str] = "rotary"
    notation: ClassVar[str] = r"\operatorname{RoPE}⟦_{⟨:rotated⟩}⟧\left(⟨x⟩\right)"
    title: ClassVar[str] = "rotary position embedding"
    latex: ClassVar[str] = (
        r"\omega_k = \mathrm{scale}\big(\mathrm{base}^{-2k/d}\big) \qquad "
        r"(a_k, b_k) = \begin{cases} (k,\ k + d/2) & \text{half} \\ (2k,\ 2k + 1) & \text{interleaved} \end{cases} \qquad "
        r"\begin{aligned} y_{t a_k} &= x_{t a_k} \cos(t\,\omega_k) - x_{t b_k} \sin(t\,\omega_k) \\ "
        r"y_{t b_k} &= x_{t b_k} \cos(t\,\omega_k) + x_{t a_k} \sin(t\,\omega_k) \end{aligned} \qquad "
        r"\text{partial: } d = \mathrm{rotated},\ y_{tj} = x_{tj}\ (j \ge \mathrm{rotated})"
    )
    citation: ClassVar[str] = (
        "Su et al. 2021 (RoFormer) eq. 34 (adjacent pairs, θ_i = 10000^(−2(i−1)/d)); Hugging Face's rotate_half "
        "pairs (k, k + d/2) (LlamaRotaryEmbedding, apply_rotary_pos_emb); linear scaling: Chen et al. 2023; llama3 "
        "scaling: Meta's Llama 3.1 apply_scaling (docs/conventions.md, \"The Llama family\")."
    )

    d: sympy.Expr
    base: float = 10000.0
    pairing: str = "half"
    scaling: str = "none"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_n_ctx: int = 8192
    rows: sympy.Expr = DEFAULT_ROWS
    rotated: int | None = None
    """Partial rotary (GPT-NeoX's ``rotary_pct``): only features 0 … rotated − 1 are rotated, as a
    width-``rotated`` rotary embedding of their own (frequencies base^(−2k/rotated), pairs within
    them); the others pass unchanged. None: all d features."""

    def check(self) -> None:
        where = "[Rotary]"
        d = sympy.sympify(self.d)
        if d.is_number and int(d) % 2 and self.rotated is None:
            raise ConfigError(f"d={d}, but expected an even width {where}; rotary embedding rotates pairs of features")
        if self.rotated is not None:
            if isinstance(self.rotated, bool) or not isinstance(self.rotated, int) or self.rotated < 2 or self.rotated % 2:
                raise ConfigError(f"rotated={self.rotated!r}, but expected an even whole number ≥ 2 or None {where}; it counts rotated features")
            if d.is_number and self.rotated > int(d):
                raise ConfigError(f"rotated={self.rotated}, but expected at most d={d} {where}; only a head's own features rotate")
        for name in ("base", "factor", "low_freq_factor", "high_freq_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r}, but expected a finite number > 0 {where}")
        if isinstance(self.original_n_ctx, bool) or not isinstance(self.original_n_ctx, int) or self.original_n_ctx < 1:
            raise ConfigError(f"original_n_ctx={self.original_n_ctx!r}, but expected a whole number ≥ 1 {where}")
        if self.pairing not in PAIRINGS:
            raise ConfigError(
                f"pairing={self.pairing!r}, but expected one of {list(PAIRINGS)} {where}; 'half' is Hugging Face's "
                "rotate_half, 'interleaved' the adjacent pairs of Su et al. and Meta's Llama code"
            )
        if self.scaling in REFUSED_SCALINGS:
            raise ConfigError(f"scaling={self.scaling!r}, but expected one of {list(SCALINGS)} {where}; {REFUSED_SCALINGS[self.scaling]}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"scaling={self.scaling!r}, but expected one of {list(SCALINGS)} {where}")
        if self.scaling == "llama3" and not self.high_freq_factor > self.low_freq_factor:
            raise ConfigError(
                f"high_freq_factor={self.high_freq_factor!r}, but expected more than low_freq_factor={self.low_freq_factor!r} "
                f"{where}; the llama3 ramp divides by their difference"
            )

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        """Even widths, both pairings, every scaling; bases from 2 (fast rotations at small t) to
        Llama 3's 500000; llama3 thresholds that put the frequencies of d = 6 in all three bands."""
        from hypothesis import strategies as st

        plain = st.builds(
            lambda d, base, pairing: cls(d, base, pairing),
            st.sampled_from([2, 4, 6]), st.sampled_from([10000.0, 2.0, 500000.0]), st.sampled_from(PAIRINGS),
        )
        linear = st.builds(
            lambda d, pairing, factor: cls(d, 10000.0, pairing, "linear", factor),
            st.sampled_from([2, 4]), st.sampled_from(PAIRINGS), st.sampled_from([2.0, 0.5, 8.0]),
        )
        llama3 = st.builds(
            lambda pairing, factor: cls(6, 10000.0, pairing, "llama3", factor, 1.0, 8.0, 512),
            st.sampled_from(PAIRINGS), st.sampled_from([8.0, 2.0]),
        )
        partial = st.builds(
            lambda d, rotated, pairing: cls(d, 10000.0, pairing, rows=DEFAULT_ROWS, rotated=rotated),
            st.sampled_from([3, 4, 6]), st.sampled_from([2]), st.sampled_from(PAIRINGS),
        )
        return st.one_of(plain, linear, llama3, partial)

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [
            cls(4, 10000.0, "half", rows=n),
            cls(4, 10000.0, "interleaved", rows=n),
            cls(6, 10000.0, "half", "llama3", 8.0, 1.0, 8.0, 512, n),
            cls(5, 10000.0, "half", rows=n, rotated=2),
        ]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def dependency(self) -> dict[str, Relation]:
        return {"x": RowWise()}

    # -- the math ----------------------------------------------------------------------------

    def frequency(self, k: sympy.Expr, d: sympy.Expr) -> sympy.Expr:
        """ω_k, exactly: base^(−2k/d), then the scaling."""
        omega = exact(self.base) ** (-2 * sympy.sympify(k) / sympy.sympify(d))
        if self.scaling == "none":
            return omega
        factor = exact(self.factor)
        if self.scaling == "linear":
            return omega / factor
        low, high, old = exact(self.low_freq_factor), exact(self.high_freq_factor), sympy.Integer(self.original_n_ctx)
        wavelength = 2 * sympy.pi / omega
        smooth = (old / wavelength - low) / (high - low)
        return sympy.Piecewise(
            (omega, wavelength < old / high),  # high frequencies (short wavelengths): kept
            (omega / factor, wavelength > old / low),  # low frequencies: interpolated by the factor
            ((1 - smooth) * omega / factor + smooth * omega, True),  # between: a linear ramp in 1/wavelength
        )

    def pair(self, j: sympy.Expr, d: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr, int]:
        """For feature j: its pair k, its partner feature, and the sign of the partner's sine
        term (−1 for the first of the pair, +1 for the second); j and d must be numbers."""
        if self.pairing == "half":
            half = sympy.sympify(d) / 2
            return (j, j + half, -1) if j < half else (j - half, j - half, 1)
        return (j / 2, j + 1, -1) if j % 2 == 0 else ((j - 1) / 2, j - 1, 1)

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        x = inputs["x"]
        d = sympy.sympify(x.shape[1])
        if self.rotated is not None:  # partial: features ≥ rotated pass unchanged; the first rotate as a width-rotated op
            d = sympy.Integer(self.rotated)
            if sympy.sympify(j).is_Integer:
                if int(j) >= self.rotated:
                    return x[t, j]
            else:
                inner = dataclasses.replace(self, d=d, rotated=None).definition(index, {"x": _Narrow(x, d)}, params)
                return sympy.Piecewise((inner, sympy.Lt(j, d)), (x[t, j], True))

        def entry(j_: sympy.Expr) -> sympy.Expr:
            k, partner, sign = self.pair(j_, d)
            angle = t * self.frequency(k, d)
            return x[t, j_] * sympy.cos(angle) + sign * x[t, partner] * sympy.sin(angle)

        if sympy.sympify(j).is_Integer and d.is_Integer:
            return entry(sympy.Integer(j))
        if self.pairing == "half":  # symbolic j or d: both halves, selected by j < d/2
            half = d / 2
            first = x[t, j] * sympy.cos(t * self.frequency(j, d)) - x[t, j + half] * sympy.sin(t * self.frequency(j, d))
            second = x[t, j] * sympy.cos(t * self.frequency(j - half, d)) + x[t, j - half] * sympy.sin(t * self.frequency(j - half, d))
            return sympy.Piecewise((first, sympy.Lt(j, half)), (second, True))
        k_even, k_odd = j / 2, (j - 1) / 2
        even = x[t, j] * sympy.cos(t * self.frequency(k_even, d)) - x[t, j + 1] * sympy.sin(t * self.frequency(k_even, d))
        odd = x[t, j] * sympy.cos(t * self.frequency(k_odd, d)) + x[t, j - 1] * sympy.sin(t * self.frequency(k_odd, d))
        return sympy.Piecewise((even, sympy.Eq(sympy.Mod(j, 2), 0)), (odd, True))


class _Narrow:
    """An IndexedBase view whose declared width is the rotated part (for the symbolic partial
    definition: the inner op reads its width from ``x.shape[1]``)."""

    def __init__(self, base: sympy.IndexedBase, d: sympy.Expr) -> None:
        self.base, self.shape = base, (base.shape[0], d)

    def __getitem__(self, index: object) -> sympy.Expr:
        return self.base[index]
