"""fast/ on one thread against fast/ on its default threads (fast/parallel.py): the row-wise
kernels alone, then whole forwards, wall clock, interleaved calls in one process. The results are
bit-identical (tests/test_fast_parallel.py); this measures only what the threads buy.

Shapes: GPT-2 small (12 layers, d 768, GELU tanh), and the GPT-NeoX shape of
benchmarks/fast_vs_hf_neox_gemma.py (8 layers, d 1024, d_mlp 2816, exact GELU, partial rotary),
B × T = 4 × 256, float32, random θ.

    python benchmarks/fast_threads.py [--repeat 7] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import interleaved, load_average, machine, median

import fast
from fast import parallel
from fast.kernels.activations import gelu_erf, gelu_tanh
from fast.kernels.layer_norm import layer_norm
from spec.architectures.neox import NeoXConfig
from spec.architectures.registry import build, preset
from spec.ops import GeluErf, GeluTanh, LayerNorm
from spec.theta import random_theta


def at(threads: int, fn: object) -> object:
    def run() -> object:
        parallel.set_threads(threads)
        return fn()  # type: ignore[operator]

    return run


def race(label: str, fn: object, threads: int, repeat: int) -> None:
    times = interleaved({"1 thread": at(1, fn), f"{threads} threads": at(threads, fn)}, repeat)
    one, many = median(times["1 thread"]), median(times[f"{threads} threads"])
    rounds = ", ".join(f"{a / b:.2f}" for a, b in zip(times["1 thread"], times[f"{threads} threads"], strict=True))
    print(f"  {label:44} 1 thread {one * 1e3:8.1f} ms   {threads} threads {many * 1e3:8.1f} ms   ratio {one / many:.2f}×  (per round {rounds})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved calls of each (default 7)")
    parser.add_argument("--threads", type=int, default=0, help="threads to compare with one (default: fast/'s default)")
    args = parser.parse_args()
    threads = args.threads or parallel.default_threads()
    if threads < 2:
        raise SystemExit(f"threads={threads}, but expected at least 2 to compare with one; pass --threads N or unset GPTSPEC_THREADS")
    print(machine())
    rng = np.random.default_rng(0)
    print("row-wise kernels, (B·T, d) = (1024, ·) float32:")
    x = rng.normal(size=(1024, 2816)).astype(np.float32)
    race("GELU (erf), d 2816", lambda: gelu_erf(GeluErf(2816), None, x), threads, args.repeat)  # type: ignore[arg-type]
    x3 = rng.normal(size=(1024, 3072)).astype(np.float32)
    race("GELU (tanh), d 3072", lambda: gelu_tanh(GeluTanh(3072), None, x3), threads, args.repeat)  # type: ignore[arg-type]
    x7, g, b = rng.normal(size=(1024, 768)).astype(np.float32), np.ones(768, np.float32), np.zeros(768, np.float32)
    race("layer norm, d 768", lambda: layer_norm(LayerNorm(768), None, x7, g, b), threads, args.repeat)  # type: ignore[arg-type]
    print("whole forwards, B × T = 4 × 256 float32:")
    for name, config in (("GPT-2 small", preset("gpt2-small").config),
                         ("GPT-NeoX shape", NeoXConfig(n_vocab=32000, n_ctx=2048, d_model=1024, n_layers=8, n_heads=16, d_mlp=2816))):
        arch = build(config)
        program = fast.compile(arch, random_theta(arch, seed=0, std=0.02), "float32")
        ids = rng.integers(0, arch.dim("n_vocab"), size=(4, 256))
        race(name, lambda program=program, ids=ids: program.forward(ids), threads, args.repeat)
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")


if __name__ == "__main__":
    main()
