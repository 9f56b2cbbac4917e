"""The token embedding: a gather of W_E's rows for one-hot X (proofs/ shows it equals X W_E)."""

from __future__ import annotations

from fast.batch import Batch
from fast.kernels.one_hot import OneHotIds
from fast.kernels.table import KERNELS, Array
from spec.ops import TokenEmbedding


@KERNELS.implements(TokenEmbedding)
def token_embedding(op: TokenEmbedding, batch: Batch, X: OneHotIds | Array, W_E: Array) -> Array:
    if isinstance(X, OneHotIds):
        return W_E[X.ids]  # gather rows: X W_E for one-hot X
    return X @ W_E
