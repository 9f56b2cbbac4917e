"""One record per primitive: every registered primitive has everything every interpreter needs,
and a new primitive needs exactly three additions — the op, its reference function, its fast
kernel — for every derived table to pick it up (docs/architecture.md, "Adding things").

The guard: a toy primitive defined here with only those three parts is checked against the
spec-vs-reference suite's case generator, the verification engine (reference vs fast), the proofs'
exhaustive tables, and both interpreters running a graph that contains it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import reference
import tests.strategies_ops as so
from fast.batch import Batch
from fast.kernels import KERNELS
from gptspec.verify import FastImplementation, check_op
from gptspec.verify.strategies import OpExample, small_op_examples
from proofs.theorems.causality import _causal_instances, check_rules, instances
from reference.ops import REFERENCE
from spec import dims as D
from spec.errors import ConfigError
from spec.exact import evaluate_exact
from spec.graph import Architecture, graph_input
from spec.masks import Relation
from spec.op import PRIMITIVES, Operand, Primitive
from spec.ops._base import DEFAULT_ROWS, widths
from spec.theta import random_theta
from spec.types import TensorType, rows

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind", list(PRIMITIVES))
def test_every_primitive_has_its_three_parts_and_its_record(kind: str) -> None:
    cls = PRIMITIVES[kind]
    assert kind in REFERENCE, f"op kind={kind!r} has no reference function, but every primitive needs one [reference/ops/]"
    assert kind in KERNELS, f"op kind={kind!r} has no fast kernel, but every primitive needs one [fast/kernels/]"
    assert cls.latex and cls.title and cls.citation, f"{kind}: latex, title and citation are the op's documentation"
    for n in (1, 3):
        made = cls.instances(n)
        assert made and all(type(op) is cls for op in made), f"{kind}.instances({n}) gave {made}"
    assert len(cls.instances(1)) == len(cls.instances(4)), f"{kind}.instances(n): the list's order must not depend on n"
    unknown = set(cls.operands) - {*cls.instances(2)[0].inputs(), *cls.instances(2)[0].params()}
    assert not unknown, f"{kind}.operands names {sorted(unknown)}, which are not its inputs or parameters"


def test_missing_functions_are_typed_errors_naming_the_op() -> None:
    with pytest.raises(ConfigError, match=r"op kind='no_such_op' has no reference function.*reference/ops/"):
        REFERENCE["no_such_op"]
    with pytest.raises(ConfigError, match=r"op kind='no_such_op' has no fast function.*fast/kernels/"):
        KERNELS["no_such_op"]


# -- the guard: a toy primitive with only its three parts ---------------------------------------


@dataclass(frozen=True)
class Mix(Primitive):
    """A toy op: y = x ⊙ w + roll of x by one row (y_t reads x_t and x_{t−1}): row-wise parts, a
    parameter, and a positional rule that is not row-wise, so every table has something to check."""

    kind: ClassVar[str] = "toy_mix"
    title: ClassVar[str] = "toy mix (test only)"
    latex: ClassVar[str] = r"y_{tj} = x_{tj} w_j + [t \ge 1]\, x_{t-1,j}"
    citation: ClassVar[str] = "tests/test_records.py"
    operands: ClassVar[Mapping[str, Operand]] = {"x": Operand.PRODUCT, "w": Operand.PRODUCT}

    d: sympy.Expr
    rows: sympy.Expr = DEFAULT_ROWS

    @classmethod
    def examples(cls) -> st.SearchStrategy[Primitive]:
        return st.builds(cls, widths(4, D.d_model))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d)}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, tuple[sympy.Expr, ...]]:
        return {"w": (sympy.sympify(self.d),)}

    def dependency(self) -> dict[str, Relation]:
        from spec.masks import Window

        return {"x": Window(-1, 0)}

    def definition(self, index: tuple[sympy.Expr, ...], inputs: Mapping[str, sympy.IndexedBase], params: Mapping[str, sympy.IndexedBase]) -> sympy.Expr:
        t, j = index
        x = inputs["x"]
        previous = sympy.Piecewise((x[t - 1, j], sympy.Ge(t, 1)), (0, True)) if not (t.is_Integer and t < 1) else sympy.Integer(0)
        return x[t, j] * params["w"][j] + previous


def _toy_reference(op: Mix, x: np.ndarray, w: np.ndarray) -> np.ndarray:  # [T, d] -> [T, d]
    y = x * w  # x_tj w_j
    y[1:] += x[:-1]  # + x_{t−1, j} for t ≥ 1
    return y


def _toy_kernel(op: Mix, batch: Batch, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    # by position id, so it decodes with a cache: the row at position p − 1 among the keys
    y = np.asarray(x[:, -batch.positions.shape[1]:] * w)
    pick = (batch.key_positions[:, None, :] == batch.positions[:, :, None] - 1) & batch.key_valid[:, None, :]
    return y + pick.astype(x.dtype) @ x


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Mix]]:
    """Register the toy primitive's three parts — and nothing else — for one test."""
    monkeypatch.setitem(PRIMITIVES, Mix.kind, Mix)
    monkeypatch.setitem(REFERENCE._table, Mix.kind, _toy_reference)
    monkeypatch.setitem(KERNELS._table, Mix.kind, _toy_kernel)
    yield Mix


