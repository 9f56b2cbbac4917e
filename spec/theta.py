"""Concrete parameters θ ∈ Θ: checking them against an architecture, and drawing random ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from spec.dims import concrete_shape, show
from spec.errors import ShapeError, TokenError
from spec.graph import Architecture

Theta = dict[str, np.ndarray]


def check_theta(arch: Architecture, theta: Mapping[str, np.ndarray], where: str = "θ") -> None:
    """Every Θ entry is present with its shape, and nothing else is there."""
    missing = [name for name in arch.theta if name not in theta]
    if missing:
        raise ShapeError(
            f"parameters {missing[:5]}{' …' if len(missing) > 5 else ''} are missing, but expected "
            f"every Θ entry of {arch.name} [{where}]; supply them (random_theta draws a full θ)"
        )
    extra = [name for name in theta if name not in arch.theta]
    if extra:
        raise ShapeError(
            f"parameters {extra[:5]} are not in Θ, but expected only Θ's names [{where}]; "
            "remove them or check the names (spec names, e.g. blocks.0.attn.W_Q)"
        )
    for name, symbolic in arch.theta.items():
        want = concrete_shape(symbolic, arch.dims)
        got = tuple(np.shape(theta[name]))
        if got != want:
            raise ShapeError(
                f"{name} has shape {got}, but the spec expects {show(symbolic)} = {want} [{where}]"
            )


def random_theta(arch: Architecture, seed: int = 0, std: float = 0.02) -> Theta:
    """A θ with every entry drawn at random (float64): weights N(0, std²), layer-norm gains
    N(1, std²), everything else N(0, std²). Gains and biases are random on purpose, so that a
    swapped γ/β or a dropped bias shows in a comparison."""
    rng = np.random.default_rng(seed)
    theta: Theta = {}
    for name, shape in arch.theta_shapes().items():
        sample = rng.normal(0.0, std, size=shape)
        theta[name] = 1.0 + sample if name.endswith(".gamma") else sample
    return theta


def token_array(ids: Sequence[int] | npt.ArrayLike, n_vocab: int, n_ctx: int | None, where: str) -> npt.NDArray[np.int64]:
    """Token ids as an int64 vector, refusing what the spec does not define: an id outside
    [0, n_vocab), a sequence longer than n_ctx, anything that is not a 1-D sequence of whole
    numbers. The empty sequence is defined."""
    array = np.asarray(ids)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TokenError(
            f"token ids of shape {array.shape} and dtype {array.dtype}, but expected a 1-D sequence "
            f"of whole numbers [{where}]"
        )
    bad = np.flatnonzero((array < 0) | (array >= n_vocab))
    if bad.size:
        t = int(bad[0])
        raise TokenError(
            f"token id at position {t} is {int(array[t])}, but expected 0 ≤ id < n_vocab={n_vocab} "
            f"[{where}]" + (f" ({bad.size} ids out of range)" if bad.size > 1 else "")
            + "; the vocabulary defines no other ids"
        )
    if n_ctx is not None and array.size > n_ctx:
        raise TokenError(
            f"sequence length T={array.size}, but expected T ≤ n_ctx={n_ctx} [{where}]; the learned "
            "positional table has no row for later positions: shorten the sequence or split it"
        )
    return array.astype(np.int64)
