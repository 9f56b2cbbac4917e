"""Routed experts (mixture of experts): the router and the experts' weighted combination.

**Granularity.** An MoE MLP is three nodes (spec/moe_blocks.py builds them): the router's
logits ``ℓ = x W_router`` are an :class:`~spec.ops.affine.Affine` (no bias; the formula lives
there), then two primitives defined here:

* :class:`MoeRouter` — logits (T, n_experts) → routing weights G (T, n_experts): softmax and
  top-k, one row at a time, with G_te = 0 for every expert e that row t does not choose. The
  weights are a dense matrix that is sparse in value, so the choice of experts is part of the
  value that flows along the DAG (and of what verify compares), not hidden state.
* :class:`MoeExperts` — the residual input x (T, d) and G → y (T, d): y_t = Σ_e G_te E_e(x_t),
  with E_e the gated MLP of expert e (SwiGLU for Mixtral and Qwen-MoE; the activation is any of
  the element-wise ops named in :data:`EXPERT_ACTIVATIONS`, whose formula lives on that op), plus
  optionally one shared expert scaled by a sigmoid gate σ(x_t · w) (Qwen-MoE).

The experts' definition is **dense**: a sum over every expert. The reference and fast/ evaluate
only the chosen experts (G_te ≠ 0); the theorem ``moe_sparse_equals_dense`` (proofs/) is what
licenses that: the sum over the chosen experts equals the dense sum with the non-chosen weights
zeroed.

**The tie rule.** Row t chooses the k experts of largest logit; between equal logits the lower
index comes first (the first k of a stable descending sort, ``torch.sort(stable=True)``). Written
as a rank: expert e is chosen when fewer than k experts e' beat it, where e' beats e if
ℓ_te' > ℓ_te, or ℓ_te' = ℓ_te and e' < e. Ranking the logits and ranking their softmax are the
same in exact arithmetic (exp is strictly increasing), so the rule does not depend on which of the
two an implementation ranks. Hugging Face's routers call ``torch.topk``, whose order among equal
values is unspecified: on CPU (torch 2.13) the top 2 of five equal logits are experts 2 and 4. So
at an exact tie the spec's choice is a rule, not a reading of torch; away from ties the chosen
sets are the same (tests/test_moe.py).

**The three normalisations** (attribute ``norm``), p_t = softmax(ℓ_t) over all experts, K_t the
chosen set:

* ``"softmax_topk"``: G_te = p_te [e ∈ K_t] — Qwen2-MoE / Qwen3-MoE with ``norm_topk_prob=False``;
* ``"softmax_topk_renorm"``: G_te = p_te [e ∈ K_t] / Σ_{e'∈K_t} p_te' — Mixtral, and Qwen-MoE with
  ``norm_topk_prob=True``;
* ``"topk_softmax"``: G_te = softmax over K_t of the chosen logits — Mistral's reference code.

The last two are the same function (theorem ``moe_renormalised_softmax_is_softmax_of_topk``);
they are kept apart because the numbers are computed differently (one rounding more or less).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import sympy

from spec.dims import Shape
from spec.errors import ConfigError
from spec.masks import Relation, RowWise
from spec.op import Operand, Primitive, register
from spec.ops._base import DEFAULT_ROWS, dummy
from spec.ops.activations import GeluErf, GeluTanh, Relu
from spec.ops.elementwise import Elementwise
from spec.ops.gate import sigmoid
from spec.ops.glu import Silu
from spec.types import TensorType, rows

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

NORMS: tuple[str, ...] = ("softmax_topk", "softmax_topk_renorm", "topk_softmax")
"""The router's normalisation conventions (:class:`MoeRouter`, attribute ``norm``)."""

EXPERT_ACTIVATIONS: dict[str, type[Elementwise]] = {"silu": Silu, "gelu_tanh": GeluTanh, "gelu_erf": GeluErf, "relu": Relu}
"""The activations an expert's gate may use, by op kind; the formula is the op's own ``scalar``."""


def _whole(name: str, value: object, least: int, where: str, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, sympy.Integer)) or int(value) < least:
        raise ConfigError(f"{name}={value!r}, but expected a whole number ≥ {least} [{where}]{hint}")
    return int(value)


def _width(name: str, value: object, where: str) -> None:
    """A feature width: a whole number ≥ 1 or a positive dim expression."""
    if isinstance(value, sympy.Expr) and not value.is_number:
        return
    _whole(name, value, 1, where)


