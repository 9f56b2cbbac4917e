"""ParallelGPT (Suresh & P., docs/sources.md §2): two branches of n_layers/2 ordinary blocks,
each fed by its own d → d affine map of the embedding, combined by a learned sigmoid gate.

    h₀ = one_hot(ids) W_E + W_P[:T]
    x_b = blocks of branch b (h₀ W_b + c_b)          b = 0, 1; branch b has blocks b·L/2 … (b+1)·L/2 − 1
    y = σ(a) x₀ + (1 − σ(a)) x₁                      (node ``gate``, Θ entry ``gate.a``)
    logits = LN_f(y) W_U
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from spec import dims as D
from spec.architectures.compressed import CompressedGPTConfig, block, embed, head, reduction_report, start
from spec.architectures.registry import register_family
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.ops import Affine, SigmoidGate

BRANCHES = 2


@dataclass(frozen=True)
class ParallelGPTConfig(CompressedGPTConfig):
    """A ParallelGPT: n_layers blocks split into two branches of n_layers/2 (n_layers even); each
    branch's input map is affine d → d with a bias (as in the authors' latest code, whatever
    ``bias`` says of the blocks)."""

    family: ClassVar[str] = "parallel-gpt"

    name: str = field(default="parallel-gpt", compare=False)

    def validate(self) -> None:
        super().validate()
        if self.n_layers % BRANCHES:
            raise ConfigError(
                f"n_layers={self.n_layers}, but expected an even number [config {self.name}]; ParallelGPT's two branches "
                "have n_layers/2 blocks each"
            )

    def layer_period(self) -> int:
        return BRANCHES



@register_family(
    "parallel-gpt", ParallelGPTConfig,
    "ParallelGPT (Suresh & P. 2024): two branches of n_layers/2 blocks, each fed by its own affine map, merged by a learned sigmoid gate",
    report=reduction_report("the paper: ParallelGPT keeps the baseline's size, +525,313 for the two input maps and the gate"),
    instances=lambda: {"two branches, two heads": ParallelGPTConfig(
        n_vocab=5, n_ctx=8, d_model=4, n_layers=2, n_heads=2, mlp_ratio=1, name="parallel-gpt-two-branches")},
)
def build_parallel_gpt(config: ParallelGPTConfig) -> Architecture:
    """The ParallelGPT of ``config``, validated."""
    if not isinstance(config, ParallelGPTConfig):
        raise ConfigError(f"config of type {type(config).__name__}, but expected a ParallelGPTConfig [build_parallel_gpt]")
    c = config
    arch = start(c)
    h0 = embed(arch, c)
    per_branch = c.n_layers // BRANCHES
    outs = []
    for b in range(BRANCHES):
        params = {"W": arch.declare(f"branch_in.{b}.W", (D.d_model, D.d_model)), "b": arch.declare(f"branch_in.{b}.b", (D.d_model,))}
        x = arch.add(f"branch_in.{b}", Affine(D.d_model, D.d_model, True), {"x": h0}, params)
        for layer in range(b * per_branch, (b + 1) * per_branch):
            x = arch.add(f"blocks.{layer}", block(arch, c, f"blocks.{layer}", D.d_model), {"x": x})
        outs.append(x)
    y = arch.add("gate", SigmoidGate(D.d_model), {"x1": outs[0], "x2": outs[1]}, {"a": arch.declare("gate.a", (1,))})
    return head(arch, c, y, D.d_model)
