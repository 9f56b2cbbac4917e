"""Hypothesis strategies for the exact spec-vs-reference checks: an op (from its own record,
``Primitive.examples``) with small concrete dims (or symbolic dims that its arrays determine),
its inputs and its parameters — valid by construction, never filtered. Nothing here is per op:
what each array holds comes from the op's ``operands``.

Every case reaches the hard cases: no positions (T = 0 or S = 0), one position, width 1
(d_head = 1, one head), masks of every family (the op's examples draw them; a key-padding mask
with no valid key gives rows with no allowed key), logits around ±1e4, exact ties, and tensors
at tiny (≈1e-8), unit and huge (≈1e4) scale.

**Why some tensors are dyadic.** The comparison (tests/test_spec_vs_reference.py) is
max|ref − exact| ≤ 1e-12 · max|exact|. A float64 sum of products Σ x_i W_i has an error of
order ε Σ|x_i W_i|, which is not small relative to |Σ x_i W_i| when the terms cancel; that is
the conditioning of the sum, not a disagreement between spec and reference, and generic
floats find it (x = 3, W = 0.1, b = −0.3). So the operands of sums of products are *dyadic*:
scale · k / 16 with |k| ≤ 64 and scale a power of two (2^-27 ≈ 7.5e-9 is "tiny", 2^13 = 8192
"huge"), for which float64 sums of products are exact. Tensors that only meet one rounding per
entry (biases, gains, element-wise inputs, logits, tables) are generic floats at decimal
scales 1e-8, 1, 1e4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from spec import dims
from spec.op import PRIMITIVES, Operand, Primitive
from spec.types import Axis, Element

SCALES = (1e-8, 1.0, 1e4)
"""Decimal magnitudes of generic tensors: tiny, unit, huge."""
DYADIC_SCALES = (2.0**-27, 1.0, 2.0**13)
"""The powers of two nearest the decimal scales, for the operands of sums of products."""


@dataclass(frozen=True)
class OpCase:
    """One op with the arrays to apply it to."""

    op: Primitive
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


# --- sizes -------------------------------------------------------------------------------------


def _check_range(name: str, low: int, high: int, least: int) -> None:
    if not (isinstance(low, int) and isinstance(high, int) and least <= low <= high):
        raise InvalidArgument(
            f"{name}=({low!r}, {high!r}), but expected whole numbers {least} ≤ low ≤ high; "
            "sizes count positions or features"
        )


def lengths(*, min_length: int = 0, max_length: int = 4) -> st.SearchStrategy[int]:
    """Sequence lengths (T, S): 0 (no positions) and 1 included by default."""
    _check_range("lengths", min_length, max_length, 0)
    return st.integers(min_length, max_length)


def widths(*, min_width: int = 1, max_width: int = 4) -> st.SearchStrategy[int]:
    """Feature widths (d, d_head, n_heads, n_vocab, …): ≥ 1, and 1 included by default."""
    _check_range("widths", min_width, max_width, 1)
    return st.integers(min_width, max_width)


@st.composite
def rows_dim(draw: st.DrawFn, n_rows: int, symbol: sympy.Symbol) -> sympy.Expr | int:
    """An op's row count: the concrete ``n_rows``, or the glossary ``symbol`` to be bound
    from the arrays (which exercises binding in spec.exact)."""
    return draw(st.sampled_from([n_rows, symbol]))


# --- tensors -----------------------------------------------------------------------------------


def real_arrays(shape: tuple[int, ...], *, scale: float = 1.0) -> st.SearchStrategy[np.ndarray]:
    """Generic float64 entries in [−8·scale, 8·scale]; ±0 and ±scale are common, so are repeated
    values (ties)."""
    if not (isinstance(scale, float) and 0.0 < scale < 1e300):
        raise InvalidArgument(f"scale={scale!r}, but expected a positive float")
    elements = st.one_of(
        st.floats(-8 * scale, 8 * scale, allow_nan=False, allow_infinity=False, allow_subnormal=False),
        st.sampled_from([0.0, -0.0, scale, -scale]),
    )
    return hnp.arrays(np.float64, shape, elements=elements)


def dyadic_arrays(
    shape: tuple[int, ...], *, scale: float = 1.0, nonnegative: bool = False
) -> st.SearchStrategy[np.ndarray]:
    """Entries scale · k / 16 with whole |k| ≤ 64 (k ≥ 0 if ``nonnegative``): with ``scale`` a
    power of two, float64 sums of a few products of these are exact."""
    mantissa, exponent = np.frexp(scale)
    if mantissa != 0.5:
        raise InvalidArgument(f"scale={scale!r}, but expected a power of two (see DYADIC_SCALES)")
    k = st.integers(0 if nonnegative else -64, 64)
    return hnp.arrays(np.float64, shape, elements=k.map(lambda k: scale * k / 16))


def token_ids(n_rows: int, *, n_vocab: int) -> st.SearchStrategy[np.ndarray]:
    """A sequence of ``n_rows`` token ids in [0, n_vocab), as int64."""
    _check_range("n_vocab", n_vocab, n_vocab, 1)
    return hnp.arrays(np.int64, (n_rows,), elements=st.integers(0, n_vocab - 1))


def logits(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Attention logits: spread over [−30, 30] (where softmax weights are not negligible) around
    0, +1e4 or −1e4, with gaps of 1e4 and 2e4 inside a row, and exact ties."""
    offsets = st.sampled_from([0.0, 1e4, -1e4])
    elements = st.one_of(
        st.floats(-30.0, 30.0, allow_nan=False, allow_subnormal=False),
        st.sampled_from([0.0, 1.0, 1e4, -1e4, -2e4]),
    )
    return st.tuples(offsets, hnp.arrays(np.float64, shape, elements=elements)).map(lambda p: p[0] + p[1])


