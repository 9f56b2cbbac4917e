"""The batched interpreter: compile (Architecture, θ, dtype) into a program of steps, then run
it on batches of token ids — whole, or incrementally with a KV cache.

A step is a fused kernel for a composite when fast/ has one (multi-head attention), otherwise a
per-op kernel for each primitive, so any architecture built from spec ops runs here without new
code. The steps, what each caches, which are static and when a value is dropped are
spec/decoding.py's plan, and every call — a whole forward, a prefill, a decode — runs
``spec.decoding.evaluate`` on it: the evaluation order exists once, in the spec, and fast/
supplies only its batched kernels (:class:`_Rows`). For incremental decoding, every input an op
reads across positions (its dependency rule is neither row-wise nor position-independent, e.g.
the K of attention scores) is cached and extended call by call; row-wise ops see only the new
rows; the fused attention keeps its heads' K and V itself.

**Several token inputs.** An architecture may read more than one sequence (an encoder–decoder:
``source``, S positions, and ``ids``, T positions). The input whose rows are the logits' rows is
the one decoded (``ids``); the others are *context*, given whole at the first call. Each step runs
on the positions of the sequence its rows index (its output's row dim, T or S) and reads keys of
the sequence its key axis indexes, so the encoder's steps see the source's positions and padding
and cross-attention sees target queries against source keys. A step that depends on context
inputs only (the encoder, and the K/V projections of its output in every cross-attention) is
*static*: computed once by :meth:`Program.prefill`, its values kept in the :class:`State` and read
as they are by every :meth:`Program.decode` — never recomputed and never concatenated again (an
input that does not grow is not a cache to extend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import sympy

from fast.attention import MHAPlan, MHAWeights, fused_mha, match, pack
from fast.batch import Batch, check_ids, positions_from_valid
from fast.kernels import KERNELS, OneHotIds
from fast.precision import Precision, is_real, resolve_dtype
from spec import decoding as decoding_module
from spec.errors import ConfigError, ShapeError, TokenError
from spec.graph import Architecture, Node
from spec.objective import Objective
from spec.op import Primitive, bind_to_arrays
from spec.seq2seq import vocabulary
from spec.theta import LazyTheta, as_float64, check_theta, token_array
from spec.types import Axis, Element

if TYPE_CHECKING:
    from fast.backward import Gradients

class _Float64Entries(Mapping[str, np.ndarray]):
    """θ's entries as float64, each converted when read (the last one kept, since per-head
    views read an entry several times in a row): compiling never holds all of θ in float64, so a
    memory-mapped checkpoint (spec.theta.LazyTheta) is read one entry at a time."""

    def __init__(self, theta: Mapping[str, npt.ArrayLike], where: str) -> None:
        self.theta, self.where = theta, where
        self.last: tuple[str, np.ndarray] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if self.last is None or self.last[0] != name:
            self.last = None
            fresh = isinstance(self.theta, LazyTheta)  # made for this read: converting it needs no copy
            self.last = (name, as_float64(name, self.theta[name], self.where, copy=not fresh))
        return self.last[1]

    def __iter__(self) -> Any:
        return iter(self.theta)

    def __len__(self) -> int:
        return len(self.theta)


@dataclass
class Step:
    path: str
    sources: dict[str, str]
    op: Primitive | None  # bound primitive (None for a fused composite)
    params: dict[str, np.ndarray]
    cached_ports: tuple[str, ...]
    plan: MHAPlan | None = None
    weights: MHAWeights | None = None
    rows: str = ""
    """The input whose positions this step's rows are (its output's row dim)."""
    keys: str = ""
    """The input whose positions this step's keys are (a key axis, or the rows a cached port reads);
    empty for a row-local op, whose keys are this call's rows."""
    static: bool = False
    """Depends on context inputs only: computed once per sequence (prefill), then kept."""


@dataclass
class Positions:
    """One input sequence of a batch: each row's position id and whether it is real, for this
    call's rows and for every key row (the cached ones, then this call's)."""

    positions: npt.NDArray[np.int64]
    valid: npt.NDArray[np.bool_]
    key_positions: npt.NDArray[np.int64]
    key_valid: npt.NDArray[np.bool_]


