"""The algebra the proofs need beyond ``sympy.simplify``, each tool small and sound.

- :func:`sum_terms` / :func:`require_sums_equal`: identities between finite sums with
  constant limits (``Sum`` over rectangular index ranges), for every size. A sum is put in a
  normal form: products of sums become one multi-index sum (distributivity), an index the
  summand does not use becomes a factor (its range's length), and each term's bound indices are
  renamed canonically (Fubini: the order of summation over a rectangle does not matter).
  Equal normal forms prove the identity; a difference that does not vanish only fails the
  proof (the tool is sound, not complete).
- :func:`require_entails`: a linear inequality follows from others, proved by a Farkas
  certificate — non-negative multipliers, found by linear programming and then checked by
  expanding goal − Σ λᵢ·hypᵢ to a non-negative constant. Valid over the reals, hence over the
  integers.
- :func:`replace_entries`, :func:`entries_as_symbols`, :func:`op_entry`: evaluating a spec op's
  own definition on symbolic inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction

import numpy as np
import sympy

from proofs.core import ProofFailed
from spec.graph import Graph
from spec.op import Primitive

Limit = tuple[sympy.Symbol, sympy.Expr, sympy.Expr]
Term = tuple[sympy.Expr, tuple[Limit, ...]]
"""Σ over the limits (a rectangle) of the coefficient."""


def _fresh(term: Term) -> Term:
    """The term with its bound indices renamed to fresh dummies."""
    coeff, limits = term
    renaming = {var: sympy.Dummy(str(var), integer=True) for var, _, _ in limits}
    return coeff.xreplace(renaming), tuple((renaming[v], lo, hi) for v, lo, hi in limits)


def sum_terms(expr: sympy.Expr) -> list[Term]:
    """``expr`` as a list of multi-index sums Σ_{limits} coeff (their total), where no coeff has
    a ``Sum`` at the top level of a product (sums inside other functions stay opaque)."""
    expr = sympy.sympify(expr)
    if isinstance(expr, sympy.Sum):
        bound = {var for var, _, _ in expr.limits}
        out: list[Term] = []
        for coeff, limits in sum_terms(expr.function):
            inner = {var for var, _, _ in limits}
            for var, lo, hi in expr.limits:
                if (sympy.sympify(lo).free_symbols | sympy.sympify(hi).free_symbols) & (inner | bound):
                    raise ProofFailed(f"Sum over {var} from {lo} to {hi} depends on another index: not a rectangle")
            out.append((coeff, limits + tuple((v, sympy.sympify(lo), sympy.sympify(hi)) for v, lo, hi in expr.limits)))
        return out
    if isinstance(expr, sympy.Add):
        return [term for arg in expr.args for term in sum_terms(arg)]
    if isinstance(expr, sympy.Mul):
        product: list[Term] = [(sympy.Integer(1), ())]
        for factor in expr.args:
            factor_terms = sum_terms(factor)
            product = [
                (c1 * c2, l1 + l2)
                for c1, l1 in product
                for c2, l2 in (_fresh(t) for t in factor_terms)
            ]
        return product
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and expr.exp > 0 and expr.base.has(sympy.Sum):
        return sum_terms(sympy.Mul(*[expr.base] * int(expr.exp), evaluate=False))
    return [(expr, ())]


def canonical_dummies(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with the bound indices of every ``Sum`` renamed canonically, so that two sums
    equal up to the names of their indices become identical. A sum's index is named by how
    deeply it nests among the sums whose indices it reads (so no renaming captures a name)."""

    def walk(e: sympy.Basic, depth_of: dict[sympy.Symbol, int]) -> sympy.Basic:
        if isinstance(e, sympy.Sum):
            outer = [depth_of[s] for s in e.free_symbols if s in depth_of]
            depth = 1 + max(outer) if outer else 0
            renaming = {}
            limits = []
            for n, (var, lo, hi) in enumerate(e.limits):
                new = sympy.Symbol(f"ι{depth}_{n}", integer=True)
                renaming[var] = new
                limits.append((new, walk(lo, depth_of), walk(hi, depth_of)))
            inner = {**depth_of, **{new: depth for new in renaming.values()}}
            return sympy.Sum(walk(e.function.xreplace(renaming), inner), *limits)
        if not e.args:
            return e
        return e.func(*[walk(a, depth_of) for a in e.args])

    return sympy.sympify(walk(sympy.sympify(expr), {}))


def _normal(terms: Iterable[Term]) -> dict[tuple[tuple[sympy.Expr, sympy.Expr], ...], sympy.Expr]:
    """Group the terms by their rectangle; within a group every term's indices are renamed to
    canonical symbols (choosing, among the renamings of indices with equal ranges, the one
    with the least sort key), monomial by monomial; unused indices become range lengths."""
    groups: dict[tuple[tuple[sympy.Expr, sympy.Expr], ...], sympy.Expr] = {}
    for coeff, limits in terms:
        expanded = sympy.expand(canonical_dummies(coeff))
        for monomial in sympy.Add.make_args(expanded):
            used = [(v, lo, hi) for v, lo, hi in limits if monomial.has(v)]
            factor = sympy.Mul(*[hi - lo + 1 for v, lo, hi in limits if not monomial.has(v)])
            ranges = sorted(((lo, hi) for _, lo, hi in used), key=sympy.default_sort_key)
            key = tuple(ranges)
            best = None
            for perm in itertools.permutations(used):
                if [(lo, hi) for _, lo, hi in perm] != ranges:
                    continue
                renamed = monomial.xreplace({v: sympy.Symbol(f"κ{n}", integer=True) for n, (v, _, _) in enumerate(perm)})
                if best is None or sympy.default_sort_key(renamed) < sympy.default_sort_key(best):
                    best = renamed
            if best is None:
                best = monomial
            groups[key] = groups.get(key, sympy.Integer(0)) + factor * best
    return {key: sympy.expand(value) for key, value in groups.items()}


def sums_difference(lhs: sympy.Expr, rhs: sympy.Expr) -> dict[tuple[tuple[sympy.Expr, sympy.Expr], ...], sympy.Expr]:
    """The normal form of lhs − rhs: rectangle → canonical summand, zero groups dropped."""
    negated = [(-c, lim) for c, lim in sum_terms(rhs)]
    return {k: v for k, v in _normal(sum_terms(lhs) + negated).items() if v != 0}


def require_sums_equal(lhs: sympy.Expr, rhs: sympy.Expr, step: str) -> None:
    """A proof step: two sums with constant limits are equal for every size."""
    left = sums_difference(lhs, rhs)
    if left:
        shown = "; ".join(f"Σ over {list(k)} of {v}" for k, v in list(left.items())[:3])
        raise ProofFailed(f"step failed: {step}: the difference's normal form is {shown}, not 0")


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
