"""Spec ↔ reference: for every primitive, the float64 reference agrees with the op's own sympy
definition evaluated at high precision (spec.exact) to 1e-12 relative.

One test runs over ``PRIMITIVES``, drawing each op's cases from its own record
(``Primitive.examples`` and ``operands``; tests/strategies_ops.py), so a new op is covered
without an entry here. The criterion is
max|ref − exact| ≤ 1e-12 · max|exact| (exact = the high-precision value rounded to float64),
and ref == exact when exact is all zeros. Why some strategies draw dyadic numbers: see
tests/strategies_ops.py.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import numpy as np
import pytest
import sympy
from hypothesis import find, given
from hypothesis import strategies as st

import spec.masks
import tests.strategies_ops as so
from reference.ops import REFERENCE
from spec.exact import bind_to_arrays, evaluate_exact
from spec.masks import Intersection, KeyPadding, Relation
from spec.op import PRIMITIVES, Primitive
from spec.ops import MaskedSoftmax, Relu

RELATIVE_TOLERANCE = 1e-12

# --- reproduction and the assertion ------------------------------------------------------------


def python_value(value: object) -> str:
    """Source text that rebuilds ``value`` (sympy via srepr, masks and numbers via repr)."""
    if isinstance(value, sympy.Basic):
        return f"sympy.sympify({sympy.srepr(value)!r})"
    return repr(value)


def python_array(array: np.ndarray) -> str:
    """Source text that rebuilds ``array`` bit for bit (shortest round-tripping digits)."""
    text = np.array2string(
        array, separator=", ", floatmode="unique", threshold=sys.maxsize, max_line_width=100
    ).replace("\n", "\n    ")
    return f"np.array({text}, dtype=np.{array.dtype}).reshape({array.shape})"


def reproduction(case: so.OpCase) -> str:
    """A copy-pasteable script that recomputes the comparison for ``case``."""
    op = case.op
    fields = ", ".join(f"{name}={python_value(value)}" for name, value in op.attributes().items())

    def arrays(named: dict[str, np.ndarray]) -> str:
        entries = "".join(f"\n    {name!r}: {python_array(array)}," for name, array in named.items())
        return "{" + entries + ("\n}" if named else "}")

    return "\n".join(
        [
            "import numpy as np, sympy",
            "from spec.masks import *",
            "import spec.ops as ops",
            "from spec.exact import bind_to_arrays, evaluate_exact",
            "from reference.ops import REFERENCE",
            f"op = ops.{type(op).__name__}({fields})",
            f"inputs = {arrays(case.inputs)}",
            f"params = {arrays(case.params)}",
            "ref = REFERENCE[op.kind](bind_to_arrays(op, inputs, params), **inputs, **params)",
            "exact = evaluate_exact(op, inputs, params)",
            "print(ref, exact, np.max(np.abs(ref - exact), initial=0.0), sep='\\n')",
        ]
    )


def disagreement(case: so.OpCase, ref: np.ndarray, exact: np.ndarray) -> str | None:
    """Why ``ref`` fails the criterion against ``exact``, or None when it passes."""
    kind = case.op.kind
    if ref.shape != exact.shape:
        return f"ref.shape={ref.shape}, but should be {exact.shape} [{kind}]"
    if exact.size == 0:
        return None
    error = np.abs(ref - exact)
    scale = float(np.max(np.abs(exact)))
    bound = RELATIVE_TOLERANCE * scale
    where = np.unravel_index(int(np.argmax(np.where(np.isnan(error), np.inf, error))), error.shape)
    worst = float(error[where])
    if worst <= bound:  # False for nan; when exact is all zeros, bound = 0 asks for equality
        return None
    index = tuple(int(i) for i in where)
    return (
        f"max|ref − exact|={worst:.3e} at y{list(index)}, but should be ≤ 1e-12·max|exact|={bound:.3e} "
        f"[{kind}]; ref{list(index)}={float(ref[index])!r}, exact{list(index)}={float(exact[index])!r}\n"
        f"reproduce with:\n{reproduction(case)}"
    )


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PRIMITIVES))
@given(data=st.data())
def test_reference_agrees_with_exact_definition(kind: str, data: st.DataObject) -> None:
    case = data.draw(so.op_cases(kind), label=kind)
    assert type(case.op) is PRIMITIVES[kind], f"examples of {kind!r} drew a {type(case.op).__name__}"
    bound: Primitive = bind_to_arrays(case.op, case.inputs, case.params)
    ref = np.asarray(REFERENCE[kind](bound, **case.inputs, **case.params))
    exact = evaluate_exact(case.op, case.inputs, case.params)
    failure = disagreement(case, ref, exact)
    assert failure is None, failure


# --- the strategies and the report are tested too ----------------------------------------------


@pytest.mark.parametrize("kind", list(PRIMITIVES))
@given(data=st.data())
def test_reproduction_rebuilds_the_case(kind: str, data: st.DataObject) -> None:
    case = data.draw(so.op_cases(kind), label=kind)
    namespace: dict[str, Any] = {}
    script = reproduction(case).rsplit("\nref = ", 1)[0]  # everything up to the computation
    exec(script, namespace)  # noqa: S102
    assert namespace["op"] == case.op, f"op={namespace['op']!r}, but should be {case.op!r} [reproduction]"
    rebuilt_arrays: dict[str, np.ndarray] = {**namespace["inputs"], **namespace["params"]}
    for name, original in {**case.inputs, **case.params}.items():
        rebuilt = rebuilt_arrays[name]
        assert rebuilt.dtype == original.dtype and rebuilt.shape == original.shape, f"{name} [reproduction]"
        assert rebuilt.tobytes() == original.tobytes(), f"{name} values differ [reproduction]"


def test_disagreement_names_op_error_index_and_reproduction() -> None:
    case = so.OpCase(Relu(d=2, rows=1), {"x": np.array([[1.0, -2.0]])})
    exact = np.array([[1.0, 0.0]])
    message = disagreement(case, np.array([[1.0, 1e-3]]), exact)
    assert message is not None and "[relu]" in message and "y[0, 1]" in message and "1.000e-03" in message
    assert "op = ops.Relu(" in message and "np.array([[ 1., -2.]]" in message
    assert disagreement(case, exact.copy(), exact) is None
    assert disagreement(case, np.array([[1e-300]]), np.zeros((1, 1))) is not None  # all-zero exact: equality


DEPENDENCY_ONLY = ("KeyRow", "WithinRow", "SupportOf")
"""Relations in spec.masks that are dependency rules of ops, not attention masks."""

MASK_FAMILIES = tuple(
    value for name, value in vars(spec.masks).items()
    if isinstance(value, type) and issubclass(value, Relation) and not inspect.isabstract(value) and name not in DEPENDENCY_ONLY
)
"""Every attention-mask family spec.masks defines."""


@pytest.mark.parametrize("family", MASK_FAMILIES, ids=lambda cls: cls.__name__)
def test_masked_softmax_examples_reach_every_mask_family(family: type[Relation]) -> None:
    find(MaskedSoftmax.examples(), lambda op: type(op.mask) is family)  # type: ignore[attr-defined]


def test_masked_softmax_examples_reach_a_row_with_no_allowed_key() -> None:
    find(MaskedSoftmax.examples(), lambda op: isinstance(op.mask, KeyPadding) and not any(op.mask.valid))  # type: ignore[attr-defined]
    find(MaskedSoftmax.examples(), lambda op: isinstance(op.mask, Intersection) and not any(op.mask.matrix(1, int(op.k_rows))[0]))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", list(PRIMITIVES))
def test_op_cases_reach_empty_and_single_positions(kind: str) -> None:
    """Every op's cases include T = 0 (unless its examples fix the rows) and T = 1."""
    find(so.op_cases(kind), lambda case: any(np.shape(a)[0] == 1 for a in (*case.inputs.values(),) if np.ndim(a)))