def beats(logits: sympy.IndexedBase, t: sympy.Expr, other: sympy.Expr, e: sympy.Expr) -> sympy.Expr:
    """1 if expert ``other`` comes before expert ``e`` in row t's ranking (a larger logit, or an
    equal logit and a lower index), else 0: the step H(ℓ_t,other − ℓ_te) with H(0) = 1 when
    other < e and H(0) = 0 otherwise. (Steps rather than ``Piecewise``: sympy folds a
    ``Piecewise`` inside another's condition symbolically, which is slow; and the derivative of a
    step is 0 away from ties, which is what the router's VJP is checked against.)"""
    gap = logits[t, other] - logits[t, e]
    if isinstance(other, sympy.Integer) and isinstance(e, sympy.Integer):
        return sympy.Heaviside(gap, 1 if other < e else 0)
    return sympy.Piecewise((sympy.Heaviside(gap, 1), sympy.StrictLessThan(other, e)), (sympy.Heaviside(gap, 0), True))


def chosen(logits: sympy.IndexedBase, t: sympy.Expr, e: sympy.Expr, top_k: int) -> sympy.Expr:
    """[e ∈ K_t]: 1 if fewer than ``top_k`` experts beat e in row t, else 0 — the rank is a whole
    number, so this is the step H(k − ½ − rank). The expert count is concrete, so the rank is an
    explicit sum."""
    rank = sympy.Add(*(beats(logits, t, sympy.Integer(other), e) for other in range(int(logits.shape[1]))))
    return sympy.Heaviside(sympy.Integer(top_k) - sympy.Rational(1, 2) - rank)


@register
@dataclass(frozen=True)
class MoeRouter(Primitive):
    """Routing weights from router logits, one row per position: softmax, top-k (lower index
    first among equal logits), and the normalisation ``norm`` (one of :data:`NORMS`; see the
    module's docstring). Output G (rows, n_experts) with G_te = 0 for the experts row t does not
    choose, so G can be read as the weights of a dense combination (:class:`MoeExperts`)."""

    kind: ClassVar[str] = "moe_router"
    notation: ClassVar[str] = r"\operatorname{route}_{⟨:top_k⟩}\left(⟨logits⟩\right)"
    title: ClassVar[str] = "MoE router (softmax, top-k)"
    latex: ClassVar[str] = (
        r"p_{te} = \frac{e^{\ell_{te}}}{\sum_{e'} e^{\ell_{te'}}} \qquad "
        r"K_t = \text{the } k \text{ experts of largest } \ell_{te} \text{ (equal: lower } e \text{ first)} \qquad "
        r"G_{te} = [e \in K_t]\, p_{te} \ \text{or}\ "
        r"\frac{[e \in K_t]\, p_{te}}{\sum_{e' \in K_t} p_{te'}} \ \text{or}\ "
        r"\frac{[e \in K_t]\, e^{\ell_{te}}}{\sum_{e' \in K_t} e^{\ell_{te'}}}"
    )
    citation: ClassVar[str] = (
        "Shazeer et al. 2017 (sparsely-gated mixture of experts: softmax of the top-k logits); Jiang et al. 2024 "
        "(Mixtral: softmax over the top-2 logits); Hugging Face MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock "
        "(softmax, torch.topk, renormalised when norm_topk_prob). ℓ ↦ logits, G ↦ y."
    )
    operands: ClassVar[Mapping[str, Operand]] = {"logits": Operand.SCORES}

    n_experts: int
    top_k: int
    norm: str = "softmax_topk_renorm"
    rows: sympy.Expr = DEFAULT_ROWS

    def check(self) -> None:
        where = "MoeRouter"
        n = _whole("n_experts", self.n_experts, 1, where)
        _whole("top_k", self.top_k, 1, where, "; each position chooses at least one expert")
        if int(self.top_k) > n:
            raise ConfigError(f"top_k={self.top_k!r}, but expected top_k ≤ n_experts={n} [{where}]; a position chooses among the experts there are")
        if self.norm not in NORMS:
            raise ConfigError(f"norm={self.norm!r}, but expected one of {list(NORMS)} [{where}]; Mixtral is 'softmax_topk_renorm'")

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        @st.composite
        def draw(draw: st.DrawFn) -> Primitive:
            n = draw(st.integers(1, 5), label="n_experts")
            return cls(n, draw(st.integers(1, n), label="top_k"), draw(st.sampled_from(NORMS), label="norm"))

        return draw()

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(3, 2, norm, n) for norm in NORMS]

    def inputs(self) -> dict[str, TensorType]:
        return {"logits": rows(self.rows, sympy.Integer(self.n_experts))}

    def output(self) -> TensorType:
        return rows(self.rows, sympy.Integer(self.n_experts))

    def dependency(self) -> dict[str, Relation]:
        return {"logits": RowWise()}

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, e = index
        logits = inputs["logits"]
        experts = [sympy.Integer(other) for other in range(int(logits.shape[1]))]
        k = int(self.top_k)
        mine = chosen(logits, t, e, k)
        if self.norm == "topk_softmax":  # softmax over the chosen logits only
            Z_K = sympy.Add(*(chosen(logits, t, other, k) * sympy.exp(logits[t, other]) for other in experts))
            return mine * sympy.exp(logits[t, e]) / Z_K
        Z = sympy.Add(*(sympy.exp(logits[t, other]) for other in experts))
        p = sympy.exp(logits[t, e]) / Z
        if self.norm == "softmax_topk":
            return mine * p
        kept = sympy.Add(*(chosen(logits, t, other, k) * sympy.exp(logits[t, other]) / Z for other in experts))
        return mine * p / kept


