"""Hypothesis strategies for verification: op inputs and parameters derived from the op's
declared types, token batches with padding, and small model configs (from the family records).

Examples are described by small records (:class:`OpExample`, :class:`BatchExample`) that
hypothesis draws and shrinks (fewer rows, a plainer scale, a smaller seed); the arrays are
then made deterministically from the record, so a counterexample is reproduced by its record
alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sympy
from hypothesis import strategies as st

from gptspec.verify.cases import Batch
from spec.architectures import GPTConfig
from spec.architectures.registry import families, family
from spec.config import Config
from spec.dims import S as S_SYMBOL
from spec.dims import T as T_SYMBOL
from spec.graph import Architecture
from spec.op import Operand, Primitive, primitive
from spec.types import Axis, Element

INPUT_SCALES = (1.0, 1e-3, 30.0, 1e-8, 1e4)
"""Magnitudes of real inputs, plainest first (hypothesis shrinks towards the first)."""
PARAM_SCALES = (0.5, 0.02, 3.0, 1e-8, 1e3)
SCORE_VARIANTS = ("normal", "ties", "near +1e4", "near -1e4", "mixed ±1e4")
"""How attention scores (pos × key_pos inputs) are drawn: the hard cases of docs/conventions.md."""


@dataclass(frozen=True)
class OpExample:
    """One example for one op: sizes, a seed, and the magnitudes to draw at."""

    rows: int
    keys: int
    seed: int
    input_scale: float = 1.0
    param_scale: float = 0.5
    scores: str = "normal"


def op_examples(op: Primitive, *, max_rows: int = 6, min_rows: int = 1) -> st.SearchStrategy[OpExample]:
    """Examples for ``op``: T in [min_rows, max_rows]; S = T for self-attention ops."""
    self_attention = _same_rows(op)
    rows = st.integers(min_rows, max_rows)
    return rows.flatmap(
        lambda T: st.builds(
            OpExample,
            rows=st.just(T),
            keys=st.just(T) if self_attention else st.integers(1, max_rows),
            seed=st.integers(0, 2**32 - 1),
            input_scale=st.sampled_from(INPUT_SCALES),
            param_scale=st.sampled_from(PARAM_SCALES),
            scores=st.sampled_from(SCORE_VARIANTS),
        )
    )


def _same_rows(op: Primitive) -> bool:
    shapes = [t.shape for t in op.inputs().values()]
    symbols = {s for shape in shapes for d in shape for s in sympy.sympify(d).free_symbols}
    return S_SYMBOL not in symbols


def sizes_of(op: Primitive, example: OpExample) -> dict[sympy.Symbol, int]:
    """Values for every dim ``op`` leaves symbolic: T and S from the example, any width (d_model,
    d_head, …) from the example's seed, 1 … 4."""
    sizes = {T_SYMBOL: example.rows, S_SYMBOL: example.keys}
    rng = np.random.default_rng([example.seed, 7])
    for symbol in sorted(op.free_dims() - set(sizes), key=str):
        sizes[symbol] = int(rng.integers(1, 5))
    return sizes


def op_arrays(op: Primitive, example: OpExample) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The inputs and parameters of ``example`` for ``op`` (float64; ids int64), drawn by what
    each holds (``Primitive.operands``): attention scores in the example's score variant,
    attention weights non-negative, gains around 1, everything else at the example's scale."""
    bound = op.bind(sizes_of(op, example))
    rng = np.random.default_rng(example.seed)
    inputs: dict[str, np.ndarray] = {}
    for name, ttype in bound.inputs().items():
        shape = tuple(int(d) for d in ttype.shape)
        if ttype.element is Element.TOKEN:
            inputs[name] = rng.integers(0, bound.id_bound() or 50257, size=shape).astype(np.int64)
        elif Axis.ONE_HOT in ttype.axes:
            ids = rng.integers(0, shape[-1], size=shape[:-1])
            one_hot = np.zeros(shape)
            np.put_along_axis(one_hot, ids[..., None], 1.0, axis=-1)
            inputs[name] = one_hot
        else:
            inputs[name] = _values(rng, bound.operand(name), shape, example.input_scale, example)
    params: dict[str, np.ndarray] = {}
    for name, symbolic in bound.params().items():
        shape = tuple(int(d) for d in symbolic)
        params[name] = _values(rng, bound.operand(name), shape, example.param_scale, example)
    return inputs, params


def _values(rng: np.random.Generator, operand: Operand, shape: tuple[int, ...], scale: float, example: OpExample) -> np.ndarray:
    if operand is Operand.SCORES:
        return _scores(rng, shape, example)
    if operand is Operand.WEIGHTS:
        return np.abs(rng.normal(0.0, 1.0, size=shape))
    sample = rng.normal(0.0, scale, size=shape)
    return 1.0 + sample if operand is Operand.GAIN else sample


