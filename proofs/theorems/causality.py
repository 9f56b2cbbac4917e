"""Causality by typing: the rules, their composition, causality at any depth, the receptive
field of banded layers, KV-cache decoding, and a ConvGPT-style reducer that breaks it.

The theorems that rely on the typing first check what it composes — every op's rules and every
mask's windows — against the definitions (proofs/definitions.py); the KV-cache theorem runs
spec/decoding.py's prefill and extension on the ops' definitions."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import sympy
from hypothesis import strategies as st

import reference
from proofs.algebra import replace_entries, require_entails, require_sums_equal, resolve_piecewise
from proofs.core import Kind, ProofFailed, Scope, for_all, require, theorem, witness_check
from proofs.definitions import bind, check_ops, check_relation, check_rules, entries, relations_of
from proofs.dependency import ALL, SAME, Windows, causality, relation, type_graph, windows
from proofs.theorems._common import close, decoder_configs, j, seeds, t
from spec import decoding
from spec import dims as D
from spec.architectures import registry
from spec.architectures.conv_gpt import conv_gpt
from spec.architectures.gpt import GPTConfig, build_gpt
from spec.architectures.registry import build, families
from spec.config import Config
from spec.graph import Architecture, Composite
from spec.masks import Banded, Causal, KeyRow, Relation, SupportOf
from spec.op import PRIMITIVES, Primitive
from spec.ops import (
    Affine,
    Conv1d,
)
from spec.theta import random_theta
from spec.types import Element

oo = sympy.oo

# -- the composition of windows ------------------------------------------------------------

Bound: TypeAlias = sympy.Expr | None  # None: unbounded (−∞ below, +∞ above)


def _window_hypotheses(lo: Bound, hi: Bound, near: sympy.Expr, far: sympy.Expr) -> list[sympy.Expr]:
    """lo ≤ far − near ≤ hi, as expressions that must be ≥ 0 (an unbounded side gives none)."""
    return ([far - near - lo] if lo is not None else []) + ([near + hi - far] if hi is not None else [])


def _composition_certificates() -> None:
    """On ℤ: (t, u) ∈ [a, b] and (u, s) ∈ [c, d] give (t, s) ∈ [a + c, b + d]; on [0, T) with
    b, d ≤ 0 every (t, s) ∈ [a + c, b + d] has such a u. Every bound may also be infinite."""
    tt, u, ss, T_ = sympy.symbols("t u s T", integer=True)
    a, b, c, d = sympy.symbols("a b c d", integer=True)
    for a_, c_ in itertools.product((a, None), (c, None)):
        for b_, d_ in itertools.product((b, None), (d, None)):
            hyps = _window_hypotheses(a_, b_, tt, u) + _window_hypotheses(c_, d_, u, ss)
            lo = None if a_ is None or c_ is None else a_ + c_
            hi = None if b_ is None or d_ is None else b_ + d_
            for goal in _window_hypotheses(lo, hi, tt, ss):
                require_entails(hyps, goal, f"composition ⊆ [a + c, b + d] (a={a_}, b={b_}, c={c_}, d={d_})")
    # Exactness for b, d ≤ 0 on [0, T): the witness u is t + a when t + a ≥ s − d, else s − d.
    for a_, c_ in itertools.product((a, None), (c, None)):
        lo = None if a_ is None or c_ is None else a_ + c_
        given = [tt, T_ - 1 - tt, ss, T_ - 1 - ss, -b, -d, *(_window_hypotheses(lo, b + d, tt, ss))]
        given += ([b - a_] if a_ is not None else []) + ([d - c_] if c_ is not None else [])
        cases: list[tuple[sympy.Expr, list[sympy.Expr]]] = [(ss - d, [ss - d - tt - a_] if a_ is not None else [])]
        if a_ is not None:
            cases.append((tt + a_, [tt + a_ - ss + d]))
        for witness_u, case in cases:
            goals = _window_hypotheses(a_, b, tt, witness_u) + _window_hypotheses(c_, d, witness_u, ss) + [witness_u, T_ - 1 - witness_u]
            for goal in goals:
                require_entails(given + case, goal, f"exactness: u = {witness_u} works (a={a_}, c={c_})")


def _brute(spans: Windows, T_: int) -> set[tuple[int, int]]:
    return {(p, q) for p in range(T_) for q in range(T_) if spans.allowed(p, q)}


def _compose_on(first: set[tuple[int, int]], second: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return {(p, q) for p, m in first for m2, q in second if m == m2}


BOUNDS = (-oo, -3, -2, -1, 0, 1, 2, oo)


def _windows_strategy() -> st.SearchStrategy[Windows]:
    pairs = st.tuples(st.sampled_from(BOUNDS[:-1]), st.sampled_from(BOUNDS[1:])).filter(lambda w: w[0] <= w[1])
    return st.lists(pairs, min_size=0, max_size=3).map(lambda ws: Windows.of(*ws))


def _witness_composition(examples: int) -> None:
    def check(case: tuple[Windows, Windows, int]) -> None:
        first, second, T_ = case
        composed, united = first.then(second), first | second
        true = _compose_on(_brute(first, T_), _brute(second, T_))
        witness_check(true <= _brute(composed, T_), f"{first.text()} ∘ {second.text()} misses a pair on [0, {T_})")
        if all(sympy.Le(b, 0) is sympy.true for _, b in (*first.spans, *second.spans)):
            witness_check(true == _brute(composed, T_), f"{first.text()} ∘ {second.text()} is not exact on [0, {T_})")
        witness_check(_brute(united, T_) == _brute(first, T_) | _brute(second, T_), "union is not exact")

    for_all(st.tuples(_windows_strategy(), _windows_strategy(), st.integers(1, 9)), examples, check)


@theorem(
    name="window_composition",
    title="dependency relations compose by adding window bounds; exactly so for causal windows",
    statement="Write [a, b] for the relation t + a ≤ s ≤ t + b (a may be −∞, b may be +∞). If output t reads u ∈ [a, b] "
    "and u reads s ∈ [c, d], then t reads only s ∈ [a + c, b + d]; on positions 0 … T − 1 with b, d ≤ 0 every such s "
    "is reached (so the composition is exactly [a + c, b + d]). Unions merge windows that overlap or touch. So the "
    "typing computes a relation that contains the true one, and equals it for causal windows.",
    latex=r"[a,b] \circ [c,d] \subseteq [a+c,\ b+d];\qquad b, d \le 0 \Rightarrow [a,b] \circ [c,d] = [a+c,\ b+d] "
    r"\text{ on } \{0,\dots,T-1\}^2",
    hypotheses=("positions are integers in [0, T); bounds are integers or infinite",),
    scope=Scope(Kind.MIXED, "symbolic: Farkas certificates over all integers t, u, s, T and bounds a, b, c, d (finite or "
                "infinite); the union and the brute-force composition: exhaustive on [0, T), T ≤ 9 in the witness"),
    witness=_witness_composition,
    derived_from='the window algebra of proofs/dependency.py (`Windows`), by Farkas certificates and brute force',
)
def window_composition() -> None:
    """Each inclusion is a linear implication proved by a Farkas certificate (exact LP, then checked by expansion); exactness exhibits u = t + a or u = s − d, each case checked the same way; infinite bounds drop their hypotheses."""
    _composition_certificates()
    x3, y3 = Windows.of((-2, 0)), Windows.of((-1, 0))
    require(x3.then(y3) == Windows.of((-3, 0)), "the typing adds bounds: [−2, 0] ∘ [−1, 0] = [−3, 0]")
    require((SAME | Windows.of((-oo, 0))) == Windows.of((-oo, 0)), "s = t ∪ s ≤ t = s ≤ t")
    for T_ in range(1, 5):
        for spans in itertools.combinations([(lo, hi) for lo in BOUNDS[:-1] for hi in BOUNDS[1:] if lo <= hi], 2):
            w = Windows.of(*spans)
            require(_brute(w, T_) == {(p, q) for p in range(T_) for q in range(T_) if any(p + lo <= q <= p + hi for lo, hi in spans)},
                    f"the union {spans} is exact on [0, {T_})")


# -- every op's rule matches its definition ------------------------------------------------

RULE_T = 3


def instances(n: int) -> dict[str, list[Primitive]]:
    """Every registered primitive's own small instances at T = S = n (``Primitive.instances``:
    every mask family, every convolution padding)."""
    return {kind: cls.instances(n) for kind, cls in PRIMITIVES.items()}


def _witness_rules(examples: int) -> None:
    def check(case: tuple[str, int, int]) -> None:
        kind, which, T_ = case
        ops = instances(T_)[kind]
        op = ops[which % len(ops)]
        check_rules(op)

    for_all(st.tuples(st.sampled_from(sorted(instances(1))), st.integers(0, 20), st.integers(1, 5)), examples, check)


@theorem(
    name="dependency_rules_sound",
    title="every primitive's declared dependency rule covers what its definition reads",
    statement="For every registered primitive, each output entry's definition reads only input positions its rule "
    "allows: row-wise ops read row t; attention scores read Q row t and K row s (KeyRow); the masked softmax reads only "
    "allowed scores of row t and is identically 0 outside its mask (its support); the weighted sum reads V row s only "
    "through the weight A_ts (SupportOf A); a convolution reads its offset window; positional tables read no token. "
    "Every relation these rules, masks and supports use agrees with itself: its declared windows contain every pair "
    "it allows, and its allowed_array and indicator say what allowed says.",
    latex=r"y_{t\cdots} \text{ reads } x_{s\cdots} \Rightarrow (t, s) \in R_x,"
    r"\qquad s \notin \operatorname{supp}_t \Rightarrow y_{ts} \equiv 0",
    hypotheses=("the instances cover every mask family (causal, banded, full, key padding, intersection, a window) and "
                "every convolution padding for kernels ≤ 3",),
    scope=Scope(Kind.EXHAUSTIVE, f"every registered primitive, T = S = {RULE_T}, every output entry (read off the sympy "
                "definition); every relation on every pair of positions in [0, N)², N ≥ 8; the witness re-checks T = S ≤ 5"),
    witness=_witness_rules,
    derived_from="each registered primitive's own `definition` (sympy, every output entry) and `instances(n)`, against its "
    "declared `dependency()` and `support()`; each relation's own `allowed`, `allowed_array`, `indicator` and `spans`",
)
def dependency_rules_sound() -> None:
    """Every output entry of every instance is expanded from its definition and the input entries it reads are checked against the declared rule (and entries outside a support are checked to be 0); every relation read is checked against itself (proofs/definitions.py)."""
    table = instances(RULE_T)
    missing = sorted(kind for kind, ops in table.items() if not ops)
    if missing:
        raise ProofFailed(f"primitives {missing} give no instance (Primitive.instances); give one")
    for ops in table.values():
        for op in ops:
            check_rules(op)
            for rel in relations_of(op):
                check_relation(rel, where=f"{op.kind}: ")


# -- what the causality theorems rely on, checked against the definitions -------------------

OPS_T = 3
"""The sequence length at which the causality theorems check every op they rely on."""


def _gpt(n_layers: int, pattern: tuple[str, ...], width: int | None, **options: object) -> Architecture:
    return build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=n_layers, n_heads=2, attention=pattern,  # type: ignore[arg-type]
                               band_width=width, **options))  # type: ignore[arg-type]


def rely_on(archs: list[Architecture], masks: list[Relation], where: str) -> None:
    """The proof steps every causality theorem takes before it trusts the typing of ``archs``:
    every distinct op they use has rules that cover its definition and relations that agree
    with themselves (proofs/definitions.py, at T = S = 3), and every mask whose window the
    statement computes is exact (its windows are exactly the pairs it allows)."""
    check_ops(archs, OPS_T)
    for mask in masks:
        check_relation(mask, exact=True, where=f"{where}: ")


# -- causal at any depth -------------------------------------------------------------------


def _witness_causal(examples: int) -> None:
    def check(case: tuple[Config, int, int]) -> None:
        config, seed, where = case
        arch = build(config)
        theta = random_theta(arch, seed, std=0.5)
        rng = np.random.default_rng(seed)
        n_vocab = arch.dim("n_vocab")
        ids = rng.integers(0, n_vocab, size=2 + seed % 6)
        p = 1 + where % (len(ids) - 1)
        other = ids.copy()
        other[p] = (ids[p] + 1) % n_vocab
        a, b = reference.forward(arch, theta, ids), reference.forward(arch, theta, other)
        witness_check(np.array_equal(a[:p], b[:p]), f"changing token {p} moved an earlier logit [{config}]")

    drawn = decoder_configs("causal_at_any_depth", max_layers=3)
    for_all(st.tuples(drawn, seeds, st.integers(0, 100)), max(2, examples // 3), check)  # 2 forwards each


CAUSAL_MASKS: list[Relation] = [Causal(), *(Banded(w) for w in range(1, 7))]
DECODER_FAMILIES = tuple(f.name for f in families(theorem="causal_at_any_depth"))
"""The registered families whose records put them in the causality theorem's scope (every decoder
family by default, spec/architectures/registry.py); the theorem's body reads the records again
when it runs, so a family registered later is checked too."""


@theorem(
    name="causal_at_any_depth",
    title="every decoder-only architecture built from causal or banded masks is causal, at any depth",
    statement="If every rule in a DAG stays at or before t (row-wise, causal, banded, a window with hi ≤ 0, no dependence, "
    "and attention whose masks are causal or banded), then every value's row t depends only on input positions s ≤ t: "
    "composition adds the upper bounds (≤ 0 + ≤ 0), union and intersection keep the larger or smaller (≤ 0), and the "
    "key-axis rules route dependencies only through a mask or support with hi ≤ 0. A GPT block's relation is its "
    "mask's window, so n_layers blocks compose to a window [lo, 0] for every n_layers. The rules are those of the ops' "
    "definitions: each op's definition reads only what its rule says, and each mask allows exactly its windows.",
    latex=r"\forall \text{ rules } R:\ \operatorname{hi}(R) \le 0 \ \Rightarrow\ \forall L:\ "
    r"\operatorname{hi}\big(R_{\mathrm{out}} \circ R_{L} \circ \cdots \circ R_{1} \circ R_{\mathrm{in}}\big) \le 0",
    hypotheses=("the architecture is built from the spec's ops whose rules are causal (checked for GPT's ops)",
                "key padding is read as 'all keys' (sound): intersect it with a causal mask to stay causal"),
    scope=Scope(Kind.MIXED, "type preservation: symbolic (Farkas certificates, every bound); n_layers: symbolic by "
                "induction; the rules and masks relied on: every distinct op of the built GPTs checked against its sympy "
                f"definition at T = S = {OPS_T}, the masks causal and banded w ≤ 6 exact on [0, N)², N ≥ 15; block "
                "relations: every mask family (causal, banded w ≤ 6) on built blocks; whole models: built GPTs of depth "
                "≤ 4 for every attention pattern and every decoder family record's fixed instances; witness: a future token changed in max(2, ⌊n/3⌋) drawn models "
                "(n = examples) of every decoder family (each record's strategy), earlier logits identical bit for bit"),
    witness=_witness_causal,
    derived_from="the dependency typing (proofs/dependency.py) of GPTs built by `build_gpt`, whose every op's declared rules "
    "are first checked against that op's sympy `definition` and whose masks' windows against their own `allowed` and "
    "`indicator` (proofs/definitions.py); the induction on depth is symbolic",
    families=DECODER_FAMILIES,
    ops=('masked_softmax',),
)
def causal_at_any_depth() -> None:
    """First the declarations are checked against the definitions: every distinct op of the GPTs below (every attention pattern, band widths 1–6) reads only what its rule allows and is 0 outside its support (its sympy definition, entry by entry), and the causal and banded masks allow exactly their windows. Then type preservation: composition, union and intersection keep hi ≤ 0 (Farkas certificates). Each block's relation is computed by the typing (its mask's window); composing blocks adds lower bounds and keeps hi = 0 at every depth (symbolic induction step); built GPTs of every pattern, and the fixed instances of every family whose record puts it in this theorem's scope (spec/architectures/registry.py), are checked causal with no breaking node."""
    blocks = {mask: _gpt(1, ("banded",) if isinstance(mask, Banded) else ("dense",), mask.w if isinstance(mask, Banded) else None)
              for mask in CAUSAL_MASKS}
    models = {(pattern, n_layers): _gpt(n_layers, pattern, 2 if "banded" in pattern else None)
              for pattern in (("dense",), ("banded",), ("dense", "banded")) for n_layers in range(1, 5)}
    recorded = {name: build(config) for name, config in registry.instances(theorem="causal_at_any_depth").items()}
    rely_on([*blocks.values(), *models.values(), *recorded.values()], CAUSAL_MASKS, "causal_at_any_depth")
    h1, h2 = sympy.symbols("h1 h2", integer=True)
    require_entails([-h1, -h2], -(h1 + h2), "compose: hi₁ ≤ 0, hi₂ ≤ 0 ⇒ hi₁ + hi₂ ≤ 0")
    for chosen in (h1, h2):
        require_entails([-h1, -h2], -chosen, f"union / intersection: hi = {chosen} ≤ 0")
    for mask, arch in blocks.items():
        lo = 1 - mask.w if isinstance(mask, Banded) else -oo
        block = arch.nodes["blocks.0"].op
        if not isinstance(block, Composite):
            raise ProofFailed("blocks.0 is not a composite")
        got = relation(block.body)
        require(got == Windows.of((lo, 0)), f"the block with mask {mask!r} relates t to {got.text()}, expected [{lo}, 0]")
        require(windows(mask).causal(), f"{mask!r} is causal")
    L, lo_sum, lo = sympy.symbols("L sigma lo", integer=True)
    step = Windows.of((lo, 0)).then(Windows.of((lo_sum, 0)))
    require(step == Windows.of((lo + lo_sum, 0)), "induction step: [lo, 0] ∘ [Σ, 0] = [lo + Σ, 0], still ≤ 0")
    for label, arch in [*((f"{p} × {n}", a) for (p, n), a in models.items()), *recorded.items()]:
        verdict = causality(arch)
        require(verdict.causal and not verdict.breaks, f"{label}: {verdict.describe()}")
        for path, rules in type_graph(arch).rules.items():
            for port, rule in rules.items():
                require(isinstance(rule, (KeyRow, SupportOf)) or windows(rule).causal(), f"{path}.{port}: {rule!r} is causal")


