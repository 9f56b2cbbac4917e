"""The Hugging Face Qwen3 and Qwen-MoE layouts (``hf-qwen3``, ``hf-qwen2-moe``, ``hf-qwen3-moe``):
``Qwen3ForCausalLM``, ``Qwen2MoeForCausalLM`` and ``Qwen3MoeForCausalLM`` ↔ the spec's Qwen3 and
Qwen-MoE families (spec/architectures/qwen.py).

The attention, norms, embedding and head are the Llama family's rows (gptspec/checkpoint/hf_llama.py),
plus Qwen3's ``self_attn.q_norm.weight`` and ``k_norm.weight`` (d_head,): the gains of the per-head
RMS norms. The routed experts are hf_mixtral.py's rows (stacked as transformers ≥ 5 holds them;
files' per-expert ``mlp.experts.{e}.gate_proj / up_proj / down_proj`` merged on import). Qwen2-MoE's
shared expert is a gated MLP (``mlp.shared_expert.gate_proj / up_proj / down_proj``) scaled by
σ(x · w) with w the (1, d) weight of ``mlp.shared_expert_gate``.

Every layer routed is what the spec models: ``decoder_sparse_step`` other than 1 and a non-empty
``mlp_only_layers`` (dense MLP layers among the routed ones) are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.hf_llama import (
    COMMON,
    MODULES,
    QWEN2_LAYER_TYPES,
    ROPE,
    SIZES,
    _base,
    _common,
    _fail,
    _kinds,
    _tensors,
    qwen2_layer_keys,
    qwen2_layers,
)
from gptspec.checkpoint.hf_mixtral import MOE_MODULES, expert_rows, llama_rows_without_mlp, make_config
from gptspec.checkpoint.layout import (
    ConfigKey,
    Layout,
    Tensor,
    alias,
    flag,
    ignore,
    model,
    register_layout,
    require,
    whole,
)
from spec.architectures.qwen import Qwen3Config, QwenMoeConfig
from spec.config import Config

QK_NORM_ROWS = (
    Tensor("layers.{i}.self_attn.q_norm.weight", ("blocks.{i}.attn.q_norm",), "e", "e"),
    Tensor("layers.{i}.self_attn.k_norm.weight", ("blocks.{i}.attn.k_norm",), "e", "e"),
)
"""Qwen3's per-head RMS-norm gains, shared by the query heads and by the key heads."""

ROUTED_ONLY: dict[str, ConfigKey] = {
    "decoder_sparse_step": require(
        "a step above 1 makes only every step-th layer routed and the others dense MLPs, which the spec's Qwen-MoE family does "
        "not model (every layer routed)", 1,
    ),
    "mlp_only_layers": require("layers listed here are dense MLPs among routed ones, which the spec's Qwen-MoE family does not model", [], None),
    **ignore(
        "the width of dense MLP layers, which exist only with decoder_sparse_step > 1 or mlp_only_layers (both refused): with every "
        "layer routed no module reads it", "intermediate_size",
    ),
    "moe_intermediate_size": model("d_mlp: the hidden width of every routed expert"),
    "num_experts_per_tok": model("top_k: the experts each position is routed to"),
    "norm_topk_prob": model("true: the chosen experts' softmax weights are renormalised to sum to 1; false: kept as they are", default=False),
    **ignore("the router's auxiliary load-balancing loss and its outputs: training only, not the logits",
             "output_router_logits", "router_aux_loss_coef"),
}
"""The routed-experts keys both Qwen-MoE classes read."""

QWEN3_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type qwen3", "qwen3"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; null means num_attention_heads", default=None),
    "head_dim": model("d_head (Qwen3Config's default is 128, whatever hidden_size / num_attention_heads is)", default=128),
    "attention_bias": model("true: q_proj, k_proj, v_proj and o_proj all have biases", default=False),
    "use_sliding_window": model("false: no layer has a window, whatever layer_types and sliding_window say", default=False),
    "sliding_window": model("W of the sliding layers (t − W < s ≤ t); read only with use_sliding_window", default=4096),
    "max_window_layers": model("without layer_types: layers i ≥ max_window_layers slide (with use_sliding_window)", default=28),
    "layer_types": model("one of full_attention / sliding_attention per layer; null derives it from max_window_layers", default=None),
}
"""Every Hugging Face Qwen3 ``config.json`` key gptspec reads, with its role and reason."""

