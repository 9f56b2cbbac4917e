"""A ``torch.nn.Module`` as an implementation under test (docs/verify.md, "Target kinds").

The module — built from the layout's native config by a class or a factory, or given as an
instance — is loaded with the verifier's θ through ``load_state_dict`` (θ exported under the
layout's names, rounded to the module's dtype) and called in eval mode as

    module(input_ids=ids, attention_mask=mask[, position_ids=positions][, use_cache=False])

(keywords its ``forward`` accepts; positionally ``module(ids, mask)`` otherwise). Position ids,
when ``forward`` takes them, are each real token's index among the row's real tokens (the
spec's positions: left padding does not shift them), 0 on padded slots. The logits are the
output itself, its ``.logits``, or its first element.

Where the module offers it, Hugging Face's cache (``past_key_values`` / ``cache`` in and out)
gives incremental decoding, and ``generate`` gives greedy generation. Intermediates are captured
by forward hooks on the modules the layout maps to DAG paths (``Layout.modules``).

torch is imported lazily: nothing here runs unless a torch target is verified.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gptspec.checkpoint.layout import Layout
from gptspec.verify.tolerance import dtype_name, rounded
from spec.errors import ConfigError
from spec.graph import Architecture

TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16")


def import_torch() -> Any:
    """torch, or a ConfigError saying how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ConfigError(
            "torch is not installed, but expected it to verify a torch.nn.Module [gptspec verify]; "
            "pip install torch (or verify a plain callable over a state dict)"
        ) from error
    return torch


def is_module_class(obj: object) -> bool:
    torch = _torch_if_loaded()
    return torch is not None and isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def is_module(obj: object) -> bool:
    torch = _torch_if_loaded()
    return torch is not None and isinstance(obj, torch.nn.Module)


def _torch_if_loaded() -> Any:
    import sys

    return sys.modules.get("torch")


class NativeConfig(dict[str, Any]):
    """The layout's native config as a dict whose keys also read as attributes
    (``config["n_embd"]`` or ``config.n_embd``): what a user's module class or factory receives."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def native_config(layout: Layout, arch: Architecture) -> NativeConfig:
    """The layout's native config of ``arch`` (e.g. GPT2Config's keys)."""
    return NativeConfig(layout.write_config(arch.config))


def positions(valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Each real token's index among its row's real tokens; 0 on padded slots."""
    v = valid.astype(np.int64)
    out: npt.NDArray[np.int64] = np.where(valid, np.cumsum(v, axis=-1) - 1, 0)
    return out


@dataclass
class Loaded:
    module: Any
    theta: object  # kept so the id the cache is keyed by stays unique


