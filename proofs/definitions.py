"""The dependency typing checked against the definitions it summarises.

The typing (proofs/dependency.py) composes what each op *declares*: its rules
(``Primitive.dependency``), its support, and each relation's windows (``Relation.spans``). A
theorem proved by the typing is only as good as those declarations, so the theorems that rely on
it (``causal_at_any_depth``, ``banded_receptive_field``, ``kv_cache_equals_full_evaluation``, the
Llama family's) first check, as proof steps, every declaration they use against what it
declares about:

- :func:`check_rules` — every output entry of an op's own sympy ``definition`` reads only the
  input positions its rules allow, and is identically 0 outside its support;
- :func:`check_relation` — a relation's ``allowed``, ``allowed_array``, ``indicator`` and
  ``spans`` agree on every pair of positions in [0, N)²: allowed(t, s) ⇒ (t, s) inside the
  windows (⇔ when the windows are claimed exact), allowed_array = allowed, indicator = [allowed];
- :func:`check_ops` — both, for every distinct primitive of an architecture (bound at
  T = S = n) and every relation it reads: its rules, the masks inside them and its support.

These are exhaustive at small sizes (every entry at T = S = n; every pair in [0, N)²), not
symbolic in T: they close the gap between declaration and definition for the sizes they cover.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Hashable, Iterable

import numpy as np
import sympy

from proofs.algebra import ProofFailed
from proofs.dependency import ALL, Windows, allowed_matrix, check_size, implementation_key, windows, windows_matrix
from spec import dims as D
from spec.errors import GptSpecError
from spec.graph import Graph
from spec.masks import KeyRow, Relation, SupportOf, WithinRow
from spec.op import Primitive
from spec.types import Axis


def _require(condition: bool, step: str) -> None:
    if not condition:
        raise ProofFailed(f"step failed: {step}")


# -- rules against definitions -------------------------------------------------------------


_ENTRIES: dict[Hashable, dict[tuple[int, ...], sympy.Expr]] = {}


def entries(op: Primitive) -> dict[tuple[int, ...], sympy.Expr]:
    """Every output entry of a bound op (every size an integer), from its own definition, in
    terms of IndexedBases named after its inputs and parameters. Cached by the op and the
    functions that define it (``implementation_key``), so a mutated definition is expanded anew."""
    key = implementation_key(op)
    if key is None:
        return _expand(op)
    if key not in _ENTRIES:
        _ENTRIES[key] = _expand(op)
    return _ENTRIES[key]


def _expand(op: Primitive) -> dict[tuple[int, ...], sympy.Expr]:
    bases = {name: sympy.IndexedBase(name, shape=ttype.shape) for name, ttype in op.inputs().items()}
    params = {name: sympy.IndexedBase(name, shape=shape) for name, shape in op.params().items()}
    shape = tuple(int(x) for x in op.output().shape)
    return {
        index: unroll(sympy.sympify(op.definition(tuple(sympy.Integer(i) for i in index), bases, params)))
        for index in itertools.product(*(range(k) for k in shape))
    }


def unroll(expr: sympy.Basic) -> sympy.Expr:
    """``expr.doit()`` for the sums of a bound definition, faster: a ``Sum`` whose limits are
    integers a ≤ b + 1 becomes the ``Add`` of its summand at a … b (by ``xreplace``, so every
    term is evaluated as it is built: a Kronecker delta or a Piecewise with integer arguments
    collapses); anything else — a symbolic or reversed range — is left to sympy's ``doit``."""
    if isinstance(expr, sympy.Sum):
        body = unroll(expr.function)
        for var, lo, hi in expr.limits:
            lo, hi = unroll(lo), unroll(hi)
            if not (isinstance(lo, sympy.Integer) and isinstance(hi, sympy.Integer) and hi >= lo - 1):
                return sympy.sympify(expr.doit())
            body = sympy.Add(*[body.xreplace({var: sympy.Integer(k)}) for k in range(int(lo), int(hi) + 1)])
        return sympy.sympify(body)
    if not expr.args or isinstance(expr, sympy.Indexed):
        return sympy.sympify(expr)
    return sympy.sympify(expr.func(*[unroll(a) for a in expr.args]))


def reads(entry: sympy.Expr, port: str) -> list[tuple[int, ...]]:
    """The indices of the input ``port``'s entries an expression reads."""
    return [tuple(int(i) for i in e.indices) for e in entry.atoms(sympy.Indexed) if str(e.base.label) == port]


def check_rules(op: Primitive) -> None:
    """Every entry of ``op``'s definition reads only what its declared rules allow, and is 0
    outside its declared support (``op`` bound: every size an integer)."""
    rules = op.dependency()
    out = op.output()
    pairs_out = Axis.KEY in out.axes
    support = op.support()
    where = f"{op.kind} {op!r}"
    for index, entry in entries(op).items():
        t_, s_ = index[0], (index[1] if pairs_out else None)
        if support is not None and s_ is not None and not support.allowed(t_, s_):
            _require(entry == 0, f"{where}: entry {index} is outside the support {support!r}, so it must be 0")
        for port, rule in rules.items():
            in_type = op.inputs()[port]
            for read in reads(entry, port):
                r = read[0]
                if isinstance(rule, SupportOf):
                    weight = sympy.Indexed(sympy.IndexedBase(rule.port, shape=op.inputs()[rule.port].shape), t_, r)
                    _require(not entry.xreplace({weight: 0}).has(sympy.Indexed(sympy.IndexedBase(port, shape=in_type.shape), *read)),
                             f"{where}: entry {index} reads {port}{list(read)} other than through {rule.port}[{t_}, {r}]")
                elif isinstance(rule, KeyRow) and pairs_out:
                    _require(r == s_, f"{where}: entry {index} reads {port} row {r}, but KeyRow allows row {s_} only")
                elif isinstance(rule, WithinRow):
                    _require(r == t_ and rule.mask.allowed(t_, read[1]), f"{where}: entry {index} reads {port}{list(read)} outside row {t_} ∩ the mask")
                else:
                    _require(rule.allowed(t_, r), f"{where}: entry {index} reads {port} row {r}, outside {rule!r}")


