"""The target in its own process: what makes ``gptspec verify`` a CI gate a target cannot fool
(docs/verify.md, "Isolation" and "What verify guarantees").

The parent — ``gptspec verify``, the pytest plugin — holds θ, the reference and the verdicts.
The target is imported, built and called in a child process (:mod:`gptspec.verify.child`),
which adapts it to the :class:`~gptspec.verify.implementation.Implementation` protocol exactly
as an in-process run does (:mod:`gptspec.verify.targets`). Children are forked from a
:class:`Zygote`: a process started as a fresh interpreter (``python -c …``, never forked from the
parent) that imports gptspec's loading code and the heavy libraries the parent has already
imported, never a target, and reports each child's exit status. :class:`Isolated` is the
protocol on the parent's side: ``model``, ``decode``, ``generate``, ``capture`` and ``op`` are
forwarded over a socket.

- **θ crosses once per θ**, as a file mapping: the parent writes the arrays once into a file
  under ``/dev/shm`` (a memory file system; the temporary directory elsewhere); the child maps
  it read-only and reads the arrays in place, without a copy. ids, masks and results are small
  and pickled over the socket.
- **Any way the child ends** — ``sys.exit(n)`` (0 included), ``os._exit(n)``, a signal, a crash
  in a C extension, the out-of-memory killer — ends the call with :class:`TargetDied`, a
  GptSpecError: the component is an error (exit 2), never a pass. The child catches
  ``SystemExit`` itself, so a ``sys.exit`` is reported with its code (``sys.exit('msg')``).
- **A call over its time limit** (``call_timeout``) kills the child and raises
  :class:`CallTimeout`: a failure of the component, with the input as the counterexample; the
  next call starts a new child. The whole run's limit (``deadline``) raises :class:`RunTimeout`.
- The child's **sys.path** is the parent's (with the current directory first when the parent
  has neither it nor ``""``, as an in-process run adds it); its **working directory** is the
  parent's; its standard output goes to the parent's standard error, so a target's prints never
  mix with a report written to standard output.

:class:`Guarded` gives an in-process run (``--in-process``, for debuggers; not for CI) the same
checks of what the target returns and the same read-only θ, without the process boundary.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from spec.errors import ConfigError

CALLS = ("model", "decode", "generate", "capture", "op", "can_decode", "can_generate", "can_capture", "can_pad", "can_load",
         "grad", "train_step")  # grad, train_step: gptspec/verify/grad.py (a torch target's gradients)
"""The Implementation methods forwarded to the child (present on the proxy only where the target has them)."""

ALIGN = 64


class TargetFailure(Exception):
    """The target ran but broke the contract in a way that is a failure of the component
    (exit 1), not a verdict on values: a hang, a write into its inputs."""


class CallTimeout(TargetFailure):
    """A call ran past its limit; the child was killed."""


class WroteInputs(TargetFailure):
    """The target wrote into the arrays it was given."""


class TargetDied(ConfigError):
    """The target's process ended (exit, signal, crash): the target failed to run (exit 2)."""


class RunTimeout(BaseException):
    """The whole run's time limit passed (a BaseException, so no handler of the target's
    exceptions swallows it; :func:`gptspec.verify.session.verify_target` reports it)."""


WROTE = "the target wrote into its inputs"


def wrote_into_inputs(error: BaseException) -> bool:
    """Whether ``error`` is numpy's refusal to write into a read-only array (θ handed to an
    Implementation, the ids of a call)."""
    return isinstance(error, ValueError) and "read-only" in str(error)


# -- θ as a file mapping -----------------------------------------------------------------------


def _shared_dir() -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="gptspec-verify-", dir=base)


Entries = list[tuple[str, Any, tuple[int, ...], int]]


def write_theta(path: str, theta: Mapping[str, np.ndarray]) -> tuple[int, Entries]:
    """Write θ's arrays into ``path`` (each at a 64-byte-aligned offset): (size, entries)."""
    entries: Entries = []
    offset = 0
    with open(path, "wb") as f:
        for name, value in theta.items():
            a = np.ascontiguousarray(value)
            pad = (-offset) % ALIGN
            if pad:
                f.write(b"\0" * pad)
                offset += pad
            entries.append((name, a.dtype, a.shape, offset))
            if a.nbytes:
                f.write(a.reshape(-1).view(np.uint8).data)
            offset += a.nbytes
    return offset, entries


def map_theta(path: str, size: int, entries: Entries) -> tuple[dict[str, np.ndarray], mmap.mmap | None]:
    """θ as read-only arrays over a read-only mapping of ``path`` (no copy)."""
    if size == 0:
        return {name: np.zeros(shape, dtype) for name, dtype, shape, _ in entries}, None
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    out = {}
    for name, dtype, shape, offset in entries:
        count = int(np.prod(shape, dtype=np.int64))
        out[name] = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
    return out, mapped