class TorchTarget:
    """An :class:`~gptspec.verify.implementation.Implementation` running a torch module."""

    def __init__(
        self, layout: Layout, label: str, *, make: Callable[[Architecture], Any] | None = None, instance: Any = None,
        dtype: str | None = None, attn_implementation: str | None = None,
    ) -> None:
        self.torch = import_torch()
        self.layout = layout
        self.label = label
        self.make = make
        self.instance = instance
        self.attn_implementation = attn_implementation
        if dtype is None:
            dtype = _module_dtype(instance) if instance is not None else "float32"
        if dtype_name(dtype) not in TORCH_DTYPES:
            raise ConfigError(f"dtype={dtype}, but expected one of {list(TORCH_DTYPES)} [gptspec verify {label}]")
        self.dtype = dtype_name(dtype)
        self.name = f"{label} [{self.dtype}{', ' + attn_implementation if attn_implementation else ''}]"
        self.resizable = make is not None
        self._modules: dict[object, Any] = {}
        self._loaded: dict[int, Loaded] = {}
        self._names: dict[int, tuple[dict[str, str], set[str]]] = {}

    # -- building and loading ---------------------------------------------------------------

    def module_for(self, arch: Architecture) -> Any:
        key = arch.config if self.make is not None else "instance"
        if key not in self._modules:
            if self.make is not None:
                module = self.make(arch)
            else:
                module = self.instance
            if not isinstance(module, self.torch.nn.Module):
                raise ConfigError(f"{self.label} gave {type(module).__name__}, but expected a torch.nn.Module [gptspec verify]")
            module.eval()
            if len(self._modules) > 8:
                self._modules.clear()
                self._loaded.clear()
            self._modules[key] = module.to(_TORCH_DTYPE(self.torch, self.dtype))
        return self._modules[key]

    def load(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> Any:
        """The module for ``arch`` holding θ (rounded to the dtype); reloaded only when another θ
        was loaded since."""
        module = self.module_for(arch)
        current = self._loaded.get(id(module))
        if current is not None and current.theta is theta:
            return module  # the module holds this θ already (one θ at a time per module)
        from gptspec.checkpoint import export_state_dict

        mapping, extra = self._naming(arch, module)
        state = export_state_dict(arch, theta, self.layout.name, prefixed=True)
        to_dtype = rounded(self.dtype)
        tensors = {}
        torch = self.torch
        target_dtype = _TORCH_DTYPE(torch, self.dtype)
        for name, value in state.items():
            if name in mapping:
                tensors[mapping[name]] = torch.from_numpy(np.ascontiguousarray(to_dtype(value))).to(target_dtype)
        with torch.no_grad():
            missing, unexpected = module.load_state_dict(tensors, strict=False)
        missing = [m for m in missing if m not in extra]
        if missing or unexpected:
            raise ConfigError(
                f"{self.label} did not take θ: missing {missing[:4]}, unexpected {list(unexpected)[:4]}, but expected every parameter "
                f"named by layout {self.layout.name} [gptspec verify]"
            )
        self._loaded[id(module)] = Loaded(module, theta)
        return module

    def _naming(self, arch: Architecture, module: Any) -> tuple[dict[str, str], set[str]]:
        """Layout name (prefixed form) → the module's state-dict key, and the module's buffer
        keys; refuses a module whose parameters are not exactly the layout's tensors."""
        cache_key = id(module)
        if cache_key in self._names:
            return self._names[cache_key]
        from gptspec.checkpoint.layout import expected_shapes

        buffers = {name for name, _ in module.named_buffers()}
        params = {name for name in module.state_dict() if name not in buffers}
        shapes = expected_shapes(self.layout, arch)
        variants = {
            "with the prefix": {self.layout.external_name(n, True): self.layout.external_name(n, True) for n in shapes},
            "without the prefix": {self.layout.external_name(n, True): n for n in shapes},
        }
        for mapping in variants.values():
            if set(mapping.values()) == params:
                self._names[cache_key] = (mapping, buffers)
                return mapping, buffers
        best = min(variants.values(), key=lambda m: len(params ^ set(m.values())))
        missing = sorted(set(best.values()) - params)
        extra = sorted(params - set(best.values()))
        raise ConfigError(
            f"{self.label} has parameters {extra[:4]} the layout does not fill and lacks {missing[:4]}, but expected exactly the tensors "
            f"of layout {self.layout.name} for {arch.name} [gptspec verify]; build the module from the native config it is given "
            f"(or pass --layout with the naming the module uses)"
        )

    def check_shapes(self, arch: Architecture) -> None:
        """Refuse a module whose parameter shapes differ from the architecture's (an instance
        built for another config), before anything runs."""
        module = self.module_for(arch)
        from gptspec.checkpoint.layout import expected_shapes

        mapping, _ = self._naming(arch, module)
        state = module.state_dict()
        for name, (shape, sym) in expected_shapes(self.layout, arch).items():
            key = mapping.get(self.layout.external_name(name, True))
            if key is not None and tuple(state[key].shape) != shape:
                raise ConfigError(
                    f"{self.label} parameter {key} has shape {tuple(state[key].shape)}, but expected {sym} = {shape} for {arch.name} "
                    "[gptspec verify]; verify an instance against the architecture it was built for (--model)"
                )

    # -- calling ------------------------------------------------------------------------------

    def _accepts(self, module: Any) -> set[str]:
        try:
            parameters = inspect.signature(module.forward).parameters
        except (TypeError, ValueError):
            return set()
        return set(parameters)

    def _call(self, module: Any, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, **extra: Any) -> Any:
        torch = self.torch
        accepts = self._accepts(module)
        t_ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        t_mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))
        with torch.no_grad(), one_thread(torch):
            if "input_ids" in accepts and "attention_mask" in accepts:
                kwargs: dict[str, Any] = {"input_ids": t_ids, "attention_mask": t_mask}
                if "position_ids" in accepts:
                    kwargs["position_ids"] = torch.from_numpy(np.ascontiguousarray(pos, dtype=np.int64))
                if "use_cache" in accepts:
                    kwargs["use_cache"] = bool(extra.pop("use_cache", False))
                kwargs.update(extra)
                return module(**kwargs)
            return module(t_ids, t_mask)

    def _logits(self, out: Any, shape: tuple[int, int], arch: Architecture) -> np.ndarray:
        value = getattr(out, "logits", None)
        if value is None:
            value = out[0] if isinstance(out, (tuple, list)) else out
        if not isinstance(value, self.torch.Tensor):
            raise ConfigError(f"{self.label} returned {type(value).__name__}, but expected logits as a tensor, or an output with .logits [gptspec verify]")
        array: np.ndarray = value.detach().to(self.torch.float64).cpu().numpy()
        want = (*shape, arch.dim("n_vocab"))
        if array.shape != want:
            raise ConfigError(f"{self.label} returned logits of shape {array.shape}, but expected (B, T, n_vocab) = {want} [gptspec verify]")
        return array

    def model(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> np.ndarray:
        module = self.load(arch, theta)
        return self._logits(self._call(module, ids, valid, positions(valid)), (ids.shape[0], ids.shape[1]), arch)

    # -- incremental decoding ---------------------------------------------------------------

    def _cache_keyword(self, arch: Architecture) -> str | None:
        accepts = self._accepts(self.module_for(arch))
        for name in ("past_key_values", "cache"):
            if name in accepts and "use_cache" in accepts:
                return name
        return None

    def can_decode(self, arch: Architecture) -> bool:
        return self._cache_keyword(arch) is not None

    def decode(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], prefix: int
    ) -> np.ndarray:
        keyword = self._cache_keyword(arch)
        if keyword is None:
            raise ConfigError(f"{self.label} takes no past_key_values or cache, but expected one to decode [gptspec verify]")
        module = self.load(arch, theta)
        pos = positions(valid)
        out = self._call(module, ids[:, :prefix], valid[:, :prefix], pos[:, :prefix], use_cache=True)
        steps = [self._logits(out, (ids.shape[0], prefix), arch)]
        cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
        if cache is None and isinstance(out, (tuple, list)) and len(out) > 1:
            cache = out[1]
        for t in range(prefix, ids.shape[1]):
            out = self._call(module, ids[:, t : t + 1], valid[:, : t + 1], pos[:, t : t + 1], use_cache=True, **{keyword: cache})
            steps.append(self._logits(out, (ids.shape[0], 1), arch))
            cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None) or cache
        return np.concatenate(steps, axis=1)

    # -- greedy generation ----------------------------------------------------------------

    def can_generate(self, arch: Architecture) -> bool:
        return callable(getattr(self.module_for(arch), "generate", None))

    def generate(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], n_new: int
    ) -> np.ndarray:
        """The module's own ``generate``, greedy, on a left-padded batch: the n_new tokens."""
        torch = self.torch
        module = self.load(arch, theta)
        with torch.no_grad(), one_thread(torch):
            out = module.generate(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(valid.astype(np.int64)),
                max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, num_beams=1,
                pad_token_id=0, eos_token_id=None, bos_token_id=None,
            )
        sequences = getattr(out, "sequences", out)
        array: np.ndarray = sequences.detach().cpu().numpy()[:, ids.shape[1]:]
        if array.shape != (ids.shape[0], n_new):
            raise ConfigError(f"{self.label}.generate gave {array.shape[1]} new tokens, but expected {n_new} [gptspec verify]")
        return array.astype(np.int64)

    # -- intermediates ---------------------------------------------------------------------

    def capture(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_],
        prefix: int | None = None,
    ) -> list[tuple[str, str, np.ndarray]]:
        """Run the model (or decode, with ``prefix``) with forward hooks on the layout's modules:
        (DAG node path, "output" or "input", array (B, T, …)) for each hooked module found."""
        module = self.load(arch, theta)
        torch = self.torch
        named = dict(module.named_modules())
        mapping = self.layout.module_paths(arch.config)
        records: dict[tuple[str, str], list[np.ndarray]] = {}
        hooks = []

        def first_tensor(values: Any) -> Any:
            for v in values:
                if isinstance(v, torch.Tensor):
                    return v
            return None

        for external, path in mapping.items():
            found = named.get(external)
            if found is None and self.layout.prefix and external.startswith(self.layout.prefix):
                found = named.get(external[len(self.layout.prefix):])
            if found is None:
                continue

            def hook(_m: Any, args: Any, kwargs: Any, output: Any, path: str = path) -> None:
                out = output if isinstance(output, torch.Tensor) else first_tensor(output if isinstance(output, (tuple, list)) else [getattr(output, "logits", None), getattr(output, "last_hidden_state", None)])
                inp = first_tensor(list(args) + list(kwargs.values()))
                for what, value in (("output", out), ("input", inp)):
                    if value is not None and value.is_floating_point():
                        records.setdefault((path, what), []).append(value.detach().to(torch.float64).cpu().numpy())

            hooks.append(found.register_forward_hook(hook, with_kwargs=True))
        try:
            if prefix is None:
                self.model(arch, theta, ids, valid)
            else:
                self.decode(arch, theta, ids, valid, prefix)
        finally:
            for h in hooks:
                h.remove()
        out: list[tuple[str, str, np.ndarray]] = []
        B, T = ids.shape
        for (path, what), parts in records.items():
            # a value computed once for the batch (positions from arange: (1, T, d)) stands for every row
            parts = [np.broadcast_to(p, (B, *p.shape[1:])) if p.ndim >= 2 and p.shape[0] == 1 else p for p in parts]
            try:
                joined = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            except ValueError:
                continue
            if joined.ndim >= 2 and joined.shape[:2] == (B, T):
                out.append((path, what, joined))
        return out


