"""fast/'s worker threads: the element-wise and attention work of a forward, split over the cores.

numpy's BLAS runs every large GEMM on all the cores it is given, but numpy's element-wise loops —
GELU, the norms, SiLU, the online softmax's exponentials — and attention's many small per-head
GEMMs run on the calling thread. numpy releases the GIL inside each of those loops, so threads of
one process run them in parallel. :func:`each` splits such work into pieces that each write their
own rows of the result and runs them on a small pool of threads: the result is **bit-identical**
whatever the number of threads, since every row is computed by the same operations in the same
order (tests/test_fast_parallel.py checks it for every row-wise kernel and the fused attention).

How many threads: :func:`set_threads`, else the environment variable ``GPTSPEC_THREADS``, else the
CPUs this process may run on, capped by ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` when set —
the budget the GEMMs have (docs/performance.md). One thread runs everything on the caller, as
before this module existed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from spec.errors import ConfigError

_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def _whole(name: str, text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{name}={text!r}, but expected a whole number ≥ 1 [fast threads]; unset it to use every CPU")
    return n


def default_threads() -> int:
    """``GPTSPEC_THREADS``, else the usable CPUs capped by ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``."""
    own = os.environ.get("GPTSPEC_THREADS")
    if own:
        return _whole("GPTSPEC_THREADS", own)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for name in _ENV:
        value = os.environ.get(name)
        if value and value.isdigit() and int(value) >= 1:
            cpus = min(cpus, int(value))
    return max(1, cpus)


_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()
_local = threading.local()


def threads() -> int:
    """The number of threads :func:`each` uses (the caller's included)."""
    global _threads
    if _threads is None:
        _threads = default_threads()
    return _threads


def set_threads(n: int) -> None:
    """Use ``n`` threads (the caller's included) from now on; 1 runs everything on the caller."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"threads={n!r}, but expected a whole number ≥ 1 [fast.parallel.set_threads]")
    _threads = n


def _workers(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="gptspec-fast")
            _pool_size = n
        return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's worker threads do not exist there (a pool inherited from the
    parent would queue work that never runs), and the lock may have been held by one of them."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _run(fn: Callable[[int], object], items: Sequence[int]) -> None:
    _local.inside = True
    try:
        for i in items:
            fn(i)
    finally:
        _local.inside = False


def each(fn: Callable[[int], object], n: int) -> None:
    """``fn(i)`` for every i in range(n), split into one contiguous run of items per thread; the
    caller runs the last run itself and returns when every run is done, raising the first error
    any run raised. Items must write disjoint outputs. Called from inside a run, or with one
    thread, or for a single item, it runs in order on the calling thread."""
    k = min(threads(), n)
    if k <= 1 or getattr(_local, "inside", False):
        for i in range(n):
            fn(i)
        return
    bounds = [n * j // k for j in range(k + 1)]
    runs = [range(bounds[j], bounds[j + 1]) for j in range(k)]
    pool = _workers(k - 1)
    futures: list[Future[None]] = [pool.submit(_run, fn, r) for r in runs[:-1]]
    error: BaseException | None = None
    try:
        _run(fn, runs[-1])
    except BaseException as raised:  # noqa: BLE001 - re-raised below, after the other runs finished
        error = raised
    for future in futures:
        try:
            future.result()
        except BaseException as raised:  # noqa: BLE001 - the first error is re-raised
            error = error or raised
    if error is not None:
        raise error

