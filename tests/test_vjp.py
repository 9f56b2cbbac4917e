"""Every primitive's vector–Jacobian product (reference/ops/, ``VJP``, next to its forward) is the
derivative of the op's own definition.

For every kind in ``PRIMITIVES``, with random float64 arrays and a random cotangent g, the
reference VJP is compared with

(a) ``spec.exact.exact_vjp``, on the op's fixed instances (``Primitive.instances(2)``: every mask
    family, soft-capped scores, every rotary pairing and scaling, partial
    rotary, every router normalisation …; their sympy expansions are computed once per instance,
    which is what keeps this affordable): the op's sympy definition expanded, differentiated by
    sympy and evaluated at 40 digits — nothing re-typed; criterion max|vjp − exact| ≤ 1e-11 · max|exact|
    over all the op's cotangents (exact all zero: equality). 1e-11 and not the forward's 1e-12:
    a VJP is a sum over the output entries of products g·∂y/∂u, each rounded, so its error is
    about ε·Σ|g ∂y/∂u| (≤ 4·4 terms of magnitude ≤ max|exact|·a few at these sizes), not ε·|sum|;
    the arrays are drawn at unit scale (N(0, 1)) so that this bound is meaningful;
(b) on the op's own examples (``Primitive.examples``: every attribute's hard cases, T = 0 …),
    central finite differences of the reference forward in float64 (step h = 1e-6·max(1, |u|));
    criterion |vjp − fd| ≤ 1e-6 · max(1, max|vjp|), the truncation h²·f''' plus rounding ε/h.

The arrays are continuous draws, so a kink (ReLU at 0) has probability 0; the kink's convention
(0, as PyTorch) has its own test, as do a masked-softmax row with no allowed key, every rotary
variant and soft-capped scores (exactly, against ``exact_vjp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.strategies_ops as so
from reference.interpreter import run_op
from reference.ops import VJP
from spec import dims
from spec.errors import ConfigError
from spec.exact import bind_to_arrays, exact_vjp
from spec.masks import Causal, Intersection, KeyPadding
from spec.op import PRIMITIVES, Operand, Primitive
from spec.ops import AttentionScores, MaskedSoftmax, Relu, Rotary
from spec.types import Axis, Element

EXACT_TOLERANCE = 1e-11
FD_TOLERANCE = 1e-6
EXAMPLES = max(3, settings.default.max_examples // 5)
"""Examples per op for the exact check: 5 under the ``ci`` profile, 200 under ``long``."""


@dataclass(frozen=True)
class VjpCase:
    op: Primitive  # bound: every dim concrete
    inputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    g: np.ndarray


def _values(op: Primitive, name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-scale continuous values by what the array holds (gains around 1, scores spread)."""
    operand = op.operand(name)
    if operand is Operand.GAIN:
        return 1.0 + 0.5 * rng.standard_normal(shape)
    if operand is Operand.SCORES:
        return 3.0 * rng.standard_normal(shape)
    return rng.standard_normal(shape)


