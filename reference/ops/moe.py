"""Routed experts, literally: the router row by row (rank, softmax, normalisation), the experts
token by token over the chosen experts only (G_te ≠ 0; the dense sum of the definition equals
this sparse one, theorem ``moe_sparse_equals_dense``)."""

from __future__ import annotations

import math

import numpy as np

from reference.ops.gate import sigmoid
from reference.ops.table import REFERENCE, VJP, Array
from spec.errors import ShapeError
from spec.ops import MoeExperts, MoeRouter


def top_k(l_t: Array, k: int) -> list[int]:
    """K_t: the k experts of largest logit, the lower index first among equal logits."""
    return sorted(range(len(l_t)), key=lambda e: (-l_t[e], e))[:k]


@REFERENCE.implements(MoeRouter)
def moe_router(op: MoeRouter, logits: Array) -> Array:  # [T, n_experts] -> [T, n_experts]
    T, n = logits.shape
    G = np.zeros((T, n))
    for t in range(T):
        K_t = top_k(logits[t], int(op.top_k))  # the chosen experts
        m_t = max(logits[t])  # m_t = max_e ℓ_te (also the max over K_t)
        if op.norm == "topk_softmax":
            e_K = {e: math.exp(logits[t, e] - m_t) for e in K_t}  # e^{ℓ_te − m_t}, e ∈ K_t
            Z_K = math.fsum(e_K.values())  # Σ_{e' ∈ K_t} e^{ℓ_te' − m_t}
            for e in K_t:
                G[t, e] = e_K[e] / Z_K  # G_te = e^{ℓ_te} / Σ_{e' ∈ K_t} e^{ℓ_te'}
            continue
        p_t = [math.exp(logits[t, e] - m_t) for e in range(n)]  # e^{ℓ_te − m_t}
        Z_t = math.fsum(p_t)  # Z_t = Σ_e' e^{ℓ_te' − m_t}
        p_t = [v / Z_t for v in p_t]  # p_te = softmax(ℓ_t)_e
        kept = math.fsum(p_t[e] for e in K_t) if op.norm == "softmax_topk_renorm" else 1.0  # Σ_{e' ∈ K_t} p_te'
        for e in K_t:
            G[t, e] = p_t[e] / kept  # G_te = p_te [/ Σ_{e' ∈ K_t} p_te']; 0 for e ∉ K_t
    return G


def gated_mlp_row(op: MoeExperts, x_t: Array, W_gate: Array, W_up: Array, W_down: Array) -> Array:
    """One expert on one row: (act(x_t W_gate) ⊙ x_t W_up) W_down, the activation by its own
    reference function."""
    a = x_t @ W_gate  # x_t W_gate
    act = REFERENCE[op.activation](op.act(), a[None, :])[0]  # act(x_t W_gate)
    b = x_t @ W_up  # x_t W_up
    h = act * b  # ⊙
    y: Array = h @ W_down  # W_down
    return y


@REFERENCE.implements(MoeExperts)
def moe_experts(
    op: MoeExperts, x: Array, G: Array, W_gate: Array, W_up: Array, W_down: Array,
    W_shared_gate: Array | None = None, W_shared_up: Array | None = None, W_shared_down: Array | None = None,
    w_shared: Array | None = None,
) -> Array:  # [T, d], [T, n_experts] -> [T, d]
    T, n = G.shape
    y = np.zeros((T, x.shape[1]))
    for t in range(T):
        for e in range(n):
            if G[t, e] == 0.0:
                continue  # not chosen: G_te E_e(x_t) = 0
            y[t] += G[t, e] * gated_mlp_row(op, x[t], W_gate[e], W_up[e], W_down[e])  # y_t += G_te E_e(x_t)
        if op.d_shared is not None:
            Sg, Su, Sd, w = shared_params(W_shared_gate, W_shared_up, W_shared_down, w_shared)
            g_t = sigmoid(float(x[t] @ w))  # σ(x_t · w_shared)
            y[t] += g_t * gated_mlp_row(op, x[t], Sg, Su, Sd)  # + σ(x_t · w_shared) E_shared(x_t)
    return y


def shared_params(*arrays: Array | None) -> tuple[Array, Array, Array, Array]:
    """The shared expert's W_shared_gate, W_shared_up, W_shared_down, w_shared, all present."""
    if any(a is None for a in arrays):
        raise ShapeError(
            "shared expert parameters missing, but expected W_shared_gate, W_shared_up, W_shared_down and w_shared "
            "[moe_experts]; an op with d_shared declares all four"
        )
    Sg, Su, Sd, w = (np.asarray(a) for a in arrays)
    return Sg, Su, Sd, w


# --- vector–Jacobian products: g = ∂L/∂y in, the cotangents of the inputs out ---


