"""Causality by typing, in the product: what ``gptspec params``, ``check`` (and ``verify``) say
about an architecture before anything runs.

The verdict is :func:`proofs.dependency.causality` of the architecture's logits in its token
input ``ids`` (an encoder–decoder's target; its source may be read everywhere, and the report
says so): causal or not, the relation (the receptive field, e.g. ``t − 6 ≤ s ≤ t`` for banded
layers), and for a model that is not causal the node where causality is lost. Typing is
memoised per distinct composite (a GPT-3 175B of 66,000 nodes types in about two seconds,
docs/performance.md), so every command can afford it.

What the commands do with it (docs/architecture.md): ``params`` prints it; ``check`` prints it
first and, for a model that is not causal, still compares fast/ with the reference on every op
and on whole sequences (the same function, evaluated two ways) but does not run KV-cache
decoding, which would compute row t before the later tokens it reads exist; that component is
reported SKIP ("not run", never passed), so ``check`` exits 1 — a decoder that reads later tokens
fails the gate, after everything that is defined for it has been checked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from proofs.dependency import Causality, causality, relation
from spec.graph import Architecture
from spec.op import Primitive

TOKENS = "ids"
"""The token input every decoder reads (an encoder–decoder's target)."""


@dataclass(frozen=True)
class Verdict:
    """The typing's verdict on one architecture, and how long it took."""

    causality: Causality
    others: dict[str, str]
    """Every other input and the relation of the logits to it (an encoder–decoder's ``source``)."""
    seconds: float

    @property
    def causal(self) -> bool:
        return self.causality.causal

    def lines(self) -> list[str]:
        """What a command prints, one line each."""
        c = self.causality
        head = "causality (dependency typing, before anything runs):"
        if c.causal:
            out = [f"{head} causal — logits row t depends on {TOKENS} positions {c.relation.text()} (the receptive field)"]
        else:
            out = [f"{head} NOT causal — logits row t depends on {TOKENS} positions {c.relation.text()}"]
            out += [f"  causality is lost at {path}  [{rules}]" for path, rules in c.breaks]
        for name, text in self.others.items():
            out.append(f"  and on {name} positions {text} (not a sequence being generated: any position may be read)")
        out[-1] += f"  ({self.seconds:.2f} s)"
        return out


def verdict(arch: Architecture) -> Verdict:
    """The causality of ``arch``'s logits in ``ids``, and its relation to every other input."""
    start = time.perf_counter()
    output = "logits" if "logits" in arch.outputs else None
    tokens = TOKENS if TOKENS in arch.inputs else next(iter(arch.inputs))
    c = causality(arch, output, tokens)
    others = {name: relation(arch, output, name).text() for name in arch.inputs if name != tokens}
    return Verdict(c, others, time.perf_counter() - start)


class WithoutDecoding:
    """An implementation under test with its ``decode`` hidden: for an architecture that is not
    causal, KV-cache decoding is not the model's function, so the engine reports it not run."""

    def __init__(self, impl: Any) -> None:
        self._impl = impl
        self.name: str = impl.name
        self.dtype: np.dtype[Any] = impl.dtype
        self.no_decoding = "KV-cache decoding is not defined for this architecture: it is not causal (the typing verdict above)"

    def op(self, op: Primitive, inputs: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]) -> np.ndarray | None:
        result: np.ndarray | None = self._impl.op(op, inputs, params)
        return result

    def model(
        self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]
    ) -> np.ndarray:
        result: np.ndarray = self._impl.model(arch, theta, ids, valid)
        return result
