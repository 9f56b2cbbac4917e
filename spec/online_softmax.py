"""The online (blocked) softmax recurrence: the one definition that fast/'s fused attention runs
and proofs/ proves (theorem ``online_softmax``).

For one query row t with allowed set A_t, walk the keys in consecutive blocks B₁, B₂, … keeping
a running maximum m, normaliser l and weighted sum acc. A block's scores x (with x_s = −∞ for
s ∉ A_t) and values v update them as

    m' = max(m, max_s x_s)                       (m = −∞ before the first block)
    l' = l · e^{m − m'} + Σ_s e^{x_s − m'}        (e^{−∞} = 0)
    acc' = acc · e^{m − m'} + Σ_s e^{x_s − m'} v_s

and the result is acc / l, or 0 when l = 0, which happens exactly when A_t = ∅ (otherwise the
maximum's own term makes l ≥ 1). Where m' is −∞ (nothing allowed yet) the shift is taken as 0,
so that every term stays e^{−∞} = 0 rather than e^{−∞ + ∞}.

The recurrence is written once, here, over a small set of operations (:class:`Ops`): fast/ runs
it with numpy arrays of many rows at once (in place, float32 or float64), proofs/ runs it with
sympy expressions of one row, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

X = TypeVar("X")


class Ops(Protocol[X]):
    """What the recurrence needs of its values. Functions documented as consuming an argument
    may overwrite it (the numpy backend works in place)."""

    def rowmax(self, x: X) -> X:
        """The maximum over the keys of the block (−∞ on a row with none allowed)."""
        ...

    def maximum(self, a: X, b: X) -> X:
        """max(a, b) entry by entry; consumes a."""
        ...

    def finite_or_zero(self, m: X) -> X:
        """m where it is finite, 0 where it is −∞: the shift that keeps e^{x − shift} defined."""
        ...

    def exp_shifted(self, x: X, shift: X) -> X:
        """e^{x − shift} (0 where x = −∞); consumes x."""
        ...

    def rowsum(self, p: X) -> X:
        """Σ_s p_s over the block's keys."""
        ...

    def weighted(self, p: X, v: X) -> X:
        """Σ_s p_s v_s over the block's keys."""
        ...

    def scale_add(self, a: X, r: X, b: X) -> X:
        """a · r + b; consumes a."""
        ...

    def ratio(self, acc: X, l: X) -> X:
        """acc / l where l > 0, and 0 where l = 0 (a row with no allowed key)."""
        ...


@dataclass(frozen=True)
class State(Generic[X]):
    """(m, l, acc) after some blocks; ``State()`` (all None: m = −∞, l = 0, acc = 0) before any."""

    m: X | None = None
    l: X | None = None
    acc: X | None = None


def step(state: State[X], x: X, v: X, ops: Ops[X]) -> State[X]:
    """One block: ``x`` the block's scores (−∞ where not allowed; consumed), ``v`` its values."""
    m_new = ops.rowmax(x)
    if state.m is not None:
        m_new = ops.maximum(m_new, state.m)  # m' = max(m, max_s x_s)
    shift = ops.finite_or_zero(m_new)
    p = ops.exp_shifted(x, shift)  # e^{x_s − m'}, 0 outside A_t
    block_l, block_acc = ops.rowsum(p), ops.weighted(p, v)
    if state.m is None or state.l is None or state.acc is None:  # m = −∞, l = 0, acc = 0 before
        return State(m_new, block_l, block_acc)
    rescale = ops.exp_shifted(state.m, shift)  # e^{m − m'}
    return State(m_new, ops.scale_add(state.l, rescale, block_l), ops.scale_add(state.acc, rescale, block_acc))


def result(state: State[X], ops: Ops[X]) -> X | None:
    """acc / l, 0 on rows with no allowed key; None when no block was given at all (every
    row then has no allowed key, and its output is 0)."""
    if state.l is None or state.acc is None:
        return None
    return ops.ratio(state.acc, state.l)
