"""The reference backward (reference/backward.py): ∂L/∂θ of whole models by running the DAG
backwards, judged three ways.

1. Central finite differences of the reference loss (spec/objective.py on reference logits) on a
   few random Θ coordinates of a tiny GPT (tied, learned positions, GELU) and a tiny Llama (GQA,
   rotary, SwiGLU, RMSNorm, tied), under label smoothing and a z-loss. Criterion
   |grad − fd| ≤ 1e-6 · max(1, |fd|) with h = 1e-5: the truncation h² f''' is ≈ 1e-8 here.
2. Torch autograd on Hugging Face GPT-2 and Llama holding the same θ (export_state_dict), in
   float64, with HF's float32 casts lifted as tests/test_llama.py does: every parameter's gradient,
   and for GPT-2 ∂L/∂inputs_embeds, within 1e-9 relative (both sides float64; only summation
   orders differ).
   The same on the fixed instances of every registered decoder family (Gemma's soft caps and
   sandwich norms, GPT-NeoX's partial rotary and parallel residual, ConvGPT, …).
3. The sums: a tied W_E gets the sum of its two uses (= the untied model's ∂L/∂W_E + ∂L/∂W_Uᵀ at
   W_U = W_Eᵀ); a GQA key/value head gets the sum over the query heads that share it (= the sum of
   the duplicated heads' gradients in the equivalent multi-head model); micro-batches with the whole
   batch's denominator sum to the batch's gradient.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

from collections.abc import Mapping

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gptspec.checkpoint import export_state_dict, native_config
from reference.backward import value_and_grad
from reference.interpreter import forward
from spec import GPTConfig, build, build_gpt
from spec.architectures import LlamaConfig, build_llama
from spec.architectures.registry import families
from spec.errors import ConfigError
from spec.graph import Architecture
from spec.objective import Objective
from spec.theta import random_theta
from tests.test_llama import HF_CLASSES, hf_in_float64

RTOL = 1e-9
IGNORE = -100

GPT = GPTConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=2)
LLAMA = LlamaConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=12, tied=True, eps=1e-5)
BATCH = [[1, 5, 2, 9, 0, 7], [3, 3, 10, 4]]
LABELS = [[1, 5, IGNORE, 9, 0, 7], [3, 3, 10, 4]]


def _loss(arch: Architecture, theta: Mapping[str, np.ndarray], objective: Objective) -> float:
    return objective.loss([forward(arch, theta, ids) for ids in BATCH], LABELS)


DECODERS = {f"{f.name}: {name}": config for f in families(kind="decoder") for name, config in f.instances().items()}
"""Every registered decoder family's fixed instances (soft caps, partial rotary, parallel residuals,
sliding windows, convolutions …): each family's record says which."""


@pytest.mark.parametrize("name", list(DECODERS))
def test_every_decoder_family_differentiates(name: str) -> None:
    """∂L/∂θ by the backward pass vs central differences, on 6 random coordinates of 6 random Θ
    entries, for each instance of every decoder family (h = 1e-5; |grad − fd| ≤ 1e-6 · max(1, |fd|))."""
    arch = build(DECODERS[name])
    theta = random_theta(arch, seed=1, std=0.3)
    T = min(5, arch.dim("n_ctx"))
    ids = [int(v) for v in np.random.default_rng(0).integers(0, arch.dim("n_vocab"), T)]
    objective = Objective(label_smoothing=0.1, z_loss=1e-3)
    grads = value_and_grad(arch, theta, [ids], objective)
    rng = np.random.default_rng(1)
    for entry in rng.choice(list(arch.theta), size=min(6, len(arch.theta)), replace=False):
        index = tuple(int(rng.integers(0, n)) for n in theta[entry].shape)
        sides = []
        for sign in (1.0, -1.0):
            moved = dict(theta)
            moved[entry] = theta[entry].copy()
            moved[entry][index] += sign * 1e-5
            sides.append(objective.loss([forward(arch, moved, ids)], [ids]))
        fd = (sides[0] - sides[1]) / 2e-5
        got = grads.theta[entry][index]
        assert abs(got - fd) <= 1e-6 * max(1.0, abs(fd)), f"∂L/∂{entry}{list(index)}={got!r}, but central differences give {fd!r} [{name}]"


