"""Graphs of ops: composites, architectures, and their validation.

A :class:`Graph` is a networkx DiGraph of named :class:`Node` s with declared inputs and
outputs. A :class:`Composite` is an op whose body is a graph (block → sublayer → head →
primitive). An :class:`Architecture` is a top-level graph plus its parameter space Θ
(an ordered mapping ``name → symbolic shape``) and the values of its dims, so it denotes the
function family {f_θ : θ ∈ Θ}.

Parameters live in Θ under hierarchical names (``blocks.3.attn.W_Q``); a node binds each of
its op's parameters to a :class:`ParamRef`, a view of one Θ entry (a per-head slice, a
transpose for a tied unembedding, a reshape for W_O after concatenated heads).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import sympy

from spec.dims import Shape, concrete_shape, show
from spec.errors import ConfigError, GraphError, ShapeError
from spec.op import OUT, Op, Primitive
from spec.types import TensorType

INPUT = "input"
"""The pseudo-node name of a graph's inputs in sources and error messages."""


@dataclass(frozen=True)
class Source:
    """Where a value comes from: output ``port`` of ``node``, or graph input ``port`` when
    ``node`` is None."""

    node: str | None
    port: str = OUT

    def __str__(self) -> str:
        return f"{INPUT}.{self.port}" if self.node is None else f"{self.node}.{self.port}"


def graph_input(name: str) -> Source:
    """The source naming a graph input."""
    return Source(None, name)


@dataclass(frozen=True)
class ParamRef:
    """A view of one Θ entry: ``theta[name][index]``, then transposed, then reshaped."""

    name: str
    index: tuple[int, ...] = ()
    transpose: bool = False
    reshape: Shape | None = None

    def view_shape(self, full: Shape) -> Shape:
        """The symbolic shape of the view of an entry of shape ``full``."""
        if len(self.index) > len(full):
            raise ShapeError(
                f"{self.name} index={self.index}, but expected at most {len(full)} indices "
                f"for shape {show(full)} [ParamRef]"
            )
        s = full[len(self.index) :]
        if self.transpose:
            s = tuple(reversed(s))
        if self.reshape is not None:
            before = sympy.expand(sympy.Mul(*s) - sympy.Mul(*self.reshape))
            if before != 0:
                raise ShapeError(
                    f"{self.name} reshape={show(self.reshape)}, but expected as many entries as "
                    f"{show(s)} [ParamRef]"
                )
            s = self.reshape
        return s

    def resolve(self, array: np.ndarray, dims: Mapping[sympy.Symbol, int]) -> np.ndarray:
        """Apply the view to a concrete array."""
        a = array[self.index] if self.index else array
        if self.transpose:
            a = a.T
        if self.reshape is not None:
            a = a.reshape(concrete_shape(self.reshape, dict(dims)))
        return a

    def __str__(self) -> str:
        text = self.name + (f"[{', '.join(map(str, self.index))}]" if self.index else "")
        if self.transpose:
            text += "ᵀ"
        if self.reshape is not None:
            text += f" as {show(self.reshape)}"
        return text


@dataclass(frozen=True)
class Node:
    """A vertex: an op, where each input port reads from, and which Θ view each parameter is."""

    name: str
    op: Op
    inputs: Mapping[str, Source]
    params: Mapping[str, ParamRef] = field(default_factory=dict)


