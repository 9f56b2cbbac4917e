"""What benchmarks/fast_vs_hf.py and fast_vs_hf_llama.py share: their command-line options, the
torch thread count, and the race itself — a Hugging Face model saved with ``save_pretrained``,
read back by ``gptspec.checkpoint.load`` (so fast/ runs exactly HF's float32 values), both run on
the same random ids with no KV cache, timed round-robin after a warm-up, the medians, the speed
ratio HF ÷ fast and the largest |difference| of the logits printed.

Timed in the same rounds: the forward's dense GEMMs alone (:func:`dense_gemms`: every affine map's
and every fused attention's QKV and output products, at their shapes, numpy float32 on random
inputs). Their time is a floor for any implementation that runs those products through BLAS on
this machine; HF's time ÷ that floor is the ratio HF ÷ fast that fast/ would reach if everything
else (attention's scores, activations, norms, copies) took no time at all. Last, one more fast/
forward is split by kernel kind (benchmarks/flop_rate.py's ``breakdown``).

``--clock cpu`` (with one thread each: ``OPENBLAS_NUM_THREADS=1 python ... --threads 1 --clock cpu``)
times the process's CPU seconds instead of the wall clock: the work each side does, which other
jobs sharing the machine change far less than they change a 2-thread wall-clock time.

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
from flop_rate import breakdown

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
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="wall (default) or cpu: the process's CPU seconds, for one thread each (OPENBLAS_NUM_THREADS=1 "
                             "--threads 1), which other jobs on the machine barely change")
    return parser


def dense_gemms(prog: fast.Program, rows: int) -> tuple[list[tuple[int, int, int]], Callable[[], object]]:
    """The (m, k, n) shapes of the forward's dense products at ``rows`` = B·T rows — each affine
    step's x W, each fused attention's QKV and W_O — and a function running them all with numpy
    in float32 (inputs drawn once)."""
    shapes: list[tuple[int, int, int]] = []
    for step in prog.steps:
        if step.weights is not None:
            shapes += [(rows, *step.weights.W_qkv.shape), (rows, *step.weights.W_O.shape)]
        elif step.op is not None and step.op.kind == "affine":
            shapes.append((rows, *step.params["W"].shape))
    rng = np.random.default_rng(0)
    operands = {shape: (rng.standard_normal(shape[:2], dtype=np.float32), rng.standard_normal(shape[1:], dtype=np.float32))
                for shape in set(shapes)}

    def run() -> None:
        for shape in shapes:
            a, b = operands[shape]
            a @ b

    return shapes, run


def race(model: Any, name: str, args: argparse.Namespace, target: str, check: Callable[[fast.Program], None] | None = None) -> None:
    """Time ``model`` (an HF causal LM in eval mode) against fast/ on its own weights and print
    the result; ``check`` may refuse the compiled program (e.g. an attention path not taken)."""
    threads = args.threads or blas_threads()
    if args.clock == "cpu" and (threads != 1 or blas_threads() != 1):
        raise SystemExit(f"--clock cpu with torch threads={threads} and numpy's OpenBLAS threads={blas_threads()}, but expected 1 and 1 "
                         "(a waiting thread's spinning counts as CPU time); run OPENBLAS_NUM_THREADS=1 python ... --threads 1 --clock cpu")
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
    shapes, gemms = dense_gemms(prog, args.batch * args.tokens)
    flops = sum(2 * m * k * n for m, k, n in shapes)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = interleaved({"HF": run_hf, "fast": run_fast, "GEMMs": gemms}, args.repeat, label=f"B×T forward ({args.clock} clock)", clock=clock)
    t_hf, t_fast, t_gemm = median(times["HF"]), median(times["fast"]), median(times["GEMMs"])
    per_round = [h / f for h, f in zip(times["HF"], times["fast"], strict=True)]
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"{f'HF {name} ({args.attn}, {threads} torch threads):':40} median {t_hf:.3f} s ({args.clock} clock)")
    print(f"{'fast/ float32:':40} median {t_fast:.3f} s")
    print(f"speed ratio HF ÷ fast = {t_hf / t_fast:.2f}×  (per-round ratios: {', '.join(f'{r:.2f}' for r in per_round)}; {target})")
    print(f"max |Δ logits| = {diff:.2e}")
    print(f"\nthe forward's {len(shapes)} dense GEMMs alone ({flops / 1e9:.1f} GFLOP, numpy float32): median {t_gemm:.3f} s = "
          f"{flops / t_gemm / 1e9:.1f} GFLOP/s; fast/ spends {1 - t_gemm / t_fast:.0%} of its forward outside them")
    print(f"vs matmul rate: HF ÷ (dense GEMMs alone) = {t_hf / t_gemm:.2f}×, the ratio reachable if nothing but those "
          f"GEMMs took time (per round: {', '.join(f'{h / g:.2f}' for h, g in zip(times['HF'], times['GEMMs'], strict=True))})")
    print("\none more fast/ forward, time per kernel kind (wall clock):")
    spent = breakdown(prog, ids)
    for kind, seconds in spent.items():
        print(f"  {kind:<52} {seconds * 1e3:8.1f} ms  {seconds / spent['total']:6.1%}")
