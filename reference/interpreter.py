"""The literal interpreter: walk the DAG at the finest level, in topological order, one
sequence at a time, in float64.

Every value is checked against the type the spec declares for it (the symbolic shape with the
architecture's dims and the sequence's T substituted), so the spec's shapes and the runtime's
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import sympy

from reference.ops import REFERENCE, Array
from spec.dims import concrete_shape, show
from spec.errors import ShapeError
from spec.graph import Architecture
from spec.op import Primitive, bind_to_arrays
from spec.theta import as_float64, float64_theta, token_array
from spec.types import Element


def bind_sizes(arch: Architecture, inputs: Mapping[str, np.ndarray]) -> dict[sympy.Symbol, int]:
    """The architecture's dims plus the sizes the inputs fix (T, S, …)."""
    sizes = dict(arch.dims)
    for name, ttype in arch.inputs.items():
        got = np.shape(inputs[name])
        if len(got) != len(ttype.shape):
            raise ShapeError(
                f"input {name} has shape {got}, but expected {ttype} [{arch.name}]"
            )
        for symbolic, n in zip(ttype.subs(arch.dims).shape, got, strict=True):
            if isinstance(symbolic, sympy.Symbol):
                sizes.setdefault(symbolic, n)
            if sympy.sympify(symbolic).subs(sizes) != n:
                raise ShapeError(
                    f"input {name} has shape {got}, but expected {ttype} = "
                    f"{concrete_shape(ttype.shape, sizes)} [{arch.name}]"
                )
    return sizes


def evaluate(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    inputs: Mapping[str, npt.ArrayLike],
    store: Callable[[Array], Array] | None = None,
) -> dict[str, Array]:
    """Every value the DAG computes, by path (``blocks.3.attn.head_0.softmax``), plus the
    outputs under their own names.

    ``store``, if given, is applied to θ, the real inputs and every op's result before it is
    used: e.g. rounding to float32 — the reference computed in float64 but *stored* in a lower
    precision, which is how docs/tolerances.md measures what a precision inevitably loses.
    """
    if store is None:
        store = _identity
    theta64 = {name: store(value) for name, value in float64_theta(arch, theta, f"reference {arch.name}").items()}
    if not isinstance(inputs, Mapping):
        raise ShapeError(f"inputs of type {type(inputs).__name__}, but expected a mapping of input names to arrays [{arch.name}]")
    values: dict[str, np.ndarray] = {}
    for name, ttype in arch.inputs.items():
        if name not in inputs:
            raise ShapeError(f"input {name} is missing, but expected inputs {list(arch.inputs)} [{arch.name}]")
        values[f"input.{name}"] = (
            token_array(inputs[name], arch.dim("n_vocab"), None, f"{arch.name} input {name}")
            if ttype.element is Element.TOKEN
            else store(np.asarray(inputs[name], dtype=np.float64))
        )
    sizes = bind_sizes(arch, values | {n: values[f"input.{n}"] for n in arch.inputs})
    for path, node, sources in arch.expand():
        op = node.op
        if not isinstance(op, Primitive):  # expand yields primitives only
            raise ShapeError(f"node {path} is {type(op).__name__}, but expected a primitive [{arch.name}]")
        args = {port: values[src] for port, src in sources.items()}
        params = {p: ref.resolve(theta64[ref.name], arch.dims) for p, ref in node.params.items()}
        values[path] = store(_apply(op.bind(sizes), args, params, path))
    for name, path in arch.output_paths().items():
        values[name] = values[path]
    return values


def _apply(op: Primitive, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray], where: str) -> Array:
    """The reference function of a bound op, its result checked against the declared type."""
    y = np.asarray(REFERENCE[op.kind](op, **inputs, **params))
    expected = concrete_shape(op.output().shape, {})
    if y.shape != expected:
        raise ShapeError(
            f"{where} produced shape {y.shape}, but the spec declares {show(op.output().shape)} = "
            f"{expected} [reference {op.kind}]"
        )
    return y


def run_op(op: Primitive, inputs: Mapping[str, npt.ArrayLike], params: Mapping[str, npt.ArrayLike] | None = None) -> Array:
    """One primitive on one sequence: the dims the op leaves symbolic (T, S, widths) are bound
    from the arrays' shapes, real arrays are read as float64 (token ids as int64), and the
    result is checked against the op's declared output type."""
    if not isinstance(op, Primitive):
        raise ShapeError(f"op of type {type(op).__name__}, but expected a spec primitive [reference.run_op]")
    given = {**inputs, **(params or {})}
    declared = op.inputs()
    arrays: dict[str, np.ndarray] = {}
    for name, value in given.items():
        ttype = declared.get(name)
        if ttype is not None and ttype.element is Element.TOKEN:
            arrays[name] = token_array(value, op.id_bound() or 2**62, None, f"reference {op.kind} input {name}")
        else:
            arrays[name] = as_float64(name, value, f"reference {op.kind}")
    ins = {k: arrays[k] for k in inputs}
    ps = {k: arrays[k] for k in (params or {})}
    bound = bind_to_arrays(op, ins, ps)
    return _apply(bound, ins, ps, op.kind)


def forward(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    ids: Sequence[int] | npt.ArrayLike,
    store: Callable[[Array], Array] | None = None,
) -> Array:
    """The logits f_θ(ids) ∈ ℝ^{T × n_vocab}: one sequence, float64 (see :func:`evaluate` for
    ``store``)."""
    tokens = token_array(ids, arch.dim("n_vocab"), arch.dim("n_ctx"), f"{arch.name} forward")
    return evaluate(arch, theta, {"ids": tokens}, store)["logits"]


def _identity(a: Array) -> Array:
    return a
