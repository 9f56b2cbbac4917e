"""Composites: attention head → multi-head attention → MLP (plain or gated) → pre-norm block.

What a block is is a value: :class:`Attention` (heads, key/value heads, mask, scale, the ordered
head-transform slot — rotary full or partial, QK-norm — and score soft-capping), :class:`Norm`,
:class:`MLP`, and :class:`Block` (sequential or parallel residual, sandwich norms). Builders make
these values from their configs and pass them down; the attention composite carries its
:class:`Attention` (:class:`AttentionComposite`), which fast/ reads to run it fused.

Each builder takes its widths as arguments (never one global d_model), declares its
parameters in Θ through ``declare`` under ``prefix``, and returns a :class:`Composite`. So a
model whose width shrinks along depth, splits into branches, or cross-attends (S ≠ T) is
built from the same pieces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import sympy

from spec.dims import Shape, T, concrete
from spec.errors import ConfigError
from spec.graph import Composite, Graph, ParamRef, Source, graph_input
from spec.masks import Relation
from spec.op import Primitive
from spec.ops import (
    Add,
    Affine,
    AttentionScores,
    ConcatHeads,
    GeluErf,
    GeluTanh,
    LayerNorm,
    MaskedSoftmax,
    Multiply,
    Relu,
    RMSNorm,
    Rotary,
    Silu,
    TakeHead,
    WeightedSum,
)
from spec.ops.softcap import check_cap
from spec.types import rows

Declare = Callable[[str, Shape], ParamRef]
"""Adds a Θ entry (name, symbolic shape) and returns a reference to it."""

Activation = Literal["gelu_tanh", "gelu_erf", "relu"]
ACTIVATIONS: dict[str, type[GeluTanh] | type[GeluErf] | type[Relu]] = {
    "gelu_tanh": GeluTanh,
    "gelu_erf": GeluErf,
    "relu": Relu,
}
GATE_ACTIVATIONS: dict[str, type[GeluTanh] | type[GeluErf] | type[Relu] | type[Silu]] = {**ACTIVATIONS, "silu": Silu}
"""The activations a gated MLP's gate may use: SiLU (SwiGLU) and the MLP activations (GeGLU, ReGLU)."""


@dataclass(frozen=True)
class QKNorm:
    """A head transform: RMS-normalise Q and K; ``offset`` scales by 1 + γ (spec/ops/rms_norm.py).

    ``scope="head"`` (Qwen3, Gemma 3): each head's Q and K over its d_head features, with gains
    ``q_norm`` and ``k_norm`` of shape (d_head,) shared by the heads. ``scope="full"`` (OLMo 2):
    all heads' Q at once over n_heads·d_head features, and all key/value heads' K over
    n_kv_heads·d_head, before the heads are split — the heads' concatenation
    (:class:`~spec.ops.ConcatHeads`), one RMS norm, each head's slice (:class:`~spec.ops.TakeHead`)
    —, with gains ``q_norm`` (n_heads, d_head) and ``k_norm`` (n_kv_heads, d_head). A full-width
    norm couples the heads, so it comes first in the slot (nothing per head can precede it)."""

    eps: float = 1e-6
    offset: bool = False
    scope: Literal["head", "full"] = "head"

    def __post_init__(self) -> None:
        if self.scope not in ("head", "full"):
            raise ConfigError(
                f"scope={self.scope!r}, but expected 'head' (each head over d_head) or 'full' (all heads at once) [QKNorm]"
            )


HeadTransform = Rotary | QKNorm
"""What a head may do to its Q and K before the scores, in order: rotate them (full or partial
rotary) or normalise them."""


