"""The literal interpreter: walk the DAG at the finest level, in topological order, one
sequence at a time, in float64.

Every value is checked against the type the spec declares for it (the symbolic shape with the
architecture's dims and the sequence's T substituted), so the spec's shapes and the runtime's
cannot drift apart.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import sympy

from reference.ops import REFERENCE, Array
from spec.dims import concrete_shape, show
from spec.errors import ConfigError, ShapeError
from spec.graph import Architecture, Node
from spec.op import Primitive, bind_to_arrays
from spec.seq2seq import vocabulary
from spec.theta import LazyTheta, as_float64, check_architecture, check_theta, float64_theta, token_array
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


Keep = Literal["all", "outputs"] | Collection[str]
"""What :func:`evaluate` returns: every value (``"all"``), the outputs only (``"outputs"``), or
the outputs plus the values at the given paths."""

Progress = Callable[[int, int, str], None]
"""``progress(done, total, path)``: called after each primitive runs."""


@dataclass(frozen=True)
class Plan:
    """The primitives of an architecture in order, and after which of them each value and each
    θ entry is read for the last time (computed once per architecture)."""

    steps: list[tuple[str, Node, dict[str, str]]]
    outputs: dict[str, str]
    first_use: dict[str, int]
    last_use: dict[str, int]
    """θ name → index of the first / last primitive that reads it."""
    last_read: dict[str, int]
    """value path → index of the last primitive that reads it."""


_PLANS: weakref.WeakKeyDictionary[Architecture, Plan] = weakref.WeakKeyDictionary()


def plan(arch: Architecture) -> Plan:
    """The :class:`Plan` of ``arch`` (cached while the architecture lives)."""
    found = _PLANS.get(arch)
    if found is None:
        outputs: dict[str, str] = {}
        steps = list(arch.expand(outputs=outputs))
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        read: dict[str, int] = {}
        for i, (_, node, sources) in enumerate(steps):
            for ref in node.params.values():
                first.setdefault(ref.name, i)
                last[ref.name] = i
            for src in sources.values():
                read[src] = i
        found = Plan(steps, outputs, first, last, read)
        _PLANS[arch] = found
    return found


def evaluate(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    inputs: Mapping[str, npt.ArrayLike],
    store: Callable[[Array], Array] | None = None,
    keep: Keep = "all",
    progress: Progress | None = None,
    override: Callable[[str, Array], Array] | None = None,
) -> dict[str, Array]:
    """Every value the DAG computes, by path (``blocks.3.attn.head_0.softmax``), plus the
    outputs under their own names.

    ``override``, if given, is called as ``override(path, value)`` with every op's (stored)
    result and what it returns is used in its place: a what-if evaluation (e.g. a near-tied router
    row routed the other way, docs/tolerances.md "Routed experts").

    ``store``, if given, is applied to θ, the real inputs and every op's result before it is
    used: e.g. rounding to float32 — the reference computed in float64 but *stored* in a lower
    precision, which is how docs/tolerances.md measures what a precision inevitably loses.

    Memory stays bounded on large models in two ways. With ``keep="outputs"`` (or a collection of
    paths to keep besides the outputs) a value is dropped after the last op that reads it. A
    :class:`~spec.theta.LazyTheta` (e.g. a memory-mapped checkpoint) has each entry made float64
    only when the first op that reads it runs, and dropped after the last one; so the peak is
    about one block's parameters in float64 plus the activations in flight, whatever the depth.
    The values computed are the same, bit for bit: only when they are made and dropped differs.
    """
    check_architecture(arch, "reference.evaluate")
    if isinstance(keep, str) and keep not in ("all", "outputs") or not isinstance(keep, str | Collection):
        raise ConfigError(f"keep={keep!r}, but expected 'all', 'outputs' or a collection of DAG paths [reference.evaluate]")
    if store is None:
        store = _identity
    where = f"reference {arch.name}"
    lazy, drop = isinstance(theta, LazyTheta), keep != "all"
    if lazy:
        check_theta(arch, theta, where)  # type: ignore[arg-type]  # shapes only: entries are read when used
        theta64: dict[str, np.ndarray] = {}
    else:
        theta64 = {name: store(value) for name, value in float64_theta(arch, theta, where).items()}
    if not isinstance(inputs, Mapping):
        raise ShapeError(f"inputs of type {type(inputs).__name__}, but expected a mapping of input names to arrays [{arch.name}]")
    values: dict[str, np.ndarray] = {}
    for name, ttype in arch.inputs.items():
        if name not in inputs:
            raise ShapeError(f"input {name} is missing, but expected inputs {list(arch.inputs)} [{arch.name}]")
        values[f"input.{name}"] = (
            token_array(inputs[name], vocabulary(arch, name), None, f"{arch.name} input {name}")
            if ttype.element is Element.TOKEN
            else store(np.asarray(inputs[name], dtype=np.float64))
        )
    sizes = bind_sizes(arch, values | {n: values[f"input.{n}"] for n in arch.inputs})
    p = plan(arch)
    kept: set[str] = set(p.outputs.values())
    if keep not in ("all", "outputs") and not isinstance(keep, str):
        kept |= set(keep)
    for i, (path, node, sources) in enumerate(p.steps):
        op = node.op
        if not isinstance(op, Primitive):  # expand yields primitives only
            raise ShapeError(f"node {path} is {type(op).__name__}, but expected a primitive [{arch.name}]")
        args = {port: values[src] for port, src in sources.items()}
        if lazy:
            for ref in node.params.values():
                if ref.name not in theta64:
                    theta64[ref.name] = store(as_float64(ref.name, theta[ref.name], where, copy=False))  # made fresh: no copy
        params = {p_: ref.resolve(theta64[ref.name], arch.dims) for p_, ref in node.params.items()}
        values[path] = store(_apply(op.bind(sizes), args, params, path))
        if override is not None:
            values[path] = override(path, values[path])
        del args, params
        if lazy:
            for ref in node.params.values():
                if p.last_use[ref.name] == i:
                    theta64.pop(ref.name, None)
        if drop:
            for src in sources.values():
                if p.last_read.get(src) == i and src not in kept:
                    values.pop(src, None)
        if progress is not None:
            progress(i + 1, len(p.steps), path)
    for name, path in p.outputs.items():
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
    for argument, given_as in (("inputs", inputs), ("params", {} if params is None else params)):
        if not isinstance(given_as, Mapping):
            raise ShapeError(f"{argument} of type {type(given_as).__name__}, but expected a mapping of names to arrays [reference.run_op {op.kind}]")
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
    progress: Progress | None = None,
) -> Array:
    """The logits f_θ(ids) ∈ ℝ^{T × n_vocab}: one sequence, float64 (see :func:`evaluate` for
    ``store`` and ``progress``). Only the values later ops read are kept, and θ entries are made
    float64 when used (``keep="outputs"``), so memory stays bounded on large models."""
    check_architecture(arch, "reference.forward")
    tokens = token_array(ids, arch.dim("n_vocab"), arch.dim("n_ctx"), f"{arch.name} forward")
    return evaluate(arch, theta, {"ids": tokens}, store, keep="outputs", progress=progress)["logits"]


def _identity(a: Array) -> Array:
    return a