# -- the receptive field of banded layers --------------------------------------------------


def _witness_receptive_field(examples: int) -> None:
    def check(case: tuple[int, int, int, int]) -> None:
        n_layers, w, T_, seed = case
        config = GPTConfig(n_vocab=9, n_ctx=12, d_model=4, n_layers=n_layers, n_heads=2, attention=("banded",), band_width=w)
        arch = build_gpt(config)
        theta = random_theta(arch, seed, std=0.5)
        ids = np.random.default_rng(seed).integers(0, 9, size=T_)
        base = reference.forward(arch, theta, ids)
        for p in range(T_):
            other = ids.copy()
            other[p] = (ids[p] + 1) % 9
            moved = np.any(reference.forward(arch, theta, other) != base, axis=1)
            want = np.array([t_ - n_layers * (w - 1) <= p <= t_ for t_ in range(T_)])
            witness_check(np.array_equal(moved, want), f"L={n_layers}, w={w}: token {p} moved rows {np.flatnonzero(moved)}, expected {np.flatnonzero(want)}")

    for_all(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 8), seeds), max(2, examples // 6), check)  # T + 1 forwards each


@theorem(
    name="banded_receptive_field",
    title="after L banded layers of width w, position t sees exactly t − L(w − 1) ≤ s ≤ t",
    statement="In a GPT whose every layer is banded with width w (each position attends to itself and the w − 1 before "
    "it), the logits at position t depend on exactly the tokens at t − L(w − 1) ≤ s ≤ t (and s ≥ 0): the typing "
    "computes this window, the composition of causal windows is exact, and with generic parameters each of these "
    "tokens does change the logits. One dense layer anywhere makes it s ≤ t. The band's window is the one its own "
    "definition allows (checked exact), and every op's rule covers its definition.",
    latex=r"R_L = \underbrace{[1-w,\,0] \circ \cdots \circ [1-w,\,0]}_{L} = [L(1-w),\ 0]:"
    r"\qquad t - L(w-1) \le s \le t",
    hypotheses=("every layer is banded with the same width w ≥ 1 (a dense layer gives [−∞, 0])",
                "'exactly' for the relation; that each token really matters needs generic parameters (the witness draws them)"),
    scope=Scope(Kind.MIXED, "symbolic in L and w (induction); the rules and masks relied on: every distinct op of the built "
                f"models checked against its sympy definition at T = S = {OPS_T}, the bands w ≤ 4 exact on [0, N)², "
                "N ≥ 11; built models: L ≤ 4, w ≤ 4, the typing gives exactly this window; witness: every token of "
                "max(2, ⌊n/6⌋) drawn models perturbed through the reference (L ≤ 3, w ≤ 3, T ≤ 8), the rows that move "
                "are exactly the window"),
    witness=_witness_receptive_field,
    derived_from="the dependency typing of banded GPTs built by `build_gpt`, after checking every op's rules against its sympy "
    "`definition` and each `Banded(w)`'s windows against its own `allowed` and `indicator` (exact); the induction in L and "
    "w is symbolic and window_composition makes it exact",
    families=("gpt",),
    ops=('masked_softmax',),
)
def banded_receptive_field() -> None:
    """The band of width w allows exactly the window [1 − w, 0] (its allowed and indicator on [0, N)²), and every op of the built models reads only what its rule says (its definition); then induction with symbolic L and w: [1 − w, 0] ∘ [L(1 − w), 0] = [(L + 1)(1 − w), 0]; exact by window_composition; the typing of built banded GPTs gives exactly this window."""
    models = {(n_layers, width): _gpt(n_layers, ("banded",), width) for n_layers in range(1, 5) for width in range(1, 5)}
    mixed = _gpt(3, ("banded", "dense"), 2)
    rely_on([*models.values(), mixed], [Banded(w) for w in range(1, 5)], "banded_receptive_field")
    for width in range(1, 5):
        require(windows(Banded(width)) == Windows.of((1 - width, 0)), f"Banded({width}) is the window [{1 - width}, 0]")
    L, w = sympy.symbols("L w", integer=True, positive=True)
    band = Windows.of((1 - w, 0))
    after = Windows.of((L * (1 - w), 0))
    require(Windows.of((1 * (1 - w), 0)) == band, "L = 1: one band")
    step = band.then(after)
    require(len(step.spans) == 1 and sympy.expand(step.spans[0][0] - (L + 1) * (1 - w)) == 0 and step.spans[0][1] == 0,
            "step: [1 − w, 0] ∘ [L(1 − w), 0] = [(L + 1)(1 − w), 0]")
    for (n_layers, width), arch in models.items():
        got = relation(arch, "logits", "ids")
        require(got == Windows.of((-n_layers * (width - 1), 0)), f"L={n_layers}, w={width}: the typing gives {got.text()}")
    require(relation(mixed, "logits", "ids") == Windows.of((-oo, 0)), "a dense layer anywhere gives s ≤ t")


# -- KV-cache decoding ---------------------------------------------------------------------

KV_T = 3
"""The full length at which prefill-then-extend is checked: every prefix k = 1 … KV_T − 1."""


KV_FAMILIES = tuple(f.name for f in families(theorem="kv_cache_equals_full_evaluation", decoding="kv-cache"))
"""The registered families in the KV-cache theorem's scope, read off their records (the scope text names them)."""


def kv_architectures() -> dict[str, Architecture]:
    """Small decoders of every registered family in the KV-cache theorem's scope: each family
    record's fixed instances (spec/architectures/registry.py), built — together they cover every
    primitive a decoder uses (:data:`KV_FAMILIES`)."""
    return {name: build(config) for name, config in registry.instances(theorem="kv_cache_equals_full_evaluation", decoding="kv-cache").items()}


@dataclass(frozen=True)
class Block:
    """Rows ``first … stop − 1`` of the value at ``path`` (keys 0 … stop − 1 for a T × S value)."""

    path: str
    first: int
    stop: int


class DefinitionRows:
    """spec/decoding.py's :class:`~spec.decoding.Rows` on the ops' sympy definitions.

    The full evaluation at length n is computed first, op by op along the plan, from each op's
    definition at T = S = n on *generic* inputs: every entry of every value a fresh symbol, except
    the entries the full evaluation makes identically 0 (a masked softmax outside its mask), which
    are 0. A value of :func:`spec.decoding.extend` is then a :class:`Block` of rows of a value of
    the full evaluation; :meth:`run` derives the step's rows from the op's definition at the
    step's length, reading only the rows the block of each input holds (a row-local input: the
    new rows; a cached one: every row so far), and requires them to equal the full evaluation's
    rows entry for entry. Equal on generic entries means equal for every value of them, so by
    induction along the plan (every input of a step equals the full evaluation's rows) each
    step's rows are the full evaluation's.

    ``op_at(step, length)`` is the step's op at a sequence length (an architecture's op bound at
    T = S = length); ``inputs`` gives each growing input's zero pattern at length n (generic: all
    False)."""

    def __init__(self, steps: decoding.Plan, n: int, op_at: Callable[[decoding.Step, int], Primitive],
                 inputs: Mapping[str, npt.NDArray[np.bool_]]) -> None:
        self.n = n
        self.op_at = op_at
        self.zero: dict[str, npt.NDArray[np.bool_]] = {f"input.{name}": inputs[name] for name in steps.inputs}
        self.full: dict[str, dict[tuple[int, ...], sympy.Expr]] = {}
        self._checked: set[Hashable] = set()
        for step in steps.steps:
            op = op_at(step, n)
            got = self._entries(step, op, {port: Block(src, 0, n) for port, src in step.sources.items()}, 0, n)
            shape = tuple(int(k) for k in op.output().shape)
            zero = np.zeros(shape, dtype=bool)
            for index, value in got.items():
                zero[index] = value == 0
            self.zero[step.path] = zero
            self.full[step.path] = got

    @staticmethod
    def of(arch: Architecture, steps: decoding.Plan, n: int) -> DefinitionRows:
        """For an architecture: its ops bound at T = S = length, its token ids generic."""
        dims = dict(arch.dims)

        def op_at(step: decoding.Step, length: int) -> Primitive:
            return bind(step.op, tuple(sorted({**dims, D.T: length, D.S: length}.items(), key=str)))

        return DefinitionRows(steps, n, op_at, {name: np.zeros((n,), dtype=bool) for name in steps.inputs})

    def _entries(self, step: decoding.Step, op: Primitive, blocks: Mapping[str, Block], first: int, length: int) -> dict[tuple[int, ...], sympy.Expr]:
        """Rows ``first … length − 1`` of ``op`` (bound at ``length``), each input entry a generic
        symbol or 0, refusing a read of a row its block does not hold."""
        ports = set(op.inputs())

        def entry(e: sympy.Indexed) -> sympy.Expr:
            name = str(e.base.label)
            index = tuple(int(i) for i in e.indices)
            if name not in ports:
                return sympy.Symbol(f"{name}{list(index)}", real=True)  # a parameter: generic
            block = blocks[name]
            if not block.first <= index[0] < block.stop:
                held = "the new rows only (row-local)" if name not in step.cached else "the cached rows and the new ones"
                raise ProofFailed(
                    f"step failed: {step.path} ({op.kind}) at length {length} reads row {index[0]} of its input {name}, but "
                    f"decoding holds rows {block.first}…{block.stop - 1} of it: {held}"
                )
            if self.zero[block.path][index]:
                return sympy.Integer(0)
            return sympy.Symbol(f"{name}{list(index)}", real=True)

        out = {}
        for index, value in entries(op).items():
            if first <= index[0] < length:
                out[index] = value.replace(lambda e: isinstance(e, sympy.Indexed), entry)
        return out

    def run(self, step: decoding.Step, length: int, first: int, inputs: Mapping[str, Block]) -> Block:
        for port, src in step.sources.items():
            block = inputs[port]
            want = (0 if port in step.cached else first, length)
            require(block.path == src and (block.first, block.stop) == want,
                    f"{step.path}.{port} is given rows {block.first}…{block.stop - 1} of {block.path}, but expected rows "
                    f"{want[0]}…{want[1] - 1} of {src}")
        op = self.op_at(step, length)
        key = (op, step.cached, first, length, tuple((port, self.zero[src].tobytes(), self.zero[src].shape) for port, src in sorted(step.sources.items())))
        if key not in self._checked:
            got = self._entries(step, op, inputs, first, length)
            full = self.full[step.path]
            for index, value in got.items():
                want_value = full[index]
                require(value == want_value or sympy.expand(value - want_value) == 0,
                        f"{step.path} ({op.kind}): entry {index} computed at length {length} from the rows decoding holds "
                        f"differs from the full evaluation at length {self.n}")
            self._checked.add(key)
        return Block(step.path, first, length)

    def append(self, kept: Block, new: Block) -> Block:
        require(kept.path == new.path and kept.first == 0 and kept.stop == new.first,
                f"the cache of {kept.path} holds rows {kept.first}…{kept.stop - 1}, but expected rows 0…{new.first - 1} before {new.first}")
        return Block(kept.path, 0, new.stop)


def prefill_then_extend(steps: decoding.Plan, rows: DefinitionRows, n: int) -> int:
    """For every k = 1 … n − 1: spec.decoding's prefill of k positions, then its extension by one
    more, checked step by step against the full evaluation at length n (:class:`DefinitionRows`).
    Returns how many step evaluations were checked."""
    for k in range(1, n):
        prefix = {name: Block(f"input.{name}", 0, k) for name in steps.inputs}
        outputs, cache = decoding.extend(steps, decoding.Cache(), prefix, k, rows)
        require(cache.length == k and all((b.first, b.stop) == (0, k) for b in outputs.values()), f"prefill of {k} rows")
        one = {name: Block(f"input.{name}", k, k + 1) for name in steps.inputs}
        outputs, cache = decoding.extend(steps, cache, one, 1, rows)
        require(cache.length == k + 1 and all((b.first, b.stop) == (k, k + 1) for b in outputs.values()), f"extend to row {k}")
        kept = {port for step in steps.steps for port in step.cached}
        require(not kept or bool(cache.kept), "the cache holds the cached inputs")
    return len(rows._checked)


def decode_architecture(arch: Architecture, n: int = 3) -> int:
    """:func:`prefill_then_extend` on the plan of a whole decoder (spec.decoding.plan)."""
    steps = decoding.plan(arch)
    return prefill_then_extend(steps, DefinitionRows.of(arch, steps, n), n)


def _causal_rules(op: Primitive) -> bool:
    """Every rule of ``op`` stays at or before t, and so does its support (a masked softmax's
    mask: its row rule is row-wise whatever the mask)."""
    support = op.support()
    rules_causal = all(isinstance(rule, (KeyRow, SupportOf)) or windows(rule).causal() for rule in op.dependency().values())
    return rules_causal and (support is None or windows(support).causal())


def _causal_instances() -> dict[str, list[Callable[[int], Primitive]]]:
    """Length-parametrised instances of every registered primitive whose rules are causal: each
    primitive's own instances (``Primitive.instances``) that keep their rules causal."""
    table: dict[str, list[Callable[[int], Primitive]]] = {}
    for kind, cls in PRIMITIVES.items():
        table[kind] = [
            lambda n, cls=cls, i=i: cls.instances(n)[i]  # type: ignore[misc]
            for i, op in enumerate(cls.instances(KV_T)) if _causal_rules(op)
        ]
    return table


def decode_op(make: Callable[[int], Primitive], n: int = KV_T) -> int:
    """:func:`prefill_then_extend` on one primitive alone (spec.decoding.single), every input
    growing with the sequence: generic, except the weights another input is read through
    (``SupportOf``), which come from a causal masked softmax and so are 0 above the diagonal."""
    op = make(n)
    steps = decoding.single(op)
    weights = {rule.port for rule in op.dependency().values() if isinstance(rule, SupportOf)}
    zero: dict[str, npt.NDArray[np.bool_]] = {}
    for port, ttype in op.inputs().items():
        shape = tuple(int(k) for k in ttype.shape)
        zero[port] = np.zeros(shape, dtype=bool)
        if port in weights:
            zero[port] = np.triu(np.ones(shape, dtype=bool), 1)

    def op_at(step: decoding.Step, length: int) -> Primitive:
        return make(length)

    return prefill_then_extend(steps, DefinitionRows(steps, n, op_at, zero), n)


class ReferenceRows:
    """spec/decoding.py's :class:`~spec.decoding.Rows` on reference/'s op functions: a value is
    (first row, float64 rows); a row an input does not hold is NaN (token ids: 0), so an op that
    reads it gives NaN in the rows it returns."""

    def __init__(self, arch: Architecture, theta: Mapping[str, np.ndarray]) -> None:
        self.arch, self.theta = arch, theta

    def run(self, step: decoding.Step, length: int, first: int, inputs: Mapping[str, tuple[int, np.ndarray]]) -> tuple[int, np.ndarray]:
        sizes = {**self.arch.dims, D.T: length, D.S: length}
        op = step.op.bind(sizes)
        arrays: dict[str, np.ndarray] = {}
        for port, (start, rows) in inputs.items():
            ttype = op.inputs()[port]
            shape = tuple(int(k) for k in ttype.shape)
            token = ttype.element is Element.TOKEN
            full = np.zeros(shape, dtype=np.int64) if token else np.full(shape, np.nan)
            full[start:start + len(rows)] = rows
            arrays[port] = full
        params = {p: np.asarray(ref.resolve(self.theta[ref.name], sizes), dtype=np.float64) for p, ref in step.node.params.items()}
        with np.errstate(invalid="ignore"):
            y = np.asarray(reference.REFERENCE[op.kind](op, **arrays, **params))
        return first, y[first:length]

    def append(self, kept: tuple[int, np.ndarray], new: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
        return kept[0], np.concatenate([kept[1], new[1]], axis=0)


def _witness_kv(examples: int) -> None:
    def check(case: tuple[Config, int]) -> None:
        config, seed = case
        arch = build(config)
        theta = random_theta(arch, seed, std=0.5)
        ids = np.random.default_rng(seed).integers(0, arch.dim("n_vocab"), size=2 + seed % 6)
        full = reference.forward(arch, theta, ids)
        steps = decoding.plan(arch)
        rows = ReferenceRows(arch, theta)
        k = 1 + seed % (len(ids) - 1)
        outputs, cache = decoding.extend(steps, decoding.Cache(), {"ids": (0, ids[:k])}, k, rows)
        got = [outputs["logits"][1]]
        for t_ in range(k, len(ids)):
            outputs, cache = decoding.extend(steps, cache, {"ids": (t_, ids[t_:t_ + 1])}, 1, rows)
            got.append(outputs["logits"][1])
        decoded = np.concatenate(got, axis=0)
        witness_check(bool(np.all(np.isfinite(decoded))), f"an extension read a row decoding does not hold [{config}]")
        close(decoded, full, f"prefill {k} then extend vs the full evaluation [{config}]", 1e-12)

    for_all(st.tuples(decoder_configs("kv_cache_equals_full_evaluation"), seeds), max(2, examples // 3), check)


@theorem(
    name="kv_cache_equals_full_evaluation",
    title="KV-cache decoding equals full evaluation: prefill, then extend by one row with the cached inputs",
    statement="Decode as spec/decoding.py defines it: run the prompt of k positions once, keeping every op input its rule "
    "reads across positions (the keys of attention scores, the values of a weighted sum, a convolution's window); then "
    "run position k alone, each op computing only row k — from row k of its row-local inputs and rows 0 … k of its "
    "cached ones. The logits (and every value) of row k equal row k of the full evaluation of the whole sequence, and "
    "the prompt's rows equal its first k rows.",
    latex=r"\mathrm{extend}\big(\mathrm{prefill}(\mathrm{ids}_{0:k}),\ \mathrm{ids}_k\big) = f_\theta(\mathrm{ids}_{0:T})_{k},"
    r"\qquad \mathrm{prefill}(\mathrm{ids}_{0:k}) = f_\theta(\mathrm{ids}_{0:T})_{0:k}",
    hypotheses=("the architecture reads one sequence (a decoder)",
                "the cached inputs are exactly those whose rule is not row-local (Relation.row_local), as fast/ caches them",
                "for a primitive checked alone: weights another input is read through (SupportOf) come from a causal masked "
                "softmax, so they are 0 above the diagonal (in whole architectures this is derived, not assumed)"),
    scope=Scope(Kind.EXHAUSTIVE, f"full length T = {KV_T}, every prefix k = 1 … {KV_T - 1}: every registered primitive alone "
                "(each of its own instances whose rules are causal), and every op of the fixed instances of every decoder "
                f"family's record ({', '.join(KV_FAMILIES)}: each record's instances exercise every option of its family that "
                "changes the graph); every entry generic (a symbol per entry of every value, "
                "0 where the definition makes it 0); witness: drawn models of every decoder family (each record's strategy), "
                "spec.decoding on reference/'s op functions vs the reference's full forward"),
    witness=_witness_kv,
    derived_from="spec/decoding.py's `plan` (cached inputs from `Relation.row_local()`) and `extend`, run on every op's sympy "
    "`definition` (proofs.theorems.causality.DefinitionRows) against the full evaluation from the same definitions",
    ops=("masked_softmax",),
    families=DECODER_FAMILIES,
)
def kv_cache_equals_full_evaluation() -> None:
    """spec.decoding.extend runs the prefill and the one-row extension with DefinitionRows — for every registered primitive alone (spec.decoding.single) and for whole small decoders of every family (spec.decoding.plan): every step's rows are derived from its op's definition at the step's length, reading only the rows the cache and the new row hold (a read of any other row fails the step), and compared entry for entry with the full evaluation's rows from the same definition at length T, on generic entries (a fresh symbol each; 0 where the full evaluation's definition gives 0, e.g. a masked softmax outside its mask). Equal generic rows at every step give, by induction along the plan, equal values for every θ and every token."""
    table = _causal_instances()
    missing = sorted(kind for kind, makers in table.items() if not makers)
    if missing:
        raise ProofFailed(f"primitives {missing} have no instance with causal rules (Primitive.instances); give one")
    for kind, makers in table.items():
        for make in makers:
            try:
                decode_op(make, KV_T)
            except ProofFailed as error:
                raise ProofFailed(f"{kind} alone: {error}") from None
    for name, arch in kv_architectures().items():
        try:
            decode_architecture(arch, KV_T)
        except ProofFailed as error:
            raise ProofFailed(f"{name}: {error}") from None


# -- ConvGPT's reducer ----------------------------------------------------------------------
# The witness models are ConvGPTs (spec/architectures/conv_gpt.py: conv_gpt), small: two blocks at
# width d, the reducer ``reducers.0`` (a convolution over positions, d → d/2), a block at d/2.


def _witness_conv(examples: int) -> None:
    def check(case: tuple[int, int, int]) -> None:
        kernel, seed, T_ = case
        for pad_left, causal in ((kernel - 1, True), ((kernel - 1) // 2, kernel == 1)):
            arch = conv_gpt(kernel, pad_left)
            theta = random_theta(arch, seed, std=0.5)
            ids = np.random.default_rng(seed).integers(0, 9, size=T_)
            base = reference.forward(arch, theta, ids)
            other = ids.copy()
            other[-1] = (ids[-1] + 1) % 9
            moved = np.any(reference.forward(arch, theta, other)[:-1] != base[:-1])
            witness_check(moved != causal, f"kernel {kernel}, padding ({pad_left}, {kernel - 1 - pad_left}): changing the last token "
                          f"{'moved' if moved else 'did not move'} an earlier logit")

    for_all(st.tuples(st.sampled_from([1, 3, 5]), seeds, st.integers(2, 8)), max(2, examples // 6), check)  # 4 forwards each


@theorem(
    name="conv_reducer_breaks_causality",
    title="a ConvGPT-style reducer with kernel > 1 and symmetric padding breaks causality, and the typing names it",
    statement="A 1-D convolution over positions with kernel k and left padding p reads the window [−p, k − 1 − p]. With "
    "k = 1 and no padding (ConvGPT as published) it is row-wise and equals the affine map; with all padding on the left "
    "(p = k − 1) it stays causal and widens the receptive field; with symmetric padding (k = 3, p = 1) position t reads "
    "t + 1, so the model is not causal — the typing says so and names the node where causality is lost: the reducer.",
    latex=r"\mathrm{conv}_{k,p}:\ [-p,\ k-1-p];\qquad k = 3, p = 1:\ R_\mathrm{model} = \{s \le t + 1\} \not\subseteq \{s \le t\}",
    hypotheses=("the reducer sits between causal blocks, as in ConvGPT (the witnesses are ConvGPTs of the registered family)",),
    scope=Scope(Kind.MIXED, "kernel 1 = affine: symbolic in every width; the typing: exhaustive over built ConvGPTs "
                "with k ∈ {1, 2, 3, 5} and every padding; witness: the last token changed in max(2, ⌊n/6⌋) drawn "
                "models moves an earlier logit exactly when the padding is not all on the left"),
    witness=_witness_conv,
    derived_from="the dependency typing of ConvGPTs built by `conv_gpt` (after checking their ops' rules against their definitions and their masks against themselves), and the definitions of `Conv1d` and `Affine`",
    ops=('conv1d',),
)
def conv_reducer_breaks_causality() -> None:
    """Every op of the ConvGPTs (every kernel ≤ 3 and padding) is checked against its definition first (proofs/definitions.py); then the typing of ConvGPT-style models with every kernel/padding: causal exactly when all padding is on the left, and otherwise the only node named is the reducer; kernel 1 equals the affine map (sum normal form)."""
    check_ops([conv_gpt(kernel, pad_left) for kernel in (1, 2, 3) for pad_left in range(kernel)], OPS_T)
    symmetric = causality(conv_gpt(3, 1))
    require(not symmetric.causal, f"k = 3, padding (1, 1) is not causal: {symmetric.describe()}")
    require([path for path, _ in symmetric.breaks] == ["reducers.0"], f"the typing names the reducer: {symmetric.breaks}")
    require(symmetric.relation == Windows.of((-oo, 1)), f"output t depends on s ≤ t + 1: {symmetric.relation.text()}")
    for kernel in (1, 2, 3, 5):
        for pad_left in range(kernel):
            verdict = causality(conv_gpt(kernel, pad_left))
            causal = pad_left == kernel - 1
            require(verdict.causal == causal, f"k={kernel}, pad_left={pad_left}: causal={verdict.causal}, expected {causal}")
            require(causal or [p for p, _ in verdict.breaks] == ["reducers.0"], f"k={kernel}, pad_left={pad_left}: names the reducer")
    d_in, d_out = D.d_model, D.d_mlp
    x = sympy.IndexedBase("x", shape=(D.T, d_in))
    W3, W2, b = sympy.IndexedBase("W", shape=(1, d_in, d_out)), sympy.IndexedBase("V", shape=(d_in, d_out)), sympy.IndexedBase("b", shape=(d_out,))
    conv = resolve_piecewise(Conv1d(d_in, d_out, 1).definition((t, j), {"x": x}, {"W": W3, "b": b}), t, D.T)  # 0 ≤ t < T
    affine = Affine(d_in, d_out).definition((t, j), {"x": x}, {"W": W2, "b": b})
    require_sums_equal(conv, replace_entries(affine, W2, lambda i: W3[0, i[0], i[1]]), "kernel 1, no padding: conv = x W[0] + b")
    require(windows(Conv1d(2, 2, 1).dependency()["x"]) == SAME and windows(Conv1d(2, 2, 3, 1, 1).dependency()["x"]) != ALL, "rules")
