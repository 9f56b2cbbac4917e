"""ConvGPT (ConvCompressedGPT; Suresh & P., docs/sources.md §2): LinearGPT with a 1-D
convolution over positions as the reducer — d_in = width, d_out = width/2 channels, with a bias.

As published the kernel is 1 with no padding, so the convolution mixes no positions and equals
the affine map (the theorem ``conv_reducer_breaks_causality``). A wider kernel reads the window
[−pad_left, kernel − 1 − pad_left] of positions: causal only when all the padding is on the left
(pad_left = kernel − 1, the default); symmetric padding (kernel 3, pad_left 1) lets position t
read t + 1, which the dependency typing reports, naming the reducer, before anything runs
(``gptspec params conv-gpt --set kernel=3 --set pad_left=1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import sympy

from spec.architectures.compressed import CompressedGPTConfig, head, reduction_report, start
from spec.architectures.linear_gpt import check_widths, compressed_stack, width
from spec.architectures.registry import build, register_family
from spec.config import positive
from spec.errors import ConfigError
from spec.graph import Architecture, Source
from spec.ops import Conv1d


@dataclass(frozen=True)
class ConvGPTConfig(CompressedGPTConfig):
    """A ConvGPT: a convolution reducer (``kernel`` taps, ``pad_left`` zero rows before the
    sequence, kernel − 1 − pad_left after it; None: all on the left, causal) after every
    ``reduce_every`` blocks. ``stride`` is kept as a field so a config that asks for another is
    refused by name: rows are positions, and a stride s > 1 would leave ⌈T/s⌉ rows — no longer
    one row of logits per token."""

    family: ClassVar[str] = "conv-gpt"

    reduce_every: int = 2
    kernel: int = 1
    pad_left: int | None = None
    stride: int = 1
    name: str = field(default="conv-gpt", compare=False)

    def layer_period(self) -> int:
        return self.reduce_every

    def validate(self) -> None:
        super().validate()
        positive(self, "reduce_every", "kernel", "stride")
        where = f"config {self.name}"
        if self.stride != 1:
            raise ConfigError(
                f"stride={self.stride}, but expected stride=1 [{where}]; the reducer keeps one row per position so that "
                "the logits keep one row per token (a stride > 1 would drop positions)"
            )
        if self.pad_left is not None and not 0 <= self.pad_left <= self.kernel - 1:
            raise ConfigError(
                f"pad_left={self.pad_left}, but expected 0 ≤ pad_left ≤ kernel − 1 = {self.kernel - 1} [{where}]; the padding "
                "on the right is kernel − 1 − pad_left, so that every position keeps its row"
            )
        check_widths(self)

    @property
    def left(self) -> int:
        """The zero rows before the sequence (kernel − 1 when pad_left is None: causal)."""
        return self.kernel - 1 if self.pad_left is None else self.pad_left

    def reducers(self) -> int:
        return self.n_layers // self.reduce_every



@register_family(
    "conv-gpt", ConvGPTConfig,
    "ConvGPT (Suresh & P. 2024): a 1-D convolution over positions reducing d → d/2 after every 2 blocks (kernel, padding configurable)",
    report=reduction_report("the paper: ConvGPT has as many parameters as LinearGPT at kernel 1, ≈ 53% fewer than the baseline"),
    instances=lambda: {"causal kernel 3, reduced every block": ConvGPTConfig(
        n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=1, mlp_ratio=1, reduce_every=1, kernel=3, pad_left=2, name="conv-gpt-causal")},
)
def build_conv_gpt(config: ConvGPTConfig) -> Architecture:
    """The ConvGPT of ``config``, validated."""
    if not isinstance(config, ConvGPTConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a ConvGPTConfig [build_conv_gpt]")
    c = config

    def reducer(arch: Architecture, name: str, k: int, x: Source) -> Source:
        d_in, d_out = width(k), width(k + 1)
        op = Conv1d(d_in, d_out, c.kernel, c.left, c.kernel - 1 - c.left, True)
        params = {"W": arch.declare(f"{name}.W", (sympy.Integer(c.kernel), d_in, d_out)), "b": arch.declare(f"{name}.b", (d_out,))}
        return arch.add(name, op, {"x": x}, params)

    arch = start(c)
    h, last = compressed_stack(arch, c, c.reduce_every, reducer)
    return head(arch, c, h, last)


def conv_gpt(kernel: int, pad_left: int, *, n_vocab: int = 9, n_ctx: int = 12, d_model: int = 4, n_heads: int = 2) -> Architecture:
    """A small ConvGPT for witnesses, tests and docs: blocks 0 and 1 at width d_model, the reducer
    ``reducers.0`` (a convolution with ``kernel`` taps and ``pad_left`` zero rows on the left)
    halving it, block 2 at d_model/2, final norm and head — the reducer between causal blocks, as
    in ConvGPT."""
    return build(ConvGPTConfig(
        n_vocab=n_vocab, n_ctx=n_ctx, d_model=d_model, n_layers=3, n_heads=n_heads, kernel=kernel, pad_left=pad_left,
        name=f"conv-gpt(k={kernel}, pad={pad_left},{kernel - 1 - pad_left})",
    ))
