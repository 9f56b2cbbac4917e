"""``gptspec verify``: judge anyone's transformer against the spec's reference (docs/verify.md).

:func:`verify_target` resolves the target (:mod:`gptspec.verify.targets`), the layout and the
architecture, then runs each component on examples it draws itself, judging every value by the
tolerance policy (docs/tolerances.md) and padded positions by the empty-row convention:

- ``model``: padded batches — left, right and fully padded rows, up to n_ctx (or ``max_len``),
  each with its own θ draw along a magnitude axis (plain, medium, large scores);
- ``decode``: the same batches prefilled halfway and decoded one position at a time, where the
  target offers incremental decoding; otherwise ``not run``;
- ``generate``: greedy generation from left-padded prompts (the target's ``generate`` when it has
  one, else argmax of its logits);
- ``weights``: the padded batches with the checkpoint's own θ (``weights=True``);
- ``ops``: each op the architecture uses, for an Implementation exposing ``op``.

A failure is shrunk to a minimal counterexample (:mod:`gptspec.verify.shrink`), localised in
spec terms (:mod:`gptspec.verify.localise`), and given a standalone script that reproduces it.
The loop over cases (:class:`CaseLoop`) is the gradient run's too (gptspec/verify/grad.py:
``GradRunner``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from gptspec.checkpoint.layout import Layout
from gptspec.verify.cases import (
    Case,
    Context,
    Verdict,
    decode_prefix,
    generation_cases,
    model_cases,
    run_decode,
    run_generate,
    run_model,
    with_sources,
)
from gptspec.verify.compare import Comparison
from gptspec.verify.component import Component, Result, run_component
from gptspec.verify.conventions import DEFAULT_EMPTY_ROWS, DESCRIPTIONS, check_convention
from gptspec.verify.identify import identify
from gptspec.verify.isolate import RunTimeout, TargetFailure, TargetRaised
from gptspec.verify.localise import Localisation, by_intermediates, by_probes, component_only
from gptspec.verify.oracle import ORACLE, content_key
from gptspec.verify.shard import WHOLE, Shard, check_shard, describe, owns
from gptspec.verify.shrink import candidates, script, shrink
from gptspec.verify.strategies import distinct_ops, op_examples, small_op_examples
from gptspec.verify.tolerance import VERIFY, Policy, dtype_name, longest_reduction
from spec.errors import ConfigError, GptSpecError
from spec.graph import Architecture
from spec.seq2seq import is_seq2seq

COMPONENTS: dict[str, str] = {
    "model": "model: padded batches",
    "decode": "model: incremental decoding",
    "generate": "model: greedy generation",
    "weights": "model: padded batches with the checkpoint's weights",
    "ops": "ops",
}
"""Component keys (``components=``, the pytest plugin's item ids) and their report names."""

CHECKS: dict[str, Callable[[Any, Context, Case], Verdict]] = {
    "model": run_model, "decode": run_decode, "generate": run_generate, "weights": run_model,
}


@dataclass(frozen=True)
class Options:
    """How a run is configured (the CLI's options; docs/verify.md lists their defaults)."""

    layout: str | None = None
    model: str | None = None
    weights: bool = False
    dtype: str | None = None
    attn_implementation: str | None = None
    empty_rows: str = DEFAULT_EMPTY_ROWS
    examples: int = 12
    generation_examples: int = 3
    op_examples: int = 10
    seed: int = 0
    max_len: int = 16
    shrink: bool = True
    localise: bool = True
    components: tuple[str, ...] = tuple(COMPONENTS)
    policy: Policy = VERIFY
    shard: Shard = WHOLE
    """``--shard i/n``: run only shard i of n of the drawn cases and op components (gptspec/verify/shard/)."""
    sets: tuple[str, ...] = ()
    """``--set KEY=VALUE`` changes to the architecture's config (a preset's or the layout's default), type-checked
    as ``gptspec params``/``forward`` check them (gptspec.models.parse_overrides)."""

    isolate: bool | None = None
    """Run the target in a child process (gptspec/verify/isolate.py). None (the default): a
    target named by a string (``module:name``, ``file.py:name``: what the CLI and the pytest
    plugin take) runs isolated; a Python object, already imported in this process, runs here
    (the report notes it). True: isolated always (an object is pickled to the child, which
    imports its module). False: ``--in-process`` (for debuggers; unsafe for CI: a target that
    exits ends the run)."""
    call_timeout: float | None = 60.0
    """Seconds one call of the target may take (``--call-timeout``; None: no limit); isolated runs only."""
    timeout: float | None = None
    """Seconds the whole run may take (``--timeout``; None: no limit)."""
    identify: bool | None = None
    """Search the architecture's variants for the one the target computes (gptspec/verify/identify.py):
    None (the default) when a component fails, True always (``--identify``), False never (``--no-identify``)."""
    cost_limit: bool = True
    """Refuse a campaign beyond gptspec.estimate's bounds before anything is built (``--no-cost-limit``: False)."""

    def check(self) -> None:
        for name in ("call_timeout", "timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value
                                      or value == float("inf")):
                raise ConfigError(f"{name}={value!r}, but expected a finite number of seconds > 0 (or None: no limit) [gptspec verify]")
        check_shard(self.shard, "--shard")
        check_convention(self.empty_rows)
        for name in ("examples", "generation_examples", "op_examples", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}, but expected a whole number ≥ 1 [gptspec verify]")
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown:
            raise ConfigError(f"components={unknown}, but expected some of {list(COMPONENTS)} [gptspec verify]")
        if isinstance(self.sets, str) or not all(isinstance(item, str) for item in self.sets):
            raise ConfigError(f"sets={self.sets!r}, but expected a tuple of 'KEY=VALUE' strings [gptspec verify]")
        if self.attn_implementation not in (None, "eager", "sdpa"):
            raise ConfigError(f"attn_implementation={self.attn_implementation!r}, but expected eager or sdpa [gptspec verify]")


@dataclass
class Report:
    """The outcome of a run: what was verified, how, and one :class:`Result` per component."""

    target: str
    implementation: str
    layout: str
    architecture: str
    dtype: str
    empty_rows: str
    policy: str
    seed: int
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    function: dict[str, Any] = field(default_factory=dict)
    """Every config field that changes the function judged, besides the sizes (:func:`function_fields`)."""
    draws: str = "plain / ~30 / ~1e4"
    """How θ's attention scores were drawn (the header's θ line); gradient runs draw their own."""
    identified: dict[str, Any] | None = None
    """What identify found (gptspec/verify/identify.py: Identified.as_dict), or None when it did not run."""

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def exit_code(self) -> int:
        """0: every run component passed; 1: a component failed; 2: the target could not run."""
        if self.count("error"):
            return 2
        return 1 if self.count("failed") else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "implementation": self.implementation, "layout": self.layout,
            "architecture": self.architecture, "function": {k: _json_value(v) for k, v in self.function.items()}, "dtype": self.dtype, "empty_rows": self.empty_rows,
            "empty_rows_rule": DESCRIPTIONS.get(self.empty_rows, ""), "policy": self.policy, "seed": self.seed,
            "passed": self.exit_code == 0, "exit_code": self.exit_code, "seconds": self.seconds,
            "counts": {s: self.count(s) for s in ("passed", "failed", "not run", "error")},
            "notes": self.notes, "identified": self.identified, "components": [r.as_dict() for r in self.results],
        }


