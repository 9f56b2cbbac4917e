"""Exact evaluation: a primitive's sympy definition, evaluated on concrete arrays.

This is what makes the float64 reference "the meaning": on small inputs, every op's
:meth:`~spec.op.Primitive.definition` evaluated here at high precision must agree with the
reference to 1e-12 relative (tests/test_spec_vs_reference.py).

How, for one op and its arrays:

1. **Bind** the symbolic dims (``T``, ``S``, ``d_head``, …) by matching the shapes the op
   declares for its inputs and parameters with the arrays' shapes; ``op.bind(sizes)``.
2. **Expand** ``definition(index)`` for every output index with concrete IndexedBases and
   ``doit()`` (sums over dummy indices become finite sums). This depends only on the bound op
   and the shapes, so it is cached.
3. **Substitute** the data: each float64 entry as the exact rational it is, each token id as
   an integer, each Float a definition contains as its exact binary value. So every rational
   operation is exact, and only the transcendental functions are approximated, by
   ``evalf(digits, strict=True)`` — which raises rather than return a value it could not
   resolve to ``digits`` digits.

Nothing here is lambdified or rewritten: the numbers are the definition's own.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Mapping

import mpmath.libmp  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
import sympy
from sympy.core.evalf import PrecisionExhausted

from spec.dims import show
from spec.errors import ConfigError, GptSpecError, ShapeError
from spec.op import Primitive, bind_to_arrays
from spec.theta import token_array
from spec.types import Axis, Element

MAX_DIGITS = 1200
"""How many digits evalf may work at to resolve a cancellation (the widest float64 range,
2^-1074 … 2^1024, spans about 630 digits)."""


def exact_values(
    op: Primitive,
    inputs: Mapping[str, npt.ArrayLike],
    params: Mapping[str, npt.ArrayLike],
    digits: int = 40,
) -> npt.NDArray[np.object_]:
    """The output of ``op``'s definition as an object array of sympy numbers: exact Rationals
    where the definition is rational in the data, otherwise Floats correct to ``digits``
    significant digits."""
    where = f"{type(op).__name__} ({op.kind})"
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 17:
        raise ConfigError(f"digits={digits!r}, but expected a whole number ≥ 17 [{where}]; float64 needs 17")
    bound = bind_to_arrays(op, inputs, params)
    arrays = {name: _checked(bound, name, array, where) for name, array in {**inputs, **params}.items()}
    data = {}
    for name, array in arrays.items():
        base = sympy.IndexedBase(name, shape=array.shape)
        for index in np.ndindex(array.shape):
            data[base[index]] = _exact_number(array[index])
    out_shape, entries = _expanded(bound, tuple((name, array.shape) for name, array in arrays.items()))
    values = np.empty(out_shape, dtype=object)
    for index, entry in zip(np.ndindex(out_shape), entries):
        value = entry.xreplace(data)
        if not value.is_Rational:
            try:
                value = value.evalf(digits, strict=True, maxn=MAX_DIGITS)
            except PrecisionExhausted as error:
                raise GptSpecError(
                    f"y{list(index)} = {value}, but expected a number resolvable to {digits} digits "
                    f"with {MAX_DIGITS} digits of working precision [{where}]; write the definition "
                    "without the cancellation"
                ) from error
        if not (isinstance(value, sympy.Number) and value.is_finite and value.is_real):
            raise ShapeError(
                f"y{list(index)} = {value}, but expected a real number [{where}]; the definition is "
                "undefined there (0/0?) or reads an entry the arrays do not give (an index out of range?)"
            )
        values[index] = value
    return values


def evaluate_exact(
    op: Primitive,
    inputs: Mapping[str, npt.ArrayLike],
    params: Mapping[str, npt.ArrayLike],
    digits: int = 40,
) -> npt.NDArray[np.float64]:
    """``op``'s definition evaluated at ``digits`` digits, each entry rounded to the nearest
    float64."""
    values = exact_values(op, inputs, params, digits)
    rounded = [_nearest_float(v) for v in values.flat]
    return np.array(rounded, dtype=np.float64).reshape(values.shape)


ZERO_DIGITS = 100
"""The most digits of working precision :func:`exact_vjp` spends on one derivative (a value that
cancels to 0 exactly is resolved to below 10^−100 of its terms, not to exactly 0)."""


def exact_vjp(
    op: Primitive,
    inputs: Mapping[str, npt.ArrayLike],
    params: Mapping[str, npt.ArrayLike],
    cotangent: npt.ArrayLike,
    digits: int = 40,
) -> dict[str, npt.NDArray[np.float64]]:
    """The vector–Jacobian product of ``op``'s definition, exactly: for every real input and
    parameter entry u, ∂/∂u Σ_index g[index] y[index], with y the expanded definition (steps 1–2
    above), differentiated by sympy, then evaluated at the data as in step 3 (without ``strict``:
    a derivative that cancels to exactly 0 comes out below 10^−digits of its terms) and rounded to
    the nearest float64. Token ids have no derivative and are left out. This is the judge of the
    reference's VJPs (reference/ops/, ``VJP``): the derivative of the op's own definition, not a
    formula typed again."""
    where = f"{type(op).__name__} ({op.kind}) vjp"
    bound = bind_to_arrays(op, inputs, params)
    arrays = {name: _checked(bound, name, array, where) for name, array in {**inputs, **params}.items()}
    out_shape, entries = _expanded(bound, tuple((name, array.shape) for name, array in arrays.items()))
    g = np.asarray(cotangent, dtype=np.float64)
    if g.shape != out_shape:
        raise ShapeError(f"cotangent of shape {g.shape}, but expected the output's shape {out_shape} [{where}]")
    bases = {name: sympy.IndexedBase(name, shape=array.shape) for name, array in arrays.items()}
    data = {bases[name][index]: _exact_number(array[index]) for name, array in arrays.items() for index in np.ndindex(array.shape)}
    declared = bound.inputs()
    real = [name for name in arrays if not (name in declared and declared[name].element is Element.TOKEN)]
    wanted = {bases[name][index]: (name, index) for name in real for index in np.ndindex(arrays[name].shape)}
    derivative: dict[sympy.Indexed, sympy.Expr] = {u: sympy.Integer(0) for u in wanted}
    shapes = tuple((name, array.shape) for name, array in arrays.items())
    for out_index, entry, partials in zip(np.ndindex(out_shape), entries, _partials(bound, shapes)):  # ∂/∂u Σ g y = Σ g ∂y/∂u
        weight = _exact_number(g[out_index])
        if partials is None:  # piecewise in the data: differentiate the branches active here
            active = _active_branches(entry, data)
            partials = tuple((u, sympy.diff(active, u)) for u in active.atoms(sympy.Indexed))
        for u, dy_du in partials:
            if u in derivative:
                derivative[u] += weight * dy_du
    grads = {name: np.empty(arrays[name].shape, dtype=np.float64) for name in real}
    for u, (name, index) in wanted.items():
        value = derivative[u].xreplace(data)
        if not value.is_Rational:
            # not strict: terms that cancel exactly (a derivative that is 0 but not written as 0, e.g. a
            # renormalised softmax's in a logit it does not read) give a number below 10^−digits of the terms
            # instead of an error; the judge's tolerance (1e-11 relative) is far above it
            value = value.evalf(digits, maxn=ZERO_DIGITS)
        if not (isinstance(value, sympy.Number) and value.is_finite and value.is_real):
            raise ShapeError(
                f"∂/∂{name}{list(index)} = {value}, but expected a real number [{where}]; the definition is not "
                "differentiable there (a kink such as max(x, 0) at x = 0?)"
            )
        grads[name][index] = _nearest_float(value)
    return grads


@functools.lru_cache(maxsize=256)
def _partials(
    op: Primitive, shapes: tuple[tuple[str, tuple[int, ...]], ...]
) -> tuple[tuple[tuple[sympy.Indexed, sympy.Expr], ...] | None, ...]:
    """For every output entry (row-major), the pairs (u, ∂y/∂u) over the array entries u it reads,
    differentiated by sympy from :func:`_expanded`'s expressions and remembered; None for an entry
    with a Piecewise left (its branch depends on the data: :func:`exact_vjp` differentiates the
    active one)."""
    _, entries = _expanded(op, shapes)
    return tuple(
        None if entry.has(sympy.Piecewise) else tuple((u, sympy.diff(entry, u)) for u in sorted(entry.atoms(sympy.Indexed), key=str))
        for entry in entries
    )


def _active_branches(expr: sympy.Expr, data: Mapping[sympy.Indexed, sympy.Rational]) -> sympy.Expr:
    """``expr`` with every Piecewise replaced by its branch whose condition holds at ``data`` (a
    top-k choice, a mask, a sign): where the conditions are strict inequalities they hold on a
    neighbourhood of the data, so the derivative there is the active branch's. A condition left
    undecided keeps its Piecewise."""

    def select(piecewise: sympy.Piecewise) -> sympy.Expr:
        for value, condition in piecewise.args:
            decided = condition.xreplace(data) if isinstance(condition, sympy.Basic) else condition
            if decided is sympy.true or decided is True:
                return value
            if not (decided is sympy.false or decided is False):
                return piecewise
        return piecewise

    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), select)


@functools.lru_cache(maxsize=512)
def _expanded(
    op: Primitive, shapes: tuple[tuple[str, tuple[int, ...]], ...]
) -> tuple[tuple[int, ...], tuple[sympy.Expr, ...]]:
    """The output shape and, in row-major order, every output entry's definition with sums
    expanded and Floats made exact rationals; entries are in the arrays' IndexedBases."""
    bases = {name: sympy.IndexedBase(name, shape=shape) for name, shape in shapes}
    inputs = {name: bases[name] for name in op.inputs()}
    params = {name: bases[name] for name in op.params()}
    out_shape = tuple(sympy.sympify(d) for d in op.output().shape)
    if not all(d.is_Integer for d in out_shape):
        raise ShapeError(
            f"output shape {show(out_shape)}, but expected whole numbers [{type(op).__name__} ({op.kind})]; "
            "give the op concrete values for dims no input or parameter shape determines"
        )
    sizes = tuple(int(d) for d in out_shape)
    entries = []
    for index in itertools.product(*(range(n) for n in sizes)):
        entry = sympy.sympify(op.definition(tuple(sympy.Integer(i) for i in index), inputs, params)).doit()
        entry = entry.xreplace({f: sympy.Rational(f) for f in entry.atoms(sympy.Float)})  # exact binary value
        entries.append(entry)
    return sizes, tuple(entries)


