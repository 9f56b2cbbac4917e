"""The comparison of Suresh & P. (docs/sources.md §2), redone on this machine: the baseline GPT and
its three compressed variants at the authors' configuration (8 layers, 8 heads, d_model 512,
n_ctx 1024, vocabulary 50,304), each as a ratio to the baseline, in one run:

* parameters, read off Θ (spec.counting.count);
* FLOPs per token from the spec: the DAG expanded at length T, every matrix product counted as
  2 × its multiply-adds — affine maps and convolutions 2·kernel·d_in·d_out per row, attention
  scores 2·d_head and weighted sums 2·d_v per (t, s) pair the mask allows (causal: T(T + 1)/2
  pairs), the token embedding a gather (0), element-wise ops, norms and softmax not counted —
  divided by T;
* fast/'s forward time per token (float32, B × T tokens, random θ; the four models timed
  round-robin, medians);
* fast/'s KV-cache decode time per token (float32, B rows: prefill P tokens, then D decode
  steps of one token each; medians over repeats of the D steps).

    python benchmarks/compressed_gpts.py [--batch 4] [--tokens 256] [--prefill 128] [--decode 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
from common import interleaved, load_average, machine, median

import fast
from spec import build, count, preset
from spec.dims import S, T
from spec.graph import Architecture
from spec.op import Primitive
from spec.ops import Affine, AttentionScores, Conv1d, MaskedSoftmax, WeightedSum
from spec.theta import random_theta

MODELS = ("baseline-gpt", "parallel-gpt", "linear-gpt", "conv-gpt")


def flops_per_token(arch: Architecture, length: int) -> float:
    """The matrix-product FLOPs of one forward at length ``length``, per token (module docstring)."""
    sizes = {**arch.dims, T: length, S: length}
    nodes = [(path, node.op.bind(sizes), sources) for path, node, sources in arch.expand() if isinstance(node.op, Primitive)]
    allowed = {sources["x"]: int(op.mask.matrix(length, length).sum()) for _, op, sources in nodes if isinstance(op, MaskedSoftmax)}
    allowed |= {path: allowed[sources["x"]] for path, op, sources in nodes if isinstance(op, MaskedSoftmax)}
    total = 0
    for path, op, sources in nodes:
        if isinstance(op, Affine):
            total += 2 * length * int(op.d_in) * int(op.d_out)
        elif isinstance(op, Conv1d):
            total += 2 * length * op.kernel * int(op.d_in) * int(op.d_out)
        elif isinstance(op, AttentionScores):
            total += 2 * int(op.d_head) * allowed[path]  # only the pairs the softmax reading them allows
        elif isinstance(op, WeightedSum):
            total += 2 * int(op.d_v) * allowed[sources["A"]]
    return total / length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="rows B of the forward and of decoding (default 4)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens T per row of the forward (default 256)")
    parser.add_argument("--prefill", type=int, default=128, help="prompt tokens P before decoding (default 128)")
    parser.add_argument("--decode", type=int, default=32, help="decode steps D timed per repeat (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="round-robin repeats; medians (default 3)")
    args = parser.parse_args()
    print(machine())
    archs = {name: build(preset(name).config) for name in MODELS}
    params = {name: count(arch) for name, arch in archs.items()}
    flops = {name: flops_per_token(arch, args.tokens) for name, arch in archs.items()}
    programs = {}
    for name, arch in archs.items():
        print(f"{name}: drawing θ ({params[name]:,} parameters), compiling float32 ...", flush=True)
        programs[name] = fast.compile(arch, random_theta(arch, seed=0), "float32")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, archs[MODELS[0]].dim("n_vocab"), size=(args.batch, args.tokens))
    prompt = ids[:, : args.prefill]
    steps = rng.integers(0, archs[MODELS[0]].dim("n_vocab"), size=(args.decode, args.batch))
    fused = {name: sum(step.plan is not None for step in prog.steps) for name, prog in programs.items()}
    prefilled = {name: prog.prefill(prompt)[1] for name, prog in programs.items()}

    def forward(name: str) -> object:
        return lambda: programs[name].forward(ids)

    def decode(name: str) -> object:
        def run() -> None:
            state = copy.deepcopy(prefilled[name])
            for token in steps:
                programs[name].decode(state, token)

        return run

    print(f"timing forwards (B = {args.batch}, T = {args.tokens}) ...", flush=True)
    fwd = interleaved({name: forward(name) for name in MODELS}, args.repeat, label="forward")  # type: ignore[misc]
    print(f"timing decoding (B = {args.batch}, prefill {args.prefill}, {args.decode} steps) ...", flush=True)
    dec = interleaved({name: decode(name) for name in MODELS}, args.repeat, label="decode")  # type: ignore[misc]
    per_token_fwd = {name: median(fwd[name]) / (args.batch * args.tokens) for name in MODELS}
    per_token_dec = {name: median(dec[name]) / (args.batch * args.decode) for name in MODELS}
    base = MODELS[0]
    print(f"\nload average after the run: {load_average()}; fused attention steps: {fused}")
    print(f"| model | parameters | ratio | FLOPs/token (T = {args.tokens}) | ratio | forward µs/token | ratio | decode µs/token | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        print(
            f"| {name} | {params[name]:,} | {params[name] / params[base]:.3f} | {flops[name] / 1e6:.1f} M | {flops[name] / flops[base]:.3f} "
            f"| {per_token_fwd[name] * 1e6:.0f} | {per_token_fwd[name] / per_token_fwd[base]:.2f} "
            f"| {per_token_dec[name] * 1e6:.0f} | {per_token_dec[name] / per_token_dec[base]:.2f} |"
        )


if __name__ == "__main__":
    main()