# -- resolving what is verified ------------------------------------------------------------


@dataclass
class Setup:
    """What a run verifies: the target (``obj``, adapted: ``impl``), how its parameters are named
    (``layout``; None for an implementation called on Θ by the spec's own names, as gptspec's
    fast/ is), the architecture, and the checkpoint's θ for the ``weights`` component."""

    obj: object
    label: str
    layout: Layout | None
    arch: Architecture
    weights: dict[str, np.ndarray] | None
    impl: Any
    dtype: str
    notes: list[str] = field(default_factory=list)
    """How the target was built and is called, and how its layout was inferred (report header)."""
    theta: dict[str, np.ndarray] | None = None
    """θ given to every component (``gptspec check``: the preset's random θ, the checkpoint's);
    None: each case draws its own (``verify``)."""
    impl_snippet: str | None = None
    """For a run on θ given: Python defining ``impl``, which every counterexample script starts
    with (:meth:`Runner.case_script`; an op's too)."""
    target_snippet: str | None = None
    """For a run on θ given: Python defining ``target`` (its ``arch`` and ``theta``), for the
    model-level components' scripts."""

    def named_layout(self) -> Layout:
        """The layout (a ConfigError for a run without one: θ given by the spec's names)."""
        if self.layout is None:
            raise ConfigError(f"layout=None for {self.label}, but expected a layout [gptspec verify]; a run on θ given (gptspec check) names no layout")
        return self.layout


def given(target: Any, impl: Any, impl_snippet: str) -> Setup:
    """The setup of a run on θ given: ``impl`` (an Implementation in this process: gptspec's
    ``FastImplementation`` for ``gptspec check``) judged on ``target``'s architecture and θ
    (a :class:`gptspec.verify.component.Target`), no layout, no isolation. ``impl_snippet``
    defines ``impl`` in Python, the target's ``load_snippet`` the target: the counterexample
    scripts start with them."""
    return Setup(impl, target.label, None, target.arch, None, impl, dtype_name(impl.dtype), theta=dict(target.theta),
                 impl_snippet=impl_snippet, target_snippet=target.load_snippet)


def _load_target(target: object) -> tuple[object, str]:
    """The object a target string names; a module is imported from the current directory
    first (as ``python -m`` and pytest do), then from the installed packages. Any way the
    import ends but returning — a syntax error, an exception, ``sys.exit`` — is a ConfigError."""
    if isinstance(target, str):
        import os
        import sys

        from gptspec.models import load_object

        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        return user_code(f"target {target}", "loading", lambda: load_object(target, "target")), target
    return target, getattr(target, "__qualname__", None) or type(target).__name__


def user_code(what: str, doing: str, run: Callable[[], Any], fix: str = "") -> Any:
    """``run()`` — the user's code loading or building a target — with every way it can end
    besides returning made a ConfigError in the house shape (no traceback): an exception
    (where it was raised), ``sys.exit``/``SystemExit``, a GptSpecError passed through as is."""
    try:
        return run()
    except GptSpecError:
        raise
    except KeyboardInterrupt:
        raise
    except SystemExit as error:
        raise ConfigError(f"{what} called sys.exit({error.code!r}) while {doing}, but expected it to return [gptspec verify]{fix}") from None
    except BaseException as error:  # noqa: BLE001 - the user's code failed: could not run, said in one line
        raise ConfigError(f"{what} raised {raised(error)} while {doing}, but expected it to return [gptspec verify]{fix}") from None


def raised(error: BaseException) -> str:
    """``Type: message (at file:line)``: an exception as one line, where the user's code raised it."""
    import traceback

    where = ""
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, SyntaxError) and error.filename:
        where = f" (at {error.filename}:{error.lineno})"
    elif frames:
        mine = [f for f in frames if "/gptspec/" not in f.filename.replace("\\", "/") and "importlib" not in f.filename]
        frame = (mine or frames)[-1]
        where = f" (at {frame.filename}:{frame.lineno})"
    message = str(error) if not isinstance(error, SyntaxError) else (error.msg or str(error))
    return f"{type(error).__name__}: {message}{where}"


def _layout_for(obj: object, name: str | None, label: str) -> Layout:
    from gptspec.checkpoint import LAYOUTS, layout
    from gptspec.verify.targets import infer_layout

    chosen = name or infer_layout(obj)
    if chosen is not None and chosen.endswith(".py"):
        from gptspec.verify.layouts import load_layout_file

        return load_layout_file(chosen)  # a layout table as --save-layout writes it
    if chosen is None:
        raise ConfigError(
            f"layout=None for target {label}, but expected --layout naming how its parameters are called, one of {list(LAYOUTS)} "
            "[gptspec verify]; it is inferred only for classes whose config_class has a model_type a layout knows"
        )
    return layout(chosen)


DECODER_ONLY_REFUSED = {
    "transformer": "verify drives decoder-only models today; check an encoder–decoder's checkpoint with `gptspec forward DIR` "
    "(equal to Hugging Face Marian, docs/architecture.md) and the spec's own with `gptspec check`, whose components include "
    "every op and padded (source, target) pairs",
}
"""Families verify refuses, with what to use instead."""


def _architecture(lay: Layout, model: str | None, weights: bool, sets: Sequence[str] = ()) -> tuple[Architecture, dict[str, np.ndarray] | None]:
    import os

    from spec import build, family_of

    theta = None
    if model is None:
        if lay.default is None and lay.family in DECODER_ONLY_REFUSED:
            raise ConfigError(
                f"layout {lay.name} describes an encoder–decoder ({lay.family}), but expected a decoder-only language model "
                f"[gptspec verify]; {DECODER_ONLY_REFUSED[lay.family]}"
            )
        if lay.default is None:
            raise ConfigError(f"layout {lay.name} has no default config, but expected --model naming the architecture [gptspec verify]")
        if weights:
            raise ConfigError("--weights, but expected --model naming a checkpoint whose weights to use [gptspec verify]")
        from gptspec.models import parse_overrides

        arch = build(parse_overrides(lay.default, sets))
    elif os.path.exists(model):
        from gptspec.checkpoint import load, load_architecture

        if sets:
            raise ConfigError(f"--set {list(sets)}, but expected no overrides for a checkpoint [{model}]; a checkpoint fixes its config")
        if weights:
            arch, theta = load(model)
        else:
            arch = load_architecture(model)  # its config: the weights are not read
    else:
        if weights:
            raise ConfigError(f"--weights with --model {model}, but expected a checkpoint directory or file [gptspec verify]")
        from gptspec.models import resolve

        arch = resolve(model, tuple(sets), need_theta=False, progress=False).arch
    if list(arch.inputs) != ["ids"]:
        raise ConfigError(
            f"architecture inputs={list(arch.inputs)}, but expected ['ids'] (a decoder-only language model) [gptspec verify]; "
            + DECODER_ONLY_REFUSED["transformer"]
        )
    if arch.config is None or family_of(arch.config).name != lay.family:
        got = getattr(arch.config, "family", type(arch.config).__name__)
        raise ConfigError(f"architecture family={got}, but expected {lay.family} for layout {lay.name} [gptspec verify]")
    lay.write_config(arch.config)  # refuses what the layout cannot express, by name
    return arch, theta


