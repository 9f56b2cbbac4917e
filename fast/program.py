"""The batched interpreter: compile (Architecture, θ, dtype) into a program of steps, then run
it on batches of token ids — whole, or incrementally with a KV cache.

A step is a fused kernel for a composite when fast/ has one (multi-head attention), otherwise a
per-op kernel for each primitive, so any architecture built from spec ops runs here without new
code. For incremental decoding, every input an op reads across positions (its dependency rule
is neither row-wise nor position-independent, e.g. the K of attention scores) is cached and
extended call by call; row-wise ops see only the new rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fast.attention import MHAPlan, MHAWeights, fused_mha, match, pack
from fast.batch import Batch, check_ids, positions_from_valid
from fast.kernels import KERNELS, OneHotIds
from spec.errors import ConfigError, ShapeError, TokenError
from spec.graph import Architecture, Node
from spec.op import Primitive, bind_to_arrays
from spec.theta import as_float64, float64_theta, token_array
from spec.types import Axis, Element

DTYPES: dict[str, np.dtype[Any]] = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32)}
"""The dtypes fast/ computes in, by name."""


def resolve_dtype(dtype: object, where: str = "fast") -> np.dtype[Any]:
    """One of :data:`DTYPES`, given by name or as a numpy dtype; anything else is refused."""
    for name, known in DTYPES.items():
        if (isinstance(dtype, str) and dtype == name) or (not isinstance(dtype, str) and _same_dtype(dtype, known)):
            return known
    raise ConfigError(f"dtype={dtype!r}, but expected one of {list(DTYPES)} [{where}]")


def _same_dtype(dtype: object, known: np.dtype[Any]) -> bool:
    try:
        return bool(np.dtype(dtype) == known)  # type: ignore[call-overload]
    except TypeError:
        return False


@dataclass
class Step:
    path: str
    sources: dict[str, str]
    op: Primitive | None  # bound primitive (None for a fused composite)
    params: dict[str, np.ndarray]
    cached_ports: tuple[str, ...]
    plan: MHAPlan | None = None
    weights: MHAWeights | None = None


@dataclass
class State:
    """What incremental decoding carries between calls."""

    key_positions: npt.NDArray[np.int64]
    key_valid: npt.NDArray[np.bool_]
    next_position: npt.NDArray[np.int64]
    cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)


class Program:
    """``compile(arch, theta, dtype, block)`` → run with :meth:`forward`, or :meth:`prefill` then
    :meth:`decode` for incremental decoding.

    ``block`` is attention's tile: query rows per tile and keys per block. The default 64 keeps
    each per-head GEMM of attention at 64·64·d_head multiply-adds (2¹⁸ for d_head = 64), which
    OpenBLAS runs on the calling thread: many small GEMMs handed to its thread pool are several
    times slower, more so when other processes share the cores (docs/performance.md)."""

    def __init__(
        self, arch: Architecture, theta: Mapping[str, npt.ArrayLike], dtype: str | npt.DTypeLike = "float32", block: int = 64
    ) -> None:
        self.arch = arch
        self.dtype = resolve_dtype(dtype, "fast compile")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ConfigError(f"block={block!r}, but expected a whole number ≥ 1 [fast compile]")
        self.block = block
        theta64 = float64_theta(arch, theta, "fast compile")
        self.n_vocab = arch.dim("n_vocab")
        self.n_ctx = arch.dim("n_ctx")
        self.outputs: dict[str, str] = {}
        plans: dict[str, MHAPlan] = {}

        def fuse(node: Node) -> bool:
            plan = match(node)
            if plan is not None:
                plans[id(node)] = plan  # type: ignore[index]
            return plan is not None

        self.steps: list[Step] = []
        for path, node, sources in arch.expand(stop=fuse, outputs=self.outputs):
            plan = plans.get(id(node))  # type: ignore[call-overload]
            if plan is not None:
                self.steps.append(Step(path, sources, None, {}, (), plan, pack(plan, theta64, self.dtype)))
                continue
            op = node.op
            if not isinstance(op, Primitive):
                raise ConfigError(f"op {node.op.kind} at {path}, but expected a primitive or a composite fast/ fuses [fast compile]")
            KERNELS[op.kind]  # refuses an op without a kernel now, naming it, rather than at run time
            params = {
                p: np.ascontiguousarray(ref.resolve(theta64[ref.name], arch.dims), dtype=self.dtype)
                for p, ref in node.params.items()
            }
            across = tuple(
                port for port, rel in op.dependency().items() if not rel.row_local()
            )
            self.steps.append(Step(path, sources, op.bind(arch.dims), params, across))
        # after step i, the values no later step reads are dropped, so their memory is reused
        # (holding every intermediate would touch fresh pages, and page faults, for each one)
        last_reader = {src: i for i, step in enumerate(self.steps) for src in step.sources.values()}
        kept = set(self.outputs.values())
        self.drop_after: list[list[str]] = [[] for _ in self.steps]
        for src, i in last_reader.items():
            if src not in kept:
                self.drop_after[i].append(src)

    # -- running ---------------------------------------------------------------------------

    def _run(self, ids: npt.NDArray[np.int64], batch: Batch) -> dict[str, Any]:
        """Run the steps; the result holds the outputs (intermediates are dropped once read)."""
        values: dict[str, Any] = {"input.ids": ids}
        for step, drop in zip(self.steps, self.drop_after):
            args = {port: values[src] for port, src in step.sources.items()}
            if step.plan is not None and step.weights is not None:
                y = fused_mha(step.plan, step.weights, batch, step.path, args["x_q"], self.block)
            else:
                if batch.cache is not None:
                    for port in step.cached_ports:
                        prev = batch.cache.get((step.path, port))
                        new = args[port]
                        batch.cache[(step.path, port)] = new if prev is None else np.concatenate([prev, new], axis=1)
                        args[port] = batch.cache[(step.path, port)]
                if step.op is None:  # only fused steps have no op
                    raise ShapeError(f"step {step.path} has no op [fast]")
                y = KERNELS[step.op.kind](step.op, batch, **args, **step.params)
                if isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.dtype != self.dtype:
                    y = y.astype(self.dtype)
            values[step.path] = y
            for src in drop:
                del values[src]
        return values

    def _finish(self, values: dict[str, Any], valid: npt.NDArray[np.bool_]) -> npt.NDArray[Any]:
        logits = np.asarray(values[self.outputs["logits"]], dtype=self.dtype)
        if valid.all():
            return logits  # no copy: the (B, T, n_vocab) logits are the largest array of the forward
        return np.where(valid[..., None], logits, logits.dtype.type(0))  # padded rows are 0

    def forward(self, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> npt.NDArray[Any]:
        """Logits (B, T, n_vocab) for token ids (B, T) (or (T,), read as B = 1); ``valid``
        marks real tokens (left or right padding allowed; padded rows give 0)."""
        logits, _ = self._call(ids, valid, None)
        return logits

    def prefill(self, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> tuple[npt.NDArray[Any], State]:
        """Run the prompt and keep what decoding needs."""
        return self._call(ids, valid, None, keep=True)

    def decode(self, state: State, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> npt.NDArray[Any]:
        """Append tokens (B,) or (B, k) to every row and return their logits (B, k, n_vocab);
        ``state`` is updated in place."""
        array = np.asarray(ids)
        array = array[:, None] if array.ndim == 1 else array
        mask = None if valid is None else np.asarray(valid, dtype=bool).reshape(array.shape)
        logits, _ = self._call(array, mask, state)
        return logits

    def _call(
        self, ids: npt.ArrayLike, valid: npt.ArrayLike | None, state: State | None, keep: bool = False
    ) -> tuple[npt.NDArray[Any], State]:
        tokens, mask = check_ids(ids, None if valid is None else np.asarray(valid, dtype=bool), self.n_vocab, "fast")
        start = None if state is None else state.next_position
        positions = positions_from_valid(mask, start)
        last = np.where(mask, positions, -1).max(axis=1, initial=-1) if mask.size else np.full(mask.shape[0], -1)
        if mask.size and int(last.max()) >= self.n_ctx:
            raise TokenError(
                f"sequence length T={int(last.max()) + 1}, but expected T ≤ n_ctx={self.n_ctx} [fast]; "
                "the learned positional table has no row for later positions"
            )
        if state is None:
            state = State(positions, mask, np.zeros(mask.shape[0], dtype=np.int64))
            cache: dict[tuple[str, str], np.ndarray] | None = {} if keep else None
        else:
            if state.key_positions.shape[0] != mask.shape[0]:
                raise ShapeError(f"batch of {mask.shape[0]} rows, but expected {state.key_positions.shape[0]} as in the prefill [fast decode]")
            state.key_positions = np.concatenate([state.key_positions, positions], axis=1)
            state.key_valid = np.concatenate([state.key_valid, mask], axis=1)
            cache = state.cache
        batch = Batch(positions, mask, state.key_positions, state.key_valid, cache)
        values = self._run(tokens, batch)
        if cache is not None:
            state.cache = cache
        state.next_position = np.maximum(state.next_position, np.where(mask, positions + 1, 0).max(axis=1, initial=0))
        return self._finish(values, mask), state


def run_op(
    op: Primitive, inputs: Mapping[str, npt.ArrayLike], params: Mapping[str, npt.ArrayLike] | None = None, dtype: object = "float64"
) -> npt.NDArray[Any]:
    """One primitive on one sequence through its batched kernel, in ``dtype``: a batch of one,
    no padding, positions 0 … T − 1 (and keys 0 … S − 1). Symbolic dims are bound from the
    arrays' shapes; the result has the op's declared output shape."""
    if not isinstance(op, Primitive):
        raise ShapeError(f"op of type {type(op).__name__}, but expected a spec primitive [fast.run_op]")
    D = resolve_dtype(dtype, "fast.run_op")
    declared = op.inputs()

    def cast(name: str, value: npt.ArrayLike) -> np.ndarray:
        ttype = declared.get(name)
        if ttype is not None and ttype.element is Element.TOKEN:
            return token_array(value, op.id_bound() or 2**62, None, f"fast {op.kind} input {name}")
        return as_float64(name, value, f"fast {op.kind}").astype(D)

    ins = {k: cast(k, v) for k, v in inputs.items()}
    ps = {k: cast(k, v) for k, v in (params or {}).items()}
    bound = bind_to_arrays(op, ins, ps)
    T = int(bound.output().shape[0])
    key_axes = [t.shape[t.axes.index(Axis.KEY)] for t in (*bound.inputs().values(), bound.output()) if Axis.KEY in t.axes]
    S = int(key_axes[0]) if key_axes else T
    batch = Batch(
        positions=np.arange(T, dtype=np.int64)[None, :], valid=np.ones((1, T), dtype=bool),
        key_positions=np.arange(S, dtype=np.int64)[None, :], key_valid=np.ones((1, S), dtype=bool),
    )
    y = KERNELS[op.kind](bound, batch, **{k: v[None] for k, v in ins.items()}, **ps)
    if isinstance(y, OneHotIds):
        y = y.materialize(D)
    out: npt.NDArray[Any] = np.asarray(y)[0]
    expected = tuple(int(d) for d in bound.output().shape)
    if out.shape != expected:
        raise ShapeError(f"{op.kind} produced shape {out.shape}, but the spec declares {expected} [fast.run_op]")
    return out


def compile(arch: Architecture, theta: Mapping[str, npt.ArrayLike], dtype: str | npt.DTypeLike = "float32", block: int = 64) -> Program:
    """Compile an architecture and its θ for batched evaluation in ``dtype``."""
    return Program(arch, theta, dtype, block)


def forward(arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: npt.ArrayLike, valid: npt.ArrayLike | None = None, dtype: str | npt.DTypeLike = "float64") -> npt.NDArray[Any]:
    """One-shot batched forward (compiles every call; keep a :class:`Program` to reuse)."""
    return Program(arch, theta, dtype).forward(ids, valid)

