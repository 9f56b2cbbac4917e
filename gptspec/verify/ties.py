"""Routing near a tie, in the storing reference: the other choice is budgeted too.

A router chooses the top_k experts of largest logit, the lower index first among equal logits
(spec/ops/moe.py). The choice is discontinuous: where the k-th and (k+1)-th logits of a row are
closer than an implementation in dtype D can resolve, an implementation that computes them with
other roundings may choose the other expert and be right about everything it computes — and in
bfloat16 such rows are common: one row in 833 of a 4-expert top-2 router has its boundary logits
exactly equal after rounding, and ``torch.topk`` (every Hugging Face router) then takes the higher
index in 16 of those 24 (``python benchmarks/router_ties.py``); more rows are within an ulp or two.
In float32 and float64 such rows are rare (no exact tie in 20,000 float32 rows).

So ``e_store`` — what any implementation in D inevitably loses (gptspec/verify/tolerance.py) —
covers both choices. A row is *ambiguous* when the gap between its k-th and (k+1)-th stored
logits is at most ``AMBIGUITY`` · u_D · max_e Σ_j |x_j W_je| (the rounding error D allows in a logit
x · W_e: the router input and weights rounded, the products summed and the logit rounded, each
by an implementation's own order). For every router with an ambiguous row, the storing reference
is evaluated again with that router's ambiguous rows routed the other way — the k-th and
(k+1)-th experts' logits swapped (and, if equal, the new k-th raised by one float64 ulp), so the
(k+1)-th is chosen with the weight the k-th had, which differs from its own by at most the gap —
and each stored value becomes, element by element, whichever evaluation is farthest from the
float64 reference. Rows that are not ambiguous are judged as before, and an architecture
without routed experts never pays for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

import reference
from spec.graph import Architecture
from spec.ops import MoeRouter

Values = dict[str, np.ndarray]
Evaluate = Callable[[Callable[[str, np.ndarray], np.ndarray]], Values]
"""The storing reference evaluated with an ``override(path, value)`` (reference.evaluate's)."""

AMBIGUITY = 4.0
"""How many units of u_D · max_e Σ_j |x_j W_je| two boundary logits may differ by and still be
confused by an implementation in D: the input x and the weights W are each one rounding away from
the stored ones (2), the logit's own rounding and an implementation's summation order (2)."""


@dataclasses.dataclass(frozen=True)
class Router:
    """One router of an architecture: the path of its routing weights, of the logits it reads,
    of the input the logits are computed from, and the Θ name of W_router."""

    path: str
    logits: str
    x: str
    weight: str
    op: MoeRouter


_ROUTERS: dict[int, tuple[Architecture, list[Router]]] = {}


def routers(arch: Architecture) -> list[Router]:
    """:func:`find_routers`, remembered per architecture (asked once per stored evaluation)."""
    found = _ROUTERS.get(id(arch))
    if found is None or found[0] is not arch:
        if len(_ROUTERS) > 64:
            _ROUTERS.clear()
        found = _ROUTERS[id(arch)] = (arch, find_routers(arch))
    return found[1]


def find_routers(arch: Architecture) -> list[Router]:
    """Every :class:`~spec.ops.MoeRouter` of ``arch`` whose logits are an affine map of one input
    (x W_router, as spec/moe_blocks.py builds them)."""
    nodes = {path: (node, sources) for path, node, sources in arch.expand()}
    found: list[Router] = []
    for path, (node, sources) in nodes.items():
        if not isinstance(node.op, MoeRouter) or sources["logits"] not in nodes:
            continue
        producer, inputs = nodes[sources["logits"]]
        if "W" in producer.params and "x" in inputs and not producer.params["W"].transpose:
            found.append(Router(path, sources["logits"], inputs["x"], producer.params["W"].name, node.op))
    return found


def ambiguous(logits: np.ndarray, x: np.ndarray, weight: np.ndarray, top_k: int, unit: float) -> np.ndarray:
    """Per row: whether its k-th and (k+1)-th logits (by the spec's ranking) are within what D
    can resolve (module docstring)."""
    if logits.shape[-1] <= top_k:
        return np.zeros(logits.shape[:-1], dtype=bool)
    ranked = -np.sort(-logits, axis=-1)
    gap = ranked[..., top_k - 1] - ranked[..., top_k]
    size = np.max(np.abs(x) @ np.abs(weight), axis=-1)
    return np.asarray(gap <= AMBIGUITY * unit * size)


def routed_the_other_way(op: MoeRouter, logits: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The router's weights with each row in ``rows`` choosing its (k+1)-th expert instead of its
    k-th (their logits swapped; equal ones separated by one ulp), the reference's router op
    evaluated on them."""
    changed = np.array(logits, dtype=np.float64, copy=True)
    order = np.argsort(-changed, axis=-1, kind="stable")
    k = op.top_k
    for t in np.flatnonzero(rows):
        a, b = order[t, k - 1], order[t, k]
        changed[t, a], changed[t, b] = changed[t, b], changed[t, a]
        if changed[t, b] <= changed[t, a]:
            changed[t, b] = np.nextafter(changed[t, a], np.inf)
    bound = dataclasses.replace(op, rows=changed.shape[0])
    return np.asarray(reference.run_op(bound, {"logits": changed}, {}))


def with_both_routings(
    arch: Architecture, theta: Mapping[str, np.ndarray], stored: Values, unit: float, exact: Callable[[], Values],
    evaluate: Evaluate, store: Callable[[np.ndarray], np.ndarray],
) -> Values:
    """``stored`` (the storing reference's values), each value replaced element by element by the
    farthest from ``exact()`` (the float64 reference) among it and, per router with an ambiguous
    row, ``evaluate`` with that router's ambiguous rows routed the other way (module docstring).
    ``unit`` is u_D; ``store`` rounds a value as the storing reference does."""
    found = [r for r in routers(arch) if r.logits in stored and r.x in stored and r.weight in theta]
    chosen = {r.path: ambiguous(stored[r.logits], stored[r.x], np.asarray(theta[r.weight], dtype=np.float64), r.op.top_k, unit) for r in found}
    alternatives = [r for r in found if np.any(chosen[r.path])]
    if not alternatives:
        return stored
    want = exact()
    out = dict(stored)
    for router in alternatives:
        seen: dict[str, np.ndarray] = {}

        def override(path: str, value: np.ndarray, router: Router = router, seen: dict[str, np.ndarray] = seen) -> np.ndarray:
            if path in (router.logits, router.x):
                seen[path] = value
            if path != router.path:
                return value
            logits = seen[router.logits]
            rows = ambiguous(logits, seen[router.x], np.asarray(theta[router.weight], dtype=np.float64), router.op.top_k, unit)
            return store(routed_the_other_way(router.op, logits, rows)) if np.any(rows) else value

        other = evaluate(override)
        for key, value in out.items():
            alt, ref = other.get(key), want.get(key)
            if alt is None or ref is None or np.shape(alt) != np.shape(value) or np.shape(ref) != np.shape(value):
                continue
            out[key] = np.where(np.abs(alt - ref) > np.abs(value - ref), alt, value)
    return out
