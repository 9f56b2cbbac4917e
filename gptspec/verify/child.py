"""The child process of an isolated ``gptspec verify`` run (:mod:`gptspec.verify.isolate`).

Started by the parent as ``python -c "…; from gptspec.verify.child import main; main(FD)"`` with
one end of a socket pair. It loads the target exactly as an in-process run does
(:func:`gptspec.verify.session.setup`: same sys.path, same working directory, same adapters),
then answers calls until told to close. Every answer is ``(status, value)``:

- ``ok``: the value (logits, tokens, captures, an op's output, the setup's :class:`Info`);
- ``error``: a GptSpecError's message (a load failure, a return value refused by name);
- ``raised``: the target raised (type, message, where);
- ``wrote``: the target wrote into a read-only input;
- ``exit``: the target called ``sys.exit`` (its code).

An ``os._exit``, a signal or a crash answers nothing: the parent sees the process end.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from multiprocessing.connection import Connection
from typing import Any

import numpy as np


class Server:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.impl: Any = None
        self.label = ""
        self.archs: dict[Any, Any] = {}
        self.theta: dict[str, np.ndarray] | None = None
        self.token = -1
        self.mapped: Any = None

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "close":
                return
            if message[0] == "setup":
                reply = self.answer(lambda m=message: self.setup(m[1]))
            else:
                reply = self.answer(lambda m=message: self.call(*m[1:]))
            try:
                self.conn.send(reply)
            except Exception as error:  # noqa: BLE001 - a value that cannot be sent is the target's doing
                self.conn.send(("error", f"{self.label} returned a value verify could not pass on ({type(error).__name__}: {error}) [gptspec verify]"))

    def answer(self, run: Any) -> tuple[str, Any]:
        from gptspec.verify.isolate import wrote_into_inputs
        from gptspec.verify.session import raised
        from spec.errors import GptSpecError

        try:
            return "ok", run()
        except GptSpecError as error:
            return "error", str(error)
        except SystemExit as error:
            return "exit", error.code
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - whatever the target raised is reported, never fatal here
            if wrote_into_inputs(error):
                return "wrote", str(error)
            return "raised", f"the target raised {raised(error)}"

    def setup(self, request: dict[str, Any]) -> Any:
        from gptspec.verify.isolate import Info
        from gptspec.verify.session import setup
        from gptspec.verify.targets import classify

        sys.path[:] = request["sys_path"]
        if request.get("layout") is not None:
            import pickle

            from gptspec.checkpoint import LAYOUTS, register_layout

            lay = pickle.loads(request["layout"])  # noqa: S301 - the parent's own registered layout
            if lay.name not in LAYOUTS:
                register_layout(lay)
        target = request["target"]
        if isinstance(target, bytes):
            import pickle

            from gptspec.verify.session import user_code

            target = user_code("the target object", "unpickling it in its own process", lambda: pickle.loads(target))  # noqa: S301 - the parent's own object
        s = setup(target, request["options"])
        self.impl, self.label = s.impl, s.label
        self.archs[s.arch.config] = s.arch
        methods = tuple(m for m in ("model", "decode", "generate", "capture", "op", "can_decode", "can_generate", "can_capture", "can_pad")
                        if callable(getattr(s.impl, m, None))) + ("can_load",)  # identify asks whether a variant's Θ fits
        from gptspec.verify.grad import child_methods

        methods += child_methods(s.impl, s.arch)  # gradients of a torch target (gptspec/verify/grad.py)
        from gptspec.verify.layouts import layout_source

        lay = s.named_layout()
        source = layout_source(lay) if lay.name.startswith("auto-") else ""  # inferred here: the parent registers it too
        return Info(s.label, lay.name, s.arch.config, str(s.impl.name), str(s.impl.dtype if isinstance(s.impl.dtype, str) else np.dtype(s.impl.dtype).name),
                    bool(getattr(s.impl, "resizable", False)), methods, classify(s.obj), tuple(s.notes), source)

    def arch(self, config: Any) -> Any:
        if config not in self.archs:
            from spec import build

            if len(self.archs) > 16:
                self.archs.clear()
            self.archs[config] = build(config)
        return self.archs[config]

    def theta_for(self, message: tuple[Any, ...]) -> dict[str, np.ndarray]:
        from gptspec.verify.isolate import map_theta

        if message[0] == "same" and message[1] == self.token and self.theta is not None:
            return self.theta
        _, token, path, size, entries = message
        old = self.mapped
        self.theta, self.mapped = map_theta(path, size, entries)
        self.token = token
        if old is not None:
            try:
                old.close()
            except BufferError:
                pass  # the target keeps views of the previous θ: the mapping lives as long as they do
        return self.theta

    def call(self, method: str, config: Any, theta_message: tuple[Any, ...] | None, args: tuple[Any, ...]) -> Any:
        from gptspec.verify.isolate import checked

        if method == "op":
            return checked(self.impl, "op", self.label, args)
        arch = self.arch(config)
        if method in ("grad", "train_step"):  # gptspec/verify/grad.py: gradients of a torch target
            from gptspec.verify.grad import serve

            if theta_message is None:
                raise ValueError(f"a {method} call came without θ, but the protocol sends θ with every model-level call [gptspec verify child]")
            return serve(self.impl, method, arch, self.theta_for(theta_message), args)
        if method == "can_load":  # gptspec/verify/identify.py: the target built here for the variant takes its Θ
            from gptspec.verify.identify import loadable

            return loadable(self.impl, arch)
        if method.startswith("can_"):
            return bool(getattr(self.impl, method)(arch))
        if theta_message is None:  # the parent sends θ with every model-level call
            raise ValueError(f"a {method} call came without θ, but the protocol sends θ with every model-level call [gptspec verify child]")
        theta = self.theta_for(theta_message)
        return checked(self.impl, method, self.label, (arch, theta, *args))


def main(fd: int) -> None:
    conn = Connection(fd)
    os.dup2(2, 1)  # the target's prints go to standard error: standard output is the parent's report
    faulthandler.enable()  # a crash in compiled code prints where it happened
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        Server(conn).serve()
    finally:
        sys.stdout.flush()
    os._exit(0)  # nothing the target registered (atexit, threads) runs after the parent closed the run


def zygote(fd: int, preload: list[str]) -> None:
    """The clean process children are forked from (as multiprocessing's forkserver does, with
    the parent's exit-status reporting kept): started fresh by the parent, it imports the
    libraries the parent named (never a target), then forks one child per run on request, each
    in the parent's working directory and environment at that moment, and reports each child's
    exit status (negative: the signal) when asked. It ends when the parent closes its socket."""
    import importlib
    import pickle
    import socket
    import time

    control = socket.socket(fileno=fd)
    for name in preload:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a library that fails to import here is imported (and reported) by the child
            pass
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 20, 2)
        except OSError:
            break
        if not data:
            break
        request = pickle.loads(data)  # noqa: S301 - our own parent
        if request[0] == "fork":
            _, cwd, env = request
            pid = os.fork()
            if pid == 0:  # the child: a clean copy of this process, never returning here
                try:
                    control.close()
                    os.chdir(cwd)
                    os.environ.clear()
                    os.environ.update(env)
                    _reseed()
                except BaseException:  # noqa: BLE001 - the run reports the child's end
                    os._exit(70)
                main(fds[0])
            for f in fds:
                os.close(f)
            control.send(pickle.dumps(("pid", pid)))
        elif request[0] == "wait":  # at most the seconds asked, so a reply never comes late
            _, pid, seconds = request
            code: int | None = None
            give_up = time.monotonic() + seconds
            while True:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > give_up:
                    break
                time.sleep(0.005)
            control.send(pickle.dumps(("code", code)))
    os._exit(0)


def _reseed() -> None:
    """Fresh random state in each forked child, as a new interpreter would have."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        np.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()
