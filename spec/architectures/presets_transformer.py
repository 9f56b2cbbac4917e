"""The presets of the original Transformer: Vaswani et al. 2017, Table 3 (base and big), and a
toy size."""

from __future__ import annotations

from spec.architectures.registry import register_preset
from spec.architectures.transformer import TransformerConfig

EN_DE_VOCAB = 37_000
"""§5.1: WMT 2014 English–German "byte-pair encoding, which has a shared source-target vocabulary
of about 37000 tokens" — "about": the exact size is not published; 37,000 is gptspec's reading."""
N_CTX = 1024
"""Not published (sinusoidal positions define every position); gptspec bounds both sequences at
1,024, Hugging Face Marian's default max_position_embeddings."""

_TABLE3_NOTE = (
    "Counts read off Θ with the shared 37,000-token EN–DE vocabulary (\"about 37000\", §5.1), one matrix for "
    "source and target embeddings and the pre-softmax map (§3.4), biases on every affine map and layer norm, no "
    "final layer norm (post-LN): base = 63,082,496 against the printed 65M (−2.95%), big = 214,245,376 against 213M "
    "(+0.58%). No vocabulary size makes both printed figures exact (base would need about 40,700 tokens, big about "
    "35,800), so the table's figures are rounded estimates; docs/conventions.md. n_ctx 1024 is gptspec's bound, not "
    "published."
)

register_preset(
    "transformer-base",
    TransformerConfig(n_vocab=EN_DE_VOCAB, n_ctx=N_CTX, d_model=512, n_layers=6, n_heads=8, d_mlp=2048, name="transformer-base"),
    "Vaswani et al. 2017, Table 3 \"base\": N = 6, d_model 512, d_ff 2048, h = 8, d_k = d_v = 64. " + _TABLE3_NOTE,
)
register_preset(
    "transformer-big",
    TransformerConfig(n_vocab=EN_DE_VOCAB, n_ctx=N_CTX, d_model=1024, n_layers=6, n_heads=16, d_mlp=4096, name="transformer-big"),
    "Vaswani et al. 2017, Table 3 \"big\": N = 6, d_model 1024, d_ff 4096, h = 16, d_k = d_v = 64. " + _TABLE3_NOTE,
)
register_preset(
    "transformer-tiny",
    TransformerConfig(n_vocab=64, n_ctx=32, d_model=16, n_layers=2, n_heads=2, name="transformer-tiny"),
    "A toy encoder–decoder for demos and tests (2 + 2 layers, d_model 16, vocabulary 64).",
)
