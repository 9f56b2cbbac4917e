"""The compressed decoder-only GPTs of Suresh & P. (docs/sources.md §2): ParallelGPT, LinearGPT and
ConvGPT as registered families — the authors' counts, the reference against fast/ (padded
batches, KV-cache decoding, generation), and causality by typing in the product."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import reference
from fast.lm import generate as fast_generate
from gptspec.cli import main
from gptspec.typing_report import verdict
from proofs.dependency import Windows, causality, relation
from reference.lm import generate as reference_generate
from spec import build, count, family_of, preset, symbolic_count
from spec.architectures.conv_gpt import ConvGPTConfig, conv_gpt
from spec.architectures.linear_gpt import LinearGPTConfig
from spec.architectures.parallel_gpt import ParallelGPTConfig
from spec.config import Config
from spec.errors import ConfigError
from spec.lm import Sampler
from spec.theta import random_theta

AUTHORS = {  # docs/sources.md §2: the counts the authors' code gives (position embeddings included)
    "baseline-gpt": 77_210_112,
    "linear-gpt": 36_423_936,
    "conv-gpt": 36_423_936,
    "parallel-gpt": 77_735_425,
}


@pytest.mark.parametrize("name", AUTHORS)
def test_presets_reproduce_the_authors_counts(name: str) -> None:
    got = count(build(preset(name).config))
    assert got == AUTHORS[name], f"count({name})={got:,}, but expected {AUTHORS[name]:,} [Suresh & P.]"


def test_the_reduction_the_paper_reports() -> None:
    """LinearGPT ≈ 53% fewer parameters than the baseline; the report hook prints it."""
    arch = build(preset("linear-gpt").config)
    report = family_of(arch.config).report
    assert report is not None
    lines = report(arch)
    assert "36,423,936 vs 77,210,112" in lines[0] and "52.8% fewer" in lines[0] and "53%" in lines[0]
    assert 1 - AUTHORS["linear-gpt"] / AUTHORS["baseline-gpt"] == pytest.approx(0.5282, abs=5e-5)
    parallel = build(preset("parallel-gpt").config)
    assert AUTHORS["parallel-gpt"] - AUTHORS["baseline-gpt"] == 2 * (512 * 512 + 512) + 1, "two d→d affine maps and the gate"
    parallel_report = family_of(parallel.config).report
    assert parallel_report is not None and "0.7% more" in parallel_report(parallel)[0]


def test_linear_gpt_widths_halve_with_the_head_count_fixed() -> None:
    arch = build(preset("linear-gpt").config)
    shapes = arch.theta_shapes()
    assert [shapes[f"blocks.{layer}.attn.W_Q"] for layer in (0, 2, 4, 6)] == [(8, 512, 64), (8, 256, 32), (8, 128, 16), (8, 64, 8)]
    assert [shapes[f"reducers.{k}.W"] for k in range(4)] == [(512, 256), (256, 128), (128, 64), (64, 32)]
    assert shapes["W_U"] == (32, 50304) and shapes["ln_f.gamma"] == (32,)
    conv = build(preset("conv-gpt").config).theta_shapes()
    assert [conv[f"reducers.{k}.W"] for k in range(4)] == [(1, 512, 256), (1, 256, 128), (1, 128, 64), (1, 64, 32)]


SMALL: list[Config] = [
    ParallelGPTConfig(n_vocab=13, n_ctx=12, d_model=8, n_layers=2, n_heads=2, bias=True),
    ParallelGPTConfig(n_vocab=13, n_ctx=12, d_model=8, n_layers=4, n_heads=2, tied=True),
    LinearGPTConfig(n_vocab=13, n_ctx=12, d_model=16, n_layers=4, n_heads=2),
    LinearGPTConfig(n_vocab=13, n_ctx=12, d_model=8, n_layers=3, n_heads=2, reduce_every=1, bias=True),
    ConvGPTConfig(n_vocab=13, n_ctx=12, d_model=16, n_layers=4, n_heads=2),
    ConvGPTConfig(n_vocab=13, n_ctx=12, d_model=16, n_layers=4, n_heads=2, kernel=3),
    ConvGPTConfig(n_vocab=13, n_ctx=12, d_model=8, n_layers=2, n_heads=2, kernel=2, reduce_every=1, bias=True),
]


@pytest.mark.parametrize("config", SMALL, ids=lambda c: f"{c.family}-{c.n_layers}")
def test_symbolic_count_is_the_count(config: Config) -> None:
    arch = build(config)
    assert int(symbolic_count(arch).subs(arch.dims)) == count(arch)
    assert symbolic_count(arch).free_symbols <= {sympy.Symbol(n, integer=True, positive=True) for n in ("d_model", "n_vocab", "n_ctx", "n_layers")}


@pytest.mark.parametrize("config", SMALL, ids=lambda c: f"{c.family}-{c.n_layers}")
def test_fast_equals_the_reference_on_padded_batches_and_decodes_with_the_cache(config: Config) -> None:
    arch = build(config)
    theta = random_theta(arch, 3, std=0.4)
    program = fast.compile(arch, theta, "float64", block=2)
    n_blocks = config.n_layers  # type: ignore[attr-defined]
    assert sum(step.plan is not None for step in program.steps) == n_blocks, "the fused attention recognises every block, at every width"

    @settings(max_examples=3)
    @given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(1, 7), st.booleans()), min_size=1, max_size=3))
    def prop(seed: int, rows: list[tuple[int, bool]]) -> None:
        rng = np.random.default_rng(seed)
        width = max(n for n, _ in rows)
        ids = rng.integers(0, 13, size=(len(rows), width))
        valid = np.zeros(ids.shape, dtype=bool)
        for b, (n, left) in enumerate(rows):
            if left:
                valid[b, width - n:] = True
            else:
                valid[b, :n] = True
        want = [reference.forward(arch, theta, ids[b, valid[b]]) for b in range(len(rows))]
        full = program.forward(ids, valid)
        for b in range(len(rows)):
            np.testing.assert_allclose(full[b, valid[b]], want[b], rtol=1e-9, atol=1e-11)
        prefix = max(1, width // 2)
        first, state = program.prefill(ids[:, :prefix], valid[:, :prefix])
        decoded = np.concatenate([first] + [program.decode(state, ids[:, t], valid[:, t]) for t in range(prefix, width)], axis=1)
        for b in range(len(rows)):
            np.testing.assert_allclose(decoded[b, valid[b]], want[b], rtol=1e-9, atol=1e-11)

    prop()


@pytest.mark.parametrize("config", [SMALL[0], SMALL[2], SMALL[5]], ids=["parallel", "linear", "conv-k3"])
def test_generation_with_the_cache_equals_the_reference(config: Config) -> None:
    arch = build(config)
    theta = random_theta(arch, 5, std=0.5)
    program = fast.compile(arch, theta, "float64")
    for sampler in (Sampler(), Sampler(temperature=0.9, top_k=5, seed=7)):
        want = reference_generate(arch, theta, [1, 2, 3], 5, sampler)
        assert fast_generate(program, [[1, 2, 3]], 5, sampler)[0] == want


def test_the_sigmoid_gate_combines_the_branches() -> None:
    """With the gate's a → ±∞ the model is one branch alone (Suresh & P. discuss dropping one)."""
    arch = build(SMALL[0])
    theta = random_theta(arch, 1, std=0.5)
    values = reference.evaluate(arch, theta, {"ids": np.array([1, 2, 3])})
    w = 1 / (1 + np.exp(-theta["gate.a"][0]))
    np.testing.assert_allclose(values["gate"], w * values["blocks.0.add_mlp"] + (1 - w) * values["blocks.1.add_mlp"], rtol=1e-13)
    theta["gate.a"] = np.array([800.0])
    np.testing.assert_array_equal(reference.evaluate(arch, theta, {"ids": np.array([1, 2, 3])})["gate"],
                                  reference.evaluate(arch, theta, {"ids": np.array([1, 2, 3])})["blocks.0.add_mlp"])


