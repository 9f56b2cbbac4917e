"""fast/'s GELU (erf) below float64, against the kernel it replaced: CPU seconds per call on the
(B·T, d_mlp) = (1024, 2816) float32 activations of the GPT-NeoX race (benchmarks/fast_vs_hf_neox_gemma.py),
and each one's largest error in float32 ulps against math.erfc in float64.

"Before" is the kernel of commit 26d4e07, rebuilt here to be timed beside the current one: ½x·erfc(−x/√2)
with erfc from a degree-16 fit of log(erfc(z)(1 + z/2)) + z² and two selects (the sign of z, z > 12), on
chunks of 2¹⁸ elements. "After" is ``fast.kernels.activations.gelu_erf``: max(x, 0) − |x|·½erfc(|x|/√2),
no select, a degree-12 fit, chunks of 2¹⁵. Both compute in float64 and round once to float32. CPU time
(``time.thread_time``) of interleaved calls, so other jobs on the machine change the figures little.

    python benchmarks/gelu_erf.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
from common import load_average, machine

import fast.kernels.activations as act
from fast import parallel
from fast.kernels.table import by_rows
from spec.ops import GeluErf


def before_kernel() -> object:
    """The replaced kernel (commit 26d4e07), rebuilt from its definition."""
    z = np.concatenate([np.linspace(0.0, 3.0, 1500), np.linspace(3.0, 12.0, 1500)[1:]])
    t = 1.0 / (1.0 + z / 2)
    fit = np.polynomial.Chebyshev.fit(t, np.log(act._erfc(z) / t) + z * z, 16, domain=[act._T_LOW, 1.0])
    coef = fit.convert(kind=np.polynomial.Polynomial, domain=[act._T_LOW, 1.0], window=[-1.0, 1.0]).coef

    def erfc_fitted(z: np.ndarray) -> np.ndarray:
        inside = np.minimum(z, 12.0)
        t = 1.0 / (1.0 + inside / 2)
        u = (2.0 * t - (1.0 + act._T_LOW)) / (1.0 - act._T_LOW)
        g = np.full_like(u, coef[-1])
        for c in coef[-2::-1]:
            g *= u
            g += c
        g -= inside * inside
        np.exp(g, out=g)
        g *= t
        out: np.ndarray = np.where(z > 12.0, 0.0, g)
        return out

    def rows(x: np.ndarray, y: np.ndarray) -> None:
        x64 = x.astype(np.float64)
        z = -x64 / math.sqrt(2.0)
        e = erfc_fitted(np.abs(z))
        y[...] = 0.5 * x64 * np.where(z < 0, 2.0 - e, e)

    return lambda x: by_rows(rows, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="interleaved calls of each (default 15)")
    args = parser.parse_args()
    parallel.set_threads(1)  # CPU time of the calling thread: all of a call's work on it (fast/parallel.py)
    print(machine())
    x = np.random.default_rng(0).normal(size=(1024, 2816)).astype(np.float32)
    op = GeluErf(x.shape[1])
    kernels = {"before": before_kernel(), "after": lambda x: act.gelu_erf(op, None, x)}
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * act._erfc(-x64 / math.sqrt(2.0))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for name, kernel in kernels.items():
        err = float(np.max(np.abs(kernel(x).astype(np.float64) - exact) / ulp))  # type: ignore[operator]
        print(f"{name}: largest error {err:.3f} ulp of float32 against math.erfc")
    for _ in range(args.repeat):
        for name, kernel in kernels.items():
            start = time.thread_time()
            kernel(x)  # type: ignore[operator]
            times[name].append(time.thread_time() - start)
    b, a = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"CPU per call on {x.shape} float32, median of {args.repeat}: before {b * 1e3:.1f} ms, after {a * 1e3:.1f} ms "
          f"({a / x.size * 1e9:.1f} ns per element): {b / a:.2f}× faster")


if __name__ == "__main__":
    main()
