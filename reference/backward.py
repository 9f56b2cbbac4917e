"""Reverse mode on the DAG: ∂L/∂θ for every Θ entry and ∂L/∂v for every value, one sequence at a
time, in float64.

The forward pass (reference/interpreter.py) is run keeping every value; then the primitives are
visited in *reverse* topological order (the interpreter's plan, reversed). Each primitive's
vector–Jacobian product (reference/ops/, ``VJP``, next to its forward) turns the cotangent of its
output into cotangents of its inputs and parameters, and those are **added** where they land:

* a value read by several primitives gets the sum of their cotangents (the residual stream, a
  layer-norm output read by every head, the K and V a group of GQA heads share);
* a parameter is a view of a Θ entry (``ParamRef``: a per-head slice, a transpose, a reshape);
  its cotangent is put back through the inverse view and added to the entry, so a tied
  embedding gets the sum over both uses (W_E and the unembedding W_Eᵀ), and a shared
  key/value head the sum over the query heads that read it.

:func:`value_and_grad` scores a batch under a :class:`~spec.objective.Objective` and returns its
loss, ∂L/∂θ (summed over the batch's sequences) and ∂L/∂E of every sequence's token embeddings
(the output of the ``token_embedding`` primitive, what Hugging Face calls ``inputs_embeds``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reference.interpreter import bind_sizes, evaluate, plan
from reference.objective import logits_vjp
from reference.ops import VJP, Array
from spec.errors import ConfigError, ShapeError
from spec.graph import Architecture, ParamRef
from spec.objective import Objective
from spec.op import Primitive
from spec.theta import check_architecture, float64_theta, token_array
from spec.types import Element


@dataclass(frozen=True)
class Backward:
    """What one backward pass computes."""

    theta: dict[str, Array]
    """∂L/∂θ for every Θ entry, in Θ's order (zeros for an entry L does not depend on)."""
    values: dict[str, Array]
    """∂L/∂v for every value L depends on, by DAG path (``input.<name>`` for a real input)."""


@dataclass(frozen=True)
class Gradients:
    """A batch's loss and its gradients (:func:`value_and_grad`)."""

    loss: float
    theta: dict[str, Array]
    """∂L/∂θ for every Θ entry, summed over the sequences."""
    embeddings: list[dict[str, Array]]
    """Per sequence: ∂L/∂E for the output E of each ``token_embedding`` primitive, by DAG path."""


def backward(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    inputs: Mapping[str, npt.ArrayLike],
    cotangents: Mapping[str, npt.ArrayLike],
    values: Mapping[str, Array] | None = None,
    store: Callable[[Array], Array] | None = None,
) -> Backward:
    """Given ∂L/∂(output) for some of ``arch``'s outputs (by output name, e.g. ``{"logits": g}``),
    the cotangents of every Θ entry and every value. ``values``: the forward pass with every
    value kept (``reference.evaluate(..., keep="all")``), when already computed. ``store``, if
    given, is applied to every VJP's result, as ``evaluate``'s to every op's: the backward
    computed in float64 but stored in a lower precision (the gradient policy's e_store,
    docs/tolerances.md)."""
    check_architecture(arch, "reference.backward")
    where = f"reference backward {arch.name}"
    theta64 = float64_theta(arch, theta, where)
    if values is None:
        values = evaluate(arch, theta64, inputs, keep="all")
    p = plan(arch)
    sizes = bind_sizes(arch, {name: np.asarray(values[f"input.{name}"]) for name in arch.inputs})
    cot: dict[str, Array] = {}
    for name, given in cotangents.items():
        if name not in p.outputs:
            raise ConfigError(f"cotangent for output {name!r}, but expected one of the outputs {list(p.outputs)} [{where}]")
        g64 = np.asarray(given, dtype=np.float64)
        path = p.outputs[name]
        if g64.shape != np.shape(values[path]):
            raise ShapeError(f"cotangent of {name} has shape {g64.shape}, but expected the output's {np.shape(values[path])} [{where}]")
        _add(cot, path, g64)
    grads = {name: np.zeros_like(value) for name, value in theta64.items()}
    for path, node, sources in reversed(p.steps):
        if path not in cot:
            continue  # L does not depend on this value
        g = cot[path]
        op = node.op
        if not isinstance(op, Primitive):
            raise ShapeError(f"node {path} is {type(op).__name__}, but expected a primitive [{where}]")
        bound = op.bind(sizes)
        args = {port: values[src] for port, src in sources.items()}
        params = {name: ref.resolve(theta64[ref.name], arch.dims) for name, ref in node.params.items()}
        out = VJP[op.kind](bound, g, **args, **params)
        if store is not None:
            out = {name: store(value) if isinstance(value, np.ndarray) and value.dtype.kind == "f" else value for name, value in out.items()}
        real_ports = [port for port, ttype in bound.inputs().items() if ttype.element is not Element.TOKEN]
        _check_vjp(out, {**{port: args[port] for port in real_ports}, **params}, f"{path} ({op.kind})")
        for port in real_ports:
            _add(cot, sources[port], out[port])
        for name, ref in node.params.items():
            _add_through_view(grads[ref.name], ref, out[name])
    return Backward(grads, cot)


