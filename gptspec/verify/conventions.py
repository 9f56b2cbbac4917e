"""What padded positions must hold: the empty-row conventions (docs/verify.md, docs/conventions.md).

The spec's function takes one sequence; a padded batch is a calling convention. Each real
position of a padded row is judged against the reference on the row's real tokens. A padded
position has no value in the spec: the query there has no allowed key (left padding) or reads
padding it should not exist for, and implementations differ on what such a row gives —
docs/conventions.md, "Masked softmax". The convention says what is required of it:

- ``zero``: exactly 0 — the spec's rule that a query with no allowed key gives 0, applied to
  the whole padded position (gptspec's own fast/ zeroes padded positions' logits);
- ``uniform``: Hugging Face's finite-mask behaviour: a masked softmax row with no allowed key is
  1/S on every key (judged where attention weights are seen: the ``masked_softmax`` op of an
  Implementation); at the logits, padded positions must be finite;
- ``any-finite``: padded positions must be finite (no NaN or ±∞), whatever their values;
- ``ignore``: padded positions are not judged at all.

The default, ``any-finite``, is what real Hugging Face GPT-2 meets in eager and sdpa attention
and all four dtypes (its padded positions are finite values of the padding tokens); it still
catches a NaN that an additive −∞ mask leaves on an empty row.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from spec.errors import ConfigError

EmptyRows = Literal["zero", "uniform", "any-finite", "ignore"]
CONVENTIONS: tuple[str, ...] = get_args(EmptyRows)
DEFAULT_EMPTY_ROWS: EmptyRows = "any-finite"

DESCRIPTIONS: dict[str, str] = {
    "zero": "padded positions must be exactly 0 (the spec: a query with no allowed key gives 0)",
    "uniform": "padded positions must be finite; a softmax row with no allowed key must be 1/S on every key (Hugging Face's finite mask)",
    "any-finite": "padded positions must be finite (their values are not defined by the spec)",
    "ignore": "padded positions are not judged",
}


def check_convention(name: object) -> EmptyRows:
    """``name`` as a convention, or a ConfigError listing them."""
    if name not in CONVENTIONS:
        raise ConfigError(f"empty_rows={name!r}, but expected one of {list(CONVENTIONS)} [verify conventions]; see docs/verify.md")
    return name  # type: ignore[return-value]


def padded_violation(values: np.ndarray, convention: EmptyRows) -> tuple[float, str] | None:
    """``None`` if the padded positions ``values`` meet ``convention``; else (the worst
    offending magnitude, a message)."""
    if convention == "ignore" or values.size == 0:
        return None
    finite = np.isfinite(values)
    if not finite.all():
        return float("inf"), f"a padded position holds {int(values.size - finite.sum())} non-finite values (convention {convention}: {DESCRIPTIONS[convention]})"
    if convention == "zero" and np.any(values != 0):
        return float(np.max(np.abs(values))), f"a padded position is not 0 (convention zero: {DESCRIPTIONS['zero']})"
    return None


def empty_softmax_rows(rows: np.ndarray, convention: EmptyRows, u: float) -> tuple[float, str] | None:
    """Judge masked-softmax rows with no allowed key (``rows``: (n, S)) by ``convention``, for
    an implementation whose unit roundoff is ``u``; ``None`` if they meet it. ``zero`` wants
    exactly 0; ``uniform`` wants 1/S up to a few roundings (4·S·u relative)."""
    if convention == "ignore" or rows.size == 0:
        return None
    if not np.isfinite(rows).all():
        return float("inf"), f"a softmax row with no allowed key is not finite (convention {convention}: {DESCRIPTIONS[convention]})"
    S = rows.shape[-1]
    if convention == "zero" and np.any(rows != 0):
        return float(np.max(np.abs(rows))), "a softmax row with no allowed key is not 0 (convention zero)"
    if convention == "uniform":
        err = float(np.max(np.abs(rows - 1.0 / S)))
        if err > 4 * S * u / S:
            return err, f"a softmax row with no allowed key is not 1/S = {1.0 / S:.6g} on every key (convention uniform)"
    return None