Entry = Callable[[sympy.Expr, sympy.Expr], sympy.Expr]
"""A matrix read entry by entry: (row, column) → its entry."""


def total(term: Callable[[sympy.Expr], sympy.Expr], n: sympy.Expr, name: str) -> sympy.Expr:
    """Σ_{i=0}^{n−1} term(i): written out when n is a number (nested ``Sum``s of concrete length
    are slow to expand), a ``Sum`` over a fresh index when n is symbolic."""
    n = sympy.sympify(n)
    if n.is_Integer:
        return sympy.Add(*(term(sympy.Integer(i)) for i in range(int(n))))
    i = dummy(name)
    return sympy.Sum(term(i), (i, 0, n - 1))


def expert_output(
    x: sympy.IndexedBase, t: sympy.Expr, j: sympy.Expr, act: Elementwise,
    W_gate: Entry, W_up: Entry, W_down: Entry, d_hidden: sympy.Expr,
) -> sympy.Expr:
    """Feature j of one gated MLP at row t: Σ_m act(Σ_i x_ti W_gate[i, m]) (Σ_i x_ti W_up[i, m])
    W_down[m, j]; the W's are callables of (row, column) so routed experts pass a slice of their
    stacked weights and the shared expert its own matrices."""
    d = x.shape[1]

    def hidden(m: sympy.Expr) -> sympy.Expr:
        gate = act.scalar(total(lambda i: x[t, i] * W_gate(i, m), d, "i"))
        up = total(lambda i: x[t, i] * W_up(i, m), d, "i")
        return gate * up * W_down(m, j)

    return total(hidden, d_hidden, "m")


