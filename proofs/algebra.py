"""The algebra the proofs need beyond ``sympy.simplify``, each tool small and sound.

- :class:`ProofFailed`, :func:`require_zero`: a proof step that does not hold, and the step
  "this difference is exactly 0" (sums equal up to the names of their indices identified first).
- :func:`sum_terms` / :func:`require_sums_equal`: identities between finite sums over
  rectangular index ranges (no range depends on another index of the same term, at any depth),
  for every size. A sum is put in a normal form: products of sums become one multi-index sum
  (distributivity), an index the summand does not use becomes a factor (its range's length),
  and each term's bound indices are renamed canonically (Fubini: the order of summation over a
  rectangle does not matter). Rational coefficients are compared over a common denominator.
  Equal normal forms prove the identity; a difference that does not vanish only fails the
  proof (the tool is sound, not complete). A range that depends on another index is refused.
- :func:`canonical_dummies`: capture-avoiding canonical names for the bound indices of sums.
- :func:`require_entails`: a linear inequality follows from others, proved by a Farkas
  certificate — non-negative multipliers, found by linear programming and then checked by
  expanding goal − Σ λᵢ·hypᵢ to a non-negative constant. Valid over the reals, hence over the
  integers.
- :func:`replace_entries`, :func:`entries_as_symbols`, :func:`op_entry`: evaluating a spec op's
  own definition on symbolic inputs.

Sums mean exactly what sympy's ``Sum`` means: ``Sum(f, L1, L2, …)`` is ``Sum(Sum(f, L1), L2, …)``
(the first limit is the innermost; its bounds may read the indices of later limits, and an index
repeated in a later limit binds nothing the earlier limit already bound), and a range whose upper
limit is below its lower limit follows Karr's convention, Σ_{i=a}^{b} = −Σ_{i=b+1}^{a−1}, so that
Σ_{i=a}^{b} c = (b − a + 1) c for all integers a, b. Every rewrite below is valid under it.

This module imports nothing else of proofs/ (proofs.core builds on it), so the import graph
stays acyclic.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction

import numpy as np
import sympy

from spec.errors import GptSpecError
from spec.graph import Graph
from spec.op import Primitive


class ProofFailed(GptSpecError):
    """A proof step that does not hold: the statement is false, or the proof is wrong."""


Limit = tuple[sympy.Symbol, sympy.Expr, sympy.Expr]
Term = tuple[sympy.Expr, tuple[Limit, ...]]
"""Σ over the limits (a rectangle: no limit's range reads an index of the term) of the coefficient."""

_RESERVED = ("ι", "κ")
"""Name prefixes of the canonical indices: a free symbol so named could be captured, so it is refused."""


def _refuse_reserved(expr: sympy.Basic, where: str) -> None:
    """Refuse every symbol of ``expr`` (free, or bound by anything but a ``Sum`` once those are
    renamed to dummies) whose name a canonical index could take."""
    clash = sorted({str(s) for s in expr.atoms(sympy.Symbol) if not isinstance(s, sympy.Dummy) and str(s).startswith(_RESERVED)})
    if clash:
        raise ProofFailed(
            f"free symbols={clash}, but expected no free symbol named like a canonical index {list(_RESERVED)} [{where}]; "
            "rename them (they could be captured by the renaming of bound indices)"
        )


def _index_symbol(name: str, lo: sympy.Expr, hi: sympy.Expr, fresh: bool, ranged: bool = False) -> sympy.Symbol:
    """A symbol for a summation index over [lo, hi]: an integer when both limits are integers
    (the index then runs over integers, in either direction of Karr's convention), else with no
    assumption at all — an assumption such as ``nonnegative`` is not implied by the range in
    general: under Karr's convention Σ_{i=0}^{−3} runs over i = −2, −1. With ``ranged``, the
    index is also nonnegative when that follows: lo ≥ 0 and the range provably not reversed."""
    lo, hi = sympy.sympify(lo), sympy.sympify(hi)
    assumptions = {"integer": True} if lo.is_integer and hi.is_integer else {}
    if assumptions and ranged and lo.is_nonnegative and _ordinary(lo, hi):
        assumptions["nonnegative"] = True
    kind = sympy.Dummy if fresh else sympy.Symbol
    return kind(name, **assumptions)


def _ordinary(lo: sympy.Expr, hi: sympy.Expr) -> bool:
    """The range [lo, hi] provably has hi ≥ lo − 1 (it is not reversed in Karr's sense)."""
    return bool(sympy.sympify(hi - lo + 1).is_nonnegative)


def _limits(e: sympy.Sum) -> list[Limit]:
    out = []
    for limit in e.limits:
        if len(limit) != 3:
            raise ProofFailed(f"limit={limit}, but expected (index, lower, upper) [Sum {e}]; give both limits of every sum")
        var, lo, hi = limit
        out.append((var, sympy.sympify(lo), sympy.sympify(hi)))
    return out


def _fresh_indices(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with every bound index of every ``Sum`` renamed to a fresh dummy, so that no two
    binders share a name and no bound name equals a free one. A multi-limit sum is renamed one
    limit at a time, innermost first, as ``Sum(Sum(f, L1), L2)`` — what sympy's ``Sum(f, L1, L2)``
    means (sympy merges the nesting back into one ``Sum``, with the same meaning). Renaming a
    binder replaces exactly the occurrences it binds: its summand and the ranges of the limits
    inside it, never its own range; an inner binder of the same name is renamed along with its
    own occurrences (consistently: still its own binder) and then to its own fresh dummy."""
    if isinstance(expr, sympy.Sum):
        nested: sympy.Basic = expr.function
        for var, lo, hi in _limits(expr):
            fresh = _index_symbol(str(getattr(var, "name", var)), lo, hi, fresh=True)
            nested = sympy.Sum(_fresh_indices(nested.xreplace({var: fresh})), (fresh, _fresh_indices(lo), _fresh_indices(hi)))
        return nested
    if not expr.args:
        return expr
    return expr.func(*[_fresh_indices(a) for a in expr.args])


def canonical_dummies(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with the bound indices of every ``Sum`` renamed canonically, so that two
    expressions equal up to the names of their bound indices become identical. Multi-limit sums
    are nested first (sympy's meaning). A sum's index is named ``ι<d>`` with d one more than the
    deepest enclosing index it reads (0 if none), raised past the names of all enclosing indices:
    so the renaming never captures (a name is never the name of an index the sum reads, of an
    enclosing index, or of a free symbol — free symbols named like canonical indices are
    refused) and never shadows."""
    fresh = _fresh_indices(sympy.sympify(expr))
    _refuse_reserved(fresh, "canonical_dummies")

    def walk(e: sympy.Basic, depth_of: dict[sympy.Symbol, int]) -> sympy.Basic:
        if isinstance(e, sympy.Sum):  # sympy merges nested sums: Sum(f, L1, …, Lr), Lr outermost
            limits = _limits(e)
            own = [var for var, _, _ in limits]  # distinct fresh dummies: renaming them globally is exact
            free_of_body = e.function.free_symbols
            renaming: dict[sympy.Symbol, sympy.Symbol] = {}
            scope = dict(depth_of)
            enclosing_of: list[dict[sympy.Symbol, int]] = [{}] * len(limits)
            for k in reversed(range(len(limits))):  # outermost first
                var, lo, hi = limits[k]
                enclosing_of[k] = dict(scope)
                reads = free_of_body.union(*(limits[n][1].free_symbols | limits[n][2].free_symbols for n in range(k + 1)))
                reads = reads - set(own[: k + 1])
                read = [scope[renaming.get(v, v)] for v in reads if renaming.get(v, v) in scope]
                depth = 1 + max(read) if read else 0
                while depth in scope.values():
                    depth += 1
                renaming[var] = _index_symbol(f"ι{depth}", lo.xreplace(renaming), hi.xreplace(renaming), fresh=False, ranged=True)
                scope[renaming[var]] = depth
            body = walk(e.function.xreplace(renaming), scope)
            new_limits = [
                (renaming[var], walk(lo.xreplace(renaming), enclosing_of[k]), walk(hi.xreplace(renaming), enclosing_of[k]))
                for k, (var, lo, hi) in enumerate(limits)
            ]
            return sympy.Sum(body, *new_limits)
        if not e.args:
            return e
        return e.func(*[walk(a, depth_of) for a in e.args])

    return sympy.sympify(walk(fresh, {}))


def _bind(term: Term, var: sympy.Symbol, lo: sympy.Expr, hi: sympy.Expr) -> Term:
    """Σ_{var=lo}^{hi} of a term: ``var`` is renamed to a fresh dummy in the coefficient and in
    the term's own ranges (the scope of an outer index: everything inside its sum, never its own
    range). If a range of the term then reads the new index, the term is not a rectangle and is
    refused — at every depth, whether the inner sum was the summand, a factor of a product or a
    power of a sum."""
    coeff, limits = term
    fresh = _index_symbol(str(getattr(var, "name", var)), lo, hi, fresh=True)
    renaming = {var: fresh}
    renamed = tuple((v, a.xreplace(renaming), b.xreplace(renaming)) for v, a, b in limits)
    for v, a, b in renamed:
        if fresh in a.free_symbols | b.free_symbols:
            raise ProofFailed(
                f"range of {getattr(v, 'name', v)}={a.xreplace({fresh: var})}..{b.xreplace({fresh: var})}, but expected limits that do not read "
                f"the outer index {var} (a rectangle) [require_sums_equal]; prove sums whose ranges depend on another index "
                "with require_zero, or change the order of summation by hand"
            )
    return coeff.xreplace(renaming), renamed + ((fresh, lo, hi),)


def sum_terms(expr: sympy.Expr) -> list[Term]:
    """``expr`` as a list of multi-index sums Σ_{limits} coeff (their total), where no coeff has
    a ``Sum`` at the top level of a product (sums inside other functions stay opaque). Every
    bound index of a term is a fresh dummy, distinct across terms and factors; a range that
    reads another index of its term raises :class:`ProofFailed`."""
    expr = sympy.sympify(expr)
    if isinstance(expr, sympy.Sum):
        terms = sum_terms(expr.function)
        for var, lo, hi in _limits(expr):  # the first limit is the innermost
            terms = [_bind(term, var, lo, hi) for term in terms]
        return terms
    if isinstance(expr, sympy.Add):
        return [term for arg in expr.args for term in sum_terms(arg)]
    if isinstance(expr, sympy.Mul):
        product: list[Term] = [(sympy.Integer(1), ())]
        for factor in expr.args:  # each factor's terms bind their own fresh dummies: Fubini applies
            product = [(c1 * c2, l1 + l2) for c1, l1 in product for c2, l2 in sum_terms(factor)]
        return product
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and expr.exp > 0 and expr.base.has(sympy.Sum):
        return sum_terms(sympy.Mul(*[expr.base] * int(expr.exp), evaluate=False))
    return [(expr, ())]


Key = tuple[tuple[sympy.Expr, sympy.Expr], ...]


def _is_zero_rational(expr: sympy.Expr) -> bool:
    """``expr`` is 0 as a rational function of its atoms: over a common denominator, the
    expanded numerator vanishes (decides equality of rational functions; sound for any atoms)."""
    numerator, _ = sympy.fraction(sympy.together(expr))
    return bool(sympy.expand(numerator) == 0)


def _normal(terms: Iterable[Term]) -> dict[Key, sympy.Expr]:
    """Group the terms by their rectangle; within a group every term's indices are renamed to
    canonical symbols (choosing, among the renamings of indices with equal ranges, the one whose
    index-dependent factors have the least sort key), monomial by monomial; unused indices
    become range lengths. A group's value is a sum of rational expressions, not yet tidied."""
    groups: dict[Key, list[sympy.Expr]] = {}
    for coeff, limits in terms:
        limits = tuple((v, canonical_dummies(lo), canonical_dummies(hi)) for v, lo, hi in limits)
        for monomial in sympy.Add.make_args(sympy.expand(canonical_dummies(coeff))):
            free = monomial.free_symbols
            used = [(v, lo, hi) for v, lo, hi in limits if v in free]
            factor = sympy.Mul(*[hi - lo + 1 for v, lo, hi in limits if v not in free])
            ranges = sorted(((lo, hi) for _, lo, hi in used), key=sympy.default_sort_key)
            bound = {v for v, _, _ in used}
            dependent = sympy.Mul(*[f for f in sympy.Mul.make_args(monomial) if f.free_symbols & bound])
            constant = sympy.Mul(*[f for f in sympy.Mul.make_args(monomial) if not f.free_symbols & bound])
            best = None
            for perm in itertools.permutations(used):
                if [(lo, hi) for _, lo, hi in perm] != ranges:
                    continue
                names = {v: _index_symbol(f"κ{n}", lo, hi, fresh=False) for n, (v, lo, hi) in enumerate(perm)}
                renamed = dependent.xreplace(names)
                if best is None or sympy.default_sort_key(renamed) < sympy.default_sort_key(best):
                    best = renamed
            groups.setdefault(tuple(ranges), []).append(factor * constant * (dependent if best is None else best))
    return {key: sympy.Add(*values) for key, values in groups.items()}


def sums_difference(lhs: sympy.Expr, rhs: sympy.Expr) -> dict[Key, sympy.Expr]:
    """The normal form of lhs − rhs: rectangle → canonical summand (over a common denominator),
    groups that vanish dropped."""
    for side in (lhs, rhs):
        _refuse_reserved(_fresh_indices(sympy.sympify(side)), "require_sums_equal")
    negated = [(-c, lim) for c, lim in sum_terms(rhs)]
    return {k: sympy.together(v) for k, v in _normal(sum_terms(lhs) + negated).items() if not _is_zero_rational(v)}


def require_sums_equal(lhs: sympy.Expr, rhs: sympy.Expr, step: str) -> None:
    """A proof step: two sums over rectangles are equal for every size."""
    left = sums_difference(lhs, rhs)
    if left:
        shown = "; ".join(f"Σ over {list(k)} of {v}" for k, v in list(left.items())[:3])
        raise ProofFailed(f"step failed: {step}: the difference's normal form is {shown}, not 0")


def carry_out_sums(expr: sympy.Basic) -> sympy.Basic:
    """``expr.doit()``, except that every ``Sum`` is carried out here, one limit at a time, with
    Karr's convention applied before sympy's summation formulas are asked (``eval_sum``), and
    with every bound index renamed first to a fresh integer (no assumption such as
    ``nonnegative`` that a reversed range would break).

    sympy's own ``Sum.doit`` is not used because it is wrong on reversed ranges it cannot
    evaluate: it negates the summand for Σ_{i=a}^{b} with b < a − 1 (deciding the sign with
    assumptions it derives from the other limits) and then, when the flipped sum has no closed
    form, returns the negated summand over the original range — e.g. for n > 0,
    ``Sum(x[j], (j, n + 1, 0)).doit()`` is ``Sum(-x[j], (j, n + 1, 0))``, and
    ``Sum(Sum(y[j], (j, k + 1, 1)), (k, 2, 2)).doit()`` comes out with the wrong sign."""
    return _carry(_fresh_indices(sympy.sympify(expr)))


def _carry(expr: sympy.Basic) -> sympy.Basic:
    if isinstance(expr, sympy.Sum):
        summand = _carry(expr.function)
        limits = _limits(expr)
        for n, (var, lo, hi) in enumerate(limits):
            lo, hi = _carry(lo), _carry(hi)
            value = _sum_over(summand, var, lo, hi)
            if value is None:
                return sympy.Sum(summand, (var, lo, hi), *limits[n + 1:])
            summand = _carry(value)
        return summand
    if not expr.args:
        return expr
    rebuilt: sympy.Basic = expr.func(*[_carry(a) for a in expr.args])
    return rebuilt.doit(deep=False)


def _sum_over(summand: sympy.Basic, var: sympy.Symbol, lo: sympy.Expr, hi: sympy.Expr) -> sympy.Basic | None:
    """Σ_{var=lo}^{hi} summand in closed form, or None. An empty range is 0 and a reversed one
    (hi < lo − 1, known numerically) is −Σ_{var=hi+1}^{lo−1} (Karr). sympy's ``eval_sum`` is
    asked only where its formulas hold under Karr's convention: for a range that is provably not
    reversed, or for a summand polynomial in the index (Faulhaber's formula is a difference of an
    antidifference, valid in both directions); its delta and piecewise rules assume lo ≤ hi + 1."""
    from sympy.concrete.summations import eval_sum

    width = sympy.sympify(hi - lo)
    if width == -1:
        return sympy.Integer(0)
    if width.is_Integer and width < -1:
        flipped = _sum_over(summand, var, hi + 1, lo - 1)
        return None if flipped is None else -flipped
    if width.is_number and not width.is_Integer:
        return None  # a range of non-integer length: left as it is
    if not (_ordinary(lo, hi) or summand.is_polynomial(var)):
        return None
    value = eval_sum(summand, (var, lo, hi))
    return None if value is None else sympy.sympify(value)


def _reversible_ranges(expr: sympy.Basic) -> list[Limit]:
    """The limits of the sums in ``expr`` whose range is not provably ordinary (hi ≥ lo − 1)."""
    return [
        (var, lo, hi)
        for e in sympy.preorder_traversal(expr) if isinstance(e, sympy.Sum)
        for var, lo, hi in _limits(e) if not _ordinary(lo, hi)
    ]


def require_zero(expr: sympy.Expr, step: str) -> None:
    """A proof step: ``expr`` simplifies to exactly 0 (sums equal up to the names of their
    indices are identified first, and sums are carried out where sympy can)."""
    if isinstance(expr, sympy.MatrixBase):
        for n, entry in enumerate(expr):
            require_zero(entry, f"{step} [entry {divmod(n, expr.cols)}]")
        return
    prepared = canonical_dummies(sympy.piecewise_fold(carry_out_sums(sympy.sympify(expr))))
    if _cheaply_zero(prepared):
        return
    if prepared.has(sympy.Sum):
        try:
            if not sums_difference(prepared, sympy.Integer(0)):  # the normal form of sums over rectangles
                return
        except ProofFailed:  # a range reads another index: left to simplify
            pass
    reduced = prepared
    for _ in range(2):  # simplify may move a sum out of another: name it canonically again, and retry once
        reversible = _reversible_ranges(reduced)
        if reversible:  # sympy's sum simplification ignores Karr's convention on such ranges: not trusted
            var, lo, hi = reversible[0]
            raise ProofFailed(
                f"step failed: {step}: range of {var}={lo}..{hi}, but expected a range that is provably not reversed "
                f"(upper ≥ lower − 1) before sympy.simplify is trusted with it [require_zero]; state the sizes' signs "
                f"(positive/nonnegative symbols) or compare the sums with require_sums_equal; the difference is {reduced}"
            )
        try:
            reduced = sympy.simplify(reduced)
        except Exception as error:  # sympy itself failing is not a proof
            raise ProofFailed(f"step failed: {step}: sympy could not simplify the difference ({type(error).__name__}: {error})") from error
        if reduced == 0:
            return
        renamed = canonical_dummies(reduced)
        if renamed == reduced:
            break
        reduced = renamed
        if _cheaply_zero(reduced):
            return
    if reduced != 0:
        raise ProofFailed(f"step failed: {step}: the difference simplifies to {reduced}, not 0")


def _cheaply_zero(expr: sympy.Expr) -> bool:
    """Zero by exponent rules and rational arithmetic alone (exp(a + b) = exp(a) exp(b), then a
    common denominator and an expanded numerator): decides most proof steps without simplify."""
    if expr.has(sympy.Piecewise):
        return False
    return _is_zero_rational(sympy.expand(expr, power_exp=True))


def resolve_piecewise(expr: sympy.Expr, k: sympy.Symbol, width: sympy.Symbol) -> sympy.Expr:
    """``expr`` with each Piecewise replaced by its branch, knowing 0 ≤ k ≤ width − 1 (decided by
    writing width = k + 1 + r with r ≥ 0: an index inside a range of symbolic size)."""
    r = sympy.Symbol("r", integer=True, nonnegative=True)

    def pick(pw: sympy.Piecewise) -> sympy.Expr:
        for value, condition in pw.args:
            decided = sympy.sympify(condition).subs(width, k + 1 + r)
            if decided is sympy.true:
                return sympy.sympify(value)
            if decided is not sympy.false:
                raise ProofFailed(f"cannot decide the case {condition} for 0 ≤ {k} < {width}")
        raise ProofFailed(f"no case of {pw} holds")

    return sympy.sympify(expr).replace(lambda e: isinstance(e, sympy.Piecewise), pick)


# -- linear arithmetic ---------------------------------------------------------------------


def _feasible(rows: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction] | None:
    """A solution x ≥ 0 of rows · x = rhs, or None: phase I of the simplex method in exact
    rational arithmetic, with Bland's rule (so it terminates)."""
    m, n = len(rows), len(rows[0]) if rows else 0
    # Tableau with one artificial variable per row (rows flipped so that rhs ≥ 0).
    table = []
    for row, b in zip(rows, rhs):
        sign = -1 if b < 0 else 1
        table.append([sign * v for v in row] + [Fraction(0)] * m + [sign * b])
    for i in range(m):
        table[i][n + i] = Fraction(1)
    basis = [n + i for i in range(m)]
    width = n + m
    while True:
        # Reduced costs of the phase-I objective Σ artificials.
        cost = [sum((-table[i][k] for i in range(m) if basis[i] >= n), Fraction(0)) + (1 if k >= n else 0) for k in range(width)]
        entering = next((k for k in range(width) if k not in basis and cost[k] < 0), None)
        if entering is None:
            break
        ratios = [(table[i][-1] / table[i][entering], basis[i], i) for i in range(m) if table[i][entering] > 0]
        if not ratios:
            break
        _, _, leave = min(ratios)
        pivot = table[leave][entering]
        table[leave] = [v / pivot for v in table[leave]]
        for i in range(m):
            if i != leave and table[i][entering] != 0:
                factor = table[i][entering]
                table[i] = [a - factor * b for a, b in zip(table[i], table[leave])]
        basis[leave] = entering
    x = [Fraction(0)] * width
    for i, k in enumerate(basis):
        x[k] = table[i][-1]
    if any(x[n + i] != 0 for i in range(m)):
        return None
    return x[:n]


def require_entails(hypotheses: Sequence[sympy.Expr], goal: sympy.Expr, step: str) -> list[sympy.Rational]:
    """A proof step: from hᵢ ≥ 0 (each linear in its symbols) follows goal ≥ 0. Returns the
    certificate λ with goal = Σ λᵢ hᵢ + μ, λᵢ ≥ 0, μ ≥ 0 — found by exact linear programming,
    then checked by expanding goal − Σ λᵢ hᵢ to the constant μ ≥ 0."""
    hyps = [sympy.expand(h) for h in hypotheses]
    goal = sympy.expand(goal)
    symbols = sorted(set().union(goal.free_symbols, *(h.free_symbols for h in hyps)), key=str)
    monomials: list[sympy.Expr] = [*symbols, sympy.Integer(1)]

    def coefficients(e: sympy.Expr) -> list[Fraction]:
        poly = sympy.Poly(e, *symbols) if symbols else None
        if poly is not None and poly.total_degree() > 1:
            raise ProofFailed(f"step failed: {step}: {e} is not linear")
        values = [e.coeff(v) if poly is not None else 0 for v in symbols] + [e.subs({v: 0 for v in symbols})]
        return [Fraction(int(sympy.fraction(sympy.nsimplify(c))[0]), int(sympy.fraction(sympy.nsimplify(c))[1])) for c in values]

    columns = [coefficients(h) for h in hyps] + [[Fraction(0)] * len(symbols) + [Fraction(1)]]  # the last: μ
    rows = [[col[r] for col in columns] for r in range(len(monomials))]
    solution = _feasible(rows, coefficients(goal))
    if solution is None:
        raise ProofFailed(
            f"step failed: {step}: {goal} ≥ 0 is not a non-negative combination of the hypotheses "
            f"{[f'{h} ≥ 0' for h in hyps]}"
        )
    certificate = [sympy.Rational(v.numerator, v.denominator) for v in solution[:-1]]
    slack = sympy.expand(goal - sum((c * h for c, h in zip(certificate, hyps)), sympy.Integer(0)))
    if not (slack.is_number and slack >= 0 and all(c >= 0 for c in certificate)):
        raise ProofFailed(f"step failed: {step}: the certificate {certificate} does not check ({slack} is not a constant ≥ 0)")
    return certificate


# -- symbolic evaluation of spec ops -------------------------------------------------------


def replace_entries(
    expr: sympy.Expr, base: sympy.IndexedBase, value: Callable[[tuple[sympy.Expr, ...]], sympy.Expr]
) -> sympy.Expr:
    """``expr`` with every entry ``base[i, …]`` replaced by ``value((i, …))``: an op's
    definition applied to a transformed input (x ↦ a·x + b, a permutation of rows, …)."""
    return sympy.sympify(expr).replace(
        lambda e: isinstance(e, sympy.Indexed) and e.base == base,
        lambda e: value(tuple(e.indices)),
    )


def entries_as_symbols(expr: sympy.Expr) -> sympy.Expr:
    """Every Indexed entry ``x[1, 2]`` with integer indices as a plain real symbol ``x_1_2`` (so
    expressions built from arrays of different shapes compare by entry)."""
    def symbol(e: sympy.Indexed) -> sympy.Symbol:
        return sympy.Symbol(f"{e.base.label}_{'_'.join(str(i) for i in e.indices)}", real=True)

    return sympy.sympify(expr).replace(
        lambda e: isinstance(e, sympy.Indexed) and all(i.is_Integer for i in e.indices), symbol
    )


def op_matrix(
    op: Primitive, inputs: Mapping[str, sympy.Matrix | Sequence[sympy.Expr]], params: Mapping[str, object] | None = None
) -> sympy.Matrix:
    """The output of a bound op (every size an integer) as a sympy Matrix, from its own
    definition, with inputs given as sympy matrices (or vectors) of expressions and parameters as
    sympy arrays of expressions: the spec's definition evaluated symbolically."""
    values: dict[str, sympy.Array] = {}
    for name, value in {**inputs, **(params or {})}.items():
        if isinstance(value, (sympy.MatrixBase, np.ndarray)):
            value = value.tolist()
        values[name] = sympy.Array(value)
    bases = {name: sympy.IndexedBase(name, shape=v.shape) for name, v in values.items()}
    shape = tuple(int(d) for d in op.output().shape)
    data = {}
    for name, v in values.items():
        for index in itertools.product(*(range(n) for n in v.shape)):
            data[bases[name][index]] = v[index]
    out = sympy.zeros(*shape) if len(shape) == 2 else sympy.zeros(shape[0], 1)
    ins = {n: bases[n] for n in op.inputs()}
    ps = {n: bases[n] for n in op.params()}
    for index in itertools.product(*(range(n) for n in shape)):
        entry = sympy.sympify(op.definition(tuple(sympy.Integer(i) for i in index), ins, ps)).doit()
        out[index if len(shape) == 2 else (index[0], 0)] = entry.xreplace(data)
    return out


def evaluate_graph(
    graph: Graph,
    theta: Mapping[str, np.ndarray],
    inputs: Mapping[str, sympy.Matrix],
    sizes: Mapping[sympy.Symbol, int],
) -> dict[str, sympy.Matrix]:
    """Every value of ``graph`` (expanded to primitives) from the ops' own definitions, on
    symbolic inputs and parameters: θ entries are numpy object arrays of sympy expressions, so
    the spec's parameter views (slices, transposes, reshapes) apply to them unchanged."""
    values: dict[str, sympy.Matrix] = {f"input.{name}": m for name, m in inputs.items()}
    outputs: dict[str, str] = {}
    for path, node, sources in graph.expand(outputs=outputs):
        op = node.op
        if not isinstance(op, Primitive):
            raise ProofFailed(f"node {path} is not a primitive [evaluate_graph]")
        params = {p: ref.resolve(theta[ref.name], sizes) for p, ref in node.params.items()}
        values[path] = op_matrix(op.bind(sizes), {port: values[src] for port, src in sources.items()}, params)
    for name, path in outputs.items():
        values[name] = values[path]
    return values


def symbols_array(name: str, shape: Sequence[int]) -> np.ndarray:
    """A numpy object array of real symbols ``name_i_j…`` (a symbolic θ entry)."""
    out = np.empty(tuple(shape), dtype=object)
    for index in itertools.product(*(range(n) for n in shape)):
        out[index] = sympy.Symbol(f"{name}_{'_'.join(map(str, index))}", real=True)
    return out
