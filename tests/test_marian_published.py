"""Marian as the opus-mt checkpoints publish it, against Hugging Face's ``MarianMTModel`` in float64:
the swish (SiLU) FFN, a separate target vocabulary (``decoder_vocab_size``, unshared embeddings)
and an encoder and a decoder of different depth, head count and FFN width — each through the
``hf-marian`` layout, the reference and fast/, greedy generation, and the export back.

Models are random (tests/test_hf_marian.py's ``random_marian``: every weight drawn, the float32
sinusoidal tables replaced by the float64 formula — the only change made to the model).
Tolerance: max|ours − hf| ≤ 1e-9 · max|hf| per compared tensor.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fast
from fast.lm import generate as fast_generate
from gptspec.checkpoint import export_state_dict, load, native_config
from gptspec.checkpoint.hf_marian import HF_MARIAN_KEYS
from reference import evaluate
from reference.seq2seq import generate as reference_generate
from spec import build
from spec.architectures.registry import family
from spec.architectures.transformer import TransformerConfig
from spec.errors import CheckpointError, ConfigError, TokenError
from spec.seq2seq import SOURCE, TARGET, vocabulary
from tests.test_hf_marian import edit, float64, hf_run, random_marian, relative, saved

RTOL = 1e-9

PUBLISHED = {
    # opus-mt-*: activation_function="swish", one vocabulary, equal stacks
    "swish": dict(d_model=8, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                  encoder_ffn_dim=12, decoder_ffn_dim=12, activation_function="swish", scale_embedding=True),
    # a target vocabulary of its own: unshared embeddings, lm_head tied to the decoder's
    "separate target vocabulary, tied": dict(
        vocab_size=19, decoder_vocab_size=13, share_encoder_decoder_embeddings=False, tie_word_embeddings=True, d_model=8,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=6,
        decoder_ffn_dim=6, activation_function="swish", scale_embedding=True),
    "separate target vocabulary, untied": dict(
        vocab_size=11, decoder_vocab_size=17, share_encoder_decoder_embeddings=False, tie_word_embeddings=False, d_model=4,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=1, decoder_attention_heads=1, encoder_ffn_dim=4,
        decoder_ffn_dim=4, activation_function="relu"),
    # different depth, heads and FFN width in the two stacks
    "unequal stacks": dict(d_model=12, encoder_layers=3, decoder_layers=1, encoder_attention_heads=3, decoder_attention_heads=2,
                           encoder_ffn_dim=10, decoder_ffn_dim=7, activation_function="silu"),
    "all at once": dict(
        vocab_size=15, decoder_vocab_size=9, share_encoder_decoder_embeddings=False, tie_word_embeddings=True, d_model=8,
        encoder_layers=1, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=1, encoder_ffn_dim=5,
        decoder_ffn_dim=11, activation_function="swish", scale_embedding=True),
}


def vocabularies(options: dict[str, Any]) -> tuple[int, int]:
    source = options.get("vocab_size", 19)
    return source, options.get("decoder_vocab_size", source)


@pytest.mark.parametrize("case", list(PUBLISHED))
def test_marian_as_published_equals_hugging_face(tmp_path: Path, case: str) -> None:
    """Logits and the residual stream after every layer (reference), logits of a padded batch
    (fast/), greedy generation (reference, fast/ and Hugging Face's generate), and the export."""
    options = dict(PUBLISHED[case])
    n_source, n_target = vocabularies(options)
    model = random_marian(7, **options)
    arch, theta = load(saved(model, tmp_path))
    c = arch.config
    assert (c.n_vocab, c.target_vocab, c.n_layers, c.decoder_layers, c.n_heads, c.decoder_heads, c.mlp_width, c.decoder_mlp_width) == (
        n_source, n_target, options["encoder_layers"], options["decoder_layers"], options["encoder_attention_heads"],
        options["decoder_attention_heads"], options["encoder_ffn_dim"], options["decoder_ffn_dim"]), c
    assert (vocabulary(arch, SOURCE), vocabulary(arch, TARGET)) == (n_source, n_target)
    rng = np.random.default_rng(7)
    source, target = rng.integers(0, n_source, size=6), rng.integers(0, n_target, size=5)
    source[0] = n_source - 1  # the source's last id, which the target vocabulary may not have
    ours = evaluate(arch, theta, {SOURCE: source, TARGET: target})
    theirs = hf_run(float64(model), source, target)
    errors = {"logits": relative(ours["logits"], theirs["logits"])}
    for i in range(c.n_layers):
        errors[f"encoder.blocks.{i}"] = relative(ours[f"encoder.blocks.{i}.ln_2"], theirs["encoder"][i + 1])
    for i in range(c.decoder_layers):
        errors[f"decoder.blocks.{i}"] = relative(ours[f"decoder.blocks.{i}.ln_3"], theirs["decoder"][i + 1])
    assert len(errors) == 1 + c.n_layers + c.decoder_layers
    worst = max(errors, key=lambda k: errors[k])
    assert errors[worst] <= RTOL, f"{worst}: relative error {errors[worst]:.3g} > {RTOL} [{case}]"

    # fast/, a right-padded batch of two pairs, against Hugging Face with its attention masks
    src = np.array([source, np.r_[source[:3], 0, 0, 0]])
    src_valid = np.array([[1] * 6, [1, 1, 1, 0, 0, 0]], dtype=bool)
    tgt = np.array([target, np.r_[target[:2], 0, 0, 0]])
    tgt_valid = np.array([[1] * 5, [1, 1, 0, 0, 0]], dtype=bool)
    program = fast.compile(arch, theta, "float64")
    batch = program.forward(tgt, tgt_valid, context={SOURCE: src}, context_valid={SOURCE: src_valid})
    with torch.no_grad():
        hf_batch = float64(model)(
            input_ids=torch.from_numpy(src), attention_mask=torch.from_numpy(src_valid.astype(np.int64)),
            decoder_input_ids=torch.from_numpy(tgt), decoder_attention_mask=torch.from_numpy(tgt_valid.astype(np.int64)),
        ).logits.numpy()
    for b in range(2):
        assert relative(batch[b, tgt_valid[b]], hf_batch[b, tgt_valid[b]]) <= RTOL, b

    # greedy generation from the start token (Marian's pad id, 0) for 6 tokens, no early stop
    new = reference_generate(arch, theta, source.tolist(), [0], 6)
    assert fast_generate(program, [[0]], 6, context={SOURCE: [source.tolist()]}) == [new]
    with torch.no_grad():
        hf_new = float64(model).generate(
            input_ids=torch.from_numpy(source[None]), max_new_tokens=6, min_new_tokens=6, do_sample=False, num_beams=1,
            decoder_start_token_id=0, eos_token_id=None, forced_eos_token_id=None, bad_words_ids=None, pad_token_id=0,
        )[0, 1:].tolist()
    assert hf_new == new

    # export: Hugging Face's own state dict and config back, key for key
    exported = export_state_dict(arch, theta, "hf-marian")
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if "embed_positions" not in k}
    assert set(exported) <= set(state) and all(np.array_equal(exported[k], state[k]) for k in exported)
    missing = set(state) - set(exported)
    assert all(k.endswith("embed_tokens.weight") or k == "lm_head.weight" for k in missing), missing  # tied: one of two names
    native = native_config(arch, "hf-marian")
    assert set(native) <= set(HF_MARIAN_KEYS)
    for key in ("vocab_size", "decoder_vocab_size", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim"):
        assert native[key] == getattr(model.config, key), key
    assert native["activation_function"] in ("swish", "relu")
    assert build(c) is not arch and build(c).theta == arch.theta


def test_target_and_source_ids_are_checked_against_their_own_vocabularies(tmp_path: Path) -> None:
    model = random_marian(1, **PUBLISHED["separate target vocabulary, tied"])  # source 19, target 13
    arch, theta = load(saved(model, tmp_path))
    program = fast.compile(arch, theta, "float64")
    evaluate(arch, theta, {SOURCE: np.array([18]), TARGET: np.array([12])})
    with pytest.raises(TokenError, match="13"):
        evaluate(arch, theta, {SOURCE: np.array([18]), TARGET: np.array([13])})
    with pytest.raises(TokenError, match="19"):
        evaluate(arch, theta, {SOURCE: np.array([19]), TARGET: np.array([0])})
    with pytest.raises(TokenError, match="19"):
        program.forward(np.array([[0]]), context={SOURCE: np.array([[19]])})
    with pytest.raises(TokenError, match="13"):
        program.forward(np.array([[13]]), context={SOURCE: np.array([[18]])})


def test_a_shared_embedding_has_one_vocabulary(tmp_path: Path) -> None:
    """With share_encoder_decoder_embeddings, MarianMTModel sizes lm_head and the logits bias by
    vocab_size and ties the decoder's embedding to model.shared: decoder_vocab_size changes
    nothing, and gptspec reads the one vocabulary too. The spec refuses two vocabularies on one matrix."""
    model = random_marian(2, d_model=4, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1, decoder_attention_heads=1,
                          encoder_ffn_dim=4, decoder_ffn_dim=4, decoder_vocab_size=7)
    assert model.lm_head.weight.shape[0] == 19
    arch, theta = load(saved(model, tmp_path))
    assert arch.config.target_vocab == 19 and arch.config.n_vocab_target is None
    source, target = np.array([18, 3, 4]), np.array([0, 17])
    assert relative(evaluate(arch, theta, {SOURCE: source, TARGET: target})["logits"], hf_run(float64(model), source, target)["logits"]) <= RTOL
    with pytest.raises(ConfigError, match="n_vocab_target=7, but expected n_vocab=19 with shared_embeddings=True"):
        TransformerConfig(n_vocab=19, n_vocab_target=7, n_ctx=8, d_model=4, n_layers=1, n_heads=1)


@pytest.mark.parametrize(("options", "message"), [
    ({"n_decoder_heads": 3}, "n_decoder_heads=3"),
    ({"d_decoder_mlp": 0}, "d_decoder_mlp"),
    ({"n_vocab_target": 0}, "n_vocab_target"),
    ({"activation": "swish"}, "did you mean 'silu'"),
])
def test_the_config_refuses_what_is_not_a_transformer(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TransformerConfig(n_vocab=11, n_ctx=8, d_model=4, n_layers=1, n_heads=2, shared_embeddings=False, **options)


@pytest.mark.parametrize(("changes", "message"), [
    ({"activation_function": "mish"}, "activation_function='mish'"),
    ({"decoder_attention_heads": 3}, "decoder_attention_heads=3"),
    ({"decoder_layers": 1}, "decoder.layers.1"),  # the file has a block the config does not
])
def test_what_is_still_not_marian_is_refused_by_name(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    model = random_marian(0, **PUBLISHED["swish"])
    with pytest.raises(CheckpointError, match=message):
        load(edit(saved(model, tmp_path), **changes))


def test_the_family_record_covers_marian_as_published() -> None:
    """The encoder–decoder's fixed instances (the --all-ops models, the theorems' instances) include
    one with every option of this file: swish, a separate target vocabulary, unequal stacks."""
    configs = [
        c for c in family("transformer").instances().values()
        if isinstance(c, TransformerConfig) and c.activation == "silu" and c.target_vocab != c.n_vocab and c.decoder_layers != c.n_layers and c.decoder_heads != c.n_heads
        and c.decoder_mlp_width != c.mlp_width
    ]
    assert configs, "no instance of Marian as published"
    c = configs[0]
    shapes = build(c).theta_shapes()
    d, heads = c.d_model, c.decoder_heads
    assert shapes["encoder.W_E"] == (c.n_vocab, d) and shapes["decoder.W_E"] == (c.target_vocab, d)
    assert shapes["encoder.blocks.0.mlp.W_in"] == (d, c.mlp_width) and shapes["decoder.blocks.0.mlp.W_in"] == (d, c.decoder_mlp_width)
    assert shapes["encoder.blocks.0.attn.W_Q"] == (c.n_heads, d, d // c.n_heads)
    assert shapes["decoder.blocks.0.cross_attn.W_K"] == (heads, d, d // heads)
    assert sum(name.startswith("decoder.blocks.") and name.endswith(".ln_3.gamma") for name in shapes) == c.decoder_layers