@pytest.mark.parametrize("arch", [build_gpt(GPT), build_llama(LLAMA)], ids=["gpt", "llama-gqa-tied"])
def test_gradient_matches_finite_differences_of_the_loss(arch: Architecture) -> None:
    theta = random_theta(arch, seed=1, std=0.4)
    objective = Objective(label_smoothing=0.1, z_loss=1e-2)
    grads = value_and_grad(arch, theta, BATCH, objective, LABELS)
    assert grads.loss == pytest.approx(_loss(arch, theta, objective), rel=1e-14)
    rng = np.random.default_rng(0)
    h = 1e-5
    for name in arch.theta:  # one random coordinate of every Θ entry
        index = tuple(int(rng.integers(0, n)) for n in theta[name].shape)
        sides = []
        for sign in (1.0, -1.0):
            moved = dict(theta)
            moved[name] = theta[name].copy()
            moved[name][index] += sign * h
            sides.append(_loss(arch, moved, objective))
        fd = (sides[0] - sides[1]) / (2 * h)
        got = grads.theta[name][index]
        assert abs(got - fd) <= 1e-6 * max(1.0, abs(fd)), f"∂L/∂{name}{list(index)}={got!r}, but central differences give {fd!r}"


def _torch_loss(logits: list[torch.Tensor], labels: list[list[int]], objective: Objective) -> torch.Tensor:
    """The objective written with torch's own cross_entropy (mean over the batch's counted tokens)
    plus the z-loss: an independent statement of the same L."""
    rows = torch.cat([z[:-1] for z in logits])
    targets = torch.tensor([t for lam in labels for t in lam[1:]])
    counted = targets != IGNORE
    total = torch.nn.functional.cross_entropy(rows, targets, ignore_index=IGNORE, label_smoothing=objective.label_smoothing, reduction="sum")
    total = total + objective.z_loss * (torch.logsumexp(rows, dim=-1)[counted] ** 2).sum()
    return total / counted.sum()


def _compare(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray], where: str) -> None:
    for name, want in theirs.items():
        got = ours[name]
        assert got.shape == want.shape, f"{name}: {got.shape} vs {want.shape} [{where}]"
        worst = float(np.max(np.abs(got - want)))
        assert worst <= RTOL * float(np.max(np.abs(want))), f"∂L/∂{name}: max|ours − torch|={worst:.3e} [{where}]"


