"""Helpers the benchmark scripts share: timing (medians, competitors interleaved), numpy's
BLAS thread count, a GEMM to time, and a one-line description of the machine and its load.

Not a benchmark itself; the scripts next to it import it (``python benchmarks/<script>.py``
puts this folder on ``sys.path``).
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np


def timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one call by ``clock`` (wall clock unless given, e.g. ``time.process_time``)."""
    start = clock()
    fn()
    return clock() - start


def interleaved(
    fns: Mapping[str, Callable[[], object]], repeat: int, warmup: int = 1, label: str = "", clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time every function ``repeat`` times, round-robin (a, b, a, b, ...), after ``warmup``
    untimed calls each, so a change in the machine's load hits all competitors alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(repeat):
        for name, fn in fns.items():
            times[name].append(timed(fn, clock))
        if label:
            now = "  ".join(f"{name} {times[name][-1]:.3f} s" for name in fns)
            print(f"  {label} round {i + 1}/{repeat}: {now}", flush=True)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def blas_threads() -> int:
    """How many threads numpy's OpenBLAS uses: asked of the library itself when it is the
    ``scipy_openblas`` build numpy wheels bundle, else the CPUs this process may run on."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                return int(fn())
    return len(os.sched_getaffinity(0))


def gemm_fn(m: int, k: int, n: int, dtype: str = "float32") -> Callable[[], object]:
    """A function running one (m × k) @ (k × n) numpy product, for :func:`interleaved`."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    return lambda: a @ b


def machine() -> str:
    """CPUs, load average, BLAS threads, library versions: what a reader needs to weigh a figure."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min); "
        f"numpy {np.__version__} with {blas_threads()} BLAS threads; Python {sys.version.split()[0]}"
    )


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
