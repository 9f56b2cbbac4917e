"""What benchmarks/fast_vs_hf.py and fast_vs_hf_llama.py share: their command-line options, the
torch thread count, and the race itself — a Hugging Face model saved with ``save_pretrained``,
read back by ``gptspec.checkpoint.load`` (so fast/ runs exactly HF's float32 values), both run on
the same random ids with no KV cache, timed round-robin after a warm-up, the medians, the speed
ratio HF ÷ fast and the largest |difference| of the logits printed.

Not a benchmark itself; the two scripts import it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from common import blas_threads, interleaved, load_average, machine, median

import fast
from gptspec.checkpoint import load


def arguments(description: str) -> argparse.ArgumentParser:
    """The options both races take (a script adds its own before parsing)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch", type=int, default=4, help="sequences per batch B (default 4)")
    parser.add_argument("--tokens", type=int, default=256, help="sequence length T (default 256)")
    parser.add_argument("--repeat", type=int, default=5, help="timed forwards of each, round-robin; medians reported (default 5)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="HF attention implementation (default sdpa, HF's default)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: as many as numpy's OpenBLAS uses)")
    return parser


def race(model: Any, name: str, args: argparse.Namespace, target: str, check: Callable[[fast.Program], None] | None = None) -> None:
    """Time ``model`` (an HF causal LM in eval mode) against fast/ on its own weights and print
    the result; ``check`` may refuse the compiled program (e.g. an attention path not taken)."""
    threads = args.threads or blas_threads()
    torch.set_num_threads(threads)
    print(machine())
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads (numpy's OpenBLAS: {blas_threads()})", flush=True)
    print("reading the HF model's weights into gptspec ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        arch, theta = load(tmp)
    prog = fast.compile(arch, theta, dtype="float32")
    if check is not None:
        check(prog)
    ids = np.random.default_rng(0).integers(0, arch.dim("n_vocab"), size=(args.batch, args.tokens))
    ids_t = torch.from_numpy(ids)

    def run_hf() -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(model(ids_t, use_cache=False).logits.numpy())  # fast.forward keeps no cache either

    def run_fast() -> np.ndarray:
        return np.asarray(prog.forward(ids))

    want, got = run_hf(), run_fast()
    diff, scale = float(np.abs(want - got).max()), float(np.abs(want).max())
    print(f"max |HF − fast| over the logits: {diff:.2e} (largest |logit| {scale:.2f})", flush=True)
    print(f"timing B={args.batch} T={args.tokens}, {args.repeat} rounds ...", flush=True)
    times = interleaved({"HF": run_hf, "fast": run_fast}, args.repeat, label="B×T forward")
    t_hf, t_fast = median(times["HF"]), median(times["fast"])
    per_round = [h / f for h, f in zip(times["HF"], times["fast"], strict=True)]
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"{f'HF {name} ({args.attn}, {threads} torch threads):':40} median {t_hf:.3f} s")
    print(f"{'fast/ float32:':40} median {t_fast:.3f} s")
    print(f"speed ratio HF ÷ fast = {t_hf / t_fast:.2f}×  (per-round ratios: {', '.join(f'{r:.2f}' for r in per_round)}; {target})")
    print(f"max |Δ logits| = {diff:.2e}")
