"""Calling conventions of torch modules: how ``forward`` is called and its logits read
(docs/verify.md, "Calling conventions"). Detected from signatures, never guessed from position:

- **Hugging Face**: ``forward(input_ids=…, attention_mask=…[, position_ids=…][, use_cache=False])``;
- **ids and a mask**: the first positional parameter takes the ids, a parameter named as in
  :data:`MASK_NAMES` the mask (1 on real tokens), by keyword (TransformerLens's
  ``forward(input, …, attention_mask=None)``);
- **ids only**: no parameter is a mask (nanoGPT's ``forward(idx, targets=None)``: ``targets`` is
  never given anything). Such a target is judged on unpadded batches; its padded component is
  ``not run: the target takes no attention mask``;
- **ids and a start position** (Meta's ``forward(tokens, start_pos)``): 0 for the whole
  sequence; incremental decoding prefills then calls with ``start_pos = t``, the module keeping
  its own cache.

Outputs: a tensor, an object with ``.logits``, a dict with ``"logits"``, or a tuple/list whose
first element is the logits (nanoGPT's ``(logits, loss)``). A module that returns only the last
position's logits (B, 1, V) for T > 1 is judged at every position by feeding it each prefix.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any

from spec.errors import ConfigError

MASK_NAMES = ("attention_mask", "attn_mask", "padding_mask", "input_mask")
"""Parameter names read as a (B, T) mask with 1 (or True) on real tokens. A bare ``mask`` is not
one of them: codebases use that name for additive (T, T) causal masks too."""

START_NAMES = ("start_pos",)
"""Parameter names read as the position of the first id (Meta's KV-cache convention)."""

HF_GENERATE = ("max_new_tokens", "do_sample")
"""Keywords a Hugging Face-style ``generate`` takes (by name or through ``**kwargs``)."""


@dataclass(frozen=True)
class Calling:
    """How a module's forward is called."""

    signature: str
    hf: bool = False
    ids: str | None = None
    mask: str | None = None
    positions: str | None = None
    start_pos: str | None = None
    use_cache: bool = False
    last_only: bool = False
    """Set once a call returned (B, 1, V) for T > 1: logits of the last position only."""

    @property
    def takes_mask(self) -> bool:
        return self.hf or self.mask is not None

    def call(self, module: Any, t_ids: Any, t_mask: Any, t_pos: Any, start: int = 0, **extra: Any) -> Any:
        if self.hf:
            kwargs: dict[str, Any] = {"input_ids": t_ids, "attention_mask": t_mask}
            if self.positions:
                kwargs[self.positions] = t_pos
            if self.use_cache:
                kwargs["use_cache"] = bool(extra.pop("use_cache", False))
            kwargs.update(extra)
            return module(**kwargs)
        kwargs = {}
        if self.mask is not None:
            kwargs[self.mask] = t_mask
            if self.positions:
                kwargs[self.positions] = t_pos
        if self.start_pos is not None:
            kwargs[self.start_pos] = start
        return module(t_ids, **kwargs)

    def describe(self) -> str:
        if self.hf:
            how = "ids and mask by keyword (Hugging Face: input_ids, attention_mask" + (", position_ids" if self.positions else "") + ")"
        elif self.mask is not None:
            how = f"ids positionally, the mask by keyword {self.mask}" + (f", positions by keyword {self.positions}" if self.positions else "")
        else:
            how = "ids only (no parameter is an attention mask: judged on unpadded batches)"
        if self.start_pos is not None:
            how += f"; {self.start_pos}=0 for a whole sequence, decoding by its own cache at {self.start_pos}=t"
        if self.last_only:
            how += "; it returns the last position's logits only: every position is judged by feeding each prefix (T calls per batch)"
        return f"forward{_short(self.signature)}: {how}"


def _short(signature: str, most: int = 80) -> str:
    """A signature as written, or its parameter names when that is long (Hugging Face's)."""
    if len(signature) <= most:
        return signature
    names = [part.split(":")[0].split("=")[0].strip() for part in signature.strip("()").split(", ")]
    names = [n for n in names if n and n.isidentifier() or n.startswith("*")]
    return "(" + ", ".join(names[:6]) + (", …" if len(names) > 6 else "") + ")"


def detect(module: Any) -> Calling:
    """The calling convention of ``module.forward`` (module docstring)."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return Calling("(…)", ids="ids")
    params = signature.parameters
    shown = str(signature)
    if "input_ids" in params and "attention_mask" in params:
        return Calling(shown, hf=True, ids="input_ids", mask="attention_mask",
                       positions="position_ids" if "position_ids" in params else None, use_cache="use_cache" in params)
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise ConfigError(f"forward{shown} takes no positional parameter, but expected the ids as its first one [gptspec verify]; wrap it in a factory")
    mask = next((n for n in MASK_NAMES if n in params and n != positional[0].name), None)
    start = next((n for n in START_NAMES if n in params), None)
    required = [p.name for p in positional[1:] if p.default is p.empty and p.name not in (mask, start)]
    required += [p.name for p in params.values() if p.kind == p.KEYWORD_ONLY and p.default is p.empty and p.name not in (mask, start)]
    if required:
        raise ConfigError(
            f"forward{shown} requires {required}, but expected only ids (and optionally {list(MASK_NAMES)} or {list(START_NAMES)}) "
            "[gptspec verify]; pass a factory returning a module whose forward takes the ids (docs/verify.md, 'Calling conventions')"
        )
    return Calling(shown, ids=positional[0].name, mask=mask, start_pos=start,
                   positions="position_ids" if mask is not None and "position_ids" in params else None)


def with_last_only(calling: Calling) -> Calling:
    return replace(calling, last_only=True)


def logits_of(out: Any, torch: Any, label: str) -> Any:
    """The logits tensor of a forward's output (module docstring), or a ConfigError naming what came back."""
    value = getattr(out, "logits", None)
    if value is None and isinstance(out, dict):
        value = out.get("logits")
    if value is None:
        value = out[0] if isinstance(out, (tuple, list)) and out else out
    if not isinstance(value, torch.Tensor):
        raise ConfigError(
            f"{label} returned {type(out).__name__}, but expected logits as a tensor, an output with .logits, a dict with 'logits' "
            "or a tuple whose first element is the logits [gptspec verify]"
        )
    return value


def hf_generate(module: Any) -> bool:
    """Whether ``module.generate`` takes Hugging Face's keywords (else verify uses argmax of the
    logits and says so)."""
    generate = getattr(module, "generate", None)
    if not callable(generate):
        return False
    try:
        params = inspect.signature(generate).parameters
    except (TypeError, ValueError):
        return False
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    return all(k in params or var_kw for k in HF_GENERATE) and ("input_ids" in params or "inputs" in params or var_kw)


def generate_note(module: Any) -> str | None:
    """What the report says about a module's own ``generate`` that verify does not drive."""
    generate = getattr(module, "generate", None)
    if not callable(generate) or hf_generate(module):
        return None
    try:
        shown = str(inspect.signature(generate))
    except (TypeError, ValueError):
        shown = "(…)"
    return (f"its generate{shown} does not take Hugging Face's keywords (max_new_tokens, do_sample); greedy generation is judged "
            "as argmax of its logits instead")


__all__ = ["MASK_NAMES", "START_NAMES", "Calling", "detect", "generate_note", "hf_generate", "logits_of", "unpadded", "with_last_only"]


def unpadded(case: Any) -> Any:
    """The case with padding removed, for a target that takes no mask: its non-empty rows, each
    cut to the shortest one's length (every row a prefix of its real tokens)."""
    rows = [row for row in case.batch.tokens if row]
    if not rows:
        return None
    width = min(len(row) for row in rows)
    batch = replace(case.batch, tokens=tuple(row[:width] for row in rows), left_padded=(False,) * len(rows), width=width)
    return replace(case, batch=batch)
