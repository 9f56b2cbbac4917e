"""Checkpoints: Hugging Face GPT-2 directories in; θ in the spec's own names in and out.

Only safetensors and JSON are read (DESIGN.md, "Errors"): pickle-based files
(``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) are refused, because
unpickling can run arbitrary code.

* :func:`load_hf_gpt2` reads a Hugging Face GPT-2 directory (``config.json`` +
  ``model.safetensors``, or shards listed in ``model.safetensors.index.json``). Every
  ``config.json`` key is in one table, :data:`HF_GPT2_KEYS`, with its role and the reason:
  keys the spec models are mapped to :class:`~spec.architectures.GPTConfig`, keys that do not
  change the logits are ignored, and keys that would change the function in a way the spec
  does not model are refused, as is any key not in the table.
* :func:`save_theta` / :func:`load_theta` write and read θ under Θ's names, with the
  :class:`GPTConfig` as JSON in the safetensors ``__metadata__``, so a file is self-contained.
* :func:`load` dispatches between the two.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from gptspec import safetensors_io
from gptspec.safetensors_io import PathLike
from spec.architectures import GPTConfig, build_gpt
from spec.dims import show
from spec.errors import CheckpointError, ConfigError
from spec.graph import Architecture
from spec.theta import Theta, check_theta

THETA_FORMAT = "gptspec.theta/1"
"""The ``format`` entry of the ``__metadata__`` of files :func:`save_theta` writes."""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""File suffixes of pickle-based checkpoints, which are refused."""

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
"""Stored dtypes a parameter may have. Integer parameters would be quantised values whose
scales live elsewhere, so they are refused rather than read as numbers."""

CONVERT_FIX = (
    "unpickling can run arbitrary code, so gptspec reads safetensors only; convert it once, "
    "where you trust the file, in Python with transformers: "
    "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)"
)


# -- the config.json table ------------------------------------------------------------------

Role = Literal["model", "ignore", "require", "alias"]

_REQUIRED = object()
"""Default of a modelled key that must be present."""


@dataclass(frozen=True)
class ConfigKey:
    """How one Hugging Face ``GPT2Config`` key is read.

    ``model``: it changes the function and the spec models it (``default`` is GPT2Config's
    default when the key is absent); ``ignore``: it does not change the logits;
    ``require``: any value other than those in ``accepts`` changes the function in a way the
    spec does not model, and is refused; ``alias``: another name (``target``) for a key.
    """

    role: Role
    reason: str
    default: object = _REQUIRED
    accepts: tuple[object, ...] = ()
    target: str = ""


def _model(reason: str, default: object = _REQUIRED) -> ConfigKey:
    return ConfigKey("model", reason, default=default)


def _ignore(reason: str, *keys: str) -> dict[str, ConfigKey]:
    return {key: ConfigKey("ignore", reason) for key in keys}


def _require(reason: str, *accepts: object) -> ConfigKey:
    return ConfigKey("require", reason, accepts=accepts)


def _alias(target: str) -> ConfigKey:
    return ConfigKey("alias", f"GPT2Config.attribute_map: another name for {target}", target=target)


HF_ACTIVATIONS: dict[str, str] = {
    # ½x(1 + tanh(√(2/π)(x + 0.044715x³))), written out in transformers' NewGELUActivation
    "gelu_new": "gelu_tanh",
    # the same formula, computed by torch.nn.functional.gelu(approximate="tanh")
    "gelu_pytorch_tanh": "gelu_tanh",
    # the same formula again, written out in Python (GELUTanh(use_gelu_tanh_python=True))
    "gelu_python_tanh": "gelu_tanh",
    # torch.nn.functional.gelu: the exact ½x(1 + erf(x/√2))
    "gelu": "gelu_erf",
    # the same, written out in Python (GELUActivation(use_gelu_python=True))
    "gelu_python": "gelu_erf",
    "relu": "relu",
}
"""Hugging Face ``activation_function`` → the spec's activation op. Every other name is a
different function and is refused: gelu_fast truncates √(2/π) to 0.7978845608, gelu_accurate
and quick_gelu are other approximations, gelu_10 clips, silu/swish/mish are other functions."""