def setup(target: object, options: Options) -> Setup:
    """Resolve target, layout, architecture and implementation; every problem is a GptSpecError
    (the target's own failures while loading or building included: :func:`user_code`)."""
    from gptspec.verify.targets import adapt, classify
    from gptspec.verify.torch_target import TorchTarget, native_config

    options.check()
    obj, label = _load_target(target)
    if _wants_auto(obj, options.layout):
        return _auto_setup(obj, label, options)
    lay = _layout_for(obj, options.layout, label)
    model_what = f"--model {options.model}" if options.model else "the architecture"
    arch, weights = user_code(model_what, "building the architecture", lambda: _architecture(lay, options.model, options.weights, options.sets))
    dtype = None if options.dtype is None else dtype_name(options.dtype)
    kind = classify(obj)
    impl = user_code(label, f"building the {kind}", lambda: adapt(obj, lay, label, dtype=dtype, attn_implementation=options.attn_implementation))
    if isinstance(impl, TorchTarget):
        fix = ""
        if impl.make is not None:
            shown = dict(native_config(lay, arch))
            fix = (f"; it was given the native config {shown}" + ("" if kind == "factory" else
                   "; a class that takes other arguments is verified through a factory f(config) -> module (docs/verify.md)"))
        user_code(label, f"being built for {arch.name}", lambda: impl.check_shapes(arch) if impl.make is None else impl.module_for(arch), fix)
        return Setup(obj, label, lay, arch, weights, impl, dtype_name(impl.dtype), _conventions(impl, label, arch, options))
    return Setup(obj, label, lay, arch, weights, impl, dtype_name(impl.dtype))


def _conventions(impl: Any, label: str, arch: Architecture, options: Options) -> list[str]:
    """The report header's lines on how the target is built and called. A target whose parameters
    do not take Θ (another tying, no biases, another grouping) is refused here — unless identify
    may run, which then searches the variants whose Θ it does take (gptspec/verify/identify.py);
    the run itself reports each component as not able to run."""
    from gptspec.verify.identify import fitting_variant, loadable

    try:
        return list(user_code(label, "being inspected", lambda: impl.conventions(arch)))
    except GptSpecError as error:
        if options.identify is False or loadable(impl, arch) or fitting_variant(impl, impl.layout, arch) is None:
            raise
        return [f"the target's parameters do not take Θ of {arch.name} ({error}); identify searches the variants whose Θ they take"]


def _wants_auto(obj: object, name: str | None) -> bool:
    """``--layout auto``, or no --layout for a torch module without a Hugging Face config class."""
    from gptspec.verify.layouts import AUTO
    from gptspec.verify.targets import classify, infer_layout

    if name == AUTO:
        return True
    return name is None and infer_layout(obj) is None and classify(obj) in ("module-class", "module")


def _auto_setup(obj: object, label: str, options: Options) -> Setup:
    """Setup with the layout inferred from the module (gptspec/verify/auto.py, gptspec/verify/layouts.py)."""
    from gptspec.verify.auto import resolve_auto

    if options.weights:
        raise ConfigError("--weights with --layout auto, but expected --layout naming how the checkpoint's tensors are called [gptspec verify]")
    dtype = None if options.dtype is None else dtype_name(options.dtype)
    found = user_code(label, "being built and matched to Θ (--layout auto)", lambda: resolve_auto(obj, label, options, dtype))
    impl = found.impl
    user_code(label, f"being built for {found.arch.name}", lambda: impl.module_for(found.arch))
    notes = found.notes + user_code(label, "being inspected", lambda: impl.conventions(found.arch))
    return Setup(obj, label, found.layout, found.arch, None, impl, dtype_name(impl.dtype), notes)


def function_fields(config: object) -> dict[str, Any]:
    """The fields of ``config`` (a family's config dataclass) that choose the function besides
    its sizes — activation, ε, biases, tying, positions, rotary pairing/base/scaling, windows … —
    derived from the dataclass itself: every compared field that is not one of the config's dims
    (``Config.dims``) and not its name."""
    import dataclasses

    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return {}
    try:
        dims = {str(symbol) for symbol in config.dims()}  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a config without dims shows every field
        dims = set()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.compare and f.name not in dims}


def describe_function(config: object) -> str:
    """``activation=gelu_tanh, eps=1e-05, …``: :func:`function_fields` as one line."""
    return ", ".join(f"{k}={_show(v)}" for k, v in function_fields(config).items())


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "()"
    return str(value)


def _json_value(value: object) -> object:
    """A config value as JSON: tuples as lists, non-finite floats as strings (reports hold no NaN/Infinity)."""
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def describe_config(config: object) -> str:
    sizes = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "d_mlp", "n_ctx", "n_vocab")
    shown = [f"{k}={getattr(config, k)}" for k in sizes if getattr(config, k, None) is not None]
    return f"{type(config).__name__}({', '.join(shown)})"


# -- running -----------------------------------------------------------------------------


class Judged(Protocol):
    """What the case loop reads of a verdict: a padded batch's :class:`~gptspec.verify.cases.Verdict`,
    a gradient run's ``GradVerdict`` (gptspec/verify/grad.py)."""

    @property
    def passed(self) -> bool: ...
    @property
    def ratio(self) -> float: ...
    @property
    def kind(self) -> str: ...
    @property
    def comparison(self) -> Comparison: ...
    @property
    def budget(self) -> float: ...
    @property
    def e_store(self) -> float: ...


class Drawn(Protocol):
    """What the case loop reads of a case: a padded batch's :class:`~gptspec.verify.cases.Case`,
    a gradient run's ``GradCase`` (gptspec/verify/grad.py)."""

    @property
    def config(self) -> Any: ...
    def describe(self, dtype: str) -> str: ...


C = TypeVar("C", bound=Drawn)
V = TypeVar("V", bound=Judged)


