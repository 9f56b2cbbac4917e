"""The causality theorems are proved from the definitions, not from what the ops declare: each
mutation of issue 14 — applied consistently, as a spec author could make it — makes the named
theorems' *proofs* fail (not only their witnesses), and the typing refuses a relation whose
declared windows leave out a pair it allows, for the library's families and a user's own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import sympy

from proofs import THEOREMS
from proofs.algebra import ProofFailed
from proofs.definitions import check_relation, check_rules
from proofs.dependency import DependencyError, causality, windows
from proofs.theorems._common import attention_only
from spec.errors import GptSpecError
from spec.masks import Banded, Causal, Relation
from spec.ops import MaskedSoftmax
from spec.ops._base import dummy

oo = sympy.oo

Mutation = Callable[[pytest.MonkeyPatch], None]


def numerator_without_its_indicator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The masked softmax's numerator e^{x_ts} without [s ∈ A_t]: the normaliser still sums over
    A_t, but every key's entry is non-zero, so attention reads the future."""

    def definition(self: MaskedSoftmax, index: tuple[sympy.Expr, ...], inputs: Mapping[str, sympy.IndexedBase],
                   params: Mapping[str, sympy.IndexedBase]) -> sympy.Expr:
        t, s = index
        x = inputs["x"]
        s2 = dummy("s")
        Z = sympy.Sum(self.mask.indicator(t, s2) * sympy.exp(x[t, s2]), (s2, 0, x.shape[1] - 1))
        n_allowed = sympy.Sum(self.mask.indicator(t, s2), (s2, 0, x.shape[1] - 1))
        return sympy.Piecewise((sympy.exp(x[t, s]) / Z, sympy.Gt(n_allowed, 0)), (0, True))

    monkeypatch.setattr(MaskedSoftmax, "definition", definition)


def _widen_causal(spans: tuple[tuple[Any, Any], ...] | None) -> Mutation:
    """Causal widened to s ≤ t + 1 in allowed, allowed_array, indicator and latex; its spans
    left as (−∞, 0] (None) or changed to ``spans``."""

    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(Causal, "allowed", lambda self, t, s: s <= t + 1)
        monkeypatch.setattr(Causal, "allowed_array", lambda self, t, s: np.broadcast_to(np.asarray(s) <= np.asarray(t) + 1,
                                                                                           np.broadcast_shapes(np.shape(t), np.shape(s))))
        monkeypatch.setattr(Causal, "indicator", lambda self, t, s: sympy.Piecewise((1, sympy.Le(s, t + 1)), (0, True)))
        monkeypatch.setattr(Causal, "latex", lambda self: "s \\le t + 1")
        if spans is not None:
            monkeypatch.setattr(Causal, "spans", lambda self: spans)

    return apply


def _widen_band(change_spans: bool) -> Mutation:
    """Banded(w) one wider — t − w − 1 < s ≤ t — in allowed, allowed_array, indicator and latex;
    its spans left as [1 − w, 0] or changed to [−w, 0]."""

    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(Banded, "allowed", lambda self, t, s: t - self.w - 1 < s <= t)
        monkeypatch.setattr(Banded, "allowed_array", lambda self, t, s: np.broadcast_to(
            (np.asarray(s) <= np.asarray(t)) & (np.asarray(s) > np.asarray(t) - self.w - 1), np.broadcast_shapes(np.shape(t), np.shape(s))))
        monkeypatch.setattr(Banded, "indicator", lambda self, t, s: sympy.Piecewise(
            (1, sympy.And(sympy.Le(s, t), sympy.Gt(s, t - self.w - 1))), (0, True)))
        monkeypatch.setattr(Banded, "latex", lambda self: f"t - {self.w + 1} < s \\le t")
        if change_spans:
            monkeypatch.setattr(Banded, "spans", lambda self: ((-self.w, 0),))

    return apply


CAUSAL, BANDED, KV = "causal_at_any_depth", "banded_receptive_field", "kv_cache_equals_full_evaluation"

MUTATIONS: dict[str, tuple[Mutation, set[str]]] = {
    "numerator without its mask indicator": (numerator_without_its_indicator, {CAUSAL, BANDED, KV}),
    "causal widened to s ≤ t + 1, spans left (−∞, 0]": (_widen_causal(None), {CAUSAL, BANDED, KV}),
    "causal widened to s ≤ t + 1, spans (−∞, 1]": (_widen_causal(((-oo, 1),)), {CAUSAL, BANDED, KV}),
    # a band one wider is still causal, so decoding with a cache still equals the full evaluation
    "band one wider, spans left [1 − w, 0]": (_widen_band(False), {CAUSAL, BANDED}),
    "band one wider, spans [−w, 0]": (_widen_band(True), {CAUSAL, BANDED}),
}


