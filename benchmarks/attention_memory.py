"""Peak memory of fast/'s blocked attention against materialised T × T scores, at T = 8192.

One layer's attention as gpt2-small has it (B = 1, n_heads = 12, d_head = 64, float32, causal
mask, random q, k, v): the peak of the memory allocated while
``fast.attention.blocked_attention`` runs, measured with tracemalloc (numpy reports its array
buffers to it), beyond the inputs q, k, v, and counting the (B, H, T, d_head) result. The
comparison is the bytes a materialised implementation needs for its (B, H, T, T) scores and
probabilities, 2·B·H·T²·4 bytes (6.4 GB at T = 8192, too much to allocate next to other jobs);
to check that count, a materialised implementation (scores, fast/'s masked softmax, A·V) is
measured the same way at a smaller T.

    python benchmarks/attention_memory.py [--tokens 8192] [--materialized-tokens 1024] [--block 64]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from common import load_average, machine, timed

from fast.attention import blocked_attention
from fast.batch import Batch
from fast.kernels import attention_mask, softmax_rows
from spec.masks import Causal

MiB = 2**20


def inputs(B: int, H: int, T: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Batch]:
    q, k, v = np.random.default_rng(0).standard_normal((3, B, H, T, d), dtype=np.float32)
    positions = np.broadcast_to(np.arange(T), (B, T)).copy()
    valid = np.ones((B, T), dtype=bool)
    return q, k, v, Batch(positions, valid, positions, valid)


def peak(fn: Callable[[], object]) -> tuple[int, float]:
    """Peak bytes allocated during ``fn()`` beyond what was allocated before it, and its time."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    seconds = timed(fn)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top - base, seconds


def materialized(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, batch: Batch) -> np.ndarray:
    """Attention the literal way: (B, H, T, T) scores, masked softmax, A·V."""
    scores = (q @ k.swapaxes(-1, -2)) * q.dtype.type(scale)
    probs = softmax_rows(scores, attention_mask(Causal(), batch)[:, None])
    out: np.ndarray = probs @ v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=8192, help="T for blocked attention (default 8192)")
    parser.add_argument("--materialized-tokens", type=int, default=1024, help="T at which the materialised implementation is measured (default 1024)")
    parser.add_argument("--heads", type=int, default=12, help="n_heads (default 12)")
    parser.add_argument("--d-head", type=int, default=64, help="d_head (default 64)")
    parser.add_argument("--block", type=int, default=64, help="fast/'s attention tile (default 64, fast.compile's default)")
    args = parser.parse_args()
    print(machine())
    B, H, d, scale = 1, args.heads, args.d_head, 1 / np.sqrt(args.d_head)

    def scores_bytes(T: int) -> int:
        return int(2 * B * H * T * T * 4)  # (B, H, T, T) scores + probabilities, float32

    def measure(T: int) -> dict[str, float]:
        q, k, v, batch = inputs(B, H, T, d)  # freed when measure returns
        print(f"T={T}: blocked attention ...", flush=True)
        blocked, t_blocked = peak(lambda: blocked_attention(q, k, v, scale, Causal(), batch, args.block))
        row = {"T": T, "blocked": blocked, "t_blocked": t_blocked, "formula": scores_bytes(T)}
        if T == args.materialized_tokens:
            print(f"T={T}: materialised attention ...", flush=True)
            mat, t_mat = peak(lambda: materialized(q, k, v, scale, batch))
            want = materialized(q, k, v, scale, batch)
            got = blocked_attention(q, k, v, scale, Causal(), batch, args.block)
            row.update(materialized=mat, t_materialized=t_mat, diff=float(np.abs(got - want).max()))
        return row

    rows = [measure(T) for T in sorted({args.materialized_tokens, args.tokens})]
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M')}; load average at the end {load_average()}")
    print(f"B={B}, n_heads={H}, d_head={d}, float32, causal; block={args.block}; result (B, H, T, d_head) = {B * H * args.tokens * d * 4 / MiB:.0f} MiB at T={args.tokens}")
    for r in rows:
        T = r["T"]
        line = (
            f"T={T:>5}: blocked peak {r['blocked'] / MiB:8.1f} MiB in {r['t_blocked']:.2f} s;  "
            f"(B, H, T, T) scores + probabilities = {r['formula'] / MiB:8.1f} MiB;  blocked ÷ that = 1/{r['formula'] / r['blocked']:.0f}"
        )
        if "materialized" in r:
            line += (
                f"\n          materialised implementation measured: peak {r['materialized'] / MiB:.1f} MiB in {r['t_materialized']:.2f} s "
                f"({r['materialized'] / r['formula']:.2f}× the scores + probabilities count); blocked ÷ measured = "
                f"1/{r['materialized'] / r['blocked']:.0f}; max |blocked − materialised| = {r['diff']:.1e}"
            )
        print(line)
    print(f"target: blocked ≤ 1/8 of the materialised scores at T={args.tokens}")


if __name__ == "__main__":
    main()
