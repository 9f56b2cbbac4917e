"""proofs/: every theorem holds (proof and witness); proofs can fail — deliberately false
statements and mutated spec ops make them fail; the dependency typing; the generated docs; the
`gptspec prove` command."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import sympy
from hypothesis import settings

import fast
import reference
from gptspec.prove_cli import main as prove_main
from proofs import THEOREMS, ProofFailed, Windows, causality, relation
from proofs.algebra import replace_entries, require_entails, require_sums_equal
from proofs.core import Kind, Scope, Theorem, require, require_zero
from proofs.dependency import SAME, type_graph
from proofs.docs import PATH, render
from proofs.runner import run_one
from proofs.theorems import attention, layer_norm, softmax
from proofs.theorems import causality as causality_theorems
from proofs.theorems._common import IndicatorMask, attention_only, index, s, t

index_ = index
from spec import GPTConfig, build_gpt
from spec import dims as D
from spec.graph import ParamRef
from spec.masks import Causal, Full, RowWise, Window
from spec.ops import Affine, AttentionScores, Conv1d, LayerNorm, MaskedSoftmax
from spec.theta import random_theta

EXAMPLES = settings.default.max_examples


@pytest.mark.parametrize("name", list(THEOREMS))
def test_theorem_holds(name: str) -> None:
    result = run_one(THEOREMS[name], EXAMPLES)
    assert result.holds, f"{name}: {result.result}"


def test_every_theorem_states_its_scope_and_hypotheses() -> None:
    from spec.architectures.registry import FAMILIES
    from spec.op import PRIMITIVES

    for thm in THEOREMS.values():
        assert thm.statement and thm.statement_latex and thm.hypotheses and thm.scope.detail, thm.name
        assert thm.prove.__doc__, f"{thm.name}: the proof has no docstring (its idea, shown in docs/proofs.md)"
        assert len(thm.derived_from) > 20, f"{thm.name}: say exactly what the proof derives the statement from (Theorem.derived_from)"
        assert set(thm.ops) <= set(PRIMITIVES) and set(thm.families) <= set(FAMILIES), thm.name


# -- no re-typed subjects: the theorems read the code they are about ------------------------


def test_a_column_major_w_o_view_fails_the_heads_theorem(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ParamRef.resolve

    def column_major(self: ParamRef, array: np.ndarray, dims: Mapping[sympy.Symbol, int]) -> np.ndarray:
        if self.reshape is None:
            return original(self, array, dims)
        return np.asarray(original(dataclasses.replace(self, reshape=None), array, dims)).reshape(
            tuple(int(sympy.sympify(d).subs(dims)) for d in self.reshape), order="F")

    monkeypatch.setattr(ParamRef, "resolve", column_major)
    with pytest.raises(ProofFailed, match="ParamRef.resolve reads W_O"):
        attention.heads_concat_then_project.prove()


def test_an_untransposed_tied_view_fails_the_tied_theorem(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ParamRef.resolve

    def no_transpose(self: ParamRef, array: np.ndarray, dims: Mapping[sympy.Symbol, int]) -> np.ndarray:
        out = original(self, array, dims)
        return np.asarray(out).T.reshape(np.shape(out)) if self.transpose else out  # the right shape, the wrong entries

    monkeypatch.setattr(ParamRef, "resolve", no_transpose)
    with pytest.raises(ProofFailed, match="ParamRef.resolve gives W_Eᵀ"):
        THEOREMS["tied_unembedding"].prove()


def test_an_empty_row_of_one_over_s_fails_the_finite_mask_theorem(monkeypatch: pytest.MonkeyPatch) -> None:
    original = MaskedSoftmax.definition

    def uniform_when_empty(self: MaskedSoftmax, index: tuple[sympy.Expr, ...], inputs: Mapping[str, sympy.IndexedBase],
                           params: Mapping[str, sympy.IndexedBase]) -> sympy.Expr:
        y = original(self, index, inputs, params)
        return sympy.Piecewise((y.args[0][0], y.args[0][1]), (1 / inputs["x"].shape[1], True)) if isinstance(y, sympy.Piecewise) else y

    monkeypatch.setattr(MaskedSoftmax, "definition", uniform_when_empty)
    with pytest.raises(ProofFailed, match="on a row with A_t = ∅ is 0"):
        THEOREMS["finite_mask_constant"].prove()


def test_the_online_theorem_runs_the_recurrence_fast_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from spec import online_softmax

    def forgetful(state: online_softmax.State[Any], x: Any, v: Any, ops: online_softmax.Ops[Any]) -> online_softmax.State[Any]:
        m_new = ops.rowmax(x)
        if state.m is not None:
            m_new = ops.maximum(m_new, state.m)
        shift = ops.finite_or_zero(m_new)
        p = ops.exp_shifted(x, shift)
        block_l, block_acc = ops.rowsum(p), ops.weighted(p, v)
        if state.m is None or state.l is None:
            return online_softmax.State(m_new, block_l, block_acc)
        rescale = ops.exp_shifted(state.m, shift)
        return online_softmax.State(m_new, ops.scale_add(state.l, rescale, block_l), block_acc)  # acc forgets the earlier blocks

    monkeypatch.setattr(online_softmax, "step", forgetful)
    with pytest.raises(ProofFailed):
        softmax.online_softmax.prove()


# -- proofs can fail: false statements ----------------------------------------------------


def test_a_false_identity_fails_require_zero() -> None:
    y = softmax.softmax_entry(IndicatorMask(), t, s)
    scaled = replace_entries(y, softmax.x, lambda i: 2 * softmax.x[i])  # softmax is not scale-invariant
    with pytest.raises(ProofFailed, match=r"softmax\(2x\) = softmax\(x\)"):
        require_zero(scaled - y, "softmax(2x) = softmax(x)")


def test_a_false_sum_identity_fails_the_normal_form() -> None:
    x = sympy.IndexedBase("x", shape=(D.T, D.d_model))
    Wq, Wk = (sympy.IndexedBase(n, shape=(D.d_model, D.d_head)) for n in ("W_Q", "W_K"))
    Q, K = sympy.IndexedBase("Q", shape=(D.T, D.d_head)), sympy.IndexedBase("K", shape=(D.S, D.d_head))
    scores = AttentionScores(D.d_head, 1).definition((t, s), {"Q": Q, "K": K}, {})
    scores = replace_entries(scores, Q, lambda i: Affine(D.d_model, D.d_head, False).definition(i, {"x": x}, {"W": Wq}))
    scores = replace_entries(scores, K, lambda i: Affine(D.d_model, D.d_head, False).definition(i, {"x": x}, {"W": Wk}))
    a, b, k = index("a"), index("b"), index("k")
    swapped = sympy.Sum(x[t, a] * sympy.Sum(Wq[a, k] * Wk[b, k], (k, 0, D.d_head - 1)) * x[t, b], (a, 0, D.d_model - 1), (b, 0, D.d_model - 1))
    with pytest.raises(ProofFailed, match="normal form"):
        require_sums_equal(scores, swapped, "scores use x_t on both sides (false)")


def test_a_false_inequality_has_no_certificate() -> None:
    tt, u, ss, b, d = sympy.symbols("t u s b d", integer=True)
    hyps = [tt + b - u, u + d - ss]  # u ≤ t + b, s ≤ u + d
    require_entails(hyps, tt + b + d - ss, "s ≤ t + b + d")
    with pytest.raises(ProofFailed, match="not a non-negative combination"):
        require_entails(hyps, tt + b + d - 1 - ss, "s ≤ t + b + d − 1 (false)")


def test_the_glossary_claim_as_stated_is_refuted() -> None:
    d = D.d_model
    share = (8 * d**2 + 5 * d) / (12 * d**2 + 13 * d)
    with pytest.raises(ProofFailed):
        require(sympy.simplify(share - sympy.Rational(2, 3)).is_nonnegative is True, "the FFN holds 2/3 or more (false)")


def test_a_false_theorem_is_reported_failed_and_the_command_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    def prove() -> None:
        """Claims LN_ε(2x) = LN_ε(x) for ε > 0, which is false."""
        a, eps = sympy.Integer(2), sympy.Symbol("epsilon", positive=True)
        Dl, V = sympy.Symbol("Delta", real=True), sympy.Symbol("V", positive=True)
        require_zero(a * Dl / sympy.sqrt(a**2 * V + eps) - Dl / sympy.sqrt(V + eps), "LN_ε(2x) = LN_ε(x)")

    false = Theorem("false_scaling", "false", "LN_ε(2x) = LN_ε(x)", "", ("ε > 0",), Scope(Kind.SYMBOLIC, "d"), prove, lambda n: None)
    result = run_one(false, 0)
    assert not result.holds and "ProofFailed" in result.result and "LN_ε(2x) = LN_ε(x)" in result.result
    THEOREMS["false_scaling"] = false
    try:
        assert prove_main(["false_scaling", "--examples", "0"]) == 1
    finally:
        del THEOREMS["false_scaling"]
    out = capsys.readouterr().out
    assert "FAILED" in out and "0 of 1 theorems hold" in out


# -- proofs are about the spec: mutate an op and its proof fails ----------------------------


def test_a_softmax_that_ignores_its_mask_fails_renormalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    original = MaskedSoftmax.definition

    def unmasked(self: MaskedSoftmax, index: tuple[sympy.Expr, ...], inputs: Mapping[str, sympy.IndexedBase], params: Mapping[str, sympy.IndexedBase]) -> sympy.Expr:
        return original(dataclasses.replace(self, mask=Full()), index, inputs, params)

    monkeypatch.setattr(MaskedSoftmax, "definition", unmasked)
    with pytest.raises(ProofFailed):
        THEOREMS["masked_softmax_renormalises"].prove()


def test_an_uncentred_variance_fails_the_layer_norm_theorem(monkeypatch: pytest.MonkeyPatch) -> None:
    def uncentred(self: LayerNorm, index: tuple[sympy.Expr, ...], inputs: Mapping[str, sympy.IndexedBase], params: Mapping[str, sympy.IndexedBase]) -> sympy.Expr:
        tt, j = index  # σ² = mean(x²) instead of mean((x − μ)²): an RMS-style bug
        x, d = inputs["x"], inputs["x"].shape[1]
        k1, k2 = index_("k"), index_("k")
        mu = sympy.Sum(x[tt, k1], (k1, 0, d - 1)) / d
        sigma2 = sympy.Sum(x[tt, k2] ** 2, (k2, 0, d - 1)) / d
        return params["gamma"][j] * (x[tt, j] - mu) / sympy.sqrt(sigma2 + sympy.Float(self.eps, 30)) + params["beta"][j]

    monkeypatch.setattr(LayerNorm, "definition", uncentred)
    with pytest.raises(ProofFailed, match="σ²"):
        layer_norm.layer_norm_invariance.prove()


def test_a_scale_missing_from_the_scores_fails_the_qk_circuit(monkeypatch: pytest.MonkeyPatch) -> None:
    original = AttentionScores.definition

    def unscaled(self: AttentionScores, index: tuple[sympy.Expr, ...], inputs: Mapping[str, sympy.IndexedBase], params: Mapping[str, sympy.IndexedBase]) -> sympy.Expr:
        return original(dataclasses.replace(self, scale=sympy.Integer(1)), index, inputs, params)

    monkeypatch.setattr(AttentionScores, "definition", unscaled)
    with pytest.raises(ProofFailed, match="normal form"):
        attention.qk_circuit.prove()


def test_a_rule_that_hides_a_read_fails_rule_soundness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Conv1d, "dependency", lambda self: {"x": RowWise()})
    with pytest.raises(ProofFailed, match="conv1d"):
        THEOREMS["dependency_rules_sound"].prove()


# -- the dependency typing -----------------------------------------------------------------


def test_windows_compose_unite_and_print() -> None:
    band = Windows.of((-2, 0))
    assert band.then(band) == Windows.of((-4, 0)) and band.then(band).text() == "t − 4 ≤ s ≤ t"
    assert (SAME | Windows.of((1, 3))) == Windows.of((0, 3)), "touching windows merge"
    assert (SAME | Windows.of((2, 3))).text() == "s = t or t + 2 ≤ s ≤ t + 3", "apart they stay two"
    assert Windows.of((-sympy.oo, 0)).text() == "s ≤ t" and Windows().text() == "no s"
    assert Windows.of((-sympy.oo, 0)).causal() and not Windows.of((-1, 1)).causal()


def test_gpt_relations() -> None:
    dense = build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=3, n_heads=2))
    assert relation(dense, "logits", "ids") == Windows.of((-sympy.oo, 0))
    banded = build_gpt(GPTConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=3, n_heads=2, attention=("banded",), band_width=3))
    assert relation(banded).text() == "t − 6 ≤ s ≤ t"
    typing = type_graph(banded)
    assert typing.values["blocks.0.attn.head_0.softmax"].support == Windows.of((-2, 0))  # type: ignore[union-attr]
    assert causality(banded).describe() == "causal: output position t depends on input positions t − 6 ≤ s ≤ t"


def test_full_attention_is_reported_with_its_mask() -> None:
    verdict = causality(attention_only(1, 1, 2, Full(), bias=False))
    assert not verdict.causal and verdict.relation.text() == "all s"
    assert [path for path, _ in verdict.breaks] == ["attn.head_0.z"]
    assert "attn.head_0.softmax" in verdict.breaks[0][1] and "Full()" in verdict.breaks[0][1]


def test_symmetric_conv_is_named() -> None:
    verdict = causality(causality_theorems.conv_gpt(3, 1))
    assert not verdict.causal and [p for p, _ in verdict.breaks] == ["reducers.0"]
    assert "Window(lo=-1, hi=1)" in verdict.describe() and "s ≤ t + 1" in verdict.describe()
    assert causality(causality_theorems.conv_gpt(3, 2)).causal


def test_conv_rules() -> None:
    assert Conv1d(2, 2).dependency() == {"x": RowWise()}
    assert Conv1d(2, 2, 3, 1, 1).dependency() == {"x": Window(-1, 1)}
    assert Conv1d(2, 2, 3, 2, 0).dependency() == {"x": Window(-2, 0)}
    with pytest.raises(Exception, match="kernel − 1"):
        Conv1d(2, 2, 3, 0, 0)


@pytest.mark.parametrize("pad_left", [2, 1])
def test_conv_models_run_in_fast_and_causal_ones_decode(pad_left: int) -> None:
    arch = causality_theorems.conv_gpt(3, pad_left)
    theta = random_theta(arch, 0, std=0.5)
    ids = np.array([[1, 2, 3, 4, 5, 6]])
    program = fast.compile(arch, theta, "float64", block=2)
    full = program.forward(ids)
    np.testing.assert_allclose(full[0], reference.forward(arch, theta, ids[0]), rtol=1e-10, atol=1e-12)
    first, state = program.prefill(ids[:, :3])
    decoded = np.concatenate([first] + [program.decode(state, ids[:, k]) for k in range(3, 6)], axis=1)
    if pad_left == 2:  # causal: decoding equals the full forward
        np.testing.assert_allclose(decoded, full, rtol=1e-10, atol=1e-12)
    else:  # reads t + 1: rows computed before their successor arrived differ
        assert not np.allclose(decoded, full, rtol=1e-10, atol=1e-12)


def test_masked_softmax_support_is_its_mask() -> None:
    assert MaskedSoftmax(Causal()).support() == Causal()


# -- docs and the command ------------------------------------------------------------------


def test_docs_are_generated_from_the_records() -> None:
    assert PATH.read_text() == render(), "docs/proofs.md is out of date: run `python -m proofs.docs`"
    text = render()
    for thm in THEOREMS.values():
        assert f"`{thm.name}`" in text and thm.scope.detail in text


def test_prove_list_prints_one_line_per_theorem(capsys: pytest.CaptureFixture[str]) -> None:
    assert prove_main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(THEOREMS)


def test_prove_runs_named_theorems_and_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert prove_main(["softmax_shift_invariance", "window_composition", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "theorem" in out and "scope" in out and "result" in out and "seconds" in out
    assert "softmax_shift_invariance" in out and "2 of 2 theorems hold" in out


def test_prove_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert prove_main(["softmax_shift"]) == 2  # could not run; 1 is a theorem that failed
    assert "did you mean 'softmax_shift_invariance'" in capsys.readouterr().err
