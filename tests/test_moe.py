"""Routed experts (spec/ops/moe.py, spec/moe_blocks.py): the tie rule, fast/'s dispatch by expert
against the literal reference on padded batches with exact ties, the refusals, dependency typing
(an MoE decoder is causal with the receptive field of its dense twin), and a Llama-style decoder
whose MLPs are MoE MLPs through reference and fast, on padded batches and decoding with the cache.

The op-level suites (spec vs reference, reference vs fast, VJPs, the records) cover the two ops
from their own records without an entry here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fast
import reference
from fast.batch import Batch
from fast.kernels import KERNELS
from gptspec.verify import FastImplementation, check_decode, check_model
from gptspec.verify.strategies import BatchExample
from proofs.dependency import causality
from spec import dims as D
from spec.architectures import LlamaConfig
from spec.blocks import pre_norm_block, rms_norm
from spec.errors import ConfigError
from spec.exact import evaluate_exact
from spec.graph import Architecture, ParamRef, graph_input
from spec.moe_blocks import MoeMLP
from spec.ops import Affine, MoeExperts, MoeRouter, OneHot, TokenEmbedding
from spec.ops.moe import NORMS
from spec.theta import random_theta
from spec.types import token_ids

# -- the tie rule -------------------------------------------------------------------------------


def test_ties_choose_the_lower_index_first_as_a_stable_sort() -> None:
    logits = np.array([[1.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [-0.0, 0.0, 3.0, -0.0, 3.0]])
    want = [[1, 2], [0, 1], [2, 4]]
    for norm in NORMS:
        op = MoeRouter(5, 2, norm, 3)
        for G in (reference.run_op(op, {"logits": logits}, {}), fast.run_op(op, {"logits": logits}, {}),
                  fast.run_op(op, {"logits": logits}, {}, "float32"), evaluate_exact(op, {"logits": logits}, {})):
            assert [sorted(np.flatnonzero(row).tolist()) for row in G] == want, f"{norm}: chose {G}"
    probs = torch.softmax(torch.tensor(logits), dim=-1)
    stable = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :2]
    assert [sorted(r) for r in stable.tolist()] == want, "the rule is a stable descending sort's first k"


def test_without_ties_the_choice_is_torch_topk_s() -> None:
    """Away from ties the chosen set is torch.topk's (Hugging Face's routers). At an exact tie
    torch.topk's order is unspecified (on CPU it returns e.g. experts 2 and 4 of five equal
    logits), so there the spec's rule is a choice, documented on MoeRouter."""
    logits = np.random.default_rng(0).standard_normal((20, 6))
    G = reference.run_op(MoeRouter(6, 3, "softmax_topk", 20), {"logits": logits}, {})
    chosen = torch.topk(torch.softmax(torch.tensor(logits), dim=-1), 3, dim=-1).indices.tolist()
    assert [sorted(np.flatnonzero(row).tolist()) for row in G] == [sorted(r) for r in chosen]


