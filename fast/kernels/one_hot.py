"""The one-hot matrix, never built: kept as its ids (:class:`OneHotIds`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from fast.kernels.table import KERNELS, Array
from spec.ops import OneHot


@dataclass(frozen=True)
class OneHotIds:
    """The one-hot matrix X ∈ {0,1}^{B×T×n_vocab}, kept as its ids."""

    ids: npt.NDArray[np.int64]
    n_vocab: int

    def materialize(self, dtype: npt.DTypeLike) -> Array:
        X = np.zeros((*self.ids.shape, self.n_vocab), dtype=dtype)
        np.put_along_axis(X, self.ids[..., None], 1, axis=-1)
        return X


@KERNELS.implements(OneHot)
def one_hot(op: OneHot, batch: Batch, ids: npt.NDArray[np.int64]) -> OneHotIds:
    return OneHotIds(ids, int(op.n_vocab))
