"""One record per family (spec/architectures/registry.py): every registered family has its record
complete, every table elsewhere is derived from the records, node counts come from built graphs,
and every family's and every preset's attention takes fast/'s fused path.

The guard (as tests/test_records.py does for primitives): a toy family registered here with only
its record — config class, builder, instances, strategy — reaches every derived table: the
``--all-ops`` coverage models, the causality and KV-cache theorems' instances and witnesses, and
the verify draws. This is also the test-sized example of docs/architecture.md's "Add a family".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast
import reference
from fast.attention import match
from spec import PRESETS, build
from spec.architectures import registry
from spec.architectures.registry import FAMILIES, Family, graph_size, node_count, register_family
from spec.blocks import AttentionComposite
from spec.config import Config
from spec.graph import Architecture
from spec.ops import MaskedSoftmax
from spec.theta import random_theta

INSTANCES = registry.instances()


# -- every record is complete ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_record_is_complete(name: str) -> None:
    from proofs import THEOREMS

    fam = FAMILIES[name]
    assert fam.instances(), f"family {name} has no fixed instances"
    for label, config in fam.instances().items():
        assert type(config) is fam.config, f"{name}: instance {label!r} is a {type(config).__name__}"
    assert fam.kind in ("decoder", "encoder-decoder")
    assert set(fam.theorems) <= set(THEOREMS), f"{name}: unknown theorems {set(fam.theorems) - set(THEOREMS)}"
    for thm in fam.theorems:  # a theorem the record names lists the family in its scope (docs, `gptspec prove --list`)
        assert name in THEOREMS[thm].families, f"{name}'s record names {thm}, whose families {THEOREMS[thm].families} omit it"
    assert fam.description


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_strategy_draws_valid_configs_of_its_family(name: str) -> None:
    fam = FAMILIES[name]

    @settings(max_examples=5, deadline=None)
    @given(fam.configs(max_layers=2))
    def prop(config: Config) -> None:
        assert type(config) is fam.config
        arch = build(config)
        assert node_count(arch) == graph_size(config)

    prop()


# -- node counts come from built graphs -------------------------------------------------------


SMALL_PRESETS = [n for n, p in PRESETS.items() if graph_size(p.config) < 1500]


@pytest.mark.parametrize("name", [*INSTANCES, *(f"preset {n}" for n in SMALL_PRESETS)])
def test_graph_size_is_the_built_graphs_node_count(name: str) -> None:
    config = INSTANCES[name] if name in INSTANCES else PRESETS[name.removeprefix("preset ")].config
    assert graph_size(config) == config.graph_size() == node_count(build(config))


def test_graph_size_extrapolates_exactly_along_depth() -> None:
    config = PRESETS["gpt2-small"].config
    assert graph_size(config.replace(n_layers=40)) == node_count(build(config.replace(n_layers=40)))
    assert graph_size(config.replace(n_layers=10**6)) > registry.MAX_GRAPH_NODES  # refused before any build of that size


# -- attention takes the fused path ---------------------------------------------------------------


def unfused_softmaxes(arch: Architecture) -> list[str]:
    """The masked softmaxes fast/ would run op by op: those outside an attention it fuses."""
    fused = []

    def stop(node: Any) -> bool:
        plan = match(node, arch.dims)
        if isinstance(node.op, AttentionComposite) and plan is None:
            raise AssertionError(f"attention {node.name} has no plan")
        if plan is not None:
            fused.append(node.name)
        return plan is not None

    left = [path for path, node, _ in arch.expand(stop=stop) if isinstance(node.op, MaskedSoftmax)]
    assert fused, "no fused attention at all"
    return left


@pytest.mark.parametrize("name", list(INSTANCES))
def test_every_family_instance_runs_its_attention_fused_and_equals_the_reference(name: str) -> None:
    arch = build(INSTANCES[name])
    assert unfused_softmaxes(arch) == []
    theta = random_theta(arch, 0, std=0.5)
    program = fast.compile(arch, theta, "float64", block=2)
    assert all(step.op is None or step.op.kind != "masked_softmax" for step in program.steps)
    if set(arch.inputs) == {"ids"}:
        ids = np.arange(6) % arch.dim("n_vocab")
        want = reference.forward(arch, theta, ids)
        np.testing.assert_allclose(program.forward(ids[None])[0], want, rtol=0, atol=1e-12 * np.max(np.abs(want)))


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_architecture_runs_its_attention_fused(name: str) -> None:
    """Each preset's blocks, at two periods of depth (the attention of every layer kind the preset
    has; the heads, widths and options as published)."""
    config = PRESETS[name].config
    period = config.layer_period()
    depth = {f: 2 * period for f in registry.DEPTH_FIELDS if isinstance(getattr(config, f, None), int)}
    if isinstance(getattr(config, "attention", None), tuple):
        depth = {f: max(v, len(config.attention)) for f, v in depth.items()}  # type: ignore[attr-defined]
    assert unfused_softmaxes(build(config.replace(**depth))) == []


# -- the guard: a toy family with only its record --------------------------------------------------


from spec.architectures.gpt import GPTConfig, build_gpt  # noqa: E402


@dataclass(frozen=True)
class ToyConfig(GPTConfig):
    """A toy family: a GPT under another name (test only)."""

    family: ClassVar[str] = "toy-family"
    name: str = field(default="toy", compare=False)


def toy_instances() -> dict[str, ToyConfig]:
    return {"one head": ToyConfig(n_vocab=4, n_ctx=6, d_model=2, n_layers=1, n_heads=1, d_mlp=2, name="toy-one-head")}


@pytest.fixture
def toy() -> Iterator[Family]:
    """Register the toy family's record — and nothing else — for one test."""
    saved = dict(FAMILIES)
    register_family("toy-family", ToyConfig, "a toy family (test only)", instances=toy_instances,
                    configs=lambda max_layers=2: st.sampled_from(list(toy_instances().values())))(build_gpt)
    try:
        yield FAMILIES["toy-family"]
    finally:
        FAMILIES.clear()
        FAMILIES.update(saved)


def test_a_toy_family_reaches_every_derived_table(toy: Family) -> None:
    from gptspec.verify import coverage
    from gptspec.verify.strategies import model_configs
    from proofs.theorems._common import decoder_configs
    from proofs.theorems.causality import kv_architectures

    label = "toy-family: one head"
    assert label in coverage.coverage_models() and label in tuple(coverage.COVERAGE), "--all-ops coverage models"  # type: ignore[arg-type]
    assert coverage.coverage_target(label).arch.config == toy_instances()["one head"]
    assert label in kv_architectures(), "the KV-cache theorem's instances"
    assert label in registry.instances(theorem="causal_at_any_depth"), "the causality theorem's instances"
    drawn: list[Config] = []

    @settings(max_examples=60, deadline=None)
    @given(st.tuples(model_configs(), decoder_configs("kv_cache_equals_full_evaluation")))
    def collect(pair: tuple[Config, Config]) -> None:
        drawn.extend(pair)

    collect()
    assert any(type(c) is ToyConfig for c in drawn), "the verify draws and the theorems' witnesses draw the toy family"


def test_a_record_must_name_a_known_kind_and_decoding() -> None:
    from spec.errors import ConfigError

    with pytest.raises(ConfigError, match=r"kind='encoder_decoder', but expected 'decoder' or 'encoder-decoder'"):
        register_family("bad", ToyConfig, "bad", instances=toy_instances, kind="encoder_decoder")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"decoding=\['beam'\], but expected some of \['kv-cache'\]"):
        register_family("bad", ToyConfig, "bad", instances=toy_instances, decoding=("beam",))
