"""The Hugging Face Mixtral layout (``hf-mixtral``): ``MixtralForCausalLM`` state dicts and
``config.json`` ↔ the spec's Mixtral family (spec/architectures/mixtral.py), and the routed-experts
rows the Qwen-MoE layouts share (gptspec/checkpoint/hf_qwen.py).

Everything but the MLP is the Llama family's layout (gptspec/checkpoint/hf_llama.py, whose rows
are reused, not restated). The experts: transformers ≥ 5 holds them as stacked tensors —
``mlp.experts.gate_up_proj`` (n_experts, 2·d_mlp, d), every expert's gate rows then its up rows,
and ``mlp.experts.down_proj`` (n_experts, d, d_mlp) — and the router as ``mlp.gate.weight``
(n_experts, d); those are the layout's names (what ``load_state_dict`` of the module takes and
``gptspec verify`` loads). Files on the Hub, and what ``save_pretrained`` writes, keep one tensor per
expert — Mixtral's ``block_sparse_moe.experts.{e}.w1`` (gate), ``w3`` (up), ``w2`` (down) and
``block_sparse_moe.gate`` — and are merged on import as transformers merges them
(:class:`~gptspec.checkpoint.layout.Gather`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptspec.checkpoint.hf_llama import COMMON, MODULES, ROPE, SIZES, _base, _common, _kinds, _tensors
from gptspec.checkpoint.layout import (
    Alias,
    ConfigKey,
    Gather,
    Layout,
    Tensor,
    ignore,
    model,
    register_layout,
    require,
    whole,
)
from spec.architectures.llama import LlamaConfig
from spec.architectures.mixtral import MixtralConfig
from spec.config import Config
from spec.errors import CheckpointError, ConfigError


def expert_rows(disk: str, gate: str, up: str, down: str, disk_router: str | None = None) -> tuple[tuple[Tensor, ...], tuple[Gather, ...]]:
    """The router and stacked experts of layer {i} under transformers ≥ 5's module names, and how
    files spell them: per expert under ``layers.{i}.<disk>.experts.{e}.<gate|up|down>.weight``
    (nn.Linear (out, in)), the router under ``layers.{i}.<disk_router>.weight`` when it is renamed."""
    mlp = "layers.{i}.mlp"
    tensors = (
        Tensor(f"{mlp}.gate.weight", ("blocks.{i}.mlp.W_router",), "n d", "d n"),
        # every expert's gate rows, then its up rows (one nn.Linear's (out, in) each)
        Tensor(f"{mlp}.experts.gate_up_proj", ("blocks.{i}.mlp.W_gate", "blocks.{i}.mlp.W_up"), "n (k m) d", "n d m"),
        Tensor(f"{mlp}.experts.down_proj", ("blocks.{i}.mlp.W_down",), "n d m", "n m d"),
    )
    count = lambda c: c.n_experts  # noqa: E731
    one = "layers.{i}." + disk + ".experts.{e}."
    gathers: tuple[Gather, ...] = (
        Gather(f"{mlp}.experts.gate_up_proj", (f"{one}{gate}.weight", f"{one}{up}.weight"), experts=count),
        Gather(f"{mlp}.experts.down_proj", (f"{one}{down}.weight",), experts=count),
    )
    if disk_router is not None:
        gathers += (Gather(f"{mlp}.gate.weight", ("layers.{i}." + disk_router + ".weight",)),)
    return tensors, gathers


def llama_rows_without_mlp(qkv_bias: Any, out_bias: Any) -> tuple[Tensor | Alias, ...]:
    """hf_llama's rows for attention, norms, embedding and head, without the dense MLP's."""
    return tuple(r for r in _tensors(qkv_bias, out_bias, None) if ".mlp." not in r.external)


MOE_MODULES: tuple[tuple[str, str], ...] = tuple((m, p) for m, p in MODULES if not m.startswith("model.layers.{i}.mlp."))
"""hf_llama's modules without the dense MLP's projections: ``mlp`` is the routed block's output.
(The router module returns its logits flattened over batch and positions, and the experts module
its weighted sum before the shared expert is added, so neither is one value of the DAG.)"""


def make_config(cls: type[LlamaConfig], fields: Mapping[str, Any], name: str, where: str) -> LlamaConfig:
    try:
        return cls(**fields, name=name)
    except ConfigError as error:
        raise CheckpointError(f"{error} [checkpoint {where}]") from None


MIXTRAL_KEYS: dict[str, ConfigKey] = {
    **SIZES, **ROPE, **COMMON,
    "model_type": require("another model type is another function; this layout reads model_type mixtral", "mixtral"),
    "num_key_value_heads": model("n_kv_heads: key/value heads; MixtralConfig's default is 8, null means num_attention_heads", default=8),
    "head_dim": model("d_head; null means hidden_size // num_attention_heads", default=None),
    "sliding_window": model("W: every layer's position t attends to t − W < s ≤ t (null: causal)", default=None),
    "num_local_experts": model("n_experts: the experts of every layer", default=8),
    "num_experts_per_tok": model("top_k: the experts each position is routed to (their softmax weights renormalised)", default=2),
    **ignore("the router's auxiliary load-balancing loss and its outputs: training only, not the logits",
             "output_router_logits", "router_aux_loss_coef"),
    **ignore("multiplies the router's input by noise in training only (MixtralSparseMoeBlock checks self.training)", "router_jitter_noise"),
}
"""Every Hugging Face Mixtral ``config.json`` key gptspec reads, with its role and reason."""


def read_mixtral(values: Mapping[str, object], where: str) -> Config:
    """The :class:`MixtralConfig` of a Hugging Face Mixtral ``config.json``'s modelled keys."""
    fields = _base(values, where, llama=False)
    if values["sliding_window"] is not None:
        fields |= {"attention": ("sliding",), "sliding_window": whole(values, "sliding_window", where)}
    fields |= {"n_experts": whole(values, "num_local_experts", where), "top_k": whole(values, "num_experts_per_tok", where)}
    return make_config(MixtralConfig, fields, "mixtral", where)


