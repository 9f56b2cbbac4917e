"""fast/'s fused multi-head attention reads the attention's description, and refuses a body that
no longer matches it."""

from __future__ import annotations

import dataclasses

import pytest

import fast
from spec import GPTConfig, build
from spec.errors import ConfigError
from spec.graph import Architecture, Composite, Node
from spec.ops import Affine
from spec.theta import random_theta


def without_bias(arch: Architecture, letters: str) -> Architecture:
    """``arch`` with the bias of the projections in ``letters`` (of Q, K, V) removed from every head."""
    for block in (n for n in arch.nodes.values() if isinstance(n.op, Composite)):
        attn = block.op.body.nodes["attn"].op  # type: ignore[attr-defined]
        for head in (n for name, n in attn.body.nodes.items() if name.startswith("head_")):
            body = head.op.body  # type: ignore[attr-defined]
            for letter in letters:
                node = body.nodes[letter]
                op = node.op
                assert isinstance(op, Affine)
                body.nodes[letter] = Node(node.name, dataclasses.replace(op, bias=False), node.inputs, {"W": node.params["W"]})
        prefix = f"{block.name}.attn.b_"
        for letter in letters:
            del arch.theta[prefix + letter]
    return arch.validate()


@pytest.mark.parametrize("letters", ["K", "QV", "V"])
def test_an_attention_edited_after_it_was_built_is_refused_not_run_as_described(letters: str) -> None:
    """fast/ runs attention from the description the composite carries; a body whose Θ reads no
    longer match it (here: projections' biases removed by hand) is refused by name, never run
    as the description says (an earlier name matcher dropped all three biases when one was
    missing: the logits were off by 2.2)."""
    arch = without_bias(build(GPTConfig(n_vocab=11, n_ctx=8, d_model=6, n_layers=2, n_heads=3, name="partial")), letters)
    theta = random_theta(arch, seed=1, std=0.4)
    with pytest.raises(ConfigError, match=r"attention attn reads Θ entries \[\] and not \['blocks\.0\.attn\.b_"):
        fast.compile(arch, theta, "float64", block=3)
