"""How long ``gptspec verify transformers:GPT2LMHeadModel`` takes on its defaults (the
hf-gpt2 layout's small default architecture, float32, 12 padded batches also decoded
incrementally, 3 greedy generations), end to end as a user runs it: a fresh process, imports
included. Prints each run's wall-clock and CPU seconds and the machine's load, since a shared
machine's load inflates wall-clock time (CPU time is what the run itself costs).

    python benchmarks/verify_speed.py [--repeat 3] [--attn sdpa] [-- extra gptspec verify options]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import load_average, machine

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--attn", choices=["eager", "sdpa"], default=None, help="--attn-implementation (default: the class's own, sdpa)")
    parser.add_argument("extra", nargs="*", help="more gptspec verify options")
    args = parser.parse_args()
    command = [sys.executable, "-m", "gptspec", "verify", "transformers:GPT2LMHeadModel", "--quiet", *args.extra]
    if args.attn:
        command += ["--attn-implementation", args.attn]
    print(machine())
    print("$ " + " ".join(["gptspec", *command[3:]]))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    walls, cpus = [], []
    for i in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        walls.append(wall)
        cpus.append(cpu)
        last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-300:]
        print(f"  run {i + 1}: exit {run.returncode}, {wall:.1f} s wall, {cpu:.1f} s CPU, load {load_average()}  | {last}", flush=True)
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:])
    print(f"median: {sorted(walls)[len(walls) // 2]:.1f} s wall, {sorted(cpus)[len(cpus) // 2]:.1f} s CPU (limit: 60 s wall on 2 cores)")


if __name__ == "__main__":
    main()