@dataclass(frozen=True)
class Attention:
    """Multi-head attention as a value: what every builder passes down and what fast/ reads.

    ``n_heads`` query heads of width ``d_head``; ``n_kv_heads`` key/value heads (None: n_heads;
    query head h reads key/value head ⌊h / (n_heads / n_kv_heads)⌋, consecutive heads sharing
    one); the score ``scale`` (exact) and ``mask``; ``transforms`` applied in order to every
    head's Q and K (:data:`HeadTransform`: a :class:`~spec.ops.Rotary` — its width and rows are
    the head's —, a :class:`QKNorm`); ``softcap`` c caps every scaled score to c·tanh(a/c)
    before the mask (Gemma 2); ``bias`` switches b_Q, b_K, b_V and, unless ``out_bias`` says
    otherwise, b_O. Widths may be glossary symbols (bound by the architecture's dims)."""

    n_heads: sympy.Expr | int
    d_head: sympy.Expr | int
    mask: Relation
    scale: sympy.Expr
    n_kv_heads: sympy.Expr | int | None = None
    transforms: tuple[HeadTransform, ...] = ()
    softcap: float | None = None
    bias: bool = False
    out_bias: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mask, Relation):
            raise ConfigError(f"mask={self.mask!r}, but expected a spec.masks.Relation [Attention]; e.g. Causal()")
        for i, t in enumerate(self.transforms):
            if not isinstance(t, (Rotary, QKNorm)):
                raise ConfigError(f"transform={t!r}, but expected a Rotary or a QKNorm [Attention]; the head-transform slot takes those")
            if isinstance(t, QKNorm) and t.scope == "full" and i:
                raise ConfigError(
                    f"transforms={self.transforms!r} has QKNorm(scope='full') at position {i}, but expected it first [Attention]; "
                    "a norm over all heads at once acts before the heads are split, so no per-head transform can precede it"
                )
        norms = [t for t in self.transforms if isinstance(t, QKNorm)]
        if len(norms) > 1 and any(t.scope == "full" for t in norms):
            raise ConfigError(
                f"transforms={self.transforms!r} has {len(norms)} QK-norms, but expected one when a full-width one is among them "
                "[Attention]; their gains q_norm, k_norm would be one Θ entry of two shapes"
            )
        if self.softcap is not None:
            check_cap(self.softcap, "Attention")

    @property
    def rotary(self) -> Rotary | None:
        """The rotation of the slot (None without one)."""
        found = [t for t in self.transforms if isinstance(t, Rotary)]
        return found[0] if found else None

    @property
    def output_bias(self) -> bool:
        return self.bias if self.out_bias is None else self.out_bias

    @property
    def full_norm(self) -> QKNorm | None:
        """The slot's full-width QK-norm (first in the slot), or None."""
        first = self.transforms[0] if self.transforms else None
        return first if isinstance(first, QKNorm) and first.scope == "full" else None


class AttentionComposite(Composite):
    """The composite :func:`multi_head_attention` builds, carrying its :class:`Attention` and the
    names of its Θ entries, so an interpreter reads what the attention is from the value, not from
    the names of its nodes (fast/attention.py). Its body is the heads op by op, as every
    interpreter without a fused kernel runs it."""

    def __init__(self, body: Graph, attention: Attention, entries: Mapping[str, str]) -> None:
        super().__init__("multi_head_attention", "multi-head attention", body, multi_head_attention.__doc__ or "")
        self.attention = attention
        self.entries = dict(entries)
        """W_Q, W_K, W_V, W_O, and when present b_Q, b_K, b_V, b_O, q_norm, k_norm → Θ names."""

    def check_body(self, where: str) -> None:
        """The body reads exactly the Θ entries the description names (a body edited after it was
        built no longer is the attention it describes); refused by name otherwise."""
        read: set[str] = set()
        stack = [self.body]
        while stack:
            g = stack.pop()
            for node in g.nodes.values():
                read |= {ref.name for ref in node.params.values()}
                if isinstance(node.op, Composite):
                    stack.append(node.op.body)
        if read != set(self.entries.values()):
            named = set(self.entries.values())
            raise ConfigError(
                f"attention {where} reads Θ entries {sorted(read - named)} and not {sorted(named - read)}, but expected "
                "exactly those its description names [multi-head attention]; build attention with "
                "spec.blocks.multi_head_attention from an Attention value instead of editing its body"
            )


