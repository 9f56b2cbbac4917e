"""A ``torch.nn.Module`` as an implementation under test (docs/verify.md, "Target kinds").

The module — built from the layout's native config by a class or a factory, or given as an
instance — is loaded with the verifier's θ through ``load_state_dict`` (θ exported under the
layout's names, rounded to the module's dtype) and called in eval mode as

    module(input_ids=ids, attention_mask=mask[, position_ids=positions][, use_cache=False])

(keywords its ``forward`` accepts), or by the other conventions gptspec/verify/calling.py detects
from the signature — ids positionally with a mask by its keyword, ids only (then judged on unpadded
batches), Meta's ``start_pos``; the mask is never passed positionally. Position ids,
when ``forward`` takes them, are each real token's index among the row's real tokens (the
spec's positions: left padding does not shift them), 0 on padded slots. The logits are the
output itself, its ``.logits``, its ``["logits"]`` or its first element; a module returning
the last position's logits only is called once per prefix.

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
from gptspec.verify.calling import Calling, detect, generate_note, hf_generate, logits_of, with_last_only
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
            "install the torch extra: pip install 'gptspec[torch]' (from a clone: pip install '.[torch]'; README, \"Install\"), "
            "or verify a plain callable over a state dict"
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
    tensors: dict[str, Any]  # θ as the module's tensors, loaded again before every call


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
        self._callings: dict[int, Calling] = {}
        self._held: dict[int, set[str]] = {}
        self._probed: set[int] = set()

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
            meta = next((name for name, p in module.named_parameters() if p.is_meta), None)
            if meta is not None:
                raise ConfigError(f"{self.label} parameter {meta} is on the meta device, but expected a module with real storage to load θ into "
                                  "[gptspec verify]; build it on the CPU (or call .to_empty(device='cpu') first)")
            module.eval()
            if len(self._modules) > 8:
                self._modules.clear()
                self._loaded.clear()
                for by_id in (self._names, self._callings, self._held):  # keyed by id(module): a new module may reuse a freed id
                    by_id.clear()
                self._probed.clear()
            self._modules[key] = module.to(_TORCH_DTYPE(self.torch, self.dtype))
        return self._modules[key]

    def load(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> Any:
        """The module for ``arch`` holding θ (rounded to the dtype); reloaded only when another θ
        was loaded since."""
        module = self.module_for(arch)
        current = self._loaded.get(id(module))
        if current is not None and current.theta is theta:
            with self.torch.no_grad():  # θ loaded again for every call: what a call wrote into the module's parameters never reaches the next
                module.load_state_dict(current.tensors, strict=False)
            return module
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
        own = module.state_dict()
        for name in self._held.get(id(module), ()):  # parameters the spec lacks, held at 0 (gptspec/verify/layouts.py)
            tensors[name] = torch.zeros_like(own[name])
        with torch.no_grad():
            missing, unexpected = module.load_state_dict(tensors, strict=False)
        missing = [m for m in missing if m not in extra]
        if missing or unexpected:
            raise ConfigError(
                f"{self.label} did not take θ: missing {missing[:4]}, unexpected {list(unexpected)[:4]}, but expected every parameter "
                f"named by layout {self.layout.name} [gptspec verify]"
            )
        self._loaded[id(module)] = Loaded(module, theta, tensors)
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
        from gptspec.checkpoint.layout import _matches
        from gptspec.verify.layouts import held_at_zero

        held = {p for p in params if any(b.check is held_at_zero and _matches(b.external, p) for b in self.layout.buffers)}
        self._held[cache_key] = held
        params -= held
        buffers |= held
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

    def calling(self, module: Any) -> Calling:
        """How ``module`` is called (gptspec/verify/calling.py), detected once per module."""
        key = id(module)
        if key not in self._callings:
            self._callings[key] = detect(module)
        return self._callings[key]

    def takes_mask(self, arch: Architecture) -> bool:
        """Whether the module takes an attention mask (else it is judged on unpadded batches)."""
        return self.calling(self.module_for(arch)).takes_mask

    def can_pad(self, arch: Architecture) -> bool:
        """The Implementation protocol's name for :meth:`takes_mask` (forwarded to an isolated child)."""
        return self.takes_mask(arch)

    def conventions(self, arch: Architecture) -> list[str]:
        """How the module was built and is called, for the report's header."""
        module = self.module_for(arch)
        self._naming(arch, module)  # finds the parameters held at 0
        self._probe(module, arch)
        log = getattr(self.make, "log", None)
        lines = [log[-1].describe()] if log else []
        lines.append(self.calling(module).describe())
        note = generate_note(module)
        if note:
            lines.append(note)
        held = sorted(self._held.get(id(module), ()))
        if held:
            lines.append(f"{held} held at 0: parameters the spec's model does not have")
        return lines

    def _probe(self, module: Any, arch: Architecture) -> None:
        """One call on two ids with the module's own weights, to learn its output convention (the
        last position only) before the run, so the report's header can say it. A module that
        raises here is left to the run, which reports it."""
        if id(module) in self._probed or arch.dim("n_ctx") < 2:
            return
        self._probed.add(id(module))
        ids = np.zeros((1, 2), dtype=np.int64)
        valid = np.ones((1, 2), dtype=bool)
        calling = self.calling(module)
        try:
            value = logits_of(self._call(module, ids, valid, positions(valid)), self.torch, self.label)
        except Exception:  # noqa: BLE001 - a diagnosis only
            return
        if tuple(value.shape[:2]) == (1, 1):
            self._callings[id(module)] = with_last_only(calling)

    def _call(self, module: Any, ids: np.ndarray, mask: np.ndarray, pos: np.ndarray, start: int = 0, **extra: Any) -> Any:
        torch = self.torch
        calling = self.calling(module)
        t_ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        t_mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))
        t_pos = torch.from_numpy(np.ascontiguousarray(pos, dtype=np.int64))
        with torch.no_grad(), one_thread(torch):
            return calling.call(module, t_ids, t_mask, t_pos, start, **extra)

    def _logits(self, out: Any, shape: tuple[int, int], arch: Architecture) -> np.ndarray:
        value = logits_of(out, self.torch, self.label)
        if not value.is_floating_point():  # complex, integer or boolean logits are refused by name, never cast
            raise ConfigError(f"{self.label} returned {str(value.dtype).removeprefix('torch.')} logits, but expected real floating point "
                              "(float16/32/64 or bfloat16) [gptspec verify]; verify does not cast them")
        array: np.ndarray = value.detach().to(self.torch.float64).cpu().numpy()
        want = (*shape, arch.dim("n_vocab"))
        if array.shape != want:
            raise ConfigError(f"{self.label} returned logits of shape {array.shape}, but expected (B, T, n_vocab) = {want} [gptspec verify]")
        return array

    def model(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> np.ndarray:
        module = self.load(arch, theta)
        calling = self.calling(module)
        self._unpadded_only(calling, valid)
        B, T = ids.shape
        if calling.last_only:
            return self._by_prefixes(module, arch, ids, valid)
        out = self._call(module, ids, valid, positions(valid))
        value = logits_of(out, self.torch, self.label)
        if T > 1 and tuple(value.shape[:2]) == (B, 1):
            self._callings[id(module)] = with_last_only(calling)  # nanoGPT at inference: the last position only
            return self._by_prefixes(module, arch, ids, valid)
        return self._logits(out, (B, T), arch)

    def _unpadded_only(self, calling: Calling, valid: npt.NDArray[np.bool_]) -> None:
        if not calling.takes_mask and not valid.all():
            raise ConfigError(f"{self.label} takes no attention mask, but was given a padded batch [gptspec verify]; a target without a "
                              "mask is judged on unpadded batches only")

    def _by_prefixes(self, module: Any, arch: Architecture, ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]) -> np.ndarray:
        """Every position's logits of a module that returns the last one's only: one call per prefix."""
        pos = positions(valid)
        steps = [self._logits(self._call(module, ids[:, : t + 1], valid[:, : t + 1], pos[:, : t + 1]), (ids.shape[0], 1), arch)
                 for t in range(ids.shape[1])]
        return np.concatenate(steps, axis=1)

    # -- incremental decoding ---------------------------------------------------------------

    def _cache_keyword(self, arch: Architecture) -> str | None:
        accepts = self._accepts(self.module_for(arch))
        for name in ("past_key_values", "cache"):
            if name in accepts and "use_cache" in accepts:
                return name
        return None

    def can_decode(self, arch: Architecture) -> bool:
        return self._cache_keyword(arch) is not None or self.calling(self.module_for(arch)).start_pos is not None

    def decode(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], prefix: int
    ) -> np.ndarray:
        keyword = self._cache_keyword(arch)
        if keyword is None and self.calling(self.module_for(arch)).start_pos is not None:
            return self._decode_from(arch, theta, ids, valid, prefix)
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
            given: dict[str, Any] = {str(keyword): cache}
            out = self._call(module, ids[:, t : t + 1], valid[:, : t + 1], pos[:, t : t + 1], use_cache=True, **given)
            steps.append(self._logits(out, (ids.shape[0], 1), arch))
            cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None) or cache
        return np.concatenate(steps, axis=1)

    def _decode_from(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], prefix: int
    ) -> np.ndarray:
        """Meta's convention: the module keeps its own cache; the prefix is run at start_pos 0,
        then each position t alone at start_pos t."""
        module = self.load(arch, theta)
        self._unpadded_only(self.calling(module), valid)
        pos = positions(valid)
        steps = [self._logits(self._call(module, ids[:, :prefix], valid[:, :prefix], pos[:, :prefix], 0), (ids.shape[0], prefix), arch)]
        for t in range(prefix, ids.shape[1]):
            steps.append(self._logits(self._call(module, ids[:, t : t + 1], valid[:, t : t + 1], pos[:, t : t + 1], t), (ids.shape[0], 1), arch))
        return np.concatenate(steps, axis=1)

    # -- greedy generation ----------------------------------------------------------------

    def can_generate(self, arch: Architecture) -> bool:
        """A ``generate`` taking Hugging Face's keywords; any other is not driven (argmax of the
        logits is judged instead, and the report says so: calling.generate_note)."""
        return hf_generate(self.module_for(arch))

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
        (DAG node path, "output" or "input", array (B, T, …)) for each hooked module found; when
        the module raises inside a hooked module, what was seen until then and (that module's
        path, "raised", zeros (B, T))."""
        module = self.load(arch, theta)
        self._probe(module, arch)  # a module returning the last position only is hooked on one whole call
        module = self.load(arch, theta)  # θ again: the probe ran the module
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
                        array = value.detach().to(torch.float64).cpu().numpy()
                        records.setdefault((path, what), []).append(aligned(array, call[0], call[1]) if call else array)

            def enter(_m: Any, _args: Any, path: str = path) -> None:
                running.append(path)

            def leave(_m: Any, _args: Any, _out: Any, path: str = path) -> None:
                if running and running[-1] == path:
                    running.pop()

            hooks.append(found.register_forward_pre_hook(enter))
            hooks.append(found.register_forward_hook(leave))
            hooks.append(found.register_forward_hook(hook, with_kwargs=True))
        running: list[str] = []  # the hooked modules in progress, innermost last: where an exception was raised
        raised_in: list[str] = []
        call: list[int] = []  # (B, T) of the forward call in progress: what every hooked value is aligned to

        def root(_m: Any, args: Any, kwargs: Any) -> None:
            ids_ = first_tensor(list(args) + list(kwargs.values()))
            call[:] = list(ids_.shape[:2]) if ids_ is not None and ids_.ndim == 2 else []

        hooks.append(module.register_forward_pre_hook(root, with_kwargs=True))
        try:
            if prefix is None and self.calling(module).last_only:
                self._call(module, ids, valid, positions(valid))  # one call: the intermediates hold every position (the logits only the last)
            elif prefix is None:
                self.model(arch, theta, ids, valid)
            else:
                self.decode(arch, theta, ids, valid, prefix)
        except Exception:
            if not running:
                raise
            raised_in.append(running[-1])  # the innermost hooked module it raised in: reported as ("path", "raised", …)
        finally:
            for h in hooks:
                h.remove()
        out: list[tuple[str, str, np.ndarray]] = []
        B, T = ids.shape
        for (path, what), parts in records.items():
            try:
                joined = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            except ValueError:
                continue
            if joined.ndim >= 2 and joined.shape[:2] == (B, T):
                out.append((path, what, joined))
        out += [(path, "raised", np.zeros((B, T))) for path in raised_in]
        return out


def aligned(array: np.ndarray, B: int, T: int) -> np.ndarray:
    """A hooked value as (B, T, …) for a call on (B, T) ids: a value computed once for the batch
    ((T, …), as nanoGPT's ``wpe(arange(T))``, or (1, T, …)) stands for every row; extra leading
    axes of size 1 are dropped. Anything else is returned as it is (and not compared)."""
    out = array
    while out.ndim > 2 and out.shape[:2] != (B, T) and out.shape[0] == 1 and out.shape[1:3] in ((B, T), (1, T)):
        out = out[0]  # (1, B, T, …) → (B, T, …)
    if out.ndim >= 2 and out.shape[:2] == (B, T):
        return out
    if out.ndim >= 2 and out.shape[:2] == (1, T):
        return np.broadcast_to(out, (B, *out.shape[1:]))
    if out.ndim >= 1 and out.shape[0] == T:
        return np.broadcast_to(out, (B, *out.shape))
    return array


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
    class (Hugging Face; ``attn_implementation`` passed to it); else from its own config type
    (gptspec/verify/infer.py: a dataclass, ``get_default_config()``, keywords); else
    ``cls(NativeConfig)``. ``make.log`` records how each build went, for the report."""
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
        from gptspec.verify.infer import Built, build_own

        built = build_own(cls, arch.config)  # its own config type (gptspec/verify/infer.py), when it declares one
        if built is None:
            make.log.append(Built("built with the layout's native config as a dict (no config type of its own found)"))  # type: ignore[attr-defined]
            return cls(native)
        make.log.append(built[1])  # type: ignore[attr-defined]
        return built[0]

    make.log = []  # type: ignore[attr-defined]
    return make


def factory_maker(factory: Callable[[NativeConfig], Any], layout: Layout) -> Callable[[Architecture], Any]:
    """A factory ``f(config) -> module`` called with the native config."""

    def make(arch: Architecture) -> Any:
        return factory(native_config(layout, arch))

    return make
