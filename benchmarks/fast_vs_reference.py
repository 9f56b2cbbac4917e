"""fast/ against the literal reference: the same forward, timed in one run, on tiny and
gpt2-small (random θ, seed 0, B = 1).

Prints, per model: the reference's median time, fast's median time in float64 (the
reference's dtype) and float32, the ratios reference ÷ fast, and the largest |difference| of
the logits (so the two compute the same function).

    python benchmarks/fast_vs_reference.py [--tokens 16] [--repeat 3] [--fast-repeat 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, median, timed

import fast
import reference
from spec import build_gpt, preset
from spec.theta import random_theta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=16, help="sequence length T (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="reference forwards timed per model, median reported (default 3)")
    parser.add_argument("--fast-repeat", type=int, default=20, help="fast forwards timed per model and dtype, median reported (default 20)")
    parser.add_argument("--models", nargs="+", default=["tiny", "gpt2-small"], help="presets to run (default: tiny gpt2-small)")
    args = parser.parse_args()
    print(machine())
    rows = []
    for name in args.models:
        print(f"{name}: building and drawing θ ...", flush=True)
        arch = build_gpt(preset(name).config)
        theta = random_theta(arch, seed=0)
        ids = np.random.default_rng(0).integers(0, arch.dim("n_vocab"), size=args.tokens)
        programs = {dtype: fast.compile(arch, theta, dtype=dtype) for dtype in ("float64", "float32")}
        print(f"{name}: reference forward x{args.repeat} ...", flush=True)
        want = reference.forward(arch, theta, ids)
        t_ref = median([timed(lambda: reference.forward(arch, theta, ids)) for _ in range(args.repeat)])
        result = {"model": name, "reference": t_ref}
        for dtype, prog in programs.items():
            got = prog.forward(ids[None, :])[0]
            t = median([timed(lambda: prog.forward(ids[None, :])) for _ in range(args.fast_repeat)])
            result[dtype] = t
            result[f"diff {dtype}"] = float(np.abs(got - want).max())
        rows.append(result)
        print(
            f"{name:<11} T={args.tokens}  reference {t_ref * 1e3:9.1f} ms   fast float64 {result['float64'] * 1e3:7.2f} ms "
            f"({t_ref / result['float64']:,.0f}× faster, max |Δ logits| {result['diff float64']:.1e})   "
            f"fast float32 {result['float32'] * 1e3:7.2f} ms ({t_ref / result['float32']:,.0f}× faster, "
            f"max |Δ logits| {result['diff float32']:.1e})",
            flush=True,
        )
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; " + machine())
    print("| model | T | reference | fast float64 | ratio | fast float32 | ratio | max abs diff (f64 / f32) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {args.tokens} | {r['reference'] * 1e3:.1f} ms | {r['float64'] * 1e3:.2f} ms | "
            f"{r['reference'] / r['float64']:,.0f}× | {r['float32'] * 1e3:.2f} ms | {r['reference'] / r['float32']:,.0f}× | "
            f"{r['diff float64']:.1e} / {r['diff float32']:.1e} |"
        )


if __name__ == "__main__":
    main()
