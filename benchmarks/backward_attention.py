"""The fused attention head's backward (fast/backward.py): peak memory ÷ the forward's peak, and
speed against PyTorch autograd on the same head, in one run.

One head, B = 1, d_head = 64, causal mask, float32, random Q, K, V and ∂L/∂O. Memory: the peak
bytes allocated while a call runs, beyond its inputs (tracemalloc; numpy reports its buffers to
it), for

* fused: ``attention_forward`` (keeps O and the row log-normalisers) and ``attention_backward``
  (recomputes the probabilities one query tile × key block at a time);
* op by op: fast/'s per-op kernels (scores, masked softmax, weighted sum), whose backward
  (``FAST_VJP``) reads the stored T × T scores and probabilities.

Speed: the median wall time of the backward pass only, ours vs ``torch.autograd`` on the same
head written plainly in torch (scores, masked_fill −inf, softmax, ·V; float32, CPU), interleaved.

    python benchmarks/backward_attention.py [--tokens 2048] [--block 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable

import numpy as np
import sympy
import torch
from common import interleaved, machine, median, timed

from fast.backward import FAST_VJP, allowed_matrix, attention_backward, attention_forward, full_batch
from fast.kernels import KERNELS
from spec.masks import Causal
from spec.ops import AttentionScores, MaskedSoftmax, WeightedSum

MiB = 2**20


def peak(fn: Callable[[], object]) -> tuple[int, object]:
    """Peak bytes allocated during ``fn()`` beyond what was allocated before it, and its result."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    result = fn()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top - base, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048, help="T (default 2048)")
    parser.add_argument("--d-head", type=int, default=64, help="d_head (default 64)")
    parser.add_argument("--block", type=int, default=64, help="query tile and key block of the fused head (default 64, as fast.Program's)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    args = parser.parse_args()
    print(machine())
    B, T, d, block = 1, args.tokens, args.d_head, args.block
    rng = np.random.default_rng(0)
    Q, K, V, dO = (rng.standard_normal((B, T, d), dtype=np.float32) for _ in range(4))
    scale = 1 / np.sqrt(d)
    allowed = np.array(allowed_matrix(Causal(), B, T, T))  # the mask (a writable copy): an input of both paths
    batch = full_batch(B, T)
    scores_op, softmax_op, sum_op = AttentionScores(d, 1 / sympy.sqrt(d), T, T), MaskedSoftmax(Causal(), T, T), WeightedSum(d, T, T)

    fused_fwd, saved = peak(lambda: attention_forward(Q, K, V, allowed, scale, None, block))
    fused_bwd, _ = peak(lambda: attention_backward(Q, K, V, allowed, scale, saved, dO, None, block))  # type: ignore[arg-type]

    def op_forward() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = KERNELS["attention_scores"](scores_op, batch, Q, K)
        p = KERNELS["masked_softmax"](softmax_op, batch, a)
        return a, p, KERNELS["weighted_sum"](sum_op, batch, p, V)

    op_fwd, stored = peak(op_forward)
    a, p, _ = stored  # type: ignore[misc]

    def op_backward() -> object:
        g = FAST_VJP["weighted_sum"](sum_op, batch, dO, p, V)
        g_a = FAST_VJP["masked_softmax"](softmax_op, batch, g["A"], a)["x"]
        return FAST_VJP["attention_scores"](scores_op, batch, g_a, Q, K), g["V"]

    op_bwd, _ = peak(op_backward)
    stored_bytes = a.nbytes + p.nbytes
    print(f"T={T}, d_head={d}, block={block}, float32, causal")
    print(f"  fused    forward peak {fused_fwd / MiB:8.1f} MiB   backward peak {fused_bwd / MiB:8.1f} MiB   ratio {fused_bwd / fused_fwd:.2f}")
    print(f"  op by op forward peak {op_fwd / MiB:8.1f} MiB   backward peak {op_bwd / MiB:8.1f} MiB   ratio {op_bwd / op_fwd:.2f}"
          f"   (+ {stored_bytes / MiB:.1f} MiB of stored T × T scores and probabilities)")

    tq, tk, tv, tdo = (torch.from_numpy(x) for x in (Q, K, V, dO))
    tmask = torch.from_numpy(allowed)

    def torch_graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = (x.clone().requires_grad_(True) for x in (tq, tk, tv))
        s = (q @ k.transpose(-1, -2)) * scale
        o = torch.softmax(s.masked_fill(~tmask, float("-inf")), dim=-1) @ v
        return o, q, k, v

    graphs: list[tuple[torch.Tensor, ...]] = []

    def torch_backward() -> None:
        o, q, k, v = graphs.pop()
        o.backward(tdo)

    def ours_backward() -> None:
        attention_backward(Q, K, V, allowed, scale, saved, dO, None, block)  # type: ignore[arg-type]

    times: dict[str, list[float]] = {"ours": [], "torch": []}
    for _ in range(args.repeat + 1):
        graphs.append(torch_graph())  # the forward graph, outside the timing
        round_times = interleaved({"ours": ours_backward, "torch": torch_backward}, repeat=1, warmup=0)
        for name in times:
            times[name] += round_times[name]
    ours, theirs = median(times["ours"][1:]), median(times["torch"][1:])
    forward_time = timed(lambda: attention_forward(Q, K, V, allowed, scale, None, block))
    print(f"  backward time: fused {ours:.3f} s, torch autograd {theirs:.3f} s, ratio ours/torch {ours / theirs:.2f} "
          f"(fused forward {forward_time:.3f} s; torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