def attention_head(
    h: int,
    refs: Mapping[str, ParamRef],
    attention: Attention,
    *,
    d_in: sympy.Expr,
    d_kv_in: sympy.Expr,
    q_rows: sympy.Expr = T,
    k_rows: sympy.Expr = T,
    kv_head: int | None = None,
    counts: tuple[int, int] | None = None,
) -> Composite:
    """One attention head: its queries, keys and values are affine maps of the input (Q = x W_Q,h +
    b_Q,h; K and V likewise from the key/value input), the slot's transforms act on Q and K in order,
    and the head returns z = A V with A = masked_softmax(cap(scale · Q Kᵀ)). ``refs`` maps
    W_Q, b_Q, … to whole Θ entries with a leading head axis; this head reads slice h of the query
    entries and slice ``kv_head`` (default h) of the key/value entries.

    With a full-width QK-norm first in the slot (``QKNorm(scope="full")``) the head's inputs are
    the normalised queries and keys of every head, ``Q`` and ``K`` (``counts`` = (n_heads,
    n_kv_heads) of them, side by side), and ``x_kv``: the head takes its slices of Q and K
    (``norm_Q``, ``norm_K``), projects V, and applies the rest of the slot."""
    a = attention
    d_head = a.d_head
    g_kv = h if kv_head is None else kv_head
    full = a.full_norm
    if full is not None:
        if counts is None:
            raise ConfigError(f"counts=None, but expected (n_heads, n_kv_heads) for a full-width QK-norm [attention head {h}]")
        n_q, n_kv = counts
        g = Graph(f"head_{h}", {
            "Q": rows(q_rows, n_q * sympy.sympify(d_head)), "K": rows(k_rows, n_kv * sympy.sympify(d_head)),
            "x_kv": rows(k_rows, d_kv_in),
        })
    else:
        g = Graph(f"head_{h}", {"x_q": rows(q_rows, d_in), "x_kv": rows(k_rows, d_kv_in)})

    def project(name: str, x: Source, n_rows: sympy.Expr, d: sympy.Expr) -> Source:
        slot = h if name == "Q" else g_kv
        params = {"W": ParamRef(refs[f"W_{name}"].name, (slot,))}
        if a.bias:
            params["b"] = ParamRef(refs[f"b_{name}"].name, (slot,))
        return g.add(name, Affine(d, d_head, a.bias, n_rows), {"x": x}, params)

    if full is not None:
        Q = g.add("norm_Q", TakeHead(n_q, d_head, h, q_rows), {"x": graph_input("Q")})
        K = g.add("norm_K", TakeHead(n_kv, d_head, g_kv, k_rows), {"x": graph_input("K")})
    else:
        Q = project("Q", graph_input("x_q"), q_rows, d_in)
        K = project("K", graph_input("x_kv"), k_rows, d_kv_in)
    V = project("V", graph_input("x_kv"), k_rows, d_kv_in)
    for t in a.transforms[1:] if full is not None else a.transforms:
        if isinstance(t, Rotary):
            Q = g.add("rotary_Q", dataclasses.replace(t, d=d_head, rows=q_rows), {"x": Q})
            K = g.add("rotary_K", dataclasses.replace(t, d=d_head, rows=k_rows), {"x": K})
        else:
            Q = g.add("norm_Q", RMSNorm(d_head, t.eps, t.offset, q_rows), {"x": Q}, {"gamma": refs["q_norm"]})
            K = g.add("norm_K", RMSNorm(d_head, t.eps, t.offset, k_rows), {"x": K}, {"gamma": refs["k_norm"]})
    scores = g.add("scores", AttentionScores(d_head, a.scale, q_rows, k_rows, a.softcap), {"Q": Q, "K": K})
    A = g.add("softmax", MaskedSoftmax(a.mask, q_rows, k_rows), {"x": scores})
    z = g.add("z", WeightedSum(d_head, q_rows, k_rows), {"A": A, "V": V})
    g.output("y", z)
    return Composite("attention_head", "attention head", g, attention_head.__doc__ or "")