def value_and_grad(
    arch: Architecture,
    theta: Mapping[str, npt.ArrayLike],
    batch: Sequence[Sequence[int] | npt.ArrayLike],
    objective: Objective = Objective(),
    labels: Sequence[Sequence[int] | npt.ArrayLike] | None = None,
    denominator: int | None = None,
) -> Gradients:
    """L and ∇L of a batch of id sequences under ``objective`` (labels: the ids unless given).

    ``denominator`` is the whole batch's D (``objective.denominator(all labels)``) when ``batch``
    is one micro-batch of a larger batch: the micro-batches' results then sum to the batch's
    (spec/objective.py, "Micro-batch accumulation"). None: ``batch`` is the whole batch."""
    check_architecture(arch, "reference.value_and_grad")
    where = f"reference value_and_grad {arch.name}"
    if set(arch.inputs) != {"ids"}:
        raise ConfigError(f"inputs={list(arch.inputs)}, but expected a decoder reading ids only [{where}]")
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective of type {type(objective).__name__}, but expected a spec.objective.Objective [{where}]")
    sequences = [token_array(ids, arch.dim("n_vocab"), arch.dim("n_ctx"), where) for ids in batch]
    targets = sequences if labels is None else list(labels)
    if len(targets) != len(sequences):
        raise ShapeError(f"{len(targets)} label sequences, but expected one per id sequence ({len(sequences)}) [{where}]")
    D = objective.denominator(targets) if denominator is None else denominator
    theta64 = float64_theta(arch, theta, where)
    embedding_paths = [path for path, node, _ in plan(arch).steps if node.op.kind == "token_embedding"]
    total = {name: np.zeros_like(value) for name, value in theta64.items()}
    terms: list[float] = []
    embeddings: list[dict[str, Array]] = []
    for ids, lam in zip(sequences, targets):
        values = evaluate(arch, theta64, {"ids": ids}, keep="all")
        z = values["logits"]
        terms.append(float(objective.weights(lam, D) @ objective.token_losses(z, lam)))  # Σ_t w_t ℓ_t
        result = backward(arch, theta64, {"ids": ids}, {"logits": logits_vjp(objective, z, lam, D)}, values)
        for name, g in result.theta.items():
            total[name] += g  # ∂L/∂θ = Σ_b ∂L_b/∂θ
        embeddings.append({path: result.values.get(path, np.zeros_like(values[path])) for path in embedding_paths})
    return Gradients(math.fsum(terms), total, embeddings)


def _add(cot: dict[str, Array], path: str, g: Array) -> None:
    """Add a cotangent to ``path``'s: a value read several times gets the sum."""
    cot[path] = g.copy() if path not in cot else cot[path] + g


def _add_through_view(grad: Array, ref: ParamRef, g: Array) -> None:
    """Put the cotangent of a view ``theta[name][index]ᵀ as reshape`` back into the entry's: undo
    the reshape, then the transpose, then add at the index."""
    target = grad[ref.index] if ref.index else grad  # a numpy view: adding to it adds to grad
    pre = target.T.shape if ref.transpose else target.shape
    back = g.reshape(pre) if ref.reshape is not None else g
    if ref.transpose:
        back = back.T
    if back.shape != target.shape:
        raise ShapeError(f"cotangent of {ref} has shape {np.shape(g)}, but expected the view's shape [reference backward]")
    target += back


def _check_vjp(out: Mapping[str, Array], wanted: Mapping[str, Array], where: str) -> None:
    """The VJP gave a cotangent for every real input and parameter, each of its array's shape."""
    missing = sorted(set(wanted) - set(out))
    if missing:
        raise ShapeError(f"VJP of {where} gave no cotangent for {missing}, but expected one for every real input and parameter "
                         "[reference backward]; return them from its @VJP.implements function")
    for name, array in wanted.items():
        if np.shape(out[name]) != np.shape(array):
            raise ShapeError(f"∂L/∂{name} has shape {np.shape(out[name])}, but expected {np.shape(array)} [reference backward {where}]")
