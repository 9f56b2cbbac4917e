"""fast/ against Hugging Face's Llama (PyTorch, CPU, eager — no torch.compile) on the same random
weights, float32: d_model 1024, 8 layers, 16 query heads sharing 4 key/value heads (GQA 4) of
64, d_mlp 2816, vocabulary 32000, B = 4, T = 256.

The weights: a randomly initialised ``LlamaForCausalLM`` (its RMS-norm gains perturbed too, so
every parameter matters) is saved with ``save_pretrained`` and read back by
``gptspec.checkpoint.load`` (layout hf-llama), so fast/ runs exactly HF's float32 values. fast/
runs the fused attention path (RoPE inside it, K/V once per key/value head; the script checks
that every layer took it). PyTorch gets as many threads as numpy's OpenBLAS uses (2 on the
project machine), runs under ``torch.inference_mode()`` and ``use_cache=False``, with HF's
default attention (``sdpa``) unless ``--attn eager``. The two are timed round-robin after a
warm-up; the script prints both medians, the speed ratio HF time ÷ fast time (> 1 means fast/
is faster), and the largest |difference| of the logits.

    python benchmarks/fast_vs_hf_llama.py [--batch 4] [--tokens 256] [--repeat 5] [--attn sdpa] [--threads N] [--clock wall|cpu]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from hf_race import arguments, race
from transformers import LlamaConfig, LlamaForCausalLM

import fast


def hf_model(seed: int, attn: str, layers: int) -> LlamaForCausalLM:
    """The benchmark's Llama with random weights, RMS-norm gains perturbed around 1."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=layers, num_attention_heads=16,
        num_key_value_heads=4, max_position_embeddings=2048, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    config._attn_implementation = attn
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    model.eval()  # type: ignore[no-untyped-call]
    return model


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (default 8)")
    args = parser.parse_args()

    def every_layer_fused(prog: fast.Program) -> None:
        fused = [step.path for step in prog.steps if step.plan is not None]
        if len(fused) != args.layers:
            raise SystemExit(f"fast/ fused {len(fused)} of {args.layers} attention layers; the benchmark measures the fused path")

    print("building the HF model ...", flush=True)
    race(hf_model(0, args.attn, args.layers), "Llama", args, target="target ≥ 1.3× (issue 21)", check=every_layer_fused)


if __name__ == "__main__":
    main()
