"""Architecture families (config → Architecture builders), registered by name, and the one table
of named presets. Importing this package registers every built-in family and preset."""

from spec.architectures import conv_gpt, gemma, linear_gpt, mixtral, neox, olmo2, parallel_gpt, phi3, qwen, transformer  # noqa: F401  (registers the other families)
from spec.architectures import presets as _presets  # noqa: F401  (registers the GPT presets)
from spec.architectures import presets_compressed as _presets_compressed  # noqa: F401  (Suresh & P.'s four models)
from spec.architectures import presets_llama as _presets_llama  # noqa: F401  (registers the Llama family and its presets)
from spec.architectures import presets_neox_gemma as _presets_neox_gemma  # noqa: F401  (Pythia, Gemma presets)
from spec.architectures import presets_olmo2_phi3 as _presets_olmo2_phi3  # noqa: F401  (OLMo 2, Phi-3 presets)
from spec.architectures import presets_qwen_mixtral as _presets_qwen_mixtral  # noqa: F401  (Qwen3, Mixtral, Qwen-MoE presets)
from spec.architectures import presets_transformer as _presets_transformer  # noqa: F401  (Vaswani et al.'s base and big)
from spec.architectures.gpt import GPTConfig, build_gpt
from spec.architectures.llama import LlamaConfig, build_llama
from spec.architectures.registry import (
    FAMILIES,
    PRESETS,
    Family,
    Preset,
    build,
    family,
    family_of,
    preset,
    register_family,
    register_preset,
)

__all__ = [
    "FAMILIES", "PRESETS", "Family", "GPTConfig", "LlamaConfig", "Preset", "build", "build_gpt", "build_llama", "family",
    "family_of", "preset", "register_family", "register_preset",
]
