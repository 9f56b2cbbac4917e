"""Reading and writing files so that bad input ends in a typed error, never in a traceback, a
hang, a half-written file or a silently wrong result.

Reading (:func:`read_bytes`, :func:`read_text`, :func:`read_stdin`, :func:`read_json`,
:func:`loads_json`, :func:`open_regular`):

* a path is opened without blocking (``O_NONBLOCK``), so a FIFO no process writes to reads as
  empty instead of hanging; then it is read in chunks up to a cap (``max_bytes``), so
  ``/dev/zero`` or a huge file is refused instead of exhausting memory; a directory is refused;
* text must be UTF-8: the first invalid byte is named with its offset;
* JSON must be standard JSON: nesting deeper than :data:`MAX_JSON_DEPTH` is refused *before*
  parsing (so a 100,000-deep ``[[[…`` is a clean error, never a ``RecursionError``), as are
  ``NaN``/``Infinity`` (not JSON, though Python's parser accepts them), numbers that overflow a
  float (``1e999``), integers too long to convert, and an object naming a key twice.

Which error: a path that cannot be opened or read as asked (missing, a directory, a symlink
loop, unreadable, larger than the cap) is a :class:`~spec.errors.FileError`; content that is
not what was expected (not UTF-8, not JSON) is the caller's ``error`` class (default
:class:`~spec.errors.CheckpointError` for JSON, :class:`~spec.errors.FileError` for text).

Writing (:func:`write_atomic`, :func:`write_bytes`, :func:`write_text`, :func:`write_npy`,
:func:`atomic_directory`, :func:`check_output_path`):

* the bytes go to a temporary sibling (``.NAME.RANDOM.tmp`` in the same directory), which is
  renamed onto the path only once everything is written (``os.replace``, atomic on POSIX); on
  any failure — a full device (ENOSPC), a file-size limit (EFBIG: ``SIGXFSZ`` is ignored while
  writing, so ``RLIMIT_FSIZE`` fails the write instead of killing the process), an exception, an
  interrupt — the temporary file is removed and the path is untouched;
* exactly the given path is written (no suffix is ever appended, unlike ``np.save``), and the
  functions return it so callers print the name they wrote;
* refused before anything is written: an empty path, a missing parent directory, a parent that
  is not a directory, a directory at a file's path, a file at a directory's path;
* a symlink at the path is followed (its target is replaced, the link stays); an existing FIFO or
  character device (``/dev/null``, ``/dev/stdout``) is written as a stream — there is no file to
  replace — and a FIFO no process reads from is refused rather than waited on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn

import numpy as np
import numpy.typing as npt

from spec.errors import CheckpointError, FileError, GptSpecError, ShapeError

PathLike = str | os.PathLike[str]
ErrorClass = type[GptSpecError]

MAX_FILE_BYTES = 100_000_000
"""The default cap of :func:`read_json` and of tokenizer files (100 MB, the largest safetensors
header the reference implementation accepts): far above any real config.json, vocab.json or
merges.txt, far below what would exhaust memory."""

MAX_TEXT_BYTES = 256 * 2**20
"""The default cap of :func:`read_text` and :func:`read_stdin` (256 MiB): text to encode, a
prompt, a corpus file. A larger corpus can be given as several files (each is a document)."""

MAX_JSON_DEPTH = 100
"""The deepest JSON nesting accepted (real config.json, vocab.json and safetensors headers nest
at most 4 deep); deeper input is refused before it is parsed."""

CHUNK_BYTES = 1 << 20
"""Reads are made in chunks of this size."""


# -- describing paths and OS errors --------------------------------------------------------------


def kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: "a regular file", "a directory", "a FIFO", …"""
    for test, name in (
        (stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "a special file"


_PROBLEMS = {
    errno.ENOENT: "does not exist",
    errno.ELOOP: "is a symlink loop (too many levels of symbolic links)",
    errno.EACCES: "is not accessible (permission denied)",
    errno.EPERM: "is not accessible (operation not permitted)",
    errno.ENOTDIR: "has a component that is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "is too long a name",
    errno.ENXIO: "has no process at its other end (a FIFO no one reads, or a socket)",
    errno.ENOSPC: "could not be written: the device is full (no space left)",
    errno.EDQUOT: "could not be written: the disk quota is exhausted",
    errno.EFBIG: "could not be written: the file-size limit was reached (ulimit -f)",
    errno.EROFS: "is on a read-only file system",
    errno.EIO: "could not be read or written (an I/O error)",
}


def os_problem(error: OSError) -> str:
    """An OSError's errno in words (the OS's own text for the rare ones not listed). An error
    without an errno is a short write reported by a library (numpy's "N requested and M
    written"): a full device or a size limit."""
    if error.errno is None:
        return f"could not be written completely ({error}): the device is full or a file-size limit was reached"
    return _PROBLEMS.get(error.errno) or f"could not be accessed ({error.strerror or error})"


def shown(path: PathLike) -> str:
    """A path for a one-line message: as it is when printable, else its ``repr`` (a name with
    a newline or a control character must not break the line)."""
    text = os.fspath(path)
    text = text if isinstance(text, str) else repr(text)
    return text if text.isprintable() else repr(text)


def _error(path: str, problem: str, expected: str, where: str, fix: str = "") -> FileError:
    text = f"path={shown(path)} {problem}, but expected {expected} [{where}]"
    return FileError(f"{text}; {fix}" if fix else text)


def _name(path: PathLike, where: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise FileError(f"path={path!r} of type {type(path).__name__}, but expected a str or os.PathLike [{where}]")
    name = os.fspath(path)
    if not isinstance(name, str):
        raise FileError(f"path={name!r}, but expected a text path, not bytes [{where}]")
    if name == "":
        raise FileError(f"path='', but expected a file or directory name [{where}]")
    if "\0" in name:
        raise FileError(f"path={name!r} contains a NUL character, but expected a file name [{where}]")
    return name


def as_path(path: PathLike, where: str) -> Path:
    """``path`` as a :class:`Path`, refusing (:class:`FileError`) anything that is not a
    non-empty text path: ``None``, a number, bytes, ``""``, a name with a NUL character."""
    return Path(_name(path, where))


# -- reading -----------------------------------------------------------------------------------------


def _open_for_reading(name: str, where: str) -> int:
    """A read-only descriptor, opened without blocking (so a FIFO with no writer does not hang)
    and then switched to blocking reads."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        raise _error(name, os_problem(error), "a readable file", where) from None
    try:
        os.set_blocking(fd, True)  # reads may wait for a writer that exists; with none, a FIFO reads as empty
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_all(fd: int, name: str, size_hint: int, max_bytes: int, where: str) -> bytes:
    buffer = bytearray()
    while True:
        try:
            chunk = os.read(fd, min(CHUNK_BYTES, max_bytes + 1 - len(buffer)))
        except OSError as error:
            raise _error(name, os_problem(error), "a readable file", where) from None
        if not chunk:
            return bytes(buffer)
        buffer += chunk
        if len(buffer) > max_bytes:
            raise _error(
                name, f"holds more than {max_bytes:,} bytes" + (f" ({size_hint:,})" if size_hint > max_bytes else ""),
                f"at most {max_bytes:,} bytes", where,
                "this is not a file gptspec reads whole (an endless device such as /dev/zero, or the wrong file)",
            )


def read_bytes(path: PathLike, where: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path``: a regular file, a FIFO or a character device (read until its
    end); refused with a :class:`FileError` when it is missing, a directory, unreadable, or
    longer than ``max_bytes``. Never blocks on opening and never reads more than
    ``max_bytes + 1`` bytes."""
    name = _name(path, where)
    fd = _open_for_reading(name, where)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _error(name, "is a directory", "a file", where)
        if stat.S_ISREG(info.st_mode):
            if info.st_size > max_bytes:
                raise _error(name, f"holds {info.st_size:,} bytes", f"at most {max_bytes:,} bytes", where, "this is not a file gptspec reads whole")
        return _read_all(fd, name, info.st_size, max_bytes, where)
    finally:
        os.close(fd)


def decode_utf8(data: bytes, source: str, where: str, error: ErrorClass = FileError) -> str:
    """``data`` as UTF-8 (strict); the first invalid byte is named with its offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failure:
        raise error(
            f"byte {failure.start} of {source}=0x{data[failure.start]:02X}, but expected UTF-8 text [{where}]; "
            "convert it to UTF-8 (e.g. iconv -t UTF-8)"
        ) from None


def read_text(path: PathLike, where: str, max_bytes: int = MAX_TEXT_BYTES, error: ErrorClass = FileError) -> str:
    """The UTF-8 text of ``path``, exactly (no newline translation): :func:`read_bytes`, then a
    strict decoding whose failure is an ``error`` naming the byte offset."""
    data = read_bytes(path, where, max_bytes)
    return decode_utf8(data, shown(path), where, error)


def read_stdin(where: str, max_bytes: int = MAX_TEXT_BYTES, error: ErrorClass = FileError) -> str:
    """Standard input as UTF-8 text, read as bytes (whatever the locale) up to ``max_bytes``."""
    stream: IO[Any] | None = sys.stdin
    if stream is None:
        raise FileError(f"standard input is closed, but expected text on it [{where}]")
    raw = getattr(stream, "buffer", None)
    try:
        if raw is None:  # a text stream without bytes underneath (tests, embedding)
            text = stream.read(max_bytes + 1)
            if not isinstance(text, str):
                raise FileError(f"standard input gave {type(text).__name__}, but expected text [{where}]")
            try:
                data = text.encode("utf-8", errors="surrogateescape")  # undo the locale's escapes
            except UnicodeEncodeError:
                data = text.encode("utf-8", errors="surrogatepass")  # other lone surrogates: invalid bytes
        else:
            parts: list[bytes] = []
            total = 0
            while total <= max_bytes:
                chunk = raw.read1(CHUNK_BYTES) if hasattr(raw, "read1") else raw.read(CHUNK_BYTES)
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
            data = b"".join(parts)
    except OSError as failure:
        raise FileError(f"standard input {os_problem(failure)}, but expected readable text [{where}]") from None
    if len(data) > max_bytes:
        raise FileError(
            f"standard input holds more than {max_bytes:,} bytes, but expected at most {max_bytes:,} bytes [{where}]; "
            "give a smaller input, or several files"
        )
    return decode_utf8(data, "standard input", where, error)


def open_regular(path: PathLike, where: str) -> tuple[BinaryIO, int]:
    """A regular file opened for binary reading (and seeking), with its size. Anything else — a
    directory, a FIFO, a device, a symlink loop, a missing or unreadable path — is a
    :class:`FileError`; the open never blocks."""
    name = _name(path, where)
    fd = _open_for_reading(name, where)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _error(name, f"is {kind(info.st_mode)}", "a regular file", where)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


# -- JSON ----------------------------------------------------------------------------------------------

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (brackets inside strings do
    not count), computed without recursion and without parsing: linear in the length."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


class _Refused(ValueError):
    """Raised by the parser hooks; carries the house message's first part."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Refused(f"the JSON names {key!r} twice, but expected each key once")
        seen[key] = value
    return seen


def _constant(name: str) -> NoReturn:
    raise _Refused(f"the JSON holds {name}, but expected standard JSON numbers (NaN and Infinity are not JSON)")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the JSON number {text[:40]} overflows a float, but expected a finite number")
    return value


def loads_json(text: str, where: str, error: ErrorClass = CheckpointError, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse standard JSON ``text``: nesting deeper than ``max_depth`` (checked before parsing,
    so never a ``RecursionError``), ``NaN``/``Infinity``, numbers that overflow a float,
    integers too long to convert and repeated keys are refused with ``error``."""
    if not isinstance(text, str):
        raise error(f"JSON of type {type(text).__name__}, but expected a str [{where}]")
    if not text.strip():
        raise error(f"JSON text is empty, but expected a JSON value [{where}]")
    depth = json_depth(text)
    if depth > max_depth:
        raise error(
            f"JSON nesting depth={depth}, but expected depth ≤ {max_depth} [{where}]; "
            "no file gptspec reads nests this deep: the file is corrupt or hostile"
        )
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float)
    except _Refused as refused:
        raise error(f"{refused} [{where}]") from None
    except json.JSONDecodeError as failure:
        raise error(
            f"JSON line {failure.lineno} column {failure.colno}: {failure.msg}, but expected valid JSON [{where}]"
        ) from None
    except ValueError as failure:  # e.g. an integer longer than Python converts (sys.get_int_max_str_digits)
        raise error(f"JSON {failure}, but expected valid JSON [{where}]") from None
    except RecursionError:  # unreachable after the depth check, unless the caller's stack is already deep
        raise error(f"JSON nesting too deep for the parser, but expected depth ≤ {max_depth} [{where}]") from None


def read_json(path: PathLike, where: str, error: ErrorClass = CheckpointError, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """The JSON value in the file ``path`` (:func:`read_text` then :func:`loads_json`): path
    problems are :class:`FileError`; content that is not UTF-8 or not standard JSON is
    ``error``, naming the file."""
    text = read_text(path, where, max_bytes, error)
    return loads_json(text, f"{shown(path)}, {where}", error)


# -- writing -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_size_limit_as_error() -> Iterator[None]:
    """While writing, ignore ``SIGXFSZ``: a write beyond ``RLIMIT_FSIZE`` then fails with
    ``EFBIG`` (an OSError we report) instead of killing the process. CPython's own start-up
    already ignores it; this makes sure of it when an embedding program has restored the
    default. Only the main thread may change signal handlers; elsewhere this does nothing."""
    number = getattr(signal, "SIGXFSZ", None)
    if number is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(number, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(number, previous if previous is not None else signal.SIG_DFL)


def check_output_path(path: PathLike, where: str, directory: bool = False) -> Path:
    """Where an output will go, checked before any work is done: the path (a symlink's target
    when it is a symlink) whose parent must be an existing directory. For a file output an
    existing directory is refused; for a directory output an existing non-directory is
    refused. Raises :class:`FileError`; returns the path to write."""
    name = _name(path, where)
    if os.path.islink(name):
        try:
            os.stat(name)
        except OSError as error:
            if error.errno != errno.ENOENT:  # a dangling link is written through; a loop is refused
                raise _error(name, os_problem(error), "a path that can be written", where) from None
        name = os.path.realpath(name)
    expected = "a directory to write into" if directory else "a file name to write"
    try:
        info = os.stat(name)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise _error(name, os_problem(error), expected, where) from None
    if info is not None:
        if directory and not stat.S_ISDIR(info.st_mode):
            raise _error(name, f"is {kind(info.st_mode)}", expected, where, "give the name of a new or existing directory")
        if not directory and stat.S_ISDIR(info.st_mode):
            raise _error(name, "is a directory", expected, where, "give a file name (inside it, or elsewhere)")
    parent = os.path.dirname(os.path.abspath(name))
    try:
        parent_info = os.stat(parent)
    except OSError as error:
        fix = f"create it first (mkdir -p {parent})" if error.errno == errno.ENOENT else ""
        raise _error(parent, os_problem(error), f"an existing directory to hold {os.path.basename(name)}", where, fix) from None
    if not stat.S_ISDIR(parent_info.st_mode):
        raise _error(parent, f"is {kind(parent_info.st_mode)}", f"a directory to hold {os.path.basename(name)}", where)
    return Path(name)


def _refused_entry(error: OSError) -> str:
    """Why a new entry could not be made in an existing directory (a read-only or special file
    system such as /proc refuses with errors that would otherwise read as "does not exist")."""
    return f"refused a new file ({error.strerror or error})" if error.errno in (errno.ENOENT, errno.ENOTDIR) else os_problem(error)


def _temporary_name(target: Path) -> Path:
    """A fresh name beside ``target`` (short enough for any file-name limit)."""
    absolute = Path(os.path.abspath(target))
    return absolute.parent / f".{(absolute.name or 'out')[:40]}.{secrets.token_hex(6)}.tmp"


def _write_stream(target: Path, write: Callable[[BinaryIO], object], where: str) -> None:
    """An existing FIFO or character device: opened without blocking (a FIFO no one reads is
    refused, not waited on), then written."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        raise _error(str(target), os_problem(error), "a writable stream", where) from None
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as stream:
            write(stream)
    except OSError as error:
        raise _error(str(target), os_problem(error), "a writable stream", where) from None


def write_atomic(path: PathLike, write: Callable[[BinaryIO], object], where: str = "write") -> Path:
    """Write a file by ``write(binary_file)``, atomically: into a temporary sibling, then
    renamed onto the path; on any failure nothing is left behind (module docstring). Returns
    the path written — exactly ``path`` (through a symlink, its target)."""
    target = check_output_path(path, where)
    try:
        mode: int | None = os.stat(target).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):  # a FIFO or a device: nothing to replace
        with file_size_limit_as_error():
            _write_stream(target, write, where)
        return target
    temporary = _temporary_name(target)
    with file_size_limit_as_error():
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise _error(str(temporary.parent), _refused_entry(error), f"a directory where {target.name} can be written", where) from None
        try:
            with os.fdopen(fd, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException as failure:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(failure, OSError):
                raise _error(str(target), os_problem(failure), "a file that can be written", where) from None
            raise
    return target


def write_bytes(path: PathLike, data: bytes, where: str = "write") -> Path:
    """:func:`write_atomic` of ``data``."""
    return write_atomic(path, lambda stream: stream.write(data), where)


def write_text(path: PathLike, text: str, where: str = "write") -> Path:
    """:func:`write_atomic` of ``text`` in UTF-8 (exactly: no newline translation)."""
    return write_bytes(path, text.encode("utf-8"), where)


def write_npy(path: PathLike, array: npt.ArrayLike, where: str = "write .npy") -> Path:
    """Write ``array`` in numpy's ``.npy`` format to exactly ``path`` (``np.save`` given a name
    would append ``.npy``; given a file object it does not), atomically; returns the path."""
    value = np.asarray(array)
    if value.dtype.hasobject:
        raise ShapeError(f"array dtype={value.dtype}, but expected numbers [{where}]; .npy files are written without pickles")
    return write_atomic(path, lambda stream: np.save(stream, value, allow_pickle=False), where)


@contextlib.contextmanager
def atomic_directory(path: PathLike, where: str = "write", owned: Collection[str] = ()) -> Iterator[Path]:
    """Build a directory of files and put it in place only on success::

        with atomic_directory(out, "gptspec bpe train", owned=("a.json", "b.txt")) as building:
            (building / "a.json").write_text(...)

    The body writes plain files (no subdirectories) into ``building``, a temporary sibling of
    ``path``. On success: when ``path`` does not exist, the temporary directory is renamed to it
    (atomically); when it is an existing directory, each file written replaces its namesake
    (``os.replace``, atomic per file) and every name in ``owned`` that was not written is
    removed, so the directory never holds a mixture of an old and a new result; other files in
    it are left alone. Every name is checked before anything is replaced. On any failure
    (an exception in the body, a full device, a size limit) the temporary directory is removed
    and ``path`` is untouched. A regular file at ``path``, a missing parent, … are refused
    (:func:`check_output_path`) before the body runs."""
    target = check_output_path(path, where, directory=True)
    building = _temporary_name(target)
    try:
        os.mkdir(building, 0o777)
    except OSError as error:
        raise _error(str(building.parent), _refused_entry(error), f"a directory where {target.name} can be written", where) from None
    with file_size_limit_as_error():
        try:
            yield building
            _install(building, target, owned, where)
        except BaseException as failure:
            shutil.rmtree(building, ignore_errors=True)
            if isinstance(failure, OSError):
                raise _error(str(target), os_problem(failure), "a directory that can be written", where) from None
            raise


def _install(building: Path, target: Path, owned: Collection[str], where: str) -> None:
    names = sorted(os.listdir(building))
    for name in names:
        if not stat.S_ISREG(os.lstat(building / name).st_mode):
            raise FileError(f"{building / name} is not a regular file, but expected only files [{where}]; atomic_directory holds files")
    if not os.path.isdir(target):
        os.rename(building, target)  # atomic; also onto an empty directory created meanwhile
        return
    for name in {*names, *owned}:
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(target / name).st_mode
            if stat.S_ISDIR(mode):
                raise _error(str(target / name), "is a directory", "a file gptspec may replace", where, "move it away first")
    for name in names:
        os.replace(building / name, target / name)
    for name in set(owned) - set(names):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target / name)
    os.rmdir(building)


__all__ = [
    "CHUNK_BYTES", "MAX_FILE_BYTES", "MAX_JSON_DEPTH", "MAX_TEXT_BYTES", "as_path", "atomic_directory", "check_output_path",
    "decode_utf8", "file_size_limit_as_error", "json_depth", "kind", "loads_json", "open_regular", "os_problem",
    "read_bytes", "read_json", "read_stdin", "read_text", "shown", "write_atomic", "write_bytes", "write_npy", "write_text",
]
