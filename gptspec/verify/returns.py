"""What a target must return, checked by name before anything is judged (docs/verify.md, "What
verify guarantees").

Logits are a real floating-point array (numpy float16/32/64, ml_dtypes bfloat16, or a tensor
converted by its adapter) of exactly the expected shape. Everything else is refused by name —
a list or tuple, complex values (which numpy would cast to their real part with a warning),
integers or booleans, an object array — never converted and judged as if it were logits.
Generated tokens are an integer array (B, n_new).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spec.errors import ConfigError

REAL_KINDS = "f"
"""numpy dtype kinds accepted as logits: real floating point (bfloat16 from ml_dtypes is named)."""


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype.name} array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} (of {len(value)} items)"
    return f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")


def _is_real_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in REAL_KINDS or dtype.name == "bfloat16"


def logits_array(value: Any, label: str, want: tuple[int, ...], what: str = "logits (B, T, n_vocab)") -> np.ndarray:
    """``value`` as float64 logits of shape ``want``, or a ConfigError naming what it is."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple, str, bytes, dict, int, float, complex)) or value is None:
        raise ConfigError(f"{label} returned {_kind(value)}, but expected {what} as a real floating-point array [gptspec verify]")
    elif hasattr(value, "__array__"):  # a JAX or CuPy array, a numpy-like: its own conversion, then the same checks
        try:
            array = np.asarray(value)
        except Exception as error:  # noqa: BLE001 - the object's own conversion failed: refused by name
            raise ConfigError(f"{label} returned {_kind(value)}, which did not convert to an array ({type(error).__name__}: {error}), "
                              f"but expected {what} [gptspec verify]") from None
    else:
        raise ConfigError(f"{label} returned {_kind(value)}, but expected {what} as a real floating-point array [gptspec verify]")
    if not _is_real_float(array.dtype):
        kind = {"c": "complex", "i": "integer", "u": "unsigned integer", "b": "boolean", "O": "object", "U": "string", "S": "bytes"}.get(
            array.dtype.kind, array.dtype.name)
        raise ConfigError(f"{label} returned {kind} values ({array.dtype.name}), but expected {what} as real floating point "
                          "(float16/32/64 or bfloat16) [gptspec verify]; verify does not cast them")
    if array.shape != want:
        raise ConfigError(f"{label} returned logits of shape {array.shape}, but expected {what} = {want} [gptspec verify]")
    return np.array(array, dtype=np.float64)  # a copy: nothing the target keeps can change it later


def tokens_array(value: Any, label: str, want: tuple[int, int]) -> np.ndarray:
    """Generated tokens as an int64 array (B, n_new), or a ConfigError naming what they are."""
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) or not hasattr(value, "__array__"):
            raise ConfigError(f"{label}.generate returned {_kind(value)}, but expected the new tokens as an integer array {want} [gptspec verify]")
        value = np.asarray(value)
    if value.dtype.kind not in "iu":
        raise ConfigError(f"{label}.generate returned {value.dtype.name} values, but expected integer token ids {want} [gptspec verify]")
    if value.shape != want:
        raise ConfigError(f"{label}.generate gave tokens of shape {value.shape}, but expected {want} [gptspec verify]")
    return np.array(value, dtype=np.int64)


def op_array(value: Any, label: str) -> np.ndarray | None:
    """An op's result: None (not implemented separately) or a real floating-point array."""
    if value is None:
        return None
    array = logits_array(value, f"{label}.op", np.shape(value) if isinstance(value, np.ndarray) or hasattr(value, "__array__") else (),
                         "the op's output")
    return array


__all__ = ["logits_array", "op_array", "tokens_array"]
