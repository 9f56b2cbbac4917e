"""What verification needs to know about an architecture's DAG, read off the DAG itself — never
off a family's builder — so every registered family (GPT, Llama, …) is handled alike.

- **residual branches**: composites whose output is read by an ``add`` beside them (attention and MLP
  sublayers); a branch is *attention* if it contains a ``masked_softmax``, else an MLP. A
  branch is switched off by zeroing the Θ entries of its output node (an affine map: 0·x + 0);
- **score projections**: the Θ entries of the nodes that make each ``attention_scores`` op's
  Q and K (followed upstream through parameter-free ops such as a rotary embedding): scaling
  them scales every score by the square of the factor; zeroing them makes attention uniform;
- **value order**: the position of each value in the topological order, to compare captured
  intermediates first to last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from spec.graph import INPUT, Architecture, Composite, Placed
from spec.op import Primitive


@dataclass(frozen=True)
class Branch:
    """A residual branch: its path, ``attention`` or ``mlp``, the path of the block it is in
    (``blocks.0``), and the Θ entries of its output node (zeroed to switch it off; empty if the
    output node has none)."""

    path: str
    kind: str
    op_kind: str
    block: str
    off: tuple[str, ...]
    feeders: tuple[str, ...] = ()
    """Primitives outside the branch read only by it (a pre-LN block's norm): a probe that
    implicates the branch implicates them too."""

    @property
    def region(self) -> str:
        return "+".join((*self.feeders, self.path))


@dataclass(frozen=True)
class Structure:
    placed: tuple[Placed, ...]
    by_path: Mapping[str, Placed]
    producer: Mapping[str, Placed]
    """Value path → the primitive that produces it."""
    order: Mapping[str, int]
    """Value path → its position in the topological order (graph inputs first)."""
    branches: tuple[Branch, ...]
    score_params: Mapping[str, tuple[str, ...]]
    """attention_scores path → the Θ entries of the nodes making its Q and K."""
    shared: frozenset[str]
    """Θ entries read by more than one node (a tied embedding)."""

    def containing(self, path: str) -> list[Placed]:
        """The composites containing ``path``, innermost first."""
        out = []
        parts = path.split(".")
        for n in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:n])
            if prefix in self.by_path and isinstance(self.by_path[prefix].node.op, Composite):
                out.append(self.by_path[prefix])
        return out

    def making(self, value: str) -> list[Placed]:
        """The nodes (composites and the primitive) whose output is ``value``, innermost first."""
        return [p for p in reversed(self.placed) if p.output == value]

    def kind(self, path: str) -> str:
        node = self.by_path.get(path)
        return node.node.op.kind if node is not None else ""


@lru_cache(maxsize=64)
def _structure(arch: Architecture) -> Structure:
    placed = tuple(arch.placed())
    by_path = {p.path: p for p in placed}
    primitives = [p for p in placed if isinstance(p.node.op, Primitive)]
    producer = {p.output: p for p in primitives}
    order = {f"{INPUT}.{name}": i for i, name in enumerate(arch.inputs)}
    for p in primitives:
        order[p.output] = len(order)
    readers: dict[str, list[Placed]] = {}
    for p in primitives:
        for value in p.inputs.values():
            readers.setdefault(value, []).append(p)
    uses: dict[str, int] = {}
    for p in primitives:
        for ref in p.node.params.values():
            uses[ref.name] = uses.get(ref.name, 0) + 1
    branches = []
    for p in placed:
        if not isinstance(p.node.op, Composite):
            continue
        parent = p.path.rsplit(".", 1)[0] if "." in p.path else ""
        if not any(r.node.op.kind == "add" and (r.path.rsplit(".", 1)[0] if "." in r.path else "") == parent for r in readers.get(p.output, [])):
            continue  # a branch is summed into the residual stream by an add beside it (a block's output is not)
        inside = [q for q in primitives if q.path.startswith(p.path + ".")]
        kind = "attention" if any(q.node.op.kind == "masked_softmax" for q in inside) else "mlp"
        last = producer.get(p.output)
        off = tuple(sorted({ref.name for ref in last.node.params.values()})) if last is not None else ()
        feeders = tuple(
            q.path for q in primitives
            if not q.path.startswith(p.path + ".") and readers.get(q.output)
            and all(r.path.startswith(p.path + ".") for r in readers[q.output])
        )
        branches.append(Branch(p.path, kind, p.node.op.kind, parent, off, feeders))
    score_params: dict[str, tuple[str, ...]] = {}
    for p in primitives:
        if p.node.op.kind != "attention_scores":
            continue
        names: set[str] = set()
        for value in p.inputs.values():
            names |= _upstream_params(value, producer)
        score_params[p.path] = tuple(sorted(names))
    shared = frozenset(name for name, n in uses.items() if n > 1)
    return Structure(placed, by_path, producer, order, tuple(branches), score_params, shared)


def structure(arch: Architecture) -> Structure:
    """The structure of ``arch`` (cached per architecture object)."""
    return _structure(arch)


def _upstream_params(value: str, producer: Mapping[str, Placed]) -> set[str]:
    """The Θ entries of the first parameterised node upstream of ``value``, following
    parameter-free single-input ops (a rotary embedding, a scale)."""
    seen = 0
    while value in producer and seen < 16:
        node = producer[value]
        if node.node.params:
            return {ref.name for ref in node.node.params.values()}
        if len(node.inputs) != 1:
            return set()
        value = next(iter(node.inputs.values()))
        seen += 1
    return set()
