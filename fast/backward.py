"""fast/'s batched backward: a vector–Jacobian product per kernel, a batched reverse pass over the
DAG, and the fused attention's backward that recomputes the probabilities block by block.

* :data:`FAST_VJP`: op kind → ``fn(op, batch, g, **inputs, **params) -> {name: cotangent}``, the
  batched twin of reference/ops/'s ``VJP`` (inputs (B, T, …), parameters shared by the batch, so
  their cotangents are summed over it). tests/test_fast_backward.py holds each equal to the
  reference's, sequence by sequence.
* :func:`value_and_grad` (and ``fast.Program.value_and_grad``): the loss of a padded batch under
  a spec ``Objective`` (:func:`objective_vjp`, the batched twin of reference/objective.py) and
  ∂L/∂θ; :func:`backward`: ∂L/∂θ given ∂L/∂logits. Both run fast/'s kernels forward op by op,
  keeping every value, then :data:`FAST_VJP` in reverse.
* :func:`attention_forward` / :func:`attention_backward`: one attention head fused — scores,
  masked softmax and weighted sum — whose backward keeps only the output O and each row's
  log-normaliser (B × T numbers) from the forward and recomputes the probabilities one query tile
  × key block at a time (FlashAttention-2's backward), so no T × S matrix is ever stored:

      P_blk = [allowed] exp(c(scale Q K_blkᵀ) − lse)        (c: the soft cap, or the identity)
      ∂V_blk += P_blkᵀ ∂O_tile
      ∂P_blk = ∂O_tile V_blkᵀ,   δ = rowsum(∂O ∘ O)
      ∂A_blk = P_blk (∂P_blk − δ) · c'(·)
      ∂Q_tile += scale ∂A_blk K_blk,   ∂K_blk += scale ∂A_blkᵀ Q_tile

  A tile × block no query of the tile may read (a causal mask's future) is skipped, and tiles and
  blocks are small (64, as fast.Program's ``block``) so that each GEMM runs on the calling thread.

  benchmarks/backward_attention.py measures its peak memory against the forward's and its speed
  against PyTorch autograd (docs/performance.md).

**Public API** (``gptspec check --grad`` calls it)::

    program = fast.compile(arch, theta, dtype)     # "float64", "float32", "float16" or "bfloat16"
    result = program.value_and_grad(ids, valid=None, *, labels=None, objective=Objective(),
                                    denominator=None, fused=True)       # -> fast.backward.Gradients
    result.loss        # float: L of the batch under spec.objective.Objective
    result.theta       # {Θ name: ∂L/∂θ}, every entry, θ[name]'s shape, in the program's dtype
    result.logits      # (B, T, n_vocab), padded rows 0
    result.embeddings  # {token_embedding path: ∂L/∂E (B, T, d_model)}, padded rows 0

    # the same without a compiled program:
    fast.backward.value_and_grad(arch, theta, ids, valid=None, *, labels=None, objective=Objective(),
                                 denominator=None, dtype="float64", fused=True, block=64)

``ids`` (B, T) (or (T,)); ``valid`` (B, T) marks the real tokens (left or right padding, or holes): sequence
b is ``ids[b][valid[b]]``, and the result equals ``reference.backward.value_and_grad`` on those
sequences (padded rows contribute nothing). ``labels`` (B, T), aligned with ``ids`` (default: the
ids), is read at the valid positions only; the objective's label shift, ignore index, smoothing,
z-loss and reduction are the spec's. ``denominator``: the whole batch's D when ``ids`` is one
micro-batch of it (``objective.denominator(all labels)``; spec/objective.py). Precisions: as
fast/'s forward (fast/precision.py) — float64 and float32 compute in themselves; float16 and
bfloat16 store every value and cotangent in the half precision and compute in float32. The
tolerance policy is docs/tolerances.md, "fast/'s backward against the reference". An
encoder–decoder is refused (``ConfigError``), as by the reference's ``value_and_grad``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fast.batch import Batch, check_ids, positions_from_valid
from fast.kernels import KERNELS, OneHotIds, attention_mask, softmax_rows
from fast.kernels.activations import erfc_fast
from fast.kernels.rotary import rotate
from fast.precision import Precision, is_real, resolve_dtype, to_storage
from spec.errors import ConfigError, ShapeError, TokenError
from spec.graph import Architecture, ParamRef
from spec.masks import Relation
from spec.objective import Objective
from spec.op import Implementations, Primitive
from spec.ops import (
    Add,
    Affine,
    AttentionScores,
    ConcatHeads,
    Conv1d,
    GeluErf,
    GeluTanh,
    LayerNorm,
    LearnedPositional,
    MaskedSoftmax,
    MoeExperts,
    MoeRouter,
    Multiply,
    OneHot,
    Relu,
    RMSNorm,
    Rotary,
    Scale,
    SigmoidGate,
    Silu,
    SinusoidalPositional,
    SoftCap,
    TakeHead,
    TokenEmbedding,
    WeightedSum,
)
from spec.theta import as_float64, check_theta
from spec.types import Element

Array = npt.NDArray[Any]
FastVjp = Callable[..., dict[str, Array]]

FAST_VJP: Implementations[FastVjp] = Implementations("fast_vjp", "fast/backward.py")
"""op kind → batched VJP ``fn(op, batch, g, **inputs, **params) -> {name: ∂L/∂name}``."""


def _rows(x: Array) -> Array:
    return x.reshape(-1, x.shape[-1])  # (B·T, features)


# --- element-wise ---------------------------------------------------------------------------

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


@FAST_VJP.implements(GeluErf)
def gelu_erf_vjp(op: GeluErf, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    z = -x.astype(np.float64) / math.sqrt(2.0)  # as the forward: float64 takes math.erfc, other dtypes the fit
    Phi = (0.5 * (_erfc(z) if x.dtype == np.float64 else erfc_fast(z))).astype(x.dtype)  # Φ(x)
    return {"x": g * (Phi + x * np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi))}  # g (Φ + x φ)


@FAST_VJP.implements(GeluTanh)
def gelu_tanh_vjp(op: GeluTanh, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    c = float(op.cubic)
    x2 = x * x
    t = np.tanh(math.sqrt(2.0 / math.pi) * x * (1.0 + c * x2))  # tanh u, u = √(2/π)(x + c x³)
    du = math.sqrt(2.0 / math.pi) * (1.0 + 3.0 * c * x2)
    # g (½(1 + tanh u) + ½ x (1 − tanh² u) u'): one tanh (½(1 + t) loses only absolute accuracy, below u_D, for u ≪ 0)
    return {"x": g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)}


@FAST_VJP.implements(Relu)
def relu_vjp(op: Relu, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    return {"x": np.where(x > 0, g, 0.0)}


@FAST_VJP.implements(Silu)
def silu_vjp(op: Silu, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    sigma = np.exp(-np.logaddexp(0.0, -x))
    return {"x": g * sigma * (1.0 + x * (1.0 - sigma))}


@FAST_VJP.implements(Multiply)
def multiply_vjp(op: Multiply, batch: Batch, g: Array, a: Array, b: Array) -> dict[str, Array]:
    return {"a": g * b, "b": g * a}


@FAST_VJP.implements(Add)
def add_vjp(op: Add, batch: Batch, g: Array, a: Array, b: Array) -> dict[str, Array]:
    return {"a": g, "b": g}


@FAST_VJP.implements(Scale)
def scale_vjp(op: Scale, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    return {"x": float(op.c) * g}


@FAST_VJP.implements(TakeHead)
def take_head_vjp(op: TakeHead, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    gx = np.zeros_like(x, dtype=g.dtype)
    d_head = g.shape[-1]
    gx[..., op.head * d_head : (op.head + 1) * d_head] = g  # the other heads' columns: 0
    return {"x": gx}


@FAST_VJP.implements(SoftCap)
def soft_cap_vjp(op: SoftCap, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    return {"x": g * (1.0 - np.tanh(x / float(op.cap)) ** 2)}


@FAST_VJP.implements(SigmoidGate)
def sigmoid_gate_vjp(op: SigmoidGate, batch: Batch, g: Array, x1: Array, x2: Array, a: Array) -> dict[str, Array]:
    w = float(np.exp(-np.logaddexp(0.0, -float(a[0]))))
    one_minus_w = float(np.exp(-np.logaddexp(0.0, float(a[0]))))
    return {"x1": w * g, "x2": one_minus_w * g, "a": np.array([np.sum(g * (x1 - x2)) * w * one_minus_w])}


# --- maps and norms -------------------------------------------------------------------------


@FAST_VJP.implements(Affine)
def affine_vjp(op: Affine, batch: Batch, g: Array, x: Array, W: Array, b: Array | None = None) -> dict[str, Array]:
    out = {"x": (_rows(g) @ W.T).reshape(*g.shape[:-1], W.shape[0]), "W": _rows(x).T @ _rows(g)}  # one GEMM each over all B·T rows
    if b is not None:
        out["b"] = _rows(g).sum(axis=0)
    return out


@FAST_VJP.implements(Conv1d)
def conv1d_vjp(op: Conv1d, batch: Batch, g: Array, x: Array, W: Array, b: Array | None = None) -> dict[str, Array]:
    gx, gW = np.zeros_like(x), np.zeros_like(W)
    for i in range(op.kernel):  # tap i of query position p reads the real row at position p − pad_left + i (the forward's pick)
        want = batch.positions - op.pad_left + i
        pick = ((batch.key_positions[:, None, :] == want[:, :, None]) & batch.key_valid[:, None, :]).astype(x.dtype)  # (B, T, S)
        gx += pick.swapaxes(-1, -2) @ (g @ W[i].T)
        gW[i] += _rows(pick @ x).T @ _rows(g)
    out = {"x": gx, "W": gW}
    if b is not None:
        out["b"] = _rows(g).sum(axis=0)
    return out


@FAST_VJP.implements(LayerNorm)
def layer_norm_vjp(op: LayerNorm, batch: Batch, g: Array, x: Array, gamma: Array, beta: Array | None = None) -> dict[str, Array]:
    delta = x - x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt((delta**2).mean(axis=-1, keepdims=True) + op.eps)
    xhat = delta * r
    gxhat = g * gamma
    gx = r * (gxhat - gxhat.mean(axis=-1, keepdims=True) - xhat * (gxhat * xhat).mean(axis=-1, keepdims=True))
    out = {"x": gx, "gamma": _rows(g * xhat).sum(axis=0)}
    if beta is not None:
        out["beta"] = _rows(g).sum(axis=0)
    return out


@FAST_VJP.implements(RMSNorm)
def rms_norm_vjp(op: RMSNorm, batch: Batch, g: Array, x: Array, gamma: Array) -> dict[str, Array]:
    gain = 1.0 + gamma if op.offset else gamma
    r = np.sqrt((x**2).mean(axis=-1, keepdims=True) + op.eps)
    h = g * gain
    gx = h / r - x * (h * x).sum(axis=-1, keepdims=True) / (x.shape[-1] * r**3)
    return {"x": gx, "gamma": _rows(g * x / r).sum(axis=0)}


# --- embeddings and positions ---------------------------------------------------------------


@FAST_VJP.implements(OneHot)
def one_hot_vjp(op: OneHot, batch: Batch, g: Array, ids: Any) -> dict[str, Array]:
    return {}


@FAST_VJP.implements(TokenEmbedding)
def token_embedding_vjp(op: TokenEmbedding, batch: Batch, g: Array, X: OneHotIds | Array, W_E: Array) -> dict[str, Array]:
    gW_E = np.zeros_like(W_E)
    if isinstance(X, OneHotIds):
        np.add.at(gW_E, X.ids.reshape(-1), _rows(g))  # scatter-add the rows of the tokens that occur
        return {"W_E": gW_E}  # the one-hot input is kept as ids (fast/kernels/one_hot.py): it has no cotangent
    return {"X": g @ W_E.T, "W_E": _rows(X).T @ _rows(g)}


@FAST_VJP.implements(LearnedPositional)
def learned_positional_vjp(op: LearnedPositional, batch: Batch, g: Array, ids: Any, W_P: Array) -> dict[str, Array]:
    gW_P = np.zeros_like(W_P)
    real = batch.valid.reshape(-1)  # a padded row reads no position
    np.add.at(gW_P, batch.positions.reshape(-1)[real], _rows(g)[real])
    return {"W_P": gW_P}


@FAST_VJP.implements(SinusoidalPositional)
def sinusoidal_positional_vjp(op: SinusoidalPositional, batch: Batch, g: Array, ids: Any) -> dict[str, Array]:
    return {}


@FAST_VJP.implements(Rotary)
def rotary_vjp(op: Rotary, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    return {"x": rotate(op, g, -batch.positions)}  # Rᵀ(t) = R(−t): rotate g back by the same angles


# --- attention, op by op --------------------------------------------------------------------


@FAST_VJP.implements(AttentionScores)
def attention_scores_vjp(op: AttentionScores, batch: Batch, g: Array, Q: Array, K: Array) -> dict[str, Array]:
    scale = float(op.scale)
    ga = g
    if op.softcap is not None:
        ga = g * (1.0 - np.tanh(scale * (Q @ K.swapaxes(-1, -2)) / op.softcap) ** 2)
    return {"Q": scale * (ga @ K), "K": scale * (ga.swapaxes(-1, -2) @ Q)}


@FAST_VJP.implements(MaskedSoftmax)
def masked_softmax_vjp(op: MaskedSoftmax, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    if x.size == 0:
        return {"x": np.zeros_like(x)}  # no positions or no keys
    y = softmax_rows(x, attention_mask(op.mask, batch))  # recomputed
    return {"x": y * (g - (y * g).sum(axis=-1, keepdims=True))}


@FAST_VJP.implements(WeightedSum)
def weighted_sum_vjp(op: WeightedSum, batch: Batch, g: Array, A: Array, V: Array) -> dict[str, Array]:
    return {"A": g @ V.swapaxes(-1, -2), "V": A.swapaxes(-1, -2) @ g}


@FAST_VJP.implements(ConcatHeads)
def concat_heads_vjp(op: ConcatHeads, batch: Batch, g: Array, **z: Array) -> dict[str, Array]:
    d_head = z["z_0"].shape[-1]
    return {f"z_{h}": g[..., h * d_head : (h + 1) * d_head] for h in range(op.n_heads)}


# --- routed experts -------------------------------------------------------------------------


def _chosen(logits: Array, k: int) -> npt.NDArray[np.bool_]:
    """[e ∈ K_t]: the k largest logits of each row, the lower index first among equal ones (a
    stable sort of −ℓ keeps equal logits in index order)."""
    order = np.argsort(-logits, axis=-1, kind="stable")
    c = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(c, order[..., :k], True, axis=-1)
    return c


@FAST_VJP.implements(MoeRouter)
def moe_router_vjp(op: MoeRouter, batch: Batch, g: Array, logits: Array) -> dict[str, Array]:
    c = _chosen(logits, int(op.top_k))  # K_t is constant almost everywhere: the derivative is the softmax's
    e = np.exp(logits - logits.max(axis=-1, keepdims=True, initial=-np.inf)) if logits.size else np.zeros_like(logits)
    p = e / e.sum(axis=-1, keepdims=True) if logits.size else e
    if op.norm == "softmax_topk":
        G = np.where(c, p, 0.0)
        return {"logits": p * (np.where(c, g, 0.0) - (g * G).sum(axis=-1, keepdims=True))}
    kept = np.where(c, p, 0.0)
    G = kept / kept.sum(axis=-1, keepdims=True) if logits.size else kept  # softmax over K_t
    return {"logits": G * (g - (g * G).sum(axis=-1, keepdims=True))}


def _gated_mlp(op: MoeExperts, batch: Batch, x: Array, Wg: Array, Wu: Array, Wd: Array) -> tuple[Array, Array, Array, Array]:
    """a = x Wg, b = x Wu, act(a), and the expert's output (act(a) ⊙ b) Wd."""
    a, b = x @ Wg, x @ Wu
    act = KERNELS[op.activation](op.act(), batch, a)
    return a, b, act, (act * b) @ Wd


