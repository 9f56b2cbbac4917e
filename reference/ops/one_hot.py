"""The one-hot encoding, literally."""

from __future__ import annotations

import numpy as np

from reference.ops.table import REFERENCE, VJP, Array, Ids
from spec.ops import OneHot
from spec.theta import token_array


@REFERENCE.implements(OneHot)
def one_hot(op: OneHot, ids: Ids) -> Array:  # [T] -> [T, n_vocab]
    n_vocab = int(op.n_vocab)
    ids = token_array(ids, n_vocab, None, "one_hot")
    X = np.zeros((len(ids), n_vocab))
    for t, v in enumerate(ids):
        X[t, v] = 1.0  # X_tv = [ids_t = v]
    return X


@VJP.implements(OneHot)
def one_hot_vjp(op: OneHot, g: Array, ids: Ids) -> dict[str, Array]:  # [T, n_vocab] -> nothing
    return {}  # token ids are not real numbers: they have no cotangent
