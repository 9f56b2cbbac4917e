"""KV-cache decoding against full recompute: gpt2-small, float32, B = 1, random θ.

Prefill T − 1 tokens, then time one decode step (token T) from a copy of the prefilled state;
against it, time a full forward of all T tokens (what a model without a cache recomputes to
get the same logits). Prints both medians, the speed-up full ÷ decode, and the largest
|difference| between the decode step's logits and the full forward's last row.

    python benchmarks/kv_cache.py [--tokens 1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
from common import load_average, machine, median, timed

import fast
from spec import build_gpt, preset
from spec.theta import random_theta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1024, help="total length T: prefill T − 1, decode 1 (default 1024)")
    parser.add_argument("--repeat", type=int, default=5, help="decode steps and full forwards timed, round-robin; medians (default 5)")
    parser.add_argument("--model", default="gpt2-small", help="preset (default gpt2-small)")
    args = parser.parse_args()
    print(machine())
    print(f"{args.model}: building, drawing θ, compiling float32 ...", flush=True)
    arch = build_gpt(preset(args.model).config)
    prog = fast.compile(arch, random_theta(arch, seed=0), dtype="float32")
    T = args.tokens
    ids = np.random.default_rng(0).integers(0, arch.dim("n_vocab"), size=(1, T))
    print(f"prefilling {T - 1} tokens ...", flush=True)
    t_prefill = timed(lambda: prog.prefill(ids[:, :-1]))
    _, state = prog.prefill(ids[:, :-1])
    full = prog.forward(ids)
    step = prog.decode(copy.deepcopy(state), ids[:, -1])
    diff = float(np.abs(step[0, 0] - full[0, -1]).max())
    print(f"prefill {t_prefill:.3f} s; max |decode − full forward's last row| = {diff:.2e}", flush=True)

    decode_times, full_times = [], []
    for i in range(args.repeat):
        fresh = copy.deepcopy(state)  # decode appends to the state: every step starts from T − 1 tokens
        decode_times.append(timed(lambda: prog.decode(fresh, ids[:, -1])))
        full_times.append(timed(lambda: prog.forward(ids)))
        print(f"  round {i + 1}/{args.repeat}: decode {decode_times[-1] * 1e3:.1f} ms  full forward {full_times[-1]:.3f} s", flush=True)
    t_dec, t_full = median(decode_times), median(full_times)
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"decode step at T={T} (cache of {T - 1}): median {t_dec * 1e3:.1f} ms")
    print(f"full forward of {T} tokens:           median {t_full:.3f} s")
    print(f"speed-up full ÷ decode = {t_full / t_dec:.0f}×  (target ≥ 10×); max |Δ logits| = {diff:.2e}")


if __name__ == "__main__":
    main()