def write_mixtral(config: MixtralConfig) -> dict[str, object]:
    """The Hugging Face ``MixtralConfig`` keys; refuses biases and layers that differ in their
    window (Mixtral applies one mask to every layer)."""
    c, refuse = config, []
    if c.qkv_bias or c.out_bias:
        refuse.append("attention biases (MixtralForCausalLM has none)")
    kinds = set(_kinds(c))
    if len(kinds) > 1:
        refuse.append(f"attention={c.attention} (every Mixtral layer has the same mask)")
    window = c.sliding_window if kinds == {"sliding"} else None
    return _common(c, "mixtral", refuse) | {"sliding_window": window, "num_local_experts": c.n_experts, "num_experts_per_tok": c.top_k}


_EXPERTS, _GATHERS = expert_rows("block_sparse_moe", "w1", "w3", "w2", disk_router="block_sparse_moe.gate")

HF_MIXTRAL = register_layout(Layout(
    name="hf-mixtral", family="mixtral", description="Hugging Face MixtralForCausalLM (mixtral): config.json + safetensors",
    model_type="mixtral", config_keys=MIXTRAL_KEYS, read_config=read_mixtral, write_config=write_mixtral, layers=lambda c: c.n_layers,
    prefix="model.", unprefixed=("lm_head.weight",), tensors=(*llama_rows_without_mlp(None, None), *_EXPERTS), gathered=_GATHERS,
    modules=MOE_MODULES,
    notes=("experts stacked as transformers ≥ 5 holds them (gate_up_proj, down_proj); files with one tensor per expert "
           "(block_sparse_moe.experts.{e}.w1/w2/w3) are merged on import",),
    # widths whose rows are whole multiples of 16 bytes in bfloat16: torch's grouped GEMM, Hugging Face's default experts
    # kernel, refuses other strides
    default=MixtralConfig(n_vocab=61, n_ctx=16, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=16, n_experts=4, top_k=2,
                          name="hf-mixtral-small-default"),
))
