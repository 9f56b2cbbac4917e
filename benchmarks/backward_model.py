"""fast/'s batched backward on a whole GPT-2-shaped model, through ``fast.Program.value_and_grad``:
peak memory ÷ the forward's peak, and speed against PyTorch autograd on Hugging Face GPT-2 holding
the same θ, in one run, in the same dtype on both sides.

The model: n_layers 4, d_model 256, 4 heads, vocab 2048, batch B × T = 4 × 256 random ids (with
``--padded``, the last quarter of every other row padded). The loss on both sides is the token-mean
next-token cross-entropy (spec.objective.Objective(); on the torch side ``cross_entropy`` of the
shifted labels in the model's dtype, ignore index −100 at padded positions — HF's own ``labels=``
loss would upcast the logits to float32). A sanity line prints |L_fast − L_torch| and the largest gradient difference
÷ the gradient's scale (torch's gradients mapped to Θ names by the hf-gpt2 layout), so the two
sides are seen to compute the same thing.

Memory (tracemalloc, numpy's buffers): the peak of ``program.forward`` and of
``program.value_and_grad`` (its own forward keeping every value, the objective, then the reverse
pass), with heads fused and op by op. Speed: the median wall time of forward + loss + backward —
ours, and HF's forward, the loss, then ``loss.backward()`` — interleaved.

    python benchmarks/backward_model.py [--dtype float32|float64] [--layers 4] [--d-model 256] [--tokens 256] [--batch 4] [--repeat 3] [--padded]
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
from gptspec.checkpoint import export_state_dict, import_state_dict, native_config
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
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--padded", action="store_true", help="pad the last quarter of every other row")
    args = parser.parse_args()
    print(machine())
    arch = build_gpt(GPTConfig(n_vocab=args.vocab, n_ctx=args.tokens, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads))
    theta = random_theta(arch, seed=0, std=0.05)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.vocab, (args.batch, args.tokens))
    valid = np.ones(ids.shape, dtype=bool)
    if args.padded:
        valid[::2, args.tokens - args.tokens // 4 :] = False  # right padding
    program = fast.compile(arch, theta, args.dtype)

    forward_peak = peak(lambda: program.forward(ids, valid))
    fused_peak = peak(lambda: program.value_and_grad(ids, valid))
    op_peak = peak(lambda: program.value_and_grad(ids, valid, fused=False))
    print(f"{arch.name}: n_layers {args.layers}, d_model {args.d_model}, heads {args.heads}, vocab {args.vocab}, "
          f"B × T = {args.batch} × {args.tokens}{' (padded)' if args.padded else ''}, {args.dtype}")
    print(f"  fast forward peak {forward_peak / MiB:.1f} MiB; value_and_grad peak, heads fused {fused_peak / MiB:.1f} MiB "
          f"(÷ forward {fused_peak / forward_peak:.2f}), op by op {op_peak / MiB:.1f} MiB (÷ forward {op_peak / forward_peak:.2f})")

    dtype = getattr(torch, args.dtype)
    state = export_state_dict(arch, theta, "hf-gpt2")
    config = {**native_config(arch, "hf-gpt2"), "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "bos_token_id": None, "eos_token_id": None}
    model = GPT2LMHeadModel(GPT2Config(**config)).to(dtype).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(valid.astype(np.int64))
    t_labels = torch.from_numpy(np.where(valid, ids, -100))
    position_ids = torch.from_numpy(np.maximum(np.cumsum(valid, axis=1) - 1, 0))

    def torch_step() -> float:
        model.zero_grad(set_to_none=True)
        logits = model(t_ids, attention_mask=t_mask, position_ids=position_ids).logits
        # the token-mean cross-entropy of the shifted labels, in the model's dtype (HF's labels= loss upcasts to float32)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, args.vocab), t_labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        return float(loss.detach())

    def ours_step() -> float:
        return program.value_and_grad(ids, valid).loss

    # the same function on both sides: loss and gradients (torch's mapped to Θ names through the layout)
    ours = program.value_and_grad(ids, valid)
    torch_loss = torch_step()
    grads = {name.removeprefix("transformer."): p.grad.double().numpy() for name, p in model.named_parameters() if p.grad is not None}
    _, theirs = import_state_dict(arch.config, grads, "hf-gpt2")
    scale = max(float(np.max(np.abs(g))) for g in ours.theta.values())
    worst = max(float(np.max(np.abs(ours.theta[n].astype(np.float64) - np.asarray(theirs[n])))) for n in ours.theta)
    print(f"  same function: loss fast/ {ours.loss:.7f}, torch {torch_loss:.7f}; max|∂L/∂θ fast − torch| ÷ max|∂L/∂θ| = {worst / scale:.1e}")

    times = interleaved({"ours": ours_step, "torch": torch_step}, repeat=args.repeat, warmup=1)
    t_ours, t_torch = median(times["ours"]), median(times["torch"])
    print(f"  forward + loss + backward: fast/ {t_ours:.3f} s, torch autograd (HF GPT-2) {t_torch:.3f} s, "
          f"ratio ours/torch {t_ours / t_torch:.2f} (torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