class CaseLoop(ABC, Generic[C, V]):
    """The one case loop of every run — ``verify``'s and ``check``'s components (:class:`Runner`)
    and the gradient runs (``verify --grad``, ``--train-step``, ``check --grad``:
    gptspec/verify/grad.py, ``GradRunner``): each case judged in turn with progress and the
    deadline checked between cases, the worst ratio kept, and every way a case can end besides a
    verdict classified (:meth:`run_cases`); a failure shrunk, localised, checked steady on the
    original and given a script (:meth:`fail`); a target raising on some inputs shrunk to the
    smallest that raises (:meth:`raised_on`); a hang or a write into the inputs reported with its
    input (:meth:`broke`). A run supplies what differs: how a case is judged (:meth:`judge`),
    shown, shrunk (:meth:`candidates`, :meth:`smallest`), localised and scripted."""

    titles: Mapping[str, str] = COMPONENTS
    """Component keys and their report names."""
    localising = "localising"
    """What the progress line says while a failure is localised."""
    shrink_attempts = 80
    """Candidates shrinking a failure tries at most."""

    def __init__(self, s: Setup, options: Options, progress: Callable[[str], None] | None, target: str | None = None) -> None:
        self.s = s
        self.options = options
        self.progress = progress or (lambda _m: None)
        self.options_target = target
        """The target as a string, for scripts that reproduce a failure (None: an object)."""
        self._archs: dict[Hashable, Architecture] = {s.arch.config: s.arch}
        self.broken = False
        """A component failed by a hang or a write into the inputs (:meth:`broke`), not by its values."""
        self.deadline: float | None = None
        """time.monotonic() after which the run stops (RunTimeout), checked between calls."""

    # -- what a run supplies ---------------------------------------------------------------

    @abstractmethod
    def judge(self, key: str, case: C) -> V:
        """Component ``key``'s check of the target on one case."""

    def brief(self, case: C) -> str:
        """A case as its progress line shows it."""
        return case.describe(self.s.dtype)

    def detail(self, verdict: V) -> str:
        """A verdict as its report line shows it."""
        return str(verdict)

    @abstractmethod
    def candidates(self, key: str, case: C) -> Iterable[C]:
        """Smaller cases than ``case``, smallest first (:func:`gptspec.verify.shrink.shrink`)."""

    @abstractmethod
    def smallest(self, case: C) -> C:
        """The least input of ``case``'s shape: does the target run at all?"""

    @abstractmethod
    def localise(self, key: str, case: C, verdict: V) -> Localisation:
        """Where the fault is, in spec terms (a failure's diagnosis)."""

    @abstractmethod
    def case_script(self, key: str, case: C) -> str | None:
        """Python that reruns component ``key``'s check on ``case`` and exits 1 while it fails (None: no script)."""

    def raised_in(self, key: str, case: C) -> tuple[str, str] | None:
        """(DAG path, op kind) where the target raised on ``case``, when it can tell (None: it cannot)."""
        return None

    def before_shrinking(self, result: Result, key: str, case: C, verdict: V, still_fails: Callable[[C], V | None]) -> tuple[C, V] | None:
        """A failure's first look: the case and verdict to shrink, or None when ``result`` is complete already."""
        return case, verdict

    def settle(self, key: str, case: C, verdict: V, loc: Localisation, original: C, original_verdict: V) -> tuple[C, V, Localisation, bool]:
        """The shrunk counterexample's localisation checked on the original (:meth:`steady`): the
        case, verdict and localisation reported, and whether that is the original case."""
        return case, verdict, self.steady(loc, self.localise(key, original, original_verdict)), False

    # -- the loop ----------------------------------------------------------------------------

    def on_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RunTimeout("the run went past --timeout")

    def arch_for(self, config: Any) -> Architecture:
        if config not in self._archs:
            from spec import build

            self._archs[config] = build(config)
        return self._archs[config]

    def config_ok(self, config: Any) -> bool:
        try:
            if self.s.layout is not None:
                self.s.layout.write_config(config)
            self.arch_for(config)
            return True
        except GptSpecError:
            return False

    def resizable(self, key: str) -> bool:
        """Whether shrinking may try smaller configs: the target can be rebuilt for one, and θ
        is drawn per case (not the checkpoint's, nor given)."""
        return bool(getattr(self.s.impl, "resizable", False)) and key != "weights" and self.s.theta is None

    def record(self, result: Result, verdict: V) -> None:
        """``verdict``'s figures as ``result``'s."""
        result.max_error, result.budget, result.ratio = verdict.comparison.max_abs, verdict.budget, verdict.ratio
        result.e_store, result.detail = verdict.e_store, self.detail(verdict)

    def example(self, case: C) -> str:
        return f"{describe_config(case.config)}; {case.describe(self.s.dtype)}"

    def run_cases(self, key: str, cases: Sequence[C]) -> Result:
        name = self.titles[key]
        result = Result(name, key=key)
        start = time.perf_counter()
        for i, case in enumerate(cases):
            self.on_time()
            self.progress(f"{name}: example {i + 1}/{len(cases)} ({self.brief(case)})")
            try:
                verdict = self.judge(key, case)
            except (KeyboardInterrupt, RunTimeout):
                raise
            except TargetFailure as failure:  # a hang, a write into its inputs: a failure with this input as its counterexample
                self.broke(result, key, case, failure)
                break
            except GptSpecError as error:
                result.error, result.passed = f"{error} (on {case.describe(self.s.dtype)})", False
                break
            except TargetRaised as error:
                self.raised_on(result, key, case, str(error))
                break
            except SystemExit as error:  # in-process only: the child reports it otherwise
                result.error, result.passed = f"the target called sys.exit({error.code!r}) on {case.describe(self.s.dtype)}", False
                break
            except BaseException as error:  # noqa: BLE001 - the target raised: a failure if it runs on other inputs
                self.raised_on(result, key, case, f"the target raised {raised(error)}")
                break
            result.examples += 1
            if verdict.ratio >= result.ratio:
                self.record(result, verdict)
            if not verdict.passed:
                self.fail(result, key, case, verdict)
                break
        result.seconds = time.perf_counter() - start
        return result

    def raised_on(self, result: Result, key: str, case: C, text: str) -> None:
        """The target raised on ``case``. If it runs on other inputs (an earlier case, or a
        smaller one tried while shrinking), that is a failure: the smallest input that raises is
        its counterexample (exit 1), localised to where it raised. If it raised on every input
        tried, it could not run (exit 2)."""
        ran = result.examples > 0
        last = [text]

        def raises(candidate: C) -> bool | None:
            nonlocal ran
            try:
                self.judge(key, candidate)
            except (KeyboardInterrupt, RunTimeout):
                raise
            except (TargetFailure, GptSpecError, SystemExit):
                return None  # another way of failing: not the same failure
            except TargetRaised as error:
                last[0] = str(error)
                return True
            except BaseException as error:  # noqa: BLE001 - the target raised again: a smaller counterexample
                last[0] = f"the target raised {raised(error)}"
                return True
            ran = True
            return None

        attempts = 0
        if self.options.shrink:
            self.progress(f"{result.component}: the target raised; looking for the smallest input that raises …")
            case, _, attempts = shrink(case, raises, lambda c: self.candidates(key, c), max_attempts=40)
        if not ran:  # does it run at all? the least input of this shape
            raises(self.smallest(case))
        result.passed = False
        if not ran:
            result.error = f"{last[0]} on {case.describe(self.s.dtype)}, and on every smaller input tried"
            return
        result.ratio, result.max_error = float("inf"), float("inf")
        result.detail = f"{last[0]}; it runs on other inputs"
        result.example = self.example(case) + (f" (the smallest that raises; {attempts} tries)" if attempts else "")
        where = last[0].rsplit(" (at ", 1)[-1].rstrip(")") if " (at " in last[0] else "where the traceback ends"
        node = self.raised_in(key, case) if self.options.localise else None
        path, kind = node or ("model", "exception")
        inside = f"inside the module at {path}, " if node else ""
        result.localisation = Localisation(path, kind, "exception", f"raised {inside}at {where}, on this input and not on smaller ones").as_dict()
        result.counterexample = self.case_script(key, case)

    def broke(self, result: Result, key: str, case: C, failure: TargetFailure) -> None:
        """A failure that is not a verdict on values (a call over its time limit, a write into
        the inputs): reported with its input as the counterexample, neither shrunk nor localised
        (each retry could hang as long again)."""
        self.broken = True  # a hang or a write is not a function to identify: each variant would hang as long again
        result.passed = False
        result.detail = str(failure)
        result.ratio = float("inf")
        result.example = self.example(case)
        result.counterexample = self.case_script(key, case)

    def fail(self, result: Result, key: str, case: C, verdict: V) -> None:
        """A failing case: shrunk to the smallest that fails the same way, localised (and the
        localisation checked on the original: :meth:`settle`), with a script reproducing it."""
        result.passed = False

        def still_fails(candidate: C) -> V | None:
            try:
                found = self.judge(key, candidate)
            except (KeyboardInterrupt, RunTimeout):
                raise
            except BaseException:  # noqa: BLE001 - a candidate the target cannot run is not smaller
                return None
            return found if not found.passed and found.kind == verdict.kind else None

        first = self.before_shrinking(result, key, case, verdict, still_fails)
        if first is None:
            return
        case, verdict = first
        original, original_verdict = case, verdict
        attempts = 0
        if self.options.shrink:
            self.progress(f"{result.component}: shrinking the counterexample …")
            case, smaller, attempts = shrink(case, still_fails, lambda c: self.candidates(key, c), max_attempts=self.shrink_attempts)
            verdict = smaller or verdict
        if self.options.localise:
            self.progress(f"{result.component}: {self.localising} …")
            try:
                loc = self.localise(key, case, verdict)
                if case != original:
                    case, verdict, loc, back = self.settle(key, case, verdict, loc, original, original_verdict)
                    attempts = 0 if back else attempts
            except Exception as error:  # noqa: BLE001 - localisation is a diagnosis; its failure must not hide the verdict
                loc = Localisation("model", "model", "none", f"localisation failed: {type(error).__name__}: {error}")
            result.localisation = loc.as_dict()
        self.record(result, verdict)
        result.example = self.example(case) + (f" (shrunk in {attempts} tries)" if attempts else "")
        result.counterexample = self.case_script(key, case)

    @staticmethod
    def steady(shrunk: Localisation, original: Localisation) -> Localisation:
        """The localisation of a shrunk counterexample checked on the original one: kept when
        they agree; otherwise the original's — a tiny model's rounding can move the first value
        over budget downstream (float32 GELU blamed on ln_f) — with the shrunk one's reported."""
        if shrunk.path == original.path or original.method == "none":
            return shrunk
        if _within(shrunk.path, original.path):  # consistent, and finer: the shrunk one, confirmed
            return replace(shrunk, detail=f"{shrunk.detail}; the unshrunk counterexample localises to {original.path}, which contains it")
        return replace(original, detail=f"{original.detail}; on the shrunk counterexample it localises to {shrunk.path} ({shrunk.kind}, by {shrunk.method})")

    def script_options(self) -> dict[str, Any]:
        """The options a counterexample script passes to reproduce the run (target named by a string)."""
        o = self.options
        lay = self.s.named_layout()
        inferred = lay.name.startswith("auto-")  # an inferred layout is inferred again by the script's run
        out: dict[str, Any] = {"layout": "auto" if inferred else lay.name, "dtype": self.s.dtype, "empty_rows": o.empty_rows}
        if o.attn_implementation:
            out["attn_implementation"] = o.attn_implementation
        if o.model is not None:
            out["model"] = o.model
        if o.sets:
            out["sets"] = tuple(o.sets)
        return out


