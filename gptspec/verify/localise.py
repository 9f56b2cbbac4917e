"""Where a failure is, in spec terms: a DAG path and its op kind (docs/verify.md, "Localisation").

Two methods, tried in this order on the minimal counterexample:

**intermediates** — the target's values inside the model: forward hooks on the modules the
layout maps to DAG paths (a torch module), or the ``capture`` mapping a callable fills. Each
captured value — a module's output, and the tensor it was called with — is compared with the
reference's value at that path (real positions only, budget by the tolerance policy with e_store
measured at that value), first to last in topological order. The first value over budget is
the fault's output; the fault is the innermost node making it whose inputs were all seen and
correct, else the smallest composite around it whose inputs were (the values between were not
observed). A wrong concatenation of heads is narrowed to the heads whose columns are wrong.

**ablation probes** — for a black box: θ chosen so the spec's function reduces to one
sub-path, run in this order, the first failing probe naming the component:

1. every residual branch switched off (its output map zeroed): embedding, positions, the
   residual stream, final norm and unembedding alone — then each source table zeroed in turn
   (a learned positional table) to see if it is the one;
2. attention branches off, MLPs on: the MLP path, then one layer's MLP at a time;
3. W_Q = W_K = 0 (every score 0, so attention is uniform over the allowed keys): the mask and
   the value path without the score scale, one layer at a time;
4. full attention, one layer at a time: the scores (Q, K, scale, softmax); if the failure needs
   large scores (the same case with plain θ passes), the softmax's numerics.

Limits: intermediates see only what is hooked or captured (a fault between two observed values
is named by the smallest composite containing both); a probe names a component, not an op,
and a bug that cancels under a probe's θ (a head permutation undone on the way out, invisible
to uniform attention) is attributed to the next probe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from gptspec.verify.cases import Case, Context, Verdict, run_model
from gptspec.verify.compare import compare
from gptspec.verify.draws import ThetaDraw
from gptspec.verify.structure import Structure, structure
from spec.graph import INPUT, Composite, Placed


@dataclass(frozen=True)
class Localisation:
    """``path``: a DAG path (``blocks.0.attn``), a path with ``*`` for every layer or head, or a
    ``+``-joined set of paths when a probe narrows only to a region; ``kind``: its op kind(s);
    ``method``: ``intermediates``, ``ablation`` or ``component``; ``detail``: what was seen."""

    path: str
    kind: str
    method: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.path} ({self.kind}), by {self.method}" + (f": {self.detail}" if self.detail else "")


Check = Callable[[Any, Context, Case], Verdict]


# -- intermediates -------------------------------------------------------------------------


@dataclass
class Seen:
    value: str
    what: str
    node: str
    ratio: float
    max_abs: float
    budget: float


def by_intermediates(impl: Any, ctx: Context, case: Case, prefix: int | None = None) -> Localisation | None:
    """Localise by captured intermediates; None if the target exposes none or none differ."""
    capture = getattr(impl, "capture", None)
    can = getattr(impl, "can_capture", None)
    if not callable(capture) or (callable(can) and not can(ctx.arch)):
        return None
    theta, key = ctx.theta_for(case)
    ids, valid = case.batch.arrays(ctx.arch.dim("n_vocab"))
    observed = capture(ctx.arch, theta, ids, valid, prefix) if prefix is not None else capture(ctx.arch, theta, ids, valid)
    if not observed:
        return None
    st = structure(ctx.arch)
    seen: list[Seen] = []
    for node_path, what, array in observed:
        placed = st.by_path.get(node_path)
        if placed is None or what not in ("output", "input"):
            continue  # ("path", "raised", …): where the target raised (session.Runner.raised_on reads it)
        if what == "output":
            value = placed.output
        else:
            value = next(iter(placed.inputs.values()), "")
        if not value or value.startswith(f"{INPUT}.") or value not in st.order:
            continue
        item = _judge_value(ctx, case, theta, key, ids, valid, value, array)
        if item is not None:
            seen.append(Seen(value, what, node_path, *item))
    if not seen:
        return None
    seen.sort(key=lambda s: (st.order[s.value], 0 if s.what == "output" else 1))
    bad = next((s for s in seen if s.ratio > 1.0), None)
    if bad is None:
        return None
    verified = {s.value for s in seen if s.ratio <= 1.0} - {s.value for s in seen if s.ratio > 1.0}
    verified |= {v for v in st.order if v.startswith(f"{INPUT}.")}
    how = f"{'output' if bad.what == 'output' else 'input'} of the module at {bad.node}: max |Δ| = {bad.max_abs:.3g} > budget {bad.budget:.3g}"
    if bad.what == "output" and any(x.value == bad.value and x.ratio <= 1.0 for x in seen):
        right = next(x for x in seen if x.value == bad.value and x.ratio <= 1.0)
        node = st.by_path[bad.node]
        return Localisation(node.path, node.node.op.kind, "intermediates",
                            f"the value {bad.value} is right where the module at {right.node} returns it, but the module at {node.path} "
                            f"returns something else ({how}): a step after it, inside {node.path}")
    if bad.what == "input" and any(x.value == bad.value and x.ratio <= 1.0 for x in seen):
        node = st.by_path[bad.node]
        return Localisation(node.path, node.node.op.kind, "intermediates",
                            f"it is called with a value other than {bad.value}, which was computed correctly ({how}): the wiring into it")
    producer = st.producer.get(bad.value)
    if producer is not None and producer.node.op.kind == "concat_heads":
        heads = _wrong_heads(ctx, case, theta, key, ids, valid, producer, observed, st, bad)
        if heads is not None:
            return Localisation(heads[0], heads[1], "intermediates", f"the concatenated heads differ in these heads' columns ({how})")
    for node in st.making(bad.value):
        if all(v in verified for v in node.inputs.values()):
            return Localisation(node.path, node.node.op.kind, "intermediates", f"its inputs match the reference and its output does not ({how})")
    start = st.making(bad.value)[0] if st.making(bad.value) else None
    if start is not None:
        for outer in st.containing(start.path):
            if all(v in verified for v in outer.inputs.values()):
                return Localisation(outer.path, outer.node.op.kind, "intermediates",
                                    f"its inputs match the reference; the first wrong value observed inside is {bad.value} ({how})")
        observed = st.by_path[bad.node]
        return Localisation(observed.path, observed.node.op.kind, "intermediates", f"the first wrong value observed ({how}); nothing before it was observed")
    return None


def _judge_value(ctx: Context, case: Case, theta: Any, key: Any, ids: np.ndarray, valid: np.ndarray, value: str, array: np.ndarray) -> tuple[float, float, float] | None:
    worst: tuple[float, float, float] | None = None
    for b in range(ids.shape[0]):
        if not valid[b].any():
            continue
        real = ids[b, valid[b]]
        want = ctx.oracle.values(ctx.arch, theta, key, real).get(value)
        stored = ctx.oracle.values(ctx.arch, theta, key, real, ctx.dtype).get(value)
        if want is None or stored is None:
            return None
        got = np.asarray(array[b][valid[b]], dtype=np.float64)
        if got.shape != want.shape:
            return None
        c = compare(got, want)
        budget = ctx.budget(compare(stored, want).max_abs, c.scale, ctx.oracle.values(ctx.arch, theta, key, real))
        ratio = 0.0 if c.max_abs == 0 else (c.max_abs / budget if budget > 0 else float("inf"))
        if ctx.empty_rows != "ignore" and not np.isfinite(np.asarray(array[b][~valid[b]], dtype=np.float64)).all():
            ratio, c = float("inf"), replace(c, max_abs=float("inf"))  # NaN at a padded position: what leaks into real rows later
        if worst is None or ratio > worst[0]:
            worst = (ratio, c.max_abs, budget)
    return worst


def _wrong_heads(
    ctx: Context, case: Case, theta: Any, key: Any, ids: np.ndarray, valid: np.ndarray, concat: Placed, observed: list[tuple[str, str, np.ndarray]],
    st: Structure, bad: Seen,
) -> tuple[str, str] | None:
    """For a wrong concatenation of heads: the head (or heads) whose columns are wrong, when
    not all are."""
    array = next((a for p, w, a in observed if (st.by_path[p].output if w == "output" else next(iter(st.by_path[p].inputs.values()), "")) == concat.output), None)
    if array is None:
        return None
    b = int(np.flatnonzero(valid.any(axis=1))[0])
    real = ids[b, valid[b]]
    values = ctx.oracle.values(ctx.arch, theta, key, real)
    stored = ctx.oracle.values(ctx.arch, theta, key, real, ctx.dtype)
    got = np.asarray(array[b][valid[b]], dtype=np.float64)
    start, wrong = 0, []
    for value in concat.inputs.values():
        width = values[value].shape[-1]
        c = compare(got[:, start : start + width], values[value])
        if c.max_abs > ctx.budget(compare(stored[value], values[value]).max_abs, c.scale, values):
            wrong.append(value)
        start += width
    if not wrong or len(wrong) == len(concat.inputs):
        return None
    heads = []
    for value in wrong:
        makers = [m for m in st.making(value) if isinstance(m.node.op, Composite)]
        heads.append(makers[-1] if makers else st.producer[value])
    return "+".join(h.path for h in heads), heads[0].node.op.kind


# -- ablation probes ----------------------------------------------------------------------


def by_probes(impl: Any, ctx: Context, case: Case, check: Check) -> Localisation:
    """Localise by ablation probes (module docstring)."""
    from gptspec.verify.draws import draw_theta

    st = structure(ctx.arch)
    theta0, key0 = ctx.theta_for(case)
    attention = [b for b in st.branches if b.kind == "attention"]
    mlps = [b for b in st.branches if b.kind == "mlp"]
    qk = {a.path: sorted({n for path, names in st.score_params.items() if path.startswith(a.path + ".") for n in names}) for a in attention}
    score_params = sorted({n for names in qk.values() for n in names})

    def fails(zero: set[str], tag: str) -> bool:
        theta = {k: (np.zeros_like(v) if k in zero else v) for k, v in base[0].items()}
        probe = replace(ctx, theta=theta, theta_key=("probe", base[1], tag))
        try:
            return not check(impl, probe, case).passed
        except Exception:  # noqa: BLE001 - a probe the target cannot run tells nothing
            return False

    def off(branches: Sequence[Any]) -> set[str]:
        return {n for b in branches for n in b.off}

    def probe_error(theta: dict[str, np.ndarray], tag: str) -> float:
        """The probe's relative error (0 when it passes; inf when the target cannot run it)."""
        probe = replace(ctx, theta=theta, theta_key=("probe", base[1], tag))
        try:
            verdict = check(impl, probe, case)
        except Exception:  # noqa: BLE001 - a probe the target cannot run tells nothing
            return float("inf")
        return 0.0 if verdict.passed else verdict.comparison.max_abs / max(verdict.comparison.scale, 1e-300)

    def model_logits(theta: dict[str, np.ndarray]) -> np.ndarray | None:
        """The target's logits of the case's batch under ``theta`` (None unless judging the model itself)."""
        if check is not run_model:
            return None
        ids, valid = case.batch.arrays(ctx.arch.dim("n_vocab"))
        try:
            return np.asarray(impl.model(ctx.arch, theta, ids, valid), dtype=np.float64)[valid]
        except Exception:  # noqa: BLE001 - a probe the target cannot run tells nothing
            return None

    base = (theta0, key0)
    if ctx.theta is None and case.draw is not None and case.draw.magnitude != "plain" and attention:
        # Large scores first: does the same case fail with plain θ? If not, the failure needs
        # large scores — the softmax's numerics. Other layers are made uniform (Q = K = 0),
        # not switched off: an overflow's NaN would survive a zeroed output map (NaN · 0).
        plain = ThetaDraw(case.draw.seed, "plain")
        plain_base = (draw_theta(ctx.arch, plain, ctx.dtype), plain.key(ctx.arch, ctx.dtype))
        base = plain_base
        if not fails(set(), "plain"):
            base = (theta0, key0)
            layer = attention[0]
            for attn in attention:
                if fails({n for other in attention if other is not attn for n in qk[other.path]}, f"large scores only in {attn.path}"):
                    layer = attn
                    break
            softmax = [p.path for p in st.placed if p.path.startswith(layer.path + ".") and p.node.op.kind == "masked_softmax"]
            path = re.sub(r"head_\d+", "head_*", softmax[0]) if softmax else layer.path
            return Localisation(path, "masked_softmax", "ablation",
                                "fails only when attention scores are large (the same case with plain θ passes), in this layer: "
                                "the softmax's numerics (overflow without the max subtracted, precision)")
    switchable = all(b.off for b in st.branches) and bool(st.branches)
    if switchable and fails(off(st.branches), "branches off"):
        for node in _sources(st):
            if node.node.op.kind == "token_embedding":
                continue  # zeroing it zeroes the whole stream, and every norm of zero agrees: it tells nothing (_stream_probes names it)
            names = {ref.name for ref in node.node.params.values()}
            if not fails(off(st.branches) | names, f"branches off, {node.path} zeroed"):
                return Localisation(node.path, node.node.op.kind, "ablation",
                                    f"with every residual branch off the logits are wrong, and zeroing {node.path}'s parameters makes them right")
        found = _stream_probes(st, base[0], off(st.branches), probe_error, model_logits)
        if found is not None:
            return found
        region = _outside(st)
        return Localisation("+".join(region[0]), "+".join(region[1]), "ablation",
                            "with every residual branch off (attention and MLP outputs zeroed) the logits are wrong: embedding, "
                            "positions, the residual stream, final norm or unembedding")
    if switchable and mlps and fails(off(attention), "attention off"):
        for mlp in mlps:
            if fails(off(attention) | off([m for m in mlps if m is not mlp]), f"only {mlp.path}"):
                return Localisation(mlp.region, _kinds(st, mlp), "ablation", "with attention off, this MLP sublayer alone makes the logits wrong")
        return Localisation(_star(mlps[0].path), mlps[0].op_kind, "ablation", "with attention off the MLPs together make the logits wrong")
    if attention and score_params:
        if fails(set(score_params), "uniform attention"):
            for attn in attention:
                if switchable and fails(set(score_params) | off([a for a in attention if a is not attn]), f"uniform, only {attn.path}"):
                    return Localisation(attn.region, _kinds(st, attn), "ablation",
                                        "with W_Q = W_K = 0 (uniform attention over the allowed keys) this attention sublayer alone makes the logits wrong: "
                                        "its input norm, the mask, the padding, the values or the output projection — or the softmax's axis "
                                        "(normalising over the queries instead of the keys breaks even uniform attention)")
            return Localisation(_star(attention[0].path), attention[0].op_kind, "ablation",
                                "with W_Q = W_K = 0 (uniform attention) the logits are wrong: the mask, the padding, the values or the output projection "
                                "— or the softmax's axis (normalising over the queries instead of the keys breaks even uniform attention)")
        layer = attention[0]
        for attn in attention:
            if fails({n for other in attention if other is not attn for n in qk[other.path]}, f"scores only in {attn.path}"):
                layer = attn
                break
        rotary = any(p.node.op.kind == "rotary" for p in st.placed)
        hint = ("; with rotary embedding, first suspect its pairing of features (half: Hugging Face; interleaved: Meta) or its base θ — "
                "--identify tries both" if rotary else "")
        return Localisation(layer.path, layer.op_kind, "ablation",
                            "uniform attention passes and full attention fails: the scores — Q and K, their scale, the softmax, or how heads are laid out" + hint)
    return Localisation("+".join(b.path for b in st.branches) or "model", "model", "ablation", "no probe isolates the failure")


