"""A batch of sequences as fast/ sees it: token ids (B, T), which positions are real, and the
position id of every row; in incremental decoding, also the positions of every cached key."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from spec.errors import TokenError

Bool = npt.NDArray[np.bool_]
Int = npt.NDArray[np.int64]


@dataclass
class Batch:
    """Query rows (this call's rows) and key rows (every row attention may read: the cached
    ones, then this call's)."""

    positions: Int  # (B, T) position id of each query row
    valid: Bool  # (B, T) True where the row is a real token (not padding)
    key_positions: Int  # (B, S)
    key_valid: Bool  # (B, S)
    cache: dict[tuple[str, str], np.ndarray] | None = field(default=None)
    """Non-row-wise inputs and fused K/V, kept across calls when decoding incrementally."""


def positions_from_valid(valid: Bool, start: Int | None = None) -> Int:
    """Position ids counting real tokens only: left padding shifts them, right padding does not.
    Padded rows get the position of the last real row before them (or ``start``), never used."""
    first = np.zeros(valid.shape[0], dtype=np.int64) if start is None else start
    counts = np.cumsum(valid, axis=1, dtype=np.int64) - 1
    return np.maximum(counts, 0) + first[:, None]


def check_ids(ids: npt.ArrayLike, valid: Bool | None, n_vocab: int, where: str) -> tuple[Int, Bool]:
    """Token ids (B, T) and the valid mask, refusing ids outside [0, n_vocab) at real positions
    (padded positions may hold anything)."""
    array = np.asarray(ids)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise TokenError(
            f"token ids of shape {array.shape} and dtype {array.dtype}, but expected a (B, T) array of "
            f"whole numbers [{where}]"
        )
    mask = np.ones(array.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if mask.shape != array.shape:
        raise TokenError(f"valid mask of shape {mask.shape}, but expected the ids' shape {array.shape} [{where}]")
    bad = np.argwhere(mask & ((array < 0) | (array >= n_vocab)))
    if bad.size:
        b, t = (int(i) for i in bad[0])
        raise TokenError(
            f"token id at row {b}, position {t} is {int(array[b, t])}, but expected 0 ≤ id < "
            f"n_vocab={n_vocab} [{where}]; the vocabulary defines no other ids"
        )
    return np.where(mask, array, 0).astype(np.int64), mask
