"""Composites of the original encoder–decoder Transformer (Vaswani et al. 2017, docs/sources.md §5):
post-layer-norm blocks, LN(x + Sublayer(x)), made of spec/blocks.py's builders.

    encoder block (rows S):   x ← LN₁(x + SelfAttn(x))                  self-attention over the source
                              x ← LN₂(x + FFN(x))
    decoder block (rows T):   y ← LN₁(y + SelfAttn(y))                  causal self-attention over the target
                              y ← LN₂(y + CrossAttn(y, memory))         queries: the target; keys, values: the
                                                                        encoder's output (S rows, S ≠ T)
                              y ← LN₃(y + FFN(y))

Row counts are arguments (the encoder's rows are the source positions S, the decoder's the target
positions T), like every width, so the same builders serve any sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import sympy

from spec.blocks import Declare, layer_norm, mlp, multi_head_attention
from spec.dims import S, T
from spec.graph import Composite, Graph, Source, graph_input
from spec.masks import Relation
from spec.ops import Add
from spec.types import rows as rows_type


def _norm(
    g: Graph, declare: Declare, prefix: str, name: str, x: Source, *, d: sympy.Expr, eps: float, bias: bool, rows: sympy.Expr
) -> Source:
    """A layer norm over ``rows`` rows, its Θ entries under ``prefix.name``."""
    op, params = layer_norm(declare, f"{prefix}.{name}", d=d, eps=eps, bias=bias)
    op = dataclasses.replace(op, rows=rows)
    return g.add(name, op, {"x": x}, params)


def _residual_norm(
    g: Graph, declare: Declare, prefix: str, index: int, x: Source, sub: Source, *, d: sympy.Expr, eps: float, bias: bool, rows: sympy.Expr,
) -> Source:
    """LN_index(x + sub): the post-LN sublayer's end (nodes ``add_<index>`` and ``ln_<index>``)."""
    total = g.add(f"add_{index}", Add(d, rows), {"a": x, "b": sub})
    return _norm(g, declare, prefix, f"ln_{index}", total, d=d, eps=eps, bias=bias, rows=rows)


def post_ln_encoder_block(
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
    bias: bool,
    rows: sympy.Expr = S,
) -> Composite:
    """An encoder block: LN₁(x + attn(x)), then LN₂(· + mlp(·)), on ``rows`` rows (the source's S)."""
    g = Graph("encoder_block", {"x": rows_type(rows, d)})
    x = graph_input("x")
    attn = multi_head_attention(
        declare, f"{prefix}.attn", dims, d_in=d, n_heads=n_heads, d_head=d_head, d_out=d, mask=mask, scale=scale,
        bias=bias, q_rows=rows, k_rows=rows,
    )
    a = g.add("attn", attn, {"x_q": x, "x_kv": x})
    x = _residual_norm(g, declare, prefix, 1, x, a, d=d, eps=eps, bias=bias, rows=rows)
    m = g.add("mlp", mlp(declare, f"{prefix}.mlp", d=d, d_mlp=d_mlp, activation=activation, bias=bias, n_rows=rows), {"x": x})
    g.output("y", _residual_norm(g, declare, prefix, 2, x, m, d=d, eps=eps, bias=bias, rows=rows))
    return Composite("encoder_block", "post-LN encoder block", g)


def post_ln_decoder_block(
    declare: Declare,
    prefix: str,
    dims: Mapping[sympy.Symbol, int],
    *,
    d: sympy.Expr,
    n_heads: sympy.Expr,
    d_head: sympy.Expr,
    d_mlp: sympy.Expr,
    self_mask: Relation,
    cross_mask: Relation,
    scale: sympy.Expr,
    eps: float,
    activation: str,
    bias: bool,
    rows: sympy.Expr = T,
    memory_rows: sympy.Expr = S,
) -> Composite:
    """A decoder block on ``rows`` target rows reading ``memory`` (the encoder's output, ``memory_rows``
    rows): LN₁(y + self_attn(y)), LN₂(· + cross_attn(·, memory)), LN₃(· + mlp(·))."""
    g = Graph("decoder_block", {"x": rows_type(rows, d), "memory": rows_type(memory_rows, d)})
    y = graph_input("x")
    self_attn = multi_head_attention(
        declare, f"{prefix}.self_attn", dims, d_in=d, n_heads=n_heads, d_head=d_head, d_out=d, mask=self_mask, scale=scale,
        bias=bias, q_rows=rows, k_rows=rows,
    )
    a = g.add("self_attn", self_attn, {"x_q": y, "x_kv": y})
    y = _residual_norm(g, declare, prefix, 1, y, a, d=d, eps=eps, bias=bias, rows=rows)
    cross = multi_head_attention(
        declare, f"{prefix}.cross_attn", dims, d_in=d, n_heads=n_heads, d_head=d_head, d_out=d, mask=cross_mask, scale=scale,
        bias=bias, d_kv_in=d, q_rows=rows, k_rows=memory_rows,
    )
    c = g.add("cross_attn", cross, {"x_q": y, "x_kv": graph_input("memory")})
    y = _residual_norm(g, declare, prefix, 2, y, c, d=d, eps=eps, bias=bias, rows=rows)
    m = g.add("mlp", mlp(declare, f"{prefix}.mlp", d=d, d_mlp=d_mlp, activation=activation, bias=bias, n_rows=rows), {"x": y})
    g.output("y", _residual_norm(g, declare, prefix, 3, y, m, d=d, eps=eps, bias=bias, rows=rows))
    return Composite("decoder_block", "post-LN decoder block with cross-attention", g)