HF_GPT2_KEYS: dict[str, ConfigKey] = {
    # Keys that change the function, modelled by GPTConfig.
    "vocab_size": _model("n_vocab: the rows of wte, the width of the logits"),
    "n_positions": _model("n_ctx: the rows of wpe, the longest sequence"),
    "n_embd": _model("d_model: the width of the residual stream"),
    "n_layer": _model("n_layers: the number of blocks"),
    "n_head": _model("n_heads; GPT2Attention sets d_head = n_embd / n_head"),
    "n_inner": _model("d_mlp: the MLP's hidden width; null means 4·n_embd", default=None),
    "activation_function": _model("the MLP activation, mapped by HF_ACTIVATIONS", default="gelu_new"),
    "layer_norm_epsilon": _model("eps: the ε inside every layer norm's square root", default=1e-5),
    "scale_attn_weights": _model("false: scores are not divided by √d_head (attn_scale = 1)", default=True),
    "scale_attn_by_inverse_layer_idx": _model(
        "true: layer l's score scale is further divided by l + 1 (scale_by_inverse_layer)", default=False
    ),
    "tie_word_embeddings": _model("true: the unembedding is wteᵀ (tied); false: lm_head.weight", default=True),
    # Aliases Hugging Face accepts for the sizes.
    "hidden_size": _alias("n_embd"),
    "max_position_embeddings": _alias("n_positions"),
    "num_attention_heads": _alias("n_head"),
    "num_hidden_layers": _alias("n_layer"),
    # Keys that would change the function in ways the spec does not model, unless at these values.
    "model_type": _require("another model type is another function; gptspec reads GPT-2 only", "gpt2"),
    "add_cross_attention": _require(
        "true adds a cross-attention sublayer reading an encoder's states to every block, which the "
        "spec's decoder-only GPT does not model", False,
    ),
    "pruned_heads": _require(
        "pruning leaves some layers with fewer heads, which the spec does not model (every layer has n_heads heads)", {}
    ),
    "is_encoder_decoder": _require(
        "true makes this the decoder of an encoder-decoder model, which the spec does not model", False
    ),
    # Keys that do not change the logits.
    **_ignore(
        "dropout: the identity at inference (eval mode), the function the spec defines",
        "resid_pdrop", "embd_pdrop", "attn_pdrop",
    ),
    **_ignore("initialisation of new weights; the checkpoint supplies them", "initializer_range"),
    **_ignore(
        "a special token's id: tokenisation and generation, not the logits",
        "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    ),
    **_ignore("the key/value cache: the same logits, computed incrementally", "use_cache", "output_past"),
    **_ignore(
        "GPT2DoubleHeadsModel's multiple-choice classifier, not the language model",
        "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
    ),
    **_ignore(
        "labels of a classification head (GPT2ForSequenceClassification), not the language model",
        "id2label", "label2id", "num_labels", "_num_labels", "problem_type",
    ),
    **_ignore(
        "provenance or bookkeeping",
        "architectures", "transformers_version", "_name_or_path", "_commit_hash", "tokenizer_class",
        "prefix", "finetuning_task",
    ),
    **_ignore(
        "the dtype Hugging Face computes in; gptspec reads the stored values and computes in float64",
        "dtype", "torch_dtype", "use_bfloat16",
    ),
    **_ignore(
        "numerics only: upcasts scores to float32 and scales K before QKᵀ, the same function in exact arithmetic",
        "reorder_and_upcast_attn",
    ),
    **_ignore(
        "the attention kernel (eager, sdpa, flash): the same function, different rounding",
        "_attn_implementation", "_attn_implementation_autoset",
    ),
    **_ignore(
        "legacy: sized the causal-mask buffer in old versions; n_positions sizes wpe and bounds T",
        "n_ctx",
    ),
    **_ignore(
        "decoding: how tokens are chosen from the logits, not the logits",
        "task_specific_params", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
        "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
        "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
        "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
        "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
        "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    ),
    **_ignore(
        "what forward returns besides the logits, or how it is exported",
        "output_hidden_states", "output_attentions", "return_dict", "torchscript",
    ),
    **_ignore("training only (memory or loss)", "gradient_checkpointing", "tf_legacy_loss"),
    **_ignore(
        "not read by GPT-2's decoder-only stack (its self-attention is causal whatever is_decoder says; "
        "the others matter only with cross-attention or to encoder-decoder models)",
        "is_decoder", "tie_encoder_decoder", "cross_attention_hidden_size", "chunk_size_feed_forward",
    ),
}
"""Every Hugging Face GPT-2 ``config.json`` key gptspec reads, with its role and reason. A key
not here is refused: it may change the function."""


def _same(a: object, b: object) -> bool:
    """Equal and of the same type (so 0 is not False)."""
    return type(a) is type(b) and a == b


def hf_gpt2_config(raw: Mapping[str, object], where: str, name: str = "gpt2") -> GPTConfig:
    """The :class:`GPTConfig` a Hugging Face GPT-2 ``config.json`` describes (see
    :data:`HF_GPT2_KEYS`); ``where`` names the checkpoint in error messages."""
    values: dict[str, object] = {}
    for key, value in raw.items():
        rule = HF_GPT2_KEYS.get(key)
        if rule is None:
            close = difflib.get_close_matches(key, list(HF_GPT2_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CheckpointError(
                f"config key {key}={value!r}{hint}, but expected one of the keys gptspec knows "
                f"(gptspec.checkpoint.HF_GPT2_KEYS) [checkpoint {where}]; an unknown key may change the "
                "function, so it is refused: if it does not change the logits, delete it from "
                "config.json (or add it to HF_GPT2_KEYS with the reason)"
            )
        if rule.role == "alias":
            if rule.target in raw and not _same(raw[rule.target], value):
                raise CheckpointError(
                    f"config key {key}={value!r}, but expected {rule.target}={raw[rule.target]!r}, "
                    f"which it is another name for [checkpoint {where}]; keep one of the two"
                )
            values[rule.target] = value
        elif rule.role == "model":
            values[key] = value
        elif rule.role == "require" and not any(_same(value, a) for a in rule.accepts):
            accepted = " or ".join(json.dumps(a) for a in rule.accepts)
            raise CheckpointError(
                f"config key {key}={json.dumps(value, default=repr)}, but expected {key}={accepted} [checkpoint {where}]; "
                f"{rule.reason}"
            )
    if "model_type" not in raw:
        raise CheckpointError(
            f"config key model_type is missing, but expected model_type=\"gpt2\" [checkpoint {where}]; "
            "add it if this is a GPT-2 checkpoint"
        )
    for key, rule in HF_GPT2_KEYS.items():
        if rule.role == "model" and key not in values:
            if rule.default is _REQUIRED:
                raise CheckpointError(
                    f"config key {key} is missing, but expected it ({rule.reason}) [checkpoint {where}]; "
                    "add it to config.json"
                )
            values[key] = rule.default

    def whole(key: str) -> int:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"config key {key}={value!r}, but expected a whole number ≥ 1 [checkpoint {where}]")
        return value

    def flag(key: str) -> bool:
        value = values[key]
        if not isinstance(value, bool):
            raise CheckpointError(f"config key {key}={value!r}, but expected true or false [checkpoint {where}]")
        return value

    d_model, n_heads = whole("n_embd"), whole("n_head")
    if d_model % n_heads:
        raise CheckpointError(
            f"config key n_embd={d_model}, but expected a multiple of n_head={n_heads} [checkpoint {where}]; "
            "Hugging Face's GPT2Attention refuses it too"
        )
    d_mlp = None if values["n_inner"] is None else whole("n_inner")
    activation = values["activation_function"]
    if not isinstance(activation, str) or activation not in HF_ACTIVATIONS:
        raise CheckpointError(
            f"config key activation_function={activation!r}, but expected one of {list(HF_ACTIVATIONS)} "
            f"[checkpoint {where}]; the spec models gelu_tanh, gelu_erf and relu, and every other "
            "Hugging Face activation is a different function (see gptspec.checkpoint.HF_ACTIVATIONS)"
        )
    eps = values["layer_norm_epsilon"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
        raise CheckpointError(f"config key layer_norm_epsilon={eps!r}, but expected a number ≥ 0 [checkpoint {where}]")
    try:
        return GPTConfig(
            n_vocab=whole("vocab_size"), n_ctx=whole("n_positions"), d_model=d_model,
            n_layers=whole("n_layer"), n_heads=n_heads,
            d_mlp=None if d_mlp == 4 * d_model else d_mlp,
            activation=HF_ACTIVATIONS[activation], eps=float(eps), bias=True,
            tied=flag("tie_word_embeddings"), positional="learned", attention=("dense",),
            attn_scale=None if flag("scale_attn_weights") else 1.0,
            scale_by_inverse_layer=flag("scale_attn_by_inverse_layer_idx"), name=name,
        )
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from error


# -- Hugging Face tensors -----------------------------------------------------------------

PREFIX = "transformer."
"""The prefix GPT2LMHeadModel puts on the GPT2Model's tensors; the original hub "gpt2"
checkpoint (a GPT2Model) has none."""

IGNORED_TENSOR_PREFIXES = ("multiple_choice_head.",)
"""GPT2DoubleHeadsModel's classifier: not part of the language model (as summary_* keys)."""


@dataclass(frozen=True)
class _Expected:
    symbolic: str
    shape: tuple[int, ...]


def _hf_expected(c: GPTConfig) -> dict[str, _Expected]:
    """Every Hugging Face tensor (without the ``transformer.`` prefix) and its shape."""
    d, v, n, m = c.d_model, c.n_vocab, c.n_ctx, c.mlp_width
    table = {
        "wte.weight": _Expected("(n_vocab, d_model)", (v, d)),
        "wpe.weight": _Expected("(n_ctx, d_model)", (n, d)),
        "ln_f.weight": _Expected("(d_model,)", (d,)),
        "ln_f.bias": _Expected("(d_model,)", (d,)),
    }
    for layer in range(c.n_layers):
        h = f"h.{layer}."
        table |= {
            h + "ln_1.weight": _Expected("(d_model,)", (d,)),
            h + "ln_1.bias": _Expected("(d_model,)", (d,)),
            h + "attn.c_attn.weight": _Expected("(d_model, 3·d_model)", (d, 3 * d)),
            h + "attn.c_attn.bias": _Expected("(3·d_model,)", (3 * d,)),
            h + "attn.c_proj.weight": _Expected("(d_model, d_model)", (d, d)),
            h + "attn.c_proj.bias": _Expected("(d_model,)", (d,)),
            h + "ln_2.weight": _Expected("(d_model,)", (d,)),
            h + "ln_2.bias": _Expected("(d_model,)", (d,)),
            h + "mlp.c_fc.weight": _Expected("(d_model, d_mlp)", (d, m)),
            h + "mlp.c_fc.bias": _Expected("(d_mlp,)", (m,)),
            h + "mlp.c_proj.weight": _Expected("(d_mlp, d_model)", (m, d)),
            h + "mlp.c_proj.bias": _Expected("(d_model,)", (d,)),
        }
    if not c.tied:
        table["lm_head.weight"] = _Expected("(n_vocab, d_model)", (v, d))
    return table


def _others(names: list[str]) -> str:
    """`` (and 2 more: [...])`` after the first of ``names``, or nothing."""
    rest = names[1:]
    return f" (and {len(rest)} more: {rest[:4]}{' …' if len(rest) > 4 else ''})" if rest else ""


def _hf_theta(stored: Mapping[str, safetensors_io.TensorInfo], arrays: Mapping[str, np.ndarray], c: GPTConfig, where: str) -> Theta:
    """Map Hugging Face tensors (``stored``: the headers, ``arrays``: the values, by the names
    in the file) to θ under Θ's names, checking every name and shape."""
    expected = _hf_expected(c)
    uses_prefix = any(name.startswith(PREFIX) for name in stored)
    by_key: dict[str, str] = {}  # name without prefix → name in the file
    for name in stored:
        key = name[len(PREFIX):] if name.startswith(PREFIX) else name
        if key in by_key:
            raise CheckpointError(
                f"tensors {by_key[key]} and {name} name the same parameter, but expected one of them "
                f"[checkpoint {where}]; remove one"
            )
        by_key[key] = name

    def shown(key: str) -> str:  # a tensor's name as this file spells them
        return by_key.get(key, (PREFIX + key) if uses_prefix and key != "lm_head.weight" else key)

    missing = [key for key in expected if key not in by_key]
    if missing:
        first = expected[missing[0]]
        raise CheckpointError(
            f"{shown(missing[0])} is missing{_others([shown(k) for k in missing])}, but expected a tensor of "
            f"shape {first.symbolic} = {first.shape} [checkpoint {where}]; "
            "the file does not hold the model config.json describes"
        )
    unexpected = []
    for key, name in by_key.items():
        if key in expected or key.startswith(IGNORED_TENSOR_PREFIXES):
            continue
        parts = key.split(".")
        if len(parts) == 4 and parts[0] == "h" and parts[2] == "attn" and parts[3] == "masked_bias":
            continue  # the fill value old versions used for masked scores: not read by current code
        if len(parts) == 4 and parts[0] == "h" and parts[2] == "attn" and parts[3] == "bias":
            _check_causal_buffer(name, arrays[name], where)
            continue
        if key == "lm_head.weight" and c.tied:
            continue  # checked against wte below
        unexpected.append(name)
    if unexpected:
        raise CheckpointError(
            f"{unexpected[0]} is unexpected{_others(unexpected)}, but expected only the tensors of a GPT-2 "
            f"with this config.json [checkpoint {where}]; the file holds something the config does not "
            "describe (another model, cross-attention, a different n_layer?)"
        )
    values: dict[str, np.ndarray] = {}
    for key, want in expected.items():
        name = by_key[key]
        info = stored[name]
        if info.shape != want.shape:
            raise CheckpointError(
                f"{name} has shape {info.shape}, but expected {want.symbolic} = {want.shape} [checkpoint {where}]"
            )
        if info.dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{name} has dtype {info.dtype}, but expected one of {list(FLOAT_DTYPES)} [checkpoint {where}]; "
                "integer weights are quantised values, which the spec does not model: dequantise them first"
            )
        value = arrays[name].astype(np.float64)
        if not np.isfinite(value).all():
            raise CheckpointError(
                f"{name} has {int(np.size(value) - np.isfinite(value).sum())} non-finite entries, but "
                f"expected real numbers [checkpoint {where}]; the checkpoint is corrupt or diverged"
            )
        values[key] = value
    if c.tied and "lm_head.weight" in by_key:
        name = by_key["lm_head.weight"]
        head = arrays[name].astype(np.float64)
        if head.shape != values["wte.weight"].shape or not np.array_equal(head, values["wte.weight"]):
            detail = (
                f"shape {head.shape}" if head.shape != values["wte.weight"].shape
                else f"max |lm_head − wte| = {np.max(np.abs(head - values['wte.weight'])):.3g}"
            )
            raise CheckpointError(
                f"{name} differs from {shown('wte.weight')} ({detail}), but expected them equal since "
                f"tie_word_embeddings=true [checkpoint {where}]; Hugging Face would overwrite the head with "
                "wte: set tie_word_embeddings to false if the head is meant to be separate"
            )
    return _theta_from_hf_values(values, c)


def _check_causal_buffer(name: str, value: np.ndarray, where: str) -> None:
    """Old checkpoints store the causal mask as a buffer: accept exactly lower-triangular ones
    (shape (1, 1, N, N) or (N, N)), the mask the spec's GPT uses; refuse anything else."""
    shape = value.shape
    square = len(shape) >= 2 and shape[-1] == shape[-2] and all(s == 1 for s in shape[:-2])
    if not square:
        raise CheckpointError(
            f"{name} has shape {shape}, but expected the causal-mask buffer of shape (1, 1, N, N) "
            f"[checkpoint {where}]"
        )
    n = shape[-1]
    if not np.array_equal(value.reshape(n, n).astype(np.float64), np.tril(np.ones((n, n)))):
        raise CheckpointError(
            f"{name} is not lower-triangular ones, but expected the causal mask tril(ones(N, N)) "
            f"[checkpoint {where}]; a different attention mask is a different function, which "
            "Hugging Face's current GPT-2 would ignore and the spec does not model"
        )


def _theta_from_hf_values(hf: Mapping[str, np.ndarray], c: GPTConfig) -> Theta:
    """Rename and re-lay-out Hugging Face's float64 tensors as θ. Conv1D weights are already
    (d_in, d_out), our row convention x W + b."""
    d, n_heads, d_head = c.d_model, c.n_heads, c.head_width
    theta: Theta = {"W_E": hf["wte.weight"], "W_P": hf["wpe.weight"]}
    for layer in range(c.n_layers):
        h, b = f"h.{layer}.", f"blocks.{layer}."
        theta[b + "ln_1.gamma"] = hf[h + "ln_1.weight"]
        theta[b + "ln_1.beta"] = hf[h + "ln_1.bias"]
        W, bias = hf[h + "attn.c_attn.weight"], hf[h + "attn.c_attn.bias"]  # (d, 3d), (3d,): [Q | K | V]
        for i, letter in enumerate("QKV"):
            # columns i·d + h·d_head + k → head h, column k: (d, n_heads·d_head) → (n_heads, d, d_head)
            block = W[:, i * d : (i + 1) * d].reshape(d, n_heads, d_head)
            theta[b + f"attn.W_{letter}"] = np.ascontiguousarray(block.transpose(1, 0, 2))
            theta[b + f"attn.b_{letter}"] = bias[i * d : (i + 1) * d].reshape(n_heads, d_head).copy()
        # rows h·d_head + k of c_proj read head h's output k: (n_heads·d_head, d) → (n_heads, d_head, d)
        theta[b + "attn.W_O"] = hf[h + "attn.c_proj.weight"].reshape(n_heads, d_head, d)
        theta[b + "attn.b_O"] = hf[h + "attn.c_proj.bias"]
        theta[b + "ln_2.gamma"] = hf[h + "ln_2.weight"]
        theta[b + "ln_2.beta"] = hf[h + "ln_2.bias"]
        theta[b + "mlp.W_in"] = hf[h + "mlp.c_fc.weight"]
        theta[b + "mlp.b_in"] = hf[h + "mlp.c_fc.bias"]
        theta[b + "mlp.W_out"] = hf[h + "mlp.c_proj.weight"]
        theta[b + "mlp.b_out"] = hf[h + "mlp.c_proj.bias"]
    theta["ln_f.gamma"] = hf["ln_f.weight"]
    theta["ln_f.beta"] = hf["ln_f.bias"]
    if not c.tied:
        theta["W_U"] = np.ascontiguousarray(hf["lm_head.weight"].T)  # (n_vocab, d) → (d, n_vocab)
    return theta


# -- reading a directory ------------------------------------------------------------------

def _pickles(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)


def _refuse_pickle(path: Path, where: Path) -> CheckpointError:
    return CheckpointError(
        f"weights file={path.name} (a pickle), but expected safetensors (model.safetensors) "
        f"[checkpoint {where}]; {CONVERT_FIX}"
    )


def _read_json(path: Path, where: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(
            f"{path.name} could not be read as JSON ({error}), but expected a JSON object [checkpoint {where}]"
        ) from error


def _read_weights(directory: Path) -> tuple[dict[str, safetensors_io.TensorInfo], dict[str, np.ndarray]]:
    """The tensors of ``model.safetensors``, or of the shards its index lists (the single file
    wins when both exist, as in transformers)."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        header = safetensors_io.read_header(single)
        return dict(header.tensors), safetensors_io.read_tensors(header)
    if index.is_file():
        return _read_shards(directory, index)
    pickles = _pickles(directory)
    if pickles:
        raise _refuse_pickle(directory / pickles[0], directory)
    raise CheckpointError(
        f"weights file=none, but expected model.safetensors or model.safetensors.index.json "
        f"[checkpoint {directory}]; save the model with save_pretrained(dir, safe_serialization=True)"
    )


def _read_shards(directory: Path, index: Path) -> tuple[dict[str, safetensors_io.TensorInfo], dict[str, np.ndarray]]:
    raw = _read_json(index, directory)
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise CheckpointError(
            f"{index.name} weight_map={weight_map!r}, but expected an object of tensor names to shard file names "
            f"[checkpoint {directory}]"
        )
    stored: dict[str, safetensors_io.TensorInfo] = {}
    arrays: dict[str, np.ndarray] = {}
    for shard in dict.fromkeys(weight_map.values()):
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(
                f"{index.name} shard={shard!r}, but expected a file name in the checkpoint directory "
                f"[checkpoint {directory}]"
            )
        if not (directory / shard).is_file():
            raise CheckpointError(
                f"shard {shard} (listed in {index.name}) is missing, but expected a file [checkpoint {directory}]"
            )
        header = safetensors_io.read_header(directory / shard)
        listed = [name for name, file in weight_map.items() if file == shard]
        stray = [name for name in header.tensors if weight_map.get(name) != shard]
        if stray:
            raise CheckpointError(
                f"{stray[0]}{_others(stray)} is in shard {shard}, but expected only the tensors {index.name} maps "
                f"to it [checkpoint {directory}]; the index and the shards disagree"
            )
        absent = [name for name in listed if name not in header.tensors]
        if absent:
            raise CheckpointError(
                f"{absent[0]}{_others(absent)} is missing from shard {shard}, but expected there by {index.name} "
                f"[checkpoint {directory}]"
            )
        stored |= {name: header.tensors[name] for name in listed}
        arrays |= safetensors_io.read_tensors(header, listed)
    return stored, arrays


def load_hf_gpt2(directory: PathLike) -> tuple[Architecture, Theta]:
    """The architecture and float64 θ of a Hugging Face GPT-2 directory (``config.json`` +
    ``model.safetensors`` or sharded safetensors). Everything the spec does not model is refused
    with a :class:`CheckpointError`."""
    path = Path(directory)
    if not path.is_dir():
        raise CheckpointError(
            f"path={path} is not a directory, but expected a Hugging Face checkpoint directory "
            f"(config.json + model.safetensors) [load_hf_gpt2]"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"config.json is missing, but expected it [checkpoint {path}]")
    raw = _read_json(config_file, path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"config.json holds {type(raw).__name__}, but expected a JSON object [checkpoint {path}]")
    config = hf_gpt2_config(raw, str(path), name=path.resolve().name or "gpt2")
    stored, arrays = _read_weights(path)
    theta = _hf_theta(stored, arrays, config, str(path))
    arch = build_gpt(config)
    check_theta(arch, theta, f"checkpoint {path}")
    return arch, {name: theta[name] for name in arch.theta}  # in Θ's order


# -- θ in the spec's own names ------------------------------------------------------------

def config_to_json(config: GPTConfig) -> str:
    """A GPTConfig as JSON (every field, ``name`` included)."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def config_from_json(text: str, where: str) -> GPTConfig:
    """The GPTConfig :func:`config_to_json` wrote; refuse anything else."""
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise CheckpointError(f"__metadata__ config is not JSON ({error}), but expected a GPTConfig [{where}]") from error
    names = {f.name for f in dataclasses.fields(GPTConfig)}
    if not isinstance(fields, dict) or not set(fields) <= names:
        unknown = sorted(set(fields) - names) if isinstance(fields, dict) else fields
        raise CheckpointError(
            f"__metadata__ config fields {unknown!r}, but expected only GPTConfig fields {sorted(names)} [{where}]; "
            "the file was written by another version of gptspec, or edited"
        )
    if isinstance(fields.get("attention"), list):
        fields["attention"] = tuple(fields["attention"])
    try:
        return GPTConfig(**fields)
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"__metadata__ config does not make a GPTConfig ({error}) [{where}]") from error


def save_theta(path: PathLike, arch: Architecture, theta: Mapping[str, np.ndarray]) -> None:
    """Write θ as safetensors (float64, Θ's names and order) with the architecture's
    GPTConfig in ``__metadata__``, so :func:`load_theta` needs nothing else."""
    p = Path(path)
    config = arch.config
    if not isinstance(config, GPTConfig):
        raise CheckpointError(
            f"architecture config={type(config).__name__}, but expected a GPTConfig [save_theta {p}]; "
            "save_theta writes architectures built by build_gpt"
        )
    rebuilt = build_gpt(config)
    if rebuilt.theta != arch.theta:
        raise CheckpointError(
            f"architecture {arch.name} has a Θ that build_gpt(its config) does not rebuild, but expected "
            f"the same Θ [save_theta {p}]; the file could not be read back"
        )
    check_theta(arch, theta, f"save_theta {p}")
    arrays = {name: np.asarray(theta[name], dtype=np.float64) for name in arch.theta}
    safetensors_io.write(p, arrays, {"format": THETA_FORMAT, "config": config_to_json(config)})


def load_theta(path: PathLike) -> tuple[Architecture, Theta]:
    """Read a file :func:`save_theta` wrote: the architecture and θ (float64)."""
    p = Path(path)
    header = safetensors_io.read_header(p)
    where = f"checkpoint {p}"
    if header.metadata.get("format") != THETA_FORMAT or "config" not in header.metadata:
        raise CheckpointError(
            f"__metadata__ format={header.metadata.get('format')!r}, but expected format={THETA_FORMAT!r} "
            f"with a config [{where}]; this safetensors file was not written by gptspec.checkpoint.save_theta"
        )
    arch = build_gpt(config_from_json(header.metadata["config"], where))
    shapes = arch.theta_shapes()
    missing = [name for name in shapes if name not in header.tensors]
    if missing:
        raise CheckpointError(
            f"{missing[0]} is missing{_others(missing)}, but expected a tensor of shape "
            f"{show(arch.theta[missing[0]])} = {shapes[missing[0]]} [{where}]"
        )
    extra = [name for name in header.tensors if name not in shapes]
    if extra:
        raise CheckpointError(f"{extra[0]} is unexpected{_others(extra)}, but expected only Θ's names [{where}]")
    for name, want in shapes.items():
        info = header.tensors[name]
        if info.shape != want:
            raise CheckpointError(f"{name} has shape {info.shape}, but expected {show(arch.theta[name])} = {want} [{where}]")
        if info.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{name} has dtype {info.dtype}, but expected one of {list(FLOAT_DTYPES)} [{where}]")
    arrays = safetensors_io.read_tensors(header, list(shapes))
    return arch, {name: value.astype(np.float64) for name, value in arrays.items()}


# -- dispatch -----------------------------------------------------------------------------

EXPECTED = (
    "a Hugging Face GPT-2 directory (config.json with model_type \"gpt2\" + model.safetensors) "
    "or a .safetensors file written by gptspec.checkpoint.save_theta"
)


def load(path: PathLike) -> tuple[Architecture, Theta]:
    """Load any checkpoint gptspec reads (see :data:`EXPECTED`): the architecture and θ."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"path={p} does not exist, but expected {EXPECTED} [load]")
    if p.is_dir():
        config_file = p / "config.json"
        if config_file.is_file():
            raw = _read_json(config_file, p)
            model_type = raw.get("model_type") if isinstance(raw, dict) else None
            if model_type != "gpt2":
                raise CheckpointError(
                    f"config.json model_type={model_type!r}, but expected model_type='gpt2' [checkpoint {p}]; "
                    "gptspec reads Hugging Face GPT-2 checkpoints only"
                )
            return load_hf_gpt2(p)
        pickles = _pickles(p)
        if pickles:
            raise _refuse_pickle(p / pickles[0], p)
        raise CheckpointError(f"directory {p} has no config.json, but expected {EXPECTED} [load]")
    if p.suffix in PICKLE_SUFFIXES:
        raise _refuse_pickle(p, p)
    if p.suffix != ".safetensors":
        raise CheckpointError(f"file={p.name}, but expected {EXPECTED} [load]")
    header = safetensors_io.read_header(p)
    if header.metadata.get("format") == THETA_FORMAT:
        return load_theta(p)
    if (p.parent / "config.json").is_file():
        raise CheckpointError(
            f"file={p.name} has no gptspec metadata, but expected {EXPECTED} [load {p}]; "
            f"it looks like part of a Hugging Face checkpoint: pass the directory {p.parent}"
        )
    raise CheckpointError(f"file={p.name} has no gptspec metadata (format={THETA_FORMAT!r}), but expected {EXPECTED} [load {p}]")


__all__ = [
    "HF_ACTIVATIONS", "HF_GPT2_KEYS", "THETA_FORMAT", "ConfigKey", "config_from_json", "config_to_json",
    "hf_gpt2_config", "load", "load_hf_gpt2", "load_theta", "save_theta",
]
