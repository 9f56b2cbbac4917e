"""Comparing a gptspec model with a Hugging Face one, module by module: the helpers every family's
Hugging Face test shares (tests/test_llama.py, test_neox_gemma.py, test_qwen_mixtral.py,
test_olmo2_phi3.py). Each test lifts Hugging Face to float64 its own way (its family's internal
casts differ); what is compared, and how, is here once."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import fast
from reference import evaluate
from spec.graph import Architecture, Composite, Graph
from spec.theta import Theta


def value_path(graph: Graph, path: str, prefix: str = "") -> str:
    """The path of the value a DAG path names: a primitive's own, a composite's output's."""
    for name, node in graph.nodes.items():
        if path == name and isinstance(node.op, Composite):
            source = next(iter(node.op.body.outputs.values()))
            if source.node is None:
                raise KeyError(f"{prefix}{path} outputs its input")
            return value_path(node.op.body, source.node, f"{prefix}{name}.")
        if path == name:
            return prefix + name
        if path.startswith(name + ".") and isinstance(node.op, Composite):
            return value_path(node.op.body, path[len(name) + 1 :], f"{prefix}{name}.")
    raise KeyError(f"{prefix}{path} is not a node")


def hf_run(model: Any, ids: list[int], modules: dict[str, str]) -> dict[str, np.ndarray]:
    """HF's logits and the output of every module the layout names, keyed by the layout's DAG path."""
    values: dict[str, np.ndarray] = {}
    hooks = []
    for name, path in modules.items():
        module = model.get_submodule(name)

        def keep(_m: Any, _i: Any, out: Any, path: str = path) -> None:
            values[path] = (out[0] if isinstance(out, tuple) else out)[0].double().numpy()

        hooks.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]))
    finally:
        for hook in hooks:
            hook.remove()
    values["logits"] = out.logits[0].double().numpy()
    return values


def relative_errors(arch: Architecture, ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """max|ours − theirs| / max|theirs| per compared value (the logits and each module's output)."""
    return {
        path: float(np.max(np.abs(ours[value_path(arch, path) if path != "logits" else path] - value)) / np.max(np.abs(value)))
        for path, value in theirs.items()
    }


def assert_reference_and_fast_equal(
    arch: Architecture, theta: Theta, ids: list[int], theirs: dict[str, np.ndarray], n_modules: int, rtol: float, case: str,
) -> None:
    """The reference equals Hugging Face at the logits and at every one of the layout's ``n_modules``
    modules, and fast/ — every attention fused — at the logits, each within ``rtol`` of the largest
    magnitude."""
    errors = relative_errors(arch, evaluate(arch, theta, {"ids": ids}), theirs)
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= rtol, f"max|ours − hf| / max|hf| at {worst}={errors[worst]:.3g} > {rtol} [{case}]; all: {errors}"
    assert len(errors) == n_modules + 1, "every module the layout names was compared"
    assert np.max(np.abs(theirs["logits"])) > 0.5, f"logits too small to be a meaningful test [{case}]"
    program = fast.compile(arch, theta, "float64", block=4)
    fused = [step.path for step in program.steps if step.plan is not None]
    assert fused == [f"blocks.{i}.attn" for i in range(arch.dim("n_layers"))], f"attention runs fused: {fused}"
    got = program.forward(np.array([ids]))[0]
    want = theirs["logits"]
    assert np.max(np.abs(got - want)) <= rtol * np.max(np.abs(want)), f"fast/ differs from Hugging Face [{case}]"