NORM_KINDS = ("layer_norm", "rms_norm")
CLEARLY = 100.0
"""How many times a probe must cut the relative error to count (_stream_probes)."""


def _stream_probes(
    st: Structure, theta: Mapping[str, np.ndarray], branches_off: set[str], error: Callable[[dict[str, np.ndarray], str], float],
    logits: Callable[[dict[str, np.ndarray]], np.ndarray | None],
) -> Localisation | None:
    """With every residual branch off the logits are wrong, and no embedding-side table is to
    blame: probes that name at most two nodes for the final norm, the unembedding and the
    residual wiring (a missing residual connection, norms placed on the stream: post-LN). A
    probe that is exact in the spec only up to ε (a norm of a normalised stream) counts when it
    cuts the relative error :data:`CLEARLY` times."""
    inside = tuple(b.path + "." for b in st.branches)
    norms = [p for p in st.placed if p.node.op.kind in NORM_KINDS and not p.path.startswith(inside)]
    final = [p for p in norms if not p.path.startswith("blocks.")]
    stream_norms = [p for p in norms if p.path.startswith("blocks.")]
    off = {k: (np.zeros_like(v) if k in branches_off else np.asarray(v)) for k, v in theta.items()}
    baseline = error(off, "branches off")
    unembed = next((p for p in st.placed if p.path == "unembed"), None)
    if final:
        f = final[-1]
        gamma = [ref.name for name, ref in f.node.params.items() if name == "gamma"]
        if gamma and error(off | {g: np.zeros_like(off[g]) for g in gamma}, "final norm gamma 0") > 0:
            return Localisation(f"{f.path}+{unembed.path if unembed else 'unembed'}", f"{f.node.op.kind}+affine", "ablation",
                                f"with every branch off and {f.path}'s γ = 0 (the logits are then what the norm adds after γ — β, or 0 for an RMS "
                                "norm — through the unembedding, whatever the stream) the logits are still wrong: the final norm's γ and β "
                                "(swapped? the norm missing?) or the unembedding")
    if stream_norms:
        identity = dict(off)
        for p in stream_norms:
            for name, ref in p.node.params.items():
                identity[ref.name] = np.ones_like(off[ref.name]) if name == "gamma" else np.zeros_like(off[ref.name])
        if error(identity, "stream norms identity") * CLEARLY < baseline:
            kinds = sorted({p.node.op.kind for p in stream_norms})
            return Localisation("+".join(dict.fromkeys(_star(p.path) for p in stream_norms)), "+".join(kinds), "ablation",
                                "with every branch off the error vanishes (up to ε) when the blocks' norms are γ = 1, β = 0: those norms "
                                "act on the residual stream itself — norms placed after the residual add (post-LN) instead of on the branch input")
    got = logits(off)
    if got is not None and got.shape[0] > 1 and np.ptp(got, axis=0).max() <= 1e-6 * max(float(np.abs(got).max()), 1e-300):
        adds = dict.fromkeys(_star(p.path) for p in st.placed if p.node.op.kind == "add" and p.path.startswith("blocks."))
        return Localisation("+".join(list(adds)[:2]) or "blocks.*", "add", "ablation",
                            "with every branch off the target's logits are the same at every position: the residual stream is lost "
                            "in a block — a residual connection missing (x = f(x) instead of x + f(x))")
    if final:
        f = final[-1]
        scaled = {k: (v * 1e3 if k in ("W_E", "W_P") else v) for k, v in off.items()}
        if error(scaled, "stream ×1000") * CLEARLY < baseline:
            return Localisation(f.path, f.node.op.kind, "ablation",
                                f"with every branch off the error vanishes once the residual stream is scaled ×1000 (where ε is negligible): "
                                f"{f.path}'s ε — its value, or where it enters (inside or outside the square root)")
        embedding = next((p.path for p in st.placed if p.node.op.kind == "token_embedding"), "token_embedding")
        return Localisation(f"{f.path}+{embedding}", f"{f.node.op.kind}+token_embedding", "ablation",
                            f"with every branch off the logits are wrong whatever the scale of the stream, and {f.path}'s affine part is "
                            f"right: its normalisation (the mean, the variance's divisor) or the embedding lookup")
    return None


