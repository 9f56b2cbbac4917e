"""The four models of Suresh & P. at the authors' configuration (docs/sources.md §2), registered
in the one preset table: the baseline GPT and its three compressed variants."""

from __future__ import annotations

from spec.architectures.compressed import AUTHORS_VOCAB
from spec.architectures.conv_gpt import ConvGPTConfig
from spec.architectures.gpt import GPTConfig
from spec.architectures.linear_gpt import LinearGPTConfig
from spec.architectures.parallel_gpt import ParallelGPTConfig
from spec.architectures.registry import register_preset

N_CTX, D_MODEL, N_LAYERS, N_HEADS = 1024, 512, 8, 8
"""8 layers, 8 heads, d_model 512, n_ctx 1024 (with the GPT-2 vocabulary padded to 50,304)."""
SOURCE = "Suresh & P. 2024 (arXiv 2404.14462), the authors' configuration (docs/sources.md §2)"

register_preset(
    "baseline-gpt",
    GPTConfig(n_vocab=AUTHORS_VOCAB, n_ctx=N_CTX, d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, d_mlp=4 * D_MODEL, activation="gelu_erf", bias=False, tied=False, name="baseline-gpt"),
    f"The baseline decoder-only GPT of {SOURCE}: 77,210,112 parameters (\"77.2M\").",
)
register_preset(
    "parallel-gpt", ParallelGPTConfig(n_vocab=AUTHORS_VOCAB, n_ctx=N_CTX, d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, name="parallel-gpt"),
    f"ParallelGPT of {SOURCE}: two branches of 4 blocks, each fed by its own d→d affine map, combined by a learned "
    "sigmoid gate; 77,735,425 parameters.",
)
register_preset(
    "linear-gpt", LinearGPTConfig(n_vocab=AUTHORS_VOCAB, n_ctx=N_CTX, d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, name="linear-gpt"),
    f"LinearGPT (LinearlyCompressedGPT) of {SOURCE}: an affine d → d/2 after every 2 blocks, 8 heads throughout "
    "(512 → 256 → 128 → 64 → 32); 36,423,936 parameters.",
)
register_preset(
    "conv-gpt", ConvGPTConfig(n_vocab=AUTHORS_VOCAB, n_ctx=N_CTX, d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, name="conv-gpt"),
    f"ConvGPT (ConvCompressedGPT) of {SOURCE}: as linear-gpt with a 1-D convolution over positions as the reducer "
    "(kernel 1, no padding, so it equals the affine map); 36,423,936 parameters. --set kernel=3 --set pad_left=1 "
    "gives symmetric padding, which the dependency typing reports as not causal.",
)
