"""The masked softmax: shift invariance, renormalisation, finite mask constants, and the
online (blocked) recurrence fast/ uses."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import sympy
from hypothesis import strategies as st

from proofs.algebra import canonical_dummies, op_matrix, replace_entries
from proofs.core import Kind, Scope, for_all, require, require_zero, theorem
from proofs.theorems._common import IndicatorMask, M, arrays, close, first_branch, index, masks, s, seeds, t
from reference import run_op
from spec import online_softmax as recurrence
from spec.dims import S, T
from spec.masks import Full, KeyPadding, NoDependence, Relation
from spec.ops import MaskedSoftmax, WeightedSum

x = sympy.IndexedBase("x", shape=(T, S))
c = sympy.IndexedBase("c")


def _softmax(op: MaskedSoftmax, scores: np.ndarray) -> np.ndarray:
    """The reference's masked softmax of ``scores``."""
    return run_op(op, {"x": scores})


def softmax_entry(mask: Relation, row: sympy.Expr, col: sympy.Expr, scores: sympy.IndexedBase = x) -> sympy.Expr:
    """y_{row, col} of the spec's masked softmax, from its definition."""
    return MaskedSoftmax(mask).definition((row, col), {"x": scores}, {})


# -- a. shift invariance -------------------------------------------------------------------


def _witness_shift(examples: int) -> None:
    def check(case: tuple[int, int, int, Relation, float]) -> None:
        T_, S_, seed, mask, scale = case
        rng = np.random.default_rng(seed)
        scores, shift = arrays(rng, T_, S_, scale=scale), arrays(rng, T_, 1, scale=100.0)
        op = MaskedSoftmax(mask, T_, S_)
        close(_softmax(op, scores + shift), _softmax(op, scores), "softmax(x + c 1ᵀ) vs softmax(x)", 1e-11)

    sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))
    cases = sizes.flatmap(lambda ts: st.tuples(st.just(ts[0]), st.just(ts[1]), seeds, masks(ts[1]), st.sampled_from([1.0, 10.0, 1e-3])))
    for_all(cases, examples, check)


@theorem(
    name="softmax_shift_invariance",
    title="softmax is invariant to adding a constant to a row",
    statement="For every mask, adding the same number c_t to every score of row t leaves the masked softmax unchanged "
    "(which is why subtracting the row maximum m_t changes nothing).",
    latex=r"\operatorname{softmax}_A(x + c\,\mathbf{1}^\top)_{ts} = \operatorname{softmax}_A(x)_{ts}"
    r"\quad \forall\, x \in \mathbb{R}^{T\times S},\ c \in \mathbb{R}^T",
    hypotheses=("any allowed sets A_t, including empty rows (both sides are then 0)",),
    scope=Scope(Kind.SYMBOLIC, "every T, S, every mask (a symbolic 0/1 indicator m_ts), every x and c"),
    witness=_witness_shift,
    derived_from='`MaskedSoftmax.definition` with a symbolic 0/1 mask (any mask); no other input',
    ops=('masked_softmax',),
)
def softmax_shift_invariance() -> None:
    """The spec's masked-softmax entry is built for a symbolic 0/1 mask; every score x_ts is replaced by x_ts + c_t and the difference simplified to 0 (e^{c_t} factors out of numerator and normaliser)."""
    y = softmax_entry(IndicatorMask(), t, s)
    shifted = replace_entries(y, x, lambda i: x[i] + c[i[0]])
    require(shifted != y, "the shift reaches the definition's scores")
    require_zero(shifted - y, "softmax_A(x + c 1ᵀ) − softmax_A(x)")


# -- a. renormalisation --------------------------------------------------------------------


def _witness_renormalised(examples: int) -> None:
    def check(case: tuple[int, int, int, Relation]) -> None:
        T_, S_, seed, mask = case
        scores = arrays(np.random.default_rng(seed), T_, S_, scale=3.0)
        masked = _softmax(MaskedSoftmax(mask, T_, S_), scores)
        plain = _softmax(MaskedSoftmax(Full(), T_, S_), scores)
        allowed = mask.matrix(T_, S_)
        kept = np.where(allowed, plain, 0.0)
        total = kept.sum(axis=1, keepdims=True)
        want = np.divide(kept, total, out=np.zeros_like(kept), where=allowed.any(axis=1, keepdims=True))
        close(masked, want, "masked softmax vs renormalised softmax", 1e-12)

    sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))
    for_all(sizes.flatmap(lambda ts: st.tuples(st.just(ts[0]), st.just(ts[1]), seeds, masks(ts[1]))), examples, check)