def _scores(rng: np.random.Generator, shape: tuple[int, ...], example: OpExample) -> np.ndarray:
    if example.scores == "ties":
        return rng.integers(-2, 3, size=shape) * example.input_scale
    if example.scores == "near +1e4":
        return 1e4 + rng.normal(0.0, 3.0, size=shape)
    if example.scores == "near -1e4":
        return -1e4 + rng.normal(0.0, 3.0, size=shape)
    if example.scores == "mixed ±1e4":
        return rng.choice([-1e4, 1e4], size=shape) + rng.normal(0.0, 1.0, size=shape)
    return rng.normal(0.0, example.input_scale, size=shape)


@dataclass(frozen=True)
class BatchExample:
    """A batch as hypothesis draws it: each row's real length and padding side, and a seed. It
    names one :class:`gptspec.verify.cases.Batch` (:meth:`batch`: the ids drawn from the seed),
    the one batch type checks judge."""

    lengths: tuple[int, ...]
    left_padded: tuple[bool, ...]
    seed: int

    def batch(self, n_vocab: int) -> Batch:
        """The batch: every slot's id drawn from the seed, the real ones its rows' tokens, the
        padded ones the batch's padding ids (random: they must not matter)."""
        width = max(self.lengths, default=0)
        ids = np.random.default_rng(self.seed).integers(0, n_vocab, size=(len(self.lengths), width)).astype(np.int64)
        tokens = tuple(
            tuple(int(i) for i in (ids[b, width - n :] if left else ids[b, :n]))
            for b, (n, left) in enumerate(zip(self.lengths, self.left_padded, strict=True))
        )
        return Batch(tokens, self.left_padded, width, self.seed)

    def arrays(self, n_vocab: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """ids (B, T) and valid (B, T) of :meth:`batch`."""
        return self.batch(n_vocab).arrays(n_vocab)


def batch_examples(*, max_batch: int = 3, max_len: int = 8) -> st.SearchStrategy[BatchExample]:
    """Batches of 1..max_batch rows with lengths 1..max_len, each padded left or right."""
    return st.integers(1, max_batch).flatmap(
        lambda B: st.builds(
            BatchExample,
            lengths=st.tuples(*[st.integers(1, max_len)] * B),
            left_padded=st.tuples(*[st.booleans()] * B),
            seed=st.integers(0, 2**32 - 1),
        )
    )


def gpt_configs(*, max_layers: int = 2, max_heads: int = 3, max_vocab: int = 40) -> st.SearchStrategy[GPTConfig]:
    """Small valid GPT configs: the GPT family record's strategy (spec/architectures/gpt.py)."""
    drawn: st.SearchStrategy[GPTConfig] = family("gpt").configs(max_layers=max_layers, max_heads=max_heads, max_vocab=max_vocab)
    return drawn


def model_configs(*, kind: str | None = "decoder", max_layers: int = 2) -> st.SearchStrategy[Config]:
    """Small configs of every registered family of ``kind`` (each family record's strategy)."""
    return st.one_of(*(f.configs(max_layers=max_layers) for f in families(kind=kind)))  # type: ignore[arg-type]


def distinct_ops(arch: Architecture) -> dict[str, tuple[Primitive, list[str]]]:
    """The distinct primitive ops an architecture uses (same kind and attributes = one), each
    with the paths of the nodes that use it, keyed by a readable label."""
    found: dict[str, tuple[Primitive, list[str]]] = {}
    for path, node, _ in arch.expand():
        op = node.op
        if not isinstance(op, Primitive):
            continue
        bound = op.bind(arch.dims)
        label = describe(bound)
        found.setdefault(label, (bound, []))[1].append(path)
    return found


def describe(op: Primitive) -> str:
    """``layer_norm(d=768, eps=1e-05, bias=True)``: the op's kind and its attributes other than
    row counts."""
    attrs = ", ".join(f"{k}={v}" for k, v in op.attributes().items() if k not in ("rows", "q_rows", "k_rows"))
    return f"{op.kind}({attrs})"


# -- small op instances, for property tests over every registered primitive --------------


def small_ops(kind: str) -> st.SearchStrategy[Primitive]:
    """Small instances of the registered primitive ``kind``: the op's own
    :meth:`~spec.op.Primitive.examples` (every mask family, rows with no allowed key, d_head = 1,
    one head, ε from 1e-12 to 0.1, every convolution padding)."""
    return primitive(kind).examples()


def small_op_examples(kind: str, *, max_rows: int = 6) -> st.SearchStrategy[tuple[Primitive, OpExample]]:
    """An instance of ``kind`` and an example for it (T = 1 included; T = S for self-attention)."""
    return small_ops(kind).flatmap(lambda op: st.tuples(st.just(op), op_examples(op, max_rows=max_rows)))
