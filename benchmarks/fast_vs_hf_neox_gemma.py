"""fast/ against Hugging Face's GPT-NeoX, Gemma and Gemma 2 (PyTorch, CPU, eager — no
torch.compile) on the same random weights, float32, at one shape for the three: d_model 1024, 8
layers, 16 heads of 64 (Gemma: 4 key/value heads; Gemma 2: its alternating window of 128 and both
soft caps, with eager attention, which Gemma 2 needs for the cap), d_mlp 2816, vocabulary 32000,
B = 4, T = 256. GPT-NeoX rotates a quarter of each head (Pythia's rotary_pct) and adds its
branches in parallel.

As benchmarks/fast_vs_hf_llama.py: the HF model is saved and read back through the layouts
(hf-neox, hf-gemma, hf-gemma2), every layer's attention must take fast/'s fused path, both are
timed round-robin after a warm-up, and the script prints the medians, the ratio HF ÷ fast and
the largest |difference| of the logits.

    python benchmarks/fast_vs_hf_neox_gemma.py --family neox|gemma|gemma2 [--batch 4] [--tokens 256] [--repeat 5] [--clock wall|cpu]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import torch
from hf_race import arguments, race
from transformers import Gemma2Config, Gemma2ForCausalLM, GemmaConfig, GemmaForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM

import fast

SHAPE = {"vocab_size": 32000, "hidden_size": 1024, "intermediate_size": 2816, "num_attention_heads": 16, "max_position_embeddings": 2048}


def hf_model(family: str, seed: int, attn: str, layers: int) -> Any:
    """The benchmark's model with random weights, norm gains perturbed."""
    torch.manual_seed(seed)
    if family == "neox":
        config: Any = GPTNeoXConfig(**SHAPE, num_hidden_layers=layers, rotary_pct=0.25)
        model: Any = GPTNeoXForCausalLM
    elif family == "gemma":
        config, model = GemmaConfig(**SHAPE, num_hidden_layers=layers, num_key_value_heads=4, head_dim=64), GemmaForCausalLM
    else:
        config = Gemma2Config(**SHAPE, num_hidden_layers=layers, num_key_value_heads=4, head_dim=64, sliding_window=128,
                              query_pre_attn_scalar=64)
        model, attn = Gemma2ForCausalLM, "eager"
    config._attn_implementation = attn
    built = model(config)
    with torch.no_grad():
        for name, p in built.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_((1.0 if family == "neox" else 0.0) + 0.1 * torch.randn_like(p))
    built.eval()
    return built


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="neox", choices=["neox", "gemma", "gemma2"], help="which family (default neox)")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (default 8)")
    args = parser.parse_args()

    def every_layer_fused(prog: fast.Program) -> None:
        fused = [step.path for step in prog.steps if step.plan is not None]
        if len(fused) != args.layers:
            raise SystemExit(f"fast/ fused {len(fused)} of {args.layers} attention layers; the benchmark measures the fused path")

    if args.family == "gemma2":
        args.attn = "eager"  # Gemma 2's score cap: eager attention only (its sdpa path cannot cap)
    print(f"building the HF {args.family} model ...", flush=True)
    race(hf_model(args.family, 0, args.attn, args.layers), args.family, args, target="target ≥ 1.0×", check=every_layer_fused)


if __name__ == "__main__":
    main()
