"""Hypothesis strategies for verification: op inputs and parameters derived from the op's
declared types, token batches with padding, and small GPT configs.

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

from spec.architectures import GPTConfig
from spec.architectures.gpt import AttentionKind
from spec.dims import S as S_SYMBOL
from spec.dims import T as T_SYMBOL
from spec.graph import Architecture
from spec.masks import Banded, Causal, Full, Intersection, KeyPadding, Relation, Window
from spec.op import Primitive
from spec.ops import (
    Add,
    Affine,
    AttentionScores,
    ConcatHeads,
    Conv1d,
    GeluErf,
    GeluTanh,
    LayerNorm,
    LearnedPositional,
    MaskedSoftmax,
    OneHot,
    Relu,
    SinusoidalPositional,
    TokenEmbedding,
    WeightedSum,
)
from spec.types import Axis, Element

INPUT_SCALES = (1.0, 1e-3, 30.0, 1e-8, 1e4)
"""Magnitudes of real inputs, plainest first (hypothesis shrinks towards the first)."""
PARAM_SCALES = (0.5, 0.02, 3.0, 1e-8, 1e3)
SCORE_VARIANTS = ("normal", "ties", "near +1e4", "near -1e4", "mixed ±1e4")
"""How attention scores (pos × key_pos inputs) are drawn: the hard cases of DESIGN.md."""


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
    return {T_SYMBOL: example.rows, S_SYMBOL: example.keys}


def op_arrays(op: Primitive, example: OpExample) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The inputs and parameters of ``example`` for ``op`` (float64; ids int64)."""
    bound = op.bind(sizes_of(op, example))
    rng = np.random.default_rng(example.seed)
    inputs: dict[str, np.ndarray] = {}
    for name, ttype in bound.inputs().items():
        shape = tuple(int(d) for d in ttype.shape)
        if ttype.element is Element.TOKEN:
            inputs[name] = rng.integers(0, _vocab(op), size=shape).astype(np.int64)
        elif Axis.ONE_HOT in ttype.axes:
            ids = rng.integers(0, shape[-1], size=shape[:-1])
            one_hot = np.zeros(shape)
            np.put_along_axis(one_hot, ids[..., None], 1.0, axis=-1)
            inputs[name] = one_hot
        elif Axis.KEY in ttype.axes:
            inputs[name] = _scores(rng, shape, example)
        else:
            inputs[name] = rng.normal(0.0, example.input_scale, size=shape)
    params: dict[str, np.ndarray] = {}
    for name, symbolic in bound.params().items():
        shape = tuple(int(d) for d in symbolic)
        sample = rng.normal(0.0, example.param_scale, size=shape)
        params[name] = 1.0 + sample if name == "gamma" else sample
    return inputs, params


