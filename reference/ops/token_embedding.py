"""The token embedding: the one-hot matrix times W_E, multiplied literally."""

from __future__ import annotations

from reference.ops.table import REFERENCE, Array
from spec.ops import TokenEmbedding


@REFERENCE.implements(TokenEmbedding)
def token_embedding(op: TokenEmbedding, X: Array, W_E: Array) -> Array:  # [T, n_vocab] -> [T, d]
    E = X @ W_E  # E_tj = Σ_v X_tv (W_E)_vj: the one-hot matrix, multiplied literally
    return E