class Graph:
    """A DAG of named nodes with typed inputs and named outputs.

    Nodes may be added in any order and may name sources that do not exist yet; everything is
    checked by :meth:`validate`, which composites and architectures call when built.
    """

    def __init__(self, name: str, inputs: Mapping[str, TensorType]) -> None:
        self.name = name
        self.inputs: dict[str, TensorType] = dict(inputs)
        self.nodes: dict[str, Node] = {}
        self.outputs: dict[str, Source] = {}

    def add(
        self,
        name: str,
        op: Op,
        inputs: Mapping[str, Source],
        params: Mapping[str, ParamRef] | None = None,
    ) -> Source:
        """Add a node; return the source of its (first) output."""
        if name in self.nodes:
            raise GraphError(
                f"node name={name!r} is used twice, but expected unique node names [graph {self.name}]; "
                "rename one of them"
            )
        self.nodes[name] = Node(name, op, dict(inputs), dict(params or {}))
        first = next(iter(op.outputs()))
        return Source(name, first)

    def output(self, name: str, source: Source) -> None:
        """Declare a graph output."""
        self.outputs[name] = source

    # -- structure ---------------------------------------------------------------------

    def dag(self) -> nx.DiGraph:
        """The networkx view: one vertex per node plus the inputs and outputs pseudo-vertices;
        edge attributes give the ports."""
        g = nx.DiGraph()
        g.add_node(INPUT)
        g.add_node("output")
        for node in self.nodes.values():
            g.add_node(node.name)
        for node in self.nodes.values():
            for port, src in node.inputs.items():
                producer = INPUT if src.node is None else src.node
                g.add_edge(producer, node.name, src_port=src.port, dst_port=port)
        for name, src in self.outputs.items():
            producer = INPUT if src.node is None else src.node
            g.add_edge(producer, "output", src_port=src.port, dst_port=name)
        return g

    def topological(self) -> list[Node]:
        """The nodes in a topological order (ties broken by insertion order)."""
        g = self.dag()
        order = {name: i for i, name in enumerate(self.nodes)}
        names = nx.lexicographical_topological_sort(g, key=lambda n: order.get(n, -1))
        return [self.nodes[n] for n in names if n in self.nodes]

    def validate_structure(self) -> None:
        """Sources exist, ports match the ops, no cycle, every node reachable and used."""
        where = f"graph {self.name}"
        if not self.outputs:
            raise GraphError(f"outputs=[], but expected at least one output [{where}]; call Graph.output")
        for node in self.nodes.values():
            self._check_ports(node)
        for name, src in self.outputs.items():
            self._check_source(src, f"output {name!r}")
        g = self.dag()
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle is not None:
            path = " → ".join([str(u) for u, _ in cycle] + [str(cycle[0][0])])
            raise GraphError(
                f"the graph has a cycle {path}, but expected a DAG [{where}]; "
                "a value cannot depend on itself: break the cycle at one of these edges"
            )
        reachable = nx.descendants(g, INPUT)
        used = nx.ancestors(g, "output")
        for name in self.nodes:
            if name not in reachable:
                raise GraphError(
                    f"node {name!r} is not reachable from the inputs {list(self.inputs)}, but "
                    f"expected every node to be [{where}]; connect it or remove it"
                )
            if name not in used:
                raise GraphError(
                    f"node {name!r} feeds no output, but expected every node to be used [{where}]; "
                    "declare an output that depends on it or remove it"
                )

    def _check_source(self, src: Source, consumer: str) -> TensorType:
        where = f"graph {self.name}"
        if src.node is None:
            if src.port not in self.inputs:
                raise GraphError(
                    f"{consumer} reads input {src.port!r}, but expected one of {list(self.inputs)} [{where}]"
                    + _suggest(src.port, self.inputs)
                )
            return self.inputs[src.port]
        if src.node not in self.nodes:
            raise GraphError(
                f"{consumer} reads node {src.node!r}, but expected one of the graph's nodes [{where}]"
                + _suggest(src.node, self.nodes)
            )
        outs = self.nodes[src.node].op.outputs()
        if src.port not in outs:
            raise GraphError(
                f"{consumer} reads port {src.port!r} of {src.node!r}, but expected one of "
                f"{list(outs)} [{where}]"
            )
        return outs[src.port]

    def _check_ports(self, node: Node) -> None:
        where = f"node {node.name} ({node.op.kind}) in graph {self.name}"
        want = list(node.op.inputs())
        got = list(node.inputs)
        if sorted(want) != sorted(got):
            raise GraphError(f"input ports={got}, but expected ports={want} [{where}]")
        for port, src in node.inputs.items():
            self._check_source(src, f"{node.name}.{port}")
        want_p = sorted(node.op.params())
        got_p = sorted(node.params)
        if want_p != got_p:
            raise GraphError(
                f"parameters={got_p}, but expected parameters={want_p} [{where}]; "
                "bind each of the op's parameters to a Θ entry with a ParamRef"
            )

    def validate_types(self, dims: Mapping[sympy.Symbol, int]) -> None:
        """Every edge's producer type equals the consumer's declared type after substituting
        ``dims`` (symbols without a value, such as T, must then be identical)."""
        values = dict(dims)
        for node in self.nodes.values():
            declared = node.op.inputs()
            for port, src in node.inputs.items():
                produced = self._check_source(src, f"{node.name}.{port}")
                _same_type(produced, declared[port], values, f"edge {src} → {node.name}.{port}")
            if isinstance(node.op, Composite):
                node.op.body.validate_types(values)

    def expand(
        self,
        prefix: str = "",
        stop: Callable[[Node], bool] | None = None,
        outputs: dict[str, str] | None = None,
    ) -> Iterator[tuple[str, Node, dict[str, str]]]:
        """Walk the graph at the finest level in topological order.

        Yields ``(path, node, sources)`` for each primitive: its dotted path, the node, and for
        each input port the path of the value it reads (``input.<name>`` for graph inputs).
        A composite for which ``stop(node)`` is true is yielded whole instead of expanded
        (how an interpreter runs a composite it has a fused kernel for); its output ports are
        then read at ``path`` (its first output) and ``path.port`` (any other). When the walk
        ends, ``outputs`` (if given) maps each graph output to the path of its value.
        """
        bound = {name: f"{INPUT}.{name}" for name in self.inputs}
        yield from _expand(self, prefix, bound, {} if outputs is None else outputs, stop)

    def placed(self, prefix: str = "") -> list[Placed]:
        """Every node at every level — composites and primitives — with the finest-level path of
        each value it reads and produces, a composite listed before the nodes inside it (then in
        topological order). A composite's output is the value its body's output names: e.g.
        ``blocks.0.attn`` produces ``blocks.0.attn.W_O``. Used to compare another
        implementation's intermediates, captured per module, with the reference's values."""
        found: list[Placed] = []
        _place(self, prefix, {name: f"{INPUT}.{name}" for name in self.inputs}, {}, found)
        return found

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.nodes)} nodes)"