# -- the parent's side -------------------------------------------------------------------------


@dataclass
class Info:
    """What the child reports after loading the target."""

    label: str
    layout: str
    config: Any
    name: str
    dtype: str
    resizable: bool
    methods: tuple[str, ...]
    kind: str
    notes: tuple[str, ...] = ()
    """How the target was built and is called, and how its layout was inferred (for the report's header)."""
    layout_source: str = ""
    """An inferred layout as Python (gptspec/verify/layouts.py: layout_source), for the parent to register."""


def signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_end(code: int | None) -> str:
    """How a child process ended, as a reader wants it said."""
    if code is None:
        return "its process stopped answering"
    if code < 0:
        name = signal_name(code)
        why = {"SIGSEGV": "a crash in compiled code", "SIGBUS": "a crash in compiled code", "SIGABRT": "an abort",
               "SIGKILL": "killed, e.g. by the out-of-memory killer", "SIGFPE": "an arithmetic fault in compiled code"}.get(name, "")
        return f"its process was ended by {name}" + (f" ({why})" if why else "")
    return f"its process exited with status {code} (sys.exit or os._exit in the target's code)"


class Isolated:
    """The parent's proxy of a target running in a child process (module docstring)."""

    def __init__(self, target: str | bytes, options: Any, *, call_timeout: float | None = 60.0, deadline: float | None = None) -> None:
        self.target = target
        self.options = options
        self.call_timeout = call_timeout
        self.deadline = deadline
        self.info: Info | None = None
        self._pid: int | None = None
        self._zy: Zygote | None = None
        self._conn: Connection | None = None
        self._dir: str | None = None
        self._theta: object = None
        self._theta_token = 0
        self._theta_files: list[str] = []
        self._child_token = -1  # the θ the current child holds

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Info:
        """Start the child and load the target in it; a ConfigError says why it could not."""
        self._zy = _zygote()
        self._pid, self._conn = self._zy.fork()
        self._child_token = -1
        path = list(sys.path)
        if os.getcwd() not in path and "" not in path:
            path.insert(0, os.getcwd())
        request = {"target": self.target, "sys_path": path, "options": self.options, "layout": _layout_payload(getattr(self.options, "layout", None))}
        try:
            reply: Info = self._ask(("setup", request), "loading the target", self.call_timeout)
        except CallTimeout:
            raise ConfigError(f"the target did not finish loading within --call-timeout {self.call_timeout:g} s, but expected it to load "
                              "[gptspec verify]; it was stopped (a hang at import or while being built?)") from None
        self.info = reply
        return reply

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("close",))
            except OSError:
                pass
        self._stop(kill=False)
        if self._dir is not None:
            import shutil

            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._theta_files = []

    def _stop(self, kill: bool) -> int | None:
        """End the child (killed when ``kill``, else after it closes) and return how it ended."""
        pid, self._pid = self._pid, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        zy = self._zy
        if pid is None or zy is None:
            return None
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = zy.wait(pid, 10.0)
        if code is None and not kill:  # still running after its socket closed: it stopped answering; ended here
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            zy.wait(pid, 10.0)
            return None  # said as "its process stopped answering", not as the signal verify sent
        return code

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- talking -------------------------------------------------------------------------------

    def _ask(self, message: tuple[Any, ...], doing: str, limit: float | None) -> Any:
        """Send ``message`` and wait for the answer, at most ``limit`` seconds (and never past
        the run's deadline); the child's end, a timeout and the target's exceptions are raised
        as the module docstring says."""
        conn = self._conn
        if conn is None:  # started before asking
            raise TargetDied(f"target {self.target!r} has no running child to ask, but expected one started before the call [gptspec verify]")
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError):
            code = self._stop(kill=False)
            raise TargetDied(f"the target failed to run while {doing}: {describe_end(code)} [gptspec verify]") from None
        waited = limit
        hit_deadline = False
        if self.deadline is not None:
            left = max(0.0, self.deadline - time.monotonic())
            if waited is None or left < waited:
                waited, hit_deadline = left, True
        try:
            ready = conn.poll(waited)
        except (OSError, EOFError):
            ready = True
        if not ready:
            self._stop(kill=True)
            if hit_deadline:
                raise RunTimeout(f"the run went past --timeout while {doing}")
            raise CallTimeout(f"the target did not return within --call-timeout {limit:g} s while {doing}; it was stopped")
        try:
            reply = conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            code = self._stop(kill=False)
            raise TargetDied(f"the target failed to run while {doing}: {describe_end(code)} [gptspec verify]") from None
        status, value = reply
        if status == "ok":
            return value
        if status == "exit":
            self._stop(kill=False)
            raise TargetDied(f"the target failed to run while {doing}: it called sys.exit({value!r}) [gptspec verify]")
        if status == "wrote":
            raise WroteInputs(f"{WROTE} while {doing} ({value}); verify hands it read-only arrays it must not change")
        if status == "error":
            raise ConfigError(value)
        if status == "raised":
            raise TargetRaised(value)
        raise ConfigError(f"the target's process answered {status!r}, but expected ok or an error [gptspec verify]")

    def _theta_message(self, theta: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        if theta is self._theta and self._child_token == self._theta_token and self._theta_files:
            return ("same", self._theta_token)
        if theta is not self._theta or not self._theta_files:
            if self._dir is None:
                self._dir = _shared_dir()
            self._theta_token += 1
            path = os.path.join(self._dir, f"theta-{self._theta_token}.bin")
            size, entries = write_theta(path, theta)
            for old in self._theta_files:  # the child's mapping of the previous θ outlives its name
                try:
                    os.unlink(old)
                except OSError:
                    pass
            self._theta_files = [path]
            self._theta = theta
            self._meta = (size, entries)
        size, entries = self._meta
        return ("new", self._theta_token, self._theta_files[0], size, entries)

    def _ensure(self) -> None:
        if self._pid is None:
            self.start()

    def call(self, method: str, config: Any, theta: Mapping[str, np.ndarray] | None, args: tuple[Any, ...], doing: str) -> Any:
        self._ensure()
        theta_message = None if theta is None else self._theta_message(theta)
        reply = self._ask(("call", method, config, theta_message, args), doing, self.call_timeout)
        if theta_message is not None:
            self._child_token = self._theta_token
        return reply

    # -- the Implementation protocol ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._info().name

    @property
    def dtype(self) -> str:
        return self._info().dtype

    @property
    def resizable(self) -> bool:
        return self._info().resizable

    def _info(self) -> Info:
        if self.info is None:
            raise ConfigError("the target was not loaded, but expected Isolated.start() first [gptspec verify]")
        return self.info

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in CALLS or self.info is None or name not in self.info.methods:
            raise AttributeError(name)

        def forward(*args: Any) -> Any:
            if name == "op":
                op, inputs, params = args
                return self.call("op", None, None, (op, dict(inputs), dict(params)), f"running op {op.kind}")
            arch = args[0]
            if name.startswith("can_"):
                return self.call(name, arch.config, None, (), f"asking {name}")
            theta = args[1]
            return self.call(name, arch.config, theta, tuple(args[2:]), f"running {name}")

        return forward


def _layout_payload(name: str | None) -> bytes | None:
    """A layout registered in this process (a user's own, by register_layout), pickled for the
    child, which registers it too when its imports did not; None when there is none to send."""
    if name is None:
        return None
    from gptspec.checkpoint import LAYOUTS

    if name not in LAYOUTS:
        return None
    try:
        return pickle.dumps(LAYOUTS[name])
    except Exception:  # noqa: BLE001 - a layout holding lambdas: the child must register it itself (its module's import)
        return None


class TargetRaised(Exception):
    """The target raised an exception in its process (the message says which and where)."""


PRELOAD = ("gptspec.verify.child", "gptspec.verify.session", "gptspec.verify.targets", "gptspec.checkpoint")
"""What the zygote imports before forking children: gptspec's own loading machinery …"""
PRELOAD_IF_LOADED = ("numpy", "torch", "transformers", "safetensors", "ml_dtypes", "jax", "pytest", "hypothesis")
"""… and these libraries when the parent has imported them (a test session, the pytest plugin),
so each child starts with them at the cost of a fork. Never a target's own module."""


class Zygote:
    """The parent's handle on the zygote (:func:`gptspec.verify.child.zygote`): a clean process,
    started fresh (never forked from the parent), that forks one child per isolated run."""

    def __init__(self) -> None:
        import socket
        import threading

        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.retired = False
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        preload = list(PRELOAD) + [m for m in PRELOAD_IF_LOADED if m in sys.modules]
        preload += sorted(m for m in sys.modules if m.startswith("transformers.models.") and ".modeling_" in m)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = f"import sys; sys.path.insert(0, {root!r}); from gptspec.verify.child import zygote; zygote({theirs.fileno()}, {preload!r})"
        env = dict(os.environ)
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None, cwd=os.getcwd(), env=env)
        except OSError as error:
            raise ConfigError(f"the target's process could not be started ({error}), but expected a Python interpreter at {sys.executable} "
                              "[gptspec verify]; use --in-process to run the target in this process") from None
        finally:
            theirs.close()
        self.control = mine
        import atexit

        atexit.register(self.close)

    def close(self) -> None:
        """Close the zygote's socket (it exits) and reap it, so its time counts as this process's children's."""
        if self.owner != os.getpid():
            return
        try:
            self.control.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()

    def alive(self) -> bool:
        return self.owner == os.getpid() and not self.retired and self.proc.poll() is None

    def _request(self, message: tuple[Any, ...], fds: list[int], timeout: float | None) -> Any:
        """One request and its reply (one at a time: a lock for threads); a zygote that does not
        answer in time is retired, so no late reply can be read as another request's."""
        import socket

        with self.lock:
            try:
                self.control.settimeout(timeout)
                socket.send_fds(self.control, [pickle.dumps(message)], fds)
                data = self.control.recv(1 << 16)
                if not data:
                    raise OSError("the zygote closed its socket")
            except OSError:
                self.retired = True
                raise
            return pickle.loads(data)[1]  # noqa: S301 - our own zygote

    def fork(self) -> tuple[int, Connection]:
        import socket

        parent, child = socket.socketpair()
        try:
            pid = self._request(("fork", os.getcwd(), dict(os.environ)), [child.fileno()], 120.0)
        except OSError as error:
            parent.close()
            raise ConfigError(f"the target's process could not be started ({error}), but expected the verify zygote to fork it "
                              "[gptspec verify]; use --in-process to run the target in this process") from None
        finally:
            child.close()
        return int(pid), Connection(parent.detach())

    def wait(self, pid: int, timeout: float) -> int | None:
        """How child ``pid`` ended (negative: the signal), None if it has not within ``timeout``."""
        try:
            code = self._request(("wait", pid, timeout), [], timeout + 30.0)
        except OSError:  # TimeoutError included
            return None
        return None if code is None else int(code)


