"""What a ``gptspec check`` run exercises, and ``--all-ops``: every op, mask family and padding
mode the library has.

``gptspec check MODEL`` verifies the ops MODEL uses, with MODEL's attributes, and MODEL on padded
batches: a mutant of fast/ in an op, a mask family or a padding mode MODEL never uses passes it
(the default ``tiny`` has no banded, windowed or key-padding mask, no sinusoidal positions, no
rotary embedding). So the report says what the run does not exercise (:func:`missing_line`), and
``--all-ops`` adds:

- every registered primitive (``spec.op.PRIMITIVES``), drawn from its own examples
  (``Primitive.examples``: every mask family, key padding with rows that allow no key, one head,
  width 1, every convolution padding, ε from 1e-12 to 0.1);
- small models of every registered family (:func:`coverage_models`: each family record's fixed
  instances, e.g. GPT with banded layers and sinusoidal positions, Llama with grouped queries, a
  sliding window and llama3 rotary scaling, a causal ConvGPT, and the encoder–decoder
  Transformer) on padded batches (left and right padding) and with KV-cache decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gptspec.verify.cases import Verdict
from gptspec.verify.checks import check_op, op_script
from gptspec.verify.component import Component, Result, Target
from gptspec.verify.implementation import Implementation
from gptspec.verify.strategies import OpExample, small_op_examples
from gptspec.verify.tolerance import DEFAULT, Policy
from spec import masks as spec_masks
from spec.config import Config
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.masks import Intersection, KeyRow, Relation, SupportOf, WithinRow
from spec.op import PRIMITIVES, Primitive

MASK_FAMILIES: tuple[type[Relation], ...] = tuple(
    cls for cls in vars(spec_masks).values()
    if isinstance(cls, type) and issubclass(cls, Relation) and cls is not Relation and cls.__module__ == spec_masks.__name__
    and cls not in (KeyRow, WithinRow, SupportOf)
)
"""The mask families of spec.masks (a relation an attention mask can be; not the rule-only
relations KeyRow, WithinRow, SupportOf)."""

OP_LEVEL_PADDING = "key-padding masks at the op level, rows with no allowed key included"
"""The padding mode only op-level examples reach (model components pad through ``valid``)."""


@dataclass(frozen=True)
class Coverage:
    """What a run exercises: op kinds, mask families, and whether op-level key padding is drawn."""

    ops: frozenset[str]
    masks: frozenset[str]
    key_padding: bool


def _families(rel: Relation) -> set[str]:
    found = {type(rel).__name__}
    if isinstance(rel, Intersection):
        for part in rel.parts:
            found |= _families(part)
    return found


def exercised(arch: Architecture) -> Coverage:
    """The op kinds and mask families ``gptspec check`` on ``arch`` exercises."""
    ops: set[str] = set()
    masks: set[str] = set()
    for _, node, _ in arch.expand():
        op = node.op
        if not isinstance(op, Primitive):
            continue
        ops.add(op.kind)
        mask = getattr(op, "mask", None)
        if isinstance(mask, Relation):
            masks |= _families(mask)
    return Coverage(frozenset(ops), frozenset(masks), "KeyPadding" in masks)


def library() -> Coverage:
    """Every op kind and mask family the library has (what ``--all-ops`` exercises)."""
    return Coverage(frozenset(PRIMITIVES), frozenset(cls.__name__ for cls in MASK_FAMILIES), True)


def missing_line(arch: Architecture, label: str, all_ops: bool = False) -> str:
    """One line of the report: what the run on ``arch`` does not exercise (nothing with ``--all-ops``)."""
    everything = library()
    if all_ops:
        return (f"--all-ops: also every registered op ({len(everything.ops)}) from its own examples, every mask family "
                f"({len(everything.masks)}), {OP_LEVEL_PADDING}, and small models of every family ({', '.join(coverage_models())}) "
                "on padded batches and decoding")
    got = exercised(arch)
    ops = sorted(everything.ops - got.ops, key=list(PRIMITIVES).index)
    masks = sorted(everything.masks - got.masks)
    parts = []
    if ops:
        parts.append(f"ops {', '.join(ops)}")
    if masks:
        parts.append(f"masks {', '.join(masks)}")
    if not got.key_padding:
        parts.append(OP_LEVEL_PADDING)
    if not parts:
        return f"{label} exercises every op, mask family and padding mode of the library"
    return f"not exercised by {label}: {'; '.join(parts)} (gptspec check --all-ops checks them all)"


# -- the --all-ops components ----------------------------------------------------------------


def coverage_models() -> dict[str, Config]:
    """The small models ``--all-ops`` runs whole: every registered family's fixed instances
    (spec.architectures.registry.instances), by ``"<family>: <instance>"``."""
    from spec.architectures.registry import instances

    return instances()


def __getattr__(name: str) -> object:
    if name == "COVERAGE":  # read when asked, so a family registered later is in it
        return tuple(coverage_models())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# (the reduced models end at width 2: a layer norm over a width-1 row is 0, which would make their logits 0)


def coverage_target(name: str, seed: int = 0) -> Target:
    """The coverage model ``name`` with the documented random θ of a preset and a seed."""
    from spec import build
    from spec.theta import preset_theta

    models = coverage_models()
    if name not in models:
        raise ConfigError(f"coverage model={name!r}, but expected one of {list(models)} [gptspec check --all-ops]")
    arch = build(models[name])
    return Target(f"coverage model {name!r} (random θ, seed {seed})", arch, dict(preset_theta(arch, seed)),
                  f"from gptspec.verify.coverage import coverage_target\ntarget = coverage_target({name!r}, seed={seed})")


def op_components(impl: Implementation, impl_snippet: str, policy: Policy = DEFAULT) -> Iterator[Component]:
    """One component per registered primitive, drawn from its own examples."""
    for kind in PRIMITIVES:
        def check(case: tuple[Primitive, OpExample]) -> Verdict | None:
            op, example = case
            return check_op(impl, op, example, policy)

        def snippet(case: tuple[Primitive, OpExample]) -> str:
            return op_script(impl_snippet, case[0], case[1], policy)

        yield Component(f"all ops: {kind} (its own examples: every attribute's hard cases)", small_op_examples(kind), check, snippet)


def verify_all_ops(
    impl: Implementation, impl_snippet: str, *, examples: int = 25, seed: int = 0, policy: Policy = DEFAULT,
    on_result: Callable[[Result], None] | None = None, on_start: Callable[[str], None] | None = None,
    shard: tuple[int, int] = (1, 1),
) -> list[Result]:
    """What ``--all-ops`` adds, through verify's driver as the rest of ``check``: every
    registered primitive from its own examples (:func:`op_components`, the k-th in shard k mod n
    + 1), then each coverage model whole — padded batches and decoding (an encoder–decoder's with
    their sources; its ops are among the first) — as ``check`` runs a model
    (gptspec/verify/engine.py: run_given), each result named ``"<model>: <component>"``."""
    from gptspec.verify.engine import check_options, run_given
    from gptspec.verify.localise import Localisation
    from gptspec.verify.session import Runner, given
    from gptspec.verify.shard import check_shard, owns

    shard = check_shard(shard, "--shard")
    results: list[Result] = []
    models = coverage_models()
    first = coverage_target(next(iter(models)), seed)  # the op components judge ops alone: any target's runner runs them
    runner = Runner(given(first, impl, impl_snippet), check_options(examples, seed, policy, shard), on_start)
    for k, component in enumerate(op_components(impl, impl_snippet, policy)):
        if not owns(shard, k):
            continue
        kind = component.name.removeprefix("all ops: ").split(" ")[0]
        result = runner.op_component(component, Localisation(kind, kind, "component", "the op alone differs from the reference on one of its own examples"))
        results.append(result)
        if on_result is not None:
            on_result(result)
    for name in models:
        results += run_given(coverage_target(name, seed), impl, impl_snippet, examples=examples, seed=seed, policy=policy, shard=shard,
                             on_result=on_result, on_start=on_start, prefix=f"{name}: ", components=("model", "decode"))  # its ops: above
    return results


__all__ = ["MASK_FAMILIES", "Coverage", "coverage_models", "coverage_target", "exercised", "library",
           "missing_line", "op_components", "verify_all_ops"]