def multi_head_attention(
    declare: Declare,
    prefix: str,
    dims: Mapping[sympy.Symbol, int],
    attention: Attention,
    *,
    d_in: sympy.Expr,
    d_out: sympy.Expr,
    d_kv_in: sympy.Expr | None = None,
    q_rows: sympy.Expr = T,
    k_rows: sympy.Expr = T,
) -> AttentionComposite:
    """``attention``'s heads side by side, concatenated, then projected by W_O (+ b_O).

    Θ: W_Q: (n_heads, d_in, d_head), W_K, W_V: (n_kv_heads, d_kv_in, d_head); b_Q: (n_heads,
    d_head), b_K, b_V: (n_kv_heads, d_head); W_O: (n_heads, d_head, d_out), read as one
    (n_heads·d_head, d_out) matrix after the concatenation; b_O: (d_out,); with a QK-norm,
    q_norm, k_norm: (d_head,) — with a full-width one, q_norm: (n_heads, d_head), k_norm: (n_kv_heads,
    d_head), read as one gain over each concatenation (nodes ``Q_h``, ``K_g``, ``concat_Q``,
    ``norm_Q``, ``concat_K``, ``norm_K`` before the heads). ``d_kv_in`` (default ``d_in``) and
    ``k_rows`` differ only for cross-attention."""
    a = attention
    n_heads, d_head = a.n_heads, a.d_head
    d_kv = d_in if d_kv_in is None else d_kv_in
    kv = n_heads if a.n_kv_heads is None else a.n_kv_heads
    count = concrete(n_heads, dict(dims))
    kv_count = concrete(kv, dict(dims))
    if kv_count < 1 or count % kv_count:
        raise ConfigError(
            f"n_kv_heads={kv_count}, but expected a divisor of n_heads={count} [{prefix}]; each key/value head "
            "serves n_heads / n_kv_heads consecutive query heads"
        )
    group = count // kv_count
    refs = {
        "W_Q": declare(f"{prefix}.W_Q", (n_heads, d_in, d_head)),
        "W_K": declare(f"{prefix}.W_K", (kv, d_kv, d_head)),
        "W_V": declare(f"{prefix}.W_V", (kv, d_kv, d_head)),
    }
    if a.bias:
        refs |= {
            "b_Q": declare(f"{prefix}.b_Q", (n_heads, d_head)),
            "b_K": declare(f"{prefix}.b_K", (kv, d_head)),
            "b_V": declare(f"{prefix}.b_V", (kv, d_head)),
        }
    full = a.full_norm
    if full is not None:
        refs |= {"q_norm": declare(f"{prefix}.q_norm", (n_heads, d_head)), "k_norm": declare(f"{prefix}.k_norm", (kv, d_head))}
    elif any(isinstance(t, QKNorm) for t in a.transforms):
        refs |= {"q_norm": declare(f"{prefix}.q_norm", (d_head,)), "k_norm": declare(f"{prefix}.k_norm", (d_head,))}
    W_O = declare(f"{prefix}.W_O", (n_heads, d_head, d_out))
    g = Graph("attn", {"x_q": rows(q_rows, d_in), "x_kv": rows(k_rows, d_kv)})
    ports: dict[str, Source] = {"x_q": graph_input("x_q"), "x_kv": graph_input("x_kv")}
    if full is not None:  # every head's Q (and K) side by side, one RMS norm over the concatenation
        for name, n, n_sym, x_in, n_rows, width in (("Q", count, n_heads, "x_q", q_rows, d_in), ("K", kv_count, kv, "x_kv", k_rows, d_kv)):
            parts = {}
            for i in range(n):
                params = {"W": ParamRef(refs[f"W_{name}"].name, (i,))}
                if a.bias:
                    params["b"] = ParamRef(refs[f"b_{name}"].name, (i,))
                parts[f"z_{i}"] = g.add(f"{name}_{i}", Affine(width, d_head, a.bias, n_rows), {"x": graph_input(x_in)}, params)
            concat = g.add(f"concat_{name}", ConcatHeads(n, d_head, n_rows), parts)
            width_all = sympy.sympify(n_sym) * sympy.sympify(d_head)
            gain = ParamRef(refs[f"{name.lower()}_norm"].name, reshape=(width_all,))
            ports[name] = g.add(f"norm_{name}", RMSNorm(width_all, full.eps, full.offset, n_rows), {"x": concat}, {"gamma": gain})
        del ports["x_q"]
    heads = {}
    for h in range(count):
        head = attention_head(h, refs, a, d_in=d_in, d_kv_in=d_kv, q_rows=q_rows, k_rows=k_rows, kv_head=h // group,
                              counts=(count, kv_count))
        heads[f"z_{h}"] = g.add(f"head_{h}", head, ports)
    concat = g.add("concat", ConcatHeads(count, d_head, q_rows), heads)
    params = {"W": ParamRef(W_O.name, reshape=(n_heads * d_head, d_out))}
    entries = {name: ref.name for name, ref in refs.items()} | {"W_O": W_O.name}
    if a.output_bias:
        params["b"] = declare(f"{prefix}.b_O", (d_out,))
        entries["b_O"] = params["b"].name
    out = g.add("W_O", Affine(n_heads * d_head, d_out, a.output_bias, q_rows), {"x": concat}, params)
    g.output("y", out)
    return AttentionComposite(g, a, entries)


