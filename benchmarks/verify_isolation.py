"""What running the target in its own process costs: ``gptspec verify
transformers:GPT2LMHeadModel`` on its defaults, isolated (the default) and ``--in-process``, end
to end as a user runs it (a fresh process each, imports included), the two modes alternated so
the machine's load falls on both alike. Prints each run's wall-clock and CPU seconds (the
children's CPU included: the zygote and the target's process), the medians and their ratio
isolated ÷ in-process (docs/performance.md; the bound is 1.2).

    python benchmarks/verify_isolation.py [--repeat 5] [-- extra gptspec verify options]
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


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:])
    return wall, cpu, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("extra", nargs="*", help="more gptspec verify options")
    args = parser.parse_args()
    base = [sys.executable, "-m", "gptspec", "verify", "transformers:GPT2LMHeadModel", "--quiet", *args.extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    print(machine())
    print("$ " + " ".join(["gptspec", *base[3:]]) + "   vs   … --in-process")
    times: dict[str, list[tuple[float, float]]] = {"isolated": [], "in-process": []}
    for i in range(args.repeat):
        for mode in ("isolated", "in-process") if i % 2 == 0 else ("in-process", "isolated"):
            command = base + (["--in-process"] if mode == "in-process" else [])
            wall, cpu, code = run(command, env)
            times[mode].append((wall, cpu))
            print(f"  run {i + 1} {mode:<10}: exit {code}, {wall:5.1f} s wall, {cpu:5.1f} s CPU, load {load_average()}", flush=True)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    wall = {m: median([w for w, _ in t]) for m, t in times.items()}
    cpu = {m: median([c for _, c in t]) for m, t in times.items()}
    for m in times:
        print(f"median {m:<10}: {wall[m]:.1f} s wall, {cpu[m]:.1f} s CPU")
    print(f"ratio isolated / in-process: {wall['isolated'] / wall['in-process']:.2f} wall, {cpu['isolated'] / cpu['in-process']:.2f} CPU (bound 1.2)")


if __name__ == "__main__":
    main()
