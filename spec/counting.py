"""Counting: the parameter count of an architecture is the sum over Θ of its shape products.

There is no separate hand formula: the count is read off Θ. :func:`symbolic_count` writes it
in the glossary's dims, folding the per-block entries into a factor n_layers when every block
declares the same symbolic shapes (so GPT-2 reads 12 d² + 13 d per block).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import sympy

from spec.dims import Shape, n_layers
from spec.graph import Architecture
from spec.theta import check_architecture


def size(shape: Shape) -> sympy.Expr:
    """Number of entries of a tensor of this shape."""
    return sympy.Mul(*shape)


def count(arch: Architecture) -> int:
    """The exact parameter count: Σ over Θ of the product of each concrete shape."""
    check_architecture(arch, "spec.count")
    total = sympy.Add(*(size(s) for s in arch.theta.values())).subs(arch.dims)
    return int(total)


_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_ANY_BLOCK = re.compile(r"^((?:[^.]+\.)*?)blocks\.(\d+)\.(.+)$")


def symbolic_count(arch: Architecture) -> sympy.Expr:
    """The count as a formula in the dims (n_layers factored out when blocks are uniform)."""
    check_architecture(arch, "spec.symbolic_count")
    outside = sympy.Add(*(size(s) for name, s in arch.theta.items() if not _BLOCK.match(name)))
    per_block: dict[int, dict[str, Shape]] = {}
    for name, s in arch.theta.items():
        m = _BLOCK.match(name)
        if m:
            per_block.setdefault(int(m.group(1)), {})[m.group(2)] = s
    if not per_block:
        return sympy.expand(outside)
    blocks = [per_block[i] for i in sorted(per_block)]
    uniform = sorted(per_block) == list(range(arch.dims.get(n_layers, -1))) and all(b == blocks[0] for b in blocks)
    if uniform:
        one = sympy.Add(*(size(s) for s in blocks[0].values()))
        return n_layers * sympy.expand(one) + sympy.expand(outside)
    return sympy.expand(outside + sympy.Add(*(size(s) for b in blocks for s in b.values())))


def breakdown(arch: Architecture) -> OrderedDict[str, int]:
    """Parameter count by group: embeddings, each kind of block entry summed over blocks, final
    norm, unembedding. Groups are the Θ names with the block index removed."""
    check_architecture(arch, "spec.counting.breakdown")
    groups: OrderedDict[str, int] = OrderedDict()
    for name, s in arch.theta.items():
        m = _ANY_BLOCK.match(name)  # blocks.3.attn.W_Q, and an encoder–decoder's encoder.blocks.3.attn.W_Q
        key = f"{m.group(1)}blocks.*.{m.group(3)}" if m else name
        key = key.rsplit(".", 1)[0] + ".*" if "." in key else key
        groups[key] = groups.get(key, 0) + int(size(s).subs(arch.dims))
    return groups
