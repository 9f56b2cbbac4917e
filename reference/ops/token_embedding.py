"""The token embedding: the one-hot matrix times W_E, multiplied literally."""

from __future__ import annotations

from reference.ops.table import REFERENCE, VJP, Array
from spec.ops import TokenEmbedding


@REFERENCE.implements(TokenEmbedding)
def token_embedding(op: TokenEmbedding, X: Array, W_E: Array) -> Array:  # [T, n_vocab] -> [T, d]
    E = X @ W_E  # E_tj = Σ_v X_tv (W_E)_vj: the one-hot matrix, multiplied literally
    return E


@VJP.implements(TokenEmbedding)
def token_embedding_vjp(op: TokenEmbedding, g: Array, X: Array, W_E: Array) -> dict[str, Array]:  # [T, d] -> …
    gX = g @ W_E.T  # ∂L/∂X_tv = Σ_j g_tj (W_E)_vj
    gW_E = X.T @ g  # ∂L/∂(W_E)_vj = Σ_t X_tv g_tj: the rows of the tokens that occur, summed over their occurrences
    return {"X": gX, "W_E": gW_E}
