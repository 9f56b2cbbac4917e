"""The GPT presets, registered in the one preset table (spec.architectures.registry.PRESETS).
Sizes: GPT-2 (Radford et al. 2019, Hugging Face configs) and GPT-3 (Brown et al. 2020,
Table 2.1). Each entry may carry a note the CLI prints."""

from __future__ import annotations

from spec.architectures.gpt import GPTConfig
from spec.architectures.registry import Preset, register_preset

GPT2_VOCAB = 50257
GPT3_BAND_WIDTH = 256
"""GPT-3's sparse layers are "locally banded"; the paper does not publish the band width.
256 is gptspec's assumption, not a published figure. Parameter counts do not depend on it;
change it with ``--set band_width=N``."""


def _gpt2(name: str, n_layers: int, d_model: int, n_heads: int) -> Preset:
    return Preset(GPTConfig(n_vocab=GPT2_VOCAB, n_ctx=1024, d_model=d_model, n_layers=n_layers, n_heads=n_heads, name=name))


_GPT3_NOTE = (
    "GPT-3 alternates dense and locally banded attention; the band width is not published, "
    f"gptspec assumes {GPT3_BAND_WIDTH} (--set band_width=N)."
)


def _gpt3(name: str, n_layers: int, d_model: int, n_heads: int, d_head: int, note: str = "") -> Preset:
    config = GPTConfig(
        n_vocab=GPT2_VOCAB, n_ctx=2048, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        d_head=d_head, d_mlp=4 * d_model, attention=("dense", "banded"),
        band_width=GPT3_BAND_WIDTH, name=name,
    )
    return Preset(config, " ".join(x for x in (note, _GPT3_NOTE) if x))


_13B_NOTE = (
    "Table 2.1 of Brown et al. lists the 13B model as d_model 5140 with 40 heads of 128, but "
    "40 × 128 = 5120 ≠ 5140. gpt3-13b reads d_model as 5120 (n_heads·d_head = d_model, as in "
    "every other row); gpt3-13b-as-published keeps d_model 5140 with attention width 5120, "
    "which the spec can express since n_heads·d_head need not equal d_model."
)

_XL_NOTE = (
    "Table 2.1 of Brown et al. lists GPT-3 XL as d_model 2048 with 24 heads of 128, but "
    "24 × 128 = 3072 ≠ 2048, and only n_heads·d_head = 2048 gives the published 1.3B. "
    "gpt3-xl keeps d_head 128 and reads n_heads as 2048 / 128 = 16; gpt3-xl-as-published keeps "
    "24 heads of 128 (attention width 3072), which counts 1.52B, not 1.3B."
)

_GPT_PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        GPTConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=2, n_heads=2, name="tiny"),
        "A toy size for demos and tests (2 layers, d_model 16, vocabulary 64).",
    ),
    "gpt2-small": _gpt2("gpt2-small", 12, 768, 12),
    "gpt2-medium": _gpt2("gpt2-medium", 24, 1024, 16),
    "gpt2-large": _gpt2("gpt2-large", 36, 1280, 20),
    "gpt2-xl": _gpt2("gpt2-xl", 48, 1600, 25),
    "gpt3-small": _gpt3("gpt3-small", 12, 768, 12, 64),
    "gpt3-medium": _gpt3("gpt3-medium", 24, 1024, 16, 64),
    "gpt3-large": _gpt3("gpt3-large", 24, 1536, 16, 96),
    "gpt3-xl": _gpt3("gpt3-xl", 24, 2048, 16, 128, _XL_NOTE),
    "gpt3-xl-as-published": _gpt3("gpt3-xl-as-published", 24, 2048, 24, 128, _XL_NOTE),
    "gpt3-2.7b": _gpt3("gpt3-2.7b", 32, 2560, 32, 80),
    "gpt3-6.7b": _gpt3("gpt3-6.7b", 32, 4096, 32, 128),
    "gpt3-13b": _gpt3("gpt3-13b", 40, 5120, 40, 128, _13B_NOTE),
    "gpt3-13b-as-published": _gpt3("gpt3-13b-as-published", 40, 5140, 40, 128, _13B_NOTE),
    "gpt3-175b": _gpt3("gpt3-175b", 96, 12288, 96, 128),
}


for _name, _preset in _GPT_PRESETS.items():
    register_preset(_name, _preset.config, _preset.note)