def _gated_mlp_vjp(op: MoeExperts, batch: Batch, go: Array, x: Array, Wg: Array, Wu: Array, Wd: Array) -> tuple[Array, Array, Array, Array]:
    """∂L/∂x, ∂L/∂Wg, ∂L/∂Wu, ∂L/∂Wd of one expert given go = ∂L/∂(its output)."""
    a, b, act, _ = _gated_mlp(op, batch, x, Wg, Wu, Wd)
    gh = go @ Wd.T
    ga = FAST_VJP[op.activation](op.act(), batch, gh * b, a)["x"]
    gb = gh * act
    return ga @ Wg.T + gb @ Wu.T, _rows(x).T @ _rows(ga), _rows(x).T @ _rows(gb), _rows(act * b).T @ _rows(go)


@FAST_VJP.implements(MoeExperts)
def moe_experts_vjp(
    op: MoeExperts, batch: Batch, g: Array, x: Array, G: Array, W_gate: Array, W_up: Array, W_down: Array,
    W_shared_gate: Array | None = None, W_shared_up: Array | None = None, W_shared_down: Array | None = None,
    w_shared: Array | None = None,
) -> dict[str, Array]:
    out = {"x": np.zeros_like(x), "G": np.zeros_like(G), "W_gate": np.zeros_like(W_gate), "W_up": np.zeros_like(W_up),
           "W_down": np.zeros_like(W_down)}
    for e in range(G.shape[-1]):  # every expert: ∂L/∂G_te = g_t · E_e(x_t), chosen or not (the definition is dense)
        _, _, _, E = _gated_mlp(op, batch, x, W_gate[e], W_up[e], W_down[e])
        out["G"][..., e] = (g * E).sum(axis=-1)
        gx, gWg, gWu, gWd = _gated_mlp_vjp(op, batch, G[..., e : e + 1] * g, x, W_gate[e], W_up[e], W_down[e])
        out["x"] += gx
        out["W_gate"][e], out["W_up"][e], out["W_down"][e] = gWg, gWu, gWd
    if op.d_shared is None:
        return out
    if W_shared_gate is None or W_shared_up is None or W_shared_down is None or w_shared is None:
        raise ShapeError("shared expert parameters missing, but expected all four with d_shared [fast moe_experts vjp]")
    z = x @ w_shared
    s = np.exp(-np.logaddexp(0.0, -z))  # σ(z)
    _, _, _, E = _gated_mlp(op, batch, x, W_shared_gate, W_shared_up, W_shared_down)
    gz = (g * E).sum(axis=-1) * s * (1.0 - s)
    gx, gSg, gSu, gSd = _gated_mlp_vjp(op, batch, s[..., None] * g, x, W_shared_gate, W_shared_up, W_shared_down)
    out["x"] += gx + gz[..., None] * w_shared
    out.update({"W_shared_gate": gSg, "W_shared_up": gSu, "W_shared_down": gSd, "w_shared": _rows(x).T @ gz.reshape(-1)})
    return out


