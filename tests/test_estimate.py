"""Cost up front (issue 13, item 5): parameters counted without building deep DAGs, the estimate
of a run, and the refusal — with the numbers, in well under a second — of a run that cannot fit."""

from __future__ import annotations

import pytest

from gptspec.cli import main
from gptspec.estimate import available_memory, estimate, parameters_of
from gptspec.models import Run, resolve
from spec import ConfigError, build, preset
from spec.counting import count


@pytest.mark.parametrize("name", ["gpt2-small", "gpt3-small", "linear-gpt", "parallel-gpt", "qwen2-0.5b", "transformer-tiny"])
def test_parameters_without_building_equal_the_count(name: str) -> None:
    config = preset(name).config
    assert parameters_of(config) == count(build(config))


def built_depths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The depths of every architecture built from now on, by the estimate or by the tool layer
    (building gpt3-175b whole takes 13–16 s, docs/performance.md: the point is not to)."""
    import gptspec.estimate
    import gptspec.models

    depths: list[int] = []

    def recording(config: object) -> object:
        depths.append(int(getattr(config, "n_layers", 0)))
        return build(config)  # type: ignore[arg-type]

    monkeypatch.setattr(gptspec.estimate, "build", recording)
    monkeypatch.setattr(gptspec.models, "build", recording)
    return depths


def test_the_largest_preset_is_counted_without_building_it(monkeypatch: pytest.MonkeyPatch) -> None:
    depths = built_depths(monkeypatch)
    n = parameters_of(preset("gpt3-175b").config)
    assert n == 174_604_259_328  # the count docs/performance.md shows `gptspec params gpt3-175b` printing
    assert depths and max(depths) <= 6, f"built depths {depths}: only shallow copies may be built (96 layers are extrapolated)"


@pytest.mark.parametrize("argv", [
    ["forward", "gpt3-175b", "--tokens", "1 2", "--impl", "fast", "--dtype", "bfloat16"],
    ["check", "gpt3-175b"],
])
def test_hostile_sizes_are_refused_before_any_build(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Building gpt3-175b's DAG takes seconds and drawing its θ 1.3 TB: the refusal comes first."""
    depths = built_depths(monkeypatch)
    assert main(argv) == 2  # could not run
    err = capsys.readouterr().err
    assert "174,604,259,328 parameters = 1300.9 GiB in float64" in err, err
    assert max(depths, default=0) <= 6, f"built depths {depths} before refusing: the 96-layer DAG was built"


def test_a_run_that_does_not_fit_the_available_memory_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    est = estimate(preset("gpt2-small").config, impl="fast", dtype="float32", tokens=16)
    assert est.parameters == 124_439_808 and est.memory > 8 * est.parameters  # θ drawn in float64, then float32 in fast
    assert est.flops == pytest.approx(2 * 124_439_808 * 16 + 4 * 12 * 16 * 16 * 768)
    monkeypatch.setenv("GPTSPEC_AVAILABLE_MEMORY", str(est.memory - 1))
    assert available_memory() == est.memory - 1
    with pytest.raises(ConfigError, match=r"estimated memory=.* \(124,439,808 parameters; fast in float32.*but expected at most"):
        resolve("gpt2-small", need_theta=True, run=Run("fast", "float32", 16), progress=False)
    monkeypatch.setenv("GPTSPEC_AVAILABLE_MEMORY", str(100 * 2**20))  # 100 MiB: tiny fits, gpt2-small's θ does not
    assert main(["forward", "tiny", "--tokens", "1 2"]) == 0
    assert main(["forward", "gpt2-small", "--tokens", "1 2"]) == 2  # could not run
    assert "0.9 GiB in float64, but expected at most the 0.1 GiB this machine has available" in capsys.readouterr().err


def test_large_runs_print_their_estimate_first(capsys: pytest.CaptureFixture[str]) -> None:
    model = resolve("gpt2-small", need_theta=False, run=Run("reference", tokens=4))
    assert model.estimate is None  # no θ needed: nothing runs
    est = estimate(preset("gpt2-small").config, impl="reference", tokens=4)
    assert est.line().startswith("estimate: 124,439,808 parameters, 0 B to read, 1.0 GFLOP per forward of 4 tokens")


def test_long_reference_runs_report_progress(capsys: pytest.CaptureFixture[str]) -> None:
    from gptspec.cli import _Progress

    progress = _Progress("gptspec forward (reference)")
    progress(3, 10, "blocks.7.attn.head_2.softmax")  # shown at once, then at most every few seconds
    progress(4, 10, "blocks.7.attn.head_3.Q")
    progress(10, 10, "unembed")  # and always at the end
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("gptspec forward (reference): 3/10 ops (30%), at blocks.7, ")
    assert lines[-1].startswith("gptspec forward (reference): 10/10 ops (100%), at unembed, ") and len(lines) == 2
