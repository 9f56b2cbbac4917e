"""Identify: which registered variant of its architecture a target does compute (docs/verify.md,
"Identify").

A failing model is often a correct implementation of a neighbouring function — nanoGPT's MLP is
exact-erf GELU where GPT-2's is tanh, a codebase fixes ε at 1e-6, pairs rotary features the
other way. The family's config fields are a search space: :data:`VARIANTS` lists, per field, the
values tried. A variant is one or two field changes; it is kept only if it leaves Θ's names and
shapes as they are (the same target, the same θ: tying, biases and head counts change Θ and are
told by layout inference instead). Candidates are ordered by the localisation (a fault in the
MLP tries the activation first, in a norm ε first, in attention the scale and rotary first),
each screened on :data:`SCREEN` cases — the target built for the variant's config, as
``--set`` would build it — and the first that passes is confirmed on the whole campaign: "computes
gpt2 with activation=gelu_erf: every component passes". The search is bounded by
``budget`` variants (reported with its cost); when none passes it says "no registered variant
matches".
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from spec.errors import GptSpecError

VARIANTS: dict[str, tuple[object, ...]] = {
    "activation": ("gelu_tanh", "gelu_erf", "relu", "silu"),
    "eps": (1e-5, 1e-6, 1e-8, 1e-12, 1e-4, 0.0),
    "attn_scale": (1.0,),
    "scale_by_inverse_layer": (True, False),
    "rope_pairing": ("half", "interleaved"),
    "rope_base": (10000.0, 500000.0, 1000000.0),
}
"""Config field → the values tried (those the family's config accepts and that keep Θ's shapes).
Tying, biases, positions and head counts change Θ: layout inference tells them, not this search."""

HINTS: dict[str, tuple[str, ...]] = {
    "mlp": ("activation",), "gelu": ("activation",), "relu": ("activation",), "silu": ("activation",), "gate": ("activation",),
    "ln": ("eps",), "norm": ("eps",),
    "attn": ("attn_scale", "scale_by_inverse_layer", "rope_pairing", "rope_base"), "softmax": ("attn_scale",),
    "score": ("attn_scale",), "rotary": ("rope_pairing", "rope_base"), "positional": ("rope_pairing",),
}
"""Words of a localisation → the fields tried first."""

SCREEN = 2
"""Cases a variant must pass before it is confirmed on the whole campaign."""

BUDGET = 40
"""The most variants screened by default."""


@dataclass
class Identified:
    """The outcome of a search: the changes found (empty: the target computes the config as
    given), whether they pass, and what it cost."""

    base: str
    changes: dict[str, object] = field(default_factory=dict)
    passed: bool = False
    tried: int = 0
    candidates: int = 0
    seconds: float = 0.0

    def flags(self) -> str:
        return " ".join(f"--set {k}={_value(v)}" for k, v in self.changes.items())

    def describe(self) -> str:
        cost = f"{self.tried} of {self.candidates} variants screened in {self.seconds:.1f} s"
        if not self.passed:
            return f"no registered variant matches ({cost})"
        if not self.changes:
            return f"computes {self.base} as given: every component passes ({cost})"
        shown = ", ".join(f"{k}={_value(v)}" for k, v in self.changes.items())
        return f"computes {self.base} with {shown}: every component passes ({cost}); verify it with {self.flags()}"

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base, "changes": {k: _json(v) for k, v in self.changes.items()}, "passed": self.passed,
                "flags": self.flags(), "variants_screened": self.tried, "variants": self.candidates, "seconds": self.seconds,
                "summary": self.describe()}


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def variants(config: Any, shapes: dict[str, tuple[int, ...]], hint: str = "") -> list[dict[str, object]]:
    """Single changes then pairs of them, each a config the family accepts with Θ's shapes
    unchanged; fields named by the hint first."""
    from spec import build

    fields = [f for f in VARIANTS if hasattr(config, f)]
    words = [w for w in HINTS if w in hint.lower()]
    first = [f for w in words for f in HINTS[w] if f in fields]
    order = list(dict.fromkeys(first + fields))
    singles: list[dict[str, object]] = []
    for name in order:
        for value in VARIANTS[name]:
            if getattr(config, name) == value and type(getattr(config, name)) is type(value):
                continue
            change = {name: value}
            if _same_shapes(config, change, shapes, build):
                singles.append(change)
    # pairs of single changes on different fields (each kept Θ's shapes; identify checks the pair's when it builds it)
    pairs = [a | b for a, b in itertools.combinations(singles, 2) if not set(a) & set(b)]
    return singles + pairs


def _same_shapes(config: Any, change: dict[str, object], shapes: dict[str, tuple[int, ...]], build: Callable[[Any], Any]) -> bool:
    try:
        return bool(build(config.replace(**change)).theta_shapes() == shapes)
    except (GptSpecError, TypeError, ValueError):
        return False


def identify(runner: Any, hint: str = "", budget: int = BUDGET, progress: Callable[[str], None] | None = None,
             passed_as_given: bool = False) -> Identified:
    """Search the variants of ``runner``'s architecture for one the target computes (module
    docstring). ``runner`` is a :class:`gptspec.verify.session.Runner` whose campaign was run;
    ``passed_as_given``: it passed, so the config as given is the answer (the search is not run).
    The runner makes each variant's trial run itself (``runner.variant(arch)``)."""
    from spec import build

    start = time.perf_counter()
    s = runner.s
    base = s.arch.name
    if passed_as_given:
        return Identified(base, {}, True, 0, 0, time.perf_counter() - start)
    config = s.arch.config
    found = variants(config, s.arch.theta_shapes(), hint)
    out = Identified(base, candidates=len(found))
    planned = runner.plan()["model"][:SCREEN]
    for change in found[:budget]:
        out.tried += 1
        say = progress or (lambda _m: None)
        say(f"identify: variant {out.tried}/{min(budget, len(found))}: {', '.join(f'{k}={_value(v)}' for k, v in change.items())}")
        try:
            arch = build(config.replace(**change))
        except GptSpecError:
            continue
        if arch.theta_shapes() != s.arch.theta_shapes() or not runner.config_ok(arch.config):
            continue
        trial = runner.variant(arch)
        if not _screen(trial, planned, arch.config):
            continue
        results = trial.run(None)
        if all(r.status in ("passed", "not run") for r in results) and any(r.status == "passed" for r in results):
            out.changes, out.passed = change, True
            break
    out.seconds = time.perf_counter() - start
    return out


def _screen(trial: Any, cases: Sequence[Any], config: Any) -> bool:
    for case in cases:
        case = replace(case, config=config)
        try:
            verdict = trial.judge("model", case)
        except Exception:  # noqa: BLE001 - a variant the target cannot run is not the one
            return False
        if not verdict.passed:
            return False
    return True


__all__ = ["BUDGET", "SCREEN", "VARIANTS", "Identified", "identify", "variants"]
