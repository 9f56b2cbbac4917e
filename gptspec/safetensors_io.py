"""A small reader and writer of the safetensors format, with no dependency but numpy.

The format (https://github.com/huggingface/safetensors, "Format"):

    [8 bytes]  N, the header length, an unsigned little-endian 64-bit integer
    [N bytes]  a UTF-8 JSON object: name → {"dtype": "F32", "shape": [2, 3],
               "data_offsets": [begin, end]}, and optionally "__metadata__": {str: str};
               it may be padded at the end with spaces
    [rest]     the byte buffer: each tensor's raw little-endian, row-major data at
               [begin, end) relative to the start of the buffer

As the reference implementation does, the reader refuses a header that is not such an object,
an unknown dtype, offsets that do not match the shape, overlap or leave holes, and a buffer
shorter (truncated) or longer than the offsets say; also header entries of the wrong JSON type
(``"dtype": ["F32"]``, a shape of strings, offsets that are floats, metadata that is not an object
of strings) and JSON nested deeper than :data:`gptspec.files.MAX_JSON_DEPTH`. Every such refusal
is a :class:`~spec.errors.CheckpointError` naming the file and the tensor; a path that is not a
readable regular file (missing, a directory, a FIFO, a symlink loop) is a
:class:`~spec.errors.FileError`, and so is a write that fails (:func:`write` is atomic:
:func:`gptspec.files.write_atomic`).

Reading keeps each tensor in a numpy dtype that holds it exactly: F64, F32, F16 and the integer
types as themselves, BF16 as float32 (a bfloat16 is the top half of a float32: its bits
shifted left by 16). Writing takes float64 and float32 arrays.

For checkpoints larger than memory, :func:`map_tensor` gives one tensor as an array over a
memory map of just its bytes (read from storage only as it is used, unmapped when the array is
dropped), and :func:`to_float64` converts such an array to float64 a chunk at a time, so that
neither the file nor a whole-tensor temporary is ever resident at once.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from gptspec.files import as_path, loads_json, open_regular, os_problem, shown, write_atomic
from spec.errors import CheckpointError

PathLike = str | os.PathLike[str]

MAX_HEADER_BYTES = 100_000_000
"""The largest header the reference implementation accepts (100 MB); a larger length field is
a corrupt or non-safetensors file."""

DTYPES: dict[str, np.dtype[np.generic]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to float32 on reading
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
"""The safetensors dtypes this reader understands, and the layout of one element of each.
Others (F8_*, F4, F6_*, complex, …) are refused: their values need rounding rules we do not
define."""

MAX_NDIM = 32
"""The most axes a tensor may have (numpy's own limit is 64 since 2.0; no model needs more than
a handful)."""

WRITABLE: dict[np.dtype[np.generic], str] = {np.dtype("float64"): "F64", np.dtype("float32"): "F32"}
"""The numpy dtypes :func:`write` accepts, and their safetensors names."""


@dataclass(frozen=True)
class TensorInfo:
    """One header entry: dtype name, shape, and the byte range in the buffer."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A parsed, validated header: tensors in file order, metadata, and where the buffer starts."""

    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int


def _fail(path: Path, tensor: str | None, message: str, fix: str = "") -> CheckpointError:
    if tensor is not None and not tensor.isprintable():
        tensor = repr(tensor)  # a name with a newline must not break the message's line
    where = f"safetensors file {shown(path)}" + (f", tensor {tensor}" if tensor is not None else "")
    text = f"{message} [{where}]"
    return CheckpointError(f"{text}; {fix}" if fix else text)