@pytest.mark.parametrize(("kernel", "pad_left", "causal", "window"), [
    (1, 0, True, "s ≤ t"), (3, 2, True, "s ≤ t"), (3, 1, False, "s ≤ t + 1"), (3, 0, False, "s ≤ t + 2"), (2, 0, False, "s ≤ t + 1"),
])
def test_conv_gpt_causality_by_typing_names_the_reducer(kernel: int, pad_left: int, causal: bool, window: str) -> None:
    arch = conv_gpt(kernel, pad_left)
    verdict_ = causality(arch, "logits", "ids")
    assert verdict_.causal == causal and relation(arch, "logits", "ids").text() == window
    assert causal or [path for path, _ in verdict_.breaks] == ["reducers.0"]


def test_conv_gpt_as_published_is_causal_and_its_window_is_stated() -> None:
    arch = build(preset("conv-gpt").config.replace(kernel=3))
    assert relation(arch) == Windows.of((-sympy.oo, 0))
    lines = verdict(arch).lines()
    assert "causal — logits row t depends on ids positions s ≤ t (the receptive field)" in lines[0]


def test_params_prints_the_reduction_and_the_causality_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "linear-gpt"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "36423936"
    assert any("52.8% fewer" in line and "≈ 53%" in line for line in out)
    assert any(line.startswith("causality (dependency typing, before anything runs): causal") for line in out)
    assert main(["params", "conv-gpt", "--set", "kernel=3", "--set", "pad_left=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    verdict_line = next(i for i, line in enumerate(out) if line.startswith("causality"))
    assert "NOT causal" in out[verdict_line] and "s ≤ t + 4" in out[verdict_line], "one future step per reducer"
    assert "causality is lost at reducers.0" in out[verdict_line + 1] and "Window(lo=-1, hi=1)" in out[verdict_line + 1]
    assert out[-1] == str(count(build(preset("conv-gpt").config.replace(kernel=3, pad_left=1))))


def test_check_says_not_causal_first_and_skips_decoding(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    from pathlib import Path

    builder = Path(str(tmp_path)) / "sym.py"
    builder.write_text("from spec.architectures.conv_gpt import conv_gpt\n\ndef symmetric():\n    return conv_gpt(3, 1)\n")
    code = main(["check", f"{builder}:symmetric", "--examples", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1, "a decoder that is not causal fails the gate, after everything defined is checked"
    assert out[0].startswith("causality (dependency typing, before anything runs): NOT causal")
    assert "reducers.0" in out[1] and "not run" in out[2]
    decode = next(line for line in out if "model: incremental decoding" in line)
    assert "SKIP" in decode
    ran = [line for line in out if line.endswith("s)") and ("PASS" in line or "FAIL" in line)]
    assert ran and all("PASS" in line for line in ran), "every component that runs passes"
    assert any("model: padded batches" in line and "PASS" in line for line in out)


@pytest.mark.parametrize(("config", "message"), [
    (lambda: ParallelGPTConfig(n_vocab=9, n_ctx=8, d_model=8, n_layers=3, n_heads=2), "even"),
    (lambda: ConvGPTConfig(n_vocab=9, n_ctx=8, d_model=16, n_layers=2, n_heads=2, stride=2), "stride=1"),
    (lambda: ConvGPTConfig(n_vocab=9, n_ctx=8, d_model=16, n_layers=2, n_heads=2, kernel=3, pad_left=3), "pad_left"),
    (lambda: LinearGPTConfig(n_vocab=9, n_ctx=8, d_model=12, n_layers=4, n_heads=4), "whole multiple of n_heads"),
    (lambda: LinearGPTConfig(n_vocab=9, n_ctx=8, d_model=12, n_layers=6, n_heads=3), "divisible by 2"),
    (lambda: LinearGPTConfig(n_vocab=9, n_ctx=8, d_model=8, n_layers=2, n_heads=2, tied=True), "tied=true"),
])
def test_configs_the_variants_cannot_build_are_refused_by_name(config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(config())  # type: ignore[operator]
