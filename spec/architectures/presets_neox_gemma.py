"""The GPT-NeoX (Pythia) and Gemma presets, registered in the one preset table. Sizes are those
of the models' Hugging Face config.json files; the counts read off Θ equal Hugging Face's
``num_parameters()`` for those configs (tests/test_neox_gemma.py)."""

from __future__ import annotations

from spec.architectures.gemma import GemmaConfig
from spec.architectures.neox import NeoXConfig
from spec.architectures.registry import register_preset

_PRESETS: dict[str, tuple[NeoXConfig | GemmaConfig, str]] = {
    "pythia-160m": (
        NeoXConfig(n_vocab=50304, n_ctx=2048, d_model=768, n_layers=12, n_heads=12, d_mlp=3072, name="pythia-160m"),
        "Pythia 160M (Biderman et al. 2023): parallel residual, rotary on 25% of each head, untied head; 162,322,944 parameters.",
    ),
    "pythia-1.4b": (
        NeoXConfig(n_vocab=50304, n_ctx=2048, d_model=2048, n_layers=24, n_heads=16, d_mlp=8192, name="pythia-1.4b"),
        "Pythia 1.4B (Biderman et al. 2023): as Pythia 160M, 24 layers of width 2048; 1,414,647,808 parameters.",
    ),
    "gemma-2b": (
        GemmaConfig(n_vocab=256000, n_ctx=8192, d_model=2048, n_layers=18, n_heads=8, n_kv_heads=1, d_head=256, d_mlp=16384,
                    name="gemma-2b"),
        "Gemma 2B (Gemma Team 2024): multi-query attention, GeGLU, embedding × √d_model, tied; 2,506,172,416 parameters.",
    ),
    "gemma-2-9b": (
        GemmaConfig(n_vocab=256000, n_ctx=8192, d_model=3584, n_layers=42, n_heads=16, n_kv_heads=8, d_head=256, d_mlp=14336,
                    attention=("sliding", "full"), sliding_window=4096, query_pre_attn_scalar=256, attn_softcap=50.0,
                    final_softcap=30.0, sandwich_norms=True, name="gemma-2-9b"),
        "Gemma 2 9B (Gemma Team 2024): local (window 4096) and global layers alternating, sandwich norms, scores capped at 50 "
        "and logits at 30; 9,241,705,984 parameters.",
    ),
}

for _name, (_config, _note) in _PRESETS.items():
    register_preset(_name, _config, _note)
