"""What ``gptspec verify TARGET`` verifies: the target kinds, resolved to one interface.

TARGET is ``module.path:name`` or ``path/to/file.py:name`` naming

- a ``torch.nn.Module`` **class** (built from the layout's native config: Hugging Face classes
  through their ``config_class``, e.g. ``transformers:GPT2LMHeadModel``; others as
  ``cls(config)`` with the native config as a dict that also reads as attributes), a
  **factory** ``f(config) -> module``, or an **instance** (its own shape and dtype) —
  :mod:`gptspec.verify.torch_target`;
- a **plain callable over a state dict**, for numpy, JAX or anything:
  ``f(state_dict, input_ids, attention_mask, config) -> logits (B, T, V)`` where
  ``state_dict`` holds arrays under the layout's names (no prefix; e.g. ``h.0.attn.c_attn.weight``),
  ``input_ids`` and ``attention_mask`` are int64 arrays (B, T) with 1 on real tokens, and
  ``config`` is the native config as a dict. Optionally it takes ``capture=`` (a dict it may fill
  with intermediates (B, T, …) keyed by DAG path or by the layout's module names) and carries
  ``f.decode(state_dict, input_ids, attention_mask, config, prefix) -> logits`` (the first
  ``prefix`` positions at once, then one position at a time);
- an object implementing the full :class:`~gptspec.verify.implementation.Implementation`
  protocol (op-level components too), or a class of one built with no arguments.

Every kind is adapted to the Implementation protocol, so one engine judges them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from gptspec.checkpoint.layout import Layout
from gptspec.verify.tolerance import dtype_name, rounded
from gptspec.verify.torch_target import (
    NativeConfig,
    TorchTarget,
    factory_maker,
    hf_config_maker,
    is_module,
    is_module_class,
    native_config,
)
from spec.errors import ConfigError
from spec.graph import Architecture

NUMPY_DTYPES = ("float64", "float32", "float16")


class StateDictCallable:
    """An Implementation running ``f(state_dict, input_ids, attention_mask, config)``."""

    resizable = True

    def __init__(self, fn: Callable[..., Any], layout: Layout, label: str, dtype: str | None = None) -> None:
        self.fn = fn
        self.layout = layout
        self.label = label
        name = dtype_name(dtype or "float64")
        if name not in NUMPY_DTYPES:
            raise ConfigError(
                f"--dtype {name}, but expected one of {list(NUMPY_DTYPES)} for a callable over numpy arrays [gptspec verify {label}]; "
                "numpy has no bfloat16: verify bfloat16 through a torch module"
            )
        self.dtype = name
        self.name = f"{label} [{name}]"
        try:
            self._params = set(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            self._params = set()
        self._states: dict[tuple[int, int], tuple[object, dict[str, np.ndarray]]] = {}

    def state_dict(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = (id(arch), id(theta))
        found = self._states.get(key)
        if found is not None and found[0] is theta:
            return found[1]
        from gptspec.checkpoint import export_state_dict

        to_dtype = rounded(self.dtype)
        target = np.dtype(self.dtype)
        state = {k: to_dtype(v).astype(target) for k, v in export_state_dict(arch, theta, self.layout.name, prefixed=False).items()}
        if len(self._states) > 32:
            self._states.clear()
        self._states[key] = (theta, state)
        return state

    def _result(self, value: Any, shape: tuple[int, ...], arch: Architecture) -> np.ndarray:
        from gptspec.verify.returns import logits_array

        return logits_array(value, self.label, (*shape, arch.dim("n_vocab")))

    def fresh_state(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state dict as new arrays for one call: what the target writes into them never
        reaches the next call (a generation's steps share one θ)."""
        return {k: v.copy() for k, v in self.state_dict(arch, theta).items()}

    def model(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> np.ndarray:
        out = self.fn(self.fresh_state(arch, theta), ids.copy(), valid.astype(np.int64), native_config(self.layout, arch))
        return self._result(out, ids.shape, arch)

    def can_decode(self, arch: Architecture) -> bool:
        return callable(getattr(self.fn, "decode", None))

    def decode(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], prefix: int
    ) -> np.ndarray:
        decode = self.fn.decode  # type: ignore[attr-defined]
        out = decode(self.fresh_state(arch, theta), ids.copy(), valid.astype(np.int64), native_config(self.layout, arch), prefix)
        return self._result(out, ids.shape, arch)

    def can_capture(self, arch: Architecture) -> bool:
        return "capture" in self._params

    def capture(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_],
        prefix: int | None = None,
    ) -> list[tuple[str, str, np.ndarray]]:
        if prefix is not None or "capture" not in self._params:
            return []
        filled: dict[str, Any] = {}
        self.fn(self.fresh_state(arch, theta), ids.copy(), valid.astype(np.int64), native_config(self.layout, arch), capture=filled)
        modules = self.layout.module_paths(arch.config)
        out = []
        for name, value in filled.items():
            path = modules.get(name, modules.get(self.layout.external_name(name, True), name))
            array = np.asarray(value, dtype=np.float64)
            if array.ndim >= 2 and array.shape[:2] == ids.shape:
                out.append((path, "output", array))
        return out