@theorem(
    name="masked_softmax_renormalises",
    title="masked softmax = softmax renormalised over the allowed set",
    statement="Where row t has an allowed key, the masked softmax is the plain softmax of the row, kept on A_t and divided "
    "by its total there; a row with no allowed key is all zeros.",
    latex=r"A_t \neq \varnothing:\ \operatorname{softmax}_A(x)_{ts} = "
    r"\frac{[s \in A_t]\,\operatorname{softmax}(x)_{ts}}{\sum_{s' \in A_t} \operatorname{softmax}(x)_{ts'}};"
    r"\qquad A_t = \varnothing:\ \operatorname{softmax}_A(x)_{t\cdot} = 0",
    hypotheses=("softmax without a subscript is the masked softmax with the full mask",),
    scope=Scope(Kind.SYMBOLIC, "every T, S, every mask (a symbolic 0/1 indicator m_ts), every x"),
    witness=_witness_renormalised,
    derived_from='`MaskedSoftmax.definition` with a symbolic mask and with the full mask (the plain softmax)',
    ops=('masked_softmax',),
)
def masked_softmax_renormalises() -> None:
    """The definition's first case is exactly A_t ≠ ∅ and the other is 0; in the first case the masked entry minus m_ts·softmax(x)_ts / Σ_s' m_ts' softmax(x)_ts' simplifies to 0 (the plain normaliser cancels)."""
    y = softmax_entry(IndicatorMask(), t, s)
    require(isinstance(y, sympy.Piecewise) and len(y.args) == 2, "the definition has a case for empty rows")
    n_allowed = sympy.Sum(M[t, s], (s, 0, S - 1))
    require(canonical_dummies(y.args[0][1]) == canonical_dummies(sympy.Gt(n_allowed, 0)), "the first case is A_t ≠ ∅")
    require(y.args[1] == (0, True), "otherwise (A_t = ∅) the row is 0")
    s2 = index("s")

    def plain(col: sympy.Expr) -> sympy.Expr:
        return softmax_entry(Full(), t, col)

    renormalised = M[t, s] * plain(s) / sympy.Sum(M[t, s2] * plain(s2), (s2, 0, S - 1))
    require_zero(first_branch(y) - renormalised, "softmax_A(x)_ts − m_ts softmax(x)_ts / Σ_s' m_ts' softmax(x)_ts'")


# -- a. finite mask constants --------------------------------------------------------------


def _additive_row(scores: sympy.Expr, allowed: sympy.Expr, constant: sympy.Expr) -> sympy.Expr:
    """Row t of softmax(x + c·[s ∉ A_t]): the plain softmax of the scores with c added where masked."""
    return replace_entries(softmax_entry(Full(), t, s), x, lambda i: x[i] + constant * (1 - allowed.subs(s, i[1])))


def _witness_finite_constant(examples: int) -> None:
    def check(case: tuple[int, int, Relation]) -> None:
        S_, seed, mask = case
        rng = np.random.default_rng(seed)
        scores = arrays(rng, 1, S_, scale=2.0)
        allowed = mask.matrix(1, S_)
        plain = MaskedSoftmax(Full(), 1, S_)
        masked = _softmax(MaskedSoftmax(mask, 1, S_), scores)
        additive = _softmax(plain, scores + np.where(allowed, 0.0, -1e4))
        replaced = _softmax(plain, np.where(allowed, scores, -1e4))
        if allowed.any():  # c = −1e4: within e^{c + 4·2·spread} of the limit
            close(additive, masked, "additive c = −1e4 vs masked softmax", 1e-12)
            close(replaced, masked, "replacement c = −1e4 vs masked softmax", 1e-12)
        else:
            close(additive, _softmax(plain, scores), "empty row, additive: the unmasked softmax", 1e-12)
            close(replaced, np.full((1, S_), 1.0 / S_), "empty row, replacement: uniform 1/S", 1e-15)

    for_all(st.integers(1, 16).flatmap(lambda S_: st.tuples(st.just(S_), seeds, masks(S_))), examples, check)


