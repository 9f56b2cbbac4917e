"""fast/'s worker threads (fast/parallel.py) change where work runs, never what it computes: every
registered family's forward, prefill and decode are bit-identical on one thread and on several,
padded batches included; and the pool's contract (errors, nesting, the thread count) holds."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import fast
import fast.attention
import fast.kernels.table
from fast import parallel
from spec.architectures.registry import build, instances
from spec.errors import ConfigError
from spec.theta import random_theta


@pytest.fixture
def every_piece_parallel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Thresholds at their least, so tiny models take the threaded paths; the thread count restored."""
    monkeypatch.setattr(fast.kernels.table, "PARALLEL_LEAST", 1)
    monkeypatch.setattr(fast.attention, "PARALLEL_SCORES", 1)
    before = parallel.threads()
    yield
    parallel.set_threads(before)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """A pool of two threads for the test; the thread count restored after it."""
    before = parallel.threads()
    parallel.set_threads(2)
    yield
    parallel.set_threads(before)


def _runs(program: fast.Program, ids: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    full = program.forward(ids, valid)
    first, state = program.prefill(ids[:, :3], valid[:, :3])
    steps = [program.decode(state, ids[:, t], valid[:, t]) for t in range(3, ids.shape[1])]
    return [full, first, *steps]


@pytest.mark.parametrize("name", sorted(instances(kind="decoder")))
def test_every_family_is_bit_identical_on_one_thread_and_on_three(name: str, every_piece_parallel: None) -> None:
    config = instances(kind="decoder")[name]
    arch = build(config)
    theta = random_theta(arch, seed=3, std=0.3)
    rng = np.random.default_rng(0)
    B, T = 5, 7
    ids = rng.integers(0, arch.dim("n_vocab"), size=(B, T))
    valid = np.ones((B, T), dtype=bool)
    valid[1, :2] = False  # left padding
    valid[3, 5:] = False  # right padding
    for dtype in ("float32", "float64"):
        program = fast.compile(arch, theta, dtype, block=2)
        parallel.set_threads(1)
        alone = _runs(program, ids, valid)
        parallel.set_threads(3)  # more threads than some axes have: uneven shares, and empty ones
        threaded = _runs(program, ids, valid)
        for a, b in zip(alone, threaded, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} in {dtype}: threads changed a value")


def test_each_runs_every_item_once_and_splits_over_threads(two_threads: None) -> None:
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def record(i: int) -> None:
        with lock:
            seen.append((i, threading.current_thread().name))

    parallel.each(record, 10)
    assert sorted(i for i, _ in seen) == list(range(10))
    assert len({t for _, t in seen}) == 2, "two threads were asked for, but one ran every item"


def test_an_error_in_any_run_is_raised_after_every_run_finished(two_threads: None) -> None:
    done: list[int] = []

    def item(i: int) -> None:
        if i == 0:
            raise ValueError("item 0 is bad")
        done.append(i)

    with pytest.raises(ValueError, match="item 0 is bad"):
        parallel.each(item, 4)
    assert sorted(done) == [2, 3], "the other thread's run did not finish before the error was raised"


def test_a_run_inside_a_run_stays_on_its_thread(two_threads: None) -> None:
    inner: dict[int, set[str]] = {}

    def outer(i: int) -> None:
        names: set[str] = set()
        parallel.each(lambda _j: names.add(threading.current_thread().name), 4)
        inner[i] = names

    parallel.each(outer, 2)
    assert all(len(names) == 1 for names in inner.values()), "a nested run was handed to the pool (it could deadlock)"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_thread_count_that_is_not_a_whole_number_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"threads=.*, but expected a whole number ≥ 1"):
        parallel.set_threads(bad)  # type: ignore[arg-type]


def test_the_default_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPTSPEC_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert parallel.default_threads() == 1, "OPENBLAS_NUM_THREADS=1 gives the GEMMs one thread: the element-wise work gets one too"
    monkeypatch.setenv("GPTSPEC_THREADS", "3")
    assert parallel.default_threads() == 3
    monkeypatch.setenv("GPTSPEC_THREADS", "many")
    with pytest.raises(ConfigError, match=r"GPTSPEC_THREADS='many', but expected a whole number ≥ 1"):
        parallel.default_threads()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_runs_on_threads_of_its_own(two_threads: None) -> None:
    """verify forks its target's process from one that may have run fast/ already: the parent's pool
    must not be inherited (its threads do not exist in the child, and work queued there never runs)."""
    seen: list[str] = []
    parallel.each(lambda _i: seen.append(threading.current_thread().name), 2)  # the parent's pool exists now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report how many threads ran the items, then leave without pytest's teardown
        os.close(read)
        names: set[str] = set()
        lock = threading.Lock()

        def record(_i: int) -> None:
            with lock:
                names.add(threading.current_thread().name)

        parallel.each(record, 4)
        os.write(write, str(len(names)).encode())
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in parallel.each: it inherited the parent's pool")
    answer = os.read(read, 16).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == "2", f"the child ran 4 items on {answer or 'no'} threads, but expected 2"


def test_the_command_line_refuses_a_bad_thread_count_before_any_work(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Could not run (2) with the house message, not a check whose components each fail (1)."""
    from gptspec.cli import main

    monkeypatch.setenv("GPTSPEC_THREADS", "many")
    assert main(["check", "tiny", "--examples", "2"]) == 2
    err = capsys.readouterr().err
    assert "GPTSPEC_THREADS='many', but expected a whole number ≥ 1" in err and "unset it" in err