QWEN2_MOE_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON, **ROUTED_ONLY,
    "model_type": require("another model type is another function; this layout reads model_type qwen2_moe", "qwen2_moe"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; null means num_attention_heads", default=16),
    "head_dim": model("d_head: not a Qwen2MoeConfig field, but the attention reads it when config.json has it", default=None),
    "qkv_bias": model("true: q_proj, k_proj and v_proj have biases (o_proj never has one)", default=True),
    "num_experts": model("n_experts: the routed experts of every layer", default=60),
    "shared_expert_intermediate_size": model("d_shared: the hidden width of the shared expert every position goes through", default=5632),
    "use_sliding_window": model("false: no layer has a window (sliding_window is then 0 and no layer may be sliding)", default=False),
    "sliding_window": model("W of the sliding layers (t − W < s ≤ t); read only with use_sliding_window", default=4096),
    "max_window_layers": model("without layer_types: the odd-numbered layers below it slide (with use_sliding_window)", default=28),
    "layer_types": model("one of full_attention / sliding_attention per layer; null derives it as Qwen2MoeConfig does", default=None),
}
"""Every Hugging Face Qwen2-MoE ``config.json`` key gptspec reads, with its role and reason."""

QWEN3_MOE_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON, **ROUTED_ONLY,
    "model_type": require("another model type is another function; this layout reads model_type qwen3_moe", "qwen3_moe"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; null means num_attention_heads", default=4),
    "head_dim": model("d_head: not a Qwen3MoeConfig field, but the attention reads it when config.json has it", default=None),
    "attention_bias": model("true: q_proj, k_proj, v_proj and o_proj all have biases", default=False),
    "num_experts": model("n_experts: the routed experts of every layer", default=128),
    "num_local_experts": alias("num_experts", "the name Qwen3MoeConfig writes for num_experts (its attribute_map)"),
    "use_sliding_window": model("true: every layer attends within sliding_window (Qwen3MoeConfig keeps it only then)", default=False),
    "sliding_window": model("W of every layer (t − W < s ≤ t); read only with use_sliding_window", default=4096),
    **ignore("not read by Qwen3MoeModel (it applies one mask to every layer)", "max_window_layers", "layer_types"),
}
"""Every Hugging Face Qwen3-MoE ``config.json`` key gptspec reads, with its role and reason."""


def _routed(values: Mapping[str, object], where: str) -> dict[str, Any]:
    """The Llama-family fields of a routed config (d_mlp the experts' width) and the router's."""
    fields = _base({**values, "intermediate_size": values["moe_intermediate_size"]}, where, llama=False)
    return fields | {
        "n_experts": whole(values, "num_experts", where), "top_k": whole(values, "num_experts_per_tok", where),
        "norm_topk_prob": flag(values, "norm_topk_prob", where),
    }


def read_qwen3(values: Mapping[str, object], where: str) -> Config:
    """The :class:`Qwen3Config` of a Hugging Face Qwen3 ``config.json``'s modelled keys."""
    bias = flag(values, "attention_bias", where)
    fields = _base(values, where, llama=False) | {"qkv_bias": bias, "out_bias": bias}
    return make_config(Qwen3Config, fields | qwen2_layers(values, where, fields["n_layers"]), "qwen3", where)


def read_qwen2_moe(values: Mapping[str, object], where: str) -> Config:
    """The :class:`QwenMoeConfig` of a Hugging Face Qwen2-MoE ``config.json``'s modelled keys: the
    shared expert, Q/K/V biases when qkv_bias, layer types as Qwen2MoeConfig derives them."""
    fields = _routed(values, where) | {
        "qkv_bias": flag(values, "qkv_bias", where), "d_shared": whole(values, "shared_expert_intermediate_size", where),
    }
    n = fields["n_layers"]
    use = flag(values, "use_sliding_window", where)
    types = values["layer_types"]
    if types is None:
        first = whole(values, "max_window_layers", where, least=0)
        kinds = tuple("sliding" if use and (i + 1) % 2 and i < first else "full" for i in range(n))  # Qwen2MoeConfig.__post_init__
    elif isinstance(types, list) and len(types) == n and all(isinstance(k, str) and k in QWEN2_LAYER_TYPES for k in types):
        kinds = tuple(QWEN2_LAYER_TYPES[str(k)] for k in types)
    else:
        raise _fail("layer_types", types, f"a list of {n} entries, each one of {list(QWEN2_LAYER_TYPES)}", where)
    if "sliding" in kinds:
        if not use or values["sliding_window"] is None:
            raise _fail("layer_types", types, "no sliding_attention layer when use_sliding_window is false", where,
                        "Qwen2MoeConfig sets sliding_window to 0 then, a window no position fits in")
        fields |= {"attention": kinds, "sliding_window": whole(values, "sliding_window", where)}
    return make_config(QwenMoeConfig, fields, "qwen2-moe", where)