# --- one head, fused, with recomputation ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HeadSaved:
    """What the fused forward keeps for the backward: the output and each row's log-normaliser
    (−inf on a row with no allowed key); never the T × S probabilities."""

    O: Array  # (B, T, d_v)
    lse: Array  # (B, T)


def _block_scores(Q: Array, K_blk: Array, scale: float, softcap: float | None) -> tuple[Array, Array | None]:
    """Capped scores of a key block and the cap's derivative c'(a) (None without a cap)."""
    a = scale * (Q @ K_blk.swapaxes(-1, -2))
    if softcap is None:
        return a, None
    th = np.tanh(a / softcap)
    return softcap * th, 1.0 - th**2


def _tiles(allowed: npt.NDArray[np.bool_], block: int) -> list[tuple[slice, slice, bool]]:
    """(query tile, key block, every pair allowed) for every tile × block of ``block`` rows and
    columns that some query of the tile may read (a causal mask skips the blocks in the tile's
    future). Small tiles keep each GEMM small enough for OpenBLAS to run it on the calling thread
    (fast/program.py, ``block``)."""
    T, S = allowed.shape[1], allowed.shape[2]
    out = []
    for t0 in range(0, T, block):
        for s0 in range(0, S, block):
            mask = allowed[:, t0 : t0 + block, s0 : s0 + block]
            if mask.any():
                out.append((slice(t0, t0 + block), slice(s0, s0 + block), bool(mask.all())))
    return out