def test_gradients_equal_torch_autograd_on_hugging_face_gpt2() -> None:
    arch = build_gpt(GPT)
    theta = random_theta(arch, seed=2, std=0.3)
    objective = Objective(label_smoothing=0.1, z_loss=1e-3)
    ours = value_and_grad(arch, theta, BATCH, objective, LABELS)
    state = export_state_dict(arch, theta, "hf-gpt2")
    config = {**native_config(arch, "hf-gpt2"), "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    model = GPT2LMHeadModel(GPT2Config(**config)).double().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    embeds = [model.transformer.wte(torch.tensor(ids)).detach().requires_grad_(True) for ids in BATCH]
    logits = [model(inputs_embeds=e[None]).logits[0] for e in embeds]
    loss = _torch_loss(logits, LABELS, objective)
    loss.backward()
    assert ours.loss == pytest.approx(float(loss.detach()), rel=1e-12)
    theirs = {name: p.grad.numpy() for name, p in model.named_parameters() if p.grad is not None}
    mapped = export_state_dict(arch, ours.theta, "hf-gpt2")  # the layout map is linear: it maps gradients too
    assert set(theirs) <= set(mapped), f"HF parameters with no Θ gradient: {sorted(set(theirs) - set(mapped))}"
    # wte gets its gradient through inputs_embeds here (which torch does not send back to wte),
    # so compare wte as ours minus the embedding use, and ∂L/∂inputs_embeds separately
    ours_embed_use = sum(np.eye(GPT.n_vocab)[ids].T @ g["token_embedding"] for ids, g in zip(BATCH, ours.embeddings))
    mapped["transformer.wte.weight"] = mapped["transformer.wte.weight"] - ours_embed_use
    _compare(mapped, theirs, "hf-gpt2")
    for b, e in enumerate(embeds):
        assert e.grad is not None
        _compare({"inputs_embeds": ours.embeddings[b]["token_embedding"]}, {"inputs_embeds": e.grad.numpy()}, f"hf-gpt2 sequence {b}")


def test_gradients_equal_torch_autograd_on_hugging_face_llama() -> None:
    arch = build_llama(LLAMA)
    theta = random_theta(arch, seed=3, std=0.4)
    objective = Objective(label_smoothing=0.1)
    ours = value_and_grad(arch, theta, BATCH, objective, LABELS)
    state = export_state_dict(arch, theta, "hf-llama")
    native = native_config(arch, "hf-llama")
    config_class, model_class = HF_CLASSES[str(native["model_type"])]
    with hf_in_float64():
        model = model_class(config_class(**{k: v for k, v in native.items() if k != "model_type"})).double().eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        logits = [model(torch.tensor([ids])).logits[0] for ids in BATCH]
        loss = _torch_loss(logits, LABELS, objective)
        loss.backward()
    assert ours.loss == pytest.approx(float(loss.detach()), rel=1e-12)
    theirs = {name: p.grad.numpy() for name, p in model.named_parameters() if p.grad is not None}
    mapped = export_state_dict(arch, ours.theta, "hf-llama")
    assert set(theirs) <= set(mapped), f"HF parameters with no Θ gradient: {sorted(set(theirs) - set(mapped))}"
    _compare(mapped, theirs, "hf-llama")


def test_a_tied_embedding_gets_the_sum_of_both_uses() -> None:
    tied = build_gpt(GPT)
    untied = build_gpt(GPTConfig(n_vocab=11, n_ctx=8, d_model=8, n_layers=2, n_heads=2, tied=False))
    theta = random_theta(tied, seed=4, std=0.4)
    theta_untied = {**theta, "W_U": theta["W_E"].T.copy()}
    g_tied = value_and_grad(tied, theta, BATCH).theta
    g_untied = value_and_grad(untied, theta_untied, BATCH).theta
    both = g_untied["W_E"] + g_untied["W_U"].T
    assert np.max(np.abs(g_tied["W_E"] - both)) <= 1e-13 * np.max(np.abs(both)), "tied ∂L/∂W_E ≠ embedding use + unembedding use"
    assert np.max(np.abs(g_untied["W_U"])) > 0 and np.max(np.abs(g_untied["W_E"])) > 0


def test_a_shared_key_value_head_gets_the_sum_over_its_query_heads() -> None:
    gqa = build_llama(LLAMA)  # 4 query heads, 2 key/value heads: heads 0, 1 read kv 0; heads 2, 3 read kv 1
    mha = build_llama(LLAMA.replace(n_kv_heads=4))
    theta = random_theta(gqa, seed=5, std=0.4)
    theta_mha = dict(theta)
    for layer in range(LLAMA.n_layers):
        for w in ("W_K", "W_V"):
            name = f"blocks.{layer}.attn.{w}"
            theta_mha[name] = np.repeat(theta[name], 2, axis=0)  # kv head g duplicated for query heads 2g, 2g + 1
    g_gqa = value_and_grad(gqa, theta, BATCH).theta
    g_mha = value_and_grad(mha, theta_mha, BATCH).theta
    for layer in range(LLAMA.n_layers):
        for w in ("W_K", "W_V"):
            name = f"blocks.{layer}.attn.{w}"
            summed = g_mha[name][0::2] + g_mha[name][1::2]
            assert np.max(np.abs(g_gqa[name] - summed)) <= 1e-13 * np.max(np.abs(summed)), f"∂L/∂{name} is not the sum over shared heads"


@pytest.mark.parametrize("reduction", ["mean", "sequence", "sum"])
def test_micro_batches_accumulate_to_the_batch_gradient(reduction: str) -> None:
    arch = build_gpt(GPT)
    theta = random_theta(arch, seed=6, std=0.4)
    objective = Objective(reduction=reduction)  # type: ignore[arg-type]
    whole = value_and_grad(arch, theta, BATCH, objective, LABELS)
    D = objective.denominator(LABELS)
    parts = [value_and_grad(arch, theta, BATCH[i : i + 1], objective, LABELS[i : i + 1], denominator=D) for i in range(len(BATCH))]
    assert sum(p.loss for p in parts) == pytest.approx(whole.loss, rel=1e-14)
    for name, g in whole.theta.items():
        assert np.allclose(sum(p.theta[name] for p in parts), g, rtol=1e-13, atol=1e-15 * np.max(np.abs(g))), name


def test_value_and_grad_refuses_what_it_does_not_define() -> None:
    arch = build_gpt(GPT)
    theta = random_theta(arch, seed=0)
    with pytest.raises(ConfigError, match="expected a spec.objective.Objective"):
        value_and_grad(arch, theta, BATCH, "mean")  # type: ignore[arg-type]