@st.composite
def vjp_cases(draw: st.DrawFn, kind: str, max_rows: int = 3, fixed: bool = False) -> VjpCase:
    """An instance from the op's own examples (``fixed``: from its fixed ``instances(2)``, whose
    sympy expansions are computed once and remembered), rows 0 … ``max_rows``, widths 1 … 3; token
    ids and one-hot rows as tests/strategies_ops.py draws them; real arrays and g from a drawn seed."""
    cls = PRIMITIVES[kind]
    op = draw(st.sampled_from(cls.instances(2)) if fixed else cls.examples(), label="op")
    sizes = {
        symbol: draw(st.integers(0, max_rows) if symbol in (dims.T, dims.S) else st.integers(1, 3), label=str(symbol))
        for symbol in sorted(op.free_dims(), key=str)
    }
    bound = op.bind(sizes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    inputs: dict[str, np.ndarray] = {}
    for name, ttype in bound.inputs().items():
        shape = tuple(int(d) for d in ttype.shape)
        if ttype.element is Element.TOKEN or Axis.ONE_HOT in ttype.axes:
            inputs[name] = draw(so.arrays_for(bound, name, shape, ttype.element is Element.TOKEN, Axis.ONE_HOT in ttype.axes), label=name)
        else:
            inputs[name] = _values(bound, name, shape, rng)
    params = {name: _values(bound, name, tuple(int(d) for d in shape), rng) for name, shape in bound.params().items()}
    bound = bind_to_arrays(bound, inputs, params)
    g = rng.standard_normal(tuple(int(d) for d in bound.output().shape))
    return VjpCase(bound, inputs, params, g)


def _real(case: VjpCase) -> dict[str, np.ndarray]:
    """The arrays that have a cotangent: parameters and real inputs."""
    declared = case.op.inputs()
    return {**{n: a for n, a in case.inputs.items() if declared[n].element is not Element.TOKEN}, **case.params}


def _report(case: VjpCase) -> str:
    return f"op={case.op!r}\ninputs={case.inputs!r}\nparams={case.params!r}\ng={case.g!r}"


def _vjp(case: VjpCase) -> dict[str, np.ndarray]:
    out = VJP[case.op.kind](case.op, case.g, **case.inputs, **case.params)
    wanted = _real(case)
    assert set(out) == set(wanted), f"VJP keys={sorted(out)}, but should be {sorted(wanted)} [{case.op.kind}]"
    for name, array in wanted.items():
        assert np.shape(out[name]) == array.shape, f"∂L/∂{name}.shape={np.shape(out[name])}, but should be {array.shape} [{case.op.kind}]"
    return {name: np.asarray(v, dtype=np.float64) for name, v in out.items()}


# --- completeness ----------------------------------------------------------------------------


def test_every_primitive_has_a_vjp() -> None:
    missing = VJP.missing()
    assert not missing, f"primitives without a VJP={missing}, but should be [] [reference/ops/]; add @VJP.implements(Op) next to each forward"


def test_a_primitive_without_a_vjp_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass(frozen=True)
    class Toy(Relu):
        kind: ClassVar[str] = "toy_without_vjp"

    monkeypatch.setitem(PRIMITIVES, Toy.kind, Toy)
    assert "toy_without_vjp" in VJP.missing()
    with pytest.raises(AssertionError, match=r"primitives without a VJP=\[.*'toy_without_vjp'"):
        test_every_primitive_has_a_vjp()
    with pytest.raises(ConfigError, match=r"toy_without_vjp.*has no vjp function.*@VJP\.implements"):
        VJP["toy_without_vjp"]


# --- (a) the derivative of the op's own definition -------------------------------------------


@pytest.mark.parametrize("kind", list(PRIMITIVES))
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_vjp_is_the_derivative_of_the_definition(kind: str, data: st.DataObject) -> None:
    case = data.draw(vjp_cases(kind, fixed=True), label=kind)
    got = _vjp(case)
    exact = exact_vjp(case.op, case.inputs, case.params, case.g)
    assert set(exact) == set(got), f"exact cotangents for {sorted(exact)}, VJP for {sorted(got)} [{kind}]"
    scale = max((float(np.max(np.abs(e))) for e in exact.values() if e.size), default=0.0)
    for name in exact:
        if exact[name].size == 0:
            continue
        worst = float(np.max(np.abs(got[name] - exact[name])))
        assert worst <= EXACT_TOLERANCE * scale, (
            f"max|vjp − exact| of ∂L/∂{name}={worst:.3e}, but should be ≤ 1e-11·max|exact|={EXACT_TOLERANCE * scale:.3e} "
            f"[{kind}]\nvjp={got[name]!r}\nexact={exact[name]!r}\n{_report(case)}"
        )


# --- (b) central finite differences ----------------------------------------------------------


def _pairing(case: VjpCase, inputs: dict[str, np.ndarray], params: dict[str, np.ndarray]) -> float:
    """⟨g, y⟩ = Σ g·y of the reference forward."""
    return float(np.sum(case.g * run_op(case.op, inputs, params)))


@pytest.mark.parametrize("kind", list(PRIMITIVES))
@given(data=st.data())
def test_vjp_matches_central_differences(kind: str, data: st.DataObject) -> None:
    case = data.draw(vjp_cases(kind), label=kind)
    got = _vjp(case)
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in got.values() if v.size])
    for name, array in _real(case).items():
        for index in np.ndindex(array.shape):
            h = 1e-6 * max(1.0, abs(float(array[index])))
            sides = []
            for sign in (1.0, -1.0):
                moved = array.copy()
                moved[index] += sign * h
                inputs = {n: (moved if n == name else a) for n, a in case.inputs.items()}
                params = {n: (moved if n == name else a) for n, a in case.params.items()}
                sides.append(_pairing(case, inputs, params))
            fd = (sides[0] - sides[1]) / (2 * h)
            assert abs(got[name][index] - fd) <= FD_TOLERANCE * scale, (
                f"∂L/∂{name}{list(index)}={got[name][index]!r}, but central differences give {fd!r} [{kind}]\n{_report(case)}"
            )