def test_the_three_normalisations() -> None:
    logits = np.array([[0.5, -1.0, 2.0, 1.0]])
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    G = {norm: reference.run_op(MoeRouter(4, 2, norm, 1), {"logits": logits}, {})[0] for norm in NORMS}
    np.testing.assert_allclose(G["softmax_topk"], [0, 0, p[2], p[3]], rtol=1e-15)
    np.testing.assert_allclose(G["softmax_topk_renorm"], [0, 0, p[2], p[3]] / (p[2] + p[3]), rtol=1e-15)
    np.testing.assert_allclose(G["topk_softmax"], G["softmax_topk_renorm"], rtol=1e-15)
    assert abs(G["softmax_topk"].sum() - 1.0) > 0.1, "without renormalisation the weights do not sum to 1"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MoeRouter(4, 5), r"top_k=5, but expected top_k ≤ n_experts=4 \[MoeRouter\]"),
        (lambda: MoeRouter(4, 0), r"top_k=0, but expected a whole number ≥ 1 \[MoeRouter\]"),
        (lambda: MoeRouter(4, 2, "renorm"), r"norm='renorm', but expected one of \['softmax_topk'"),
        (lambda: MoeRouter(True, 1), r"n_experts=True, but expected a whole number ≥ 1"),
        (lambda: MoeExperts(4, 2, 3, activation="swish"), r"activation='swish', but expected one of \['silu'"),
        (lambda: MoeExperts(4, 0, 3), r"d_expert=0, but expected a whole number ≥ 1"),
        (lambda: MoeMLP(4, n_experts=2, top_k=3), r"top_k=3, but expected top_k ≤ n_experts=2"),
        (lambda: MoeMLP(4, bias=True, n_experts=2, top_k=1), r"bias=True, gated=True, but expected bias=False"),
    ],
)
def test_bad_configurations_are_refused_by_name(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


# -- fast/ dispatch by expert against the reference: ties and padded rows ----------------------


@st.composite
def dispatch_cases(draw: st.DrawFn) -> tuple[MoeRouter, MoeExperts, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    n = draw(st.integers(1, 5), label="n_experts")
    router = MoeRouter(n, draw(st.integers(1, n), label="top_k"), draw(st.sampled_from(NORMS), label="norm"))
    d, h = draw(st.integers(1, 4), label="d"), draw(st.integers(1, 3), label="d_expert")
    shared = draw(st.one_of(st.none(), st.integers(1, 3)), label="d_shared")
    experts = MoeExperts(d, h, n, shared, draw(st.sampled_from(["silu", "gelu_tanh", "relu"]), label="activation"))
    B, T = draw(st.integers(1, 3), label="B"), draw(st.integers(0, 5), label="T")
    # logits from a handful of values: exact ties in most rows (and ±0)
    logits = draw(hnp.arrays(np.float64, (B, T, n), elements=st.sampled_from([0.0, -0.0, 1.0, 1.0, -2.5, 30.0])), label="logits")
    valid = draw(hnp.arrays(np.bool_, (B, T)), label="valid")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.standard_normal((B, T, d))
    x[~valid] = np.nan  # a padded row may hold anything; it must reach no expert
    params = {name: rng.standard_normal(tuple(int(s) for s in shape)) for name, shape in experts.params().items()}
    return router, experts, logits, x, params, valid


def _batch(valid: np.ndarray) -> Batch:
    positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0)
    return Batch(positions=positions, valid=valid, key_positions=positions, key_valid=valid)


@settings(max_examples=40)
@given(dispatch_cases())
def test_dispatch_by_expert_equals_the_reference_with_ties_and_padding(
    case: tuple[MoeRouter, MoeExperts, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray],
) -> None:
    router, experts, logits, x, params, valid = case
    batch = _batch(valid)
    G = KERNELS["moe_router"](router, batch, logits)
    y = KERNELS["moe_experts"](experts, batch, x, G, **params)
    assert np.all(y[~valid] == 0.0), "padded rows are dispatched to no expert"
    for b in range(valid.shape[0]):
        rows = np.flatnonzero(valid[b])
        G_ref = reference.run_op(router, {"logits": logits[b, rows]}, {})
        np.testing.assert_array_equal(G[b, rows] != 0, G_ref != 0)  # the same experts, ties broken the same way
        np.testing.assert_allclose(G[b, rows], G_ref, rtol=1e-15, atol=0)  # a sum of ≤ 5 terms in another order
        y_ref = reference.run_op(experts, {"x": x[b, rows], "G": G_ref}, params)
        np.testing.assert_allclose(y[b, rows], y_ref, rtol=0, atol=1e-13 * max(1.0, float(np.max(np.abs(y_ref), initial=0.0))))


def test_each_expert_is_one_gemm_over_the_rows_that_chose_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dispatch: the activation kernel runs once per expert that some real row chose, on exactly those rows."""
    router, experts = MoeRouter(4, 2, "softmax_topk_renorm"), MoeExperts(3, 2, 4)
    logits = np.array([[[3.0, 2.0, 0.0, 0.0], [3.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 9.0]]])
    valid = np.array([[True, True, False]])
    calls: list[int] = []
    silu = KERNELS["silu"]
    def counting(op: object, batch: Batch, a: np.ndarray) -> np.ndarray:
        calls.append(a.shape[0])
        return np.asarray(silu(op, batch, a))

    monkeypatch.setitem(KERNELS._table, "silu", counting)
    rng = np.random.default_rng(0)
    params = {name: rng.standard_normal(tuple(int(s) for s in shape)) for name, shape in experts.params().items()}
    batch = _batch(valid)
    KERNELS["moe_experts"](experts, batch, rng.standard_normal((1, 3, 3)), KERNELS["moe_router"](router, batch, logits), **params)
    assert calls == [2, 1, 1], f"rows per expert call={calls}, but expected expert 0: 2 rows, 1: 1, 2: 1, 3 (padded row only): none"


# -- a Llama-style decoder with MoE MLPs --------------------------------------------------------


def moe_llama(config: LlamaConfig, mlp: MoeMLP | None) -> Architecture:
    """build_llama's graph with every block's MLP replaced by ``mlp`` (None: the dense one)."""
    c = config
    arch = Architecture("llama-moe" if mlp else "llama", {"ids": token_ids(D.T)}, c.dims())
    X = arch.add("one_hot", OneHot(D.n_vocab), {"ids": graph_input("ids")})
    W_E = arch.declare("W_E", (D.n_vocab, D.d_model))
    h = arch.add("token_embedding", TokenEmbedding(D.n_vocab, D.d_model), {"X": X}, {"W_E": W_E})
    for layer in range(c.n_layers):
        block = c.block(layer) if mlp is None else dataclasses.replace(c.block(layer), mlp=mlp)
        h = arch.add(f"blocks.{layer}", pre_norm_block(arch.declare, f"blocks.{layer}", arch.dims, block, d=D.d_model), {"x": h})
    norm_f, p_f = rms_norm(arch.declare, "norm_f", d=D.d_model, eps=c.eps)
    h = arch.add("norm_f", norm_f, {"x": h}, p_f)
    arch.output("logits", arch.add("unembed", Affine(D.d_model, D.n_vocab, bias=False), {"x": h}, {"W": ParamRef("W_E", transpose=True)}))
    return arch.validate()


TINY = LlamaConfig(n_vocab=13, n_ctx=16, d_model=8, n_layers=2, n_heads=2, n_kv_heads=1, d_mlp=6)
SLIDING = dataclasses.replace(TINY, attention=("sliding",), sliding_window=3)
MLPS = {
    "mixtral": MoeMLP(sympy.Integer(4), n_experts=4, top_k=2, norm="softmax_topk_renorm"),
    "qwen-moe-shared": MoeMLP(sympy.Integer(3), n_experts=5, top_k=2, norm="softmax_topk", d_shared=sympy.Integer(5)),
    "topk-softmax": MoeMLP(sympy.Integer(2), n_experts=3, top_k=1, norm="topk_softmax"),
}
BATCHES = [BatchExample((5, 2, 0), (False, True, False), 7), BatchExample((6, 6), (True, False), 8), BatchExample((1,), (False,), 9)]


@pytest.mark.parametrize("config", [TINY, SLIDING], ids=["causal", "sliding-3"])
def test_an_moe_decoder_is_causal_with_the_receptive_field_of_its_dense_twin(config: LlamaConfig) -> None:
    dense = causality(moe_llama(config, None))
    moe = causality(moe_llama(config, MLPS["qwen-moe-shared"]))
    assert moe.causal and dense.causal, moe.describe()
    assert moe.relation == dense.relation, f"{moe.describe()} vs dense {dense.describe()}"


@pytest.mark.parametrize("name", MLPS)
def test_an_moe_llama_matches_the_reference_on_padded_batches_and_when_decoding(name: str) -> None:
    arch = moe_llama(TINY, MLPS[name])
    assert {node.op.kind for _, node, _ in arch.expand()} >= {"moe_router", "moe_experts"}
    impl = FastImplementation("float64")
    for seed, batch in enumerate(BATCHES):
        theta = random_theta(arch, seed, std=0.5)
        outcome = check_model(impl, arch, theta, batch)
        assert outcome.passed, f"{name}, {batch}: {outcome.comparison.describe()} > {outcome.budget:.3g}"
        decoded = check_decode(impl, arch, theta, batch)
        assert decoded is not None and decoded.passed, f"{name}, {batch}: decoding"


def test_an_moe_llama_with_a_zero_router_ties_every_expert_and_still_matches() -> None:
    """W_router = 0: every logit is exactly 0 in both interpreters, every row ties all experts and
    chooses the first top_k."""
    arch = moe_llama(TINY, MLPS["mixtral"])
    theta = random_theta(arch, 3, std=0.5)
    for layer in range(TINY.n_layers):
        theta[f"blocks.{layer}.mlp.W_router"] = np.zeros_like(theta[f"blocks.{layer}.mlp.W_router"])
    values = reference.evaluate(arch, theta, {"ids": np.array([1, 2, 3])})
    G = values["blocks.0.mlp.route"]
    np.testing.assert_array_equal(G, np.tile([0.5, 0.5, 0.0, 0.0], (3, 1)))
    for batch in BATCHES:
        assert check_model(FastImplementation("float64"), arch, theta, batch).passed
