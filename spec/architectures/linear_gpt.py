"""LinearGPT (LinearlyCompressedGPT; Suresh & P., docs/sources.md §2): after every
``reduce_every`` blocks an affine map halves the width (d → d/2, with a bias); the head count
stays fixed, so d_head halves too; the final layer norm and the unembedding work at the last
width (512 → 256 → 128 → 64 → 32 for 8 layers).

    h₀ = one_hot(ids) W_E + W_P[:T]                       width d_model
    h_{l+1} = block_l(h_l)                                width d_model / 2^k, k = ⌊l / reduce_every⌋
    after block l with (l + 1) mod reduce_every = 0:      h ← h R_k + r_k   (node ``reducers.k``)
    logits = LN_f(h) W_U                                  at the last width
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import sympy

from spec import dims as D
from spec.architectures.compressed import CompressedGPTConfig, block, embed, head, reduction_report, start
from spec.architectures.registry import register_family
from spec.config import positive
from spec.errors import ConfigError
from spec.graph import Architecture, Source
from spec.ops import Affine


@dataclass(frozen=True)
class LinearGPTConfig(CompressedGPTConfig):
    """A LinearGPT: a reducer halving the width after every ``reduce_every`` blocks (the authors: 2)."""

    family: ClassVar[str] = "linear-gpt"

    reduce_every: int = 2
    name: str = field(default="linear-gpt", compare=False)

    def layer_period(self) -> int:
        return self.reduce_every

    def validate(self) -> None:
        super().validate()
        positive(self, "reduce_every")
        check_widths(self)

    def reducers(self) -> int:
        """How many width-halving reducers the model has."""
        return self.n_layers // self.reduce_every



def check_widths(c: CompressedGPTConfig) -> None:
    """Every width d_model / 2^k is whole, and every block's width splits into n_heads heads."""
    every: int = getattr(c, "reduce_every", c.n_layers)
    where = f"config {c.name}"
    for layer in range(c.n_layers):
        k = layer // every
        width, rest = divmod(c.d_model, 2**k)
        if rest or width % c.n_heads:
            raise ConfigError(
                f"block {layer}'s width d_model/2^{k} = {c.d_model}/{2**k}, but expected a whole multiple of "
                f"n_heads={c.n_heads} [{where}]; choose d_model divisible by n_heads·2^{(c.n_layers - 1) // every}"
            )
    if c.d_model % 2 ** (c.n_layers // every):
        raise ConfigError(
            f"d_model={c.d_model}, but expected it divisible by 2^{c.n_layers // every} (the last reducer's output width) [{where}]"
        )


Reducer = Callable[[Architecture, str, int, Source], Source]
"""Adds reducer k (width(k) → width(k + 1)) under a node name, reading a value; returns its output."""


def width(k: int) -> sympy.Expr:
    """The width after k reducers: d_model / 2^k."""
    return D.d_model / sympy.Integer(2**k)


def compressed_stack(arch: Architecture, c: CompressedGPTConfig, every: int, reducer: Reducer) -> tuple[Source, sympy.Expr]:
    """Blocks with a reducer after every ``every`` of them; ``reducer(arch, name, k, x)`` adds
    reducer k (width(k) → width(k + 1)) reading x and returns its output."""
    h = embed(arch, c)
    k = 0
    for layer in range(c.n_layers):
        h = arch.add(f"blocks.{layer}", block(arch, c, f"blocks.{layer}", width(k)), {"x": h})
        if (layer + 1) % every == 0:
            h = reducer(arch, f"reducers.{k}", k, h)
            k += 1
    return h, width(k)


def _affine_reducer(arch: Architecture, name: str, k: int, x: Source) -> Source:
    d_in, d_out = width(k), width(k + 1)
    params = {"W": arch.declare(f"{name}.W", (d_in, d_out)), "b": arch.declare(f"{name}.b", (d_out,))}
    return arch.add(name, Affine(d_in, d_out, True), {"x": x}, params)


@register_family(
    "linear-gpt", LinearGPTConfig,
    "LinearGPT (Suresh & P. 2024): an affine d → d/2 reducer after every 2 blocks, head count fixed",
    report=reduction_report("the paper: LinearGPT has ≈ 53% fewer parameters than the baseline"),
    instances=lambda: {"reduced every block": LinearGPTConfig(
        n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=1, mlp_ratio=1, reduce_every=1, name="linear-gpt-reduced")},
)
def build_linear_gpt(config: LinearGPTConfig) -> Architecture:
    """The LinearGPT of ``config``, validated."""
    if not isinstance(config, LinearGPTConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a LinearGPTConfig [build_linear_gpt]")
    arch = start(config)
    h, last = compressed_stack(arch, config, config.reduce_every, _affine_reducer)
    return head(arch, config, h, last)