# --- the hard cases, named -------------------------------------------------------------------


def test_masked_softmax_vjp_is_zero_on_a_row_with_no_allowed_key() -> None:
    op = MaskedSoftmax(Intersection((Causal(), KeyPadding((False, True, True)))), 3, 3)  # row 0 allows no key
    rng = np.random.default_rng(0)
    x, g = 3.0 * rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    got = VJP["masked_softmax"](op, g, x)["x"]
    assert np.array_equal(got[0], np.zeros(3)), f"∂L/∂x[0]={got[0]}, but should be 0: the row is 0 whatever x is [masked_softmax]"
    assert np.all(got[:, 0] == 0.0), "a key outside every row's allowed set gets no cotangent"
    exact = exact_vjp(op, {"x": x}, {}, g)["x"]
    assert np.max(np.abs(got - exact)) <= EXACT_TOLERANCE * np.max(np.abs(exact))


def test_relu_vjp_at_the_kink_is_zero() -> None:
    """max(x, 0) has no derivative at 0; the VJP takes the one-sided 0, as PyTorch does."""
    got = VJP["relu"](Relu(3, 1), np.ones((1, 3)), np.array([[-1.0, 0.0, 2.0]]))["x"]
    assert got.tolist() == [[0.0, 0.0, 1.0]]


@pytest.mark.parametrize(
    "op",
    [
        Rotary(d=8, pairing="half"),
        Rotary(d=8, pairing="interleaved"),
        Rotary(d=8, rotated=4),
        Rotary(d=6, scaling="llama3", factor=8.0, original_n_ctx=4, low_freq_factor=1.0, high_freq_factor=4.0),
    ],
    ids=["half", "interleaved", "partial", "llama3"],
)
def test_rotary_vjp_is_the_inverse_rotation(op: Rotary) -> None:
    """The rotation is orthogonal: its VJP is the rotation by −angle, so VJP(forward(x)) = x."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, op.d))
    bound = bind_to_arrays(op, {"x": x}, {})
    y = run_op(op, {"x": x})
    back = VJP["rotary"](bound, y, x)["x"]
    assert np.max(np.abs(back - x)) <= 1e-14 * 8, "Rᵀ R x ≠ x"
    exact = exact_vjp(op, {"x": x[:3]}, {}, y[:3])["x"]
    assert np.max(np.abs(VJP["rotary"](bind_to_arrays(op, {"x": x[:3]}, {}), y[:3], x[:3])["x"] - exact)) <= EXACT_TOLERANCE * np.max(np.abs(exact))


def test_soft_capped_scores_vjp() -> None:
    op = AttentionScores(2, 1 / sympy.sqrt(2), 2, 3, softcap=0.5)
    rng = np.random.default_rng(2)
    Q, K, g = rng.standard_normal((2, 2)), rng.standard_normal((3, 2)), rng.standard_normal((2, 3))
    got = VJP["attention_scores"](op, g, Q, K)
    exact = exact_vjp(op, {"Q": Q, "K": K}, {}, g)
    for name in ("Q", "K"):
        assert np.max(np.abs(got[name] - exact[name])) <= EXACT_TOLERANCE * np.max(np.abs(exact[name])), name
