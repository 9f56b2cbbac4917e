"""The encoder–decoder against an independent implementation: random Hugging Face ``MarianMTModel``s,
saved with ``save_pretrained(safe_serialization=True)`` and loaded through the ``hf-marian`` layout,
compute the same logits — and the same residual stream after every encoder and decoder layer — as
``reference`` does, both in float64.

Every weight is random, layer-norm gains and biases and the final-logits bias included (Hugging
Face initialises them to 1 and 0). Marian computes its sinusoidal tables through float32
(``torch.FloatTensor``); for the float64 comparison they are replaced by the same formula in
float64 (``hf_marian.sinusoidal_table``) — the only change made to the model. Tolerance:
max|ours − hf| ≤ 1e-9 · max|hf| per compared tensor.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import MarianConfig, MarianMTModel

from gptspec.checkpoint import export_state_dict, load, native_config
from gptspec.checkpoint.hf_marian import HF_MARIAN_KEYS, sinusoidal_table
from gptspec.cli import main
from reference import evaluate
from spec import build
from spec.architectures.transformer import TransformerConfig
from spec.errors import CheckpointError
from spec.seq2seq import SOURCE, TARGET
from spec.theta import random_theta

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

RTOL = 1e-9


def random_marian(seed: int, **options: Any) -> MarianMTModel:
    """A MarianMTModel with every parameter (and the final-logits bias) drawn at random."""
    torch.manual_seed(seed)
    config = MarianConfig(
        vocab_size=options.pop("vocab_size", 19), max_position_embeddings=16, pad_token_id=0, decoder_start_token_id=0,
        eos_token_id=1, forced_eos_token_id=1, **options,
    )
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:
                continue
            gain = "layer_norm" in name and name.endswith(".weight")
            torch.nn.init.normal_(parameter, mean=1.0 if gain else 0.0, std=0.3 if gain or parameter.dim() == 1 else 0.4)
        model.final_logits_bias.normal_(0.0, 0.3)
    return model


def saved(model: MarianMTModel, directory: Path) -> Path:
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def float64(model: MarianMTModel) -> MarianMTModel:
    model = model.double()
    with torch.no_grad():
        for table in (model.model.encoder.embed_positions, model.model.decoder.embed_positions):
            table.weight.copy_(torch.from_numpy(sinusoidal_table(*table.weight.shape)))
    return model


def hf_run(model: MarianMTModel, source: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(source[None]), decoder_input_ids=torch.from_numpy(target[None]), output_hidden_states=True)
    return {
        "logits": out.logits[0].numpy(),
        "encoder": [h[0].numpy() for h in out.encoder_hidden_states],
        "decoder": [h[0].numpy() for h in out.decoder_hidden_states],
    }


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def compare(arch: Any, theta: Any, model: MarianMTModel, source: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Relative error of the logits and of the residual stream after the embeddings and every layer."""
    ours = evaluate(arch, theta, {SOURCE: source, TARGET: target})
    theirs = hf_run(float64(model), source, target)
    errors = {"logits": relative(ours["logits"], theirs["logits"])}
    layers = arch.config.n_layers
    errors["encoder.embed"] = relative(ours["encoder.embed"], theirs["encoder"][0])
    errors["decoder.embed"] = relative(ours["decoder.embed"], theirs["decoder"][0])
    for i in range(layers):
        errors[f"encoder.blocks.{i}"] = relative(ours[f"encoder.blocks.{i}.ln_2"], theirs["encoder"][i + 1])
        errors[f"decoder.blocks.{i}"] = relative(ours[f"decoder.blocks.{i}.ln_3"], theirs["decoder"][i + 1])
    return errors


marian_configs = st.fixed_dictionaries({
    "d_model": st.sampled_from([4, 6, 8, 12]),
    "heads": st.sampled_from([1, 2]),
    "layers": st.integers(1, 2),
    "ffn": st.integers(1, 10),
    "activation_function": st.sampled_from(["relu", "gelu", "gelu_new"]),
    "scale_embedding": st.booleans(),
    "share_encoder_decoder_embeddings": st.booleans(),
    "tie_word_embeddings": st.booleans(),
    "seed": st.integers(0, 2**16),
    "S": st.integers(1, 7),
    "T": st.integers(1, 6),
}).filter(lambda c: c["tie_word_embeddings"] or not c["share_encoder_decoder_embeddings"])  # share and untied: see test_share_without_tying


@settings(max_examples=4, deadline=None)
@given(marian_configs)
def test_random_marian_models_equal_the_reference_in_float64(tmp_path_factory: pytest.TempPathFactory, case: dict[str, Any]) -> None:
    heads, layers, d = case["heads"], case["layers"], case["d_model"]
    model = random_marian(
        case["seed"], d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
        decoder_attention_heads=heads, encoder_ffn_dim=case["ffn"], decoder_ffn_dim=case["ffn"],
        activation_function=case["activation_function"], scale_embedding=case["scale_embedding"],
        share_encoder_decoder_embeddings=case["share_encoder_decoder_embeddings"], tie_word_embeddings=case["tie_word_embeddings"],
    )
    arch, theta = load(saved(model, tmp_path_factory.mktemp("marian")))
    rng = np.random.default_rng(case["seed"])
    source, target = rng.integers(0, 19, size=case["S"]), rng.integers(0, 19, size=case["T"])
    errors = compare(arch, theta, model, source, target)
    worst = max(errors, key=lambda k: errors[k])
    assert errors[worst] <= RTOL, f"{worst}: relative error {errors[worst]:.3g} > {RTOL} [{case}]"