def _vocab(op: Primitive) -> int:
    n = getattr(op, "n_vocab", None)
    return int(n) if n is not None else 2**31 - 1


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
    """A batch of token sequences: each row's real length and padding side, and a seed."""

    lengths: tuple[int, ...]
    left_padded: tuple[bool, ...]
    seed: int

    def arrays(self, n_vocab: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """ids (B, T) and valid (B, T); padded slots hold random ids too (they must not matter)."""
        rng = np.random.default_rng(self.seed)
        width = max(self.lengths, default=0)
        ids = rng.integers(0, n_vocab, size=(len(self.lengths), width)).astype(np.int64)
        valid = np.zeros((len(self.lengths), width), dtype=bool)
        for b, (n, left) in enumerate(zip(self.lengths, self.left_padded, strict=True)):
            if left:
                valid[b, width - n :] = True
            else:
                valid[b, :n] = True
        return ids, valid


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


@st.composite
def gpt_configs(draw: st.DrawFn, *, max_layers: int = 2, max_heads: int = 3, max_vocab: int = 40) -> GPTConfig:
    """Small valid GPT configs covering every option of :class:`GPTConfig`, including one
    head, d_head = 1, n_heads·d_head ≠ d_model, banded layers, untied heads and no biases."""
    n_heads = draw(st.integers(1, max_heads), label="n_heads")
    d_head = draw(st.integers(1, 4), label="d_head")
    d_model = draw(st.sampled_from([n_heads * d_head, max(1, n_heads * d_head + draw(st.integers(-1, 2)))]), label="d_model")
    patterns: list[tuple[AttentionKind, ...]] = [("dense",), ("dense", "banded"), ("banded",)]
    pattern = draw(st.sampled_from(patterns), label="attention")
    banded = "banded" in pattern
    return GPTConfig(
        n_vocab=draw(st.integers(2, max_vocab), label="n_vocab"),
        n_ctx=draw(st.integers(8, 16), label="n_ctx"),
        d_model=d_model,
        n_layers=draw(st.integers(1, max_layers), label="n_layers"),
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=draw(st.integers(1, 12), label="d_mlp"),
        activation=draw(st.sampled_from(["gelu_tanh", "gelu_erf", "relu"]), label="activation"),
        eps=draw(st.sampled_from([1e-5, 1e-6, 0.1]), label="eps"),
        bias=draw(st.booleans(), label="bias"),
        tied=draw(st.booleans(), label="tied"),
        positional=draw(st.sampled_from(["learned", "sinusoidal"]), label="positional"),
        attention=pattern,
        band_width=draw(st.integers(1, 4), label="band_width") if banded else None,
        attn_scale=draw(st.sampled_from([None, 0.5, 2.0]), label="attn_scale"),
        scale_by_inverse_layer=draw(st.booleans(), label="scale_by_inverse_layer"),
        name="drawn",
    )


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

def _masks(keys: int | None) -> st.SearchStrategy[Relation]:
    families: list[st.SearchStrategy[Relation]] = [
        st.just(Causal()),
        st.integers(1, 4).map(Banded),
        st.just(Full()),
        st.tuples(st.integers(-3, 3), st.integers(0, 3)).map(lambda lo_len: Window(lo_len[0], lo_len[0] + lo_len[1])),
    ]
    if keys is not None:
        valid = st.lists(st.booleans(), min_size=keys, max_size=keys).map(tuple)
        families.append(valid.map(KeyPadding))  # all False: every row has no allowed key
        families.append(valid.map(lambda v: Intersection((Causal(), KeyPadding(v)))))
    return st.one_of(*families)


@st.composite
def _masked_softmax(draw: st.DrawFn) -> MaskedSoftmax:
    padded = draw(st.booleans(), label="key padding")
    if padded:
        keys = draw(st.integers(1, 6), label="S")
        return MaskedSoftmax(draw(_masks(keys)), T_SYMBOL, keys)
    return MaskedSoftmax(draw(_masks(None)), T_SYMBOL, draw(st.sampled_from([T_SYMBOL, S_SYMBOL])))


@st.composite
def _attention_scores(draw: st.DrawFn) -> AttentionScores:
    d_head = draw(st.integers(1, 4), label="d_head")
    scale = draw(st.sampled_from([1 / sympy.sqrt(d_head), sympy.Integer(1), sympy.Rational(1, 8), sympy.Integer(2)]))
    return AttentionScores(d_head, scale, T_SYMBOL, draw(st.sampled_from([T_SYMBOL, S_SYMBOL])))



@st.composite
def _conv1d(draw: st.DrawFn) -> Conv1d:
    """Kernels 1–4 with the padding anywhere from all-left (causal) to all-right."""
    kernel = draw(st.integers(1, 4), label="kernel")
    pad_left = draw(st.integers(0, kernel - 1), label="pad_left")
    widths = st.integers(1, 6)
    return Conv1d(draw(widths), draw(widths), kernel, pad_left, kernel - 1 - pad_left, draw(st.booleans()))


_width = st.integers(1, 6)
SMALL_OPS: dict[str, st.SearchStrategy[Primitive]] = {
    "one_hot": st.builds(OneHot, st.integers(1, 8)),
    "token_embedding": st.builds(TokenEmbedding, st.integers(1, 8), _width),
    "learned_positional": st.builds(LearnedPositional, st.integers(6, 8), _width),
    "sinusoidal_positional": st.builds(SinusoidalPositional, _width),
    "layer_norm": st.builds(LayerNorm, _width, st.sampled_from([1e-5, 1e-12, 0.1]), st.booleans()),
    "affine": st.builds(Affine, _width, _width, st.booleans()),
    "gelu_erf": st.builds(GeluErf, _width),
    "gelu_tanh": st.builds(GeluTanh, _width),
    "relu": st.builds(Relu, _width),
    "add": st.builds(Add, _width),
    "attention_scores": _attention_scores(),
    "masked_softmax": _masked_softmax(),
    "weighted_sum": st.builds(WeightedSum, st.integers(1, 4), st.just(T_SYMBOL), st.sampled_from([T_SYMBOL, S_SYMBOL])),
    "concat_heads": st.builds(ConcatHeads, st.integers(1, 3), st.integers(1, 3)),
    "conv1d": _conv1d(),
}
"""Small instances of every primitive kind, covering its attributes' hard cases (every mask
family, rows with no allowed key, d_head = 1, one head, ε from 1e-12 to 0.1)."""


def small_op_examples(kind: str, *, max_rows: int = 6) -> st.SearchStrategy[tuple[Primitive, OpExample]]:
    """An instance of ``kind`` and an example for it (T = 1 included; T = S for self-attention)."""
    return SMALL_OPS[kind].flatmap(lambda op: st.tuples(st.just(op), op_examples(op, max_rows=max_rows)))
