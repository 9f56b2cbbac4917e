"""The Llama-family presets, registered in the one preset table (spec.architectures.registry.PRESETS).
Sizes are those of the models' Hugging Face config.json files (docs/conventions.md, "The Llama
family"); the counts read off Θ equal the published totals (tests/test_llama.py)."""

from __future__ import annotations

from spec.architectures.llama import LlamaConfig
from spec.architectures.registry import register_preset

_LLAMA_PRESETS: dict[str, tuple[LlamaConfig, str]] = {
    "tiny-llama": (
        LlamaConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=40, name="tiny-llama"),
        "A toy size for demos and tests (2 layers, d_model 16, 4 query heads sharing 2 key/value heads, vocabulary 64); "
        "not TinyLlama-1.1B.",
    ),
    "llama-2-7b": (
        LlamaConfig(n_vocab=32000, n_ctx=4096, d_model=4096, n_layers=32, n_heads=32, d_mlp=11008, eps=1e-5, name="llama-2-7b"),
        "Llama 2 7B (Touvron et al. 2023): 6,738,415,616 parameters; multi-head attention (32 key/value heads).",
    ),
    "llama-3-8b": (
        LlamaConfig(n_vocab=128256, n_ctx=8192, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_mlp=14336,
                    eps=1e-5, rope_base=500000.0, name="llama-3-8b"),
        "Llama 3 8B (Meta 2024): 8,030,261,248 parameters; 8 key/value heads, rope θ = 500000.",
    ),
    "llama-3.1-8b": (
        LlamaConfig(n_vocab=128256, n_ctx=131072, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_mlp=14336,
                    eps=1e-5, rope_base=500000.0, rope_scaling="llama3", rope_factor=8.0, rope_low_freq_factor=1.0,
                    rope_high_freq_factor=4.0, rope_original_n_ctx=8192, name="llama-3.1-8b"),
        "Llama 3.1 8B: Llama 3 8B's sizes (8,030,261,248 parameters) with the llama3 frequency scaling "
        "(factor 8, low 1, high 4, trained at 8192) and a 131072 context.",
    ),
    "mistral-7b": (
        LlamaConfig(n_vocab=32000, n_ctx=32768, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_mlp=14336,
                    eps=1e-5, attention=("sliding",), sliding_window=4096, name="mistral-7b"),
        "Mistral 7B v0.1 (Jiang et al. 2023): 7,241,732,096 parameters; sliding-window attention, W = 4096 "
        "(later versions drop the window: --set attention=full).",
    ),
    "qwen2-0.5b": (
        LlamaConfig(n_vocab=151936, n_ctx=32768, d_model=896, n_layers=24, n_heads=14, n_kv_heads=2, d_mlp=4864,
                    eps=1e-6, rope_base=1000000.0, qkv_bias=True, tied=True, name="qwen2-0.5b"),
        "Qwen2 0.5B (Qwen team 2024): 494,032,768 parameters; biases on Q, K, V only, tied embeddings.",
    ),
}

for _name, (_config, _note) in _LLAMA_PRESETS.items():
    register_preset(_name, _config, _note)
