"""fast/'s element-wise work in numpy against numexpr (a multi-threaded expression evaluator), at
gptspec-small's sizes (B·T = 1024 rows, float32): GELU (tanh) on (1024, 3072), layer norm on
(1024, 768), and attention's exp of a (4, 12, 64, 64) tile of shifted scores — the non-GEMM
parts of a forward (docs/performance.md, "Element-wise work: numpy or numexpr").

    python benchmarks/elementwise.py --repeat 20

Each competitor is timed round-robin after a warm-up; numexpr with 1 and 2 threads. The outputs
are compared first (largest relative difference), so a time is never of a wrong result.
"""

from __future__ import annotations

import argparse
import math

import numexpr as ne
import numpy as np
from common import interleaved, machine, median


class GeluOp:
    cubic = 0.044715


class NormOp:
    eps = 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from fast.kernels.activations import gelu_tanh
    from fast.kernels.layer_norm import layer_norm

    print(f"machine: {machine()}; numexpr {ne.__version__} (VML: {ne.use_vml})")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024, 3072)).astype(np.float32)
    h = rng.standard_normal((1024, 768)).astype(np.float32)
    gamma, beta = (1 + 0.1 * rng.standard_normal(768)).astype(np.float32), (0.1 * rng.standard_normal(768)).astype(np.float32)
    s = (4 * rng.standard_normal((4, 12, 64, 64))).astype(np.float32)
    m = s.max(axis=-1, keepdims=True)
    c = math.sqrt(2 / math.pi)
    a, b = np.float32(2 * c), np.float32(2 * c * GeluOp.cubic)

    def ne_gelu() -> np.ndarray:
        # x·σ(z) = x / (1 + e^(−z)), z = x(a + b x²): numexpr's cheapest form, one exp (for x ≪ 0
        # e^(−z) overflows to ∞ and the result is −0 where fast/'s stable form gives ~−1e-30)
        out: np.ndarray = ne.evaluate("x / (1 + exp(-x * (a + b*x*x)))", local_dict={"x": x, "a": a, "b": b})
        return out

    def ne_norm() -> np.ndarray:
        mu = h.mean(axis=-1, keepdims=True)
        d = ne.evaluate("h - mu", local_dict={"h": h, "mu": mu})
        var = np.vecdot(d, d)[:, None] / np.float32(768)
        out: np.ndarray = ne.evaluate("d / sqrt(var + eps) * gamma + beta",
                                      local_dict={"d": d, "var": var, "eps": np.float32(1e-5), "gamma": gamma, "beta": beta})
        return out

    def np_exp() -> np.ndarray:
        y = s - m
        return np.exp(y, out=y)

    def ne_exp() -> np.ndarray:
        out: np.ndarray = ne.evaluate("exp(s - m)", local_dict={"s": s, "m": m})
        return out

    cases = {
        "GELU (tanh), 1024 × 3072": (lambda: gelu_tanh(GeluOp, None, x), ne_gelu),
        "layer norm, 1024 × 768": (lambda: layer_norm(NormOp, None, h, gamma, beta), ne_norm),
        "attention tile exp, 4 × 12 × 64 × 64": (np_exp, ne_exp),
    }
    print(r"| work | numpy (fast/) | numexpr, 1 thread | numexpr, 2 threads | numpy ÷ best numexpr | max \|difference\| ÷ max \|value\| |")
    print("|---|---|---|---|---|---|")
    for name, (with_numpy, with_numexpr) in cases.items():
        want, got = with_numpy(), with_numexpr()
        diff = float(np.max(np.abs(want - got)) / np.max(np.abs(want)))

        def threads(n: int, fn=with_numexpr):  # noqa: ANN001, ANN202
            def run() -> object:
                ne.set_num_threads(n)
                return fn()
            return run

        times = interleaved({"numpy": with_numpy, "ne1": threads(1), "ne2": threads(2)}, args.repeat, warmup=2)
        t = {k: median(v) for k, v in times.items()}
        print(f"| {name} | {1e3 * t['numpy']:.2f} ms | {1e3 * t['ne1']:.2f} ms | {1e3 * t['ne2']:.2f} ms | "
              f"{t['numpy'] / min(t['ne1'], t['ne2']):.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
