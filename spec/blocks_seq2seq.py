"""Composites of the original encoder–decoder Transformer (Vaswani et al. 2017, docs/sources.md §5):
post-layer-norm blocks, LN(x + Sublayer(x)), made of spec/blocks.py's builders.

    encoder block (rows S):   x ← LN₁(x + SelfAttn(x))                  self-attention over the source
                              x ← LN₂(x + FFN(x))
    decoder block (rows T):   y ← LN₁(y + SelfAttn(y))                  causal self-attention over the target
                              y ← LN₂(y + CrossAttn(y, memory))         queries: the target; keys, values: the
                                                                        encoder's output (S rows, S ≠ T)
                              y ← LN₃(y + FFN(y))

Blocks are given as the values of spec/blocks.py (:class:`~spec.blocks.Attention`,
:class:`~spec.blocks.MLP`, :class:`~spec.blocks.Norm`). Row counts are arguments (the encoder's rows are the source positions S, the decoder's the target
positions T), like every width, so the same builders serve any sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import sympy

from spec.blocks import MLP, Attention, Declare, Norm, multi_head_attention
from spec.dims import S, T
from spec.graph import Composite, Graph, Source, graph_input
from spec.ops import Add
from spec.types import rows as rows_type


def _norm(g: Graph, declare: Declare, prefix: str, name: str, x: Source, *, d: sympy.Expr, norm: Norm, rows: sympy.Expr) -> Source:
    """``norm`` over ``rows`` rows, its Θ entries under ``prefix.name``."""
    op, params = norm.make(declare, f"{prefix}.{name}", d)
    op = dataclasses.replace(op, rows=rows)
    return g.add(name, op, {"x": x}, params)


def _residual_norm(
    g: Graph, declare: Declare, prefix: str, index: int, x: Source, sub: Source, *, d: sympy.Expr, norm: Norm, rows: sympy.Expr,
) -> Source:
    """N_index(x + sub): the post-norm sublayer's end (nodes ``add_<index>`` and ``ln_<index>``)."""
    total = g.add(f"add_{index}", Add(d, rows), {"a": x, "b": sub})
    return _norm(g, declare, prefix, f"ln_{index}", total, d=d, norm=norm, rows=rows)


def post_ln_encoder_block(
    declare: Declare, prefix: str, dims: Mapping[sympy.Symbol, int], *, d: sympy.Expr, attention: Attention, mlp: MLP, norm: Norm,
    rows: sympy.Expr = S,
) -> Composite:
    """An encoder block: N₁(x + attn(x)), then N₂(· + mlp(·)), on ``rows`` rows (the source's S)."""
    g = Graph("encoder_block", {"x": rows_type(rows, d)})
    x = graph_input("x")
    attn = multi_head_attention(declare, f"{prefix}.attn", dims, attention, d_in=d, d_out=d, q_rows=rows, k_rows=rows)
    a = g.add("attn", attn, {"x_q": x, "x_kv": x})
    x = _residual_norm(g, declare, prefix, 1, x, a, d=d, norm=norm, rows=rows)
    m = g.add("mlp", mlp.make(declare, f"{prefix}.mlp", d, rows), {"x": x})
    g.output("y", _residual_norm(g, declare, prefix, 2, x, m, d=d, norm=norm, rows=rows))
    return Composite("encoder_block", "post-LN encoder block", g, post_ln_encoder_block.__doc__ or "")


def post_ln_decoder_block(
    declare: Declare, prefix: str, dims: Mapping[sympy.Symbol, int], *, d: sympy.Expr, self_attention: Attention,
    cross_attention: Attention, mlp: MLP, norm: Norm, rows: sympy.Expr = T, memory_rows: sympy.Expr = S,
) -> Composite:
    """A decoder block on ``rows`` target rows reading ``memory`` (the encoder's output, ``memory_rows``
    rows): N₁(y + self_attn(y)), N₂(· + cross_attn(·, memory)), N₃(· + mlp(·))."""
    g = Graph("decoder_block", {"x": rows_type(rows, d), "memory": rows_type(memory_rows, d)})
    y = graph_input("x")
    self_attn = multi_head_attention(declare, f"{prefix}.self_attn", dims, self_attention, d_in=d, d_out=d, q_rows=rows, k_rows=rows)
    a = g.add("self_attn", self_attn, {"x_q": y, "x_kv": y})
    y = _residual_norm(g, declare, prefix, 1, y, a, d=d, norm=norm, rows=rows)
    cross = multi_head_attention(
        declare, f"{prefix}.cross_attn", dims, cross_attention, d_in=d, d_out=d, d_kv_in=d, q_rows=rows, k_rows=memory_rows,
    )
    c = g.add("cross_attn", cross, {"x_q": y, "x_kv": graph_input("memory")})
    y = _residual_norm(g, declare, prefix, 2, y, c, d=d, norm=norm, rows=rows)
    m = g.add("mlp", mlp.make(declare, f"{prefix}.mlp", d, rows), {"x": y})
    g.output("y", _residual_norm(g, declare, prefix, 3, y, m, d=d, norm=norm, rows=rows))
    return Composite("decoder_block", "post-LN decoder block with cross-attention", g, post_ln_decoder_block.__doc__ or "")
