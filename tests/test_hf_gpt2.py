"""End to end against an independent implementation: random Hugging Face GPT-2 models, saved
with ``save_pretrained`` and loaded through gptspec, compute the same logits and the same
residual stream after every block as ``reference`` does (HF run in float64, eval mode).

Every weight is random, layer-norm gains and biases included (Hugging Face initialises biases
to zero and gains to one, which would hide a dropped bias or a swapped γ/β). Tolerance:
max|ours − hf| ≤ 1e-9 · max|hf| per compared tensor; both sides compute in float64 from the
same float64 values, so the only differences are summation orders and library elementary
functions (≈1e-16 relative per operation).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from gptspec.checkpoint import load, load_hf_gpt2
from reference import evaluate

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

RTOL = 1e-9
VOCAB, N_POSITIONS = 29, 12

CASES: dict[str, dict[str, Any]] = {
    "base-f32": {"n_embd": 16, "n_head": 2, "n_layer": 2},
    "heads4-n_inner-f64": {"n_embd": 16, "n_head": 4, "n_layer": 3, "n_inner": 24, "_dtype": torch.float64},
    "d_head1-untied": {"n_embd": 6, "n_head": 6, "n_layer": 2, "tie_word_embeddings": False},
    "gelu_erf-eps-bf16": {
        "n_embd": 12, "n_head": 3, "n_layer": 2, "activation_function": "gelu", "layer_norm_epsilon": 1e-2,
        "_dtype": torch.bfloat16,
    },
    "relu-inverse_layer-f16": {
        "n_embd": 16, "n_head": 2, "n_layer": 3, "activation_function": "relu",
        "scale_attn_by_inverse_layer_idx": True, "_dtype": torch.float16,
    },
    "gelu_python-f64": {
        "n_embd": 8, "n_head": 2, "n_layer": 1, "activation_function": "gelu_python", "_dtype": torch.float64,
    },
    "unscaled-gelu_pytorch_tanh": {
        "n_embd": 8, "n_head": 2, "n_layer": 2, "scale_attn_weights": False,
        "activation_function": "gelu_pytorch_tanh",
    },
    "unscaled-inverse_layer-untied-eager-gelu_python_tanh": {
        "n_embd": 8, "n_head": 1, "n_layer": 3, "scale_attn_weights": False, "activation_function": "gelu_python_tanh",
        "scale_attn_by_inverse_layer_idx": True, "tie_word_embeddings": False, "_attn": "eager",
    },
}


def random_model(seed: int, **options: Any) -> GPT2LMHeadModel:
    """A GPT2LMHeadModel with every parameter drawn at random (gains around 1, all else around 0)."""
    torch.manual_seed(seed)
    settings = {k: v for k, v in options.items() if not k.startswith("_")}
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=N_POSITIONS, bos_token_id=0, eos_token_id=0, **settings
    )
    config._attn_implementation = options.get("_attn", "sdpa")
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            gain = ".ln_" in name and name.endswith(".weight")
            if gain:
                torch.nn.init.normal_(parameter, mean=1.0, std=0.3)
            elif parameter.dim() == 1:
                torch.nn.init.normal_(parameter, mean=0.0, std=0.3)
            else:
                fan_in = parameter.shape[0] if ".h." in name else 4
                torch.nn.init.normal_(parameter, mean=0.0, std=1.0 / fan_in**0.5)
    return model.eval()


def hf_run(model: GPT2LMHeadModel, ids: list[int]) -> dict[str, np.ndarray]:
    """HF's logits, embedding output, every block's output (by forward hooks) and ln_f's output,
    in float64, named by our paths."""
    values: dict[str, np.ndarray] = {}
    hooks = [
        block.register_forward_hook(
            lambda _m, _i, out, layer=layer: values.__setitem__(
                f"blocks.{layer}.add_mlp", (out[0] if isinstance(out, tuple) else out)[0].numpy()
            )
        )
        for layer, block in enumerate(model.transformer.h)
    ]
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    values["embed"] = out.hidden_states[0][0].numpy()
    values["ln_f"] = out.hidden_states[-1][0].numpy()  # HF's last hidden state is after ln_f
    values["logits"] = out.logits[0].numpy()
    return values


def relative_errors(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    return {
        path: float(np.max(np.abs(ours[path] - value)) / np.max(np.abs(value)))
        for path, value in theirs.items()
    }


def sequences(seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB, size=N_POSITIONS).tolist(), [int(rng.integers(0, VOCAB))]]


@pytest.mark.parametrize("case", CASES)
def test_logits_and_every_layer_match_hugging_face(tmp_path: Path, case: str) -> None:
    options = CASES[case]
    model = random_model(seed=len(case), **options)
    model.to(options.get("_dtype", torch.float32)).save_pretrained(tmp_path)
    model.double()  # widening the stored values is exact, so both sides hold the same θ
    arch, theta = load_hf_gpt2(tmp_path)
    assert arch.config is not None
    for ids in sequences(len(case)):
        theirs = hf_run(model, ids)
        ours = evaluate(arch, theta, {"ids": ids})
        errors = relative_errors(ours, theirs)
        worst = max(errors, key=errors.__getitem__)
        assert errors[worst] <= RTOL, (
            f"max|ours − hf| / max|hf| at {worst}={errors[worst]:.3g}, but expected ≤ {RTOL} "
            f"[{case}, T={len(ids)}]; all: {errors}"
        )
        assert np.array_equal(ours["logits"].argmax(-1), theirs["logits"].argmax(-1)), f"greedy tokens differ [{case}]"
        assert np.max(np.abs(theirs["logits"])) > 1.0, f"logits too small to be a meaningful test [{case}]"


def test_gpt2model_checkpoint_without_prefix(tmp_path: Path) -> None:
    """A bare GPT2Model (as the original hub "gpt2" checkpoint is) has no ``transformer.``
    prefix and no head; tied, its logits are ln_f(h) · wteᵀ."""
    model = random_model(seed=11, n_embd=8, n_head=2, n_layer=2)
    model.transformer.save_pretrained(tmp_path)
    model.double()
    arch, theta = load(tmp_path)
    ids = sequences(11)[0]
    theirs = hf_run(model, ids)
    errors = relative_errors(evaluate(arch, theta, {"ids": ids}), theirs)
    assert max(errors.values()) <= RTOL, f"relative errors={errors}, but expected ≤ {RTOL} [GPT2Model]"


def test_sharded_save_pretrained(tmp_path: Path) -> None:
    model = random_model(seed=12, n_embd=16, n_head=2, n_layer=2)
    model.save_pretrained(tmp_path, max_shard_size="4KB")
    assert (tmp_path / "model.safetensors.index.json").is_file(), "expected save_pretrained to shard"
    model.double()
    arch, theta = load(tmp_path)
    ids = sequences(12)[0]
    errors = relative_errors(evaluate(arch, theta, {"ids": ids}), hf_run(model, ids))
    assert max(errors.values()) <= RTOL, f"relative errors={errors}, but expected ≤ {RTOL} [sharded]"


def test_reorder_and_upcast_attn_changes_rounding_only(tmp_path: Path) -> None:
    """reorder_and_upcast_attn is ignored as numerics only. Hugging Face runs it in float32
    only (in float64 it raises), so judge it the PyTorch-attention-tests way: its float32 error
    against our float64 logits is within a small factor of plain float32's error."""
    options = {"n_embd": 16, "n_head": 2, "n_layer": 2, "_attn": "eager"}
    upcast = random_model(seed=13, reorder_and_upcast_attn=True, **options)
    plain = random_model(seed=13, **options)
    upcast.save_pretrained(tmp_path)
    arch, theta = load(tmp_path)
    ids = sequences(13)[0]
    want = evaluate(arch, theta, {"ids": ids})["logits"]
    scale = float(np.max(np.abs(want)))
    err = {name: float(np.max(np.abs(hf_run(model, ids)["logits"] - want))) / scale for name, model in (("upcast", upcast), ("plain", plain))}
    assert err["upcast"] <= 4 * err["plain"] + 1e-6, (
        f"float32 relative error with reorder_and_upcast_attn={err['upcast']:.3g}, but expected ≤ "
        f"4 × plain float32's {err['plain']:.3g} + 1e-6 [reorder_and_upcast_attn]"
    )


