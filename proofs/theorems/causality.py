"""Causality by typing: the rules, their composition, causality at any depth, the receptive
field of banded layers, KV-cache decoding, and a ConvGPT-style reducer that breaks it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeAlias

import numpy as np
import sympy
from hypothesis import strategies as st

import reference
from proofs.algebra import entries_as_symbols, replace_entries, require_entails, require_sums_equal, resolve_piecewise
from proofs.core import Kind, ProofFailed, Scope, for_all, require, theorem, witness_check
from proofs.dependency import ALL, SAME, Windows, causality, relation, type_graph, windows
from proofs.theorems._common import gpt_configs, j, seeds, t
from spec import dims as D
from spec.architectures.conv_gpt import conv_gpt
from spec.architectures.gpt import GPTConfig, build_gpt
from spec.graph import Composite
from spec.masks import Banded, Causal, KeyRow, SupportOf, WithinRow
from spec.op import PRIMITIVES, Primitive
from spec.ops import (
    Affine,
    Conv1d,
)
from spec.theta import random_theta
from spec.types import Axis

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


def _entries(op: Primitive) -> dict[tuple[int, ...], sympy.Expr]:
    bases = {name: sympy.IndexedBase(name, shape=ttype.shape) for name, ttype in op.inputs().items()}
    params = {name: sympy.IndexedBase(name, shape=shape) for name, shape in op.params().items()}
    shape = tuple(int(x) for x in op.output().shape)
    return {
        index: sympy.sympify(op.definition(tuple(sympy.Integer(i) for i in index), bases, params)).doit()
        for index in itertools.product(*(range(k) for k in shape))
    }


def _reads(entry: sympy.Expr, port: str) -> list[tuple[int, ...]]:
    """The indices of the input ``port``'s entries an expression reads."""
    return [tuple(int(i) for i in e.indices) for e in entry.atoms(sympy.Indexed) if str(e.base.label) == port]


def check_rules(op: Primitive) -> None:
    """Every entry of ``op``'s definition reads only what its declared rules allow."""
    rules = op.dependency()
    out = op.output()
    pairs_out = Axis.KEY in out.axes
    support = op.support()
    where = f"{op.kind} {op!r}"
    for index, entry in _entries(op).items():
        t_, s_ = index[0], (index[1] if pairs_out else None)
        if support is not None and s_ is not None and not support.allowed(t_, s_):
            require(entry == 0, f"{where}: entry {index} is outside the support {support!r}, so it must be 0")
        for port, rule in rules.items():
            in_type = op.inputs()[port]
            for read in _reads(entry, port):
                r = read[0]
                if isinstance(rule, SupportOf):
                    weight = sympy.Indexed(sympy.IndexedBase(rule.port, shape=op.inputs()[rule.port].shape), t_, r)
                    require(not entry.xreplace({weight: 0}).has(sympy.Indexed(sympy.IndexedBase(port, shape=in_type.shape), *read)),
                            f"{where}: entry {index} reads {port}{list(read)} other than through {rule.port}[{t_}, {r}]")
                elif isinstance(rule, KeyRow) and pairs_out:
                    require(r == s_, f"{where}: entry {index} reads {port} row {r}, but KeyRow allows row {s_} only")
                elif isinstance(rule, WithinRow):
                    require(r == t_ and rule.mask.allowed(t_, read[1]), f"{where}: entry {index} reads {port}{list(read)} outside row {t_} ∩ the mask")
                else:
                    require(rule.allowed(t_, r), f"{where}: entry {index} reads {port} row {r}, outside {rule!r}")


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
    "through the weight A_ts (SupportOf A); a convolution reads its offset window; positional tables read no token.",
    latex=r"y_{t\cdots} \text{ reads } x_{s\cdots} \Rightarrow (t, s) \in R_x,"
    r"\qquad s \notin \operatorname{supp}_t \Rightarrow y_{ts} \equiv 0",
    hypotheses=("the instances cover every mask family (causal, banded, full, key padding, intersection, a window) and "
                "every convolution padding for kernels ≤ 3",),
    scope=Scope(Kind.EXHAUSTIVE, f"every registered primitive, T = S = {RULE_T}, every output entry (read off the sympy "
                "definition); the witness re-checks T = S ≤ 5"),
    witness=_witness_rules,
)
def dependency_rules_sound() -> None:
    """Every output entry of every instance is expanded from its definition and the input entries it reads are checked against the declared rule (and entries outside a support are checked to be 0)."""
    table = instances(RULE_T)
    missing = sorted(kind for kind, ops in table.items() if not ops)
    if missing:
        raise ProofFailed(f"primitives {missing} give no instance (Primitive.instances); give one")
    for ops in table.values():
        for op in ops:
            check_rules(op)


