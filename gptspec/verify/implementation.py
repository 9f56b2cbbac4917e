"""The implementation-under-test interface, and gptspec's own fast/ as its first customer.

An implementation is judged op by op and as a whole model, over numpy arrays. Anything with
this shape can be verified — a PyTorch module behind a small adapter, a JAX function, a CUDA
kernel's Python binding:

- ``op(op, inputs, params)``: one primitive on one sequence (inputs shaped as the spec types
  say, e.g. (T, d_model)); return ``None`` for ops it does not implement separately;
- ``model(arch, theta, ids, valid)``: logits (B, T, n_vocab) for a padded batch (ids (B, T),
  valid (B, T) marking real tokens); padded rows are not compared except that they must be
  finite;
- optionally ``decode(arch, theta, ids, valid, prefix)``: logits of the same batch computed
  by prefilling ``prefix`` positions and then decoding one position at a time (a KV cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from spec.graph import Architecture
from spec.op import Primitive


class Implementation(Protocol):
    """What the verification engine calls."""

    name: str
    dtype: np.dtype[Any]

    def op(self, op: Primitive, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> np.ndarray | None: ...

    def model(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]
    ) -> np.ndarray: ...


class FastImplementation:
    """fast/ in a given dtype, seen through the :class:`Implementation` interface."""

    def __init__(self, dtype: str = "float64", block: int = 4) -> None:
        self.dtype: np.dtype[Any] = np.dtype(dtype)
        self.name = f"fast[{self.dtype.name}]"
        self.block = block  # small, so even short sequences cross several key blocks
        self._programs: dict[int, Any] = {}

    def _program(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> Any:
        import fast

        key = id(theta)
        if key not in self._programs:
            self._programs = {key: fast.compile(arch, theta, self.dtype, block=self.block)}
        return self._programs[key]

    def op(self, op: Primitive, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> np.ndarray | None:
        import fast

        return fast.run_op(op, inputs, params, self.dtype)

    def model(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]
    ) -> np.ndarray:
        result: np.ndarray = self._program(arch, theta).forward(ids, valid)
        return result

    def decode(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], prefix: int
    ) -> np.ndarray:
        program = self._program(arch, theta)
        first, state = program.prefill(ids[:, :prefix], valid[:, :prefix])
        steps = [first] + [program.decode(state, ids[:, t], valid[:, t]) for t in range(prefix, ids.shape[1])]
        return np.concatenate(steps, axis=1)
