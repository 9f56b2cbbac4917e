"""The Hugging Face Phi-3 layout (``hf-phi3``): ``Phi3ForCausalLM`` state dicts and ``config.json``
↔ the spec's Phi-3 family (spec/architectures/phi3.py).

The tensors are the Llama family's (gptspec/checkpoint/hf_llama.py) with two fused projections:
``qkv_proj`` holds Q, K and V of every head in one (out, in) matrix — the n_heads query heads'
rows, then the n_kv_heads key heads', then the value heads' (Phi3Attention slices its output at
n_heads·d_head and n_heads·d_head + n_kv_heads·d_head), the pattern "[h e | g e | g e] d" — and
``gate_up_proj`` holds the gate's rows then the up projection's (Phi3MLP ``chunk(2)``: the gate is
the first half), "(k m) d". No projection has a bias.

The config: every key this transformers version writes for Phi3Config is modelled, ignored with a
reason or refused, as are the older spellings on the Hub (``rope_theta``, ``rope_scaling``, a
top-level ``partial_rotary_factor``). ``partial_rotary_factor`` is modelled (the first
int(d_head · factor) features of each head rotate); the long-context scalings (``longrope``, and
``su`` and ``yarn``, which Phi3Config reads as longrope) are refused by name, as are the scalings
Phi3Config itself refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.hf_llama import COMMON, MODULES, SIZES, _base, _common, _fail, _kinds
from gptspec.checkpoint.layout import (
    Alias,
    ConfigKey,
    Layout,
    Tensor,
    ignore,
    model,
    number,
    register_layout,
    require,
    whole,
)
from spec.architectures.phi3 import Phi3Config
from spec.config import Config
from spec.errors import CheckpointError, ConfigError
from spec.ops.rotary import REFUSED_SCALINGS

PHI3_KEYS: dict[str, ConfigKey] = {
    **SIZES, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type phi3", "phi3"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; null means num_attention_heads", default=None),
    "head_dim": model(
        "d_head: not a Phi3Config field, but Phi3Attention reads it when config.json has it; absent means "
        "hidden_size // num_attention_heads", default=None,
    ),
    "rms_norm_eps": model("eps: the ε inside every RMS norm's square root (Phi3Config's default is 1e-5)", default=1e-5),
    "sliding_window": model("W: every layer's position t attends to t − W < s ≤ t (null: causal)", default=None),
    "rope_parameters": model(
        "the rotary embedding: rope_theta, partial_rotary_factor (the fraction of each head rotated) and rope_type "
        "(default only: longrope, su and yarn are refused by name)", default=None,
    ),
    "rope_theta": model("the base θ as older configs spell it (outside rope_parameters)", default=None),
    "rope_scaling": model("the scaling as older configs spell it (null; longrope, su, yarn refused by name)", default=None),
    "partial_rotary_factor": model("the fraction of each head rotated, as configs may spell it outside rope_parameters", default=None),
    **ignore(
        "the training length longrope switches its factors at; read only by the longrope scaling, which is refused",
        "original_max_position_embeddings",
    ),
    **ignore("dropout: the identity at inference (eval mode), the function the spec defines", "resid_pdrop", "embd_pdrop"),
    "attention_bias": require(
        "not a Phi3Config field: Phi3Attention has no biases whatever it says, so true would mean biases in the file that "
        "the model ignores", False,
    ),
    **ignore(
        "the remote-code classes a Hub repository names for older transformers (configuration_phi3.Phi3Config, …); "
        "this layout reads the weights as transformers' own Phi3ForCausalLM computes with them",
        "auto_map",
    ),
}
"""Every Hugging Face Phi-3 ``config.json`` key gptspec reads, with its role and reason."""

LONG_ROPE = {"su": "longrope", "yarn": "longrope", "longrope": "longrope"}
"""The rope types Phi3Config reads as longrope (convert_rope_params_to_dict)."""


def _rope(values: Mapping[str, object], where: str) -> tuple[dict[str, Any], float]:
    """The LlamaConfig rope fields and the partial rotary factor, as Phi3Config reads them: the
    factor from rope_parameters (or rope_scaling), else the top-level key, else 1.0."""
    inner: object = None
    stripped: dict[str, object] = dict(values)
    for key in ("rope_parameters", "rope_scaling"):
        value = values[key]
        if isinstance(value, dict):
            kind = value.get("rope_type", value.get("type", "default"))
            if kind in LONG_ROPE:
                raise _fail(
                    "rope_type", kind, "'default'", where,
                    ("Phi3Config reads it as longrope: " if kind != "longrope" else "") + REFUSED_SCALINGS["longrope"],
                )
            if kind != "default":
                raise _fail("rope_type", kind, "'default'", where, "Phi3Config accepts default and longrope only (it refuses the others)")
            if "partial_rotary_factor" in value:
                inner = value["partial_rotary_factor"]
            stripped[key] = {k: v for k, v in value.items() if k != "partial_rotary_factor"}
    top = values["partial_rotary_factor"]
    if top is not None and inner is not None and top != inner:
        raise _fail("partial_rotary_factor", top, f"{inner} as rope_parameters.partial_rotary_factor says", where, "keep one of the two")
    chosen = inner if inner is not None else top if top is not None else 1.0
    factor = number({"partial_rotary_factor": chosen}, "partial_rotary_factor", where)
    return _base(stripped, where, llama=False), factor


def read_phi3(values: Mapping[str, object], where: str) -> Config:
    """The :class:`Phi3Config` of a Hugging Face Phi-3 ``config.json``'s modelled keys: one sliding
    window for every layer when ``sliding_window`` is set (Phi3Model's mask)."""
    fields, factor = _rope(values, where)
    if values["sliding_window"] is not None:
        fields |= {"attention": ("sliding",), "sliding_window": whole(values, "sliding_window", where)}
    try:
        return Phi3Config(**fields, partial_rotary_factor=factor, name="phi3")
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


def write_phi3(config: Phi3Config) -> dict[str, object]:
    """The Hugging Face ``Phi3Config`` keys of a spec Phi-3 config; refuses what Phi3ForCausalLM
    cannot express (biases, a rotary scaling, layers that differ in their window)."""
    c, refuse = config, []
    if c.qkv_bias or c.out_bias or c.mlp_bias:
        refuse.append("biases (Phi3ForCausalLM has no bias on any projection)")
    if c.rope_scaling != "none":
        refuse.append(f"rope_scaling={c.rope_scaling!r} (Phi3Config accepts default and longrope only)")
    kinds = set(_kinds(c))
    if len(kinds) > 1:
        refuse.append(f"attention={c.attention} (every Phi-3 layer has the same mask)")
    out = _common(c, "phi3", refuse)
    out["rope_parameters"] = {**out["rope_parameters"], "partial_rotary_factor": c.partial_rotary_factor}  # type: ignore[dict-item]
    out["sliding_window"] = c.sliding_window if kinds == {"sliding"} else None
    out["pad_token_id"] = None  # Phi3Config's default, 32000, is past a smaller vocabulary (nn.Embedding refuses it); the spec has no padding token
    if c.head_width * c.n_heads == c.d_model:
        del out["head_dim"]  # not a Phi3Config field: written only when it differs from hidden_size / num_attention_heads
    return out


def _phi3_tensors() -> tuple[Tensor | Alias, ...]:
    attn, mlp, layer = "layers.{i}.self_attn", "layers.{i}.mlp", "layers.{i}"
    return (
        Tensor("embed_tokens.weight", ("W_E",), "v d", "v d"),
        Tensor(f"{layer}.input_layernorm.weight", ("blocks.{i}.norm_1.gamma",), "d", "d"),
        # nn.Linear (out, in); rows: the h query heads, then the g key heads, then the g value heads
        Tensor(f"{attn}.qkv_proj.weight", ("blocks.{i}.attn.W_Q", "blocks.{i}.attn.W_K", "blocks.{i}.attn.W_V"),
               "[h e | g e | g e] d", "h d e | g d e | g d e"),
        Tensor(f"{attn}.o_proj.weight", ("blocks.{i}.attn.W_O",), "d (h e)", "h e d"),
        Tensor(f"{layer}.post_attention_layernorm.weight", ("blocks.{i}.norm_2.gamma",), "d", "d"),
        # rows: the gate's d_mlp, then the up projection's
        Tensor(f"{mlp}.gate_up_proj.weight", ("blocks.{i}.mlp.W_gate", "blocks.{i}.mlp.W_up"), "(k m) d", "d m"),
        Tensor(f"{mlp}.down_proj.weight", ("blocks.{i}.mlp.W_down",), "d m", "m d"),
        Tensor("norm.weight", ("norm_f.gamma",), "d", "d"),
        Tensor("lm_head.weight", ("W_U",), "v d", "d v", when=lambda c: not c.tied),
        Alias("lm_head.weight", of="embed_tokens.weight", when=lambda c: c.tied,
              reason="tie_word_embeddings=true: Hugging Face uses embed_tokens as the head"),
    )


PHI3_MODULES: tuple[tuple[str, str], ...] = tuple(
    (m, p) for m, p in MODULES if not m.endswith(("mlp.gate_proj", "mlp.up_proj"))
)
"""hf_llama's modules without the separate gate and up projections (``gate_up_proj`` returns both
at once, which the spec computes as two values)."""


HF_PHI3 = register_layout(Layout(
    name="hf-phi3", family="phi3", description="Hugging Face Phi3ForCausalLM (phi3): config.json + safetensors",
    model_type="phi3", config_keys=PHI3_KEYS, read_config=read_phi3, write_config=write_phi3, layers=lambda c: c.n_layers,
    prefix="model.", unprefixed=("lm_head.weight",), tensors=_phi3_tensors(), modules=PHI3_MODULES,
    notes=("qkv_proj fuses Q | K | V rows; gate_up_proj fuses gate | up rows", "partial rotary: partial_rotary_factor of each head"),
    default=Phi3Config(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=24, partial_rotary_factor=0.5,
                       attention=("sliding",), sliding_window=3, name="hf-phi3-small-default"),
))