def read_header(path: PathLike) -> Header:
    """Parse and validate the header of ``path`` without reading any tensor data."""
    p = as_path(path, "safetensors read_header")
    stream, size = open_regular(p, f"safetensors file {p}")
    try:
        with stream as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _fail(
                    p, None, f"file size={size} bytes, but expected at least 8 (the header length)",
                    "the file is truncated or not safetensors",
                )
            n = int.from_bytes(prefix, "little")
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise _fail(
                    p, None,
                    f"header length={n}, but expected at most min({MAX_HEADER_BYTES}, file size − 8 = {size - 8})",
                    "the file is truncated or not safetensors",
                )
            raw = f.read(n)
    except OSError as error:
        raise _fail(p, None, f"file {os_problem(error)}, but expected a readable file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _fail(p, None, f"header byte {error.start}=0x{raw[error.start]:02X}, but expected UTF-8 JSON") from None
    where = f"safetensors file {p}, header"
    parsed = loads_json(text, where) if text.startswith("{") else None
    if not isinstance(parsed, dict):
        raise _fail(p, None, f"header starts {text[:20]!r}, but expected a JSON object", "this is not a safetensors file")
    metadata = parsed.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _fail(p, None, f"__metadata__={_short(metadata)}, but expected an object of strings to strings")
    tensors = {name: _entry(p, name, value) for name, value in parsed.items()}
    _check_layout(p, tensors, size - 8 - n)
    return Header(p, tensors, dict(metadata), 8 + n)


def _short(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(path: Path, name: str, value: object) -> TensorInfo:
    """Validate one header entry (its JSON types first, then its values)."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise _fail(path, name, f"header entry={_short(value)}, but expected an object with keys dtype, shape, data_offsets")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise _fail(
            path, name, f"dtype={_short(dtype)}, but expected one of {list(DTYPES)}",
            "convert the tensor to one of these (e.g. float32) before saving",
        )
    if not isinstance(shape, list) or not all(_whole(d) and d >= 0 for d in shape):
        raise _fail(path, name, f"shape={_short(shape)}, but expected a list of whole numbers ≥ 0")
    if len(shape) > MAX_NDIM or math.prod(d for d in shape if d) * DTYPES[dtype].itemsize >= 2**63:
        raise _fail(
            path, name, f"shape of {len(shape)} axes, {_short(shape)}, but expected at most {MAX_NDIM} axes "
            "whose non-zero sizes span fewer than 2^63 bytes", "the header is corrupt",
        )
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(o) for o in offsets) or not 0 <= offsets[0] <= offsets[1]:
        raise _fail(path, name, f"data_offsets={_short(offsets)}, but expected [begin, end], whole numbers with 0 ≤ begin ≤ end")
    begin, end = offsets
    want = math.prod(shape) * DTYPES[dtype].itemsize
    if end - begin != want:
        raise _fail(
            path, name,
            f"data_offsets={offsets} span {end - begin} bytes, but expected shape {tuple(shape)} × "
            f"{DTYPES[dtype].itemsize} bytes ({dtype}) = {want}",
        )
    return TensorInfo(dtype, tuple(shape), begin, end)


def _check_layout(path: Path, tensors: Mapping[str, TensorInfo], buffer_size: int) -> None:
    """The tensors tile the buffer exactly: sorted by begin, each starts where the previous
    ended, the first at 0, and the last ends at the end of the file."""
    position, previous = 0, None
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != position:
            what = "overlaps" if info.begin < position else "leaves a hole after"
            raise _fail(
                path, name,
                f"data_offsets begin={info.begin}, but expected begin={position} "
                f"(it {what} {previous if previous is not None else 'the start of the buffer'})",
                "the header is corrupt",
            )
        if info.end > buffer_size:
            raise _fail(
                path, name,
                f"data_offsets end={info.end}, but expected end ≤ {buffer_size} (the bytes after the header)",
                "the file is truncated: download or copy it again",
            )
        position, previous = info.end, name
    if position != buffer_size:
        raise _fail(
            path, None,
            f"buffer size={buffer_size} bytes, but expected {position} (the end of the last tensor)",
            "the file has trailing bytes or the header is corrupt",
        )


def read(path: PathLike, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors of ``path`` (all, or those in ``names``), in file order, each as a numpy
    array that holds it exactly (BF16 widened to float32)."""
    header = read_header(path)
    return read_tensors(header, names)


def read_tensors(header: Header, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors of an already parsed header (all, or those in ``names``)."""
    if not isinstance(header, Header):
        raise CheckpointError(f"header of type {type(header).__name__}, but expected a Header from read_header [safetensors read_tensors]")
    if isinstance(names, (str, bytes)) or (names is not None and not isinstance(names, Iterable)):
        raise CheckpointError(f"names={_short(names)}, but expected a collection of tensor names or None [safetensors file {header.path}]")
    wanted = list(header.tensors) if names is None else list(names)
    for name in wanted:
        if name not in header.tensors:
            raise _fail(header.path, name, "the tensor is missing, but expected it in the header")
    out: dict[str, np.ndarray] = {}
    stream, _ = open_regular(header.path, f"safetensors file {header.path}")
    try:
        with stream as f:
            for name in wanted:
                out[name] = _decode(_read_span(f, header, name), header.tensors[name])
    except OSError as error:
        raise _fail(header.path, None, f"file {os_problem(error)}, but expected a readable file") from None
    return out


def _read_span(f: BinaryIO, header: Header, name: str) -> bytes:
    info = header.tensors[name]
    f.seek(header.data_start + info.begin)
    raw = f.read(info.end - info.begin)
    if len(raw) != info.end - info.begin:  # the file shrank since the header was read
        raise _fail(
            header.path, name, f"read {len(raw)} bytes, but expected {info.end - info.begin}",
            "the file is truncated: download or copy it again",
        )
    return raw


def _decode(raw: bytes, info: TensorInfo) -> np.ndarray:
    array = np.frombuffer(raw, dtype=DTYPES[info.dtype]).reshape(info.shape)  # the header check makes the shape valid
    if info.dtype == "BF16":
        bits: npt.NDArray[np.uint32] = array.astype(np.uint32) << np.uint32(16)
        return bits.view(np.float32)  # bfloat16 = the top 16 bits of a float32
    return array.astype(array.dtype.newbyteorder("="))  # a native-order, writable copy


def map_tensor(header: Header, name: str) -> np.ndarray:
    """Tensor ``name`` as a read-only array over a memory map of its bytes alone: nothing is read
    until the array is used, and the map is released when the array and every view of it are
    dropped (so a large checkpoint never has more than the tensor in use mapped). The dtype is
    the stored one, BF16 as its raw bits (uint16; :func:`to_float64` widens them)."""
    if not isinstance(header, Header) or name not in header.tensors:
        raise CheckpointError(f"tensor {name!r} is not in the header, but expected one of its tensors [safetensors map_tensor]")
    info = header.tensors[name]
    dtype = DTYPES[info.dtype]
    start, length = header.data_start + info.begin, info.end - info.begin
    if length == 0:
        return np.zeros(info.shape, dtype=dtype)
    stream, size = open_regular(header.path, f"safetensors file {header.path}")
    end = header.data_start + max(t.end for t in header.tensors.values())
    try:
        with stream as f:
            if size != end:  # mapping past the end of a file that shrank would crash on access (SIGBUS)
                raise _fail(header.path, name, f"file size={size} bytes, but expected {end} as when its header was read",
                            "the file changed while it was being read: copy it again")
            aligned = start - start % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(f.fileno(), length + start - aligned, offset=aligned, access=mmap.ACCESS_READ)
    except OSError as error:
        raise _fail(header.path, name, f"file {os_problem(error)}, but expected a readable file") from None
    array = np.frombuffer(mapped, dtype=dtype, count=math.prod(info.shape), offset=start - aligned)
    return array.reshape(info.shape)


CONVERT_CHUNK = 1 << 22
"""Elements converted at once by :func:`to_float64` (32 MiB of float64)."""


def to_float64(array: np.ndarray, stored: str) -> tuple[np.ndarray, int]:
    """A stored tensor (or any view of one: a slice, a transpose) as a new C-ordered float64
    array, converted :data:`CONVERT_CHUNK` elements at a time (BF16 given as raw bits, as
    :func:`map_tensor` gives it), and the number of entries that are not finite."""
    out = np.empty(array.shape, dtype=np.float64)
    bad = 0
    if array.size == 0:
        return out, 0
    lead = array.reshape(1) if array.ndim == 0 else array
    target = out.reshape(1) if out.ndim == 0 else out
    step = max(1, CONVERT_CHUNK // max(1, lead[0].size))
    for r in range(0, lead.shape[0], step):
        part = lead[r : r + step]
        if stored == "BF16":
            widened: npt.NDArray[np.uint32] = part.astype(np.uint32) << np.uint32(16)
            target[r : r + step] = widened.view(np.float32)
        else:
            target[r : r + step] = part
        bad += int(target[r : r + step].size - np.count_nonzero(np.isfinite(target[r : r + step])))
    return out, bad


def write_stream(
    path: PathLike, tensors: Mapping[str, tuple[str, tuple[int, ...]]], chunks: Callable[[str], Iterable[np.ndarray]],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a safetensors file of any size without holding it in memory: ``tensors`` gives each
    tensor's dtype name (a key of :data:`DTYPES`; BF16 as raw bits) and shape, in file order, and
    ``chunks(name)`` yields its data as arrays of that dtype, row-major, in order. Atomic like
    :func:`write`. For generated checkpoints (benchmarks/reference_memory.py, tests)."""
    p = as_path(path, "safetensors write_stream")
    entries: dict[str, object] = {}
    position = 0
    for name, (dtype, shape) in tensors.items():
        if dtype not in DTYPES:
            raise _fail(p, name, f"dtype={dtype!r}, but expected one of {list(DTYPES)}")
        size = math.prod(shape) * DTYPES[dtype].itemsize
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [position, position + size]}
        position += size
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    header |= entries
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def write_all(f: BinaryIO) -> None:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name, (dtype, shape) in tensors.items():
            want, wrote = math.prod(shape) * DTYPES[dtype].itemsize, 0
            for chunk in chunks(name):
                data = np.ascontiguousarray(chunk, dtype=DTYPES[dtype])
                f.write(data.tobytes())
                wrote += data.nbytes
            if wrote != want:
                raise _fail(p, name, f"chunks of {wrote} bytes, but expected {want} for shape {shape} × {dtype}")

    return write_atomic(p, write_all, f"safetensors file {p}")


def write(path: PathLike, tensors: Mapping[str, npt.ArrayLike], metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` (float64 or float32 arrays, in the given order) and ``metadata`` to
    ``path`` as safetensors. The file is written next to ``path`` and renamed into place
    (:func:`gptspec.files.write_atomic`), so a failed write (a :class:`~spec.errors.FileError`)
    leaves nothing behind. Returns the path written."""
    p = as_path(path, "safetensors write")
    if not isinstance(tensors, Mapping):
        raise _fail(p, None, f"tensors of type {type(tensors).__name__}, but expected a mapping of names to arrays")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise _fail(p, None, f"metadata of type {type(metadata).__name__}, but expected a mapping of strings to strings or None")
    entries: dict[str, dict[str, object]] = {}
    blobs: list[bytes] = []
    position = 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise _fail(p, str(name), f"tensor name={name!r}, but expected a string other than '__metadata__'")
        array = np.asarray(value)
        if array.dtype not in WRITABLE:
            raise _fail(
                p, name, f"dtype={array.dtype}, but expected one of {[str(d) for d in WRITABLE]}",
                "convert it with .astype(np.float64)",
            )
        blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        entries[name] = {"dtype": WRITABLE[array.dtype], "shape": list(array.shape), "data_offsets": [position, position + len(blob)]}
        blobs.append(blob)
        position += len(blob)
    header: dict[str, object] = {}
    if metadata:
        bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
        if bad:
            raise _fail(p, None, f"metadata entries {bad!r}, but expected strings to strings", "serialise them with json.dumps")
        header["__metadata__"] = dict(metadata)
    header |= entries
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so the buffer starts 8-byte aligned, as the reference writer does

    def write_all(f: BinaryIO) -> None:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)

    return write_atomic(p, write_all, f"safetensors file {p}")