def test_padded_batches_equal_hugging_face_at_real_positions(tmp_path: Path) -> None:
    """Right-padded sources and targets with Marian's attention masks against fast/'s valid masks."""
    import fast

    model = random_marian(3, d_model=8, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                          encoder_ffn_dim=12, decoder_ffn_dim=12, activation_function="relu", scale_embedding=True)
    arch, theta = load(saved(model, tmp_path))
    src = np.array([[3, 4, 5, 6, 7], [8, 9, 2, 0, 0]])
    src_valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
    tgt = np.array([[0, 5, 6, 0], [0, 2, 3, 4]])
    tgt_valid = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    with torch.no_grad():
        theirs = float64(model)(input_ids=torch.from_numpy(src), attention_mask=torch.from_numpy(src_valid.astype(np.int64)),
                                decoder_input_ids=torch.from_numpy(tgt), decoder_attention_mask=torch.from_numpy(tgt_valid.astype(np.int64))).logits.numpy()
    ours = fast.compile(arch, theta, "float64").forward(tgt, tgt_valid, context={SOURCE: src}, context_valid={SOURCE: src_valid})
    for b in range(2):
        assert relative(ours[b, tgt_valid[b]], theirs[b, tgt_valid[b]]) <= RTOL


def test_export_round_trip_into_hugging_face(tmp_path: Path) -> None:
    config = TransformerConfig(n_vocab=21, n_ctx=16, d_model=8, n_layers=2, n_heads=2, d_mlp=6, positional="concatenated",
                               logits_bias=True, activation="gelu_erf", name="export")
    arch = build(config)
    theta = random_theta(arch, 9, std=0.4)
    native = native_config(arch, "hf-marian")
    model = MarianMTModel(MarianConfig(**native, pad_token_id=0, decoder_start_token_id=0)).eval()
    state = {k: torch.from_numpy(v).float() for k, v in export_state_dict(arch, theta, "hf-marian").items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("embed_positions" in m or "embed_tokens" in m or m == "lm_head.weight" for m in missing), (missing, unexpected)
    model.tie_weights()
    theta32 = {k: v.astype(np.float32).astype(np.float64) for k, v in theta.items()}
    source, target = np.array([1, 2, 3, 4]), np.array([0, 5, 6])
    ours = evaluate(arch, theta32, {SOURCE: source, TARGET: target})["logits"]
    assert relative(ours, hf_run(float64(model), source, target)["logits"]) <= RTOL
    assert saved(model, tmp_path).exists() and load(tmp_path)[0].config == config.replace(name="marian")


def test_the_config_table_covers_every_key_marian_writes() -> None:
    assert set(MarianConfig().to_dict()) <= set(HF_MARIAN_KEYS)


def edit(directory: Path, **changes: object) -> Path:
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize(("changes", "message"), [
    ({"activation_function": "mish"}, "mish"),
    ({"activation_function": "gelu_fast"}, "gelu_fast"),
    ({"normalize_before": True}, "post-LN"),
    ({"add_final_layer_norm": True}, "final layer norm"),
    ({"some_new_option": 1}, "some_new_option"),
])
def test_what_marian_does_not_model_is_refused_by_name(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    model = random_marian(0, d_model=4, encoder_layers=2, decoder_layers=2, encoder_attention_heads=1, decoder_attention_heads=1,
                          encoder_ffn_dim=4, decoder_ffn_dim=4)
    with pytest.raises(CheckpointError, match=message):
        load(edit(saved(model, tmp_path), **changes))


def test_share_without_tying_is_refused(tmp_path: Path) -> None:
    """transformers ≥ 5 ties the encoder's and decoder's embeddings to model.shared only when
    tie_word_embeddings is true: the file then holds three embeddings under 'shared'."""
    model = random_marian(0, d_model=4, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1, decoder_attention_heads=1,
                          encoder_ffn_dim=4, decoder_ffn_dim=4, share_encoder_decoder_embeddings=True, tie_word_embeddings=False)
    with pytest.raises(CheckpointError, match="one embedding for source and target"):
        load(saved(model, tmp_path))


def test_a_stored_positional_table_must_be_the_sinusoidal_one(tmp_path: Path) -> None:
    from gptspec import safetensors_io

    model = random_marian(0, d_model=4, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1, decoder_attention_heads=1,
                          encoder_ffn_dim=4, decoder_ffn_dim=4)
    path = saved(model, tmp_path) / "model.safetensors"
    tensors = safetensors_io.read(path)
    table = model.model.encoder.embed_positions.weight.detach().numpy()
    safetensors_io.write(path, tensors | {"model.encoder.embed_positions.weight": table})
    load(tmp_path)  # Marian's own float32 table is accepted
    safetensors_io.write(path, tensors | {"model.encoder.embed_positions.weight": table + np.float32(0.01)})
    with pytest.raises(CheckpointError, match="learned positions"):
        load(tmp_path)


def test_forward_on_a_marian_directory_takes_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = random_marian(1, d_model=4, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                          encoder_ffn_dim=4, decoder_ffn_dim=4)
    directory = saved(model, tmp_path)
    out = tmp_path / "logits.npy"
    assert main(["forward", str(directory), "--source", "3 4 5", "--tokens", "0 7", "--out", str(out)]) == 0
    arch, theta = load(directory)
    np.testing.assert_array_equal(np.load(out), evaluate(arch, theta, {SOURCE: np.array([3, 4, 5]), TARGET: np.array([0, 7])})["logits"])
    assert main(["forward", str(directory), "--tokens", "0 7"]) == 2  # could not run
    assert "--source" in capsys.readouterr().err