# -- causal at any depth -------------------------------------------------------------------


def _witness_causal(examples: int) -> None:
    def check(case: tuple[GPTConfig, int, int]) -> None:
        config, seed, where = case
        arch = build_gpt(config)
        theta = random_theta(arch, seed, std=0.5)
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, config.n_vocab, size=2 + seed % 6)
        p = 1 + where % (len(ids) - 1)
        other = ids.copy()
        other[p] = (ids[p] + 1) % config.n_vocab
        a, b = reference.forward(arch, theta, ids), reference.forward(arch, theta, other)
        witness_check(np.array_equal(a[:p], b[:p]), f"changing token {p} moved an earlier logit [{config}]")

    for_all(st.tuples(gpt_configs(max_layers=3), seeds, st.integers(0, 100)), max(2, examples // 3), check)  # 2 forwards each


@theorem(
    name="causal_at_any_depth",
    title="every decoder-only architecture built from causal or banded masks is causal, at any depth",
    statement="If every rule in a DAG stays at or before t (row-wise, causal, banded, a window with hi ≤ 0, no dependence, "
    "and attention whose masks are causal or banded), then every value's row t depends only on input positions s ≤ t: "
    "composition adds the upper bounds (≤ 0 + ≤ 0), union and intersection keep the larger or smaller (≤ 0), and the "
    "key-axis rules route dependencies only through a mask or support with hi ≤ 0. A GPT block's relation is its "
    "mask's window, so n_layers blocks compose to a window [lo, 0] for every n_layers.",
    latex=r"\forall \text{ rules } R:\ \operatorname{hi}(R) \le 0 \ \Rightarrow\ \forall L:\ "
    r"\operatorname{hi}\big(R_{\mathrm{out}} \circ R_{L} \circ \cdots \circ R_{1} \circ R_{\mathrm{in}}\big) \le 0",
    hypotheses=("the architecture is built from the spec's ops whose rules are causal (checked for GPT's ops)",
                "key padding is read as 'all keys' (sound): intersect it with a causal mask to stay causal"),
    scope=Scope(Kind.MIXED, "type preservation: symbolic (Farkas certificates, every bound); n_layers: symbolic by "
                "induction; block relations: every mask family (causal, banded w ≤ 6) on built blocks; whole models: "
                "built GPTs of depth ≤ 4 for every attention pattern; witness: a future token changed in max(2, ⌊n/3⌋) "
                "drawn GPTs (n = examples), earlier logits identical bit for bit"),
    witness=_witness_causal,
)
def causal_at_any_depth() -> None:
    """Type preservation: composition, union and intersection keep hi ≤ 0 (Farkas certificates). Each block's relation is computed by the typing (its mask's window); composing blocks adds lower bounds and keeps hi = 0 at every depth (symbolic induction step); built GPTs of every pattern are checked causal with no breaking node."""
    h1, h2 = sympy.symbols("h1 h2", integer=True)
    require_entails([-h1, -h2], -(h1 + h2), "compose: hi₁ ≤ 0, hi₂ ≤ 0 ⇒ hi₁ + hi₂ ≤ 0")
    for chosen in (h1, h2):
        require_entails([-h1, -h2], -chosen, f"union / intersection: hi = {chosen} ≤ 0")
    for mask, lo in [(Causal(), -oo)] + [(Banded(w), 1 - w) for w in range(1, 7)]:
        config = GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=2,
                           attention=("banded",) if isinstance(mask, Banded) else ("dense",),
                           band_width=mask.w if isinstance(mask, Banded) else None)
        block = build_gpt(config).nodes["blocks.0"].op
        if not isinstance(block, Composite):
            raise ProofFailed("blocks.0 is not a composite")
        got = relation(block.body)
        require(got == Windows.of((lo, 0)), f"the block with mask {mask!r} relates t to {got.text()}, expected [{lo}, 0]")
        require(windows(mask).causal(), f"{mask!r} is causal")
    L, lo_sum, lo = sympy.symbols("L sigma lo", integer=True)
    step = Windows.of((lo, 0)).then(Windows.of((lo_sum, 0)))
    require(step == Windows.of((lo + lo_sum, 0)), "induction step: [lo, 0] ∘ [Σ, 0] = [lo + Σ, 0], still ≤ 0")
    for pattern in (("dense",), ("banded",), ("dense", "banded")):
        for n_layers in range(1, 5):
            arch = build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=n_layers, n_heads=2, attention=pattern,
                                       band_width=2 if "banded" in pattern else None))
            verdict = causality(arch)
            require(verdict.causal and not verdict.breaks, f"{pattern} × {n_layers}: {verdict.describe()}")
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
    "tokens does change the logits. One dense layer anywhere makes it s ≤ t.",
    latex=r"R_L = \underbrace{[1-w,\,0] \circ \cdots \circ [1-w,\,0]}_{L} = [L(1-w),\ 0]:"
    r"\qquad t - L(w-1) \le s \le t",
    hypotheses=("every layer is banded with the same width w ≥ 1 (a dense layer gives [−∞, 0])",
                "'exactly' for the relation; that each token really matters needs generic parameters (the witness draws them)"),
    scope=Scope(Kind.MIXED, "symbolic in L and w (induction); built models: L ≤ 4, w ≤ 4, the typing gives exactly this "
                "window; witness: every token of max(2, ⌊n/6⌋) drawn models perturbed through the reference (L ≤ 3, "
                "w ≤ 3, T ≤ 8), the rows that move are exactly the window"),
    witness=_witness_receptive_field,
)
def banded_receptive_field() -> None:
    """Induction with symbolic L and w: [1 − w, 0] ∘ [L(1 − w), 0] = [(L + 1)(1 − w), 0]; exact by window_composition; the typing of built banded GPTs gives exactly this window."""
    L, w = sympy.symbols("L w", integer=True, positive=True)
    band = Windows.of((1 - w, 0))
    after = Windows.of((L * (1 - w), 0))
    require(Windows.of((1 * (1 - w), 0)) == band, "L = 1: one band")
    step = band.then(after)
    require(len(step.spans) == 1 and sympy.expand(step.spans[0][0] - (L + 1) * (1 - w)) == 0 and step.spans[0][1] == 0,
            "step: [1 − w, 0] ∘ [L(1 − w), 0] = [(L + 1)(1 − w), 0]")
    for n_layers in range(1, 5):
        for width in range(1, 5):
            arch = build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=n_layers, n_heads=2, attention=("banded",), band_width=width))
            got = relation(arch, "logits", "ids")
            require(got == Windows.of((-n_layers * (width - 1), 0)), f"L={n_layers}, w={width}: the typing gives {got.text()}")
    mixed = build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=3, n_heads=2, attention=("banded", "dense"), band_width=2))
    require(relation(mixed, "logits", "ids") == Windows.of((-oo, 0)), "a dense layer anywhere gives s ≤ t")


