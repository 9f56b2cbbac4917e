"""Router ties in low precision, and ``gptspec verify`` on the Hugging Face MoE classes over seeds.

Part 1: a router as Hugging Face's (``F.linear`` in the model's dtype, softmax in float32,
``torch.topk``) on random inputs and weights: in how many rows the k-th and (k+1)-th logits are
exactly equal, and in how many rows ``torch.topk`` chooses another set than the spec's rule (lower
index first among equal logits) applied to the same logits (docs/conventions.md, "Ties").

Part 2 (``--seeds N``): ``gptspec verify`` on Qwen3, Mixtral, Qwen2-MoE and Qwen3-MoE, as they are,
over N seeds per dtype: how many runs passed, and the worst error/budget ratio. Any failure is
printed in full.

    python benchmarks/router_ties.py [--rows 20000] [--experts 4] [--top-k 2] [--seeds 0] [--dtypes float32,bfloat16]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import torch
from common import machine

import reference
from spec.ops import MoeRouter

CLASSES = ("Qwen3ForCausalLM", "MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM")


def ties(rows: int, experts: int, top_k: int, dtype: torch.dtype, seed: int = 0) -> tuple[int, int]:
    """(rows whose k-th and (k+1)-th logits are equal, rows where torch.topk's set differs from the spec's rule's)."""
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((rows, 16))).to(dtype)
    w = torch.tensor(rng.standard_normal((experts, 16)) / 4).to(dtype)
    logits = torch.nn.functional.linear(x, w)
    chosen = torch.topk(torch.softmax(logits, dim=-1, dtype=torch.float), top_k, dim=-1).indices.sort(dim=-1).values.numpy()
    exact = logits.double().numpy()
    G = reference.run_op(MoeRouter(experts, top_k, "softmax_topk", rows), {"logits": exact}, {})
    spec = np.sort(np.argsort(-G, axis=1, kind="stable")[:, :top_k], axis=1)
    ranked = -np.sort(-exact, axis=1)
    return int(np.sum(ranked[:, top_k - 1] == ranked[:, top_k])), int(np.any(spec != chosen, axis=1).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=0, help="verify runs per class and dtype (0: part 1 only)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    print(machine())
    print(f"router: {args.rows} rows, {args.experts} experts, top-{args.top_k}")
    for name in args.dtypes.split(","):
        tied, differ = ties(args.rows, args.experts, args.top_k, getattr(torch, name))
        print(f"  {name:<9} boundary ties {tied:>6} (1 in {args.rows // tied if tied else '∞'})   torch.topk ≠ lower-index-first {differ:>6}")
    if not args.seeds:
        return
    import transformers

    from gptspec.verify import verify_target

    transformers.utils.logging.set_verbosity_error()
    print(f"verify, {args.seeds} seeds per class and dtype (2 padded batches, decoding, 1 generation each)")
    for cls in CLASSES:
        for name in args.dtypes.split(","):
            start, passed, worst = time.perf_counter(), 0, 0.0
            for seed in range(1, args.seeds + 1):
                report = verify_target(f"transformers:{cls}", dtype=name, seed=seed, examples=2, generation_examples=1)
                ok = all(r.status == "passed" for r in report.results)
                passed += ok
                worst = max(worst, *(r.ratio for r in report.results))
                if not ok:
                    print(f"  FAILED {cls} {name} seed {seed}: {[(r.component, r.status, r.detail) for r in report.results]}")
            print(f"  {cls:<22}{name:<10}{passed}/{args.seeds} passed, worst error/budget {worst:.3f}  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