def test_a_new_primitive_reaches_the_spec_vs_reference_suite(toy: type[Mix]) -> None:
    @settings(max_examples=15)
    @given(so.op_cases(toy.kind))
    def prop(case: so.OpCase) -> None:
        ref = reference.run_op(case.op, case.inputs, case.params)
        exact = evaluate_exact(case.op, case.inputs, case.params)
        np.testing.assert_allclose(ref, exact, rtol=0, atol=1e-12 * float(np.max(np.abs(exact), initial=0.0)))

    prop()


def test_a_new_primitive_reaches_the_verification_engine(toy: type[Mix]) -> None:
    impl = FastImplementation("float64")

    @settings(max_examples=15)
    @given(small_op_examples(toy.kind))
    def prop(case: tuple[Primitive, OpExample]) -> None:
        outcome = check_op(impl, *case)
        assert outcome is not None and outcome.passed, outcome

    prop()


def test_a_new_primitive_reaches_the_proofs_tables(toy: type[Mix]) -> None:
    assert instances(3)[toy.kind] == [Mix(2, 3)]
    check_rules(Mix(2, 3))  # its declared rule covers what its definition reads
    assert [make(4) for make in _causal_instances()[toy.kind]] == [Mix(2, 4)]  # Window(−1, 0) is causal


def test_a_new_primitive_runs_in_both_interpreters(toy: type[Mix]) -> None:
    arch = Architecture("toy", {"x": rows(D.T, 3)}, {})
    w = arch.declare("w", (sympy.Integer(3),))
    arch.output("y", arch.add("mix", Mix(3), {"x": graph_input("x")}, {"w": w}))
    arch.validate()
    theta = {"w": np.array([0.5, -1.0, 2.0])}
    x = np.random.default_rng(0).normal(size=(5, 3))
    want = reference.evaluate(arch, theta, {"x": x})["y"]
    np.testing.assert_allclose(want, _toy_reference(Mix(3, 5), x, theta["w"]))
    assert fast.run_op(Mix(3), {"x": x}, {"w": theta["w"]}).shape == (5, 3)
    np.testing.assert_allclose(fast.run_op(Mix(3), {"x": x}, {"w": theta["w"]}), want, rtol=1e-15, atol=1e-15)


# -- the repository stands alone -----------------------------------------------------------------


def test_code_and_docs_cite_pages_of_the_repository_only() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout: nothing to list")
    pattern = re.compile(r"\.\./shared|\bDESIGN\.md|\bSOURCES\.md|\bSTYLE\.md")
    offenders = [
        f"{name}:{n}" for name in tracked if name.endswith((".py", ".md", ".toml")) and (ROOT / name).is_file()
        for n, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)
    ]
    assert not offenders, f"{offenders[:5]} cite the team's notes, but expected pages under docs/ (e.g. docs/sources.md)"


def test_random_theta_of_the_toy_architecture() -> None:
    """random_theta works for any architecture (not only registered families)."""
    arch = Architecture("bare", {"x": rows(D.T, 2)}, {})
    arch.output("y", arch.add("relu", PRIMITIVES["relu"](2), {"x": graph_input("x")}))
    assert random_theta(arch.validate(), seed=0) == {}



def test_spec_ops_modules_lists_exactly_the_modules_that_register_primitives() -> None:
    import spec.ops

    registering = {cls.__module__.removeprefix("spec.ops.") for cls in PRIMITIVES.values() if cls.__module__.startswith("spec.ops.")}
    assert registering == set(spec.ops.MODULES), "spec.ops.MODULES must name every module of spec/ops/ that registers a primitive, and only those"


def test_an_interpreter_missing_a_module_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spec.ops

    package = tmp_path / "half_interpreter"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in spec.ops.MODULES[:-1]:
        (package / f"{name}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=rf"half_interpreter\.{spec.ops.MODULES[-1]} is missing, but expected a module"):
        spec.ops.import_all("half_interpreter")
