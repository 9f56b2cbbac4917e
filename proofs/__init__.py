"""Machine-checked identities about the spec, and dependency typing that proves causality.

- :mod:`proofs.core`: theorems as data (:class:`~proofs.core.Theorem`) and the registry;
  proof steps raise :class:`~proofs.core.ProofFailed`.
- :mod:`proofs.runner`: selects theorems by name and runs proof and witness.
- :mod:`proofs.algebra`: the sound algebra the proofs use beyond ``sympy.simplify``.
- :mod:`proofs.dependency`: which input positions each output position can see, for any
  architecture; causality and the node that breaks it.
- :mod:`proofs.theorems`: the theorems, one module per subject.
- :mod:`proofs.docs`: docs/proofs.md, generated from the records.

Imports spec/ (and reference/ for the numeric witnesses) only.
"""

from proofs.core import THEOREMS, ProofFailed, Scope, Theorem, WitnessFailed
from proofs.dependency import Windows, causality, relation
from proofs.runner import Result, run, select

__all__ = ["THEOREMS", "ProofFailed", "Result", "Scope", "Theorem", "Windows", "WitnessFailed", "causality", "relation", "run", "select"]