@theorem(
    name="finite_mask_constant",
    title="a finite mask constant: the limit c → −∞, and what an empty row gets",
    statement="Mask by a number c instead of the set: either add c to the masked scores (additive form) or put c in their "
    "place (replacement form, Hugging Face GPT-2's where(mask, x, finfo.min)), then take the plain softmax. For a row with an "
    "allowed key both tend to the masked softmax as c → −∞. For a row with no allowed key and any finite c, the additive "
    "form gives exactly the plain softmax of the row's scores — attention to keys it may not see, uniform only when the "
    "scores are equal — and the replacement form gives exactly 1/S on every key. (In floating point the additive form "
    "is also uniform once c + x_ts rounds to c for every s, e.g. c = finfo.min.) The spec's masked softmax gives 0.",
    latex=r"y^{c} = \operatorname{softmax}\big(x + c\,[s \notin A_t]\big),\ \ \tilde y^{c} = \operatorname{softmax}\big([s \in A_t]\,x + [s \notin A_t]\,c\big):"
    r"\quad A_t \neq \varnothing \Rightarrow \lim_{c \to -\infty} y^{c}_{ts} = \lim_{c \to -\infty} \tilde y^{c}_{ts} = \operatorname{softmax}_A(x)_{ts};"
    r"\quad A_t = \varnothing \Rightarrow y^{c}_{t\cdot} = \operatorname{softmax}(x_{t\cdot}),\ \tilde y^{c}_{ts} = \tfrac{1}{S}",
    hypotheses=("c is a real number (finite); the limit is c → −∞",),
    scope=Scope(
        Kind.MIXED,
        "empty rows: symbolic in S, x, c; the limit: symbolic in S, x and the mask (e^c = ε → 0⁺, the denominator at "
        "ε = 0 is Σ_{s∈A_t} e^{x_ts} > 0), and cross-checked with sympy.limit for every mask row with S ≤ 2",
    ),
    witness=_witness_finite_constant,
    derived_from="`MaskedSoftmax.definition`: with the full mask (the plain softmax the finite-constant forms take), with a symbolic mask (the limit), and for an empty row the spec's own value — the definition with a symbolic mask whose row is all 0, and with `NoDependence` — checked to be 0",
    ops=('masked_softmax',),
)
def finite_mask_constant() -> None:
    """The spec's value on an empty row is read off the masked softmax's definition (a symbolic mask with row t all 0, and the mask that allows nothing): 0. Empty rows of the finite forms: substitute x + c (additive) or c (replacement) into the plain softmax and simplify. The limit: with ε = e^c, e^{c[s∉A]} = m + (1 − m)ε exactly for m ∈ {0, 1}; both forms are rational in ε, their denominator at ε = 0 is Σ_{s∈A_t} e^{x_ts} > 0, so the limit is the value at ε = 0, which equals the masked definition. sympy.limit confirms every small case."""
    cc, eps = sympy.Symbol("c", real=True), sympy.Symbol("epsilon", positive=True)
    # "The spec's masked softmax gives 0" on an empty row, from its own definition: any mask whose
    # row t allows no key (a symbolic mask with m_ts = 0 for every s), and the mask that allows none.
    empty = replace_entries(softmax_entry(IndicatorMask(), t, s), M, lambda i: sympy.Integer(0))
    require(sympy.sympify(empty.doit()) == 0, f"the spec's masked softmax on a row with A_t = ∅ is 0 (its definition gives {empty.doit()})")
    none = softmax_entry(NoDependence(), t, s)
    require(sympy.sympify(none.doit()) == 0, f"the spec's masked softmax with no allowed key is 0 (its definition gives {none.doit()})")
    # Empty row, additive: every score of the row gets c — the plain softmax of the row.
    empty_additive = _additive_row(x, sympy.Integer(0), cc)
    require_zero(empty_additive - softmax_entry(Full(), t, s), "additive form, empty row: softmax(x + c) − softmax(x)")
    # Empty row, replacement: every score is c.
    empty_replaced = replace_entries(softmax_entry(Full(), t, s), x, lambda i: cc)
    require_zero(empty_replaced - 1 / S, "replacement form, empty row: softmax(c, …, c) − 1/S")
    # The limit, for any mask: write e^{c·[s ∉ A]} = m + (1 − m)·ε with ε = e^c (exact for m ∈ {0, 1}).
    s2 = index("s")

    def gate(col: sympy.Expr) -> sympy.Expr:
        return M[t, col] + (1 - M[t, col]) * eps

    additive = sympy.exp(x[t, s]) * gate(s) / sympy.Sum(sympy.exp(x[t, s2]) * gate(s2), (s2, 0, S - 1))
    replaced = (M[t, s] * sympy.exp(x[t, s]) + (1 - M[t, s]) * eps) / sympy.Sum(
        M[t, s2] * sympy.exp(x[t, s2]) + (1 - M[t, s2]) * eps, (s2, 0, S - 1)
    )
    masked = first_branch(softmax_entry(IndicatorMask(), t, s))
    for name, form in (("additive", additive), ("replacement", replaced)):
        numerator, denominator = sympy.fraction(form)
        at_zero = denominator.subs(eps, 0)
        require_zero(at_zero - sympy.Sum(M[t, s2] * sympy.exp(x[t, s2]), (s2, 0, S - 1)),
                     f"{name}: the denominator at ε = 0 is Σ_(s∈A_t) e^(x_ts), positive when A_t ≠ ∅ (continuity)")
        require_zero(form.subs(eps, 0) - masked, f"{name}: the value at ε = 0 is the masked softmax")
    # Cross-check with sympy's limit on every concrete mask row, S ≤ 2.
    for S_ in range(1, 3):
        xs = sympy.symbols(f"x0:{S_}", real=True)
        for pattern in itertools.product((0, 1), repeat=S_):
            if not any(pattern):
                continue
            Z = sum(sympy.exp(xs[k]) for k in range(S_) if pattern[k])
            for col in range(S_):
                want = pattern[col] * sympy.exp(xs[col]) / Z
                add = sympy.exp(xs[col] + cc * (1 - pattern[col])) / sum(sympy.exp(xs[k] + cc * (1 - pattern[k])) for k in range(S_))
                rep = sympy.exp(xs[col] if pattern[col] else cc) / sum(sympy.exp(xs[k] if pattern[k] else cc) for k in range(S_))
                for form in (add, rep):
                    require_zero(sympy.limit(form, cc, -sympy.oo) - want, f"lim c→−∞, S={S_}, A_t={pattern}, s={col}")