def _checked(op: Primitive, name: str, array: npt.ArrayLike, where: str) -> npt.NDArray[np.generic]:
    """The array, refusing what the spec does not define: token ids that are not whole numbers in
    range, real entries that are not finite."""
    declared = op.inputs().get(name)
    if declared is not None and declared.element is Element.TOKEN:
        output = op.output()
        n_vocab = next(
            (int(d) for d, axis in zip(output.shape, output.axes) if axis is Axis.ONE_HOT), sys.maxsize
        )
        return token_array(array, n_vocab, None, where)
    real = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(real)):
        raise ShapeError(
            f"{name} has non-finite entries, but expected real numbers [{where}]; the spec defines "
            "its ops on ℝ only"
        )
    return real


def _nearest_float(value: sympy.Number) -> float:
    """The float64 nearest to ``value`` (``float()`` of a sympy Float truncates)."""
    if isinstance(value, sympy.Float):
        return float(mpmath.libmp.to_float(value._mpf_, rnd=mpmath.libmp.round_nearest))
    return float(value)  # an Integer or Rational: sympy rounds these to nearest


def _exact_number(value: object) -> sympy.Rational:
    """A token id as an Integer, a float64 as the exact rational it represents."""
    if isinstance(value, (int, np.integer)):
        return sympy.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        numerator, denominator = float(value).as_integer_ratio()
        return sympy.Rational(numerator, denominator)
    raise ShapeError(f"entry {value!r} of type {type(value).__name__}, but expected a float64 or a token id [exact]")
