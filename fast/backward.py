"""fast/'s batched backward: a vector–Jacobian product per kernel, a batched reverse pass over the
DAG, and the fused attention's backward that recomputes the probabilities block by block.

* :data:`FAST_VJP`: op kind → ``fn(op, batch, g, **inputs, **params) -> {name: cotangent}``, the
  batched twin of reference/ops/'s ``VJP`` (inputs (B, T, …), parameters shared by the batch, so
  their cotangents are summed over it). tests/test_fast_backward.py holds each equal to the
  reference's, sequence by sequence.
* :func:`backward`: ∂L/∂θ of a batch of equal-length sequences given ∂L/∂logits, op by op (the
  forward is fast/'s kernels, every value kept).
* :func:`attention_forward` / :func:`attention_backward`: one attention head fused — scores,
  masked softmax and weighted sum — whose backward keeps only the output O and each row's
  log-normaliser (B × T numbers) from the forward and recomputes the probabilities one key block
  at a time (FlashAttention-2's backward), so no T × S matrix is ever stored:

      P_blk = [allowed] exp(c(scale Q K_blkᵀ) − lse)        (c: the soft cap, or the identity)
      ∂V_blk = P_blkᵀ ∂O
      ∂P_blk = ∂O V_blkᵀ,   δ = rowsum(∂O ∘ O)
      ∂A_blk = P_blk (∂P_blk − δ) · c'(·)
      ∂Q += scale ∂A_blk K_blk,   ∂K_blk = scale ∂A_blkᵀ Q

  benchmarks/backward_attention.py measures its peak memory against the forward's and its speed
  against PyTorch autograd (docs/performance.md).

Only full-length batches (no padding) are differentiated so far: :func:`backward` takes no valid mask.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fast.batch import Batch
from fast.kernels import KERNELS, OneHotIds, attention_mask, softmax_rows
from fast.kernels.rotary import rotate
from spec.errors import ConfigError, ShapeError
from spec.graph import Architecture, ParamRef
from spec.masks import Relation
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
    TokenEmbedding,
    WeightedSum,
)
from spec.theta import float64_theta, token_array
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
    Phi = 0.5 * _erfc(-x / math.sqrt(2.0))  # Φ(x)
    return {"x": g * (Phi + x * np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi))}  # g (Φ + x φ)


@FAST_VJP.implements(GeluTanh)
def gelu_tanh_vjp(op: GeluTanh, batch: Batch, g: Array, x: Array) -> dict[str, Array]:
    c = float(op.cubic)
    u = math.sqrt(2.0 / math.pi) * (x + c * x**3)
    half_one_plus = np.exp(-np.logaddexp(0.0, -2.0 * u))  # ½(1 + tanh u)
    du = math.sqrt(2.0 / math.pi) * (1.0 + 3.0 * c * x**2)
    return {"x": g * (half_one_plus + 0.5 * x * (1.0 - np.tanh(u) ** 2) * du)}


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
    out = {"x": g @ W.T, "W": _rows(x).T @ _rows(g)}  # one GEMM each over all B·T rows
    if b is not None:
        out["b"] = _rows(g).sum(axis=0)
    return out


@FAST_VJP.implements(Conv1d)
def conv1d_vjp(op: Conv1d, batch: Batch, g: Array, x: Array, W: Array, b: Array | None = None) -> dict[str, Array]:
    T, k, p = x.shape[1], op.kernel, op.pad_left
    gx, gW = np.zeros_like(x), np.zeros_like(W)
    for i in range(k):  # tap i reads x[s] for output t = s − i + p
        lo, hi = max(0, p - i), min(T, T + p - i)  # output rows whose input row s = t + i − p is inside
        if lo >= hi:
            continue
        xs, gt = x[:, lo + i - p : hi + i - p], g[:, lo:hi]
        gx[:, lo + i - p : hi + i - p] += gt @ W[i].T
        gW[i] += _rows(xs).T @ _rows(gt)
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
    np.add.at(gW_P, batch.positions.reshape(-1), _rows(g))
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


def _block_scores(Q: Array, K_blk: Array, scale: float, softcap: float | None) -> tuple[Array, Array]:
    """Capped scores of a key block and the cap's derivative c'(a) (1 without a cap)."""
    a = scale * (Q @ K_blk.swapaxes(-1, -2))
    if softcap is None:
        return a, np.ones_like(a)
    th = np.tanh(a / softcap)
    return softcap * th, 1.0 - th**2


def attention_forward(
    Q: Array, K: Array, V: Array, allowed: npt.NDArray[np.bool_], scale: float, softcap: float | None = None, block: int = 128
) -> HeadSaved:
    """One head, key block by key block (online softmax): O = softmax_allowed(c(scale Q Kᵀ)) V."""
    B, T, _ = Q.shape
    S = K.shape[1]
    m = np.full((B, T, 1), -np.inf)
    l = np.zeros((B, T, 1))
    acc = np.zeros((B, T, V.shape[-1]))
    for s0 in range(0, S, block):
        a, _ = _block_scores(Q, K[:, s0 : s0 + block], scale, softcap)
        mask = allowed[:, :, s0 : s0 + block]
        m_new = np.maximum(m, np.max(np.where(mask, a, -np.inf), axis=-1, keepdims=True))
        shift = np.where(np.isfinite(m_new), m_new, 0.0)
        p = np.where(mask, np.exp(np.where(mask, a - shift, 0.0)), 0.0)
        rescale = np.where(np.isfinite(m), np.exp(m - shift), 0.0)
        l = l * rescale + p.sum(axis=-1, keepdims=True)
        acc = acc * rescale + p @ V[:, s0 : s0 + block]
        m = m_new
    O = np.divide(acc, l, out=np.zeros_like(acc), where=l > 0)
    lse = np.where(l[..., 0] > 0, m[..., 0] + np.log(np.where(l[..., 0] > 0, l[..., 0], 1.0)), -np.inf)
    return HeadSaved(O, lse)


def attention_backward(
    Q: Array, K: Array, V: Array, allowed: npt.NDArray[np.bool_], scale: float, saved: HeadSaved, dO: Array,
    softcap: float | None = None, block: int = 128,
) -> tuple[Array, Array, Array]:
    """∂L/∂Q, ∂L/∂K, ∂L/∂V of one fused head from ∂L/∂O, recomputing P one key block at a time
    (module docstring); a row with no allowed key (lse = −inf) gets 0."""
    S = K.shape[1]
    delta = (dO * saved.O).sum(axis=-1, keepdims=True)  # δ_t = Σ_k ∂O_tk O_tk = Σ_s P_ts ∂P_ts
    lse = np.where(np.isfinite(saved.lse), saved.lse, 0.0)[..., None].astype(Q.dtype)  # computed in the inputs' dtype
    delta = delta.astype(Q.dtype)
    dQ, dK, dV = np.zeros_like(Q), np.zeros_like(K), np.zeros_like(V)
    for s0 in range(0, S, block):
        mask = allowed[:, :, s0 : s0 + block] & np.isfinite(saved.lse)[..., None]
        readers = np.flatnonzero(mask.any(axis=(0, 2)))
        if readers.size == 0:
            continue  # a block no query may read (above a causal diagonal): its cotangents are 0
        q = slice(int(readers[0]), int(readers[-1]) + 1)  # the query rows that read the block (from the diagonal down, causally)
        K_blk, V_blk, mask = K[:, s0 : s0 + block], V[:, s0 : s0 + block], mask[:, q]
        a, slope = _block_scores(Q[:, q], K_blk, scale, softcap)
        P = np.where(mask, np.exp(np.where(mask, a - lse[:, q], 0.0)), 0.0)  # recomputed, (B, rows, block)
        dV[:, s0 : s0 + block] = P.swapaxes(-1, -2) @ dO[:, q]
        dP = dO[:, q] @ V_blk.swapaxes(-1, -2)
        dA = P * (dP - delta[:, q]) * slope
        dQ[:, q] += scale * (dA @ K_blk)
        dK[:, s0 : s0 + block] = scale * (dA.swapaxes(-1, -2) @ Q[:, q])
    return dQ, dK, dV


def allowed_matrix(relation: Relation, B: int, T: int, S: int) -> npt.NDArray[np.bool_]:
    """The (B, T, S) allowed matrix of a mask for full-length sequences (positions 0 … T−1)."""
    q, k = np.arange(T)[None, :, None], np.arange(S)[None, None, :]
    return np.broadcast_to(relation.allowed_array(q, k), (B, T, S))


# --- the batched reverse pass ---------------------------------------------------------------


def full_batch(B: int, T: int) -> Batch:
    """A batch of B full-length sequences: positions 0 … T−1, nothing padded."""
    positions = np.broadcast_to(np.arange(T, dtype=np.int64), (B, T)).copy()
    valid = np.ones((B, T), dtype=bool)
    return Batch(positions, valid, positions.copy(), valid.copy())


def backward(
    arch: Architecture, theta: Mapping[str, npt.ArrayLike], ids: npt.ArrayLike, cotangent: npt.ArrayLike, fused: bool = True
) -> tuple[Array, dict[str, Array]]:
    """The logits (B, T, n_vocab) of a batch of equal-length sequences and ∂L/∂θ for every Θ entry,
    given ∂L/∂logits (B, T, n_vocab): fast/'s kernels forward op by op (every value kept), then
    :data:`FAST_VJP` in reverse, cotangents summed where a value or a Θ entry is read twice.

    With ``fused`` (the default) every head — scores read only by a masked softmax read only by a
    weighted sum — runs as :func:`attention_forward` / :func:`attention_backward`: no T × S value is
    kept between the passes."""
    where = f"fast backward {arch.name}"
    if set(arch.inputs) != {"ids"}:
        raise ConfigError(f"inputs={list(arch.inputs)}, but expected a decoder reading ids only [{where}]")
    tokens = np.asarray(ids)
    if tokens.ndim != 2:
        raise ShapeError(f"ids of shape {tokens.shape}, but expected (B, T) [{where}]")
    tokens = np.stack([token_array(row, arch.dim("n_vocab"), arch.dim("n_ctx"), where) for row in tokens]) if tokens.size else tokens.astype(np.int64)
    B, T = tokens.shape
    batch = full_batch(B, T)
    theta64 = float64_theta(arch, theta, where)
    sizes = {**arch.dims, **{sym: n for sym, n in zip(arch.inputs["ids"].shape, (T,))}}
    outputs: dict[str, str] = {}
    steps = list(arch.expand(outputs=outputs))
    heads = fused_heads(steps, set(outputs.values())) if fused else {}
    inside = {part for scores, softmax in heads.values() for part in (scores, softmax)}
    by_path = {path: (node, sources) for path, node, sources in steps}
    values: dict[str, Any] = {"input.ids": tokens}
    saved: dict[str, HeadSaved] = {}
    bound_ops: list[Primitive] = []
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
            saved[path] = attention_forward(Q, K, V, allowed, float(scores_op.scale), scores_op.softcap)
            values[path] = saved[path].O
            continue
        params = {name: ref.resolve(theta64[ref.name], arch.dims) for name, ref in node.params.items()}
        values[path] = KERNELS[op.kind](bound, batch, **{port: values[src] for port, src in sources.items()}, **params)
    logits = values[outputs["logits"]]
    g = np.asarray(cotangent, dtype=np.float64)
    if g.shape != logits.shape:
        raise ShapeError(f"cotangent of shape {g.shape}, but expected the logits' {logits.shape} [{where}]")
    cot: dict[str, Array] = {outputs["logits"]: g}
    grads = {name: np.zeros_like(value) for name, value in theta64.items()}

    def send(src: str, value: Array) -> None:
        cot[src] = value if src not in cot else cot[src] + value

    for (path, node, sources), bound in zip(reversed(steps), reversed(bound_ops)):
        if path not in cot:
            continue
        if path in heads:
            Q, K, V, allowed, scores_op = _head_arguments(path, heads[path], by_path, values, sizes, batch)
            dQ, dK, dV = attention_backward(Q, K, V, allowed, float(scores_op.scale), saved[path], cot.pop(path), scores_op.softcap)
            scores_sources = by_path[heads[path][0]][1]
            send(scores_sources["Q"], dQ)
            send(scores_sources["K"], dK)
            send(sources["V"], dV)
            continue
        params = {name: ref.resolve(theta64[ref.name], arch.dims) for name, ref in node.params.items()}
        out = FAST_VJP[bound.kind](bound, batch, cot.pop(path), **{port: values[src] for port, src in sources.items()}, **params)
        for port, ttype in bound.inputs().items():
            if ttype.element is Element.TOKEN or isinstance(values[sources[port]], OneHotIds):
                continue
            send(sources[port], out[port])
        for name, ref in node.params.items():
            _add_through_view(grads[ref.name], ref, out[name])
    return logits, grads


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
