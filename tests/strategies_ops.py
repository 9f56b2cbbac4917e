"""Hypothesis strategies for the primitive ops: an op with small concrete dims (or symbolic dims
that its arrays determine), its inputs and its parameters — valid by construction, never
filtered.

Every strategy reaches the hard cases: no positions (T = 0 or S = 0), one position, width 1
(d_head = 1, one head), masks of every family (a key-padding mask with no valid key gives
rows with no allowed key), logits around ±1e4, exact ties, and tensors at tiny (≈1e-8),
unit and huge (≈1e4) scale.

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
from spec.masks import Banded, Causal, Full, Intersection, KeyPadding, NoDependence, Relation, RowWise, Window
from spec.op import Primitive
from spec.ops import (
    Add,
    Affine,
    AttentionScores,
    ConcatHeads,
    Conv1d,
    GeluErf,
    GeluTanh,
    LayerNorm,
    LearnedPositional,
    MaskedSoftmax,
    OneHot,
    Relu,
    SinusoidalPositional,
    TokenEmbedding,
    WeightedSum,
)

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


# --- masks -------------------------------------------------------------------------------------


def key_padding(n_keys: int) -> st.SearchStrategy[KeyPadding]:
    """A key-padding mask over ``n_keys`` keys; the one with no valid key is drawn often."""
    _check_range("n_keys", n_keys, n_keys, 0)
    valid = st.one_of(
        st.just((False,) * n_keys),
        st.lists(st.booleans(), min_size=n_keys, max_size=n_keys).map(tuple),
    )
    return valid.map(KeyPadding)


def masks(*, n_keys: int) -> st.SearchStrategy[Relation]:
    """A mask of every family in spec.masks, for a softmax over ``n_keys`` keys."""
    return st.one_of(
        st.just(Causal()),
        widths(max_width=3).map(Banded),  # w ≥ T would be Causal again
        key_padding(n_keys),
        st.just(Full()),
        key_padding(n_keys).map(lambda kp: Intersection((Causal(), kp))),
        st.just(RowWise()),
        st.just(NoDependence()),
        st.tuples(st.integers(-3, 3), st.integers(0, 3)).map(lambda p: Window(p[0], p[0] + p[1])),
    )


MASK_FAMILIES = (Causal, Banded, KeyPadding, Full, Intersection, RowWise, NoDependence, Window)
"""The relation families :func:`masks` draws."""


# --- one strategy per op -----------------------------------------------------------------------


@st.composite
def one_hot_cases(draw: st.DrawFn) -> OpCase:
    n_vocab, T = draw(widths(max_width=6)), draw(lengths())
    op = OneHot(n_vocab=n_vocab, rows=draw(rows_dim(T, dims.T)))
    return OpCase(op, {"ids": draw(token_ids(T, n_vocab=n_vocab))})


@st.composite
def token_embedding_cases(draw: st.DrawFn) -> OpCase:
    n_vocab, d, T = draw(widths(max_width=5)), draw(widths()), draw(lengths())
    X = np.eye(n_vocab)[draw(token_ids(T, n_vocab=n_vocab))].reshape(T, n_vocab)  # one-hot rows
    W_E = draw(real_arrays((n_vocab, d), scale=draw(st.sampled_from(SCALES))))
    symbolic = draw(st.booleans())
    op = TokenEmbedding(n_vocab=dims.n_vocab, d=dims.d_model) if symbolic else TokenEmbedding(n_vocab=n_vocab, d=d, rows=T)
    return OpCase(op, {"X": X}, {"W_E": W_E})


@st.composite
def learned_positional_cases(draw: st.DrawFn) -> OpCase:
    n_ctx, d = draw(widths(max_width=5)), draw(widths())
    T = draw(lengths(max_length=n_ctx))
    W_P = draw(real_arrays((n_ctx, d), scale=draw(st.sampled_from(SCALES))))
    symbolic = draw(st.booleans())
    op = LearnedPositional(n_ctx=dims.n_ctx, d=dims.d_model) if symbolic else LearnedPositional(n_ctx=n_ctx, d=d, rows=T)
    return OpCase(op, {"ids": draw(token_ids(T, n_vocab=50257))}, {"W_P": W_P})


@st.composite
def sinusoidal_positional_cases(draw: st.DrawFn) -> OpCase:
    d, T = draw(widths(max_width=5)), draw(lengths(max_length=6))
    base = draw(st.sampled_from([10000, 100, 2]))
    op = SinusoidalPositional(d=d, rows=draw(rows_dim(T, dims.T)), base=base)
    return OpCase(op, {"ids": draw(token_ids(T, n_vocab=50257))})


@st.composite
def layer_norm_cases(draw: st.DrawFn) -> OpCase:
    d, T, bias = draw(widths()), draw(lengths()), draw(st.booleans())
    x = draw(dyadic_arrays((T, d), scale=draw(st.sampled_from(DYADIC_SCALES))))
    params = {"gamma": draw(real_arrays((d,), scale=draw(st.sampled_from(SCALES))))}
    if bias:
        params["beta"] = draw(real_arrays((d,), scale=draw(st.sampled_from(SCALES))))
    eps = draw(st.sampled_from([1e-5, 1e-6, 1e-12]))
    symbolic = draw(st.booleans())
    op = LayerNorm(d=dims.d_model, eps=eps, bias=bias) if symbolic else LayerNorm(d=d, eps=eps, bias=bias, rows=T)
    return OpCase(op, {"x": x}, params)


@st.composite
def affine_cases(draw: st.DrawFn) -> OpCase:
    d_in, d_out, T, bias = draw(widths()), draw(widths()), draw(lengths()), draw(st.booleans())
    x = draw(dyadic_arrays((T, d_in), scale=draw(st.sampled_from(DYADIC_SCALES))))
    params = {"W": draw(dyadic_arrays((d_in, d_out), scale=draw(st.sampled_from(DYADIC_SCALES))))}
    if bias:
        params["b"] = draw(real_arrays((d_out,), scale=draw(st.sampled_from(SCALES))))
    symbolic = draw(st.booleans())
    op = (
        Affine(d_in=dims.d_model, d_out=dims.d_mlp, bias=bias)
        if symbolic
        else Affine(d_in=d_in, d_out=d_out, bias=bias, rows=T)
    )
    return OpCase(op, {"x": x}, params)


def elementwise_cases(cls: type[GeluErf] | type[GeluTanh] | type[Relu]) -> st.SearchStrategy[OpCase]:
    """Cases for an element-wise activation: generic inputs at every scale, ±0 common."""

    @st.composite
    def cases(draw: st.DrawFn) -> OpCase:
        d, T = draw(widths()), draw(lengths())
        x = draw(real_arrays((T, d), scale=draw(st.sampled_from(SCALES))))
        op = cls(d=dims.d_model) if draw(st.booleans()) else cls(d=d, rows=T)
        return OpCase(op, {"x": x})

    return cases()


@st.composite
def add_cases(draw: st.DrawFn) -> OpCase:
    d, T = draw(widths()), draw(lengths())
    a = draw(real_arrays((T, d), scale=draw(st.sampled_from(SCALES))))
    b = -a if draw(st.booleans()) else draw(real_arrays((T, d), scale=draw(st.sampled_from(SCALES))))  # −a: y = 0 exactly
    op = Add(d=dims.d_model) if draw(st.booleans()) else Add(d=d, rows=T)
    return OpCase(op, {"a": a, "b": b})


@st.composite
def attention_scores_cases(draw: st.DrawFn) -> OpCase:
    T, S, d_head = draw(lengths()), draw(lengths()), draw(widths())
    Q = draw(dyadic_arrays((T, d_head), scale=draw(st.sampled_from(DYADIC_SCALES))))
    K = draw(dyadic_arrays((S, d_head), scale=draw(st.sampled_from(DYADIC_SCALES))))
    if draw(st.booleans()):  # symbolic: every dim bound from Q and K, the scale stays 1/√d_head
        op = AttentionScores(d_head=dims.d_head, scale=1 / sympy.sqrt(dims.d_head))
    else:
        scale = draw(st.sampled_from([1 / sympy.sqrt(d_head), sympy.Integer(1), sympy.Rational(1, d_head), sympy.Rational(1, 8)]))
        op = AttentionScores(d_head=d_head, scale=scale, q_rows=T, k_rows=S)
    return OpCase(op, {"Q": Q, "K": K})


@st.composite
def masked_softmax_cases(draw: st.DrawFn) -> OpCase:
    T = draw(lengths())
    S = T if draw(st.booleans()) else draw(lengths())  # self-attention (S = T) half the time
    mask = draw(masks(n_keys=S))
    op = MaskedSoftmax(mask=mask, q_rows=draw(rows_dim(T, dims.T)), k_rows=draw(rows_dim(S, dims.S)))
    return OpCase(op, {"x": draw(logits((T, S)))})


@st.composite
def weighted_sum_cases(draw: st.DrawFn) -> OpCase:
    T, S, d_v = draw(lengths()), draw(lengths()), draw(widths())
    A = draw(dyadic_arrays((T, S), scale=draw(st.sampled_from(DYADIC_SCALES)), nonnegative=draw(st.booleans())))
    V = draw(dyadic_arrays((S, d_v), scale=draw(st.sampled_from(DYADIC_SCALES))))
    op = WeightedSum(d_v=dims.d_head) if draw(st.booleans()) else WeightedSum(d_v=d_v, q_rows=T, k_rows=S)
    return OpCase(op, {"A": A, "V": V})


@st.composite
def concat_heads_cases(draw: st.DrawFn) -> OpCase:
    n_heads, d_head, T = draw(widths()), draw(widths()), draw(lengths())
    scale = draw(st.sampled_from(SCALES))
    z = {f"z_{h}": draw(real_arrays((T, d_head), scale=scale)) for h in range(n_heads)}
    op = ConcatHeads(n_heads=n_heads, d_head=dims.d_head) if draw(st.booleans()) else ConcatHeads(n_heads=n_heads, d_head=d_head, rows=T)
    return OpCase(op, z)


@st.composite
def conv1d_cases(draw: st.DrawFn) -> OpCase:
    d_in, d_out, T, bias = draw(widths()), draw(widths()), draw(lengths()), draw(st.booleans())
    kernel = draw(widths(max_width=3))
    pad_left = draw(st.integers(0, kernel - 1))  # kernel − 1: causal; less: reads later rows
    x = draw(dyadic_arrays((T, d_in), scale=draw(st.sampled_from(DYADIC_SCALES))))
    params = {"W": draw(dyadic_arrays((kernel, d_in, d_out), scale=draw(st.sampled_from(DYADIC_SCALES))))}
    if bias:
        params["b"] = draw(real_arrays((d_out,), scale=draw(st.sampled_from(SCALES))))
    sizes = dict(d_in=dims.d_model, d_out=dims.d_mlp) if draw(st.booleans()) else dict(d_in=d_in, d_out=d_out, rows=T)
    op = Conv1d(kernel=kernel, pad_left=pad_left, pad_right=kernel - 1 - pad_left, bias=bias, **sizes)
    return OpCase(op, {"x": x}, params)
