"""The literal reference on checkpoints larger than memory in float64: peak RSS and time
(docs/performance.md, "The reference in bounded memory").

A random checkpoint shaped like a preset is written as a Hugging Face directory (config.json and
safetensors through the preset's layout, every tensor drawn from a seeded generator, weights
N(0, 0.02²) and norm gains 1 + N(0, 0.02²)), streamed to disk a chunk at a time; then a fresh
process reads it with ``gptspec.checkpoint.load(dir, lazy=True)`` (memory maps, each θ entry made
float64 when the op that reads it runs and dropped after its last use) and runs
``reference.forward`` on T tokens, reporting its peak resident set (``VmHWM``, which counts the
mapped file pages it touched) and the time. The files are deleted afterwards unless ``--keep``.

    python benchmarks/reference_memory.py --model gpt2-xl --dtype F32                 # ~6.2 GB on disk
    python benchmarks/reference_memory.py --model llama-2-7b --dtype BF16 --allow-large  # ~13.5 GB, 3 shards

The 7B checkpoint is written only with ``--allow-large`` (13.5 GB of disk and a few minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from common import load_average, machine

LARGE_BYTES = 8 * 2**30
"""Checkpoints above this are written only with --allow-large."""


def layout_name(arch_family: str) -> str:
    return {"gpt": "hf-gpt2", "llama": "hf-llama"}[arch_family]


def write_checkpoint(model: str, dtype: str, directory: Path, shard_bytes: int, seed: int) -> tuple[int, float]:
    """Write the random checkpoint; returns (bytes written, seconds)."""
    import ml_dtypes

    from gptspec import safetensors_io
    from gptspec.checkpoint import layout, native_config
    from gptspec.checkpoint.layout import expected_shapes
    from spec import build, family_of, preset

    arch = build(preset(model).config)
    lay = layout(layout_name(family_of(arch.config).name))
    shapes = {name: shape for name, (shape, _) in expected_shapes(lay, arch).items() if name != "lm_head.weight" or not getattr(arch.config, "tied", True)}
    if lay.name == "hf-gpt2":
        shapes.pop("lm_head.weight", None)  # tied: Hugging Face writes wte only
    item = safetensors_io.DTYPES[dtype].itemsize
    total = sum(math.prod(s) for s in shapes.values()) * item
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(native_config(arch, lay.name), indent=1))
    rng = np.random.default_rng(seed)

    def chunks(name: str) -> Iterator[np.ndarray]:
        shape = shapes[name]
        n = math.prod(shape)
        gain = name.endswith(("norm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight"))
        for start in range(0, n, 1 << 24):
            x = rng.standard_normal(min(1 << 24, n - start), dtype=np.float32)
            x *= np.float32(0.02)
            if gain:
                x += np.float32(1)
            yield x.astype(ml_dtypes.bfloat16).view(np.uint16) if dtype == "BF16" else x.astype(safetensors_io.DTYPES[dtype])

    started = time.perf_counter()
    shards: list[dict[str, tuple[str, tuple[int, ...]]]] = [{}]
    size = 0
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * item
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = (dtype, shape)
        size += nbytes
    if len(shards) == 1:
        safetensors_io.write_stream(directory / "model.safetensors", shards[0], chunks, {"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            safetensors_io.write_stream(directory / file, shard, chunks, {"format": "pt"})
            weight_map |= {name: file for name in shard}
            print(f"  wrote {file} ({len(shard)} tensors)", flush=True)
        (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total, time.perf_counter() - started


def measure(directory: Path, tokens: int) -> dict[str, object]:
    """In this process: load lazily, run the reference, report time and peak memory."""

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    import reference
    from gptspec.checkpoint import load
    from gptspec.estimate import estimate, largest_live_theta
    from spec.counting import count

    baseline = status("VmRSS")
    start = time.perf_counter()
    arch, theta = load(directory, lazy=True)
    opened = time.perf_counter() - start
    n = count(arch)
    est = estimate(arch.config, impl="reference", tokens=tokens, parameters=n, bytes_to_read=theta.nbytes, theta="lazy",
                   largest_block=largest_live_theta(arch))
    print("  " + est.line(), flush=True)
    ids = (np.arange(tokens) * 7919 + 11) % arch.dim("n_vocab")
    last = [time.perf_counter()]

    def progress(done: int, total: int, path: str) -> None:
        now = time.perf_counter()
        if now - last[0] > 15 or done == total:
            last[0] = now
            print(f"  {done}/{total} ops, at {path}, {now - start:.0f} s, RSS {status('VmRSS') / 2**30:.2f} GiB", flush=True)

    begin = time.perf_counter()
    logits = reference.forward(arch, theta, ids, progress=progress)
    seconds = time.perf_counter() - begin
    return {
        "parameters": n, "bytes_read": theta.nbytes, "tokens": tokens, "open_s": opened, "forward_s": seconds,
        "peak_rss": status("VmHWM"), "baseline_rss": baseline, "estimate_memory": est.memory,
        "finite": bool(np.isfinite(logits).all()), "max_abs_logit": float(np.abs(logits).max()),
        "largest_live_theta": largest_live_theta(arch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2-xl", help="a preset of the gpt or llama family (default gpt2-xl)")
    parser.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"], help="stored dtype (default F32)")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the checkpoint (default /work/tmp/<model>-<dtype>)")
    parser.add_argument("--shard-gb", type=float, default=5.0, help="shard size in GB (default 5, as save_pretrained)")
    parser.add_argument("--allow-large", action="store_true", help=f"write a checkpoint over {LARGE_BYTES / 2**30:.0f} GiB (the 7B one)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.tokens)))
        return
    from gptspec.checkpoint.layout import expected_shapes  # noqa: F401  (fail early if the package is missing)
    from spec import preset
    from spec.counting import count

    directory = args.dir or Path("/work/tmp") / f"{args.model}-{args.dtype.lower()}"
    item = {"F32": 4, "F16": 2, "BF16": 2}[args.dtype]
    from spec import build

    need = count(build(preset(args.model).config)) * item
    if need > LARGE_BYTES and not args.allow_large:
        raise SystemExit(f"the checkpoint would be {need / 2**30:.1f} GiB; pass --allow-large to write it")
    free = shutil.disk_usage(directory.parent if directory.parent.exists() else Path("/")).free
    if need + 2**30 > free:
        raise SystemExit(f"the checkpoint needs {need / 2**30:.1f} GiB, but only {free / 2**30:.1f} GiB are free")
    print(f"machine: {machine()}")
    print(f"writing a random {args.model} checkpoint ({args.dtype}, {need / 2**30:.1f} GiB) to {directory} (disk free {free / 2**30:.0f} GiB) …", flush=True)
    try:
        written, seconds = write_checkpoint(args.model, args.dtype, directory, int(args.shard_gb * 1e9), args.seed)
        print(f"  wrote {written / 2**30:.2f} GiB in {seconds:.0f} s", flush=True)
        print(f"reference forward, T = {args.tokens}, in a fresh process (load average {load_average()}) …", flush=True)
        env = dict(os.environ)
        result = subprocess.run([sys.executable, __file__, "--measure", str(directory), "--tokens", str(args.tokens)],
                                check=True, capture_output=True, text=True, env=env)
        for line in result.stdout.splitlines()[:-1]:
            print(line)
        found = json.loads(result.stdout.splitlines()[-1])
        print(f"load average after: {load_average()}")
        print(json.dumps(found, indent=1))
        print(f"| {args.model} | {args.dtype} | {written / 1e9:.1f} GB | {found['parameters']:,} | {args.tokens} | "
              f"{found['open_s']:.1f} s | {found['forward_s']:.1f} s | {found['peak_rss'] / 2**30:.2f} GiB | "
              f"{found['baseline_rss'] / 2**30:.2f} GiB | {found['estimate_memory'] / 2**30:.2f} GiB |")
    finally:
        if not args.keep and directory.exists():
            shutil.rmtree(directory)
            print(f"deleted {directory}")


if __name__ == "__main__":
    main()
