"""The implementation-under-test interface, and gptspec's own fast/ as its first customer.

An implementation is judged op by op and as a whole model, over numpy arrays. ``gptspec
verify`` adapts torch modules and plain callables to this interface itself
(gptspec/verify/targets.py); anything else with this shape can be verified directly — a JAX
function, a CUDA kernel's Python binding:

- ``name`` and ``dtype`` (``"float64"``, ``"float32"``, ``"float16"``, ``"bfloat16"``, or a numpy
  dtype): what it is and the precision it computes in;
- ``op(op, inputs, params)``: one primitive on one sequence (inputs shaped as the spec types
  say, e.g. (T, d_model)); return ``None`` for ops it does not implement separately (those
  components are reported ``not run``, never passed);
- ``model(arch, theta, ids, valid)``: logits (B, T, n_vocab) for a padded batch (ids (B, T),
  valid (B, T) marking real tokens). Real positions are judged against the reference; padded
  positions by the empty-row convention the run selects (docs/verify.md: ``gptspec check``
  uses ``zero``, which fast/ meets; ``gptspec verify`` defaults to ``any-finite``);
- optionally ``decode(arch, theta, ids, valid, prefix)``: logits of the same batch computed
  by prefilling ``prefix`` positions and then decoding one position at a time (a KV cache);
- for an encoder–decoder (``gptspec check`` on one: fast/ only, as ``verify`` refuses them),
  ``model`` and ``decode`` also take ``context={"source": (ids, valid)}``, the source batch
  (B, S), given with every target batch;
- optionally ``generate(arch, theta, ids, valid, n_new)``: the greedy continuation (B, n_new)
  of a left-padded batch, and ``capture(arch, theta, ids, valid)``: intermediates as
  (DAG path, "output" or "input", array (B, T, …)) triples, for localisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from spec.graph import Architecture
from spec.op import Primitive

Context = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""An encoder–decoder's other inputs by name (its source): (B, S) ids and valid each."""


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
        from fast import resolve_dtype

        self.dtype: np.dtype[Any] = resolve_dtype(dtype, "FastImplementation")  # float16 and bfloat16 too (fast/precision.py)
        self.name = f"fast[{self.dtype.name}]"
        self.block = block  # small, so even short sequences cross several key blocks
        self._compiled: tuple[Architecture, Mapping[str, np.ndarray], Any] | None = None

    def _program(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> Any:
        """The program compiled for (arch, θ), the last one kept: θ is held with it, so the same
        object is the same θ (an identity a freed dict could otherwise pass on to a new one)."""
        import fast

        if self._compiled is None or self._compiled[0] is not arch or self._compiled[1] is not theta:
            self._compiled = (arch, theta, fast.compile(arch, theta, self.dtype, block=self.block))
        return self._compiled[2]

    def op(self, op: Primitive, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> np.ndarray | None:
        import fast

        return fast.run_op(op, inputs, params, self.dtype)

    def model(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_],
        context: Context | None = None,
    ) -> np.ndarray:
        """Logits (B, T, n_vocab); ``context``: an encoder–decoder's source (module docstring)."""
        result: np.ndarray = self._program(arch, theta).forward(ids, valid, **_sources(context))
        return result

    def decode(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_], prefix: int,
        context: Context | None = None,
    ) -> np.ndarray:
        """The same logits, ``prefix`` positions prefilled (an encoder–decoder's source given there,
        once: the encoder runs once, the cross-attention keys and values are kept), then one
        position at a time through the KV cache."""
        program = self._program(arch, theta)
        first, state = program.prefill(ids[:, :prefix], valid[:, :prefix], **_sources(context))
        steps = [first] + [program.decode(state, ids[:, t], valid[:, t]) for t in range(prefix, ids.shape[1])]
        return np.concatenate(steps, axis=1)


def _sources(context: Context | None) -> dict[str, dict[str, np.ndarray]]:
    """fast/'s keyword arguments for an encoder–decoder's other inputs (none for a decoder)."""
    if not context:
        return {}
    return {"context": {name: ids for name, (ids, _) in context.items()}, "context_valid": {name: valid for name, (_, valid) in context.items()}}