def stopped(late: RunTimeout, timeout: float | None) -> Result:
    """The ``ERROR run`` line of a run stopped by ``--timeout`` (forward and gradient runs alike)."""
    after = f" after --timeout {timeout:g} s" if timeout is not None else ""
    return Result("run", key="run", passed=False, error=f"{late}: the run was stopped{after}; the components not reported did not run")


class Runner(CaseLoop[Case, Verdict]):
    """One verification run: contexts per config, the checks (model-level components through
    :class:`CaseLoop`, op components through :meth:`op_component`), localisation."""

    def __init__(self, s: Setup, options: Options, progress: Callable[[str], None] | None, target: str | None = None) -> None:
        super().__init__(s, options, progress, target)
        self.passed: dict[str, bool] = {}
        self.results: list[Result] = []
        self._weights_key: str | None = None
        self._given_key: str | None = None

    def context(self, case: Case, key: str) -> Context:
        ctx = Context(self.arch_for(case.config), self.s.dtype, self.options.policy, self.options.empty_rows, ORACLE)  # type: ignore[arg-type]
        if self.s.theta is not None:  # θ given (gptspec check): named by its content once
            if self._given_key is None:
                self._given_key = content_key(self.s.arch, self.s.theta)
            return replace(ctx, theta=self.s.theta, theta_key=self._given_key)
        if key == "weights" and self.s.weights is not None:
            if self._weights_key is None:  # the checkpoint's θ named by its content, once (gptspec/verify/oracle.py)
                self._weights_key = content_key(self.s.arch, self.s.weights)
            ctx = replace(ctx, theta=self.s.weights, theta_key=self._weights_key)
        return ctx

    def judge(self, key: str, case: Case) -> Verdict:
        """Component ``key``'s check of the target on one case."""
        return CHECKS[key](self.s.impl, self.context(case, key), case)

    def brief(self, case: Case) -> str:
        return case.batch.describe()

    def detail(self, verdict: Verdict) -> str:
        return _describe(verdict)

    def candidates(self, key: str, case: Case) -> Iterable[Case]:
        return candidates(case, self.resizable(key), self.config_ok)

    def smallest(self, case: Case) -> Case:
        """One token per row."""
        return replace(case, batch=replace(case.batch, tokens=tuple(t[:1] for t in case.batch.tokens), width=1))

    def variant(self, arch: Architecture) -> Runner:
        """A run of the same target judged against ``arch`` (a variant of its architecture, with
        Θ's shapes unchanged), neither shrinking, localising nor identifying: what identify
        screens (gptspec/verify/identify.py)."""
        trial = Runner(replace(self.s, arch=arch), replace(self.options, shrink=False, localise=False, identify=False), None)
        trial.deadline = self.deadline
        return trial

    def loadable(self, arch: Architecture) -> bool:
        """Whether the target, built for ``arch`` as ``--set`` builds it, takes a θ of ``arch``
        (gptspec/verify/identify.py: loadable; asked of the child when the target is isolated)."""
        from gptspec.verify.identify import loadable

        ask = getattr(self.s.impl, "can_load", None)
        return bool(ask(arch)) if callable(ask) else loadable(self.s.impl, arch)

    def raised_in(self, key: str, case: Case) -> tuple[str, str] | None:
        """(DAG path, op kind) of the innermost hooked module the target raised in on ``case``
        (its capture reports ("path", "raised", …)), or None."""
        capture = getattr(self.s.impl, "capture", None)
        if key not in ("model", "weights") or not callable(capture):
            return None
        ctx = self.context(case, key)
        theta, _ = ctx.theta_for(case)
        ids, valid = case.batch.arrays(ctx.arch.dim("n_vocab"))
        try:
            observed = capture(ctx.arch, theta, ids, valid)
        except Exception:  # noqa: BLE001 - a diagnosis only
            return None
        from gptspec.verify.structure import structure

        st = structure(ctx.arch)
        for path, what, _ in observed:
            if what == "raised" and path in st.by_path:
                return path, st.kind(path)
        return None

    def before_shrinking(self, result: Result, key: str, case: Case, verdict: Verdict,
                         still_fails: Callable[[Case], Verdict | None]) -> tuple[Case, Verdict] | None:
        """The failing row alone, when it fails alone (cheap, and what shrinking and localising
        start from); a decode or generate failure of a model whose own check fails is reported
        as its consequence (the model check's counterexample and localisation apply)."""
        row = verdict.comparison.where[0] if verdict.comparison.where else None
        if isinstance(row, int) and len(case.batch.tokens) > 1 and row < len(case.batch.tokens):
            alone = replace(case, batch=replace(case.batch, tokens=(case.batch.tokens[row],), left_padded=(case.batch.left_padded[row],)))
            found = still_fails(alone)
            if found is not None:
                case, verdict = alone, found
        if key in ("decode", "generate") and self.passed.get("model") is False:
            self.record(result, verdict)
            result.detail += "; the model check fails too (its counterexample and localisation apply)"
            result.example = self.example(case)
            result.counterexample = self.case_script(key, case)
            return None
        return case, verdict

    def case_script(self, key: str, case: Case) -> str | None:
        """Python that reruns component ``key``'s check on ``case`` and exits 1 while it fails:
        through :func:`reproduce` for a target named by a string, through
        ``check_model``/``check_decode`` (gptspec/verify/engine.py) for a run on θ given; None
        for a target object (it cannot be named in a script)."""
        if self.s.impl_snippet is not None and key in ("model", "decode"):
            from gptspec.verify.tolerance import DEFAULT

            policy = "" if self.options.policy == DEFAULT else f", policy={self.options.policy!r}"
            rows = "" if self.options.empty_rows == "zero" else f", empty_rows={self.options.empty_rows!r}"
            source = "" if case.source is None else f", source={case.source!r}"
            return "\n".join([
                self.s.target_snippet or "", self.s.impl_snippet, "from gptspec.verify.cases import Batch",
                ("from gptspec.verify.tolerance import Policy\n" if policy else "") + f"from gptspec.verify.engine import check_{key}",
                f"verdict = check_{key}(impl, target.arch, target.theta, {case.batch!r}{source}{policy}{rows})",
                "print(verdict)", "raise SystemExit(0 if verdict is None or verdict.passed else 1)",
            ]) + "\n"
        if isinstance(self.options_target, str):
            return script(self.options_target, self.script_options(), key, case)
        return None

    def localise(self, key: str, case: Case, verdict: Verdict | None = None) -> Localisation:
        impl = self.s.impl
        ctx = self.context(case, key)
        if verdict is not None and verdict.padding:
            # real positions are right; what breaks is the padded positions' convention. A NaN
            # there is traced to where it first appears when intermediates show it.
            found = by_intermediates(impl, ctx, case, prefix=decode_prefix(case) if key == "decode" else None)
            if found is not None:
                return found
            return Localisation("padded positions", "empty-row convention", "convention",
                                f"real positions match the reference; the padded ones break --empty-rows {self.options.empty_rows}")
        if key == "generate":
            if self.passed.get("model"):
                return component_only("generate", "the model's logits pass on padded batches; its greedy generation picks other tokens (positions, cache or token choice while generating)")
            return by_probes(impl, ctx, case, run_generate)
        if key == "decode":
            found = by_intermediates(impl, ctx, case, prefix=decode_prefix(case))
            if found is not None:
                return replace(found, detail=found.detail + "; during incremental decoding")
            if self.passed.get("model"):
                return component_only("decode", "the full forward passes; incremental decoding differs (the cache, positions or mask while decoding)")
            return by_probes(impl, ctx, case, run_decode)
        found = by_intermediates(impl, ctx, case)
        if found is not None:
            return found
        return by_probes(impl, ctx, case, CHECKS[key])

    def run_ops(self) -> list[Result]:
        from gptspec.verify.checks import check_op

        impl = self.s.impl
        if not callable(getattr(impl, "op", None)):
            return [Result("ops", key="ops", skipped="the target exposes no op-level functions (an Implementation with op() does)", passed=False)]
        results = []
        mine = set(self.plan()["ops"])  # this shard's op components (all when unsharded)
        for label, (op, paths) in distinct_ops(self.s.arch).items():
            if ("op", label) not in mine:
                continue
            where = paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"

            def check(example: Any, op: Any = op) -> Any:
                return check_op(impl, op, example, self.options.policy, self.options.empty_rows)  # type: ignore[arg-type]

            def snippet(example: Any, op: Any = op) -> str:
                return self._op_script(op, example)

            name = f"op {label}  [{where}]"
            found = Localisation(where.split(" and ")[0], op.kind, "component", "the op alone differs from the reference")
            result = self.op_component(Component(name, op_examples(op), check, snippet), found)
            results.append(result)
        for kind in dict.fromkeys(op.kind for op, _ in distinct_ops(self.s.arch).values()):
            if ("hard cases", kind) not in mine:
                continue
            # each kind's own hard cases too (every mask family, rows with no allowed key, width 1):
            # where the empty-row conventions and the masks the architecture does not use are judged
            def check_pair(pair: Any) -> Any:
                return check_op(impl, pair[0], pair[1], self.options.policy, self.options.empty_rows)  # type: ignore[arg-type]

            def snippet_pair(pair: Any) -> str:
                return self._op_script(pair[0], pair[1])

            name = f"op {kind}: its hard cases (every mask family, empty rows, width 1)"
            found = Localisation(kind, kind, "component", "the op alone differs from the reference on one of its hard cases")
            result = self.op_component(Component(name, small_op_examples(kind), check_pair, snippet_pair), found)
            results.append(result)
        return results

    def _op_script(self, op: Any, example: Any) -> str:
        """A script that reruns one op's check on one example against the target: a failure's
        reproduction."""
        from gptspec.verify.checks import op_script

        if self.s.impl_snippet is not None:
            load = self.s.impl_snippet
        else:
            load = f"from gptspec.verify import load_implementation\nimpl = load_implementation({self.options_target!r}, **{self.script_options()!r})"
        return op_script(load, op, example, self.options.policy, self.options.empty_rows, exit_status=True)  # type: ignore[arg-type]

    def op_component(self, component: Component, found: Localisation) -> Result:
        """Run one op component through the hypothesis loop (gptspec/verify/component.py:
        examples drawn by its strategy, a failure shrunk by hypothesis) with progress shown; the
        target raising is a result, not a crash; a failure is localised to ``found``.
        ``gptspec check --all-ops`` runs its every-primitive components here too."""
        self.on_time()
        self.progress(f"{component.name} …")
        try:
            result = run_component(component, self.options.op_examples, self.options.seed)
        except (KeyboardInterrupt, RunTimeout):
            raise
        except TargetFailure as failure:
            result = Result(component.name, passed=False, detail=str(failure), ratio=float("inf"))
        except (GptSpecError, TargetRaised) as error:
            result = Result(component.name, passed=False, error=str(error))
        except BaseException as error:  # noqa: BLE001 - the target raised: could not run
            result = Result(component.name, passed=False, error=f"the target raised {raised(error)}")
        result.key = "ops"
        if not result.passed and result.status == "failed":
            result.localisation = found.as_dict()
        return result

    def pads(self) -> bool:
        """Whether the target takes an attention mask (``can_pad``; absent: it does)."""
        if not hasattr(self, "_pads"):
            can = getattr(self.s.impl, "can_pad", None)
            self._pads = True if can is None else bool(can(self.s.arch))
        return self._pads

    def plan(self) -> dict[str, list[Any]]:
        """What this run checks, by component key, in order: the model-level cases (each a
        :class:`Case`: config, θ draw, batch) and the op components (``("op", label)``,
        ``("hard cases", kind)``) — of its shard only (``Options.shard``), so the shards' plans
        partition the unsharded plan (gptspec/verify/shard/)."""
        s, o = self.s, self.options
        n_ctx, n_vocab = s.arch.dim("n_ctx"), s.arch.dim("n_vocab")
        cases = model_cases(s.arch.config, n_ctx, n_vocab, examples=o.examples, seed=o.seed, max_len=o.max_len)
        generation = generation_cases(s.arch.config, n_ctx, n_vocab, examples=o.generation_examples, seed=o.seed, max_len=o.max_len)
        if not self.pads():  # a target without a mask: its real tokens only (gptspec/verify/calling.py)
            from gptspec.verify.calling import unpadded

            cases = [c for c in map(unpadded, cases) if c is not None]
            generation = [c for c in map(unpadded, generation) if c is not None]
        if s.theta is not None:  # θ given (gptspec check): no case draws its own
            cases, generation = [replace(c, draw=None) for c in cases], [replace(c, draw=None) for c in generation]
        if is_seq2seq(s.arch):  # an encoder–decoder: each target batch with a source batch of as many rows
            from spec.seq2seq import SOURCE, vocabulary

            n_source = vocabulary(s.arch, SOURCE)
            cases = with_sources(cases, n_ctx, n_source, seed=o.seed, max_len=o.max_len)
            generation = with_sources(generation, n_ctx, n_source, seed=o.seed + 1, max_len=o.max_len)
        ops = [("op", label) for label in distinct_ops(s.arch)]
        ops += [("hard cases", kind) for kind in dict.fromkeys(op.kind for op, _ in distinct_ops(s.arch).values())]
        mine = [c for k, c in enumerate(cases) if owns(o.shard, k)]
        return {
            "model": mine, "decode": [c for k, c in enumerate(cases) if owns(o.shard, k) and c.batch.width > 1],
            "generate": [c for k, c in enumerate(generation) if owns(o.shard, k)],
            "weights": [replace(c, draw=None if c.draw is None else replace(c.draw, magnitude="plain")) for c in mine],
            "ops": [item for k, item in enumerate(ops) if owns(o.shard, k)],
        }

    def run(self, on_result: Callable[[Result], None] | None) -> list[Result]:
        s, o = self.s, self.options
        arch = s.arch
        results = self.results

        def done(result: Result) -> None:
            results.append(result)
            self.passed[result.key] = result.status == "passed"
            if on_result is not None:
                on_result(result)

        planned = self.plan()  # this shard's cases (all of them when unsharded)
        if "model" in o.components and not self.pads():
            done(Result(COMPONENTS["model"], key="model", passed=False, skipped="the target takes no attention mask"))
        if "model" in o.components and planned["model"]:
            result = self.run_cases("model", planned["model"])
            if not self.pads():
                result.component = "model: unpadded batches (the target takes no attention mask)"
            done(result)
        if "decode" in o.components and (planned["decode"] or o.shard == WHOLE):
            can = getattr(s.impl, "can_decode", None)
            if callable(getattr(s.impl, "decode", None)) and (can is None or can(arch)):
                done(self.run_cases("decode", planned["decode"]))
            else:
                done(Result(COMPONENTS["decode"], key="decode", passed=False, skipped=getattr(s.impl, "no_decoding", None)
                            or "the target offers no incremental decoding (a Hugging Face cache: past_key_values/cache; or a decode attribute)"))
        if "generate" in o.components and (planned["generate"] or o.shard == WHOLE):
            done(self.run_cases("generate", planned["generate"]))
        if "weights" in o.components and s.weights is not None and planned["weights"]:
            done(self.run_cases("weights", planned["weights"]))
        if "ops" in o.components and callable(getattr(s.impl, "op", None)):
            for result in self.run_ops():
                done(result)
        return results