# -- b. the online softmax -----------------------------------------------------------------


class SympyOps:
    """spec/online_softmax.py's operations on one query row, exactly: a block is a list of sympy
    expressions (−∞ where a key is not allowed), the state's entries are single expressions."""

    def rowmax(self, x: Any) -> Any:
        return sympy.Max(*x)

    def maximum(self, a: Any, b: Any) -> Any:
        return sympy.Max(a, b)

    def finite_or_zero(self, m: Any) -> Any:
        return sympy.Integer(0) if m == -sympy.oo else m

    def exp_shifted(self, x: Any, shift: Any) -> Any:
        return [sympy.exp(e - shift) for e in x] if isinstance(x, list) else sympy.exp(x - shift)

    def rowsum(self, p: Any) -> Any:
        return sympy.Add(*p)

    def weighted(self, p: Any, v: Any) -> Any:
        return sympy.Add(*[a * b for a, b in zip(p, v, strict=True)])

    def scale_add(self, a: Any, r: Any, b: Any) -> Any:
        return a * r + b

    def ratio(self, acc: Any, l: Any) -> Any:
        return sympy.Integer(0) if l == 0 else acc / l


class Float64Ops:
    """The same operations on float64 arrays of rows (T, ·), without working in place."""

    def rowmax(self, x: Any) -> Any:
        return x.max(axis=-1, keepdims=True)

    def maximum(self, a: Any, b: Any) -> Any:
        return np.maximum(a, b)

    def finite_or_zero(self, m: Any) -> Any:
        return np.where(np.isfinite(m), m, 0.0)

    def exp_shifted(self, x: Any, shift: Any) -> Any:
        return np.exp(x - shift)

    def rowsum(self, p: Any) -> Any:
        return p.sum(axis=-1, keepdims=True)

    def weighted(self, p: Any, v: Any) -> Any:
        return p @ v

    def scale_add(self, a: Any, r: Any, b: Any) -> Any:
        return a * r + b

    def ratio(self, acc: Any, l: Any) -> Any:
        return np.divide(acc, l, out=np.zeros_like(acc), where=l > 0)


