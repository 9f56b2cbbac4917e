"""fast/ against Hugging Face's OLMo 2 and Phi-3 (PyTorch, CPU, eager — no torch.compile) on the
same random weights, float32, at the shape of benchmarks/fast_vs_hf_neox_gemma.py: d_model 1024,
8 layers, 16 heads of 64 with 4 key/value heads, d_mlp 2816, vocabulary 32000, B = 4, T = 256.
OLMo 2 normalises Q and K over all heads at once and each sublayer's output; Phi-3 rotates 3/4 of
each head (Phi-4 mini's factor) and fuses qkv_proj and gate_up_proj.

As benchmarks/fast_vs_hf_llama.py: the HF model is saved and read back through the layouts
(hf-olmo2, hf-phi3), every layer's attention must take fast/'s fused path, both are timed
round-robin after a warm-up, and the script prints the medians, the ratio HF ÷ fast and the
largest |difference| of the logits.

    python benchmarks/fast_vs_hf_olmo2_phi3.py --family olmo2|phi3 [--batch 4] [--tokens 256] [--repeat 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import torch
from hf_race import arguments, race
from transformers import Olmo2Config, Olmo2ForCausalLM, Phi3Config, Phi3ForCausalLM

import fast

SHAPE = {"vocab_size": 32000, "hidden_size": 1024, "intermediate_size": 2816, "num_attention_heads": 16, "num_key_value_heads": 4,
         "max_position_embeddings": 2048, "pad_token_id": 0}


def hf_model(family: str, seed: int, attn: str, layers: int) -> Any:
    """The benchmark's model with random weights, norm gains perturbed around 1."""
    torch.manual_seed(seed)
    if family == "olmo2":
        config: Any = Olmo2Config(**SHAPE, num_hidden_layers=layers)
        model: Any = Olmo2ForCausalLM
    else:
        config, model = Phi3Config(**SHAPE, num_hidden_layers=layers, partial_rotary_factor=0.75), Phi3ForCausalLM
    config._attn_implementation = attn
    built = model(config)
    with torch.no_grad():
        for name, p in built.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    built.eval()
    return built


def main() -> None:
    parser = arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="olmo2", choices=["olmo2", "phi3"], help="which family (default olmo2)")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (default 8)")
    args = parser.parse_args()

    def every_layer_fused(prog: fast.Program) -> None:
        fused = [step.path for step in prog.steps if step.plan is not None]
        if len(fused) != args.layers:
            raise SystemExit(f"fast/ fused {len(fused)} of {args.layers} attention layers; the benchmark measures the fused path")

    print(f"building the HF {args.family} model ...", flush=True)
    race(hf_model(args.family, 0, args.attn, args.layers), args.family, args, target="target ≥ 1.0×", check=every_layer_fused)


if __name__ == "__main__":
    main()