@contextlib.contextmanager
def one_thread(torch: Any) -> Iterator[None]:
    """Run torch on one thread: verification runs tiny models, for which a thread pool's
    synchronisation costs far more than it saves (50× on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _TORCH_DTYPE(torch: Any, name: str) -> Any:
    return getattr(torch, name)


def _module_dtype(module: Any) -> str:
    for p in module.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return "float32"


def hf_config_maker(cls: type, layout: Layout, attn_implementation: str | None) -> Callable[[Architecture], Any]:
    """How a module class is built: ``cls(cls.config_class(**native))`` when it names a config
    class (Hugging Face; ``attn_implementation`` passed to it), else ``cls(NativeConfig)``."""
    config_class = getattr(cls, "config_class", None)

    def make(arch: Architecture) -> Any:
        native = native_config(layout, arch)
        if config_class is not None and callable(config_class):
            kwargs = {k: v for k, v in native.items() if k != "model_type"}
            if attn_implementation is not None:
                kwargs["attn_implementation"] = attn_implementation
            return cls(config_class(**kwargs))
        if attn_implementation is not None:
            raise ConfigError(f"--attn-implementation {attn_implementation}, but {cls.__name__} has no config_class to pass it to [gptspec verify]")
        return cls(native)

    return make


def factory_maker(factory: Callable[[NativeConfig], Any], layout: Layout) -> Callable[[Architecture], Any]:
    """A factory ``f(config) -> module`` called with the native config."""

    def make(arch: Architecture) -> Any:
        return factory(native_config(layout, arch))

    return make
