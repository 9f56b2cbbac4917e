"""``gptspec verify --grad``: a torch target's gradients judged against the spec's derivative
(docs/verify.md, "Verifying training code"; the policy: docs/tolerances.md, "Gradients").

The judge is ``reference.backward`` (reverse mode on the spec's DAG, every primitive's literal
VJP). For each drawn :class:`GradCase` — a θ draw, B full-length rows of ids, some label positions
set to the objective's ignore index — the parent computes, in float64:

* the spec's loss L of the batch under the run's :class:`~spec.objective.Objective` and
  ∂L/∂z at the reference's logits z (``reference.objective.logits_vjp``),
* ∂L/∂θ for every Θ entry, and ∂L/∂v for every value v of the DAG (for localisation),
* the same with every stored value — θ, each forward value, the logits' cotangent and each VJP's
  result — stored in the target's dtype: e_store per Θ entry, as the forward policy measures it.

The target, in its own process (gptspec/verify/isolate.py), is loaded with θ, called on the ids
under autograd, and its logits are back-propagated with that cotangent (``logits.backward(∂L/∂z)``,
so the backward is judged on the spec's loss without the loss formula restated in torch); every
parameter's ``.grad`` is mapped through the layout (a permutation of entries, so gradients map as
values do; a tied parameter's one gradient is the sum over its uses) to Θ names. The loss of the
target's logits is computed by the spec (``Objective.loss``) in the parent. A target with its own
loss (a Hugging Face class: ``labels=`` → ``.loss``) is run a second time, its ``.loss`` back-
propagated: component ``own-loss`` judges that loss and its gradients against the spec's
objective with Hugging Face's settings (``Objective()``: token mean, ι = −100).

**Localisation in backward order.** On a failure the target is run again with hooks on the modules
the layout maps to DAG paths: the cotangent of each module's output, and the cotangent the module
sends to its input (its own contribution: the input is passed through an identity view seen by
that module only). The reference's counterparts are its cotangent of the output value and the sum
of the VJPs of the module's primitives that read its input. These observations and the Θ entries'
gradients are ordered as the backward pass produces them; the first that disagrees names the
fault: a module whose output cotangent agrees and whose input cotangent or own Θ entries do not
(inside a composite, the primitives between its output and the wrong Θ entries that are not also
between it and the right ones, in backward order), or the op between two modules when a module's
output cotangent is the first to disagree (a GELU between ``c_fc`` and ``c_proj``).

**Training steps** (``--train-step``, component ``train-step``): a user's ``step(model,
micro_batches)`` accumulating ``.grad``, judged against the gradient of the whole batch's objective
and diagnosed against the usual wrong accumulations (section "training steps" below).
``gptspec check --grad`` runs fast/'s backward through the same runner (last section).

**One case loop.** :class:`GradRunner` is a :class:`~gptspec.verify.session.CaseLoop`, as the
forward run's ``Runner`` is: progress, the ``--timeout`` deadline between cases, the target's
exceptions, exits and hangs, the smallest input that raises, greedy shrinking
(:func:`gptspec.verify.shrink.shrink` over :func:`grad_candidates`), the localisation checked on
the unshrunk case, and the counterexample script are the forward's; this module says how a
gradient case is judged, shrunk, localised in backward order and scripted.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from gptspec.verify.compare import Comparison, compare
from gptspec.verify.component import Result
from gptspec.verify.draws import ThetaDraw, draw_theta
from gptspec.verify.localise import Localisation
from gptspec.verify.session import CaseLoop, Options, Setup, describe_config
from gptspec.verify.shrink import smaller_configs
from gptspec.verify.structure import structure
from gptspec.verify.tolerance import UNIT_ROUNDOFF, Policy, longest_reduction, storer
from spec.errors import ConfigError
from spec.graph import INPUT, Architecture, Placed
from spec.objective import Objective
from spec.op import Primitive

Array = npt.NDArray[np.float64]

GRAD_COMPONENTS: dict[str, str] = {
    "grad": "gradient: ∂L/∂θ of the spec's loss",
    "own-loss": "gradient: the target's own loss",
    "train-step": "training step: accumulated ∂L/∂θ of the batch",
}
"""Component keys of a gradient run (``--grad``, ``--train-step``; the pytest plugin's item ids)."""

GRAD = Policy(factor=8.0, floor_ulps=512.0, half_floor_ulps=16.0)
"""The gradient policy (docs/tolerances.md, "fast/'s backward against the reference"): the forward's
budget with factor 8 and floors 512 u (float64, float32) and 16 u (half), the backward rounding
twice per value; ``gptspec check --grad`` judges fast/ by it."""
GRAD_VERIFY = Policy(factor=8.0, floor_ulps=512.0, half_floor_ulps=16.0, score_term=True)
"""``gptspec verify --grad``'s: :data:`GRAD` with the forward verify's score term, given the largest
|score| squared for a gradient (:func:`judge`; docs/tolerances.md, "gptspec verify --grad")."""

GRAD_MAGNITUDES = ("plain", "medium")
"""The θ magnitudes gradients are drawn at: scores as drawn, and up to 30 (capped in the half
precisions as for the forward). ``large`` (1e4) is left to the forward check: a softmax
saturated at such scores has gradients of exactly 0 or of a near-tie's coin toss."""


# -- cases ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradCase:
    """One gradient example: the architecture's config, a θ draw, B rows of ids of one length,
    per row the label positions set to the ignore index, and for a training step the sizes of
    its micro-batches (rows in order; empty: one batch). Printable: its ``repr`` reproduces it."""

    config: Any
    draw: ThetaDraw
    tokens: tuple[tuple[int, ...], ...]
    ignored: tuple[tuple[int, ...], ...] = ()
    micro: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        return len(self.tokens[0]) if self.tokens else 0

    def ids(self) -> npt.NDArray[np.int64]:
        return np.array(self.tokens, dtype=np.int64).reshape(len(self.tokens), self.width)

    def labels(self, ignore_index: int) -> npt.NDArray[np.int64]:
        """λ (B, T): the ids, with the ignored positions set to ``ignore_index`` (Hugging Face's
        ``labels``: unshifted; row t of the logits predicts λ_{t+1})."""
        lam = self.ids().copy()
        for b, positions in enumerate(self.ignored):
            for t in positions:
                lam[b, t] = ignore_index
        return lam

    def micro_batches(self) -> list[tuple[int, int]]:
        """(first row, end row) of each micro-batch."""
        sizes = self.micro or (len(self.tokens),)
        bounds, start = [], 0
        for n in sizes:
            bounds.append((start, start + n))
            start += n
        return bounds

    def describe(self, dtype: str) -> str:
        ignored = sum(len(p) for p in self.ignored)
        micro = f", micro-batches of {list(self.micro)} rows" if self.micro else ""
        return (f"B={len(self.tokens)}, T={self.width}" + (f", {ignored} labels ignored" if ignored else "")
                + micro + f"; {self.draw.describe(dtype)}")


def grad_cases(config: Any, n_ctx: int, n_vocab: int, *, examples: int, seed: int, max_len: int, train: bool = False) -> list[GradCase]:
    """``examples`` cases: a full-length row first, then a batch with ignored labels at a larger
    magnitude, then random ones (1–3 rows, lengths 2 … min(n_ctx, max_len)). For a training step
    every case has 2 or 3 micro-batches counting different numbers of tokens (the first ignores
    about half its labels), so a per-micro-batch mean differs from the batch's."""
    rng = np.random.default_rng([seed, 23])
    longest = max(2, min(n_ctx, max_len))
    cases = []
    for k in range(examples):
        magnitude = GRAD_MAGNITUDES[k % len(GRAD_MAGNITUDES)]
        sizes: tuple[int, ...]
        if train:
            sizes = (1, 2) if k % 2 == 0 else (1, 1, 1)
            rows = sum(sizes)
        else:
            sizes = ()
            rows = 1 if k == 0 else int(rng.integers(1, 4))
        T = longest if k == 0 else int(rng.integers(2, longest + 1))
        tokens = tuple(tuple(int(t) for t in rng.integers(0, n_vocab, size=T)) for _ in range(rows))
        ignored: list[tuple[int, ...]] = []
        for b in range(rows):
            if train and b == 0:
                chosen = [t for t in range(1, T) if t % 2 == 1] if T > 2 else []  # the first micro-batch counts fewer tokens
            elif k == 0 and not train:
                chosen = []
            else:
                chosen = [t for t in range(1, T) if rng.random() < 0.25]
            if len(chosen) >= T - 1:
                chosen = chosen[1:]  # every row keeps a counted token (reduction="sequence" needs one)
            ignored.append(tuple(chosen))
        cases.append(GradCase(config, ThetaDraw(seed + k, magnitude), tokens, tuple(ignored), sizes))
    return cases


# -- the judge's side: the reference and its stored twin ---------------------------------------------


@dataclass
class Expected:
    """The reference's loss and gradients of one case, and what storing in D costs them."""

    loss: float
    loss_e_store: float
    grads: dict[str, Array]
    e_store: dict[str, float]
    cotangent: Array
    """∂L/∂z (B, T, n_vocab) at the reference's logits: what the target back-propagates."""
    logits: Array
    scores: float
    """The largest |attention score| of the case (the policy's score term)."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Per row: the forward values, the cotangents, and their stored twins (localisation)."""


def expected(arch: Architecture, theta: Mapping[str, np.ndarray], case: GradCase, objective: Objective, dtype: str,
             rows: Sequence[tuple[int, int]] | None = None, weights: str = "batch") -> Expected:
    """The reference's L and ∂L/∂θ of ``case`` (and their e_store in ``dtype``). ``weights``:
    ``batch`` — the batch's objective (the denominator of all its rows); ``per-micro-batch`` —
    each micro-batch normalised by its own denominator, averaged over the micro-batches (the
    accumulation bug, for diagnosis); ``per-micro-batch-sum`` — the same, summed."""
    import reference
    from gptspec.verify.cases import max_score
    from reference.backward import backward
    from reference.objective import logits_vjp

    ids, lam = case.ids(), case.labels(objective.ignore_index)
    store = storer(dtype, case.draw.seed)
    theta_s = {name: store(np.asarray(value, dtype=np.float64)) for name, value in theta.items()}
    groups = [(0, len(case.tokens))] if weights == "batch" else case.micro_batches()
    grads = {name: np.zeros(np.shape(value)) for name, value in theta.items()}
    grads_s = {name: np.zeros(np.shape(value)) for name, value in theta.items()}
    B, T = ids.shape
    cot = np.zeros((B, T, arch.dim("n_vocab")))
    logits = np.zeros_like(cot)
    terms, terms_s, kept = [], [], []
    scores = 0.0
    for first, end in groups:
        D = objective.denominator(list(lam[first:end]))
        scale = 1.0 / len(groups) if weights == "per-micro-batch" else 1.0
        for b in range(first, end):
            values = reference.evaluate(arch, theta, {"ids": ids[b]}, keep="all")
            z = values["logits"]
            g = logits_vjp(objective, z, lam[b], D) * scale
            result = backward(arch, theta, {"ids": ids[b]}, {"logits": g}, values)
            values_s = reference.evaluate(arch, theta_s, {"ids": ids[b]}, store=store, keep="all")
            g_s = store(logits_vjp(objective, values_s["logits"], lam[b], D) * scale)
            result_s = backward(arch, theta_s, {"ids": ids[b]}, {"logits": g_s}, values_s, store=store)
            for name in grads:
                grads[name] += result.theta[name]
                grads_s[name] += result_s.theta[name]
            terms.append(scale * float(objective.weights(lam[b], D) @ objective.token_losses(z, lam[b])))
            terms_s.append(scale * float(objective.weights(lam[b], D) @ objective.token_losses(values_s["logits"], lam[b])))
            cot[b], logits[b] = g, z
            scores = max(scores, max_score(arch, values))
            kept.append({"values": values, "cot": result.values, "values_s": values_s, "cot_s": result_s.values})
    loss, loss_s = math.fsum(terms), math.fsum(terms_s)
    e_store = {name: float(np.max(np.abs(store(grads_s[name]) - grads[name]), initial=0.0)) for name in grads}
    return Expected(loss, abs(store(np.array(loss_s)).item() - loss), grads, e_store, cot, logits, scores, kept)


def grad_reduction(arch: Architecture, case: GradCase) -> int:
    """K of the gradient policy: the model's longest reduction, or B·T when longer — a weight's
    gradient sums a product over every position of the batch."""
    return max(longest_reduction(arch), len(case.tokens) * case.width)


@dataclass
class GradVerdict:
    """One case's judgement: the worst Θ entry (ratio to its budget), and the loss."""

    entry: str
    comparison: Comparison
    budget: float
    e_store: float
    ratios: dict[str, float]
    """error / budget per Θ entry (and ``loss``)."""
    note: str = ""
    first: str = ""
    """The first Θ entry over budget in backward order (the backward pass finishes it first)."""

    @property
    def passed(self) -> bool:
        return all(r <= 1.0 for r in self.ratios.values())

    @property
    def ratio(self) -> float:
        return max(self.ratios.values(), default=0.0)

    @property
    def kind(self) -> str:
        return "values"

    @property
    def wrong(self) -> list[str]:
        return [name for name, r in self.ratios.items() if r > 1.0]

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        wrong = self.wrong
        listed = f"; over budget: {', '.join(wrong[:6])}{' …' if len(wrong) > 6 else ''}" if wrong else ""
        if self.first:
            listed += f"; first in backward order: ∂L/∂{self.first} (ratio {self.ratios[self.first]:.3g})"
        return (f"{verdict}: worst {self.entry}: {self.comparison.describe()}, budget {self.budget:.3g} "
                f"(e_store {self.e_store:.3g}){listed}" + (f"; {self.note}" if self.note else ""))


def _ratio(err: float, budget: float) -> float:
    if err == 0:
        return 0.0
    return err / budget if budget > 0 else float("inf")


def judge(arch: Architecture, case: GradCase, want: Expected, got_grads: Mapping[str, Array], dtype: str, policy: Policy,
          got_loss: float | None = None, note: str = "") -> GradVerdict:
    """Each Θ entry's gradient against the reference's, under the gradient policy (and the loss,
    when given, against the reference's loss)."""
    K = grad_reduction(arch, case)
    ratios: dict[str, float] = {}
    scale = max((float(np.max(np.abs(g), initial=0.0)) for g in want.grads.values()), default=0.0)  # max |∂L/∂θ| over all of Θ
    e_store = max(want.e_store.values(), default=0.0)
    # ∇θL judged as one vector, as the logits are one tensor; the score term squared: a score carries an error of u·|s|,
    # which moves the softmax's probabilities (the forward's term) and, through its VJP and K (or Q) again, the gradient by another |s|
    budget = policy.budget(dtype, e_store, scale, want.scores**2, K)
    worst: tuple[float, str, Comparison, float, float] | None = None
    for name, want_g in want.grads.items():
        c = compare(got_grads[name], want_g)
        r = _ratio(c.max_abs, budget)
        ratios[name] = r
        if worst is None or r > worst[0]:
            worst = (r, name, replace(c, scale=scale), budget, e_store)
    if got_loss is not None:
        c = compare(np.array([got_loss]), np.array([want.loss]))
        b = policy.budget(dtype, want.loss_e_store, c.scale, want.scores, K)
        ratios["loss"] = _ratio(c.max_abs, b)
        if worst is None or ratios["loss"] > worst[0]:
            worst = (ratios["loss"], "loss", c, b, want.loss_e_store)
    if worst is None:
        raise ConfigError(f"architecture {arch.name} has no Θ entries, but expected some to differentiate [gptspec verify --grad]")
    _, name, c, b, e = worst
    order = structure(arch).order
    finished = {ref.name: order[p.output] for p in reversed(structure(arch).placed) if isinstance(p.node.op, Primitive) for ref in p.node.params.values()}
    wrong = [n for n, r in ratios.items() if r > 1.0 and n in finished]
    first = max(wrong, key=lambda n: finished[n]) if wrong else ""
    return GradVerdict(name, c, b, e, ratios, note, first)


# -- the target's side (runs in the target's process) ------------------------------------------------


def target_call(impl: Any, method: str, arch: Architecture, theta: Mapping[str, np.ndarray], *args: Any) -> Any:
    """``method`` ("grad" or "train_step") of a torch target, wherever it runs: forwarded to its
    child process (isolated), else called here on the adapted module."""
    from gptspec.verify.isolate import Guarded, Isolated

    if isinstance(impl, Isolated):
        if impl.info is None or method not in impl.info.methods:
            raise ConfigError(f"target {impl.target!r} is not a torch module, but expected one for {method} [gptspec verify --grad]; "
                              "gradients are verified for torch.nn.Module targets (a class, a factory or an instance)")
        return getattr(impl, method)(arch, theta, *args)
    inner = impl.impl if isinstance(impl, Guarded) else impl
    if isinstance(inner, FastGradients):
        if method != "grad":
            raise ConfigError(f"{method} of fast/, but expected grad: fast/ has no training step to verify [gptspec check --grad]")
        return inner.grad(arch, theta, *args)
    return serve(inner, method, arch, theta, args)


def serve(impl: Any, method: str, arch: Architecture, theta: Mapping[str, np.ndarray], args: tuple[Any, ...]) -> Any:
    """The child's answer to a gradient call (gptspec/verify/child.py)."""
    from gptspec.verify.torch_target import TorchTarget

    if not isinstance(impl, TorchTarget):
        raise ConfigError(f"target {getattr(impl, 'name', type(impl).__name__)} is not a torch module, but expected one for --grad "
                          "[gptspec verify]; gradients are verified for torch.nn.Module targets (a class, a factory or an instance)")
    if method == "grad":
        return target_gradients(impl, arch, theta, *args)
    if method == "train_step":
        return run_step(impl, arch, theta, *args)
    raise ConfigError(f"gradient call {method!r}, but expected grad or train_step [gptspec verify child]")


def external_grads(impl: Any, arch: Architecture, module: Any) -> dict[str, np.ndarray]:
    """Every parameter's ``.grad`` (0 where None) as float64, under the layout's (prefixed) names."""
    torch = impl.torch
    mapping, _ = impl._naming(arch, module)
    state = module.state_dict(keep_vars=True)
    out = {}
    for name, key in mapping.items():
        p = state[key]
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        out[name] = grad.detach().to(torch.float64).cpu().numpy()
    return out


def _first_tensor(torch: Any, values: Any) -> Any:
    if isinstance(values, torch.Tensor):
        return values
    if isinstance(values, (tuple, list)):
        values = list(values)
    elif isinstance(values, dict):
        values = list(values.values())
    else:
        values = [getattr(values, "logits", None), getattr(values, "last_hidden_state", None)]
    for v in values:
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v
    return None


def _observe(impl: Any, arch: Architecture, module: Any, records: dict[tuple[str, str], list[np.ndarray]]) -> list[Any]:
    """Hooks recording, for each module the layout maps to a DAG path, the cotangent of its output
    and of its input as this module alone sees it (the input passed through a fresh identity view)."""
    torch = impl.torch
    named = dict(module.named_modules())
    handles = []
    for external, path in impl.layout.module_paths(arch.config).items():
        found = named.get(external)
        if found is None and impl.layout.prefix and external.startswith(impl.layout.prefix):
            found = named.get(external[len(impl.layout.prefix):])
        if found is None:
            continue

        def record(what: str, path: str = path) -> Callable[[Any], None]:
            def hook(grad: Any) -> None:
                records.setdefault((path, what), []).append(grad.detach().to(torch.float64).cpu().numpy())
            return hook

        def pre(_m: Any, args: Any, kwargs: Any, path: str = path) -> Any:
            args = list(args)
            for i, a in enumerate(args):
                if isinstance(a, torch.Tensor) and a.is_floating_point() and a.requires_grad:
                    args[i] = a.view_as(a)
                    args[i].register_hook(record("input", path))
                    return tuple(args), kwargs
            for k, a in kwargs.items():
                if isinstance(a, torch.Tensor) and a.is_floating_point() and a.requires_grad:
                    kwargs = {**kwargs, k: a.view_as(a)}
                    kwargs[k].register_hook(record("input", path))
                    return tuple(args), kwargs
            return None

        def post(_m: Any, _args: Any, output: Any, path: str = path) -> None:
            out = _first_tensor(torch, output)
            if out is not None and out.requires_grad:
                out.register_hook(record("output", path))

        handles.append(found.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(found.register_forward_hook(post))
    return handles


def target_gradients(
    impl: Any, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], cotangent: Array | None,
    labels: npt.NDArray[np.int64] | None, observe: bool = False,
) -> dict[str, Any]:
    """Load θ, call the module under autograd on ``ids`` (every position real) and back-propagate
    ``cotangent`` from its logits — or, with ``labels``, its own loss (``labels=`` → ``.loss``).
    Returns the logits, the loss (own loss only), every parameter's gradient under the layout's
    names, and with ``observe`` the hooked modules' cotangents (:func:`_observe`)."""
    from gptspec.verify.calling import logits_of
    from gptspec.verify.torch_target import one_thread, positions

    torch = impl.torch
    module = impl.load(arch, theta)
    calling = impl.calling(module)
    if labels is not None and not _takes_labels(impl, module):
        raise ConfigError(f"{impl.label} takes no labels, but expected a forward(…, labels=…) returning .loss for the own-loss component "
                          "[gptspec verify --grad]")
    valid = np.ones(ids.shape, dtype=bool)
    t_ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    t_mask = torch.from_numpy(valid.astype(np.int64))
    t_pos = torch.from_numpy(positions(valid))
    records: dict[tuple[str, str], list[np.ndarray]] = {}
    handles = _observe(impl, arch, module, records) if observe else []
    params = [p for p in module.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.grad = None
            p.requires_grad_(True)
        with torch.enable_grad(), one_thread(torch):
            extra = {"labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))} if labels is not None else {}
            out = calling.call(module, t_ids, t_mask, t_pos, **extra)
            logits = logits_of(out, torch, impl.label)
            if tuple(logits.shape) != (*ids.shape, arch.dim("n_vocab")):
                raise ConfigError(f"{impl.label} returned logits of shape {tuple(logits.shape)}, but expected (B, T, n_vocab) = "
                                  f"{(*ids.shape, arch.dim('n_vocab'))} under autograd [gptspec verify --grad]")
            loss_value, loss_dtype = None, None
            if labels is not None:
                loss = getattr(out, "loss", None)
                if loss is None and isinstance(out, dict):
                    loss = out.get("loss")
                if loss is None or not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ConfigError(f"{impl.label} returned no scalar .loss for labels=, but expected one [gptspec verify --grad]")
                loss.backward()
                loss_value = float(loss.detach().to(torch.float64))
                loss_dtype = str(loss.dtype).removeprefix("torch.")
            else:
                if cotangent is None:
                    raise ConfigError("a gradient call without a cotangent or labels, but expected one of them [gptspec verify --grad]")
                logits.backward(gradient=torch.from_numpy(np.ascontiguousarray(cotangent)).to(logits.dtype))
        grads = external_grads(impl, arch, module)
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(params, flags):
            p.grad = None
            p.requires_grad_(flag)
    observed = [(path, what, parts[0]) for (path, what), parts in records.items() if len(parts) == 1]
    return {"logits": logits.detach().to(torch.float64).cpu().numpy(), "loss": loss_value, "loss_dtype": loss_dtype, "grads": grads,
            "observed": observed}


def _takes_labels(impl: Any, module: Any) -> bool:
    import inspect

    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
    return "labels" in parameters


def child_methods(impl: Any, arch: Architecture) -> tuple[str, ...]:
    """The gradient calls a child offers for its target: ``grad`` and ``train_step`` for a torch
    module, ``own_loss`` too when it computes its own loss (a flag the parent reads)."""
    from gptspec.verify.torch_target import TorchTarget

    if not isinstance(impl, TorchTarget):
        return ()
    try:
        own = can_own_loss(impl, arch)
    except Exception:  # noqa: BLE001 - the forward components report a module that cannot be built
        own = False
    return ("grad", "train_step") + (("own_loss",) if own else ())


def can_own_loss(impl: Any, arch: Architecture) -> bool:
    """Whether the torch target computes its own loss from ``labels=`` (a Hugging Face class)."""
    return _takes_labels(impl, impl.module_for(arch))


def to_theta_grads(layout: Any, arch: Architecture, external: Mapping[str, np.ndarray]) -> dict[str, Array]:
    """Gradients under a layout's names as Θ entries: the layout's table read backwards, as for
    θ itself (every transform is a reshape, transpose or slice, so it maps a gradient as it maps a
    value); a tied alias holds the same gradient as its base (one parameter) and is checked equal."""
    from gptspec.checkpoint.layout import strip_prefix, to_theta

    by_key = strip_prefix(layout, external, "gradients")
    return to_theta(layout, arch, {key: np.asarray(external[name]) for key, name in by_key.items()}, "gradients of the target")


# -- localisation in backward order ---------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One value the backward pass produces, where it can be compared: a module's output or input
    cotangent, or a Θ entry's gradient; ``key`` orders them as the backward pass makes them."""

    what: str  # "output", "input" or "theta"
    path: str  # module DAG path, or the Θ entry
    key: float
    depth: int
    ratio: float


def _inside(path: str, module: str) -> bool:
    return path == module or path.startswith(module + ".")


def _between(st: Any, start: Iterator[str] | Sequence[str], end: str, primitives: Mapping[str, Placed]) -> set[str]:
    """Primitives (by path) on a forward path from any of ``start`` (primitive paths) to the
    value ``end``, both included."""
    readers: dict[str, list[str]] = {}
    for q in primitives.values():
        for value in q.inputs.values():
            readers.setdefault(value, []).append(q.path)
    down: set[str] = set()
    stack = list(start)
    while stack:
        path = stack.pop()
        if path in down or path not in primitives:
            continue
        down.add(path)
        stack.extend(readers.get(primitives[path].output, []))
    up: set[str] = set()
    stack = [st.producer[end].path] if end in st.producer else []
    while stack:
        path = stack.pop()
        if path in up or path not in primitives:
            continue
        up.add(path)
        stack.extend(st.producer[v].path for v in primitives[path].inputs.values() if v in st.producer)
    return down & up


def reference_contributions(arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], values: Mapping[str, Array],
                            cot: Mapping[str, Array], modules: Mapping[str, str]) -> dict[str, Array]:
    """For each module (DAG path → its input value): the cotangent it sends to its input, the sum
    of the VJPs of its primitives that read that value, each applied to the reference's cotangent
    of its output."""
    from reference.interpreter import bind_sizes, plan
    from reference.ops import VJP

    p = plan(arch)
    sizes = bind_sizes(arch, {"ids": np.asarray(ids)})
    out: dict[str, Array] = {}
    for path, node, sources in p.steps:
        owners = [m for m, v in modules.items() if _inside(path, m) and v in sources.values()]
        if not owners or path not in cot:
            continue
        op = node.op
        if not isinstance(op, Primitive):
            continue
        args = {port: values[src] for port, src in sources.items()}
        params = {name: ref.resolve(np.asarray(theta[ref.name], dtype=np.float64), arch.dims) for name, ref in node.params.items()}
        vjp = VJP[op.kind](op.bind(sizes), cot[path], **args, **params)
        for m in owners:
            for port, src in sources.items():
                if src == modules[m] and port in vjp:
                    g = np.asarray(vjp[port], dtype=np.float64)
                    out[m] = g.copy() if m not in out else out[m] + g
    return out


def localise(arch: Architecture, theta: Mapping[str, np.ndarray], case: GradCase, want: Expected, verdict: GradVerdict,
             observed: Sequence[tuple[str, str, np.ndarray]], dtype: str, policy: Policy) -> Localisation:
    """Where the backward first disagrees (module docstring), from the target's observed
    cotangents (may be empty) and the verdict's per-Θ-entry ratios."""
    st = structure(arch)
    primitives = {p.path: p for p in st.placed if isinstance(p.node.op, Primitive)}
    order = st.order
    K = grad_reduction(arch, case)
    ids = case.ids()
    seen = {(path, what): array for path, what, array in observed}
    modules = sorted({path for path, _ in seen if path in st.by_path})
    inputs: dict[str, str] = {}
    for m in modules:
        value = _real_input(st.by_path[m])
        if value is not None:
            inputs[m] = value
    contrib = [reference_contributions(arch, theta, ids[b], row["values"], row["cot"], inputs) for b, row in enumerate(want.rows)]
    contrib_s = [reference_contributions(arch, {k: storer(dtype, case.draw.seed)(np.asarray(v, dtype=np.float64)) for k, v in theta.items()},
                                         ids[b], row["values_s"], row["cot_s"], inputs) for b, row in enumerate(want.rows)]
    obs: list[Observation] = []

    def judged(got: np.ndarray, rows_want: list[Array], rows_s: list[Array]) -> float:
        w = np.stack(rows_want)
        if got.shape != w.shape:
            return -1.0  # not comparable: not an observation
        c = compare(got, w)
        e = float(np.max(np.abs(np.stack(rows_s) - w), initial=0.0))
        return _ratio(c.max_abs, policy.budget(dtype, e, c.scale, want.scores, K))

    for m in modules:
        placed = st.by_path[m]
        depth = m.count(".") + 1
        if (m, "output") in seen and all(placed.output in row["cot"] for row in want.rows):
            r = judged(seen[(m, "output")], [row["cot"][placed.output] for row in want.rows], [row["cot_s"][placed.output] for row in want.rows])
            if r >= 0:
                obs.append(Observation("output", m, order[placed.output] + 0.5, depth, r))
        if (m, "input") in seen and m in inputs and all(m in c for c in contrib):
            readers = [q for q in primitives.values() if _inside(q.path, m) and inputs[m] in q.inputs.values()]
            r = judged(seen[(m, "input")], [c[m] for c in contrib], [c[m] for c in contrib_s])
            if r >= 0 and readers:
                obs.append(Observation("input", m, min(order[q.output] for q in readers) - 0.1, depth, r))
    readers_of: dict[str, list[Placed]] = {}
    for q in primitives.values():
        for ref in q.node.params.values():
            readers_of.setdefault(ref.name, []).append(q)
    for name, r in verdict.ratios.items():
        if name in readers_of:
            obs.append(Observation("theta", name, min(order[q.output] for q in readers_of[name]) - 0.2, 99, r))
    obs.sort(key=lambda o: (-o.key, -o.depth))
    right = [o for o in obs if o.ratio <= 1.0]
    first = next((o for o in obs if o.ratio > 1.0), None)
    hooked = f"{len(modules)} hooked modules" if modules else "no hooked modules (Θ gradients only)"
    if first is None:
        return Localisation("model", "model", "cotangents", f"no observed cotangent or Θ gradient disagrees alone ({hooked})")
    if first.what == "output":
        value = st.by_path[first.path].output
        checked = {o.path for o in right if o.what == "input"}
        readers = [q for q in primitives.values() if value in q.inputs.values() and not any(_inside(q.path, m) for m in checked)]
        readers.sort(key=lambda q: -order[q.output])
        paths = "+".join(q.path for q in readers) or first.path
        kinds = "+".join(dict.fromkeys(q.node.op.kind for q in readers)) or st.kind(first.path)
        return Localisation(paths, kinds, "cotangents",
                            f"∂L/∂(output of {first.path}) is the first value to disagree in backward order (ratio {first.ratio:.3g}); "
                            f"the cotangents after it agree, so the VJP of what reads it is wrong ({hooked})")
    if first.what == "theta":
        reader = max(readers_of[first.path], key=lambda q: order[q.output])
        sure = any(o.what == "output" and o.ratio <= 1.0 and st.by_path[o.path].output == reader.output for o in right)
        if sure:
            return Localisation(reader.path, reader.node.op.kind, "cotangents",
                                f"∂L/∂{first.path} disagrees (ratio {first.ratio:.3g}) while the cotangent of {reader.path}'s output agrees: "
                                f"the VJP of {reader.node.op.kind} with respect to its parameter ({hooked})")
        around = next((m for m in sorted(modules, key=lambda m: -m.count(".")) if _inside(reader.path, m)
                       and any(o.what == "output" and o.path == m and o.ratio <= 1.0 for o in right)), None)
        if around is None:
            return Localisation(reader.path, reader.node.op.kind, "gradients",
                                f"∂L/∂{first.path} is the first Θ gradient to disagree in backward order (ratio {first.ratio:.3g}); "
                                f"no hooked cotangent around it was seen ({hooked})")
        return _inside_module(st, primitives, around, verdict, first, inputs, [o for o in obs if o.what == "input"], hooked)
    return _inside_module(st, primitives, first.path, verdict, first, inputs, [first], hooked)


def _real_input(placed: Placed) -> str | None:
    for value in placed.inputs.values():
        if not value.startswith(INPUT + "."):
            return value
    return None


def _inside_module(st: Any, primitives: Mapping[str, Placed], module: str, verdict: GradVerdict, first: Observation,
                   inputs: Mapping[str, str], input_obs: Sequence[Observation], hooked: str) -> Localisation:
    """The fault is inside ``module`` (its output cotangent agrees; its input cotangent or a Θ
    entry it reads does not): a primitive, or in a composite the primitives between its output and
    the wrong Θ entries (or its input) that are not also between it and the right ones."""
    placed = st.by_path[module]
    if isinstance(placed.node.op, Primitive):
        return Localisation(module, placed.node.op.kind, "cotangents",
                            f"the cotangent of {module}'s output agrees and {_said(first)} does not (ratio {first.ratio:.3g}): its VJP ({hooked})")
    inner = {p: q for p, q in primitives.items() if _inside(p, module)}
    wrong_starts: list[str] = []
    right_starts: list[str] = []
    for q in inner.values():
        names = [ref.name for ref in q.node.params.values()]
        if any(verdict.ratios.get(n, 0.0) > 1.0 for n in names):
            wrong_starts.append(q.path)
        elif names:
            right_starts.append(q.path)
    input_wrong = any(o.path == module and o.ratio > 1.0 for o in input_obs)
    if input_wrong and module in inputs:
        wrong_starts += [q.path for q in inner.values() if inputs[module] in q.inputs.values()]
    suspects = _between(st, wrong_starts, placed.output, inner) - _between(st, right_starts, placed.output, inner)
    ordered = sorted(suspects, key=lambda p: -st.order[primitives[p].output])
    shown = list(dict.fromkeys(re.sub(r"\.head_\d+\.", ".head_*.", p) for p in ordered))
    kinds = list(dict.fromkeys(primitives[p].node.op.kind for p in ordered))
    views: dict[tuple[str, Any], int] = {}
    for q in inner.values():
        for ref in q.node.params.values():
            views[(ref.name, ref.index)] = views.get((ref.name, ref.index), 0) + 1
    shared = [p for p in ordered if any(views[(ref.name, ref.index)] > 1 for ref in primitives[p].node.params.values())]
    share_note = ""
    if shared:
        share_note = ("; some of them are read by several heads (shared K/V under grouped-query attention): their cotangent is the sum "
                      "over the heads that read them")
    wrong = [n for n in verdict.wrong if any(n == ref.name for q in inner.values() for ref in q.node.params.values())]
    rights = sorted({ref.name for q in inner.values() for ref in q.node.params.values()} - set(verdict.wrong))
    detail = (f"the cotangent of {module}'s output agrees; {_said(first)} disagrees (ratio {first.ratio:.3g})"
              + (f"; wrong ∂L/∂{', '.join(wrong)}" if wrong else "") + (f"; right ∂L/∂{', '.join(rights)}" if rights else "")
              + (f"; in backward order the ops that can explain it: {', '.join(shown[:8])} ({', '.join(kinds)})" if shown else "")
              + share_note + f" ({hooked})")
    return Localisation(module, placed.node.op.kind, "cotangents", detail)


def _said(o: Observation) -> str:
    if o.what == "theta":
        return f"∂L/∂{o.path}"
    return f"the cotangent {o.path} sends to its input"


# -- shrinking and scripts ------------------------------------------------------------------------------------


MINIMUM = {"n_vocab": 2, "n_ctx": 2, "d_model": 4}
"""The least value shrinking tries, per size field (gptspec.verify.shrink.SIZE_FIELDS). d_model
stops at 4: over 2 features a layer norm's x̂ is ±1 whatever x is, so its backward is pure
cancellation (a Jacobian of order ε/σ³) whose float32 rounding no model of one rounding per value
bounds — a correct float32 backward fails there (docs/tolerances.md, "Gradients")."""


def grad_candidates(case: GradCase, resizable: bool, config_ok: Callable[[Any], bool]) -> Iterator[GradCase]:
    """A gradient example's smaller candidates, smallest first (for the one greedy loop,
    :func:`gptspec.verify.shrink.shrink`): a smaller config (a rebuilt target), fewer rows (whole
    micro-batches kept), shorter rows, a plainer θ — each counting a token per row (:func:`counted_ok`)."""
    return filter(counted_ok, _candidates(case, resizable, config_ok))


def _candidates(case: GradCase, resizable: bool, config_ok: Callable[[Any], bool]) -> Iterator[GradCase]:
    if resizable:
        for config in smaller_configs(case.config, MINIMUM):
            fitted = _fit(case, config)
            if fitted is not None and config_ok(config):
                yield fitted
    groups = case.micro_batches()
    if case.micro and len(groups) > 2:
        for j in range(len(groups)):
            keep = [g for i, g in enumerate(groups) if i != j]
            yield _keep_rows(case, keep)
    elif not case.micro and len(case.tokens) > 1:
        for b in range(len(case.tokens)):
            yield _keep_rows(case, [(i, i + 1) for i in range(len(case.tokens)) if i != b])
    for width in sorted({2, case.width // 2, case.width - 1}):
        if 2 <= width < case.width:
            yield replace(case, tokens=tuple(r[:width] for r in case.tokens),
                          ignored=tuple(tuple(t for t in p if t < width) for p in case.ignored))
    level = GRAD_MAGNITUDES.index(case.draw.magnitude) if case.draw.magnitude in GRAD_MAGNITUDES else 0
    for plainer in GRAD_MAGNITUDES[:level]:
        yield replace(case, draw=ThetaDraw(case.draw.seed, plainer))


def counted_ok(case: GradCase) -> bool:
    """Every micro-batch (every row, outside a training step) counts at least one token: the
    reductions and the per-micro-batch diagnosis are defined."""
    lam = case.labels(-100)
    groups = case.micro_batches() if case.micro else [(b, b + 1) for b in range(len(case.tokens))]
    return all(int((lam[a:b, 1:] != -100).sum()) >= 1 for a, b in groups)


def _keep_rows(case: GradCase, groups: Sequence[tuple[int, int]]) -> GradCase:
    rows = [b for first, end in groups for b in range(first, end)]
    return replace(case, tokens=tuple(case.tokens[b] for b in rows), ignored=tuple(case.ignored[b] for b in rows) if case.ignored else (),
                   micro=tuple(end - first for first, end in groups) if case.micro else ())


def _fit(case: GradCase, config: Any) -> GradCase | None:
    n_vocab, n_ctx = getattr(config, "n_vocab", None), getattr(config, "n_ctx", None)
    if isinstance(n_ctx, int) and case.width > n_ctx:
        return None
    tokens = case.tokens if not isinstance(n_vocab, int) else tuple(tuple(t % n_vocab for t in r) for r in case.tokens)
    return replace(case, config=config, tokens=tokens)


def grad_script(target: str, options: Mapping[str, Any], component: str, case: GradCase) -> str:
    """A standalone script reproducing ``case`` for a gradient ``component``: it prints the verdict
    and exits 1 while the failure is there, 0 once it is fixed."""
    import os

    path, sep, name = target.rpartition(":")
    if sep and path.endswith(".py"):
        target = f"{os.path.abspath(path)}:{name}"
    config = case.config
    lines = [
        f"# gptspec verify --grad: minimal counterexample for {component!r}; run it from the directory the target imports from.",
        "# It prints the verdict and exits 1 while the failure is there, 0 once it is fixed.",
        "import os, sys",
        "sys.path.insert(0, os.getcwd())",
        "from gptspec.verify.grad import GradCase, reproduce_grad",
        "from gptspec.verify.draws import ThetaDraw",
        f"from {type(config).__module__} import {type(config).__name__}",
        "",
        f"case = {case!r}",
        f"verdict = reproduce_grad({target!r}, {component!r}, case, **{dict(options)!r})",
        "print(verdict)",
        "raise SystemExit(0 if verdict.passed else 1)",
    ]
    return "\n".join(lines) + "\n"


# -- the run ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradOptions:
    """What a gradient run adds to :class:`gptspec.verify.session.Options`."""

    grad: bool = True
    """Run ``grad`` (the spec's loss) and, when the target has its own loss, ``own-loss``."""
    own_loss: bool = True
    """With ``grad``: also ``own-loss`` when the target has its own loss."""
    train_step: str | None = None
    """``module:function`` of a training step ``step(model, micro_batches)`` (component ``train-step``)."""
    objective: Objective = Objective()
    """The objective ``grad`` judges (``own-loss`` and ``train-step`` use Hugging Face's, ``Objective()``)."""
    examples: int = 6
    policy: Policy = GRAD_VERIFY

    def check(self) -> None:
        if isinstance(self.examples, bool) or not isinstance(self.examples, int) or self.examples < 1:
            raise ConfigError(f"grad examples={self.examples!r}, but expected a whole number ≥ 1 [gptspec verify --grad]")
        if not isinstance(self.objective, Objective):
            raise ConfigError(f"objective of type {type(self.objective).__name__}, but expected a spec.objective.Objective [gptspec verify --grad]")
        if self.train_step is not None and (not isinstance(self.train_step, str) or ":" not in self.train_step):
            raise ConfigError(f"--train-step {self.train_step!r}, but expected module:function or file.py:function [gptspec verify]")
        if not self.grad and self.train_step is None:
            raise ConfigError("no gradient component asked for, but expected --grad or --train-step [gptspec verify]")


class GradRunner(CaseLoop[GradCase, GradVerdict]):
    """One gradient run over a :class:`~gptspec.verify.session.Setup`: the case loop is the
    forward run's (:class:`~gptspec.verify.session.CaseLoop`: progress, the deadline, the
    target's exceptions, exits and hangs, shrinking, steady localisation, scripts); this class
    says how a gradient case is judged, shrunk, localised in backward order and scripted."""

    titles = GRAD_COMPONENTS
    localising = "localising in backward order"
    shrink_attempts = 40

    def __init__(self, s: Setup, options: Options, grad: GradOptions, progress: Callable[[str], None] | None, target: str | None) -> None:
        super().__init__(s, options, progress, target)
        self.grad = grad

    def theta_for(self, arch: Architecture, case: GradCase) -> Mapping[str, np.ndarray]:
        """θ of a case: the given one (``check --grad``), else the case's draw."""
        given = self.s.theta
        if given is not None and arch.config == self.s.arch.config:
            return dict(given)
        return draw_theta(arch, case.draw, self.s.dtype)

    def objective(self, key: str) -> Objective:
        return self.grad.objective if key == "grad" else Objective()

    def check(self, key: str, case: GradCase, observe: bool = False) -> tuple[GradVerdict, Expected, dict[str, Any]]:
        """Judge the target on one case for component ``key``."""
        arch = self.arch_for(case.config)
        theta = self.theta_for(arch, case)
        objective = self.objective(key)
        want = expected(arch, theta, case, objective, self.s.dtype)
        if key == "train-step":
            return judge_step(self, arch, theta, case, want)
        ids = case.ids()
        if key == "grad":
            got = target_call(self.s.impl, "grad", arch, theta, ids, want.cotangent, None, observe)
        else:
            got = target_call(self.s.impl, "grad", arch, theta, ids, None, case.labels(objective.ignore_index), observe)
        grads = got["theta"] if "theta" in got else to_theta_grads(self.s.layout, arch, got["grads"])
        if key == "grad":
            loss = objective.loss(list(got["logits"]), list(case.labels(objective.ignore_index)))  # the spec's loss of the target's logits
        else:
            loss = got["loss"]
        what = "the spec's loss of the target's logits" if key == "grad" else "the target's own loss"
        dtype, note = self.s.dtype, ""
        coarser = got.get("loss_dtype")
        if key != "grad" and coarser in UNIT_ROUNDOFF and UNIT_ROUNDOFF[coarser] > UNIT_ROUNDOFF[dtype]:
            # a loss computed in a coarser precision than the model (Hugging Face's upcasts the logits to float32,
            # also in a float64 model): its gradient carries that precision's rounding, so it is judged in it
            dtype, note = coarser, f"; the target computes its own loss in {coarser}, so this component is judged in {coarser}"
            want = expected(arch, theta, case, objective, dtype)
        verdict = judge(arch, case, want, grads, dtype, self.grad.policy, loss,
                        note=f"{what} {loss:.9g}, the spec's {want.loss:.9g}{note}")
        return verdict, want, got

    def judge(self, key: str, case: GradCase) -> GradVerdict:
        return self.check(key, case)[0]

    def candidates(self, key: str, case: GradCase) -> Iterator[GradCase]:
        return grad_candidates(case, self.resizable(key), self.config_ok)

    def smallest(self, case: GradCase) -> GradCase:
        """Two tokens per row, every label counted."""
        return replace(case, tokens=tuple(r[:2] for r in case.tokens), ignored=tuple(() for _ in case.ignored))

    def settle(self, key: str, case: GradCase, verdict: GradVerdict, loc: Localisation, original: GradCase,
               original_verdict: GradVerdict) -> tuple[GradCase, GradVerdict, Localisation, bool]:
        """Steady under shrinking: when the original case localises elsewhere, the unshrunk
        counterexample is reported, with where the shrunk one localises."""
        before = self.localise(key, original, original_verdict)
        if before.path == loc.path:
            return case, verdict, loc, False
        note = (f"; shrinking reached {describe_config(case.config)}, {case.describe(self.s.dtype)}, which localises to "
                f"{loc.path} ({loc.kind}) instead: the unshrunk counterexample is reported")
        return original, original_verdict, replace(before, detail=before.detail + note), True

    def localise(self, key: str, case: GradCase, verdict: GradVerdict) -> Localisation:
        arch = self.arch_for(case.config)
        theta = self.theta_for(arch, case)
        if key == "train-step":
            return diagnose(self, arch, theta, case, verdict)
        try:
            _, want, got = self.check(key, case, observe=True)
            observed = got["observed"]
        except Exception:  # noqa: BLE001 - a module that refuses hooks: the Θ gradients alone
            _, want, _ = self.check(key, case)
            observed = []
        return localise(arch, theta, case, want, verdict, observed, self.s.dtype, self.grad.policy)

    def case_script(self, key: str, case: GradCase) -> str | None:
        if isinstance(self.options_target, str):
            return grad_script(self.options_target, self.script_options(), key, case)
        if self.s.target_snippet is not None:  # θ given (check --grad): fast/'s backward at the target's θ
            return (f"{self.s.target_snippet}\nfrom gptspec.verify.draws import ThetaDraw\nfrom gptspec.verify.grad import GradCase, reproduce_fast_grad\n"
                    f"from {type(case.config).__module__} import {type(case.config).__name__}\n"
                    f"verdict = reproduce_fast_grad(target, {self.s.dtype!r}, {key!r}, {case!r})\n"
                    "print(verdict)\nraise SystemExit(0 if verdict.passed else 1)\n")
        return None

    def script_options(self) -> dict[str, Any]:
        out = super().script_options()
        del out["empty_rows"]  # no padded positions in a gradient run
        if self.grad.train_step:
            import os

            path, sep, name = self.grad.train_step.rpartition(":")
            out["train_step"] = f"{os.path.abspath(path)}:{name}" if sep and path.endswith(".py") else self.grad.train_step
        if self.grad.objective != Objective():
            o_ = self.grad.objective
            out["objective"] = {"ignore_index": o_.ignore_index, "label_smoothing": o_.label_smoothing, "z_loss": o_.z_loss, "reduction": o_.reduction}
        return out

    def plan(self) -> dict[str, list[GradCase]]:
        """The cases of each gradient component, by key, in order."""
        s, o = self.s, self.options
        n_ctx, n_vocab = s.arch.dim("n_ctx"), s.arch.dim("n_vocab")
        out: dict[str, list[GradCase]] = {}
        if self.grad.grad:
            cases = grad_cases(s.arch.config, n_ctx, n_vocab, examples=self.grad.examples, seed=o.seed, max_len=o.max_len)
            out["grad"] = cases
            if self.grad.own_loss:
                out["own-loss"] = cases
        if self.grad.train_step:
            out["train-step"] = grad_cases(s.arch.config, n_ctx, n_vocab, examples=self.grad.examples, seed=o.seed, max_len=o.max_len, train=True)
        return out

    def own_loss(self) -> bool:
        from gptspec.verify.isolate import Guarded, Isolated

        impl = self.s.impl
        if isinstance(impl, Isolated):
            return "own_loss" in (impl.info.methods if impl.info else ())
        inner = impl.impl if isinstance(impl, Guarded) else impl
        if isinstance(inner, FastGradients):
            return True
        try:
            return can_own_loss(inner, self.s.arch)
        except Exception:  # noqa: BLE001 - not a torch module: the grad component says so
            return False


def verify_grad(target: object, options: Any = None, grad: GradOptions | None = None, *, progress: Callable[[str], None] | None = None,
                on_result: Callable[[Result], None] | None = None, **changes: Any) -> Any:
    """``gptspec verify TARGET --grad [--train-step M:F]``: the gradient components of a torch
    target (module docstring), as a :class:`~gptspec.verify.session.Report`. The target runs in a
    child process as for the forward (isolated unless it is an object that cannot be sent)."""
    from gptspec.verify.isolate import Isolated, RunTimeout
    from gptspec.verify.session import NUMPY_DEFAULT_ERRORS, Report, function_fields, prepare, stopped

    options = replace(options or Options(), **changes)
    options.check()
    grad = grad or GradOptions()
    grad.check()
    start = time.perf_counter()
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    with np.errstate(**NUMPY_DEFAULT_ERRORS):  # type: ignore[arg-type]
        s, notes = prepare(target, replace(options, weights=False), deadline)
        try:
            runner = GradRunner(s, options, grad, progress, target if isinstance(target, str) else None)
            runner.deadline = deadline
            report = Report(
                target=s.label, implementation=s.impl.name, layout=s.named_layout().name, architecture=f"{s.arch.name}: {describe_config(s.arch.config)}",
                dtype=s.dtype, empty_rows="ignore", policy=describe_policy(grad.policy, s.dtype, s.arch), seed=options.seed,
                function=function_fields(s.arch.config),
            )
            report.draws = "plain / ~30; unpadded rows, some labels ignored"
            report.notes += s.notes + notes + [f"objective: {describe_objective(grad.objective)} (component grad); own-loss and train-step: "
                                               f"{describe_objective(Objective())}"]
            for key, cases in runner.plan().items():
                if key == "own-loss" and not runner.own_loss():
                    result = Result(GRAD_COMPONENTS[key], key=key, passed=False, skipped="the target computes no loss of its own (forward(…, labels=…) → .loss)")
                else:
                    try:
                        result = runner.run_cases(key, cases)
                    except RunTimeout as late:
                        result = stopped(late, options.timeout)
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
                if result.key == "run":
                    break
        finally:
            if isinstance(s.impl, Isolated):
                s.impl.close()
    report.seconds = time.perf_counter() - start
    return report


def describe_objective(objective: Objective) -> str:
    return (f"{objective.title}, reduction {objective.reduction}, ignore index {objective.ignore_index}, "
            f"label smoothing {objective.label_smoothing:g}, z-loss {objective.z_loss:g}")


def describe_policy(policy: Policy, dtype: str, arch: Architecture) -> str:
    text = policy.describe(dtype, longest_reduction(arch)).replace("max|score|", "max|score|²")
    return ("∂L/∂θ as one vector: " + text.replace("docs/tolerances.md", "docs/tolerances.md, \"gptspec verify --grad\"")
            + ", scale = max |∂L/∂θ| over Θ, K at least B·T")


def reproduce_grad(target: object, component: str, case: GradCase, **options: Any) -> GradVerdict:
    """Judge one gradient component on one case (what a counterexample script calls)."""
    from gptspec.verify.session import setup

    objective = options.pop("objective", None)
    train_step = options.pop("train_step", None)
    opts = replace(Options(), **options)
    s = setup(target, opts)
    grad = GradOptions(grad=True, train_step=train_step, objective=Objective(**objective) if objective else Objective())
    runner = GradRunner(s, opts, grad, None, target if isinstance(target, str) else None)
    return runner.check(component, case)[0]


__all__ = ["GRAD_COMPONENTS", "Expected", "GradCase", "GradOptions", "GradRunner", "GradVerdict", "expected", "grad_cases",
           "judge", "localise", "reproduce_grad", "verify_grad"]


# -- training steps (--train-step) -------------------------------------------------------------------------------------
#
# ``gptspec verify --train-step module:function``: a training step judged against the spec's
# gradient of the batch objective (docs/verify.md, "Verifying training code").
#
# The user's function is ``step(model, micro_batches)``: ``model`` the target module holding θ,
# ``micro_batches`` a list of dicts ``{"input_ids", "labels", "attention_mask"}`` of int64 tensors
# (B_j, T) — ``labels`` are the ids with some positions set to −100, unshifted, as Hugging Face's
# causal LMs take them — and it must leave in every parameter's ``.grad`` the gradient of the batch's
# loss, accumulated over the micro-batches (what an optimiser step would then use). The judge is the
# spec's objective with Hugging Face's settings (``Objective()``: row t predicts λ_{t+1}, the mean
# over every counted token of the whole batch) through ``reference.backward``: by the accumulation
# rule (spec/objective.py), each micro-batch's summed loss divided by the *whole batch's* count N.
# Each drawn case splits its rows into micro-batches that count different numbers of tokens, so
# the mean of per-micro-batch means (the gradient-accumulation bug) differs from it.
#
# On a failure the step's gradients are compared with the spec's under the usual wrong
# normalisations (:data:`DIAGNOSES`); the one they match is the localisation (method ``diagnosis``).


DIAGNOSES: dict[str, tuple[str, str]] = {
    "per-micro-batch": (
        "each micro-batch normalised by its own count of tokens, averaged over the micro-batches",
        "divide each micro-batch's summed token loss by the whole batch's counted tokens N (spec/objective.py, the accumulation rule), "
        "not its own mean by the number of micro-batches",
    ),
    "per-micro-batch-sum": (
        "each micro-batch normalised by its own count of tokens, summed over the micro-batches",
        "divide each micro-batch's summed token loss by the whole batch's counted tokens N",
    ),
}
"""Wrong accumulations the diagnosis recognises: key (``expected``'s weights) → (what it is, the fix)."""


def run_step(impl: Any, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], labels: npt.NDArray[np.int64],
             bounds: list[tuple[int, int]], step: str) -> dict[str, Any]:
    """In the target's process: load θ, zero every gradient, call ``step(model, micro_batches)``
    under autograd, and return every parameter's ``.grad`` under the layout's names."""
    from gptspec.models import load_object
    from gptspec.verify.session import user_code
    from gptspec.verify.torch_target import one_thread

    torch = impl.torch
    function = user_code(f"--train-step {step}", "loading", lambda: load_object(step, "train step"))
    if not callable(function):
        raise ConfigError(f"--train-step {step} is {type(function).__name__}, but expected a function step(model, micro_batches) [gptspec verify]")
    module = impl.load(arch, theta)
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    batches = []
    for first, end in bounds:
        part = np.ascontiguousarray(ids[first:end], dtype=np.int64)
        batches.append({"input_ids": torch.from_numpy(part), "labels": torch.from_numpy(np.ascontiguousarray(labels[first:end], dtype=np.int64)),
                        "attention_mask": torch.ones(part.shape, dtype=torch.int64)})
    try:
        for p in params:
            p.grad = None
            p.requires_grad_(True)
        with torch.enable_grad(), one_thread(torch):
            function(module, batches)
        grads = external_grads(impl, arch, module)
    finally:
        for p, flag in zip(params, flags):
            p.grad = None
            p.requires_grad_(flag)
    return {"grads": grads, "observed": []}


def judge_step(runner: Any, arch: Architecture, theta: Mapping[str, np.ndarray], case: Any, want: Any) -> tuple[Any, Any, dict[str, Any]]:
    """The step's accumulated gradients on ``case`` against the spec's gradient of the batch."""
    objective = Objective()
    got = target_call(runner.s.impl, "train_step", arch, theta, case.ids(), case.labels(objective.ignore_index), case.micro_batches(),
                      runner.grad.train_step)
    grads = to_theta_grads(runner.s.layout, arch, got["grads"])
    counts = [int(sum(objective.counted(lam).sum() for lam in case.labels(objective.ignore_index)[a:b])) for a, b in case.micro_batches()]
    note = f"micro-batches counting {counts} tokens (N = {sum(counts)})"
    got["theta"] = grads
    return judge(arch, case, want, grads, runner.s.dtype, runner.grad.policy, note=note), want, got


def diagnose(runner: Any, arch: Architecture, theta: Mapping[str, np.ndarray], case: Any, verdict: Any) -> Localisation:
    """Which wrong accumulation the step computes, if it is one of :data:`DIAGNOSES`."""
    _, _, got = judge_step(runner, arch, theta, case, expected(arch, theta, case, Objective(), runner.s.dtype))
    for key, (what, fix) in DIAGNOSES.items():
        other = expected(arch, theta, case, Objective(), runner.s.dtype, weights=key)
        if judge(arch, case, other, got["theta"], runner.s.dtype, runner.grad.policy).passed:
            return Localisation("objective", "micro-batch accumulation", "diagnosis",
                                f"the step's gradients are the spec's for {what}, not for the batch's token mean (worst "
                                f"∂L/∂{verdict.entry} off by ratio {verdict.ratio:.3g}); {fix}")
    wrong = verdict.wrong
    every = 2 * len(wrong) >= len(verdict.ratios)
    return Localisation("objective", "next-token cross-entropy", "diagnosis",
                        f"the step's gradients match none of the known wrong accumulations ({', '.join(DIAGNOSES)}); "
                        + (f"{len(wrong)} of {len(verdict.ratios)} Θ entries' gradients disagree: the loss itself differs — check the label shift (row t predicts "
                           "labels[t + 1]), the ignore index −100 and the reduction" if every else
                           f"∂L/∂{', '.join(wrong[:4])} disagree: a parameter's gradient is lost or changed inside the step"))


# -- gptspec check --grad: fast/'s backward through the same engine ---------------------------------------------------


class FastGradients:
    """fast/ as a gradient target (``gptspec check --grad``): ``grad`` back-propagates the spec's
    ∂L/∂logits through fast/'s batched backward (``fast.backward.backward``); its "own loss" is fast/'s
    objective (``fast.compile(…).value_and_grad``). Gradients come back under Θ's names."""

    resizable = True

    def __init__(self, dtype: str, objective: Objective = Objective()) -> None:
        self.dtype = dtype
        self.objective = objective
        self.name = f"fast/ backward [{dtype}]"

    def grad(self, arch: Architecture, theta: Mapping[str, np.ndarray], ids: npt.NDArray[np.int64], cotangent: Array | None,
             labels: npt.NDArray[np.int64] | None, observe: bool = False) -> dict[str, Any]:
        import fast
        from fast.backward import backward

        if labels is None:
            if cotangent is None:
                raise ConfigError("a gradient call without a cotangent or labels, but expected one of them [gptspec check --grad]")
            logits, grads = backward(arch, theta, ids, cotangent, dtype=self.dtype)
            loss = None
        else:
            got = fast.compile(arch, theta, self.dtype).value_and_grad(ids, labels=labels, objective=self.objective)
            logits, grads, loss = got.logits, got.theta, float(got.loss)
        return {"logits": np.asarray(logits, dtype=np.float64), "loss": loss, "observed": [],
                "theta": {name: np.asarray(g, dtype=np.float64) for name, g in grads.items()}}


def given_setup(target: Any, dtype: str, objective: Objective) -> Setup:
    """The setup of ``check --grad``: fast/'s backward (:class:`FastGradients`) at ``target``'s θ
    (a preset's draw: every case is judged at it, so the target is not resized), no layout; the
    target's ``load_snippet`` starts every counterexample script."""
    impl = FastGradients(dtype, objective)
    return Setup(impl, target.label, None, target.arch, None, impl, dtype, theta=dict(target.theta), target_snippet=target.load_snippet)


def check_grad(target: Any, dtype: str, *, examples: int, seed: int, objective: Objective = Objective(), shard: tuple[int, int] = (1, 1),
               on_result: Callable[[Result], None] | None = None, on_start: Callable[[str], None] | None = None) -> list[Result]:
    """``gptspec check --grad``: fast/'s backward (``grad``: the spec's cotangent through fast/'s
    reverse pass; ``own-loss``: fast/'s objective and reverse pass) on ``examples`` drawn batches at
    the target's θ, judged, shrunk and localised (Θ gradients only) by :class:`GradRunner` under
    ``check``'s policy (``DEFAULT``)."""
    from gptspec.verify.shard import owns

    arch = target.arch
    options = Options(seed=seed, max_len=8, isolate=False, cost_limit=False)
    runner = GradRunner(given_setup(target, dtype, objective), options, GradOptions(objective=objective, examples=examples, policy=GRAD), None, None)
    results = []
    for key, cases in runner.plan().items():
        mine = [c for k, c in enumerate(cases) if owns(shard, k)]
        if not mine:
            continue
        if on_start is not None:
            on_start(GRAD_COMPONENTS[key])
        result = runner.run_cases(key, mine)
        result.component = {"grad": "backward: ∂L/∂θ from the spec's ∂L/∂logits", "own-loss": "backward: fast/'s loss and ∂L/∂θ"}[key] + \
            f" (B ≤ 3, T ≤ {min(arch.dim('n_ctx'), 8)}, ignored labels)"
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def reproduce_fast_grad(target: Any, dtype: str, component: str, case: GradCase, objective: Objective = Objective()) -> GradVerdict:
    """Judge fast/'s backward on one case at ``target``'s θ (what ``check --grad``'s scripts call)."""
    runner = GradRunner(given_setup(target, dtype, objective), Options(isolate=False), GradOptions(objective=objective, policy=GRAD), None, None)
    return runner.check(component, case)[0]