_ZYGOTE: Zygote | None = None


def _zygote() -> Zygote:
    global _ZYGOTE
    if _ZYGOTE is None or not _ZYGOTE.alive():
        _ZYGOTE = Zygote()
    return _ZYGOTE


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


# -- in-process: the same checks without the boundary ----------------------------------------------


def read_only(theta: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """θ as read-only views: a target that writes into them raises instead of changing the θ the
    reference judges with."""
    out = {}
    for name, value in theta.items():
        view = np.asarray(value).view()
        view.flags.writeable = False
        out[name] = view
    return out


def checked(impl: Any, method: str, label: str, args: tuple[Any, ...]) -> Any:
    """Call ``impl.method(*args)`` and check what it returns (gptspec/verify/returns.py):
    logits (B, T, n_vocab) for model/decode, tokens (B, n_new) for generate, triples for capture."""
    from gptspec.verify.returns import logits_array, op_array, tokens_array

    value = getattr(impl, method)(*args)
    if method in ("model", "decode"):
        arch, _, ids = args[0], args[1], args[2]
        return logits_array(value, label, (*ids.shape, arch.dim("n_vocab")))
    if method == "generate":
        ids, n_new = args[2], args[4]
        return tokens_array(value, label, (ids.shape[0], int(n_new)))
    if method == "op":
        return op_array(value, label)
    if method == "capture":
        out = []
        for item in value or []:
            try:
                path, what, array = item
                out.append((str(path), str(what), np.array(array, dtype=np.float64)))
            except (TypeError, ValueError):
                continue  # a capture is a diagnosis: an unreadable entry is not used
        return out
    return bool(value)


class Guarded:
    """An in-process Implementation with the isolated run's contract but not its boundary:
    read-only θ, fresh ids and masks every call, return values checked by name, and the
    target's own numpy error state around its calls only (verify's numerics keep theirs)."""

    def __init__(self, impl: Any, label: str, errstate: Mapping[str, Any] | None = None) -> None:
        self.impl = impl
        self.label = label
        self.errstate: dict[str, Any] = dict(errstate if errstate is not None else np.geterr())
        self._theta: object = None
        self._view: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        impl = self.__dict__["impl"]
        value = getattr(impl, name)
        if name not in CALLS or not callable(value):
            return value

        def call(*args: Any) -> Any:
            args = tuple(self._fresh(a) for a in args)
            if name not in ("op",) and not name.startswith("can_") and len(args) > 1:
                args = (args[0], self._read_only(args[1]), *args[2:])
            with np.errstate(**self.errstate):
                try:
                    return checked(impl, name, self.label, args)
                except ValueError as error:
                    if wrote_into_inputs(error):
                        raise WroteInputs(f"{WROTE} while running {name} ({error}); verify hands it read-only arrays it must not change") from None
                    raise

        return call

    def _read_only(self, theta: Any) -> Any:
        if theta is not self._theta:
            self._theta, self._view = theta, read_only(theta)
        return self._view

    @staticmethod
    def _fresh(value: Any) -> Any:
        return value.copy() if isinstance(value, np.ndarray) else value


__all__ = ["CallTimeout", "Guarded", "Info", "Isolated", "RunTimeout", "TargetDied", "TargetFailure", "TargetRaised", "WroteInputs"]
