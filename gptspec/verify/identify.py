"""Identify: which registered variant of its architecture a target does compute (docs/verify.md,
"Identify").

A failing model is often a correct implementation of a neighbouring function — nanoGPT's MLP is
exact-erf GELU where GPT-2's is tanh, a codebase fixes ε at 1e-6, pairs rotary features the
other way, drops the biases, unties the head or groups its key/value heads otherwise. The
family's config fields are a search space: :data:`VARIANTS` lists, per field, the values tried
(:data:`RESHAPING` those that change Θ's names or shapes; the key/value head count tries every
divisor of the head count). A variant is one or two field changes. One that keeps Θ is judged with
the target as it is; one that changes Θ — tying, biases, positions, grouping — is judged with θ
drawn for the variant and the target built for the variant's native config, exactly as ``--set``
builds it, and only if that target's parameters take the variant's Θ (:func:`loadable`: a class
or factory is rebuilt, an instance keeps its parameters, so a variant that needs other ones is
skipped and counted). Candidates are ordered by the localisation (a fault in the MLP tries the
activation first, in a norm ε first, in attention the scale, rotary and grouping first, in the
head the tying), each screened on :data:`SCREEN` cases, and the first that passes is confirmed on
the whole campaign: "computes gpt2 with activation=gelu_erf: every component passes". The search
is bounded by ``budget`` variants screened (reported with its cost); when none passes it says "no
registered variant matches".
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
    "rope_scaling": ("none", "linear", "llama3"),
    "rope_factor": (1.0, 2.0, 4.0, 8.0),
    "tied": (True, False),
    "bias": (True, False),
    "qkv_bias": (True, False),
    "out_bias": (True, False),
    "mlp_bias": (True, False),
    "positional": ("learned", "sinusoidal"),
    "n_kv_heads": (),
}
"""Config field → the values tried (those the family's config refuses are dropped when built).
``n_kv_heads`` tries every divisor of the config's ``n_heads`` (:func:`_values`)."""

RESHAPING = ("tied", "bias", "qkv_bias", "out_bias", "mlp_bias", "positional", "n_kv_heads")
"""The fields whose change changes Θ's names or shapes: a variant changing one is judged with θ
drawn for it and the target built for it (module docstring)."""

HINTS: dict[str, tuple[str, ...]] = {
    "mlp": ("activation",), "gelu": ("activation",), "relu": ("activation",), "silu": ("activation",), "gate": ("activation",),
    "ln": ("eps",), "norm": ("eps",),
    "attn": ("attn_scale", "scale_by_inverse_layer", "rope_pairing", "rope_base", "n_kv_heads", "qkv_bias"), "softmax": ("attn_scale",),
    "score": ("attn_scale",), "rotary": ("rope_pairing", "rope_base", "rope_scaling", "rope_factor"),
    "rope": ("rope_pairing", "rope_base", "rope_scaling", "rope_factor"), "positional": ("rope_pairing", "positional"),
    "wpe": ("positional",), "unembed": ("tied",), "head": ("tied",), "w_u": ("tied",), "bias": ("bias", "qkv_bias", "out_bias", "mlp_bias"),
    "beta": ("bias",), "kv": ("n_kv_heads",), "w_k": ("n_kv_heads",), "w_v": ("n_kv_heads",),
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
    unloadable: int = 0
    """Variants changing Θ that the target's parameters cannot take (an instance's fixed parameters,
    a class that ignores the field): skipped, not screened."""

    def flags(self) -> str:
        return " ".join(f"--set {k}={_value(v)}" for k, v in self.changes.items())

    def describe(self) -> str:
        cost = f"{self.tried} of {self.candidates} variants screened in {self.seconds:.1f} s"
        if self.unloadable:
            cost += f"; {self.unloadable} skipped: the target's parameters do not take their Θ"
        if not self.passed:
            return f"no registered variant matches ({cost})"
        if not self.changes:
            return f"computes {self.base} as given: every component passes ({cost})"
        shown = ", ".join(f"{k}={_value(v)}" for k, v in self.changes.items())
        return f"computes {self.base} with {shown}: every component passes ({cost}); verify it with {self.flags()}"

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base, "changes": {k: _json(v) for k, v in self.changes.items()}, "passed": self.passed,
                "flags": self.flags(), "variants_screened": self.tried, "variants": self.candidates,
                "variants_not_loadable": self.unloadable, "seconds": self.seconds,
                "summary": self.describe()}


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _values(config: Any, name: str) -> tuple[object, ...]:
    if name == "n_kv_heads":
        heads = getattr(config, "n_heads", None)
        return tuple(k for k in range(1, heads + 1) if heads % k == 0) if isinstance(heads, int) else ()
    return VARIANTS[name]


def variants(config: Any, shapes: dict[str, tuple[int, ...]], hint: str = "", reshape: bool = False) -> list[dict[str, object]]:
    """Single changes then pairs of them, each a config the family accepts; fields named by the
    hint first. ``reshape``: changes of Θ's names or shapes too (:data:`RESHAPING`), else only the
    variants that keep ``shapes``."""
    from spec import build

    fields = [f for f in VARIANTS if hasattr(config, f)]
    words = [w for w in HINTS if w in hint.lower()]
    first = [f for w in words for f in HINTS[w] if f in fields]
    order = list(dict.fromkeys(first + fields))
    singles: list[dict[str, object]] = []
    for name in order:
        for value in _values(config, name):
            if getattr(config, name) == value and type(getattr(config, name)) is type(value):
                continue
            change = {name: value}
            if _accepted(config, change, shapes, build, reshape):
                singles.append(change)
    # pairs of single changes on different fields (identify builds each pair and checks it again)
    pairs = [a | b for a, b in itertools.combinations(singles, 2) if not set(a) & set(b)]
    return singles + pairs


def _accepted(config: Any, change: dict[str, object], shapes: dict[str, tuple[int, ...]], build: Callable[[Any], Any], reshape: bool) -> bool:
    """The family builds the changed config (and, unless ``reshape``, with Θ's shapes unchanged)."""
    try:
        changed = build(config.replace(**change))
    except (GptSpecError, TypeError, ValueError):
        return False
    return reshape or bool(changed.theta_shapes() == shapes)


def fitting_variant(impl: Any, layout: Any, arch: Any) -> dict[str, object] | None:
    """The first single change of a :data:`RESHAPING` field, among those the layout can express,
    whose Θ ``impl``'s parameters take (None: none does — the target's parameters are not a
    variant's, and its refusal stands)."""
    from spec import build

    for change in variants(arch.config, arch.theta_shapes(), reshape=True):
        if len(change) != 1 or not set(change) & set(RESHAPING):
            continue
        try:
            changed = build(arch.config.replace(**change))
            layout.write_config(changed.config)
        except GptSpecError:
            continue
        if loadable(impl, changed):
            return change
    return None


def loadable(impl: Any, arch: Any) -> bool:
    """Whether ``impl`` can hold a θ of ``arch``: a torch target built for ``arch``'s native config
    (a class or factory rebuilt; an instance as it is) whose parameters are exactly the layout's
    tensors for ``arch`` with their shapes (TorchTarget.check_shapes); an implementation without a
    module takes any θ."""
    check = getattr(impl, "check_shapes", None)
    if not callable(check):
        return True
    try:
        check(arch)
    except Exception:  # noqa: BLE001 - the target cannot be built for, or cannot take, this Θ: not a candidate
        return False
    return True


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
    shapes = s.arch.theta_shapes()
    found = variants(config, shapes, hint, reshape=True)
    fits = runner.loadable(s.arch)
    if not fits:  # the target's parameters are another Θ's: the variants that change Θ first, and only those it takes
        found.sort(key=lambda change: not set(change) & set(RESHAPING))
    out = Identified(base, candidates=len(found))
    planned = runner.plan()["model"][:SCREEN]
    say = progress or (lambda _m: None)
    for change in found:
        if out.tried >= budget:
            break
        runner.on_time()
        try:
            arch = build(config.replace(**change))
        except GptSpecError:
            continue
        if not runner.config_ok(arch.config):
            continue
        if (not fits or arch.theta_shapes() != shapes) and not runner.loadable(arch):
            out.unloadable += 1
            continue
        out.tried += 1
        say(f"identify: variant {out.tried}/{min(budget, len(found))}: {', '.join(f'{k}={_value(v)}' for k, v in change.items())}")
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


__all__ = ["BUDGET", "RESHAPING", "SCREEN", "VARIANTS", "Identified", "fitting_variant", "identify", "loadable", "variants"]