def read_qwen3_moe(values: Mapping[str, object], where: str) -> Config:
    """The :class:`QwenMoeConfig` of a Hugging Face Qwen3-MoE ``config.json``'s modelled keys: QK-norm,
    no shared expert, one window for every layer when use_sliding_window."""
    bias = flag(values, "attention_bias", where)
    fields = _routed(values, where) | {"qkv_bias": bias, "out_bias": bias, "qk_norm": True}
    if flag(values, "use_sliding_window", where) and values["sliding_window"] is not None:
        fields |= {"attention": ("sliding",), "sliding_window": whole(values, "sliding_window", where)}
    return make_config(QwenMoeConfig, fields, "qwen3-moe", where)


def write_qwen3(config: Qwen3Config) -> dict[str, object]:
    """The Hugging Face ``Qwen3Config`` keys; refuses separate attention bias switches and MLP biases."""
    c, refuse = config, []
    if c.qkv_bias != c.out_bias:
        refuse.append(f"qkv_bias={c.qkv_bias}, out_bias={c.out_bias} (attention_bias switches all four projections' biases together)")
    if c.mlp_bias:
        refuse.append("mlp_bias=True (Qwen3's MLP has no biases)")
    return _common(c, "qwen3", refuse) | {"attention_bias": c.qkv_bias} | qwen2_layer_keys(c)


def _routed_keys(c: QwenMoeConfig) -> dict[str, object]:
    return {
        "moe_intermediate_size": c.d_mlp, "num_experts": c.n_experts, "num_experts_per_tok": c.top_k, "norm_topk_prob": c.norm_topk_prob,
        "decoder_sparse_step": 1, "mlp_only_layers": [],
    }


def write_qwen2_moe(config: QwenMoeConfig) -> dict[str, object]:
    """The Hugging Face ``Qwen2MoeConfig`` keys; refuses what Qwen2-MoE has not: QK-norm, an O bias,
    a model without the shared expert."""
    c, refuse = config, []
    if c.qk_norm:
        refuse.append("qk_norm=True (Qwen2-MoE does not normalise queries and keys: export to hf-qwen3-moe)")
    if c.out_bias:
        refuse.append("out_bias=True (Qwen2-MoE's o_proj has no bias)")
    if c.d_shared is None:
        refuse.append("d_shared=None (every Qwen2-MoE layer has a shared expert: export to hf-qwen3-moe)")
    kinds = _kinds(c)
    out = _common(c, "qwen2_moe", refuse) | _routed_keys(c) | {
        "qkv_bias": c.qkv_bias, "shared_expert_intermediate_size": c.d_shared, "use_sliding_window": "sliding" in kinds,
        "sliding_window": c.sliding_window, "max_window_layers": c.n_layers, "layer_types": [f"{k}_attention" for k in kinds],
    }
    if c.head_width * c.n_heads == c.d_model:
        del out["head_dim"]  # not a Qwen2MoeConfig field: written only when it differs from hidden_size / num_attention_heads
    return out


def write_qwen3_moe(config: QwenMoeConfig) -> dict[str, object]:
    """The Hugging Face ``Qwen3MoeConfig`` keys; refuses what Qwen3-MoE has not: a model without
    QK-norm, a shared expert, separate bias switches, layers that differ in their window."""
    c, refuse = config, []
    if not c.qk_norm:
        refuse.append("qk_norm=False (every Qwen3-MoE layer normalises queries and keys: export to hf-qwen2-moe)")
    if c.d_shared is not None:
        refuse.append(f"d_shared={c.d_shared} (Qwen3-MoE has no shared expert: export to hf-qwen2-moe)")
    if c.qkv_bias != c.out_bias:
        refuse.append(f"qkv_bias={c.qkv_bias}, out_bias={c.out_bias} (attention_bias switches all four projections' biases together)")
    kinds = set(_kinds(c))
    if len(kinds) > 1:
        refuse.append(f"attention={c.attention} (every Qwen3-MoE layer has the same mask)")
    sliding = kinds == {"sliding"}
    return _common(c, "qwen3_moe", refuse) | _routed_keys(c) | {
        "attention_bias": c.qkv_bias, "use_sliding_window": sliding, "sliding_window": c.sliding_window if sliding else None,
    }