def attention_forward(
    Q: Array, K: Array, V: Array, allowed: npt.NDArray[np.bool_], scale: float, softcap: float | None = None, block: int = 64
) -> HeadSaved:
    """One head, query tile by query tile and key block by key block (online softmax):
    O = softmax_allowed(c(scale Q Kᵀ)) V, in the inputs' dtype."""
    B, T, _ = Q.shape
    m = np.full((B, T, 1), -np.inf, dtype=Q.dtype)  # running row maximum over the allowed keys
    l = np.zeros((B, T, 1), dtype=Q.dtype)  # running Σ exp(a − m)
    acc = np.zeros((B, T, V.shape[-1]), dtype=Q.dtype)  # running Σ exp(a − m) V
    for t, s, dense in _tiles(allowed, block):
        a, _ = _block_scores(Q[:, t], K[:, s], scale, softcap)
        mask = allowed[:, t, s]
        m_old = m[:, t]
        m_new = np.maximum(m_old, np.max(a if dense else np.where(mask, a, -np.inf), axis=-1, keepdims=True))
        shift = np.where(np.isfinite(m_new), m_new, 0.0)
        p = np.exp(a - shift) if dense else np.where(mask, np.exp(np.where(mask, a - shift, 0.0)), 0.0)
        rescale = np.where(np.isfinite(m_old), np.exp(m_old - shift), 0.0)
        l[:, t] = l[:, t] * rescale + p.sum(axis=-1, keepdims=True)
        acc[:, t] = acc[:, t] * rescale + p @ V[:, s]
        m[:, t] = m_new
    O = np.divide(acc, l, out=np.zeros_like(acc), where=l > 0)
    lse = np.where(l[..., 0] > 0, m[..., 0] + np.log(np.where(l[..., 0] > 0, l[..., 0], 1.0)), -np.inf)
    return HeadSaved(O, lse)


