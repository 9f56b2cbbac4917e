"""The reference's values, computed once and reused: every intermediate of
``reference.evaluate`` per (θ, token sequence, stored dtype).

The reference is literal and slow (float64, one sequence at a time, tens of milliseconds per
sequence even for a tiny model), so every check of a run — padded batches, incremental
decoding, generation, localisation, ablation probes — asks this cache, and so do later runs in
the same process (a test suite judging several mutants on the same examples).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping

import numpy as np

import reference
from gptspec.verify.tolerance import storer
from spec.graph import Architecture

Values = dict[str, np.ndarray]


class Oracle:
    """A bounded cache of reference evaluations. ``key`` identifies (architecture, θ): the
    caller's hashable description of how θ was made (a draw, its transform, the config)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._values: OrderedDict[tuple[Hashable, tuple[int, ...], str], Values] = OrderedDict()
        self.evaluations = 0

    def values(self, arch: Architecture, theta: Mapping[str, np.ndarray], key: Hashable, ids: np.ndarray, stored_in: str | None = None) -> Values:
        """Every value ``reference.evaluate`` gives for ``ids`` (by DAG path, plus ``logits``);
        with ``stored_in``, the evaluation that stores every value in that dtype (what the
        tolerance policy's e_store is measured on)."""
        seq = tuple(int(i) for i in ids)
        entry = (key, seq, stored_in or "")
        found = self._values.get(entry)
        if found is not None:
            self._values.move_to_end(entry)
            return found
        store = None if stored_in is None else storer(stored_in, seed=len(seq))
        values = reference.evaluate(arch, theta, {"ids": np.asarray(seq, dtype=np.int64)}, store=store)
        self.evaluations += 1
        self._values[entry] = values
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)
        return values

    def logits(self, arch: Architecture, theta: Mapping[str, np.ndarray], key: Hashable, ids: np.ndarray, stored_in: str | None = None) -> np.ndarray:
        return self.values(arch, theta, key, ids, stored_in)["logits"]


ORACLE = Oracle()
"""The process-wide cache every verification run shares."""
