"""spec/decoding.py is the cache fast/ implements: fast/'s op-by-op steps cache exactly the inputs
the spec's plan caches, and its fused attention caches the K and V that the plan caches for the
scores and the weighted sum of every head; the spec's prefill-then-extend, run on reference/'s op
functions, gives fast/'s decoded logits."""

from __future__ import annotations

import numpy as np
import pytest

import fast
import reference
from proofs.theorems.causality import ReferenceRows, kv_architectures
from spec import decoding
from spec.errors import ConfigError, ShapeError
from spec.graph import Architecture
from spec.theta import random_theta


def _plans(arch: Architecture) -> tuple[decoding.Plan, fast.Program]:
    theta = random_theta(arch, 0, std=0.5)
    return decoding.plan(arch), fast.compile(arch, theta, "float64", block=2)


@pytest.mark.parametrize("name", list(kv_architectures()))
def test_fast_caches_what_the_spec_plan_caches(name: str) -> None:
    arch = kv_architectures()[name]
    plan, program = _plans(arch)
    cached = {step.path: step.cached for step in plan.steps}
    assert any(cached.values()), "a decoder caches something (the keys and values of its attention)"
    fused = [step.path for step in program.steps if step.plan is not None]
    for step in program.steps:
        if step.plan is None:
            assert step.cached_ports == cached[step.path], f"{step.path}: fast caches {step.cached_ports}, the spec {cached[step.path]}"
    for path in fused:  # the fused attention caches K and V: every head's scores read K across rows, its sum V
        inside = {p: c for p, c in cached.items() if p.startswith(path + ".")}
        heads = {p.rsplit(".", 1)[0] for p in inside if p.endswith(".scores")}
        assert heads, f"{path}: no heads in the spec's plan"
        for head in heads:
            assert inside[f"{head}.scores"] == ("K",) and inside[f"{head}.z"] == ("V",), (head, inside)
        others = {p: c for p, c in inside.items() if c and not p.endswith((".scores", ".z"))}
        assert not others, f"{path}: the spec caches more than K and V inside the fused step: {others}"
    assert {step.path for step in plan.steps} >= {s.path for s in program.steps if s.plan is None}


@pytest.mark.parametrize("name", list(kv_architectures()))
def test_spec_decoding_on_the_reference_equals_fast_decoding(name: str) -> None:
    arch = kv_architectures()[name]
    theta = random_theta(arch, 1, std=0.5)
    ids = np.array([2, 0, 1, 1])
    plan = decoding.plan(arch)
    rows = ReferenceRows(arch, theta)
    outputs, cache = decoding.extend(plan, decoding.Cache(), {"ids": (0, ids[:2])}, 2, rows)
    got = [outputs["logits"][1]]
    for t in range(2, len(ids)):
        outputs, cache = decoding.extend(plan, cache, {"ids": (t, ids[t:t + 1])}, 1, rows)
        got.append(outputs["logits"][1])
    spec_decoded = np.concatenate(got)
    program = fast.compile(arch, theta, "float64", block=2)
    first, state = program.prefill(ids[None, :2])
    fast_decoded = np.concatenate([first] + [program.decode(state, ids[None, t]) for t in range(2, len(ids))], axis=1)[0]
    np.testing.assert_allclose(spec_decoded, reference.forward(arch, theta, ids), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast_decoded, spec_decoded, rtol=1e-10, atol=1e-12)


def test_a_row_local_input_holds_only_the_new_rows() -> None:
    """ReferenceRows gives a row-local input NaN where decoding holds nothing: an op that read
    an earlier row would return NaN. A plan that wrongly called K row-local is caught this way."""
    arch = kv_architectures()["gpt: relu, two heads, scale 0.5 / layer"]
    theta = random_theta(arch, 2, std=0.5)
    plan = decoding.plan(arch)
    broken = decoding.Plan(tuple(decoding.Step(s.path, s.node, s.sources, ()) for s in plan.steps), plan.outputs, plan.inputs)
    rows = ReferenceRows(arch, theta)
    _, cache = decoding.extend(broken, decoding.Cache(), {"ids": (0, np.array([1, 2]))}, 2, rows)
    outputs, _ = decoding.extend(broken, cache, {"ids": (2, np.array([0]))}, 1, rows)
    assert np.isnan(outputs["logits"][1]).all()


