"""The mixture-of-experts MLP as a composite, for the families that route (Mixtral, Qwen-MoE).

:class:`MoeMLP` is a block's feed-forward network like :class:`spec.blocks.MLP` (a subclass of it:
a :class:`~spec.blocks.Block` takes it in its ``mlp`` slot unchanged), built by :func:`moe_mlp`
as three nodes:

* ``router`` — :class:`~spec.ops.affine.Affine` without bias, ℓ = x W_router (Θ ``<prefix>.W_router``,
  (d, n_experts));
* ``route`` — :class:`~spec.ops.moe.MoeRouter`: softmax, top-k, the normalisation;
* ``experts`` — :class:`~spec.ops.moe.MoeExperts`: Σ_e G_te E_e(x_t) (Θ ``<prefix>.W_gate``,
  ``W_up``: (n_experts, d, d_expert), ``W_down``: (n_experts, d_expert, d)), plus the shared
  expert σ(x_t · w) E_shared(x_t) when ``d_shared`` is set (Θ ``W_shared_gate``, ``W_shared_up``:
  (d, d_shared), ``W_shared_down``: (d_shared, d), ``w_shared``: (d,)).

Every node is position-wise, so the composite is too: a decoder whose MLPs are MoE MLPs is
causal with the receptive field of the same decoder with dense MLPs (tests/test_moe.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from spec.blocks import MLP, Declare
from spec.dims import T
from spec.errors import ConfigError
from spec.graph import Composite, Graph, graph_input
from spec.ops import Affine, MoeExperts, MoeRouter
from spec.types import rows


@dataclass(frozen=True)
class MoeMLP(MLP):
    """A routed-experts MLP as a block's ``mlp``: ``n_experts`` gated experts of hidden width
    ``d_mlp`` (the expert width), ``top_k`` chosen per position, normalised by ``norm`` (one of
    ``spec.ops.moe.NORMS``), and an optional shared expert of width ``d_shared``. ``bias`` must be
    False and ``gated`` True (every routed family's experts are bias-free gated MLPs)."""

    d_mlp: sympy.Expr = sympy.Integer(1)
    activation: str = "silu"
    bias: bool = False
    gated: bool = True
    n_experts: int = 1
    top_k: int = 1
    norm: str = "softmax_topk_renorm"
    d_shared: sympy.Expr | None = None

    def __post_init__(self) -> None:
        if self.bias or not self.gated:
            raise ConfigError(
                f"bias={self.bias!r}, gated={self.gated!r}, but expected bias=False, gated=True [MoeMLP]; "
                "routed experts are bias-free gated MLPs"
            )
        MoeRouter(self.n_experts, self.top_k, self.norm)  # refuses a bad n_experts, top_k or norm (NORMS) by name

    def make(self, declare: Declare, prefix: str, d: sympy.Expr, n_rows: sympy.Expr = T) -> Composite:
        return moe_mlp(declare, prefix, d=d, mlp=self, n_rows=n_rows)


def moe_mlp(declare: Declare, prefix: str, *, d: sympy.Expr, mlp: MoeMLP, n_rows: sympy.Expr = T) -> Composite:
    """The MoE MLP ``mlp`` at width ``d``: nodes ``router``, ``route``, ``experts`` (the module's
    docstring), Θ entries under ``prefix``."""
    n = sympy.Integer(mlp.n_experts)
    g = Graph("moe_mlp", {"x": rows(n_rows, d)})
    x = graph_input("x")
    logits = g.add("router", Affine(d, n, False, n_rows), {"x": x}, {"W": declare(f"{prefix}.W_router", (d, n))})
    weights = g.add("route", MoeRouter(mlp.n_experts, mlp.top_k, mlp.norm, n_rows), {"logits": logits})
    h = mlp.d_mlp
    params = {
        "W_gate": declare(f"{prefix}.W_gate", (n, d, h)),
        "W_up": declare(f"{prefix}.W_up", (n, d, h)),
        "W_down": declare(f"{prefix}.W_down", (n, h, d)),
    }
    if mlp.d_shared is not None:
        s = mlp.d_shared
        params.update({
            "W_shared_gate": declare(f"{prefix}.W_shared_gate", (d, s)),
            "W_shared_up": declare(f"{prefix}.W_shared_up", (d, s)),
            "W_shared_down": declare(f"{prefix}.W_shared_down", (s, d)),
            "w_shared": declare(f"{prefix}.w_shared", (d,)),
        })
    op = MoeExperts(d, h, mlp.n_experts, mlp.d_shared, mlp.activation, n_rows)
    g.output("y", g.add("experts", op, {"x": x, "G": weights}, params))
    title = f"MoE MLP ({mlp.n_experts} experts, top-{mlp.top_k}{', shared expert' if mlp.d_shared is not None else ''})"
    return Composite("moe_mlp", title, g)