def mlp(
    declare: Declare,
    prefix: str,
    *,
    d: sympy.Expr,
    d_mlp: sympy.Expr,
    activation: str,
    bias: bool,
    n_rows: sympy.Expr = T,
) -> Composite:
    """The position-wise feed-forward network: affine d → d_mlp, activation, affine d_mlp → d."""
    g = Graph("mlp", {"x": rows(n_rows, d)})
    up = {"W": declare(f"{prefix}.W_in", (d, d_mlp))}
    down = {"W": declare(f"{prefix}.W_out", (d_mlp, d))}
    if bias:
        up["b"] = declare(f"{prefix}.b_in", (d_mlp,))
        down["b"] = declare(f"{prefix}.b_out", (d,))
    hidden = g.add("W_in", Affine(d, d_mlp, bias, n_rows), {"x": graph_input("x")}, up)
    act = g.add(activation, activation_op(activation, d_mlp, n_rows), {"x": hidden})
    g.output("y", g.add("W_out", Affine(d_mlp, d, bias, n_rows), {"x": act}, down))
    return Composite("mlp", "MLP", g, mlp.__doc__ or "")


def activation_op(name: str, d: sympy.Expr, n_rows: sympy.Expr = T) -> Primitive:
    """The activation op named ``name`` (gelu_tanh, gelu_erf, relu, or silu — Marian's swish FFN);
    which of them a family admits is its config's check."""
    if name not in GATE_ACTIVATIONS:
        import difflib

        close = difflib.get_close_matches(name, list(GATE_ACTIVATIONS), n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"activation={name!r}, but expected one of {list(GATE_ACTIVATIONS)} [MLP]{hint}")
    return GATE_ACTIVATIONS[name](d, n_rows)


def layer_norm(
    declare: Declare, prefix: str, *, d: sympy.Expr, eps: float, bias: bool
) -> tuple[LayerNorm, dict[str, ParamRef]]:
    """A layer norm op and its Θ entries γ (and β)."""
    params = {"gamma": declare(f"{prefix}.gamma", (d,))}
    if bias:
        params["beta"] = declare(f"{prefix}.beta", (d,))
    return LayerNorm(d, eps, bias), params


