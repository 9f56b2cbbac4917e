"""The theorems, one module per subject; importing this package registers them all, in this
order (which is the order of docs/proofs.md and of ``gptspec prove``)."""

from proofs.theorems import softmax, attention, embedding, layer_norm, counting, dynamics, causality, seq2seq, llama, moe, objective  # noqa: F401  (isort: skip — the order is the docs' order)