def _within(inner: str, outer: str) -> bool:
    """Whether every path of region ``inner`` lies in region ``outer`` (``+``-joined paths; ``*``
    any layer or head)."""
    import re

    patterns = [re.compile(re.escape(p).replace(r"\*", r"\d+") + r"(\..*)?") for p in outer.split("+")]
    return all(any(pattern.fullmatch(part) for pattern in patterns) for part in inner.split("+"))


def _describe(verdict: Verdict) -> str:
    text = verdict.comparison.describe("(row, position, logit)") + f" > budget {verdict.budget:.3g}" if not verdict.passed else (
        verdict.comparison.describe("(row, position, logit)") + f", budget {verdict.budget:.3g}"
    )
    return text + (f"; {verdict.note}" if verdict.note else "")


NUMPY_DEFAULT_ERRORS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}
"""numpy's own default error state: verify's numerics run under it, whatever a target sets."""


def _config_before_target(options: Options) -> Any:
    """The config a run verifies, when it is known without loading the target (a preset, or
    --layout's default); None otherwise (a builder, a checkpoint, a layout the target names)."""
    from gptspec.models import parse_overrides
    from spec import PRESETS, preset

    if options.model is None and options.layout is not None:
        from gptspec.checkpoint import LAYOUTS, layout

        if options.layout in LAYOUTS and layout(options.layout).default is not None:
            return parse_overrides(layout(options.layout).default, options.sets)
    if options.model is not None and options.model in PRESETS:
        return parse_overrides(preset(options.model).config, options.sets)
    return None