def test_an_encoder_decoder_plan_decodes_ids_and_runs_the_encoder_once() -> None:
    """The source is context: every step that reads only it (the encoder, the cross-attention's K and
    V projections) is static, and the decoder's steps read what the plan keeps from the prefill."""
    from spec import build, preset

    arch = build(preset("transformer-tiny").config)
    plan = decoding.plan(arch)
    assert plan.inputs == ("ids",) and plan.context == ("source",)
    static = {step.path for step in plan.steps if step.static}
    assert any(path.startswith("encoder.") for path in static) and any(".cross_attn." in path for path in static)
    assert all(path.startswith("encoder.") or ".cross_attn." in path for path in static), sorted(static)
    assert not any(step.cached for step in plan.steps if step.static), "nothing static grows"
    read_later = {src for step in plan.steps if not step.static for src in step.sources.values()}
    assert plan.kept == {src for src in read_later if src in static or src == "input.source"}
    assert plan.kept and plan.kept <= static | {"input.source"}


def test_a_decoder_plan_refuses_a_composite_it_cannot_run_whole() -> None:
    arch = kv_architectures()["gpt: relu, two heads, scale 0.5 / layer"]
    plan = decoding.plan(arch, stop=lambda node: type(node.op).__name__ == "AttentionComposite")
    assert any(step.whole for step in plan.steps)
    with pytest.raises(ConfigError, match="run_whole"):
        decoding.extend(plan, decoding.Cache(), {"ids": (0, np.array([1]))}, 1, ReferenceRows(arch, random_theta(arch, 0)))


def test_the_plan_refuses_what_it_does_not_model() -> None:
    plan = decoding.plan(kv_architectures()["gpt: relu, two heads, scale 0.5 / layer"])
    with pytest.raises(ShapeError, match="count"):
        decoding.extend(plan, decoding.Cache(), {"ids": (0, np.array([1]))}, 0, ReferenceRows(kv_architectures()["gpt: relu, two heads, scale 0.5 / layer"], {}))
    with pytest.raises(ShapeError, match="growing inputs"):
        decoding.extend(plan, decoding.Cache(), {"x": (0, np.array([1]))}, 1, ReferenceRows(kv_architectures()["gpt: relu, two heads, scale 0.5 / layer"], {}))


def test_fast_runs_the_spec_evaluation_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """fast/ does not restate decoding: a forward, a prefill and every decode step are one call of
    spec.decoding.evaluate on the program's plan (the spec's, with the fused attention run whole)."""
    arch = kv_architectures()["gpt: relu, two heads, scale 0.5 / layer"]
    program = fast.compile(arch, random_theta(arch, 3, std=0.5), "float64", block=2)
    assert [s.path for s in program.plan.steps] == [s.path for s in program.steps]
    assert [s.path for s in program.plan.steps if s.whole] == [s.path for s in program.steps if s.plan is not None] != []
    calls: list[tuple[int, int, bool]] = []
    evaluate = decoding.evaluate

    def spy(plan: decoding.Plan, cache: decoding.Cache[object], new: object, first: int, length: int, rows: object,
            context: object = None, keep: bool = True) -> object:
        assert plan is program.plan
        calls.append((first, length, keep))
        return evaluate(plan, cache, new, first, length, rows, context, keep)  # type: ignore[arg-type]

    monkeypatch.setattr(decoding, "evaluate", spy)
    ids = np.array([[2, 0, 1, 1]])
    full = program.forward(ids)
    first, state = program.prefill(ids[:, :2])
    steps = [first] + [program.decode(state, ids[:, t]) for t in range(2, 4)]
    assert calls == [(0, 4, False), (0, 2, True), (2, 3, True), (3, 4, True)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-10, atol=1e-12)
