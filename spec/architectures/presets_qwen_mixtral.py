"""The Qwen3, Mixtral and Qwen-MoE presets, registered in the one preset table. Sizes are those of
the models' Hugging Face config.json files; the counts read off Θ equal Hugging Face's
``num_parameters()`` for those configs (tests/test_qwen_mixtral.py)."""

from __future__ import annotations

from spec.architectures.llama import LlamaConfig
from spec.architectures.mixtral import MixtralConfig
from spec.architectures.qwen import Qwen3Config, QwenMoeConfig
from spec.architectures.registry import register_preset

_PRESETS: dict[str, tuple[LlamaConfig, str]] = {
    "qwen3-0.6b": (
        Qwen3Config(n_vocab=151936, n_ctx=40960, d_model=1024, n_layers=28, n_heads=16, n_kv_heads=8, d_head=128, d_mlp=3072,
                    rope_base=1000000.0, tied=True, name="qwen3-0.6b"),
        "Qwen3 0.6B (Qwen team 2025): QK-norm per head, 16 query heads of width 128 sharing 8 key/value heads, tied; "
        "596,049,920 parameters.",
    ),
    "mixtral-8x7b": (
        MixtralConfig(n_vocab=32000, n_ctx=32768, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_mlp=14336, eps=1e-5,
                      rope_base=1000000.0, n_experts=8, top_k=2, name="mixtral-8x7b"),
        "Mixtral 8x7B v0.1 (Jiang et al. 2024): 8 SwiGLU experts per layer, 2 chosen per token; 46,702,792,704 parameters "
        "(about 12.9B used per token).",
    ),
    "qwen1.5-moe-a2.7b": (
        QwenMoeConfig(n_vocab=151936, n_ctx=8192, d_model=2048, n_layers=24, n_heads=16, d_mlp=1408, rope_base=1000000.0,
                      qkv_bias=True, n_experts=60, top_k=4, norm_topk_prob=False, d_shared=5632, name="qwen1.5-moe-a2.7b"),
        "Qwen1.5-MoE-A2.7B (Qwen2-MoE): 60 experts of width 1408, 4 chosen per token (weights not renormalised), a shared expert "
        "of width 5632 behind a sigmoid gate, Q/K/V biases; 14,315,784,192 parameters.",
    ),
    "qwen3-30b-a3b": (
        QwenMoeConfig(n_vocab=151936, n_ctx=40960, d_model=2048, n_layers=48, n_heads=32, n_kv_heads=4, d_head=128, d_mlp=768,
                      rope_base=1000000.0, n_experts=128, top_k=8, norm_topk_prob=True, qk_norm=True, name="qwen3-30b-a3b"),
        "Qwen3-30B-A3B (Qwen3-MoE): QK-norm, 128 experts of width 768, 8 chosen per token and renormalised; "
        "30,532,122,624 parameters.",
    ),
}

for _name, (_config, _note) in _PRESETS.items():
    register_preset(_name, _config, _note)
