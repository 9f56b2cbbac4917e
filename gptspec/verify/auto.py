"""``--layout auto`` for a torch module: which architecture and layout it is, confirmed by agreement
with the reference (docs/verify.md, "Verify a codebase you did not write").

Layout inference itself — the synonym table, the candidates, agreement — is
gptspec/verify/layouts.py; this module builds the module for each architecture to try and adapts
the chosen layout into a target (gptspec/verify/torch_target.py), one layer above both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gptspec.checkpoint.layout import LAYOUTS, Layout
from gptspec.verify.layouts import ROLES, choose, module_tensors, registered_matches, synonym_candidates
from gptspec.verify.targets import classify
from gptspec.verify.torch_target import TorchTarget, hf_config_maker
from spec.errors import ConfigError, GptSpecError
from spec.graph import Architecture


@dataclass
class Resolved:
    """What ``--layout auto`` settled on: the layout, the architecture, the adapted target, and
    lines for the report."""

    layout: Layout
    arch: Architecture
    impl: Any
    notes: list[str]


def _archs(options: Any) -> list[tuple[Layout | None, Architecture]]:
    """The architectures to try: ``--model``'s, or every registered layout's default (with ``--set``)."""
    from gptspec.models import parse_overrides
    from spec import build

    if options.model is not None:
        import os

        if os.path.exists(options.model):
            from gptspec.checkpoint import load_architecture

            return [(None, load_architecture(options.model))]
        from gptspec.models import resolve

        return [(None, resolve(options.model, tuple(options.sets), need_theta=False, progress=False).arch)]
    out: list[tuple[Layout | None, Architecture]] = []
    for lay in list(LAYOUTS.values()):
        if lay.default is None or lay.name.startswith("auto-"):
            continue
        try:
            arch = build(parse_overrides(lay.default, tuple(options.sets)))
        except GptSpecError:
            continue
        if list(arch.inputs) == ["ids"]:
            out.append((lay, arch))
    return out


def _flipped_tie(arch: Architecture, options: Any) -> Architecture | None:
    """The architecture with the head tied the other way, when the user fixed neither."""
    from spec import build

    config = arch.config
    if options.model is not None or not hasattr(config, "tied") or any(item.split("=")[0].strip() == "tied" for item in options.sets):
        return None
    return build(config.replace(tied=not config.tied))


def resolve_auto(obj: Any, label: str, options: Any, dtype: str | None) -> Resolved:
    """``--layout auto`` for a torch module class or instance (module docstring): the registered
    layout whose own default the module matches exactly, else another registered layout it matches,
    else a layout inferred by synonyms — each confirmed by agreement with the reference."""
    kind = classify(obj)
    if kind not in ("module-class", "module"):
        raise ConfigError(f"--layout auto for a {kind}, but expected a torch module class or instance, whose parameters show its layout "
                          f"[gptspec verify {label}]; pass --layout naming one of {[n for n in LAYOUTS if not n.startswith('auto-')]} or a layout file")
    tried: list[str] = []
    built: dict[Any, tuple[Any, Any]] = {}

    def module_for(lay: Layout | None, arch: Architecture) -> tuple[Any, Any] | None:
        if arch.config in built:
            return built[arch.config]
        result: tuple[Any, Any]
        try:
            if kind == "module":
                result = (obj, None)
            else:
                make = hf_config_maker(obj, lay or LAYOUTS[next(n for n, v in LAYOUTS.items() if v.family == _family(arch))], None)
                result = (make(arch), make)
        except Exception as error:  # noqa: BLE001 - the class cannot be built for this architecture: the next one is tried
            tried.append(f"{arch.name}: building it raised {type(error).__name__}: {error}")
            return None
        built[arch.config] = result
        return result

    def confirm(candidates: list[Layout], module: Any, arch: Architecture, how: str) -> Resolved:
        chosen = choose(candidates, lambda lay: TorchTarget(lay, label, instance=module, dtype=dtype), arch, label)
        error = chosen.errors[chosen.layout.name]
        others = sorted(v for k, v in chosen.errors.items() if k != chosen.layout.name)
        agreed = f"relative error {error:.2g}" if not chosen.how else f"not measured: it raised {chosen.how}"
        text = f"layout {chosen.layout.name} inferred ({how}); agreement with the reference on a random θ: {agreed}"
        if others:
            text += f" (the next of {len(chosen.errors)} candidates: {others[0]:.2g})"
        if kind == "module":
            impl = TorchTarget(chosen.layout, label, instance=obj, dtype=dtype)
        else:
            impl = TorchTarget(chosen.layout, label, make=hf_config_maker(obj, chosen.layout, None), dtype=dtype)
        return Resolved(chosen.layout, arch, impl, [text])

    archs = _archs(options)
    # 1. a registered layout whose own default the module matches exactly; 2. any registered layout
    for exact in (True, False):
        for lay, arch in archs:
            found = module_for(lay, arch)
            if found is None:
                continue
            matches = registered_matches(module_tensors(found[0]), arch)
            if exact and lay is not None and lay in matches:
                return confirm([lay], found[0], arch, "its names and shapes are the registered layout's")
            if not exact and matches:
                return confirm(matches, found[0], arch, "its names and shapes are the registered layout's")
    # 3. synonyms, on one architecture per family (and its head tied the other way)
    seen: set[str] = set()
    for lay, arch in archs:
        family = _family(arch)
        if family in seen or family not in ROLES:
            continue
        seen.add(family)
        flipped = _flipped_tie(arch, options)
        for candidate in [arch] + ([flipped] if flipped is not None else []):
            found = module_for(lay, candidate)
            if found is None:
                continue
            try:
                layouts = synonym_candidates(module_tensors(found[0]), candidate, label)
            except ConfigError as error:
                tried.append(f"{candidate.name} ({family}): {error}")
                continue
            resolved = confirm(layouts, found[0], candidate, f"by parameter names, shapes and orientation: {len(layouts)} candidate(s)")
            if candidate is not arch:
                resolved.notes.append(f"the module's head is {'tied to' if candidate.config.tied else 'separate from'} its embedding: judged against tied={candidate.config.tied}")
            return resolved
    sizes = " An instance has its own sizes: pass --model naming its architecture." if kind == "module" and options.model is None else ""
    raise ConfigError(
        f"{label}'s parameters match no registered layout and no family's synonyms, but expected --layout auto to find one "
        f"[gptspec verify]; tried: {' | '.join(tried[:6]) or 'nothing'}. Fix: pass --layout naming a layout, or write one "
        f"(docs/verify.md, 'Layouts: Θ ↔ external names, as one table') and pass --layout FILE.py.{sizes}"
    )


def _family(arch: Architecture) -> str:
    from spec import family_of

    return family_of(arch.config).name


__all__ = ["Resolved", "resolve_auto"]