# --- one generic case strategy, from each op's own record --------------------------------------


def arrays_for(op: Primitive, name: str, shape: tuple[int, ...], token: bool, one_hot: bool) -> st.SearchStrategy[np.ndarray]:
    """Values for input or parameter ``name`` of a bound ``op``, by what it holds
    (``Primitive.operands``): dyadic operands of sums of products (exact in float64), attention
    logits with ties and ±1e4, non-negative dyadic weights, generic reals at every scale."""
    if token:
        return token_ids(shape[0], n_vocab=op.id_bound() or 50257)
    if one_hot:
        return token_ids(shape[0], n_vocab=shape[1]).map(lambda ids: np.eye(shape[1])[ids].reshape(shape))
    operand = op.operand(name)
    if operand is Operand.PRODUCT:
        return st.sampled_from(DYADIC_SCALES).flatmap(lambda scale: dyadic_arrays(shape, scale=scale))
    if operand is Operand.WEIGHTS:
        return st.tuples(st.sampled_from(DYADIC_SCALES), st.booleans()).flatmap(
            lambda p: dyadic_arrays(shape, scale=p[0], nonnegative=p[1])
        )
    if operand is Operand.SCORES:
        return logits(shape)
    return st.sampled_from(SCALES).flatmap(lambda scale: real_arrays(shape, scale=scale))


@st.composite
def op_cases(draw: st.DrawFn, kind: str) -> OpCase:
    """A case for the registered primitive ``kind``: an instance from the op's own
    :meth:`~spec.op.Primitive.examples`, sizes for the dims it leaves symbolic (T and S from 0,
    widths from 1), and its arrays by :func:`arrays_for`. The case keeps the op symbolic (to be
    bound from the arrays' shapes, as spec.exact and the interpreters do) when the arrays
    determine every symbolic dim, else it gives the op bound."""
    op = draw(PRIMITIVES[kind].examples(), label="op")
    sizes = {
        symbol: draw(lengths() if symbol in (dims.T, dims.S) else widths(), label=str(symbol))
        for symbol in sorted(op.free_dims(), key=str)
    }
    bound = op.bind(sizes)
    inputs = {
        name: draw(arrays_for(bound, name, tuple(int(d) for d in ttype.shape), ttype.element is Element.TOKEN, Axis.ONE_HOT in ttype.axes), label=name)
        for name, ttype in bound.inputs().items()
    }
    params = {name: draw(arrays_for(bound, name, tuple(int(d) for d in shape), False, False), label=name) for name, shape in bound.params().items()}
    seen_in_arrays = {s for t in op.inputs().values() for d in t.shape for s in sympy.sympify(d).free_symbols}
    seen_in_arrays |= {s for shape in op.params().values() for d in shape for s in sympy.sympify(d).free_symbols}
    symbolic = op.free_dims() <= seen_in_arrays and draw(st.booleans(), label="symbolic op")
    return OpCase(op if symbolic else bound, inputs, params)
