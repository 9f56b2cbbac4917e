"""fast/'s batched backward on a whole GPT-2-shaped model: peak memory ÷ the forward's peak, and
speed against PyTorch autograd on Hugging Face GPT-2 holding the same θ, in one run (float64 on
both sides: fast/backward.py differentiates in float64).

The model: n_layers 4, d_model 256, 4 heads, vocab 2048, batch B × T = 4 × 256 random ids,
∂L/∂logits random. Memory (tracemalloc, numpy's buffers): the peak of ``fast.forward`` (the
compiled program, float64) and of ``fast.backward.backward`` (its own forward keeping every value,
then the reverse pass), with heads fused and op by op. Speed: the median wall time of a
forward + backward — ours, and torch's ``logits.backward(g)`` after HF's forward — interleaved.

    python benchmarks/backward_model.py [--layers 4] [--d-model 256] [--tokens 256] [--batch 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable

import numpy as np
import torch
from common import interleaved, machine, median
from transformers import GPT2Config, GPT2LMHeadModel

import fast
from fast.backward import backward
from gptspec.checkpoint import export_state_dict, native_config
from spec import GPTConfig, build_gpt
from spec.theta import random_theta

MiB = 2**20


def peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    fn()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    arch = build_gpt(GPTConfig(n_vocab=args.vocab, n_ctx=args.tokens, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads))
    theta = random_theta(arch, seed=0, std=0.05)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.vocab, (args.batch, args.tokens))
    g = rng.standard_normal((args.batch, args.tokens, args.vocab)) / (args.batch * args.tokens)
    program = fast.compile(arch, theta, "float64")

    forward_peak = peak(lambda: program.forward(ids))
    fused_peak = peak(lambda: backward(arch, theta, ids, g, fused=True))
    op_peak = peak(lambda: backward(arch, theta, ids, g, fused=False))
    print(f"{arch.name}: n_layers {args.layers}, d_model {args.d_model}, heads {args.heads}, vocab {args.vocab}, B × T = {args.batch} × {args.tokens}, float64")
    print(f"  fast forward peak {forward_peak / MiB:.1f} MiB; backward peak, heads fused {fused_peak / MiB:.1f} MiB "
          f"(÷ forward {fused_peak / forward_peak:.2f}), op by op {op_peak / MiB:.1f} MiB (÷ forward {op_peak / forward_peak:.2f})")

    state = export_state_dict(arch, theta, "hf-gpt2")
    config = {**native_config(arch, "hf-gpt2"), "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    model = GPT2LMHeadModel(GPT2Config(**config)).double().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    t_ids, t_g = torch.from_numpy(ids), torch.from_numpy(g)

    def torch_step() -> None:
        model.zero_grad(set_to_none=True)
        model(t_ids).logits.backward(t_g)

    def ours_step() -> None:
        backward(arch, theta, ids, g, fused=True)

    times = interleaved({"ours": ours_step, "torch": torch_step}, repeat=args.repeat, warmup=1)
    ours, theirs = median(times["ours"]), median(times["torch"])
    print(f"  forward + backward: fast/ {ours:.3f} s, torch autograd (HF GPT-2) {theirs:.3f} s, ratio ours/torch {ours / theirs:.2f} "
          f"(torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