QWEN_EXPERTS, QWEN_GATHERS = expert_rows("mlp", "gate_proj", "up_proj", "down_proj")

SHARED_EXPERT_ROWS = (
    Tensor("layers.{i}.mlp.shared_expert.gate_proj.weight", ("blocks.{i}.mlp.W_shared_gate",), "s d", "d s"),
    Tensor("layers.{i}.mlp.shared_expert.up_proj.weight", ("blocks.{i}.mlp.W_shared_up",), "s d", "d s"),
    Tensor("layers.{i}.mlp.shared_expert.down_proj.weight", ("blocks.{i}.mlp.W_shared_down",), "d s", "s d"),
    # nn.Linear(d, 1): a (1, d) weight holding the vector w of σ(x · w)
    Tensor("layers.{i}.mlp.shared_expert_gate.weight", ("blocks.{i}.mlp.w_shared",), "k d", "d"),
)
"""Qwen2-MoE's shared expert and its sigmoid gate."""


def _layout(name: str, model_type: str, cls: str, family: str, keys: Mapping[str, ConfigKey], read: Any, write: Any,
            tensors: tuple[Any, ...], modules: tuple[tuple[str, str], ...], note: str, default: Config, gathered: tuple[Any, ...] = ()) -> Layout:
    return register_layout(Layout(
        name=name, family=family, description=f"Hugging Face {cls} ({model_type}): config.json + safetensors", model_type=model_type,
        config_keys=keys, read_config=read, write_config=write, layers=lambda c: c.n_layers, prefix="model.",
        unprefixed=("lm_head.weight",), tensors=tensors, gathered=gathered, modules=modules, notes=(note,), default=default,
    ))


_SMALL: dict[str, Any] = {"n_vocab": 61, "n_ctx": 16, "d_model": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_mlp": 16}
"""gptspec verify's default size for these layouts: two layers, grouped-query heads, widths whose rows
are whole multiples of 16 bytes in bfloat16 (torch's grouped GEMM, Hugging Face's default experts
kernel, refuses other strides)."""

HF_QWEN3 = _layout(
    "hf-qwen3", "qwen3", "Qwen3ForCausalLM", "qwen3", QWEN3_KEYS, read_qwen3, write_qwen3,
    (*_tensors(lambda c: c.qkv_bias, lambda c: c.out_bias, None), *QK_NORM_ROWS), MODULES,
    "q_norm, k_norm: RMS norms of every head's queries and keys, before rotary; per-layer windows by layer_types",
    Qwen3Config(**_SMALL, d_head=8, name="hf-qwen3-small-default"),
)
HF_QWEN2_MOE = _layout(
    "hf-qwen2-moe", "qwen2_moe", "Qwen2MoeForCausalLM", "qwen-moe", QWEN2_MOE_KEYS, read_qwen2_moe, write_qwen2_moe,
    (*llama_rows_without_mlp(lambda c: c.qkv_bias, None), *QWEN_EXPERTS, *SHARED_EXPERT_ROWS), MOE_MODULES,
    "routed experts (weights renormalised by norm_topk_prob) plus a shared expert behind a sigmoid gate; biases on q_proj, k_proj, v_proj",
    QwenMoeConfig(**_SMALL, qkv_bias=True, n_experts=4, top_k=2, d_shared=24, name="hf-qwen2-moe-small-default"),
    QWEN_GATHERS,
)
HF_QWEN3_MOE = _layout(
    "hf-qwen3-moe", "qwen3_moe", "Qwen3MoeForCausalLM", "qwen-moe", QWEN3_MOE_KEYS, read_qwen3_moe, write_qwen3_moe,
    (*llama_rows_without_mlp(lambda c: c.qkv_bias, lambda c: c.out_bias), *QK_NORM_ROWS, *QWEN_EXPERTS), MOE_MODULES,
    "QK-norm and routed experts (weights renormalised by norm_topk_prob); one window for every layer, or none",
    QwenMoeConfig(**_SMALL, d_head=8, n_experts=4, top_k=2, norm_topk_prob=True, qk_norm=True, name="hf-qwen3-moe-small-default"),
    QWEN_GATHERS,
)