# -- export: θ → Hugging Face, from the same layout table ------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"n_vocab": 13, "n_ctx": 9, "d_model": 8, "n_layers": 2, "n_heads": 2},
        {"n_vocab": 13, "n_ctx": 9, "d_model": 6, "n_layers": 1, "n_heads": 3, "d_mlp": 10, "tied": False, "activation": "gelu_erf"},
        {"n_vocab": 13, "n_ctx": 9, "d_model": 4, "n_layers": 2, "n_heads": 1, "attn_scale": 1.0, "scale_by_inverse_layer": True},
    ],
    ids=["tied", "untied-gelu_erf-d_mlp", "unscaled-inverse_layer"],
)
def test_exported_state_dict_runs_in_hugging_face_and_round_trips(config: dict[str, Any]) -> None:
    """θ → export_state_dict → GPT2LMHeadModel.load_state_dict(strict) gives HF the spec's logits
    (float64), and import_state_dict gives θ back bit for bit."""
    from gptspec.checkpoint import export_state_dict, import_state_dict, native_config
    from spec import GPTConfig, build
    from spec.theta import random_theta

    arch = build(GPTConfig(**config))
    theta = random_theta(arch, seed=3, std=0.3)
    state = export_state_dict(arch, theta, "hf-gpt2")
    model = GPT2LMHeadModel(GPT2Config(**native_config(arch, "hf-gpt2"))).double().eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert not unexpected, f"exported names HF does not know: {unexpected}"
    assert not [m for m in missing if not m.endswith((".attn.bias", ".attn.masked_bias"))], f"HF tensors not exported: {missing}"
    ids = np.array([[1, 5, 2, 12, 0, 7]])
    with torch.no_grad():
        hf = model(torch.from_numpy(ids)).logits[0].numpy()
    want = evaluate(arch, theta, {"ids": ids[0]})["logits"]
    assert np.max(np.abs(hf - want)) <= RTOL * np.max(np.abs(want))
    _, back = import_state_dict(arch.config, state, "hf-gpt2")
    assert back.keys() == theta.keys() and all(np.array_equal(back[k], theta[k]) for k in theta), "θ → state dict → θ is not bit-exact"


def test_export_refuses_what_gpt2_cannot_express() -> None:
    from gptspec.checkpoint import export_state_dict
    from spec import CheckpointError, GPTConfig, build
    from spec.theta import random_theta

    arch = build(GPTConfig(n_vocab=5, n_ctx=4, d_model=4, n_layers=1, n_heads=2, bias=False, positional="sinusoidal"))
    with pytest.raises(CheckpointError, match=r"bias=false.*positional='sinusoidal'.*but expected a config GPT-2 can express"):
        export_state_dict(arch, random_theta(arch, 0), "hf-gpt2")