@dataclass(frozen=True)
class Placed:
    """A node at any level of the hierarchy (:meth:`Graph.placed`): its dotted path, the node,
    and the finest-level paths of the values its input ports read and its output ports give."""

    path: str
    node: Node
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]

    @property
    def output(self) -> str:
        """The path of its first output's value."""
        return next(iter(self.outputs.values()))


def _place(graph: Graph, prefix: str, bound: dict[str, str], out_paths: dict[str, str], found: list[Placed]) -> None:
    produced: dict[tuple[str, str], str] = {}

    def where(src: Source) -> str:
        return bound[src.port] if src.node is None else produced[(src.node, src.port)]

    for node in graph.topological():
        path = f"{prefix}{node.name}"
        sources = {port: where(src) for port, src in node.inputs.items()}
        if isinstance(node.op, Composite):
            inner: dict[str, str] = {}
            slot = len(found)
            found.append(Placed(path, node, sources, {}))
            _place(node.op.body, path + ".", sources, inner, found)
            for port, p in inner.items():
                produced[(node.name, port)] = p
            found[slot] = Placed(path, node, sources, {port: inner[port] for port in node.op.outputs()})
        else:
            produced[(node.name, OUT)] = path
            found.append(Placed(path, node, sources, {OUT: path}))
    for name, src in graph.outputs.items():
        out_paths[name] = where(src)


def _expand(
    graph: Graph,
    prefix: str,
    bound: dict[str, str],
    out_paths: dict[str, str],
    stop: Callable[[Node], bool] | None = None,
) -> Iterator[tuple[str, Node, dict[str, str]]]:
    """Expand ``graph`` whose inputs are the values at paths ``bound``; fill ``out_paths``
    with the path of each graph output."""
    produced: dict[tuple[str, str], str] = {}

    def where(src: Source) -> str:
        return bound[src.port] if src.node is None else produced[(src.node, src.port)]

    for node in graph.topological():
        path = f"{prefix}{node.name}"
        sources = {port: where(src) for port, src in node.inputs.items()}
        if isinstance(node.op, Composite) and not (stop is not None and stop(node)):
            inner: dict[str, str] = {}
            yield from _expand(node.op.body, path + ".", sources, inner, stop)
            for port, p in inner.items():
                produced[(node.name, port)] = p
        elif isinstance(node.op, Composite):
            first, *rest = node.op.outputs()
            produced[(node.name, first)] = path
            for port in rest:
                produced[(node.name, port)] = f"{path}.{port}"
            yield path, node, sources
        else:
            produced[(node.name, OUT)] = path
            yield path, node, sources
    for name, src in graph.outputs.items():
        out_paths[name] = where(src)


def _same_type(
    produced: TensorType, declared: TensorType, values: dict[sympy.Symbol, int], where: str
) -> None:
    a, b = produced.subs(values), declared.subs(values)
    same_shape = len(a.shape) == len(b.shape) and all(
        x == y or sympy.expand(x - y) == 0 for x, y in zip(a.shape, b.shape, strict=True)
    )
    if not same_shape or a.axes != b.axes or a.element != b.element:
        raise ShapeError(
            f"producer type={a}, but expected consumer type={b} [{where}]; "
            "the two ends of an edge must agree after substituting the config"
        )