def online(scores: list[sympy.Expr], values: list[sympy.Expr], allowed: list[bool], blocks: list[list[int]]) -> tuple[sympy.Expr, sympy.Expr]:
    """spec/online_softmax.py's recurrence — the function fast/ runs — on one query row, exactly:
    (l, acc) after every block (−∞ scores where a key is not allowed)."""
    state: recurrence.State[Any] = recurrence.State()
    for block in blocks:
        x = [scores[k] if allowed[k] else -sympy.oo for k in block]
        state = recurrence.step(state, x, [values[k] for k in block], SympyOps())
    return sympy.sympify(state.l), sympy.sympify(state.acc)


def compositions(n: int) -> list[list[list[int]]]:
    """Every split of 0 … n−1 into consecutive non-empty blocks (2^(n−1) of them)."""
    out = []
    for cuts in itertools.product((False, True), repeat=n - 1):
        blocks, current = [], [0]
        for k in range(1, n):
            if cuts[k - 1]:
                blocks.append(current)
                current = []
            current.append(k)
        out.append([*blocks, current])
    return out


def _witness_online(examples: int) -> None:
    def check(case: tuple[int, int, int, Relation, list[int]]) -> None:
        T_, S_, seed, mask, cuts = case
        rng = np.random.default_rng(seed)
        scores, v = arrays(rng, T_, S_, scale=5.0), arrays(rng, S_, 3)
        allowed = mask.matrix(T_, S_)
        edges = [0, *sorted({k for k in cuts if 0 < k < S_}), S_]
        state: recurrence.State[Any] = recurrence.State()
        for a, b in zip(edges, edges[1:]):  # spec/online_softmax.py's recurrence, in float64
            xb = np.where(allowed[:, a:b], scores[:, a:b], -np.inf)
            state = recurrence.step(state, xb, v[a:b], Float64Ops())
        got = recurrence.result(state, Float64Ops())
        got = np.zeros((T_, 3)) if got is None else got
        A = _softmax(MaskedSoftmax(mask, T_, S_), scores)
        close(got, run_op(WeightedSum(3, T_, S_), {"A": A, "V": v}), "online recurrence vs softmax_A(x) V", 1e-12)

    sizes = st.tuples(st.integers(1, 6), st.integers(1, 40))
    cases = sizes.flatmap(
        lambda ts: st.tuples(st.just(ts[0]), st.just(ts[1]), seeds, masks(ts[1]), st.lists(st.integers(1, max(1, ts[1] - 1)), max_size=8))
    )
    for_all(cases, examples, check)