# -- KV-cache decoding ---------------------------------------------------------------------

PREFIX_T = 4


def _prefix_local(op_at: Callable[[int], Primitive], T_: int) -> None:
    """Row t of the op at length T equals row t of the op at length t + 1 (same entries). Weights
    another port reads through their support (SupportOf) have a causal support — they come from
    a causal masked softmax — so their entries (t', s') with s' > t' are 0."""
    weights = {rule.port for rule in op_at(T_).dependency().values() if isinstance(rule, SupportOf)}

    def settle(entry: sympy.Expr) -> sympy.Expr:
        for port in weights:
            entry = entry.replace(
                lambda e: isinstance(e, sympy.Indexed) and str(e.base.label) == port and int(e.indices[1]) > int(e.indices[0]),
                lambda e: sympy.Integer(0),
            )
        return entries_as_symbols(entry)

    full = _entries(op_at(T_))
    for t_ in range(T_):
        short = _entries(op_at(t_ + 1))
        for index, entry in full.items():
            if index[0] != t_ or (len(index) > 1 and op_at(T_).output().axes[1] is Axis.KEY and index[1] > t_):
                continue
            require(settle(entry) == settle(short[index]), f"{op_at(T_).kind}: entry {index} at length {T_} differs from length {t_ + 1}")