def _suggest(name: str, options: Mapping[str, Any] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Composite(Op):
    """An op defined by a sub-DAG with a declared interface (the body's inputs and outputs)."""

    kind: ClassVar[str] = "composite"
    title: ClassVar[str] = "composite"

    def __init__(self, kind: str, title: str, body: Graph, description: str = "") -> None:
        self.kind = kind  # type: ignore[misc]  # per-instance kind: block, attention_head, …
        self.title = title  # type: ignore[misc]
        self.body = body
        self.description = description
        """What it computes, in words: the docstring of the builder that made it (spec/blocks.py)."""
        body.validate_structure()

    def inputs(self) -> dict[str, TensorType]:
        return dict(self.body.inputs)

    def outputs(self) -> dict[str, TensorType]:
        types: dict[str, TensorType] = {}
        for name, src in self.body.outputs.items():
            types[name] = self.body._check_source(src, f"output {name!r}")
        return types

    def __repr__(self) -> str:
        return f"Composite({self.kind!r}, {len(self.body.nodes)} nodes)"


class Architecture(Graph):
    """A top-level graph with its parameter space Θ and the values of its dims.

    Θ is declared with :meth:`declare` before or while nodes are added; :meth:`validate`
    checks the structure, every edge type, and that every node's parameter views have the
    shapes its op declares.
    """

    def __init__(
        self,
        name: str,
        inputs: Mapping[str, TensorType],
        dims: Mapping[sympy.Symbol, int],
        config: Any = None,
    ) -> None:
        super().__init__(name, inputs)
        self.dims: dict[sympy.Symbol, int] = dict(dims)
        self.theta: dict[str, Shape] = {}
        self.config: Any = config
        """The config the architecture was built from (a spec.config.Config for registered
        families), so it can be rebuilt and exported."""

    def declare(self, name: str, shape: Shape) -> ParamRef:
        """Add a Θ entry; return a reference to all of it."""
        if name in self.theta:
            raise ConfigError(
                f"parameter name={name!r} is declared twice, but expected unique names in Θ "
                f"[architecture {self.name}]; give the second one another name"
            )
        self.theta[name] = tuple(sympy.sympify(d) for d in shape)
        return ParamRef(name)

    def dim(self, name: str) -> int:
        """The value of the glossary dim called ``name`` (``"n_vocab"``, ``"n_ctx"``, …)."""
        for symbol, value in self.dims.items():
            if str(symbol) == name:
                return value
        raise ConfigError(
            f"dim {name!r} is not set, but expected one of {[str(s) for s in self.dims]} "
            f"[architecture {self.name}]"
        )

    def theta_shapes(self) -> dict[str, tuple[int, ...]]:
        """Θ with every dim substituted: name → concrete shape."""
        return {name: concrete_shape(s, self.dims) for name, s in self.theta.items()}

    def primitives(self) -> list[tuple[str, Node, dict[str, str]]]:
        """The finest-level nodes in topological order (see :meth:`Graph.expand`)."""
        return list(self.expand())

    def output_paths(self) -> dict[str, str]:
        """The path of the value each output names, at the finest level."""
        paths: dict[str, str] = {}
        for _ in self.expand(outputs=paths):
            pass
        return paths

    def validate(self) -> Architecture:
        """Check everything; return self so builders can end with ``return arch.validate()``."""
        self.validate_structure()
        self.validate_types(self.dims)
        used: set[str] = set()
        for path, node, _ in self.expand():
            if not isinstance(node.op, Primitive):
                continue
            declared = node.op.params()
            for pname, ref in node.params.items():
                if ref.name not in self.theta:
                    raise GraphError(
                        f"{path}.{pname} refers to Θ entry {ref.name!r}, but expected a declared "
                        f"parameter [architecture {self.name}]" + _suggest(ref.name, self.theta)
                    )
                used.add(ref.name)
                view = ref.view_shape(self.theta[ref.name])
                _same_type(
                    TensorType(view, tuple(_feature_axes(view))),
                    TensorType(declared[pname], tuple(_feature_axes(declared[pname]))),
                    self.dims,
                    f"parameter {ref} bound to {path}.{pname}",
                )
        unused = [n for n in self.theta if n not in used]
        if unused:
            raise GraphError(
                f"Θ entries {unused} are read by no node, but expected every parameter to be used "
                f"[architecture {self.name}]; remove them or bind them"
            )
        return self


def _feature_axes(s: Shape) -> list[Any]:
    from spec.types import Axis

    return [Axis.FEATURE] * len(s)