@pytest.mark.parametrize(("mutation", "theorem"), [(m, t) for m, (_, failing) in MUTATIONS.items() for t in sorted(failing)])
def test_each_mutation_fails_the_named_proofs(mutation: str, theorem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """(A band one wider is still causal: the KV-cache theorem still proves under it, rightly —
    docs/mutation.md has the whole table.)"""
    apply, _ = MUTATIONS[mutation]
    apply(monkeypatch)
    with pytest.raises(GptSpecError) as raised:
        THEOREMS[theorem].prove()
    assert isinstance(raised.value, (ProofFailed, DependencyError)), raised.value


def test_the_mutations_change_what_they_claim_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: under each mutation the op or the relation does read or allow the future."""
    with monkeypatch.context() as m:
        numerator_without_its_indicator(m)
        with pytest.raises(ProofFailed, match="outside the support"):
            check_rules(MaskedSoftmax(Causal(), 3, 3))
    with monkeypatch.context() as m:
        _widen_causal(None)(m)
        assert Causal().allowed(0, 1) and Causal().indicator(sympy.Integer(0), sympy.Integer(1)) == 1
        with pytest.raises(ProofFailed, match="outside its declared windows"):
            check_relation(Causal())
    with monkeypatch.context() as m:
        _widen_band(True)(m)
        assert Banded(2).allowed(3, 1) and not Banded(2).allowed(3, 0)
        check_relation(Banded(2), exact=True)  # consistent: the band is wider, and its windows say so
        assert windows(Banded(2)).text() == "t − 2 ≤ s ≤ t"


@dataclasses.dataclass(frozen=True)
class PeeksOneAhead(Relation):
    """A user's relation whose spans() forget the one future key it allows."""

    def allowed(self, t: int, s: int) -> bool:
        return s <= t + 1

    def spans(self) -> tuple[tuple[Any, Any], ...]:
        return ((-oo, 0),)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Piecewise((1, sympy.Le(s, t + 1)), (0, True))

    def latex(self) -> str:
        return "s \\le t + 1"


@dataclasses.dataclass(frozen=True)
class Honest(PeeksOneAhead):
    def spans(self) -> tuple[tuple[Any, Any], ...]:
        return ((-oo, 1),)


@dataclasses.dataclass(frozen=True)
class WrongIndicator(Relation):
    """allowed and spans agree (causal), the indicator does not (it allows s = t + 1)."""

    def allowed(self, t: int, s: int) -> bool:
        return s <= t

    def spans(self) -> tuple[tuple[Any, Any], ...]:
        return ((-oo, 0),)

    def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
        return sympy.Piecewise((1, sympy.Le(s, t + 1)), (0, True))

    def latex(self) -> str:
        return "s \\le t"


def test_the_typing_refuses_a_user_relation_whose_windows_leave_out_a_pair() -> None:
    with pytest.raises(DependencyError, match=r"allows \(t, s\) = \(0, 1\)"):
        causality(attention_only(1, 1, 2, PeeksOneAhead(), bias=False))
    verdict = causality(attention_only(1, 1, 2, Honest(), bias=False))  # declared honestly: typed, and not causal
    assert not verdict.causal and verdict.relation.text() == "s ≤ t + 1"


def test_check_relation_compares_the_indicator_and_the_array_with_allowed() -> None:
    with pytest.raises(ProofFailed, match=r"indicator\(0, 1\) = 1"):
        check_relation(WrongIndicator())
    check_relation(Causal(), exact=True)
    check_relation(Banded(3), exact=True)
    with pytest.raises(ProofFailed, match="not exact"):
        _inexact()


def _inexact() -> None:
    """A relation whose windows are sound but wider than what it allows is refused as exact."""

    @dataclasses.dataclass(frozen=True)
    class Loose(Relation):
        def allowed(self, t: int, s: int) -> bool:
            return s == t

        def spans(self) -> tuple[tuple[Any, Any], ...]:
            return ((-1, 0),)

        def indicator(self, t: sympy.Expr, s: sympy.Expr) -> sympy.Expr:
            return sympy.KroneckerDelta(t, s)

        def latex(self) -> str:
            return "s = t"

    check_relation(Loose())  # sound
    check_relation(Loose(), exact=True)
