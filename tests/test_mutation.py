"""The mutation benchmark's catalogue stays applicable and broad, and ``gptspec check`` says what a
run does not exercise and exercises everything with ``--all-ops`` (benchmarks/mutation.py,
gptspec/verify/coverage.py, docs/mutation.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy

from fast.kernels import KERNELS
from gptspec.cli import main
from gptspec.verify import FastImplementation
from gptspec.verify.coverage import COVERAGE, MASK_FAMILIES, coverage_target, exercised, missing_line, op_components
from reference.ops.table import REFERENCE
from spec import build, preset
from spec.architectures.registry import FAMILIES, family_of
from spec.masks import Intersection, Relation
from spec.op import PRIMITIVES, Primitive

ROOT = Path(__file__).resolve().parent.parent


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_benchmark", ROOT / "benchmarks" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_benchmark"] = module
    spec.loader.exec_module(module)
    return module


mutation = _benchmark()


def test_every_mutant_applies_to_the_tree_once_and_changes_it() -> None:
    for m in mutation.CATALOGUE:
        text = (ROOT / m.path).read_text()
        assert text.count(m.old) == 1, f"{m.name}: its text is found {text.count(m.old)} times in {m.path}"
        assert m.old != m.new and text.replace(m.old, m.new) != text, m.name
        compile(text.replace(m.old, m.new), m.path, "exec")  # a syntax error would measure nothing
        assert mutation.applies(m), m.name
    names = [m.name for m in mutation.CATALOGUE]
    assert len(names) == len(set(names)), "mutant names are unique"


def test_the_catalogue_is_broad() -> None:
    fast = [m for m in mutation.CATALOGUE if not m.spec]
    assert len(fast) >= 40, f"{len(fast)} mutants of fast/"
    areas = {m.area for m in fast}
    for area in ("masks", "positions", "norms", "GELU", "softmax", "chunking", "QKV packing", "KV cache", "id checks", "rotary", "GQA grouping"):
        assert area in areas, area
    assert len({m.path for m in fast}) >= 12, "mutants in most of fast/'s files"
    spec = [m for m in mutation.CATALOGUE if m.spec]
    assert {"spec.layer_norm.divisor", "spec.gelu.constant", "spec.banded.bound"} <= {m.name for m in spec}
    for m in mutation.CATALOGUE:
        assert m.what and (not m.equivalent or len(m.equivalent) > 40), f"{m.name}: an equivalent mutant says why"


def test_the_report_counts_the_score_over_non_equivalent_mutants() -> None:
    Outcome = mutation.Outcome
    results = [
        Outcome("kernel.mask.key_valid", "a", "masks", "", killed=True, failing_tests=["tests.test_fast_equivalence::test_x[1]"]),
        Outcome("kernel.mask.query_valid", "b", "masks", "equivalent because", killed=False),
        Outcome("fused.tile.stride", "c", "chunking", "", killed=False),
        Outcome("spec.layer_norm.divisor", "d", "spec", "", killed=True, theorems=["x"]),
    ]
    text = mutation.markdown(results, {"failing_tests": [], "suite_seconds": 12.0})
    assert "kills 1 of 2 non-equivalent (50.0%)" in text and "| equivalent |" in text and "SURVIVED" in text
    assert "Survivors not claimed equivalent: `fused.tile.stride`" in text and "| `spec.layer_norm.divisor` |" in text


# -- what a check exercises ------------------------------------------------------------------


def test_the_report_names_what_the_default_model_does_not_exercise() -> None:
    tiny = build(preset("tiny").config)
    line = missing_line(tiny, "tiny")
    for name in ("conv1d", "rms_norm", "rotary", "sinusoidal_positional", "Banded", "KeyPadding", "Window", "key-padding masks"):
        assert name in line, name
    for used in ("layer_norm", "masked_softmax", "Causal"):
        assert used not in line.split(":", 1)[1], used
    assert "--all-ops" in line
    assert missing_line(tiny, "tiny", all_ops=True).startswith(f"--all-ops: also every registered op ({len(PRIMITIVES)})")
    got = exercised(tiny)
    assert got.masks == {"Causal"} and not got.key_padding and "gelu_tanh" in got.ops


def kinds_drawn(strategy: SearchStrategy[tuple[Primitive, object]]) -> set[str]:
    """The op kinds a component's strategy draws (a few derandomized draws)."""
    seen: set[str] = set()

    @settings(max_examples=3, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(case: tuple[Primitive, object]) -> None:
        seen.add(case[0].kind)

    draw()
    return seen


def test_all_ops_draws_every_op_the_interpreters_implement() -> None:
    """benchmarks/mutation.py judges every mutant of fast/ by ``gptspec check --all-ops``: a kernel
    no ``--all-ops`` component draws would let its mutants survive unseen. So the op components,
    drawn as they run, must produce instances of every kind fast/ has a kernel for (and the
    reference a function for), each component only its own kind, and every op a registered
    family's models use."""
    drawn = {component.name.removeprefix("all ops: ").split(" ")[0]: kinds_drawn(component.strategy)
             for component in op_components(FastImplementation("float64"), "")}
    assert all(kinds == {kind} for kind, kinds in drawn.items()), {k: v for k, v in drawn.items() if v != {k}}
    assert set(drawn) == set(KERNELS) == set(REFERENCE), (
        f"drawn by --all-ops {sorted(drawn)}; fast kernels {sorted(KERNELS)}; reference functions {sorted(REFERENCE)}")
    used = set().union(*(exercised(coverage_target(name).arch).ops for name in COVERAGE))
    assert used <= set(drawn), f"ops the families' models use that --all-ops does not draw on their own: {used - set(drawn)}"


def test_all_ops_covers_every_mask_family_and_family() -> None:
    """Each mask family of spec.masks is drawn by the masked softmax's examples (the next test), and
    every registered family has a small model --all-ops runs whole (a family registered without
    instances would be checked by no model component)."""
    assert {cls.__name__ for cls in MASK_FAMILIES} >= {"Causal", "Banded", "KeyPadding", "Window", "Intersection"}
    families = {family_of(coverage_target(name).arch.config).name for name in COVERAGE}
    assert families == set(FAMILIES), f"a coverage model per registered family: {families} vs {set(FAMILIES)}"


def test_the_masked_softmax_examples_draw_every_mask_family() -> None:
    """--all-ops draws each op from its own examples: every mask family must come up."""
    seen: set[str] = set()

    def families(rel: Relation) -> set[str]:
        return {type(rel).__name__} | (set().union(*(families(p) for p in rel.parts)) if isinstance(rel, Intersection) else set())

    @settings(max_examples=300, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(PRIMITIVES["masked_softmax"].examples())
    def draw(op: Primitive) -> None:
        seen.update(families(op.mask))  # type: ignore[attr-defined]

    draw()
    assert seen == {cls.__name__ for cls in MASK_FAMILIES}, seen


def test_check_all_ops_runs_the_coverage_components(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--all-ops", "--examples", "1", "--shard", "1/9", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"] and report["all_ops"] and report["coverage"].startswith("--all-ops")
    names = [r["component"] for r in report["results"]]
    assert any(n.startswith("all ops: ") for n in names) and any(n.startswith(tuple(f"{c}: " for c in COVERAGE)) for n in names)
    code = main(["check", "--examples", "1", "--shard", "1/9", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert not report["all_ops"] and report["coverage"].startswith("not exercised by tiny")
    assert not any(r["component"].startswith("all ops: ") for r in report["results"])


def test_the_shrink_cap_reaches_hypothesis() -> None:
    """tests/conftest.py caps shrinking through hypothesis's engine constant; if hypothesis renames
    it, the cap would silently do nothing and a failing example could take minutes to report."""
    import hypothesis.internal.conjecture.engine as engine

    from tests.conftest import PROFILE, SHRINK_SECONDS

    assert isinstance(engine.MAX_SHRINKING_SECONDS, int)
    if PROFILE in SHRINK_SECONDS:
        assert engine.MAX_SHRINKING_SECONDS == SHRINK_SECONDS[PROFILE]
    source = Path(engine.__file__).read_text()
    assert source.count("MAX_SHRINKING_SECONDS") >= 2, "hypothesis defines the constant but no longer reads it when it shrinks"
