"""How much of the gradient policy fast/'s backward uses in float32, float16 and bfloat16: every
instance of every registered decoder family, several θ seeds, judged against the float64
reference exactly as tests/test_fast_backward.py judges (its ``judge``: the policy ``GRAD``,
docs/tolerances.md, "fast/'s backward against the reference").

Per (family instance, dtype), the worst error ÷ budget over the seeds, the Θ entry where it occurs,
and the error in units of u_D × the gradient's scale and of e_store. Batches: 3 rows of up to 8
tokens with random padding (tests/test_fast_backward.py ``padded``), label smoothing 0.1, z-loss
1e-2 on odd seeds; θ ~ N(0, 0.4²).

    python benchmarks/backward_precision.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from common import machine

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))  # the repository root, for tests/

import fast  # noqa: E402
from gptspec.verify.tolerance import storer, unit_roundoff  # noqa: E402
from spec.architectures.registry import FAMILIES  # noqa: E402
from spec.objective import Objective  # noqa: E402
from spec.theta import random_theta  # noqa: E402
from tests.test_fast_backward import judge, padded, reference_gradients  # noqa: E402

DTYPES = ("float32", "float16", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print(machine())
    start = time.perf_counter()
    worst: dict[tuple[str, str], tuple[float, str, int, float, float]] = {}
    judged = 0
    for seed in range(args.seeds):
        for fam in FAMILIES.values():
            if fam.kind != "decoder":
                continue
            for name, config in fam.instances().items():
                arch = fam.builder(config)
                theta = random_theta(arch, seed=seed, std=0.4)
                ids, valid = padded(np.random.default_rng(seed), 3, min(arch.dim("n_ctx"), 8), arch.dim("n_vocab"))
                sequences = [ids[b][valid[b]] for b in range(len(ids))]
                objective = Objective(label_smoothing=0.1, z_loss=1e-2 * (seed % 2))
                want = reference_gradients(arch, theta, sequences, objective)
                scale = max(float(np.max(np.abs(w), initial=0.0)) for w in want.values())
                for dtype in DTYPES:
                    stored = reference_gradients(arch, theta, sequences, objective, store=storer(dtype))
                    got = fast.compile(arch, theta, dtype).value_and_grad(ids, valid, objective=objective).theta
                    ratio = judge(arch, got, want, stored, dtype, int(valid.sum()), name, fail=False)
                    err, entry = max((float(np.max(np.abs(np.asarray(got[n], dtype=np.float64) - w))), n) for n, w in want.items())
                    e_store = max(float(np.max(np.abs(stored[n] - w))) for n, w in want.items())
                    key = (f"{fam.name}: {name}", dtype)
                    judged += 1
                    if ratio >= worst.get(key, (-1.0,))[0]:
                        worst[key] = (ratio, entry, seed, err / (unit_roundoff(dtype) * scale), err / e_store if e_store else float("inf"))
    print(f"{judged} judgements, {args.seeds} seeds, {time.perf_counter() - start:.0f} s")
    print("| family: instance | dtype | worst error / budget | at | seed | error / (u·scale) | error / e_store |")
    print("|---|---|---|---|---|---|---|")
    for (instance, dtype), (ratio, entry, seed, in_u, in_e) in sorted(worst.items(), key=lambda kv: -kv[1][0]):
        print(f"| {instance} | {dtype} | {ratio:.3f} | {entry} | {seed} | {in_u:.1f} | {in_e:.2f} |")


if __name__ == "__main__":
    main()