def _causal_rules(op: Primitive) -> bool:
    """Every rule of ``op`` stays at or before t, and so does its support (a masked softmax's
    mask: its row rule is row-wise whatever the mask)."""
    support = op.support()
    rules_causal = all(isinstance(rule, (KeyRow, SupportOf)) or windows(rule).causal() for rule in op.dependency().values())
    return rules_causal and (support is None or windows(support).causal())


def _causal_instances() -> dict[str, list[Callable[[int], Primitive]]]:
    """Length-parametrised instances of every primitive whose rules are causal: each
    primitive's own instances (``Primitive.instances``) that keep their rules causal."""
    table: dict[str, list[Callable[[int], Primitive]]] = {}
    for kind, cls in PRIMITIVES.items():
        table[kind] = [
            lambda n, cls=cls, i=i: cls.instances(n)[i]  # type: ignore[misc]
            for i, op in enumerate(cls.instances(PREFIX_T)) if _causal_rules(op)
        ]
    return table


def _witness_kv(examples: int) -> None:
    def check(case: tuple[GPTConfig, int]) -> None:
        config, seed = case
        arch = build_gpt(config)
        theta = random_theta(arch, seed, std=0.5)
        ids = np.random.default_rng(seed).integers(0, config.n_vocab, size=1 + seed % 7)
        full = reference.forward(arch, theta, ids)
        for k in range(1, len(ids) + 1):
            witness_check(np.array_equal(reference.forward(arch, theta, ids[:k]), full[:k]), f"prefix {k} differs from the full rows [{config}]")

    for_all(st.tuples(gpt_configs(max_layers=2), seeds), max(2, examples // 6), check)  # T + 1 forwards each


@theorem(
    name="kv_cache_equals_full_evaluation",
    title="KV-cache decoding equals full evaluation (causality + ops that read only their rows)",
    statement="For a causal architecture whose ops compute row t from the input rows their rule allows (and nothing else "
    "that depends on the sequence length), the rows 0 … t of f(ids) are f(ids[0 … t]): by induction along the DAG, "
    "every value's rows ≤ t are the same on the sequence and on its prefix. Decoding with a KV cache computes row t "
    "from the cached keys and values of rows < t and the new token — the prefix evaluation — so it equals the full "
    "evaluation row by row.",
    latex=r"\forall t < T:\quad f_\theta(\mathrm{ids}_{0:T})_{0:t+1} = f_\theta(\mathrm{ids}_{0:t+1})",
    hypotheses=("the architecture is causal by typing (causal_at_any_depth)",
                "each op is prefix-local: its row t at length T equals its row t at length t + 1 (checked per op)"),
    scope=Scope(Kind.MIXED, f"causality: by the typing (symbolic in depth); prefix locality: exhaustive for every registered "
                f"primitive with a causal rule, T ≤ {PREFIX_T}, every row; witness: every prefix of max(2, ⌊n/6⌋) "
                "drawn GPTs through the reference, bit for bit"),
    witness=_witness_kv,
)
def kv_cache_equals_full_evaluation() -> None:
    """Every primitive with a causal rule is checked prefix-local from its definition (row t at length T is entry-for-entry row t at length t + 1, weights read through their support being causal); with the typing's causality, induction along the DAG gives the prefix property."""
    table = _causal_instances()
    missing = sorted(kind for kind, makers in table.items() if not makers)
    if missing:
        raise ProofFailed(f"primitives {missing} have no instance with causal rules (Primitive.instances); give one")
    for kind, makers in table.items():
        for make in makers:
            for rule in make(PREFIX_T).dependency().values():
                require(isinstance(rule, (KeyRow, SupportOf)) or windows(rule).causal(), f"{kind}: {rule!r} is causal")
            _prefix_local(make, PREFIX_T)
    require(causality(build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=2, n_heads=2, attention=("dense", "banded"), band_width=2))).causal,
            "a GPT is causal by typing")


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
)
def conv_reducer_breaks_causality() -> None:
    """The typing of ConvGPT-style models with every kernel/padding: causal exactly when all padding is on the left, and otherwise the only node named is the reducer; kernel 1 equals the affine map (sum normal form)."""
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