def attention_backward(
    Q: Array, K: Array, V: Array, allowed: npt.NDArray[np.bool_], scale: float, saved: HeadSaved, dO: Array,
    softcap: float | None = None, block: int = 64,
) -> tuple[Array, Array, Array]:
    """∂L/∂Q, ∂L/∂K, ∂L/∂V of one fused head from ∂L/∂O, recomputing P one tile × key block at a
    time (module docstring); a row with no allowed key (lse = −inf) gets 0."""
    delta = (dO * saved.O).sum(axis=-1, keepdims=True).astype(Q.dtype)  # δ_t = Σ_k ∂O_tk O_tk = Σ_s P_ts ∂P_ts
    lse = np.where(np.isfinite(saved.lse), saved.lse, 0.0)[..., None].astype(Q.dtype)  # computed in the inputs' dtype
    dQ, dK, dV = np.zeros_like(Q), np.zeros_like(K), np.zeros_like(V)
    for t, s, dense in _tiles(allowed, block):  # lse is finite on every row with an allowed key
        a, slope = _block_scores(Q[:, t], K[:, s], scale, softcap)
        mask = allowed[:, t, s]
        P = np.exp(a - lse[:, t]) if dense else np.where(mask, np.exp(np.where(mask, a - lse[:, t], 0.0)), 0.0)
        dV[:, s] += P.swapaxes(-1, -2) @ dO[:, t]  # recomputed P, (B, tile, block)
        dA = P * (dO[:, t] @ V[:, s].swapaxes(-1, -2) - delta[:, t])  # P (∂P − δ)
        if slope is not None:
            dA *= slope
        dQ[:, t] += scale * (dA @ K[:, s])
        dK[:, s] += scale * (dA.swapaxes(-1, -2) @ Q[:, t])
    return dQ, dK, dV


def allowed_matrix(relation: Relation, B: int, T: int, S: int) -> npt.NDArray[np.bool_]:
    """The (B, T, S) allowed matrix of a mask for full-length sequences (positions 0 … T−1)."""
    q, k = np.arange(T)[None, :, None], np.arange(S)[None, None, :]
    return np.broadcast_to(relation.allowed_array(q, k), (B, T, S))


# --- the entry points: ∂L/∂θ from ∂L/∂logits, or from the objective -----------------------


def full_batch(B: int, T: int) -> Batch:
    """A batch of B full-length sequences: positions 0 … T−1, nothing padded."""
    positions = np.broadcast_to(np.arange(T, dtype=np.int64), (B, T)).copy()
    valid = np.ones((B, T), dtype=bool)
    return Batch(positions, valid, positions.copy(), valid.copy())


def padded_batch(valid: npt.NDArray[np.bool_]) -> Batch:
    """The batch of a valid mask (B, T): position ids counting real tokens only (fast.batch), so
    left padding shifts them; every row is a key row."""
    positions = positions_from_valid(valid)
    return Batch(positions, valid, positions.copy(), valid.copy())


@dataclasses.dataclass(frozen=True)
class Gradients:
    """A batch's loss and its gradients, from fast/ (:func:`value_and_grad`,
    ``fast.Program.value_and_grad``): the batched twin of ``reference.backward.Gradients``."""

    loss: float
    """L of the batch (of this micro-batch, over the whole batch's denominator, when one was given)."""
    theta: dict[str, Array]
    """∂L/∂θ for every Θ entry, in Θ's order and θ[name]'s shape, in the program's dtype."""
    logits: Array
    """(B, T, n_vocab), padded rows 0."""
    embeddings: dict[str, Array]
    """∂L/∂E (B, T, d_model) for the output E of each ``token_embedding`` primitive, by DAG path
    (Hugging Face's ``inputs_embeds``); padded rows 0."""