@theorem(
    name="online_softmax",
    title="the online (blocked) softmax recurrence gives exactly the softmax-weighted sum",
    statement="Walk the keys in consecutive blocks keeping a running maximum m, normaliser l and weighted sum acc "
    "(m' = max(m, block max over A_t); l' = l e^{m−m'} + Σ e^{x−m'}; acc' = acc e^{m−m'} + Σ e^{x−m'} v). For any split "
    "of the keys into blocks, acc/l is the masked softmax's weighted sum of the values, and l = 0 exactly when A_t is "
    "empty, where the output is 0 as the spec says.",
    latex=r"l_J = e^{-m_J}\!\!\sum_{s \in A_t \cap B_{\le J}}\!\! e^{x_{ts}},\quad "
    r"\mathrm{acc}_J = e^{-m_J}\!\!\sum_{s \in A_t \cap B_{\le J}}\!\! e^{x_{ts}} v_s"
    r"\ \Rightarrow\ \frac{\mathrm{acc}_n}{l_n} = \sum_s \operatorname{softmax}_A(x)_{ts}\, v_s",
    hypotheses=("blocks B_1 … B_n partition the key positions (fast/ uses consecutive blocks of a fixed size)",
                "m may be any real reference value: the maximum only keeps exp in range"),
    scope=Scope(
        Kind.MIXED,
        "the invariant step and the final ratio: symbolic (every S, every split, by induction on the number of blocks, "
        "for any reference values m); the recurrence as written: exhaustive for S ≤ 3, every mask row and every split "
        "into consecutive blocks (42 cases, scores and values symbolic)",
    ),
    witness=_witness_online,
    derived_from="spec/online_softmax.py's `step` and `result` — the functions fast/'s fused attention runs — on sympy expressions (every mask row and every split into blocks for S ≤ 3), and the definitions of `MaskedSoftmax` and `WeightedSum`; the invariant step is symbolic",
    ops=('masked_softmax', 'weighted_sum'),
)
def online_softmax() -> None:
    """Invariant l = L e^{−m}, acc = P e^{−m} (L, P the sums over allowed keys seen): one block maps it to (L + L_B) e^{−m'}, (P + P_B) e^{−m'} for any m'; the empty start contributes exp(−∞) = 0; so acc/l = P/L, which the spec's weighted sum of the masked softmax equals. The recurrence as fast/ writes it is then run exactly on every small case."""
    m, m_new, L, P, L_B, P_B = sympy.symbols("m m' L P L_B P_B", real=True)
    # Invariant: l = L e^{−m}, acc = P e^{−m} with L, P the sums over the allowed keys seen so far.
    l, acc = L * sympy.exp(-m), P * sympy.exp(-m)
    # A block adds Σ_{s ∈ B ∩ A} e^{x_s − m'} = L_B e^{−m'} (and P_B e^{−m'}): for any m'.
    require_zero(l * sympy.exp(m - m_new) + L_B * sympy.exp(-m_new) - (L + L_B) * sympy.exp(-m_new), "step: l' = (L + L_B) e^{−m'}")
    require_zero(acc * sympy.exp(m - m_new) + P_B * sympy.exp(-m_new) - (P + P_B) * sympy.exp(-m_new), "step: acc' = (P + P_B) e^{−m'}")
    # First allowed block: from l = acc = 0 with m = −∞ the rescale is exp(−∞) = 0.
    require(sympy.exp(-sympy.oo - m_new) == 0, "exp(−∞ − m') = 0, so the empty state contributes nothing")
    require_zero((acc / l) - P / L, "end: acc / l = P / L (the reference value cancels)")
    # The spec: Σ_s softmax_A(x)_ts v_s = (Σ_{s∈A} e^{x_ts} v_s) / (Σ_{s∈A} e^{x_ts}) = P / L over all blocks.
    v = sympy.IndexedBase("v", shape=(S, 1))
    A = sympy.IndexedBase("A", shape=(T, S))
    z = WeightedSum(1).definition((t, sympy.Integer(0)), {"A": A, "V": v}, {})
    z = replace_entries(z, A, lambda i: first_branch(softmax_entry(IndicatorMask(), i[0], i[1])))
    s2 = index("s")
    ratio = sympy.Sum(M[t, s2] * sympy.exp(x[t, s2]) * v[s2, 0], (s2, 0, S - 1)) / sympy.Sum(M[t, s2] * sympy.exp(x[t, s2]), (s2, 0, S - 1))
    require_zero(z - ratio, "spec: weighted sum of the masked softmax = P / L")
    # The recurrence as written, exhaustively: S ≤ 3, every mask row, every split.
    for S_ in range(1, 4):
        xs, vs = list(sympy.symbols(f"x0:{S_}", real=True)), list(sympy.symbols(f"v0:{S_}", real=True))
        for pattern in itertools.product((False, True), repeat=S_):
            soft = op_matrix(MaskedSoftmax(KeyPadding(pattern), 1, S_), {"x": sympy.Matrix([xs])})
            want = op_matrix(WeightedSum(1, 1, S_), {"A": soft, "V": sympy.Matrix(vs)})[0, 0]
            for blocks in compositions(S_):
                l_n, acc_n = online(xs, vs, list(pattern), blocks)
                if not any(pattern):
                    require(l_n == 0 and acc_n == 0 and want == 0, f"S={S_}, empty row: l = 0 and the output is 0")
                    continue
                require_zero(acc_n / l_n - want, f"S={S_}, A_t={pattern}, blocks={blocks}: acc/l − Σ_s softmax_A v_s")
