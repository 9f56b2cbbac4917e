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

    python benchmarks/fast_vs_hf_llama.py [--batch 4] [--tokens 256] [--repeat 5] [--attn sdpa]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from common import blas_threads, interleaved, load_average, machine, median
from transformers import LlamaConfig, LlamaForCausalLM

import fast
from gptspec.checkpoint import load


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="sequences per batch B (default 4)")
    parser.add_argument("--tokens", type=int, default=256, help="sequence length T (default 256)")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="timed forwards of each, round-robin; medians reported (default 5)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="HF attention implementation (default sdpa, HF's default)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: as many as numpy's OpenBLAS uses)")
    args = parser.parse_args()
    threads = args.threads or blas_threads()
    torch.set_num_threads(threads)
    print(machine())
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads (numpy's OpenBLAS: {blas_threads()})", flush=True)

    print("building the HF model and reading its weights into gptspec ...", flush=True)
    model = hf_model(0, args.attn, args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        arch, theta = load(tmp)
    prog = fast.compile(arch, theta, dtype="float32")
    fused = [step.path for step in prog.steps if step.plan is not None]
    if len(fused) != args.layers:
        raise SystemExit(f"fast/ fused {len(fused)} of {args.layers} attention layers; the benchmark measures the fused path")
    ids = np.random.default_rng(0).integers(0, arch.dim("n_vocab"), size=(args.batch, args.tokens))
    ids_t = torch.from_numpy(ids)

    def run_hf() -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(model(ids_t, use_cache=False).logits.numpy())

    def run_fast() -> np.ndarray:
        return prog.forward(ids)

    want, got = run_hf(), run_fast()
    diff, scale = float(np.abs(want - got).max()), float(np.abs(want).max())
    print(f"max |HF − fast| over the logits: {diff:.2e} (largest |logit| {scale:.2f})", flush=True)
    print(f"timing B={args.batch} T={args.tokens}, {args.repeat} rounds ...", flush=True)
    times = interleaved({"HF": run_hf, "fast": run_fast}, args.repeat, label="B×T forward")
    t_hf, t_fast = median(times["HF"]), median(times["fast"])
    per_round = [h / f for h, f in zip(times["HF"], times["fast"])]
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"HF Llama ({args.attn}, {threads} torch threads): median {t_hf:.3f} s")
    print(f"fast/ float32:                     median {t_fast:.3f} s")
    print(f"speed ratio HF ÷ fast = {t_hf / t_fast:.2f}×  (per-round ratios: {', '.join(f'{r:.2f}' for r in per_round)}; target ≥ 1.0×)")
    print(f"max |Δ logits| = {diff:.2e}")


if __name__ == "__main__":
    main()
