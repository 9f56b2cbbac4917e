"""fast/'s fused multi-head attention on what its matcher must not get wrong: a model whose
Q/K/V projections do not all have a bias (the fused GEMM adds zeros for the missing ones) runs
the fused path and equals the reference (an earlier matcher dropped all three biases when one
was missing: the logits were off by 2.2)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fast
import reference
from spec import GPTConfig, build
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
def test_partial_qkv_biases_run_fused_and_equal_the_reference(letters: str) -> None:
    arch = without_bias(build(GPTConfig(n_vocab=11, n_ctx=8, d_model=6, n_layers=2, n_heads=3, name="partial")), letters)
    theta = random_theta(arch, seed=1, std=0.4)
    program = fast.compile(arch, theta, "float64", block=3)
    fused = [step for step in program.steps if step.plan is not None]
    assert len(fused) == 2, "both layers' attention should take the fused path"
    for step in fused:
        assert {step.plan.b_Q is None, step.plan.b_K is None, step.plan.b_V is None} == {True, False}  # type: ignore[union-attr]
    ids = np.array([[3, 1, 4, 1, 5, 9, 2]])
    want = reference.forward(arch, theta, ids[0])
    got = program.forward(ids)[0]
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want)), "a missing bias changed the fused attention"