# -- a relation against itself ---------------------------------------------------------------


def check_relation(rel: Relation, *, exact: bool = False, least: int = 8, where: str = "") -> None:
    """``rel``'s four answers agree on every pair of positions in [0, N)² (N from
    :func:`proofs.dependency.check_size`: at least ``least``, and twice every finite window
    bound plus 3, so a band one wider than declared shows): its windows contain every allowed
    pair (and, with ``exact``, only those), ``allowed_array`` equals ``allowed`` and
    ``indicator`` is 1 exactly where ``allowed`` holds. Pairs the relation refuses (outside its
    domain, e.g. a key beyond a padding list) are left out."""
    label = f"{where}{rel!r}"
    declared = Windows.of(*rel.spans())
    n = check_size(declared.spans, least)
    allowed, defined = allowed_matrix(rel, n)
    inside = windows_matrix(declared, n)
    if inside is None:
        raise ProofFailed(f"step failed: {label}: its windows {declared.text()} have a symbolic bound, which this check cannot decide")
    stray = np.argwhere(allowed & defined & ~inside)
    _require(not stray.size, f"{label} allows (t, s) = {tuple(int(i) for i in stray[0]) if stray.size else ()} outside its "
             f"declared windows {declared.text()}")
    if exact:
        _require(declared != ALL, f"{label}: windows claimed exact, but it declares every s")
        missing = np.argwhere(~allowed & defined & inside)
        _require(not missing.size, f"{label}: its windows {declared.text()} contain (t, s) = "
                 f"{tuple(int(i) for i in missing[0]) if missing.size else ()}, which it does not allow (not exact)")
    windows(rel)  # the typing's own check refuses it too (and caches the windows)
    for m in range(n, 0, -1):  # the largest square [0, m)² where allowed_array answers (key padding: m = its length)
        try:
            array = np.asarray(rel.allowed_array(np.arange(m)[:, None], np.arange(m)[None, :]), dtype=bool)
        except GptSpecError:
            continue
        _require(array.shape == (m, m) and bool(np.array_equal(array[defined[:m, :m]], allowed[:m, :m][defined[:m, :m]])),
                 f"{label}: allowed_array differs from allowed on [0, {m})²")
        break
    for t, s in itertools.product(range(n), range(n)):
        if not defined[t, s]:
            continue
        value = sympy.sympify(rel.indicator(sympy.Integer(t), sympy.Integer(s)))
        want = 1 if allowed[t, s] else 0
        _require(value == want, f"{label}: indicator({t}, {s}) = {value}, but allowed({t}, {s}) is {bool(allowed[t, s])}")


def relations_of(op: Primitive) -> list[Relation]:
    """Every relation an op declares: its rules, the masks its rules read within, its support."""
    found: list[Relation] = []
    for rule in op.dependency().values():
        found.append(rule)
        if isinstance(rule, WithinRow):
            found.append(rule.mask)
    support = op.support()
    if support is not None:
        found.append(support)
    return found


@functools.lru_cache(maxsize=8192)
def bind(op: Primitive, sizes: tuple[tuple[sympy.Symbol, int], ...]) -> Primitive:
    """``op.bind`` cached: architectures repeat a few distinct ops many times."""
    return op.bind(dict(sizes))


def bound_ops(arch: Graph, n: int) -> list[tuple[str, Primitive]]:
    """The distinct primitives of ``arch`` bound at T = S = n (and the architecture's dims), each
    with the first path that uses it."""
    sizes: dict[sympy.Symbol, int] = {**dict(getattr(arch, "dims", {})), D.T: n, D.S: n}
    seen: dict[Primitive, str] = {}
    for path, node, _ in arch.expand():
        op = node.op
        if not isinstance(op, Primitive):
            raise ProofFailed(f"node {path} is not a primitive [check_ops]")
        seen.setdefault(bind(op, tuple(sorted(sizes.items(), key=str))), path)
    return [(path, op) for op, path in seen.items()]


def check_ops(archs: Iterable[Graph], n: int = 3) -> set[str]:
    """:func:`check_rules` and :func:`check_relation` for every distinct primitive of every
    architecture (bound at T = S = n) and every relation it declares; returns the op kinds
    checked. A proof step: the typing of these architectures then composes declarations that
    agree with the definitions (at these sizes)."""
    done_ops: set[Primitive] = set()
    done_relations: set[Relation] = set()
    kinds: set[str] = set()
    for arch in archs:
        for path, op in bound_ops(arch, n):
            if op in done_ops:
                continue
            done_ops.add(op)
            kinds.add(op.kind)
            check_rules(op)
            for rel in relations_of(op):
                if rel not in done_relations:
                    done_relations.add(rel)
                    check_relation(rel, where=f"{path} ({op.kind}): ")
    return kinds


__all__ = ["bind", "bound_ops", "check_ops", "check_relation", "check_rules", "entries", "reads", "relations_of"]
