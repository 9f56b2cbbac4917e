"""The OLMo 2 and Phi-3 presets, registered in the one preset table. Sizes are those of the
models' Hugging Face config.json files; the counts read off Θ equal Hugging Face's
``num_parameters()`` for those configs (tests/test_olmo2_phi3.py)."""

from __future__ import annotations

from spec.architectures.olmo2 import Olmo2Config
from spec.architectures.phi3 import Phi3Config
from spec.architectures.registry import register_preset

_PRESETS: dict[str, tuple[Olmo2Config | Phi3Config, str]] = {
    "olmo-2-1b": (
        Olmo2Config(n_vocab=100352, n_ctx=4096, d_model=2048, n_layers=16, n_heads=16, d_mlp=8192, eps=1e-6, rope_base=500000.0,
                    name="olmo-2-1b"),
        "OLMo 2 1B (OLMo et al. 2024, allenai/OLMo-2-0425-1B): RMSNorm after each sublayer, QK-norm over all heads, rotary "
        "θ = 500000, untied head; 1,484,916,736 parameters (OLMo 2 7B: --set d_model=4096 --set n_layers=32 --set n_heads=32 "
        "--set d_mlp=11008, 7,298,617,344).",
    ),
    "phi-3-mini-4k": (
        Phi3Config(n_vocab=32064, n_ctx=4096, d_model=3072, n_layers=32, n_heads=32, d_mlp=8192, eps=1e-5, attention=("sliding",),
                   sliding_window=2047, name="phi-3-mini-4k"),
        "Phi-3 mini 4K (Abdin et al. 2024, microsoft/Phi-3-mini-4k-instruct): 32 heads, no grouping, every layer a sliding "
        "window of 2047; 3,821,079,552 parameters.",
    ),
}

for _name, (_config, _note) in _PRESETS.items():
    register_preset(_name, _config, _note)
