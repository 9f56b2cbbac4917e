"""The glossary of symbolic dimensions, used verbatim in sympy, shape annotations and docs.

==========  ====================================================================
symbol      meaning
==========  ====================================================================
T           query positions (the length of the sequence being processed)
S           key positions (equal to T in self-attention; differs in cross-attention)
d_model     width of the residual stream
n_heads     attention heads per layer
n_kv_heads  key/value heads per layer (grouped-query attention: query heads share them)
d_head      width of one head's queries, keys and values
d_mlp       hidden width of the position-wise MLP
n_vocab     vocabulary size (the width of a one-hot row)
n_ctx       longest sequence the positional embedding defines
n_layers    number of blocks
==========  ====================================================================

``B`` (batch) exists only in ``fast/``. Every symbol is a positive integer.
"""

from __future__ import annotations

import functools

import sympy

Dim = sympy.Expr
"""A dimension: an integer or an expression in the glossary's symbols."""

T = sympy.Symbol("T", integer=True, positive=True)
S = sympy.Symbol("S", integer=True, positive=True)
d_model = sympy.Symbol("d_model", integer=True, positive=True)
n_heads = sympy.Symbol("n_heads", integer=True, positive=True)
n_kv_heads = sympy.Symbol("n_kv_heads", integer=True, positive=True)
d_head = sympy.Symbol("d_head", integer=True, positive=True)
d_mlp = sympy.Symbol("d_mlp", integer=True, positive=True)
n_vocab = sympy.Symbol("n_vocab", integer=True, positive=True)
n_ctx = sympy.Symbol("n_ctx", integer=True, positive=True)
n_layers = sympy.Symbol("n_layers", integer=True, positive=True)

GLOSSARY: dict[str, sympy.Symbol] = {
    str(s): s for s in (T, S, d_model, n_heads, n_kv_heads, d_head, d_mlp, n_vocab, n_ctx, n_layers)
}

Shape = tuple[sympy.Expr, ...]


def dim(value: int | sympy.Expr) -> sympy.Expr:
    """Coerce an int or a sympy expression to a sympy expression."""
    return sympy.sympify(value)


def shape(*dims: int | sympy.Expr) -> Shape:
    """Build a shape tuple from ints and expressions."""
    return tuple(dim(d) for d in dims)


def concrete(expr: sympy.Expr, values: dict[sympy.Symbol, int]) -> int:
    """Evaluate a dimension with every symbol given a value; refuse a non-integer or free symbol."""
    expr = sympy.sympify(expr)
    if expr.is_Integer:
        return int(expr)
    relevant = tuple(sorted(((s, int(v)) for s, v in values.items() if s in expr.free_symbols), key=lambda item: str(item[0])))
    substituted = _substituted(expr, relevant)
    if not substituted.is_Integer:
        from spec.errors import ShapeError

        raise ShapeError(
            f"dimension {expr} evaluates to {substituted}, but expected an integer "
            f"[values {', '.join(f'{k}={v}' for k, v in values.items())}]; "
            "give every symbol in it a value that makes it a whole number"
        )
    return int(substituted)


@functools.lru_cache(maxsize=65536)
def _substituted(expr: sympy.Expr, values: tuple[tuple[sympy.Symbol, int], ...]) -> sympy.Expr:
    return expr.subs(dict(values))


def concrete_shape(s: Shape, values: dict[sympy.Symbol, int]) -> tuple[int, ...]:
    """A symbolic shape with every symbol given a value."""
    return tuple(concrete(d, values) for d in s)


def show(s: Shape) -> str:
    """A shape written as the docs write it: ``(T, d_model)``."""
    return "(" + ", ".join(str(d) for d in s) + ("," if len(s) == 1 else "") + ")"