@register
@dataclass(frozen=True)
class MoeExperts(Primitive):
    """y_t = Σ_e G_te E_e(x_t) [+ σ(x_t · w_shared) E_shared(x_t)]: every expert E_e is a gated
    MLP act(x W_gate[e]) ⊙ (x W_up[e]), then W_down[e], of hidden width ``d_expert``, its weights
    stacked along a leading expert axis; G is the router's output (:class:`MoeRouter`). With
    ``d_shared`` (Qwen-MoE), one more gated MLP of hidden width d_shared, not routed, scaled per
    position by a sigmoid of x_t · w_shared. Dense by definition; evaluated sparsely (the module's
    docstring)."""

    kind: ClassVar[str] = "moe_experts"
    notation: ClassVar[str] = r"\operatorname{MoE}\left(⟨x⟩, ⟨G⟩\right)"
    title: ClassVar[str] = "MoE experts (weighted combination)"
    latex: ClassVar[str] = (
        r"E_e(x_t) = \left(\operatorname{act}(x_t W^{\text{gate}}_e) \odot x_t W^{\text{up}}_e\right) W^{\text{down}}_e \qquad "
        r"y_t = \sum_{e} G_{te}\, E_e(x_t) + \sigma(x_t \cdot w^{\text{shared}})\, E_{\text{shared}}(x_t)"
    )
    citation: ClassVar[str] = (
        "Shazeer et al. 2017 (y = Σ_i G(x)_i E_i(x), experts with G(x)_i = 0 not computed); Jiang et al. 2024 "
        "(Mixtral: SwiGLU experts); Hugging Face Qwen2MoeSparseMoeBlock (shared_expert scaled by "
        "sigmoid(shared_expert_gate(x))). W^gate, W^up, W^down ↦ W_gate, W_up, W_down (n_experts, ·, ·); the shared "
        "expert's ↦ W_shared_gate, W_shared_up, W_shared_down and w_shared (d,)."
    )
    operands: ClassVar[Mapping[str, Operand]] = {
        "x": Operand.PRODUCT, "G": Operand.WEIGHTS, "W_gate": Operand.PRODUCT, "W_up": Operand.PRODUCT,
        "W_down": Operand.PRODUCT, "W_shared_gate": Operand.PRODUCT, "W_shared_up": Operand.PRODUCT,
        "W_shared_down": Operand.PRODUCT, "w_shared": Operand.PRODUCT,
    }

    d: sympy.Expr
    d_expert: sympy.Expr
    n_experts: int
    d_shared: sympy.Expr | None = None
    activation: str = "silu"
    rows: sympy.Expr = DEFAULT_ROWS

    def check(self) -> None:
        where = "MoeExperts"
        _width("d_expert", self.d_expert, where)
        _whole("n_experts", self.n_experts, 1, where)
        if self.d_shared is not None:
            _width("d_shared", self.d_shared, where)
        if self.activation not in EXPERT_ACTIVATIONS:
            raise ConfigError(
                f"activation={self.activation!r}, but expected one of {list(EXPERT_ACTIVATIONS)} [{where}]; Mixtral and Qwen-MoE use 'silu'"
            )

    @classmethod
    def examples(cls) -> SearchStrategy[Primitive]:
        from hypothesis import strategies as st

        # small shapes, each axis > 1 somewhere: the exact definition (and its derivative, for the
        # VJP's check) expands every expert's inner products per entry; more experts, wider rows
        # and ties are drawn by tests/test_moe.py against fast/'s dispatch
        shapes = st.sampled_from([(1, 1, 1, None), (2, 1, 2, None), (1, 2, 2, None), (2, 2, 1, None), (1, 1, 1, 1), (1, 1, 2, 1)])
        def make(shape: tuple[int, int, int, int | None], activation: str) -> Primitive:
            d, d_expert, n_experts, d_shared = shape
            return cls(d, d_expert, n_experts, d_shared, activation)

        return st.builds(make, shapes, st.sampled_from(list(EXPERT_ACTIVATIONS)))

    @classmethod
    def instances(cls, n: int) -> list[Primitive]:
        return [cls(2, 2, 3, 1, "silu", n), cls(2, 2, 3, None, "silu", n)]

    def inputs(self) -> dict[str, TensorType]:
        return {"x": rows(self.rows, self.d), "G": rows(self.rows, sympy.Integer(self.n_experts))}

    def output(self) -> TensorType:
        return rows(self.rows, self.d)

    def params(self) -> dict[str, Shape]:
        n, d, h = sympy.Integer(self.n_experts), sympy.sympify(self.d), sympy.sympify(self.d_expert)
        shapes: dict[str, Shape] = {"W_gate": (n, d, h), "W_up": (n, d, h), "W_down": (n, h, d)}
        if self.d_shared is not None:
            s = sympy.sympify(self.d_shared)
            shapes.update({"W_shared_gate": (d, s), "W_shared_up": (d, s), "W_shared_down": (s, d), "w_shared": (d,)})
        return shapes

    def dependency(self) -> dict[str, Relation]:
        return {"x": RowWise(), "G": RowWise()}

    def act(self) -> Elementwise:
        """The activation op (its ``scalar`` is the formula)."""
        return EXPERT_ACTIVATIONS[self.activation](1)

    def definition(
        self,
        index: tuple[sympy.Expr, ...],
        inputs: Mapping[str, sympy.IndexedBase],
        params: Mapping[str, sympy.IndexedBase],
    ) -> sympy.Expr:
        t, j = index
        x, G = inputs["x"], inputs["G"]
        Wg, Wu, Wd = params["W_gate"], params["W_up"], params["W_down"]
        h = Wg.shape[2]

        def expert(e: sympy.Expr) -> sympy.Expr:
            Ee = expert_output(x, t, j, self.act(), lambda i, m: Wg[e, i, m], lambda i, m: Wu[e, i, m], lambda m, k: Wd[e, m, k], h)
            return G[t, e] * Ee

        routed = total(expert, G.shape[1], "e")
        if self.d_shared is None:
            return routed
        Sg, Su, Sd, w = params["W_shared_gate"], params["W_shared_up"], params["W_shared_down"], params["w_shared"]
        gate = sigmoid(total(lambda i: x[t, i] * w[i], x.shape[1], "i"))
        shared = expert_output(x, t, j, self.act(), lambda i, m: Sg[i, m], lambda i, m: Su[i, m], lambda m, k: Sd[m, k], Sg.shape[1])
        return routed + gate * shared
