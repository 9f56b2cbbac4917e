"""Select theorems by name and run them: the proof, then the numeric witness, each timed.

Importing this module registers every theorem (it imports :mod:`proofs.theorems`, which imports
:mod:`proofs.core`); :mod:`proofs.core` never imports a theorem, so the import graph has no
cycle.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import proofs.theorems  # noqa: F401  (registers every theorem)
from proofs.core import THEOREMS, ProofFailed, Scope, Theorem


@dataclass(frozen=True)
class Result:
    """One theorem's run: did the proof and the witness hold, and how long it took."""

    theorem: Theorem
    proof: str
    witness: str
    seconds: float

    @property
    def scope(self) -> Scope:
        return self.theorem.scope

    @property
    def holds(self) -> bool:
        return self.proof == "proved" and self.witness in ("witnessed", "skipped")

    @property
    def result(self) -> str:
        if self.holds:
            return "holds" if self.witness == "witnessed" else "proved (witness skipped)"
        return "FAILED: " + (self.proof if self.proof != "proved" else self.witness)


def _failure(error: BaseException) -> str:
    notes = getattr(error, "__notes__", [])
    text = f"{type(error).__name__}: {error}"
    return text + ("" if not notes else " | " + " | ".join(str(n) for n in notes))


def run_one(thm: Theorem, examples: int = 25) -> Result:
    """Prove ``thm``, then witness it with ``examples`` drawn examples (0: skip the witness)."""
    started = time.perf_counter()
    try:
        thm.prove()
        proof = "proved"
    except Exception as error:  # a failed proof is a result, not a crash: report it
        proof = _failure(error)
    if proof != "proved" or examples <= 0:
        witness = "skipped"
    else:
        try:
            thm.witness(examples)
            witness = "witnessed"
        except Exception as error:
            witness = _failure(error)
    return Result(thm, proof, witness, time.perf_counter() - started)


def select(names: Iterable[str] = ()) -> list[Theorem]:
    """The theorems called ``names`` (all when empty); an unknown name suggests the nearest."""
    wanted = list(names)
    if not wanted:
        return list(THEOREMS.values())
    chosen = []
    for name in wanted:
        if name not in THEOREMS:
            close = difflib.get_close_matches(name, list(THEOREMS), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; `gptspec prove --list` lists them"
            raise ProofFailed(f"theorem={name!r}, but expected one of the registered theorems [proofs]{hint}")
        chosen.append(THEOREMS[name])
    return chosen


def run(names: Iterable[str] = (), examples: int = 25, on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Run the named theorems (all when none), in registration order."""
    results = []
    for thm in select(names):
        result = run_one(thm, examples)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results
