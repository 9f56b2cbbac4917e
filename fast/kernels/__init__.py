"""Batched kernels, one per primitive op ``kind`` (the same names as spec/ and reference/), in a
module named as the op's module in spec/ops/. Every affine map is one GEMM over all B·T rows; the
one-hot matrix is never built (``one_hot`` returns the ids and ``token_embedding`` gathers rows of
W_E, which proofs/ shows equals the literal product).

Importing this package registers every kernel in :data:`KERNELS`.
"""

from fast.kernels.attention import allowed, attention_mask, softmax_rows
from fast.kernels.one_hot import OneHotIds
from fast.kernels.table import KERNELS, Array, by_rows
from spec.ops import import_all

import_all(__name__)  # every kernel module, one per module of spec/ops/ (spec.ops.MODULES)

__all__ = ["KERNELS", "Array", "OneHotIds", "allowed", "attention_mask", "by_rows", "softmax_rows"]
