"""Composites: attention head → multi-head attention → MLP (plain or gated) → block (GPT's pre-LN,
Llama's pre-RMSNorm).

Each builder takes its widths as arguments (never one global d_model), declares its
parameters in Θ through ``declare`` under ``prefix``, and returns a :class:`Composite`. So a
model whose width shrinks along depth, splits into branches, or cross-attends (S ≠ T) is
built from the same pieces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
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
    WeightedSum,
)
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


def attention_head(
    h: int,
    refs: Mapping[str, ParamRef],
    *,
    d_in: sympy.Expr,
    d_kv_in: sympy.Expr,
    d_head: sympy.Expr,
    mask: Relation,
    scale: sympy.Expr,
    bias: bool,
    q_rows: sympy.Expr = T,
    k_rows: sympy.Expr = T,
    kv_head: int | None = None,
    rotary: Rotary | None = None,
) -> Composite:
    """Head h: Q = x W_Q^h + b_Q^h, K and V likewise from the key/value input, then
    A = masked_softmax(scale · Q Kᵀ), z = A V. ``refs`` maps W_Q, b_Q, … to whole Θ entries
    with a leading head axis; this head reads slice h of the query entries and slice
    ``kv_head`` (default h) of the key/value entries — grouped-query attention shares one
    key/value slice among several heads. With ``rotary`` (an op whose rows are replaced by the
    queries' and the keys'), Q and K are rotated at their positions before the scores."""
    g = Graph(f"head_{h}", {"x_q": rows(q_rows, d_in), "x_kv": rows(k_rows, d_kv_in)})
    g_kv = h if kv_head is None else kv_head

    def project(name: str, x: Source, n_rows: sympy.Expr, d: sympy.Expr) -> Source:
        slot = h if name == "Q" else g_kv
        params = {"W": ParamRef(refs[f"W_{name}"].name, (slot,))}
        if bias:
            params["b"] = ParamRef(refs[f"b_{name}"].name, (slot,))
        return g.add(name, Affine(d, d_head, bias, n_rows), {"x": x}, params)

    Q = project("Q", graph_input("x_q"), q_rows, d_in)
    K = project("K", graph_input("x_kv"), k_rows, d_kv_in)
    V = project("V", graph_input("x_kv"), k_rows, d_kv_in)
    if rotary is not None:
        Q = g.add("rotary_Q", dataclasses.replace(rotary, d=d_head, rows=q_rows), {"x": Q})
        K = g.add("rotary_K", dataclasses.replace(rotary, d=d_head, rows=k_rows), {"x": K})
    scores = g.add("scores", AttentionScores(d_head, scale, q_rows, k_rows), {"Q": Q, "K": K})
    A = g.add("softmax", MaskedSoftmax(mask, q_rows, k_rows), {"x": scores})
    z = g.add("z", WeightedSum(d_head, q_rows, k_rows), {"A": A, "V": V})
    g.output("y", z)
    return Composite("attention_head", "attention head", g)


def multi_head_attention(
    declare: Declare,
    prefix: str,
    dims: Mapping[sympy.Symbol, int],
    *,
    d_in: sympy.Expr,
    n_heads: sympy.Expr,
    d_head: sympy.Expr,
    d_out: sympy.Expr,
    mask: Relation,
    scale: sympy.Expr,
    bias: bool,
    d_kv_in: sympy.Expr | None = None,
    q_rows: sympy.Expr = T,
    k_rows: sympy.Expr = T,
    n_kv_heads: sympy.Expr | None = None,
    rotary: Rotary | None = None,
    out_bias: bool | None = None,
) -> Composite:
    """Heads side by side, concatenated, then projected by W_O (+ b_O).

    Θ: W_Q: (n_heads, d_in, d_head), W_K, W_V: (n_kv_heads, d_in, d_head); b_Q: (n_heads,
    d_head), b_K, b_V: (n_kv_heads, d_head); W_O: (n_heads, d_head, d_out), read as one
    (n_heads·d_head, d_out) matrix after the concatenation; b_O: (d_out,). ``d_kv_in`` differs
    from ``d_in`` only for cross-attention.

    Grouped-query attention: with ``n_kv_heads`` (default n_heads, one key/value head per
    head) dividing n_heads, query head h reads key/value head ⌊h / (n_heads / n_kv_heads)⌋
    (consecutive heads share one; n_kv_heads = 1 is multi-query attention). ``rotary`` rotates
    every head's Q and K (:func:`attention_head`). ``bias`` switches b_Q, b_K, b_V and, unless
    ``out_bias`` says otherwise, b_O.
    """
    d_kv = d_in if d_kv_in is None else d_kv_in
    kv = n_heads if n_kv_heads is None else n_kv_heads
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
    if bias:
        refs |= {
            "b_Q": declare(f"{prefix}.b_Q", (n_heads, d_head)),
            "b_K": declare(f"{prefix}.b_K", (kv, d_head)),
            "b_V": declare(f"{prefix}.b_V", (kv, d_head)),
        }
    W_O = declare(f"{prefix}.W_O", (n_heads, d_head, d_out))
    g = Graph("attn", {"x_q": rows(q_rows, d_in), "x_kv": rows(k_rows, d_kv)})
    heads = {}
    for h in range(count):
        head = attention_head(
            h, refs, d_in=d_in, d_kv_in=d_kv, d_head=d_head, mask=mask, scale=scale,
            bias=bias, q_rows=q_rows, k_rows=k_rows, kv_head=h // group, rotary=rotary,
        )
        heads[f"z_{h}"] = g.add(f"head_{h}", head, {"x_q": graph_input("x_q"), "x_kv": graph_input("x_kv")})
    concat = g.add("concat", ConcatHeads(count, d_head, q_rows), heads)
    params = {"W": ParamRef(W_O.name, reshape=(n_heads * d_head, d_out))}
    o_bias = bias if out_bias is None else out_bias
    if o_bias:
        params["b"] = declare(f"{prefix}.b_O", (d_out,))
    out = g.add("W_O", Affine(n_heads * d_head, d_out, o_bias, q_rows), {"x": concat}, params)
    g.output("y", out)
    return Composite("multi_head_attention", "multi-head attention", g)


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
    return Composite("mlp", "MLP", g)


def activation_op(name: str, d: sympy.Expr, n_rows: sympy.Expr = T) -> Primitive:
    """The activation op named ``name`` (gelu_tanh, gelu_erf, relu)."""
    if name not in ACTIVATIONS:
        import difflib

        close = difflib.get_close_matches(name, list(ACTIVATIONS), n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"activation={name!r}, but expected one of {list(ACTIVATIONS)} [MLP]{hint}")
    return ACTIVATIONS[name](d, n_rows)


def layer_norm(
    declare: Declare, prefix: str, *, d: sympy.Expr, eps: float, bias: bool
) -> tuple[LayerNorm, dict[str, ParamRef]]:
    """A layer norm op and its Θ entries γ (and β)."""
    params = {"gamma": declare(f"{prefix}.gamma", (d,))}
    if bias:
        params["beta"] = declare(f"{prefix}.beta", (d,))
    return LayerNorm(d, eps, bias), params


def pre_ln_block(
    declare: Declare,
    prefix: str,
    dims: Mapping[sympy.Symbol, int],
    *,
    d: sympy.Expr,
    n_heads: sympy.Expr,
    d_head: sympy.Expr,
    d_mlp: sympy.Expr,
    mask: Relation,
    scale: sympy.Expr,
    eps: float,
    activation: str,
    attn_bias: bool,
    mlp_bias: bool,
    ln_bias: bool,
) -> Composite:
    """A GPT-2 block: x + attn(LN₁(x)), then + mlp(LN₂(·))."""
    g = Graph("block", {"x": rows(T, d)})
    x = graph_input("x")
    ln1, p1 = layer_norm(declare, f"{prefix}.ln_1", d=d, eps=eps, bias=ln_bias)
    a_in = g.add("ln_1", ln1, {"x": x}, p1)
    attn = multi_head_attention(
        declare, f"{prefix}.attn", dims, d_in=d, n_heads=n_heads, d_head=d_head, d_out=d,
        mask=mask, scale=scale, bias=attn_bias,
    )
    a = g.add("attn", attn, {"x_q": a_in, "x_kv": a_in})
    x = g.add("add_attn", Add(d), {"a": x, "b": a})
    ln2, p2 = layer_norm(declare, f"{prefix}.ln_2", d=d, eps=eps, bias=ln_bias)
    m_in = g.add("ln_2", ln2, {"x": x}, p2)
    m = g.add("mlp", mlp(declare, f"{prefix}.mlp", d=d, d_mlp=d_mlp, activation=activation, bias=mlp_bias), {"x": m_in})
    g.output("y", g.add("add_mlp", Add(d), {"a": x, "b": m}))
    return Composite("block", "pre-LN transformer block", g)


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
    return Composite("gated_mlp", "gated MLP", g)


def rms_norm(declare: Declare, prefix: str, *, d: sympy.Expr, eps: float, offset: bool = False) -> tuple[RMSNorm, dict[str, ParamRef]]:
    """An RMS norm op and its Θ entry γ."""
    return RMSNorm(d, eps, offset), {"gamma": declare(f"{prefix}.gamma", (d,))}


def pre_rms_block(
    declare: Declare,
    prefix: str,
    dims: Mapping[sympy.Symbol, int],
    *,
    d: sympy.Expr,
    n_heads: sympy.Expr,
    n_kv_heads: sympy.Expr,
    d_head: sympy.Expr,
    d_mlp: sympy.Expr,
    mask: Relation,
    scale: sympy.Expr,
    rotary: Rotary,
    eps: float,
    activation: str,
    qkv_bias: bool,
    out_bias: bool,
    mlp_bias: bool,
) -> Composite:
    """A Llama block: x + attn(RMSNorm₁(x)) with rotary, grouped-query attention, then
    + gated_mlp(RMSNorm₂(·))."""
    g = Graph("block", {"x": rows(T, d)})
    x = graph_input("x")
    n1, p1 = rms_norm(declare, f"{prefix}.norm_1", d=d, eps=eps)
    a_in = g.add("norm_1", n1, {"x": x}, p1)
    attn = multi_head_attention(
        declare, f"{prefix}.attn", dims, d_in=d, n_heads=n_heads, d_head=d_head, d_out=d, mask=mask, scale=scale,
        bias=qkv_bias, n_kv_heads=n_kv_heads, rotary=rotary, out_bias=out_bias,
    )
    a = g.add("attn", attn, {"x_q": a_in, "x_kv": a_in})
    x = g.add("add_attn", Add(d), {"a": x, "b": a})
    n2, p2 = rms_norm(declare, f"{prefix}.norm_2", d=d, eps=eps)
    m_in = g.add("norm_2", n2, {"x": x}, p2)
    m = g.add("mlp", gated_mlp(declare, f"{prefix}.mlp", d=d, d_mlp=d_mlp, activation=activation, bias=mlp_bias), {"x": m_in})
    g.output("y", g.add("add_mlp", Add(d), {"a": x, "b": m}))
    return Composite("block", "pre-RMSNorm transformer block", g)