@VJP.implements(MoeRouter)
def moe_router_vjp(op: MoeRouter, g: Array, logits: Array) -> dict[str, Array]:  # [T, n] -> [T, n]
    # K_t is constant where the logits have no ties at the k-th place (almost everywhere): the derivative is the softmax's.
    G = moe_router(op, logits)
    T, n = logits.shape
    gl = np.zeros((T, n))
    for t in range(T):
        inner = math.fsum(g[t] * G[t])  # Σ_e g_te G_te
        if op.norm == "softmax_topk":
            m_t = max(logits[t])
            p_t = np.exp(logits[t] - m_t) / math.fsum(np.exp(logits[t] - m_t))  # p_t = softmax(ℓ_t)
            c_t = np.isin(np.arange(n), top_k(logits[t], int(op.top_k)))  # [e ∈ K_t]
            gl[t] = p_t * (np.where(c_t, g[t], 0.0) - inner)  # ∂L/∂ℓ_tf = p_tf ([f ∈ K_t] g_tf − Σ_e g_te G_te)
        else:
            gl[t] = G[t] * (g[t] - inner)  # softmax over K_t: ∂L/∂ℓ_tf = G_tf (g_tf − Σ_e g_te G_te), 0 for f ∉ K_t
    return {"logits": gl}


def gated_mlp_row_vjp(op: MoeExperts, go: Array, x_t: Array, W_gate: Array, W_up: Array, W_down: Array) -> dict[str, Array]:
    """Cotangents of one expert on one row given go = ∂L/∂(its output)."""
    a, b = x_t @ W_gate, x_t @ W_up  # a = x_t W_gate, b = x_t W_up
    act = REFERENCE[op.activation](op.act(), a[None, :])[0]  # act(a)
    h = act * b  # h = act(a) ⊙ b
    gh = W_down @ go  # ∂L/∂h = W_down go
    ga = VJP[op.activation](op.act(), (gh * b)[None, :], a[None, :])["x"][0]  # ∂L/∂a = act'(a) ⊙ b ⊙ ∂L/∂h
    gb = gh * act  # ∂L/∂b = act(a) ⊙ ∂L/∂h
    return {
        "x": W_gate @ ga + W_up @ gb,  # ∂L/∂x_t = W_gate ∂L/∂a + W_up ∂L/∂b
        "W_gate": np.outer(x_t, ga), "W_up": np.outer(x_t, gb), "W_down": np.outer(h, go),
    }


@VJP.implements(MoeExperts)
def moe_experts_vjp(
    op: MoeExperts, g: Array, x: Array, G: Array, W_gate: Array, W_up: Array, W_down: Array,
    W_shared_gate: Array | None = None, W_shared_up: Array | None = None, W_shared_down: Array | None = None,
    w_shared: Array | None = None,
) -> dict[str, Array]:  # [T, d] -> …
    T, n = G.shape
    out = {"x": np.zeros_like(x), "G": np.zeros_like(G), "W_gate": np.zeros_like(W_gate), "W_up": np.zeros_like(W_up),
           "W_down": np.zeros_like(W_down)}
    for t in range(T):
        for e in range(n):
            # ∂L/∂G_te = g_t · E_e(x_t) for every expert, chosen or not (the definition is dense)
            out["G"][t, e] = g[t] @ gated_mlp_row(op, x[t], W_gate[e], W_up[e], W_down[e])
            if G[t, e] == 0.0:
                continue  # no other cotangent flows through an expert of weight 0
            parts = gated_mlp_row_vjp(op, G[t, e] * g[t], x[t], W_gate[e], W_up[e], W_down[e])  # ∂L/∂E_e = G_te g_t
            out["x"][t] += parts["x"]
            for name in ("W_gate", "W_up", "W_down"):
                out[name][e] += parts[name]
    if op.d_shared is None:
        return out
    Sg, Su, Sd, w = shared_params(W_shared_gate, W_shared_up, W_shared_down, w_shared)
    shared = {"W_shared_gate": np.zeros_like(Sg), "W_shared_up": np.zeros_like(Su), "W_shared_down": np.zeros_like(Sd),
              "w_shared": np.zeros_like(w)}
    for t in range(T):
        z = float(x[t] @ w)
        s, one_minus_s = sigmoid(z), sigmoid(-z)  # σ(z), 1 − σ(z) = σ(−z)
        E = gated_mlp_row(op, x[t], Sg, Su, Sd)  # E_shared(x_t)
        gz = float(g[t] @ E) * s * one_minus_s  # ∂L/∂z = (g_t · E_shared(x_t)) σ(z) (1 − σ(z))
        parts = gated_mlp_row_vjp(op, s * g[t], x[t], Sg, Su, Sd)  # ∂L/∂E_shared = σ(z) g_t
        out["x"][t] += parts["x"] + gz * w  # + ∂L/∂z w_shared
        shared["w_shared"] += gz * x[t]  # ∂L/∂w_shared = Σ_t ∂L/∂z_t x_t
        shared["W_shared_gate"] += parts["W_gate"]
        shared["W_shared_up"] += parts["W_up"]
        shared["W_shared_down"] += parts["W_down"]
    return {**out, **shared}
