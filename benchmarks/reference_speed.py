"""How long the literal reference takes: build, random θ, and forward, on tiny and gpt2-small.

Prints times and one ratio measured in the same run: the reference's forward time divided by
the time the machine's float64 matmul would need for the model's 2·N·T multiply-adds (N the
parameter count) — how far the literal loops are from the machine's dense rate.

    python benchmarks/reference_speed.py [--tokens 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from reference import forward
from spec import build_gpt, count, preset
from spec.theta import random_theta


def matmul_rate(n: int = 1024, repeat: int = 3) -> float:
    """float64 multiply-add FLOP/s of numpy's matmul on this machine (best of ``repeat``)."""
    a, b = np.random.default_rng(0).normal(size=(2, n, n))
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=16, help="sequence length T (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="forward passes timed, median reported")
    args = parser.parse_args()
    rate = matmul_rate()
    print(f"numpy float64 matmul: {rate / 1e9:.1f} GFLOP/s")
    for name in ("tiny", "gpt2-small"):
        t0 = time.perf_counter()
        arch = build_gpt(preset(name).config)
        t1 = time.perf_counter()
        theta = random_theta(arch, seed=0)
        t2 = time.perf_counter()
        ids = np.arange(args.tokens) % arch.dim("n_vocab")
        times = [_timed(lambda: forward(arch, theta, ids)) for _ in range(args.repeat)]
        fwd = statistics.median(times)
        ideal = 2 * count(arch) * args.tokens / rate
        print(
            f"{name:<11} T={args.tokens:<4} build {t1 - t0:6.2f} s   random θ {t2 - t1:6.2f} s   "
            f"forward {fwd:7.3f} s (median of {args.repeat})   forward / dense-matmul ideal = {fwd / ideal:,.0f}×"
        )


if __name__ == "__main__":
    main()
