"""The FLOP rate fast/ achieves on a gpt2-small forward (float32, B = 4, T = 256, random θ),
as a fraction of numpy's float32 GEMM rate measured in the same run.

FLOPs of one forward (multiply and add counted separately, as 2 per multiply-add):

    F = 2·N·B·T                    every weight of the blocks and the final layer norm, once
                                   per token (N = parameters except W_E, W_P and W_U; the
                                   biases and norm gains are counted as if they were GEMM
                                   weights, 0.1 % of N)
      + 2·2·B·n_layers·T²·d_model  attention: Q Kᵀ and A V, every (t, s) pair
      + 2·B·T·d_model·n_vocab      the unembedding

The attention term counts all T² pairs; a causal mask needs only T(T+1)/2 of them, and fast/
computes only the tiles that hold some, so the script prints the rate both ways. The GEMM rate
is the median over the run of a (1024 × 768) @ (768 × 3072) product — the shape of the MLP's
first GEMM at B·T = 1024 — timed round-robin with the forwards.

    python benchmarks/flop_rate.py [--batch 4] [--tokens 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from common import gemm_fn, interleaved, load_average, machine, median, timed

import fast
import fast.attention
import fast.kernels
import fast.program
from spec import build_gpt, preset
from spec.theta import random_theta

EMBEDDINGS = ("W_E", "W_P", "W_U")


def breakdown(prog: fast.Program, ids: np.ndarray) -> dict[str, float]:
    """Seconds per kernel kind in one forward (fused attention split into its GEMMs and the
    attention kernel), by wrapping the kernels for one call."""
    spent: defaultdict[str, float] = defaultdict(float)

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_fn(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name] += time.perf_counter() - start
            return out

        return timed_fn

    table = fast.kernels.KERNELS  # the table fast.program looks kernels up in
    kernels = {kind: table[kind] for kind in table}
    fused = fast.program.fused_mha
    attention = fast.attention.blocked_attention
    try:
        for kind, fn in kernels.items():
            table.override(kind, wrap(kind, fn))
        fast.program.fused_mha = wrap("multi-head attention (QKV, W_O GEMMs + attention)", fused)
        fast.attention.blocked_attention = wrap("  of which blocked_attention", attention)
        total = timed(lambda: prog.forward(ids))
    finally:
        for kind, fn in kernels.items():
            table.override(kind, fn)
        fast.program.fused_mha = fused
        fast.attention.blocked_attention = attention
    spent["total"] = total
    part = "  of which blocked_attention"
    inner = spent.pop(part, None)
    ordered: dict[str, float] = {}
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):  # largest first, the part under its whole
        ordered[name] = seconds
        if name.startswith("multi-head attention") and inner is not None:
            ordered[part] = inner
    return ordered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="sequences per batch B (default 4)")
    parser.add_argument("--tokens", type=int, default=256, help="sequence length T (default 256)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of (forward, 3 GEMMs) timed; medians reported (default 5)")
    parser.add_argument("--model", default="gpt2-small", help="preset (default gpt2-small)")
    args = parser.parse_args()
    print(machine())
    print(f"{args.model}: building, drawing θ, compiling float32 ...", flush=True)
    arch = build_gpt(preset(args.model).config)
    theta = random_theta(arch, seed=0)
    prog = fast.compile(arch, theta, dtype="float32")
    B, T = args.batch, args.tokens
    L, d, V = arch.dim("n_layers"), arch.dim("d_model"), arch.dim("n_vocab")
    N = sum(int(np.size(w)) for name, w in theta.items() if name not in EMBEDDINGS)
    f_dense = 2 * N * B * T
    f_attn = 2 * 2 * B * L * T * T * d
    f_attn_causal = 2 * 2 * B * L * (T * (T + 1) // 2) * d
    f_unembed = 2 * B * T * d * V
    flops = f_dense + f_attn + f_unembed
    flops_causal = f_dense + f_attn_causal + f_unembed
    print(
        f"F = 2·N·B·T + 2·2·B·L·T²·d + 2·B·T·d·V with N={N:,}, B={B}, T={T}, L={L}, d={d}, V={V}\n"
        f"  = {f_dense / 1e9:.1f} + {f_attn / 1e9:.1f} + {f_unembed / 1e9:.1f} = {flops / 1e9:.1f} GFLOP "
        f"({flops_causal / 1e9:.1f} GFLOP counting only the causal pairs)",
        flush=True,
    )
    ids = np.random.default_rng(0).integers(0, V, size=(B, T))
    gemm = gemm_fn(1024, 768, 3072)

    def three_gemms() -> None:
        for _ in range(3):
            gemm()

    times = interleaved({"forward": lambda: prog.forward(ids), "3 GEMMs": three_gemms}, args.repeat, label="timing")
    t_fwd = median(times["forward"])
    gemm_rate = 3 * 2 * 1024 * 768 * 3072 / median(times["3 GEMMs"])
    rate, rate_causal = flops / t_fwd, flops_causal / t_fwd
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"forward B={B} T={T}: median {t_fwd:.3f} s of {args.repeat} ({', '.join(f'{t:.3f}' for t in times['forward'])})")
    print(f"numpy float32 GEMM (1024×768)@(768×3072): {gemm_rate / 1e9:.1f} GFLOP/s (median of {args.repeat} rounds)")
    print(f"fast/ achieved: {rate / 1e9:.1f} GFLOP/s  →  achieved ÷ GEMM rate = {rate / gemm_rate:.2f}  (target ≥ 0.8)")
    print(f"  counting only causal attention pairs: {rate_causal / 1e9:.1f} GFLOP/s → {rate_causal / gemm_rate:.2f}")
    print(f"  per-round ratios: {', '.join(f'{flops / f / (3 * 2 * 1024 * 768 * 3072 / g):.2f}' for f, g in zip(times['forward'], times['3 GEMMs']))}")
    print("\none more forward, time per kernel kind:")
    spent = breakdown(prog, ids)
    for name, seconds in spent.items():
        print(f"  {name:<52} {seconds * 1e3:8.1f} ms  {seconds / spent['total']:6.1%}")


if __name__ == "__main__":
    main()
