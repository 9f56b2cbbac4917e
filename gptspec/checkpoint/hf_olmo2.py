"""The Hugging Face OLMo 2 layout (``hf-olmo2``): ``Olmo2ForCausalLM`` state dicts and
``config.json`` ↔ the spec's OLMo 2 family (spec/architectures/olmo2.py).

The tensors are the Llama family's (gptspec/checkpoint/hf_llama.py: ``nn.Linear`` (out, in),
q_proj "(h e) d", o_proj "d (h e)") with OLMo 2's norms: no ``input_layernorm``;
``post_attention_layernorm`` and ``post_feedforward_layernorm`` normalise the attention's and the
MLP's outputs before the residual adds (the spec's ``post_norm_1``, ``post_norm_2``); and
``self_attn.q_norm`` / ``k_norm``, RMS norms over all heads' queries (width n_heads·d_head) and all
key/value heads' keys (n_kv_heads·d_head), whose weights "(h e)" / "(g e)" are the spec's q_norm
(n_heads, d_head) and k_norm (n_kv_heads, d_head). Because the spec normalises the concatenation
of the heads, ``q_proj`` and ``k_proj`` are values of its DAG too (``concat_Q``, ``concat_K``).

The config: every key this transformers version writes for Olmo2Config is modelled, ignored with
a reason or refused, as are the older spellings on the Hub (``rope_theta``, ``rope_scaling``);
rotary scalings linear and llama3 are modelled (Olmo2RotaryEmbedding reads them as Llama does),
the others refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from gptspec.checkpoint.hf_llama import COMMON, MODULES, ROPE, SIZES, _base, _common, _kinds, _tensors
from gptspec.checkpoint.layout import Alias, ConfigKey, Layout, Tensor, flag, model, register_layout, require
from spec.architectures.olmo2 import Olmo2Config
from spec.config import Config
from spec.errors import CheckpointError, ConfigError

OLMO2_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type olmo2", "olmo2"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; null means num_attention_heads", default=None),
    "head_dim": model(
        "d_head: not an Olmo2Config field, but Olmo2Attention reads it when config.json has it; absent means "
        "hidden_size // num_attention_heads", default=None,
    ),
    "attention_bias": model("true: q_proj, k_proj, v_proj and o_proj all have biases (qkv_bias = out_bias)", default=False),
    "rms_norm_eps": model("eps: the ε of every RMS norm, the QK-norms' included (Olmo2Config's default is 1e-5)", default=1e-5),
}
"""Every Hugging Face OLMo 2 ``config.json`` key gptspec reads, with its role and reason."""


def read_olmo2(values: Mapping[str, object], where: str) -> Config:
    """The :class:`Olmo2Config` of a Hugging Face OLMo 2 ``config.json``'s modelled keys."""
    bias = flag(values, "attention_bias", where)
    fields = _base(values, where, llama=False) | {"qkv_bias": bias, "out_bias": bias}
    try:
        return Olmo2Config(**fields, name="olmo2")
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


def write_olmo2(config: Olmo2Config) -> dict[str, object]:
    """The Hugging Face ``Olmo2Config`` keys of a spec OLMo 2 config; refuses what Olmo2ForCausalLM
    cannot express (sliding layers, separate attention bias switches, MLP biases, interleaved pairs)."""
    c, refuse = config, []
    if "sliding" in _kinds(c):
        refuse.append("sliding layers (Olmo2ForCausalLM has no sliding window)")
    if c.qkv_bias != c.out_bias:
        refuse.append(f"qkv_bias={c.qkv_bias}, out_bias={c.out_bias} (attention_bias switches all four projections' biases together)")
    if c.mlp_bias:
        refuse.append("mlp_bias=True (Olmo2MLP has no biases)")
    out = _common(c, "olmo2", refuse) | {"attention_bias": c.qkv_bias}
    if c.head_width * c.n_heads == c.d_model:
        del out["head_dim"]  # not an Olmo2Config field: written only when it differs from hidden_size / num_attention_heads
    return out


def _olmo2_tensors() -> tuple[Tensor | Alias, ...]:
    attn, layer = "layers.{i}.self_attn", "layers.{i}"
    llama = tuple(r for r in _tensors(lambda c: c.qkv_bias, lambda c: c.out_bias, None) if "layernorm" not in r.external)
    return (
        *llama,
        Tensor(f"{attn}.q_norm.weight", ("blocks.{i}.attn.q_norm",), "(h e)", "h e"),
        Tensor(f"{attn}.k_norm.weight", ("blocks.{i}.attn.k_norm",), "(g e)", "g e"),
        Tensor(f"{layer}.post_attention_layernorm.weight", ("blocks.{i}.post_norm_1.gamma",), "d", "d"),
        Tensor(f"{layer}.post_feedforward_layernorm.weight", ("blocks.{i}.post_norm_2.gamma",), "d", "d"),
    )


OLMO2_MODULES: tuple[tuple[str, str], ...] = (
    *((m, p) for m, p in MODULES if "layernorm" not in m),
    ("model.layers.{i}.self_attn.q_proj", "blocks.{i}.attn.concat_Q"),
    ("model.layers.{i}.self_attn.k_proj", "blocks.{i}.attn.concat_K"),
    ("model.layers.{i}.self_attn.q_norm", "blocks.{i}.attn.norm_Q"),
    ("model.layers.{i}.self_attn.k_norm", "blocks.{i}.attn.norm_K"),
    ("model.layers.{i}.post_attention_layernorm", "blocks.{i}.post_norm_1"),
    ("model.layers.{i}.post_feedforward_layernorm", "blocks.{i}.post_norm_2"),
)
"""External module name ↔ DAG path: hf_llama's without the pre-norms, and OLMo 2's post-norms,
Q and K projections of all heads and their norms (values of the spec's DAG, since it normalises
the heads' concatenation)."""


HF_OLMO2 = register_layout(Layout(
    name="hf-olmo2", family="olmo2", description="Hugging Face Olmo2ForCausalLM (olmo2): config.json + safetensors",
    model_type="olmo2", config_keys=OLMO2_KEYS, read_config=read_olmo2, write_config=write_olmo2, layers=lambda c: c.n_layers,
    prefix="model.", unprefixed=("lm_head.weight",), tensors=_olmo2_tensors(), modules=OLMO2_MODULES,
    notes=("norms after the sublayers (post_attention_layernorm, post_feedforward_layernorm)",
           "q_norm and k_norm over all heads at once (width n_heads·d_head, n_kv_heads·d_head)"),
    default=Olmo2Config(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=24, name="hf-olmo2-small-default"),
))