def gated_mlp(
    declare: Declare,
    prefix: str,
    *,
    d: sympy.Expr,
    d_mlp: sympy.Expr,
    activation: str,
    bias: bool,
    n_rows: sympy.Expr = T,
) -> Composite:
    """The gated feed-forward network (SwiGLU with ``activation="silu"``, GeGLU with a GELU):
    act(x W_gate) ⊙ (x W_up), then W_down. Θ: W_gate, W_up: (d, d_mlp); W_down: (d_mlp, d);
    with ``bias``, b_gate, b_up: (d_mlp,) and b_down: (d,)."""
    if activation not in GATE_ACTIVATIONS:
        import difflib

        close = difflib.get_close_matches(activation, list(GATE_ACTIVATIONS), n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"activation={activation!r}, but expected one of {list(GATE_ACTIVATIONS)} [gated MLP]{hint}")
    g = Graph("mlp", {"x": rows(n_rows, d)})
    x = graph_input("x")
    gate = {"W": declare(f"{prefix}.W_gate", (d, d_mlp))}
    up = {"W": declare(f"{prefix}.W_up", (d, d_mlp))}
    down = {"W": declare(f"{prefix}.W_down", (d_mlp, d))}
    if bias:
        gate["b"] = declare(f"{prefix}.b_gate", (d_mlp,))
        up["b"] = declare(f"{prefix}.b_up", (d_mlp,))
        down["b"] = declare(f"{prefix}.b_down", (d,))
    a = g.add("W_gate", Affine(d, d_mlp, bias, n_rows), {"x": x}, gate)
    a = g.add(activation, GATE_ACTIVATIONS[activation](d_mlp, n_rows), {"x": a})
    b = g.add("W_up", Affine(d, d_mlp, bias, n_rows), {"x": x}, up)
    hidden = g.add("gated", Multiply(d_mlp, n_rows), {"a": a, "b": b})
    g.output("y", g.add("W_down", Affine(d_mlp, d, bias, n_rows), {"x": hidden}, down))
    return Composite("gated_mlp", "gated MLP", g, gated_mlp.__doc__ or "")


def rms_norm(declare: Declare, prefix: str, *, d: sympy.Expr, eps: float, offset: bool = False) -> tuple[RMSNorm, dict[str, ParamRef]]:
    """An RMS norm op and its Θ entry γ."""
    return RMSNorm(d, eps, offset), {"gamma": declare(f"{prefix}.gamma", (d,))}


@dataclass(frozen=True)
class Norm:
    """A block's normalisation: ``layer`` (LayerNorm, β when ``bias``) or ``rms`` (RMSNorm, gain
    1 + γ when ``offset``, Gemma's). Its nodes are named ``ln_i`` (layer) or ``norm_i`` (rms)."""

    kind: Literal["layer", "rms"]
    eps: float
    bias: bool = True
    offset: bool = False

    def make(self, declare: Declare, prefix: str, d: sympy.Expr) -> tuple[LayerNorm | RMSNorm, dict[str, ParamRef]]:
        if self.kind == "layer":
            return layer_norm(declare, prefix, d=d, eps=self.eps, bias=self.bias)
        return rms_norm(declare, prefix, d=d, eps=self.eps, offset=self.offset)

    @property
    def stem(self) -> str:
        return "ln" if self.kind == "layer" else "norm"


@dataclass(frozen=True)
class MLP:
    """A block's feed-forward network: plain (W_in, act, W_out) or ``gated`` (act(x W_gate) ⊙
    x W_up, then W_down), of width ``d_mlp``, with or without biases."""

    d_mlp: sympy.Expr
    activation: str
    bias: bool
    gated: bool = False

    def make(self, declare: Declare, prefix: str, d: sympy.Expr, n_rows: sympy.Expr = T) -> Composite:
        build = gated_mlp if self.gated else mlp
        return build(declare, prefix, d=d, d_mlp=self.d_mlp, activation=self.activation, bias=self.bias, n_rows=n_rows)