def backward(
    arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: npt.ArrayLike, cotangent: npt.ArrayLike, fused: bool = True,
    *, valid: npt.ArrayLike | None = None, dtype: str | npt.DTypeLike = "float64", block: int = 64,
) -> tuple[Array, dict[str, Array]]:
    """The logits (B, T, n_vocab) of a batch and ∂L/∂θ for every Θ entry, given ∂L/∂logits
    (B, T, n_vocab): fast/'s kernels forward op by op (every value kept), then :data:`FAST_VJP` in
    reverse, cotangents summed where a value or a Θ entry is read twice. ``valid`` (B, T) marks the
    real tokens (padded rows are masked out of attention as in the forward, and the given
    cotangent's padded rows are not read); ``dtype``: one of fast/'s (module docstring).

    With ``fused`` (the default) every head — scores read only by a masked softmax read only by a
    weighted sum — runs as :func:`attention_forward` / :func:`attention_backward` with query tiles
    and key blocks of ``block``: no T × S value is kept between the passes."""
    given = np.asarray(cotangent)

    def seed(logits: Array, tokens: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> tuple[float, Array]:
        if given.shape != logits.shape:
            raise ShapeError(f"cotangent of shape {given.shape}, but expected the logits' {logits.shape} [fast backward {arch.name}]")
        return 0.0, np.where(mask[..., None], given, 0.0).astype(logits.dtype)

    result = _differentiate(arch, theta, ids, valid, seed, dtype, fused, block)
    return result.logits, result.theta


def value_and_grad(
    arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: npt.ArrayLike, valid: npt.ArrayLike | None = None, *,
    labels: npt.ArrayLike | None = None, objective: Objective = Objective(), denominator: int | None = None,
    dtype: str | npt.DTypeLike = "float64", fused: bool = True, block: int = 64,
) -> Gradients:
    """L and ∇L of a (padded) batch under ``objective``: the module docstring's public API. Equal,
    sequence by sequence, to ``reference.backward.value_and_grad`` on ``ids[b][valid[b]]``."""
    where = f"fast value_and_grad {arch.name}"
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective of type {type(objective).__name__}, but expected a spec.objective.Objective [{where}]")

    def seed(logits: Array, tokens: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> tuple[float, Array]:
        y, w = _targets(objective, tokens if labels is None else labels, mask, int(logits.shape[-1]), denominator, where)
        return objective_vjp(objective, logits, y, w, where)

    return _differentiate(arch, theta, ids, valid, seed, dtype, fused, block)


# --- the objective, batched -----------------------------------------------------------------


def _targets(
    objective: Objective, labels: npt.ArrayLike, mask: npt.NDArray[np.bool_], n_vocab: int, denominator: int | None, where: str,
) -> tuple[npt.NDArray[np.int64], Array]:
    """y (B, T) (−1 where not counted) and the float64 weights w (B, T) of a padded batch: sequence
    b is its valid rows, so row t's target is the label of the *next valid* row (the label shift of
    the compacted sequence) and its weight is ``objective.weights`` of the compacted labels."""
    lab = np.asarray(labels)
    lab = lab[None, :] if lab.ndim == 1 else lab
    if lab.shape != mask.shape or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
        raise ShapeError(f"labels of shape {lab.shape} and dtype {lab.dtype}, but expected whole numbers of the ids' shape {mask.shape} [{where}]")
    rows = [np.flatnonzero(mask[b]) for b in range(mask.shape[0])]
    sequences = [lab[b, idx].astype(np.int64) for b, idx in enumerate(rows)]  # λ_b: the labels of the real tokens
    D = objective.denominator(sequences) if denominator is None else denominator
    y = np.full(mask.shape, -1, dtype=np.int64)
    w = np.zeros(mask.shape)
    for b, (idx, lam) in enumerate(zip(rows, sequences)):
        w[b, idx] = objective.weights(lam, D)  # w_bt, the spec's (c_bt / D, or c_bt / (N_b D))
        counted = objective.counted(lam)
        shifted = np.append(lam[1:], objective.ignore_index)  # y_bt = λ_{b,t+1} within the sequence
        bad = counted & ((shifted < 0) | (shifted >= n_vocab))
        if bad.any():
            t = int(np.flatnonzero(bad)[0])
            raise TokenError(
                f"label of sequence {b} at position {t + 1}={int(shifted[t])}, but expected 0 ≤ label < n_vocab={n_vocab} or "
                f"ignore_index={objective.ignore_index} [{where}]"
            )
        y[b, idx] = np.where(counted, shifted, -1)
    return y, w


def objective_vjp(objective: Objective, logits: Array, y: npt.NDArray[np.int64], w: Array, where: str) -> tuple[float, Array]:
    """L = Σ_bt w_bt ℓ_bt and ∂L/∂z = w_bt (p − q + 2ζ log Z p) of a batch of logits (B, T, n_vocab),
    in the logits' dtype: the batched twin of ``Objective.token_losses`` and reference/objective.py
    (the formulas of spec/objective.py), with log Z = m + log Σ_v exp(z_v − m), m the row maximum.
    Rows with w = 0 are not read (their result is 0); one (B, T, n_vocab) array is made, the result."""
    counted = w != 0
    z = logits
    if not np.all(np.isfinite(z[counted])):
        raise TokenError(f"logits with inf or NaN at counted rows, but expected finite logits [{where}]")
    n_vocab = z.shape[-1]
    eps, zeta = objective.label_smoothing, objective.z_loss
    one = z.dtype.type
    with np.errstate(invalid="ignore", over="ignore"):  # a row not counted may hold anything: it is never read
        m = z.max(axis=-1, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0.0).astype(z.dtype)  # the row maximum
        g = np.exp(z - m)  # exp(z_v − m), then p, then ∂L/∂z, in place
        Z = g.sum(axis=-1, keepdims=True)
        log_Z = m + np.log(Z)  # log Z_bt
        target = np.take_along_axis(z, np.maximum(y, 0)[..., None], axis=-1)  # z_{bt y_bt}
        log_p_y = target - log_Z  # log p_{bt y}
        mean_log_p = z.mean(axis=-1, keepdims=True) - log_Z  # (1 / n_vocab) Σ_v log p_btv
        token = -(1.0 - eps) * log_p_y - eps * mean_log_p + zeta * log_Z**2  # ℓ_bt
        g /= Z  # p_btv
        g *= 1.0 + one(2.0 * zeta) * log_Z  # p + 2ζ log Z p
        np.subtract.at(g, (*np.nonzero(counted), y[counted]), one(1.0 - eps))  # − (1 − ε)[v = y] …
        g -= one(eps / n_vocab)  # … − ε / n_vocab: − q
        g *= w.astype(z.dtype)[..., None]  # w_bt (p − q + 2ζ log Z p)
        g[~counted] = 0.0
    loss = math.fsum((w[counted] * token[..., 0][counted].astype(np.float64)).tolist())  # Σ w ℓ, summed exactly
    return loss, g


# --- the reverse pass -----------------------------------------------------------------------

Seed = Callable[[Array, npt.NDArray[np.int64], npt.NDArray[np.bool_]], tuple[float, Array]]
"""(logits, ids, valid) → (loss, ∂L/∂logits), the start of the reverse pass."""


def _differentiate(
    arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: npt.ArrayLike, valid: npt.ArrayLike | None, seed: Seed,
    dtype: str | npt.DTypeLike, fused: bool, block: int,
) -> Gradients:
    where = f"fast backward {arch.name}"
    if set(arch.inputs) != {"ids"}:
        raise ConfigError(
            f"inputs={list(arch.inputs)}, but expected a decoder reading ids only [{where}]; "
            "an encoder–decoder's backward is not in fast/ (nor in the reference)"
        )
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ConfigError(f"block={block!r}, but expected a whole number ≥ 1 [{where}]")
    P = Precision.of(resolve_dtype(dtype, where))
    tokens, mask = check_ids(ids, None if valid is None else np.asarray(valid, dtype=bool), arch.dim("n_vocab"), where)
    batch = padded_batch(mask)
    n_ctx = arch.dim("n_ctx")
    if mask.any() and int(batch.positions[mask].max()) >= n_ctx:
        raise TokenError(
            f"sequence length={int(batch.positions[mask].max()) + 1}, but expected ≤ n_ctx={n_ctx} [{where}]; "
            "the model's positions end at n_ctx: shorten the sequence or split it"
        )
    B, T = tokens.shape
    compute = P.compute
    check_theta(arch, theta, where)  # type: ignore[arg-type]
    thetaD = {  # stored in D (rounded once from float64), read in the compute dtype; one entry in float64 at a time
        name: P.load(P.store(as_float64(name, theta[name], where, copy=False))).astype(compute, copy=False) for name in arch.theta
    }
    sizes = {**arch.dims, arch.inputs["ids"].shape[0]: T}
    outputs: dict[str, str] = {}
    steps = list(arch.expand(outputs=outputs))
    heads = fused_heads(steps, set(outputs.values())) if fused else {}
    inside = {part for scores, softmax in heads.values() for part in (scores, softmax)}
    by_path = {path: (node, sources) for path, node, sources in steps}
    values: dict[str, Any] = {"input.ids": tokens}
    saved: dict[str, HeadSaved] = {}
    bound_ops: list[Primitive] = []
    embedding_paths = [path for path, node, _ in steps if node.op.kind == "token_embedding"]
    siblings = sibling_affines(steps, set(outputs.values()))

    def kept(y: Any) -> Any:
        """A value or cotangent as the op-by-op graph stores it: in D (rounded once to a half
        precision, then read in float32); a kernel's other outputs (ids) unchanged."""
        if not is_real(y):
            return y
        return to_storage(y, P.storage).astype(compute) if P.half else y.astype(compute, copy=False)

    with np.errstate(over="ignore", under="ignore"):
        for path, node, sources in steps:
            op = node.op
            if not isinstance(op, Primitive):
                raise ShapeError(f"node {path} is {type(op).__name__}, but expected a primitive [{where}]")
            bound = op.bind(sizes)
            bound_ops.append(bound)
            if path in inside:
                continue  # computed by the fused head at its weighted sum
            if path in heads:
                Q, K, V, allowed, scores_op = _head_arguments(path, heads[path], by_path, values, sizes, batch)
                saved[path] = attention_forward(Q, K, V, allowed, float(scores_op.scale), scores_op.softcap, block)
                values[path] = kept(saved[path].O)
                continue
            if path in siblings:
                if siblings[path][0] == path:  # the group's first: every member's output from one GEMM
                    x = values[sources["x"]]
                    W, b, widths = _stacked(siblings[path], by_path, thetaD, arch)
                    y = KERNELS["affine"](bound, batch, x=x, W=W, b=b)
                    for member, part in zip(siblings[path], np.split(y, np.cumsum(widths)[:-1], axis=-1)):
                        values[member] = kept(part)
                continue
            params = {name: ref.resolve(thetaD[ref.name], arch.dims) for name, ref in node.params.items()}
            values[path] = kept(KERNELS[op.kind](bound, batch, **{port: values[src] for port, src in sources.items()}, **params))
        logits = values[outputs["logits"]]
        if not mask.all():
            logits = np.where(mask[..., None], logits, 0.0).astype(compute)  # padded rows 0, as fast.forward
        loss, g = seed(logits, tokens, mask)
        cot: dict[str, Array] = {outputs["logits"]: kept(np.asarray(g, dtype=compute))}
        grads = {name: np.zeros_like(value) for name, value in thetaD.items()}
        embeddings: dict[str, Array] = {}

        def send(src: str, value: Array) -> None:
            cot[src] = value if src not in cot else kept(cot[src] + value)

        for (path, node, sources), bound in zip(reversed(steps), reversed(bound_ops)):
            if path in siblings:
                group = siblings[path]
                if group[0] != path or not any(member in cot for member in group):
                    continue  # a group's VJP runs at its first member, when every member's cotangent is complete
                x = values[sources["x"]]
                W, b, widths = _stacked(group, by_path, thetaD, arch)
                g_all = np.concatenate([cot.pop(m) if m in cot else np.zeros((*x.shape[:-1], w), compute) for m, w in zip(group, widths)], axis=-1)
                out = FAST_VJP["affine"](bound, batch, g_all, x=x, W=W, b=b)
                send(sources["x"], kept(out["x"]))
                cuts = np.cumsum(widths)[:-1]
                for member, gW, gb in zip(group, np.split(out["W"], cuts, axis=-1), np.split(out["b"], cuts) if b is not None else [None] * len(group)):
                    refs = by_path[member][0].params
                    _add_through_view(grads[refs["W"].name], refs["W"], gW)
                    if gb is not None:
                        _add_through_view(grads[refs["b"].name], refs["b"], gb)
                continue
            if path not in cot:
                continue
            gy = cot.pop(path)
            if path in embedding_paths:
                embeddings[path] = gy
            if path in heads:
                Q, K, V, allowed, scores_op = _head_arguments(path, heads[path], by_path, values, sizes, batch)
                dQ, dK, dV = attention_backward(Q, K, V, allowed, float(scores_op.scale), saved[path], gy, scores_op.softcap, block)
                scores_sources = by_path[heads[path][0]][1]
                send(scores_sources["Q"], kept(dQ))
                send(scores_sources["K"], kept(dK))
                send(sources["V"], kept(dV))
                continue
            params = {name: ref.resolve(thetaD[ref.name], arch.dims) for name, ref in node.params.items()}
            out = FAST_VJP[bound.kind](bound, batch, gy, **{port: values[src] for port, src in sources.items()}, **params)
            for port, ttype in bound.inputs().items():
                if ttype.element is Element.TOKEN or isinstance(values[sources[port]], OneHotIds):
                    continue
                send(sources[port], kept(out[port]))
            for name, ref in node.params.items():
                _add_through_view(grads[ref.name], ref, out[name])
    for path in embedding_paths:
        embeddings.setdefault(path, np.zeros((B, T, 0 if path not in values else np.shape(values[path])[-1]), dtype=compute))
    out_dtype = P.storage
    return Gradients(
        loss,
        {name: P.store(g) if P.half else g.astype(out_dtype, copy=False) for name, g in grads.items()},
        P.store(logits) if P.half else logits,
        {path: P.store(e) if P.half else e for path, e in embeddings.items()},
    )


def sibling_affines(steps: Sequence[tuple[str, Any, Mapping[str, str]]], outputs: set[str]) -> dict[str, tuple[str, ...]]:
    """path → its group, for the affine maps that read the same value with the same parameter names
    (a layer's per-head W_Q, W_K and W_V; a gated MLP's gate and up maps): each group runs as one
    GEMM forward and one pair of GEMMs backward (the maps side by side), instead of a small product
    per head — the same sums, of the same terms. Groups of one are left out."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for path, node, sources in steps:
        if node.op.kind == "affine" and path not in outputs:
            groups.setdefault((sources["x"], tuple(sorted(node.params))), []).append(path)
    return {path: tuple(group) for group in groups.values() if len(group) > 1 for path in group}


def _stacked(
    group: Sequence[str], by_path: Mapping[str, tuple[Any, Mapping[str, str]]], theta: Mapping[str, Array], arch: Architecture,
) -> tuple[Array, Array | None, list[int]]:
    """The W (d_in, Σ d_out) and b (Σ d_out) of a group of affine maps side by side, and each map's d_out."""
    Ws = [by_path[m][0].params["W"].resolve(theta[by_path[m][0].params["W"].name], arch.dims) for m in group]
    bs = [by_path[m][0].params["b"].resolve(theta[by_path[m][0].params["b"].name], arch.dims) for m in group if "b" in by_path[m][0].params]
    return np.concatenate(Ws, axis=1), (np.concatenate(bs) if bs else None), [int(W.shape[1]) for W in Ws]


def fused_heads(steps: Sequence[tuple[str, Any, Mapping[str, str]]], outputs: set[str]) -> dict[str, tuple[str, str]]:
    """weighted-sum path → (scores path, softmax path) for every head whose scores are read only by
    its masked softmax and whose probabilities only by its weighted sum (and neither is an output)."""
    kinds = {path: node.op.kind for path, node, _ in steps}
    reads = {path: sources for path, _, sources in steps}
    readers: dict[str, list[str]] = {}
    for path, _, sources in steps:
        for src in sources.values():
            readers.setdefault(src, []).append(path)
    heads: dict[str, tuple[str, str]] = {}
    for path, _, sources in steps:
        if kinds[path] != "weighted_sum":
            continue
        softmax = sources["A"]
        if kinds.get(softmax) != "masked_softmax" or readers.get(softmax) != [path] or softmax in outputs:
            continue
        scores = reads[softmax]["x"]
        if kinds.get(scores) != "attention_scores" or readers.get(scores) != [softmax] or scores in outputs:
            continue
        heads[path] = (scores, softmax)
    return heads


def _head_arguments(
    path: str, head: tuple[str, str], by_path: Mapping[str, tuple[Any, Mapping[str, str]]], values: Mapping[str, Any],
    sizes: Mapping[Any, int], batch: Batch,
) -> tuple[Array, Array, Array, npt.NDArray[np.bool_], AttentionScores]:
    """Q, K, V, the (B, T, S) allowed matrix and the bound scores op of a fused head."""
    scores_node, scores_sources = by_path[head[0]]
    softmax_node, _ = by_path[head[1]]
    _, sum_sources = by_path[path]
    scores_op = scores_node.op.bind(sizes)
    softmax_op = softmax_node.op.bind(sizes)
    return (values[scores_sources["Q"]], values[scores_sources["K"]], values[sum_sources["V"]],
            attention_mask(softmax_op.mask, batch), scores_op)


def _add_through_view(grad: Array, ref: ParamRef, g: Array) -> None:
    target = grad[ref.index] if ref.index else grad
    back = g.reshape(target.T.shape if ref.transpose else target.shape) if ref.reshape is not None else g
    target += back.T if ref.transpose else back
