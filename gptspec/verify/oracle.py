"""The reference's values, computed once and reused: every intermediate of
``reference.evaluate`` per (θ, token sequence, stored dtype) — the one reference cache of both
``gptspec check`` and ``gptspec verify``.

Its key names θ by content: a drawn θ by its draw (gptspec/verify/draws.py: the recipe that
makes the same arrays), a given θ (a preset's, a checkpoint's) by :func:`content_key`, a hash of
the architecture's config and θ's names, dtypes, shapes and bytes — never by object identity,
which a freed and reallocated dict can reuse.

The reference is literal and slow (float64, one sequence at a time, tens of milliseconds per
sequence even for a tiny model), so every check of a run — padded batches, incremental
decoding, generation, localisation, ablation probes — asks this cache, and so do later runs in
the same process (a test suite judging several mutants on the same examples).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping

import numpy as np

import reference
from gptspec.verify.ties import with_both_routings
from gptspec.verify.tolerance import storer, unit_roundoff
from spec.graph import Architecture

Values = dict[str, np.ndarray]

Inputs = np.ndarray | Mapping[str, np.ndarray]
"""A sequence's inputs: its token ids (a decoder's one input ``ids``), or every input by name
(an encoder–decoder's source and target)."""


def content_key(arch: Architecture, theta: Mapping[str, np.ndarray]) -> str:
    """A key naming (architecture, θ) by content: the config (or the architecture's name, for one
    built without a config) and every entry's name, dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{arch.name}|{arch.config!r}".encode())
    for name in sorted(theta):
        array = np.ascontiguousarray(theta[name])
        digest.update(f"|{name}:{array.dtype.str}:{array.shape}|".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def _named(ids: Inputs) -> dict[str, np.ndarray]:
    if isinstance(ids, Mapping):
        return {name: np.asarray(tuple(int(i) for i in ids[name]), dtype=np.int64) for name in sorted(ids)}
    return {"ids": np.asarray(tuple(int(i) for i in ids), dtype=np.int64)}


class Oracle:
    """A bounded cache of reference evaluations. ``key`` identifies (architecture, θ): the
    caller's hashable description of how θ was made (a draw, its transform, the config)."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 2 * 1024**3) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        """The entries' arrays are bounded too: a large vocabulary's logits are megabytes a sequence."""
        self._values: OrderedDict[tuple[Hashable, tuple[tuple[str, tuple[int, ...]], ...], str], tuple[Values, int]] = OrderedDict()
        self._bytes = 0
        self.evaluations = 0

    def values(self, arch: Architecture, theta: Mapping[str, np.ndarray], key: Hashable, ids: Inputs, stored_in: str | None = None) -> Values:
        """Every value ``reference.evaluate`` gives for ``ids`` (by DAG path, plus ``logits``);
        with ``stored_in``, the evaluation that stores every value in that dtype (what the
        tolerance policy's e_store is measured on). ``key`` names (architecture, θ) by content
        (module docstring)."""
        inputs = _named(ids)
        seqs = tuple((name, tuple(int(i) for i in value)) for name, value in inputs.items())
        entry = (key, seqs, stored_in or "")
        found = self._values.get(entry)
        if found is not None:
            self._values.move_to_end(entry)
            return found[0]
        seed = sum(len(seq) * 7**k for k, (_, seq) in enumerate(seqs))  # a plain sequence's: its length
        store = None if stored_in is None else storer(stored_in, seed=seed)
        values = reference.evaluate(arch, theta, inputs, store=store)
        if stored_in is not None:  # a router row D cannot resolve is budgeted both ways (gptspec/verify/ties.py)
            again = storer(stored_in, seed=seed)
            values = with_both_routings(
                arch, theta, values, unit_roundoff(stored_in), lambda: self.values(arch, theta, key, ids),
                lambda override: reference.evaluate(arch, theta, inputs, store=again, override=override), again,
            )
        self.evaluations += 1
        size = sum(int(getattr(v, "nbytes", 0)) for v in values.values())
        self._values[entry] = (values, size)
        self._bytes += size
        while len(self._values) > 1 and (len(self._values) > self.max_entries or self._bytes > self.max_bytes):
            self._bytes -= self._values.popitem(last=False)[1][1]
        return values

    def logits(self, arch: Architecture, theta: Mapping[str, np.ndarray], key: Hashable, ids: Inputs, stored_in: str | None = None) -> np.ndarray:
        return self.values(arch, theta, key, ids, stored_in)["logits"]


ORACLE = Oracle()
"""The process-wide cache every verification run shares."""