@dataclass(frozen=True)
class Block:
    """A decoder block as a value.

    ``residual="sequential"`` (GPT-2, Llama): x + attn(N₁ x), then + mlp(N₂ ·);
    ``"parallel"`` (GPT-NeoX, Pythia, GPT-J): x + (mlp(N₂ x) + attn(N₁ x)), both branches reading x.
    ``placement`` says where each branch's norm is: ``"pre"`` (above: the norm reads the residual
    stream, nodes ``<stem>_i``) or ``"post"`` (OLMo 2: x + N₁(attn(x)), then + N₂(mlp(·)) — the
    sublayer reads the stream itself and its output is normalised before it is added, nodes
    ``post_<stem>_i``; not the original Transformer's N(x + sublayer(x)), which normalises the stream).
    ``post_norms`` (Gemma 2's sandwich): a pre-norm block's branches are normalised again
    (``post_<stem>_i``) before they are added to the residual stream."""

    attention: Attention
    norm: Norm
    mlp: MLP
    residual: Literal["sequential", "parallel"] = "sequential"
    post_norms: bool = False
    placement: Literal["pre", "post"] = "pre"

    def __post_init__(self) -> None:
        if self.residual not in ("sequential", "parallel"):
            raise ConfigError(f"residual={self.residual!r}, but expected 'sequential' or 'parallel' [Block]")
        if self.placement not in ("pre", "post"):
            raise ConfigError(f"placement={self.placement!r}, but expected 'pre' (norm before each sublayer) or 'post' (after) [Block]")
        if self.placement == "post" and self.post_norms:
            raise ConfigError(
                "post_norms=True, but expected False with placement='post' [Block]; a post-norm block already normalises each "
                "branch after its sublayer (sandwich norms are placement='pre' with post_norms=True)"
            )

    @property
    def title(self) -> str:
        kind = ("pre-" if self.placement == "pre" else "post-") + ("LN" if self.norm.kind == "layer" else "RMSNorm")
        extra = (", parallel residual" if self.residual == "parallel" else "") + (", sandwich norms" if self.post_norms else "")
        extra += ", each branch normalised before the residual add" if self.placement == "post" else ""
        return f"{kind} transformer block{extra}"


def pre_norm_block(declare: Declare, prefix: str, dims: Mapping[sympy.Symbol, int], block: Block, *, d: sympy.Expr) -> Composite:
    """A residual block: attention and then the MLP each read the normalised residual stream and
    add their output back to it (a parallel block adds both branches, read from the same stream,
    at once); with ``placement="post"`` each reads the stream itself and its output is normalised
    before the add.

    The block ``block`` at width ``d`` has nodes ``<stem>_1``, ``attn``, ``<stem>_2``, ``mlp`` (post
    placement: ``attn``, ``post_<stem>_1``, ``mlp``, ``post_<stem>_2``) and the residual adds
    (``add_attn``, ``add_mlp``; parallel: ``add_branches``, ``add_residual``)."""
    g = Graph("block", {"x": rows(T, d)})
    x = graph_input("x")
    stem = block.norm.stem

    def sublayer(index: int, x_in: Source, name: str, op: Composite, ports: tuple[str, ...]) -> Source:
        y_in = x_in
        if block.placement == "pre":
            n, p = block.norm.make(declare, f"{prefix}.{stem}_{index}", d)
            y_in = g.add(f"{stem}_{index}", n, {"x": x_in}, p)
        y = g.add(name, op, {port: y_in for port in ports})
        if block.post_norms or block.placement == "post":
            n, p = block.norm.make(declare, f"{prefix}.post_{stem}_{index}", d)
            y = g.add(f"post_{stem}_{index}", n, {"x": y}, p)
        return y

    attn = multi_head_attention(declare, f"{prefix}.attn", dims, block.attention, d_in=d, d_out=d)
    if block.residual == "parallel":
        a = sublayer(1, x, "attn", attn, ("x_q", "x_kv"))
        m = sublayer(2, x, "mlp", block.mlp.make(declare, f"{prefix}.mlp", d), ("x",))
        both = g.add("add_branches", Add(d), {"a": m, "b": a})
        g.output("y", g.add("add_residual", Add(d), {"a": both, "b": x}))
    else:
        a = sublayer(1, x, "attn", attn, ("x_q", "x_kv"))
        x = g.add("add_attn", Add(d), {"a": x, "b": a})
        m = sublayer(2, x, "mlp", block.mlp.make(declare, f"{prefix}.mlp", d), ("x",))
        g.output("y", g.add("add_mlp", Add(d), {"a": x, "b": m}))
    return Composite("block", block.title, g, pre_norm_block.__doc__ or "")
