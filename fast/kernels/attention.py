"""Attention's primitives run op by op (the fused path is fast/attention.py), and the masks
they share with it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from fast.kernels.softcap import soft_cap
from fast.kernels.table import KERNELS, Array
from spec.errors import ShapeError
from spec.masks import Relation
from spec.ops import AttentionScores, ConcatHeads, MaskedSoftmax, WeightedSum


def allowed(relation: Relation, q_pos: npt.NDArray[np.int64], k_pos: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """The (B, T, S) allowed matrix of a relation, by position ids (not array indices): the
    relation answers it itself (``Relation.allowed_array``)."""
    return relation.allowed_array(q_pos[:, :, None], k_pos[:, None, :])


def attention_mask(relation: Relation, batch: Batch) -> npt.NDArray[np.bool_]:
    """Allowed and real: the mask's relation, the keys that are not padding, and only real
    query rows (a padded query row has no allowed key, so its output is 0)."""
    return allowed(relation, batch.positions, batch.key_positions) & batch.key_valid[:, None, :] & batch.valid[:, :, None]


@KERNELS.implements(AttentionScores)
def attention_scores(op: AttentionScores, batch: Batch, Q: Array, K: Array) -> Array:
    scores: Array = (Q @ K.swapaxes(-1, -2)) * Q.dtype.type(float(op.scale))
    if op.softcap is not None:
        scores = soft_cap(scores, op.softcap)
    return scores


def softmax_rows(x: Array, mask: npt.NDArray[np.bool_]) -> Array:
    """The masked softmax of docs/conventions.md along the last axis: stable (subtract the row max over the
    allowed set), exactly 0 outside the set, and a row with no allowed entry all zeros."""
    m = np.max(np.where(mask, x, -np.inf), axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(mask, np.exp(np.where(mask, x - m, 0)), 0)
    Z = e.sum(axis=-1, keepdims=True)
    y: Array = np.divide(e, Z, out=np.zeros_like(e), where=Z > 0)
    return y


@KERNELS.implements(MaskedSoftmax)
def masked_softmax(op: MaskedSoftmax, batch: Batch, x: Array) -> Array:
    if x.shape[1:] != (batch.positions.shape[1], batch.key_positions.shape[1]):
        raise ShapeError(
            f"scores of shape {x.shape}, but expected (B, T, S) = (B, {batch.positions.shape[1]}, "
            f"{batch.key_positions.shape[1]}) [fast masked_softmax]; fast/ runs self-attention only so far"
        )
    return softmax_rows(x, attention_mask(op.mask, batch))


@KERNELS.implements(WeightedSum)
def weighted_sum(op: WeightedSum, batch: Batch, A: Array, V: Array) -> Array:
    return A @ V


@KERNELS.implements(ConcatHeads)
def concat_heads(op: ConcatHeads, batch: Batch, **z: Array) -> Array:
    return np.concatenate([z[f"z_{h}"] for h in range(op.n_heads)], axis=-1)
