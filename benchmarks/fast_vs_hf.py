"""fast/ against Hugging Face's GPT-2 (PyTorch, CPU, eager — no torch.compile) on the same
random gpt2-small weights, float32, B = 4, T = 256.

The weights: a randomly initialised ``GPT2LMHeadModel`` (its biases and layer-norm parameters
perturbed too, so every parameter matters) is saved with ``save_pretrained`` and read back by
``gptspec.checkpoint.load``, so fast/ runs exactly HF's float32 values. PyTorch gets as many
threads as numpy's OpenBLAS uses (asked of OpenBLAS; 2 on the project machine), runs under
``torch.inference_mode()`` and ``use_cache=False`` (``fast.forward`` keeps no KV cache either), with
HF's default attention (``sdpa``) unless ``--attn eager``.
The two are timed round-robin (HF, fast, HF, fast, ...) after a warm-up; the script prints
both medians, the speed ratio HF time ÷ fast time (> 1 means fast/ is faster), and the largest
|difference| of the logits.

    python benchmarks/fast_vs_hf.py [--batch 4] [--tokens 256] [--repeat 5] [--attn sdpa]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from common import blas_threads, interleaved, load_average, machine, median
from transformers import GPT2Config, GPT2LMHeadModel

import fast
from gptspec.checkpoint import load


def hf_model(seed: int, attn: str) -> GPT2LMHeadModel:
    """gpt2-small with random weights, every parameter (biases, layer norms too) non-trivial."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(attn_implementation=attn))  # type: ignore[call-arg]
    assert model.config._attn_implementation == attn
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn_like(p))
    model.eval()  # type: ignore[no-untyped-call]
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="sequences per batch B (default 4)")
    parser.add_argument("--tokens", type=int, default=256, help="sequence length T (default 256)")
    parser.add_argument("--repeat", type=int, default=5, help="timed forwards of each, round-robin; medians reported (default 5)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="HF attention implementation (default sdpa, HF's default)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: as many as numpy's OpenBLAS uses)")
    args = parser.parse_args()
    threads = args.threads or blas_threads()
    torch.set_num_threads(threads)
    print(machine())
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads (numpy's OpenBLAS: {blas_threads()})", flush=True)

    print("building the HF model and reading its weights into gptspec ...", flush=True)
    model = hf_model(0, args.attn)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        arch, theta = load(tmp)
    prog = fast.compile(arch, theta, dtype="float32")
    ids = np.random.default_rng(0).integers(0, arch.dim("n_vocab"), size=(args.batch, args.tokens))
    ids_t = torch.from_numpy(ids)

    def run_hf() -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(model(ids_t, use_cache=False).logits.numpy())  # fast.forward keeps no cache either

    def run_fast() -> np.ndarray:
        return prog.forward(ids)

    diff = float(np.abs(run_hf() - run_fast()).max())
    scale = float(np.abs(run_hf()).max())
    print(f"max |HF − fast| over the logits: {diff:.2e} (largest |logit| {scale:.2f})", flush=True)
    print(f"timing B={args.batch} T={args.tokens}, {args.repeat} rounds ...", flush=True)
    times = interleaved({"HF": run_hf, "fast": run_fast}, args.repeat, label="B×T forward")
    t_hf, t_fast = median(times["HF"]), median(times["fast"])
    per_round = [h / f for h, f in zip(times["HF"], times["fast"])]
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"HF GPT-2 ({args.attn}, {threads} torch threads): median {t_hf:.3f} s")
    print(f"fast/ float32:                    median {t_fast:.3f} s")
    print(f"speed ratio HF ÷ fast = {t_hf / t_fast:.2f}×  (per-round ratios: {', '.join(f'{r:.2f}' for r in per_round)}; "
          f"target ≥ 1.0×, stretch ≥ 1.25×)")
    print(f"max |Δ logits| = {diff:.2e}")


if __name__ == "__main__":
    main()
