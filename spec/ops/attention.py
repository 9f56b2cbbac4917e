"""The primitives of one attention head: scores, masked softmax, weighted sum; and the
concatenation of heads.

Dependency rules here relate an output *entry's* positions to input rows: for the scores
(T × S, axes pos × key_pos) entry (t, s) reads Q row t and K row s (``KeyRow``); the masked
softmax's entry (t, s) reads scores (t, s') for s' ∈ A_t only (``WithinRow``) and is exactly 0
outside A_t (its ``support``); the weighted sum's row t reads V rows s where A[t, s] may be
non-zero (``SupportOf("A")``). Composed (proofs/dependency.py), a head's row t reads the rows
s ∈ A_t of its key/value input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec import dims as D
from spec.dims import S, T
from spec.masks import (
    Banded,
    Causal,
    Full,
    Intersection,
    KeyPadding,
    KeyRow,
    NoDependence,
    Relation,
    RowWise,
    SupportOf,
    Window,
    WithinRow,
)
from spec.op import Operand, Primitive, register
from spec.ops._base import counts, dummy, widths
from spec.types import Axis, TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


def scores_type(q_rows: sympy.Expr, k_rows: sympy.Expr) -> TensorType:
    """A T × S matrix of query-key pairs."""
    return TensorType((sympy.sympify(q_rows), sympy.sympify(k_rows)), (Axis.POSITION, Axis.KEY))


@register
@dataclass(frozen=True)
class AttentionScores(Primitive):
    """Scaled dot products of queries and keys: scale · Q Kᵀ. The scale is an attribute
    (1/√d_head by default, as in Vaswani et al.; other models change it)."""

    kind: ClassVar[str] = "attention_scores"
    notation: ClassVar[str] = r"⟦⟨:softcap⟩ \tanh\left(⟨:scale⟩\, ⟨Q⟩ ⟨K⟩^\top / ⟨:softcap⟩\right) ‖ ⟨:scale⟩\, ⟨Q⟩ ⟨K⟩^\top⟧"
    title: ClassVar[str] = "attention scores"
    latex: ClassVar[str] = (
        r"a_{ts} = \mathrm{scale} \sum_{k} Q_{tk} K_{sk} \qquad "
        r"A^{\mathrm{pre}}_{ts} = \begin{cases} a_{ts} & \text{no cap} \\ c \tanh(a_{ts} / c) & \text{softcap } c \end{cases}"
    )
    citation: ClassVar[str] = (
        "Vaswani et al. 2017 §3.2.1: QKᵀ/√d_k; scaled because the variance of a dot product of "
        "d_k unit-variance terms is d_k. d_k ↦ d_head."
    )

    operands: ClassVar = {"Q": Operand.PRODUCT, "K": Operand.PRODUCT}

    d_head: sympy.Expr
    scale: sympy.Expr
    q_rows: sympy.Expr = T
    k_rows: sympy.Expr = S
    softcap: float | None = None
    """Score soft-capping (Gemma 2's ``attn_logit_softcapping``): c · tanh(a / c) of each scaled
    score a (spec/ops/softcap.py), before the mask; None: none."""

    def check(self) -> None:
        if self.softcap is not None:
            from spec.ops.softcap import check_cap

            check_cap(self.softcap, "AttentionScores")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        symbolic = st.just(cls(D.d_head, 1 / sympy.sqrt(D.d_head)))  # every dim bound from Q and K
        scales = [lambda d: 1 / sympy.sqrt(d), lambda d: sympy.Integer(1), lambda d: sympy.Rational(1, 8), lambda d: sympy.Integer(2)]
        concrete = st.builds(
            lambda d, scale, k_rows: cls(d, scale(d), T, k_rows),
            counts(1, 4), st.sampled_from(scales), st.sampled_from([T, S]),
        )
        capped = st.builds(lambda d, cap: cls(d, 1 / sympy.sqrt(d), T, S, cap), counts(1, 4), st.sampled_from([50.0, 1.0, 0.25]))
        return st.one_of(concrete, symbolic, capped)

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(1, 1, n, n), cls(2, sympy.Rational(1, 2), n, n, 1.5)]

    def inputs(self) -> dict[str, TensorType]:
        return {"Q": rows(self.q_rows, self.d_head), "K": rows(self.k_rows, self.d_head)}

    def output(self) -> TensorType:
        return scores_type(self.q_rows, self.k_rows)

    def dependency(self) -> dict[str, Relation]:
        return {"Q": RowWise(), "K": KeyRow()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, s = index
        Q, K = inputs["Q"], inputs["K"]
        k = dummy("k")
        a = sympy.sympify(self.scale) * sympy.Sum(Q[t, k] * K[s, k], (k, 0, Q.shape[1] - 1))
        if self.softcap is None:
            return a
        from spec.ops.softcap import soft_cap

        return soft_cap(a, self.softcap)


@register
@dataclass(frozen=True)
class MaskedSoftmax(Primitive):
    """Softmax of each row over its allowed set A_t = {s : mask.allowed(t, s)}; 0 outside A_t;
    a row with A_t = ∅ is all zeros (docs/conventions.md; PyTorch SDPA's safe softmax, ONNX opset-23).

    Numerically the reference subtracts m_t = max over A_t first; mathematically that changes
    nothing (softmax is shift-invariant, a theorem in proofs/), so the exact definition below
    omits it.
    """

    kind: ClassVar[str] = "masked_softmax"
    notation: ClassVar[str] = r"\operatorname{softmax}_{⟨:mask⟩}\left(⟨x⟩\right)"
    title: ClassVar[str] = "masked softmax"
    latex: ClassVar[str] = (
        r"m_t = \max_{s' \in A_t} x_{ts'} \qquad "
        r"e_{ts} = [s \in A_t]\, \exp(x_{ts} - m_t) \qquad "
        r"Z_t = \sum_{s'} e_{ts'} \qquad "
        r"y_{ts} = \begin{cases} e_{ts} / Z_t & A_t \ne \varnothing \\ 0 & A_t = \varnothing \end{cases}"
    )
    citation: ClassVar[str] = (
        "Vaswani et al. 2017 §3.2.3 (masking by −∞ before the softmax); the empty-row rule follows "
        "PyTorch's safe softmax in scaled_dot_product_attention and ONNX's opset-23 errata."
    )

    operands: ClassVar = {"x": Operand.SCORES}

    mask: Relation
    q_rows: sympy.Expr = T
    k_rows: sympy.Expr = S

    def check(self) -> None:
        if not isinstance(self.mask, Relation):
            from spec.errors import ConfigError

            raise ConfigError(f"mask={self.mask!r}, but expected a spec.masks.Relation [MaskedSoftmax]; e.g. Causal()")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        """Every mask family; a key-padding mask fixes S (its length), and often has no valid key,
        so rows with no allowed key are drawn."""
        from hypothesis import strategies as st

        families: list[SearchStrategy[Relation]] = [
            st.just(Causal()), counts(1, 4).map(Banded), st.just(Full()), st.just(RowWise()), st.just(NoDependence()),
            st.tuples(st.integers(-3, 3), st.integers(0, 3)).map(lambda p: Window(p[0], p[0] + p[1])),
        ]
        free = st.builds(lambda mask, keys: cls(mask, T, keys), st.one_of(*families), st.sampled_from([T, S]))

        def padded(keys: int) -> SearchStrategy[Primitive]:
            valid = st.one_of(st.just((False,) * keys), st.lists(st.booleans(), min_size=keys, max_size=keys).map(tuple))
            mask = st.one_of(valid.map(KeyPadding), valid.map(lambda v: Intersection((Causal(), KeyPadding(v)))))
            return mask.map(lambda m: cls(m, T, keys))

        return st.one_of(free, counts(1, 6).flatmap(padded))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        masks: list[Relation] = [
            Causal(), Banded(2), Full(), KeyPadding(tuple(k % 2 == 0 for k in range(n))),
            Intersection((Causal(), KeyPadding(tuple(k != 1 for k in range(n))))), Window(-1, 1),
        ]
        return [cls(m, n, n) for m in masks]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": scores_type(self.q_rows, self.k_rows)}

    def output(self) -> TensorType:
        return scores_type(self.q_rows, self.k_rows)

    def dependency(self) -> dict[str, Relation]:
        return {"x": WithinRow(self.mask)}

    def support(self) -> Relation:
        return self.mask

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, s = index
        x = inputs["x"]
        s2 = dummy("s")
        allowed = self.mask.indicator(t, s)
        Z = sympy.Sum(self.mask.indicator(t, s2) * sympy.exp(x[t, s2]), (s2, 0, x.shape[1] - 1))
        n_allowed = sympy.Sum(self.mask.indicator(t, s2), (s2, 0, x.shape[1] - 1))
        return sympy.Piecewise((allowed * sympy.exp(x[t, s]) / Z, sympy.Gt(n_allowed, 0)), (0, True))


@register
@dataclass(frozen=True)
class WeightedSum(Primitive):
    """Each query's output is the attention-weighted sum of the value rows: Z = A V."""

    kind: ClassVar[str] = "weighted_sum"
    notation: ClassVar[str] = r"⟨A⟩ ⟨V⟩"
    title: ClassVar[str] = "attention-weighted sum of values"
    latex: ClassVar[str] = r"z_{tk} = \sum_{s} A_{ts} V_{sk}"
    citation: ClassVar[str] = "Vaswani et al. 2017 eq. (1): softmax(·) V."

    operands: ClassVar = {"A": Operand.WEIGHTS, "V": Operand.PRODUCT}

    d_v: sympy.Expr
    q_rows: sympy.Expr = T
    k_rows: sympy.Expr = S

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, widths(4, D.d_head), st.just(T), st.sampled_from([T, S]))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(1, n, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"A": scores_type(self.q_rows, self.k_rows), "V": rows(self.k_rows, self.d_v)}

    def output(self) -> TensorType:
        return rows(self.q_rows, self.d_v)

    def dependency(self) -> dict[str, Relation]:
        return {"A": RowWise(), "V": SupportOf("A")}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, k = index
        A, V = inputs["A"], inputs["V"]
        s = dummy("s")
        return sympy.Sum(A[t, s] * V[s, k], (s, 0, A.shape[1] - 1))


@register
@dataclass(frozen=True)
class ConcatHeads(Primitive):
    """Concatenate the heads' outputs along features: column h·d_head + k is head h's k."""

    kind: ClassVar[str] = "concat_heads"
    notation: ClassVar[str] = r"\left[⟨z_*⟩\right]"
    title: ClassVar[str] = "concatenate heads"
    latex: ClassVar[str] = r"y_{t,\,h d_\mathrm{head} + k} = (z_h)_{tk}"
    citation: ClassVar[str] = "Vaswani et al. 2017 §3.2.2: Concat(head_1, …, head_h) W^O."

    n_heads: int
    d_head: sympy.Expr
    rows: sympy.Expr = T

    def check(self) -> None:
        if isinstance(self.n_heads, bool) or not isinstance(self.n_heads, int):
            from spec.errors import ConfigError

            raise ConfigError(f"n_heads={self.n_heads!r}, but expected a whole number (one input port per head) [ConcatHeads]")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        return st.builds(cls, counts(1, 3), widths(3, D.d_head))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, 1, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {f"z_{h}": rows(self.rows, self.d_head) for h in range(self.n_heads)}

    def output(self) -> TensorType:
        return rows(self.rows, self.n_heads * sympy.sympify(self.d_head))

    def dependency(self) -> dict[str, Relation]:
        return {f"z_{h}": RowWise() for h in range(self.n_heads)}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        dh = sympy.sympify(self.d_head)
        cases = [
            (inputs[f"z_{h}"][t, j - h * dh], sympy.And(sympy.Ge(j, h * dh), sympy.Lt(j, (h + 1) * dh)))
            for h in range(self.n_heads)
        ]
        return sympy.Piecewise(*cases, (0, True))