def classify(obj: object) -> str:
    """``implementation``, ``module-class``, ``module``, ``factory`` or ``callable``."""
    if is_module(obj):
        return "module"
    if is_module_class(obj):
        return "module-class"
    if _is_implementation(obj):
        return "implementation"
    if isinstance(obj, type) and _is_implementation_class(obj):
        return "implementation-class"
    if callable(obj):
        required = _required_positional(obj)
        if required == 4:
            return "callable"
        if required == 1:
            return "factory"
        raise ConfigError(
            f"target {getattr(obj, '__name__', obj)!r} takes {required} required arguments, but expected 1 (a factory f(config) -> "
            "torch module) or 4 (f(state_dict, input_ids, attention_mask, config) -> logits) [gptspec verify]"
        )
    raise ConfigError(
        f"target of type {type(obj).__name__}, but expected a torch.nn.Module class, factory or instance, a callable "
        "f(state_dict, input_ids, attention_mask, config), or an Implementation [gptspec verify]; see docs/verify.md"
    )


def _is_implementation(obj: object) -> bool:
    return not isinstance(obj, type) and callable(getattr(obj, "model", None)) and hasattr(obj, "dtype") and hasattr(obj, "op")


def _is_implementation_class(cls: type) -> bool:
    return callable(getattr(cls, "model", None)) and callable(getattr(cls, "op", None))


def _required_positional(fn: object) -> int:
    try:
        parameters = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1
    return sum(
        1 for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) and p.default is inspect.Parameter.empty
    )


def adapt(obj: object, layout: Layout, label: str, *, dtype: str | None = None, attn_implementation: str | None = None) -> Any:
    """The target as an Implementation (see the module docstring)."""
    kind = classify(obj)
    if attn_implementation is not None and kind not in ("module-class", "factory", "module"):
        raise ConfigError(f"--attn-implementation {attn_implementation}, but expected a torch module target, not a {kind} [gptspec verify {label}]")
    if kind == "module":
        if attn_implementation is not None:
            raise ConfigError(f"--attn-implementation {attn_implementation}, but an instance's attention is fixed when it is built [gptspec verify {label}]")
        return TorchTarget(layout, label, instance=obj, dtype=dtype)
    if kind == "module-class":
        return TorchTarget(layout, label, make=hf_config_maker(obj, layout, attn_implementation), dtype=dtype, attn_implementation=attn_implementation)  # type: ignore[arg-type]
    if kind == "factory":
        if attn_implementation is not None:
            raise ConfigError(f"--attn-implementation {attn_implementation}, but a factory chooses its own attention [gptspec verify {label}]")
        return TorchTarget(layout, label, make=factory_maker(obj, layout), dtype=dtype)  # type: ignore[arg-type]
    if kind == "callable":
        return StateDictCallable(obj, layout, label, dtype)  # type: ignore[arg-type]
    impl: Any = obj() if kind == "implementation-class" else obj  # type: ignore[operator]
    if dtype is not None and dtype_name(getattr(impl, "dtype", "float64")) != dtype_name(dtype):
        raise ConfigError(f"--dtype {dtype}, but the Implementation computes in {impl.dtype} [gptspec verify {label}]; an Implementation states its own dtype")
    if not hasattr(impl, "resizable"):
        try:
            impl.resizable = True
        except AttributeError:
            pass
    return impl


def infer_layout(obj: object) -> str | None:
    """The layout a target names through its config class's ``model_type`` (a Hugging Face
    class or an instance of one), or None."""
    from gptspec.checkpoint import LAYOUTS

    config_class = getattr(obj, "config_class", None)
    model_type = getattr(config_class, "model_type", None) or getattr(getattr(obj, "config", None), "model_type", None)
    if not model_type:
        return None
    for lay in LAYOUTS.values():
        if lay.model_type and lay.model_type == model_type:
            return lay.name
    return None


__all__ = ["NativeConfig", "StateDictCallable", "adapt", "classify", "infer_layout"]