@dataclass
class State:
    """What incremental decoding carries between calls: the decoded sequence's key positions, the
    cache of the ports that grow, and the values of the static steps (computed once)."""

    key_positions: npt.NDArray[np.int64]
    key_valid: npt.NDArray[np.bool_]
    next_position: npt.NDArray[np.int64]
    cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    context: dict[str, Positions] = field(default_factory=dict)
    """Every context input's positions (given whole at the prefill)."""
    static: dict[str, Any] = field(default_factory=dict)
    """Values of static steps that decoding steps read, by path."""


def _row_inputs(arch: Architecture) -> dict[sympy.Expr, str]:
    """Each token input's length dim (T, S, …) → the input's name."""
    out: dict[sympy.Expr, str] = {}
    for name, ttype in arch.inputs.items():
        if len(ttype.shape) != 1 or ttype.element is not Element.TOKEN:
            raise ConfigError(f"input {name} of type {ttype}, but expected token ids (one row per position) [fast compile {arch.name}]")
        dim = sympy.sympify(ttype.shape[0])
        if dim in out:
            raise ConfigError(f"inputs {out[dim]} and {name} share the length {dim}, but expected one input per length [fast compile {arch.name}]")
        out[dim] = name
    return out


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
        self.precision = Precision.of(self.dtype)
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ConfigError(f"block={block!r}, but expected a whole number ≥ 1 [fast compile]")
        self.block = block
        self.theta = theta  # kept (not copied) for value_and_grad, which differentiates at this θ
        check_theta(arch, theta, "fast compile")  # type: ignore[arg-type]
        theta64 = _Float64Entries(theta, "fast compile")
        self.n_vocab = arch.dim("n_vocab")
        self.n_ctx = arch.dim("n_ctx")
        self.outputs: dict[str, str] = {}
        plans: dict[str, MHAPlan] = {}

        def fuse(node: Node) -> bool:
            plan = match(node, arch.dims)
            if plan is not None:
                plans[id(node)] = plan  # type: ignore[index]
            return plan is not None

        self.row_inputs = _row_inputs(arch)  # row dim → the input whose positions it counts
        self.plan = decoding_module.plan(arch, stop=fuse)  # the evaluation order, the caches, the static steps: the spec's
        self.outputs = dict(self.plan.outputs)
        self.tokens = self.plan.inputs[0]
        self.context_inputs = self.plan.context
        self.steps: list[Step] = []
        for planned in self.plan.steps:
            path, node, sources = planned.path, planned.node, dict(planned.sources)
            plan = plans.get(id(node))  # type: ignore[call-overload]
            if plan is not None:
                step = Step(path, sources, None, {}, (), plan, pack(plan, theta64, self.precision))
                step.rows, step.keys = self._input_of(node.op.inputs()["x_q"].shape[0], path), self._input_of(node.op.inputs()["x_kv"].shape[0], path)
            else:
                op = node.op
                if not isinstance(op, Primitive):
                    raise ConfigError(f"op {node.op.kind} at {path}, but expected a primitive or a composite fast/ fuses [fast compile]")
                KERNELS[op.kind]  # refuses an op without a kernel now, naming it, rather than at run time
                params = {
                    p: self.precision.store(np.ascontiguousarray(ref.resolve(theta64[ref.name], arch.dims)))
                    for p, ref in node.params.items()
                }
                bound = op.bind(arch.dims)
                across = tuple(port for port, rel in op.dependency().items() if not rel.row_local())
                step = Step(path, sources, bound, params, planned.cached)  # a growing value is a cache to extend; a static one is read whole
                step.rows, step.keys = self._step_sequences(bound, across, path)
            step.static = planned.static
            self.steps.append(step)
        self.by_path = {step.path: step for step in self.steps}
        # the static values decoding reads: kept in the state after the prefill
        self.static_kept = set(self.plan.kept)

    def _input_of(self, dim: object, where: str) -> str:
        """The input whose positions a row or key dim (T, S, …) counts."""
        for symbol, name in self.row_inputs.items():
            if sympy.sympify(dim) == symbol:
                return name
        raise ConfigError(
            f"{where} has rows {dim}, but expected the length of one of the inputs {list(self.arch.inputs)} "
            f"[fast compile {self.arch.name}]; fast/ runs ops whose rows are an input sequence's positions"
        )

    def _step_sequences(self, op: Primitive, across: tuple[str, ...], where: str) -> tuple[str, str]:
        """(rows, keys) of a primitive: its output's row dim; its key axis, else the rows of the
        first input it reads across positions, else "" (row-local: keys are this call's rows)."""
        out = op.output()
        rows = self._input_of(out.shape[0], where) if out.shape else self.tokens
        types = [*op.inputs().values(), out]
        for t in types:
            if Axis.KEY in t.axes:
                return rows, self._input_of(t.shape[t.axes.index(Axis.KEY)], where)
        for port in across:
            t = op.inputs()[port]
            if t.shape and Axis.POSITION in t.axes:
                return rows, self._input_of(t.shape[0], where)
        return rows, ""  # row-local: its keys are this call's rows (a kernel-1 convolution reads no cached row)

    # -- running ---------------------------------------------------------------------------

    def _finish(self, outputs: dict[str, Any], valid: npt.NDArray[np.bool_]) -> npt.NDArray[Any]:
        logits = np.asarray(outputs["logits"], dtype=self.dtype)
        if valid.all():
            return logits  # no copy: the (B, T, n_vocab) logits are the largest array of the forward
        return np.where(valid[..., None], logits, logits.dtype.type(0))  # padded rows are 0

    def forward(
        self, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None, *,
        context: Mapping[str, npt.ArrayLike] | None = None, context_valid: Mapping[str, npt.ArrayLike] | None = None,
    ) -> npt.NDArray[Any]:
        """Logits (B, T, n_vocab) for token ids (B, T) (or (T,), read as B = 1); ``valid``
        marks real tokens (left or right padding allowed; padded rows give 0). An architecture
        with context inputs (an encoder–decoder's ``source``) takes them, (B, S) each, in
        ``context`` with their own masks in ``context_valid``."""
        logits, _ = self._call(ids, valid, None, context=context, context_valid=context_valid)
        return logits

    def value_and_grad(
        self, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None, *, labels: npt.ArrayLike | None = None,
        objective: Objective = Objective(), denominator: int | None = None, fused: bool = True,
    ) -> Gradients:
        """The batch's loss under ``objective`` and ∂L/∂θ for every Θ entry, in this program's
        dtype, at the θ it was compiled with (fast/backward.py: the arguments, padding, precisions)."""
        from fast.backward import value_and_grad  # imported here: fast/backward.py imports this module

        return value_and_grad(self.arch, self.theta, ids, valid, labels=labels, objective=objective,
                              denominator=denominator, dtype=self.dtype, fused=fused, block=self.block)

    def prefill(
        self, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None, *,
        context: Mapping[str, npt.ArrayLike] | None = None, context_valid: Mapping[str, npt.ArrayLike] | None = None,
    ) -> tuple[npt.NDArray[Any], State]:
        """Run the prompt (and the context inputs, once) and keep what decoding needs."""
        return self._call(ids, valid, None, keep=True, context=context, context_valid=context_valid)

    def decode(self, state: State, ids: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> npt.NDArray[Any]:
        """Append tokens (B,) or (B, k) to every row and return their logits (B, k, n_vocab);
        ``state`` is updated in place."""
        if not isinstance(state, State):
            raise ShapeError(f"state of type {type(state).__name__}, but expected the State that prefill returned [fast decode]; "
                             "call program.prefill(ids) first")
        array = np.asarray(ids)
        array = array[:, None] if array.ndim == 1 else array
        mask = None if valid is None else np.asarray(valid, dtype=bool).reshape(array.shape)
        logits, _ = self._call(array, mask, state)
        return logits

    def _check_length(self, mask: npt.NDArray[np.bool_], positions: npt.NDArray[np.int64], name: str) -> None:
        last = np.where(mask, positions, -1).max(axis=1, initial=-1) if mask.size else np.full(mask.shape[0], -1)
        if mask.size and int(last.max()) >= self.n_ctx:
            raise TokenError(
                f"sequence length of {name}={int(last.max()) + 1}, but expected ≤ n_ctx={self.n_ctx} [fast]; "
                "the model's positions end at n_ctx (its learned or sinusoidal table has no row for later positions)"
            )

    def _context(
        self, rows: int, context: Mapping[str, npt.ArrayLike] | None, context_valid: Mapping[str, npt.ArrayLike] | None,
    ) -> tuple[dict[str, npt.NDArray[np.int64]], dict[str, Positions]]:
        """The context inputs (B, S) and their positions; every one is required, nothing else."""
        given, masks = dict(context or {}), dict(context_valid or {})
        where = f"fast {self.arch.name}"
        unknown = sorted((set(given) | set(masks)) - set(self.context_inputs))
        if unknown:
            raise ShapeError(f"context inputs {unknown}, but expected only {list(self.context_inputs)} [{where}]")
        tokens: dict[str, npt.NDArray[np.int64]] = {}
        seqs: dict[str, Positions] = {}
        for name in self.context_inputs:
            if name not in given:
                raise ShapeError(
                    f"input {name} is missing, but expected the context inputs {list(self.context_inputs)} with the ids [{where}]; "
                    f"pass context={{{name!r}: ids}} (an encoder–decoder's source sequence)"
                )
            mask = masks.get(name)
            ids, valid = check_ids(given[name], None if mask is None else np.asarray(mask, dtype=bool), vocabulary(self.arch, name), f"{where} {name}")
            if ids.shape[0] != rows:
                raise ShapeError(f"{name} has {ids.shape[0]} rows, but expected the batch's {rows} [{where}]")
            positions = positions_from_valid(valid)
            self._check_length(valid, positions, name)
            tokens[name] = ids
            seqs[name] = Positions(positions, valid, positions, valid)
        return tokens, seqs

    def _call(
        self, ids: npt.ArrayLike, valid: npt.ArrayLike | None, state: State | None, keep: bool = False,
        context: Mapping[str, npt.ArrayLike] | None = None, context_valid: Mapping[str, npt.ArrayLike] | None = None,
    ) -> tuple[npt.NDArray[Any], State]:
        tokens, mask = check_ids(ids, None if valid is None else np.asarray(valid, dtype=bool), self.n_vocab, "fast")
        start = None if state is None else state.next_position
        positions = positions_from_valid(mask, start)
        self._check_length(mask, positions, self.tokens)
        decoding = state is not None
        if state is None:
            inputs, seqs = self._context(mask.shape[0], context, context_valid)
            state = State(positions, mask, np.zeros(mask.shape[0], dtype=np.int64), context=seqs)
            cache: decoding_module.Cache[Any] = decoding_module.Cache()
            first = 0
        else:
            if context is not None or context_valid is not None:
                raise ShapeError(f"context inputs at decode, but expected them once, at the prefill [fast decode {self.arch.name}]")
            if state.key_positions.shape[0] != mask.shape[0]:
                raise ShapeError(f"batch of {mask.shape[0]} rows, but expected {state.key_positions.shape[0]} as in the prefill [fast decode]")
            first = state.key_positions.shape[1]  # columns so far (rows differ by their padding)
            state.key_positions = np.concatenate([state.key_positions, positions], axis=1)
            state.key_valid = np.concatenate([state.key_valid, mask], axis=1)
            cache = decoding_module.Cache(first, state.cache, state.static)
            inputs, seqs = {}, dict(state.context)
        seqs[self.tokens] = Positions(positions, mask, state.key_positions, state.key_valid)
        outputs, after = decoding_module.evaluate(
            self.plan, cache, {self.tokens: tokens}, first, first + tokens.shape[1], _Rows(self, seqs),
            context=None if decoding else inputs, keep=keep or decoding,
        )
        if keep or decoding:
            state.cache, state.static = after.kept, after.static
        state.next_position = np.maximum(state.next_position, np.where(mask, positions + 1, 0).max(axis=1, initial=0))
        return self._finish(outputs, mask), state


class _Rows:
    """spec.decoding's :class:`~spec.decoding.Rows` on fast/'s batched kernels, for one call: each
    step runs on the positions of the sequence its rows index and reads keys of the sequence its
    key axis indexes (``seqs``); values are stored in the program's dtype and computed in its
    compute dtype (fast/precision.py); the fused attention keeps its K and V in the cache."""

    def __init__(self, program: Program, seqs: Mapping[str, Positions]) -> None:
        self.program, self.seqs = program, seqs

    def _batch(self, step: Step, cache: dict[tuple[str, str], Any] | None) -> Batch:
        q = self.seqs[step.rows]
        k = self.seqs[step.keys] if step.keys else Positions(q.positions, q.valid, q.positions, q.valid)
        return Batch(q.positions, q.valid, k.key_positions, k.key_valid, cache)

    def _stored(self, y: Any) -> Any:
        return self.program.precision.store(y) if is_real(y) and y.dtype != self.program.dtype else y

    def run(self, planned: decoding_module.Step, length: int, first: int, inputs: Mapping[str, Any]) -> Any:
        step = self.program.by_path[planned.path]
        if step.op is None:  # only fused steps have no op
            raise ShapeError(f"step {step.path} has no op [fast]")
        P, batch = self.program.precision, self._batch(step, None)
        if P.half:  # stored in the half precision, computed in float32
            args = {port: P.load(a) for port, a in inputs.items()}
            return self._stored(KERNELS[step.op.kind](step.op, batch, **args, **{k: P.load(v) for k, v in step.params.items()}))
        return self._stored(KERNELS[step.op.kind](step.op, batch, **inputs, **step.params))

    def run_whole(
        self, planned: decoding_module.Step, length: int, first: int, inputs: Mapping[str, Any], kept: dict[tuple[str, str], Any] | None,
    ) -> Any:
        step = self.program.by_path[planned.path]
        if step.plan is None or step.weights is None:
            raise ShapeError(f"step {step.path} is not a fused attention [fast]")
        P, batch = self.program.precision, self._batch(step, None if step.static else kept)
        x_kv = P.load(inputs["x_kv"]) if step.plan.cross and not (batch.cache is not None and (step.path, "K") in batch.cache) else None
        return self._stored(fused_mha(step.plan, step.weights, batch, step.path, P.load(inputs["x_q"]), self.program.block, P, x_kv))

    def append(self, kept: Any, new: Any) -> Any:
        return np.concatenate([kept, new], axis=1)  # the cached rows, then this call's


def run_op(
    op: Primitive, inputs: Mapping[str, npt.ArrayLike], params: Mapping[str, npt.ArrayLike] | None = None, dtype: object = "float64"
) -> npt.NDArray[Any]:
    """One primitive on one sequence through its batched kernel, in ``dtype``: a batch of one,
    no padding, positions 0 … T − 1 (and keys 0 … S − 1). Symbolic dims are bound from the
    arrays' shapes; the result has the op's declared output shape."""
    if not isinstance(op, Primitive):
        raise ShapeError(f"op of type {type(op).__name__}, but expected a spec primitive [fast.run_op]")
    for argument, given_as in (("inputs", inputs), ("params", {} if params is None else params)):
        if not isinstance(given_as, Mapping):
            raise ShapeError(f"{argument} of type {type(given_as).__name__}, but expected a mapping of names to arrays [fast.run_op {op.kind}]")
    P = Precision.of(resolve_dtype(dtype, "fast.run_op"))
    declared = op.inputs()

    def cast(name: str, value: npt.ArrayLike) -> np.ndarray:
        ttype = declared.get(name)
        if ttype is not None and ttype.element is Element.TOKEN:
            return token_array(value, op.id_bound() or 2**62, None, f"fast {op.kind} input {name}")
        loaded: np.ndarray = P.load(P.store(as_float64(name, value, f"fast {op.kind}")))  # stored in D, computed in D or float32
        return loaded

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
        y = y.materialize(P.compute)
    out: npt.NDArray[Any] = P.store(np.asarray(y)[0])
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