def _kinds(st: Structure, branch: Any) -> str:
    return "+".join(dict.fromkeys([st.kind(p) for p in branch.feeders] + [branch.op_kind]))


def _sources(st: Structure) -> list[Placed]:
    """Parameterised primitives outside every branch that read only graph inputs through
    parameter-free ops, with parameters no other node reads (a learned positional table; an
    untied embedding)."""
    inside = tuple(b.path + "." for b in st.branches)
    out = []
    for p in st.placed:
        if isinstance(p.node.op, Composite) or not p.node.params or p.path.startswith(inside):
            continue
        if any(ref.name in st.shared for ref in p.node.params.values()):
            continue
        if all(_parameter_free_from_inputs(v, st) for v in p.inputs.values()):
            out.append(p)
    return out


def _parameter_free_from_inputs(value: str, st: Structure) -> bool:
    if value.startswith(f"{INPUT}."):
        return True
    node = st.producer.get(value)
    return node is not None and not node.node.params and all(_parameter_free_from_inputs(v, st) for v in node.inputs.values())


def _outside(st: Structure) -> tuple[list[str], list[str]]:
    """The primitives that still reach the logits when every branch is off, per-layer paths
    folded into ``blocks.*``."""
    inside = tuple(b.path + "." for b in st.branches)
    paths: list[str] = []
    kinds: list[str] = []
    branch_inputs = {v for b in st.branches for v in st.by_path[b.path].inputs.values()}
    for p in st.placed:
        if isinstance(p.node.op, Composite) or p.path.startswith(inside) or p.output in branch_inputs:
            continue
        path = _star(p.path)
        if path not in paths:
            paths.append(path)
        if p.node.op.kind not in kinds:
            kinds.append(p.node.op.kind)
    return paths, kinds


def _star(path: str) -> str:
    return re.sub(r"(?<=\.)\d+(?=\.|$)", "*", path)


def component_only(component: str, detail: str) -> Localisation:
    """When the model itself passes and only one way of running it fails."""
    return Localisation(component, component, "component", detail)