def _check_cost(config: Any, options: Options) -> None:
    if not options.cost_limit or config is None:
        return
    from gptspec.estimate import campaign, check_campaign

    components = tuple(options.components) if options.weights else tuple(c for c in options.components if c != "weights")
    c = campaign(config, examples=options.examples, generation_examples=options.generation_examples, op_examples=options.op_examples,
                 max_len=options.max_len, components=components)
    check_campaign(c, "gptspec verify")


def target_payload(target: object) -> str | bytes | None:
    """What the child loads: the target string, or the object pickled (by reference for a class
    or function importable by name); None when it cannot be sent (run in-process, with a note)."""
    if isinstance(target, str):
        return target
    import pickle

    try:
        return pickle.dumps(target)
    except Exception:  # noqa: BLE001 - lambdas, closures, local classes: not sendable
        return None


def isolated_setup(payload: str | bytes, options: Options, deadline: float | None) -> Setup:
    from gptspec.checkpoint import layout
    from gptspec.verify.isolate import Isolated
    from spec import build

    proxy = Isolated(payload, replace(options, weights=False), call_timeout=options.call_timeout, deadline=deadline)
    try:
        info = proxy.start()
    except BaseException:
        proxy.close()
        raise
    try:
        _check_cost(info.config, options)
        if info.layout_source:  # inferred in the child (--layout auto): registered here too
            from gptspec.verify.layouts import register_source

            register_source(info.layout_source)
        lay = layout(info.layout)
        weights = None
        if options.weights:
            arch, weights = _architecture(lay, options.model, True, options.sets)
        else:
            arch = build(info.config)
    except BaseException:
        proxy.close()
        raise
    return Setup(None, info.label, lay, arch, weights, proxy, info.dtype, list(info.notes))


