"""Concrete parameters θ ∈ Θ: checking them against an architecture, and drawing random ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from spec.dims import concrete_shape, show
from spec.errors import ConfigError, ShapeError, TokenError
from spec.graph import Architecture

Theta = dict[str, np.ndarray]


class LazyTheta(Mapping[str, np.ndarray]):
    """θ whose entries are made only when read: ``theta[name]`` calls ``load(name)`` every time
    and keeps nothing, so an interpreter that reads an entry when the node using it runs and
    drops it after its last use holds about one block's parameters at a time, whatever the depth
    (how a checkpoint too large for memory in float64 is evaluated: gptspec.checkpoint reads each
    entry from a memory-mapped file; docs/performance.md). ``shapes`` gives every entry's shape
    without loading it; ``nbytes`` is what reading every entry once reads from storage."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], load: Callable[[str], np.ndarray], nbytes: int = 0, where: str = "lazy θ") -> None:
        self.shapes: dict[str, tuple[int, ...]] = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self._load = load
        self.nbytes = nbytes
        self.where = where

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.shapes:
            raise KeyError(name)
        return self._load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __contains__(self, name: object) -> bool:
        return name in self.shapes

    def __repr__(self) -> str:
        return f"LazyTheta({len(self.shapes)} entries, {self.where})"


def entry_shape(theta: Mapping[str, object], name: str) -> tuple[int, ...]:
    """The shape of a θ entry, without loading it when θ is a :class:`LazyTheta`."""
    if isinstance(theta, LazyTheta):
        return theta.shapes[name]
    value: npt.ArrayLike = theta[name]  # type: ignore[assignment]
    return tuple(np.shape(value))


def check_architecture(arch: object, where: str) -> None:
    """``arch`` is a built :class:`~spec.graph.Architecture` (a config, e.g. a GPTConfig, is not:
    the public run and count functions take what ``spec.build(config)`` returns)."""
    if not isinstance(arch, Architecture):
        raise ShapeError(f"architecture of type {type(arch).__name__}, but expected a spec.Architecture [{where}]; build one with spec.build(config)")


def check_theta(arch: Architecture, theta: Mapping[str, np.ndarray], where: str = "θ") -> None:
    """θ is a mapping of every Θ entry (and nothing else) to a real array of its shape; see
    :func:`as_float64` for what an entry may be."""
    check_architecture(arch, where)
    if not isinstance(theta, Mapping):
        raise ShapeError(
            f"θ of type {type(theta).__name__}, but expected a mapping of Θ names to arrays [{where}]; "
            "e.g. spec.theta.random_theta(arch, seed=0)"
        )
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
        got = entry_shape(theta, name)
        if got != want:
            raise ShapeError(
                f"{name} has shape {got}, but the spec expects {show(symbolic)} = {want} [{where}]"
            )


def as_float64(name: str, value: object, where: str, copy: bool = True) -> np.ndarray:
    """A θ entry as a float64 array: real numbers only (bools, complex numbers, strings and
    objects are refused, not converted), every entry finite (NaN or ±∞ parameters define no
    function). ``copy=False`` returns a float64 array as it is (for an entry made fresh by a
    :class:`LazyTheta`, which a copy would only double)."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu" or array.dtype.kind == "b":
        raise ShapeError(
            f"{name} has dtype {array.dtype}, but expected real numbers (a float or integer array) [{where}]"
            + ("; a complex θ would lose its imaginary part" if array.dtype.kind == "c" else "")
        )
    out = array.astype(np.float64, copy=copy)
    if not np.all(np.isfinite(out)):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise ShapeError(f"{name} has {bad} non-finite entries (NaN or ±∞), but expected finite parameters [{where}]")
    return out


def float64_theta(arch: Architecture, theta: Mapping[str, object], where: str = "θ") -> Theta:
    """θ checked (:func:`check_theta`) and every entry as a float64 array (:func:`as_float64`), in
    Θ's order."""
    check_theta(arch, theta, where)  # type: ignore[arg-type]
    return {name: as_float64(name, theta[name], where) for name in arch.theta}


PRESET_STD = 0.2
"""The standard deviation of the θ every tool draws for a preset and a seed (``gptspec forward``,
``generate``, ``score``, ``check``): large enough that attention is far from uniform and every
op's effect shows in the logits, small enough that a 12-layer model stays well conditioned."""


def preset_theta(arch: Architecture, seed: int) -> Theta:
    """The documented θ of a preset and a seed: :func:`random_theta` with std :data:`PRESET_STD`."""
    return random_theta(arch, seed, PRESET_STD)


def random_theta(arch: Architecture, seed: int = 0, std: float = 0.02) -> Theta:
    """A θ with every entry drawn at random (float64): weights N(0, std²), layer-norm gains
    N(1, std²), everything else N(0, std²). Gains and biases are random on purpose, so that a
    swapped γ/β or a dropped bias shows in a comparison."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed={seed!r}, but expected a whole number 0 ≤ seed < 2^63 [random_theta]; numpy's generators take no negative seeds")
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not (std > 0 and np.isfinite(std)):
        raise ConfigError(f"std={std!r}, but expected a finite number > 0 [random_theta]")
    check_architecture(arch, "random_theta")
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
            f"sequence length T={array.size}, but expected T ≤ n_ctx={n_ctx} [{where}]; the model's positions end at n_ctx "
            "(its learned or sinusoidal table has no row for later positions, its rotary scaling is configured for n_ctx): "
            "shorten the sequence or split it"
        )
    return array.astype(np.int64)