def prepare(target: object, options: Options, deadline: float | None) -> tuple[Setup, list[str]]:
    """The setup of a run (forward or gradient: gptspec/verify/grad.py) and the notes on where
    the target runs: in a child process (``isolate``; a string always, an object when asked and
    picklable), else here behind :class:`~gptspec.verify.isolate.Guarded` with numpy's error state
    the target set at import around its calls only. Called under :data:`NUMPY_DEFAULT_ERRORS`; a
    target still loading at the deadline is a ConfigError."""
    notes: list[str] = []
    isolate = options.isolate if options.isolate is not None else isinstance(target, str)
    payload = target_payload(target) if isolate else None
    if isolate and payload is None:
        notes.append(f"in-process: the target object {type(target).__name__} cannot be sent to a child process (not picklable); "
                     "name it as module:name or file.py:name to isolate it")
    elif not isolate and options.isolate is None:
        notes.append("in-process: the target was given as a Python object, already loaded in this process; name it as module:name "
                     "or file.py:name (or pass isolate=True) to run it in a child process")
    try:
        if payload is not None:
            return isolated_setup(payload, options, deadline), notes
        from gptspec.verify.isolate import Guarded

        s = setup(target, options)
        _check_cost(s.arch.config, options)
        target_errors = np.geterr()  # the target's own error state (set at import), around its calls only
        np.seterr(**NUMPY_DEFAULT_ERRORS)  # type: ignore[arg-type]
        s.impl = Guarded(s.impl, s.label, target_errors)
        if options.isolate is False:
            notes.append("in-process (--in-process): the target shares this process; a target that exits ends the run — not for CI")
        return s, notes
    except RunTimeout as late:
        raise ConfigError(f"{late}: the target was still loading after --timeout {options.timeout:g} s [gptspec verify]") from None


def verify_target(
    target: object, options: Options | None = None, *, progress: Callable[[str], None] | None = None,
    on_result: Callable[[Result], None] | None = None, **changes: Any,
) -> Report:
    """Verify ``target`` (``module:name``, ``file.py:name``, or the object itself) against the
    spec's reference; see the module docstring. The target runs in a child process
    (``isolate=True``, the default: gptspec/verify/isolate.py). Raises a GptSpecError when it
    cannot run (bad target, layout or architecture, a target that fails while loading or being
    built, a campaign beyond the cost bounds); a target that raises, exits or crashes while
    running gives components with status ``error`` (exit code 2); a call over ``call_timeout``
    or a write into its inputs is a failure (exit code 1)."""
    options = replace(options or Options(), **changes)
    options.check()
    start = time.perf_counter()
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    _check_cost(_config_before_target(options), options)  # before anything is loaded, built or drawn, when the config is known
    with np.errstate(**NUMPY_DEFAULT_ERRORS):  # type: ignore[arg-type]
        s, notes = prepare(target, options, deadline)
        try:
            return _run(s, target, options, progress, on_result, notes, start, deadline)
        finally:
            from gptspec.verify.isolate import Isolated

            if isinstance(s.impl, Isolated):
                s.impl.close()


def _run(
    s: Setup, target: object, options: Options, progress: Callable[[str], None] | None, on_result: Callable[[Result], None] | None,
    notes: list[str], start: float, deadline: float | None,
) -> Report:
    runner = Runner(s, options, progress, target if isinstance(target, str) else None)
    runner.deadline = deadline
    report = Report(
        target=s.label, implementation=s.impl.name, layout=s.named_layout().name, architecture=f"{s.arch.name}: {describe_config(s.arch.config)}",
        dtype=s.dtype, empty_rows=options.empty_rows, policy=options.policy.describe(s.dtype, longest_reduction(s.arch)), seed=options.seed,
        function=function_fields(s.arch.config),
    )
    report.notes += s.notes + notes
    n_ctx = s.arch.dim("n_ctx")
    if options.max_len < n_ctx:
        report.notes.append(f"sequences up to {options.max_len} of n_ctx {n_ctx} (--max-len)")
    if options.shard != WHOLE:
        report.notes.append(describe(options.shard))
    planned = runner.plan()  # the campaign's size, before it starts
    runner.progress(
        f"campaign{'' if options.shard == WHOLE else f' (shard {options.shard[0]}/{options.shard[1]})'}: "
        + ", ".join(f"{len(planned[key])} {what}" for key, what in (("model", "padded batches"), ("decode", "decoded batches"),
                    ("generate", "generations"), ("ops", "op components")) if key in options.components)
        + f" on {describe_config(s.arch.config)}"
    )
    try:
        runner.run(on_result)
    except RunTimeout as late:
        result = stopped(late, options.timeout)
        runner.results.append(result)
        if on_result is not None:
            on_result(result)
    report.results = runner.results
    _identify(runner, report, options, progress)
    report.seconds = time.perf_counter() - start
    return report


def _identify(runner: Runner, report: Report, options: Options, progress: Callable[[str], None] | None) -> None:
    """Run identify (gptspec/verify/identify.py) when a component failed, or always with --identify."""
    if options.identify is False or runner.broken:
        return
    if report.count("error") and _fits(runner):
        return  # an error is no function to identify, unless it is the target's parameters not taking Θ: a variant's may
    if not (options.identify or report.count("failed") or report.count("error")):
        return
    failed = next((r for r in report.results if r.status == "failed"), None)
    loc = (failed.localisation or {}) if failed is not None else {}
    hint = " ".join(str(loc.get(k, "")) for k in ("path", "kind")) + " " + (failed.component if failed is not None else "")
    try:
        found = identify(runner, hint, progress=progress, passed_as_given=report.exit_code == 0)
    except RunTimeout:
        report.notes.append("identify: stopped by --timeout")
        return
    report.identified = found.as_dict()


def _fits(runner: Runner) -> bool:
    """The target's parameters take the architecture's Θ (a target that cannot even be asked: as if they did)."""
    try:
        return runner.loadable(runner.s.arch)
    except Exception:  # noqa: BLE001 - a target that cannot answer has nothing to identify
        return True


def load_implementation(target: str, **options: Any) -> Any:
    """The target adapted to the Implementation protocol, as :func:`verify_target` sees it."""
    opts = replace(Options(), **options)
    obj, label = _load_target(target)
    from gptspec.verify.targets import adapt

    lay = _layout_for(obj, opts.layout, label)
    return adapt(obj, lay, label, dtype=opts.dtype, attn_implementation=opts.attn_implementation)


def reproduce(target: object, component: str, case: Case, **options: Any) -> Verdict:
    """Run one component's check on one case (what a counterexample script calls)."""
    opts = replace(Options(), **options)
    s = setup(target, replace(opts, weights=component == "weights"))
    return Runner(s, opts, None).judge(component, case)
