"""The mutation score of fast/'s equivalence suite, and what kills mutants of the spec's op
definitions (docs/mutation.md).

    python benchmarks/mutation.py --list                 # the catalogue
    python benchmarks/mutation.py --check                # every mutant applies (its text is found once)
    python benchmarks/mutation.py --out mutation.json    # run every mutant (hours on 2 cores)
    python benchmarks/mutation.py --only kernel.mask.key_valid --out one.json
    python benchmarks/mutation.py --render mutation.json   # the tables of a saved run

Each mutant is one realistic source-level edit — an exact piece of text, found exactly once in
its file, replaced — applied to a temporary copy of the tree (the working tree is never
touched). Against a mutant of fast/ the script runs, each under a time cap:

- the equivalence suite (:data:`FAST_SUITE`: tests/test_fast_equivalence.py and the other tests
  of fast/) with pytest, and records which tests fail and the suite's wall time (a killed mutant
  must be reported in the suite's normal time, not after minutes of shrinking);
- ``gptspec check --all-ops`` (the default model, tiny, then every op, mask family and padding
  mode, and a small model of every family), and records which components fail — separately for
  tiny's own components and for the ones only ``--all-ops`` adds.

Against a mutant of the spec's op definitions it runs the theorems (``gptspec prove``) and the
spec-vs-reference tests (:data:`SPEC_SUITE`), and records which fail.

A mutant with ``equivalent`` set is one the catalogue claims computes the same function (the
reason is the field's text); the score is killed / non-equivalent, and every surviving mutant must
be one of those, or the script says so. The results are written as JSON (``--out``) and printed as
the Markdown tables docs/mutation.md shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("spec", "reference", "fast", "proofs", "gptspec", "tests", "docs", "pyproject.toml", "README.md")
"""What the temporary copy holds (the code, its tests, and the docs some tests read)."""

FAST_SUITE = (
    "tests/test_fast_equivalence.py", "tests/test_fast_llama.py", "tests/test_fast_half.py", "tests/test_causality_decoding.py",
    "tests/test_lm.py", "tests/test_seq2seq.py", "tests/test_compressed_gpts.py",
    "tests/test_proofs.py::test_conv_models_run_in_fast_and_causal_ones_decode",
)
"""fast/'s equivalence suite: fast/ against the reference (ops, models, padding, decoding,
invariances) for every family, and the language-model functions fast/ serves."""

SPEC_SUITE = ("tests/test_spec_vs_reference.py", "tests/test_reference.py", "tests/test_hf_gpt2.py", "tests/test_records.py")
"""The spec-vs-reference tests (and the external oracle, Hugging Face GPT-2) run against a mutant of
the spec's op definitions, with the theorems."""


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    what: str
    area: str
    equivalent: str = ""
    """Why the mutant computes the same function ("" for a mutant that must be killed)."""

    @property
    def spec(self) -> bool:
        return not self.path.startswith("fast/")


def M(name: str, path: str, old: str, new: str, what: str, area: str, equivalent: str = "") -> Mutant:
    return Mutant(name, path, old, new, what, area, equivalent)


ATT, KER, PRG, BAT, LM = "fast/attention.py", "fast/kernels/attention.py", "fast/program.py", "fast/batch.py", "fast/lm.py"

CATALOGUE: tuple[Mutant, ...] = (
    # -- masks and padding ---------------------------------------------------------------------
    M("kernel.mask.key_valid", KER, "allowed(relation, batch.positions, batch.key_positions) & batch.key_valid[:, None, :] & batch.valid[:, :, None]",
      "allowed(relation, batch.positions, batch.key_positions) & batch.valid[:, :, None]",
      "op-level attention mask ignores padded keys", "masks"),
    M("kernel.mask.query_valid", KER, "allowed(relation, batch.positions, batch.key_positions) & batch.key_valid[:, None, :] & batch.valid[:, :, None]",
      "allowed(relation, batch.positions, batch.key_positions) & batch.key_valid[:, None, :]",
      "op-level attention mask ignores padded queries", "masks",
      equivalent="a padded query row's output is never read: its logits are set to 0 and, as a key, its row is masked by key_valid; "
      "a padded row always sees a real key (its position id is a real token's), so it is finite"),
    M("kernel.mask.transposed", KER, "relation.allowed_array(q_pos[:, :, None], k_pos[:, None, :])",
      "relation.allowed_array(k_pos[:, None, :], q_pos[:, :, None])", "the mask asked with query and key swapped", "masks"),
    M("kernel.softmax.max_over_all", KER, "m = np.max(np.where(mask, x, -np.inf), axis=-1, keepdims=True)",
      "m = np.max(x, axis=-1, keepdims=True)", "softmax maximum taken over disallowed keys too", "softmax"),
    M("kernel.softmax.empty_row", KER, "y: Array = np.divide(e, Z, out=np.zeros_like(e), where=Z > 0)",
      "y: Array = e / Z", "a row with no allowed key divides 0 by 0", "softmax"),
    M("kernel.softmax.no_finite_fix", KER, "m = np.where(np.isfinite(m), m, 0)\n", "\n",
      "the row maximum of an empty row left at −∞", "softmax",
      equivalent="on a row with no allowed key every entry is masked to 0 before and after the exponential, whatever m is"),
    M("kernel.scores.scale", KER, "(Q @ K.swapaxes(-1, -2)) * Q.dtype.type(float(op.scale))", "(Q @ K.swapaxes(-1, -2))",
      "op-level scores without the scale", "attention"),
    M("kernel.concat.order", KER, "np.concatenate([z[f\"z_{h}\"] for h in range(op.n_heads)], axis=-1)",
      "np.concatenate([z[f\"z_{h}\"] for h in reversed(range(op.n_heads))], axis=-1)", "heads concatenated in reverse order", "attention"),
    M("fused.mask.key_valid", ATT, "ok = ok & batch.key_valid[:, None, :] & batch.valid[:, t0:t1, None]",
      "ok = ok & batch.valid[:, t0:t1, None]", "fused attention ignores padded keys", "masks"),
    M("fused.mask.query_valid", ATT, "ok = ok & batch.key_valid[:, None, :] & batch.valid[:, t0:t1, None]",
      "ok = ok & batch.key_valid[:, None, :]", "fused attention ignores padded queries", "masks",
      equivalent="as kernel.mask.query_valid: padded query rows are zeroed in the logits and masked as keys, and always see a real key"),
    M("fused.skip.too_much", ATT, "if not seen[s0:s1].any():", "if not full[s0:s1].any():",
      "key blocks skipped unless every query of the tile sees them", "chunking"),
    M("fused.mask.partial_blocks", ATT, "if not full[s0:s1].all():", "if not full[s0:s1].any():",
      "the mask applied only to blocks no query fully sees", "masks"),
    M("fused.width.never_widened", ATT, "width = max(block, block * block // (t1 - t0))", "width = block",
      "key-block width never widened for short tiles (the same function: the online softmax is exact for any split, theorem "
      "online_softmax; but decoding visits more, smaller blocks, which a test of the blocks visited sees)", "chunking"),
    M("fused.tile.stride", ATT, "for t0 in range(0, T, block):", "for t0 in range(0, T, block + 1):",
      "query tiles off by one: a row between tiles is never computed", "chunking"),
    M("fused.scale.missing", ATT, "q_t = np.multiply(q[:, :, :, t0:t1], dtype.type(scale), order=\"C\")",
      "q_t = np.multiply(q[:, :, :, t0:t1], dtype.type(1.0), order=\"C\")", "fused scores without the scale", "attention"),
    M("fused.ratio.no_guard", ATT, "out: Array = np.divide(acc, np.maximum(l, 1, out=l))", "out: Array = np.divide(acc, l)",
      "online softmax divides by l = 0 on rows with no allowed key", "softmax"),
    M("fused.finite_or_zero", ATT, "return np.where(np.isfinite(m), m, m.dtype.type(0))", "return m",
      "online softmax shifts by −∞ on rows with nothing allowed yet", "softmax"),
    M("fused.qkv.packing", ATT, "return w.transpose(1, 0, 2).reshape(w.shape[1], -1)", "return w.reshape(w.shape[1], -1)",
      "QKV weights packed feature-major instead of head-major", "QKV packing"),
    M("fused.qkv.kv_swapped", ATT, "parts = [flat(plan.W_Q, H), flat(plan.W_K, KV), flat(plan.W_V, KV)]",
      "parts = [flat(plan.W_Q, H), flat(plan.W_V, KV), flat(plan.W_K, KV)]", "K and V columns swapped in the packed GEMM", "QKV packing"),
    M("fused.qkv.bias_order", ATT, "biases = (plan.b_Q, plan.b_K, plan.b_V)", "biases = (plan.b_Q, plan.b_V, plan.b_K)",
      "K and V biases swapped", "QKV packing"),
    M("fused.out.bias", ATT, "    if weights.b_O is not None:\n        y += P.load(weights.b_O)\n", "",
      "output projection's bias dropped", "attention"),
    M("fused.rotary.q_only", ATT, 'k = _transform(plan, weights, P, "K", k, batch.positions)  # keys of this call',
      "k = P.round(k)  # keys of this call", "rotary applied to queries only", "rotary"),
    M("fused.rotary.positions", ATT, "x = P.round(rotate(t, x, positions))",
      "x = P.round(rotate(t, x, positions - positions[:, :1]))",
      "rotary at positions counted from the call's first row (wrong when decoding)", "rotary"),
    M("fused.gqa.grouping", ATT, "q = q.reshape(B, T, KV, G, dh).transpose(0, 2, 3, 1, 4)",
      "q = q.reshape(B, T, G, KV, dh).transpose(0, 3, 2, 1, 4)", "query heads grouped round-robin instead of consecutively", "GQA grouping"),
    M("fused.cache.order", ATT, "batch.cache[(key, name)] = kept if prev is None else np.concatenate([prev, kept], axis=2)",
      "batch.cache[(key, name)] = kept if prev is None else np.concatenate([kept, prev], axis=2)", "new keys put before the cached ones",
      "KV cache"),
    M("fused.match.cross", ATT, 'cross=node.inputs["x_q"] != node.inputs["x_kv"]', "cross=False",
      "cross-attention fused as if it were self-attention", "attention"),
    # -- kernels -------------------------------------------------------------------------------
    M("layer_norm.divisor", "fast/kernels/layer_norm.py", "sigma2 = np.vecdot(y, y)[..., None] / y.shape[-1]",
      "sigma2 = np.vecdot(y, y)[..., None] / (y.shape[-1] - 1)", "layer norm's variance divides by d − 1", "norms"),
    M("layer_norm.eps_outside", "fast/kernels/layer_norm.py", "y *= 1.0 / np.sqrt(sigma2 + eps)", "y *= 1.0 / (np.sqrt(sigma2) + eps)",
      "layer norm's ε added outside the square root", "norms"),
    M("layer_norm.beta", "fast/kernels/layer_norm.py", "        if beta is not None:\n            y += beta\n", "",
      "layer norm's β dropped", "norms"),
    M("rms_norm.offset", "fast/kernels/rms_norm.py", "g = gamma + 1 if op.offset else gamma", "g = gamma",
      "RMS norm's (1 + γ) offset form ignored", "norms"),
    M("rms_norm.divisor", "fast/kernels/rms_norm.py", "mean_square = np.vecdot(x, x)[..., None] / x.shape[-1]",
      "mean_square = np.vecdot(x, x)[..., None] / (x.shape[-1] + 1)", "RMS norm's mean square divides by d + 1", "norms"),
    M("gelu_tanh.branch", "fast/kernels/activations.py", "y *= np.maximum(e, x >= 0, out=e)  # × (1 where z ≥ 0, e where z < 0)",
      "y *= np.maximum(e, x > 0, out=e)  # × (1 where z ≥ 0, e where z < 0)", "GELU-tanh's branch test x ≥ 0 → x > 0", "GELU",
      equivalent="the two branches differ only at x = 0, where the output is x/(1 + e) × anything = 0 (±0 alike)"),
    M("gelu_tanh.constant", "fast/kernels/activations.py", "a, b = x.dtype.type(2.0 * c), x.dtype.type(2.0 * c * float(op.cubic))",
      "a, b = x.dtype.type(2.0 * c), x.dtype.type(2.0 * c * 0.0447)", "GELU-tanh's cubic constant 0.044715 → 0.0447", "GELU"),
    M("gelu_tanh.no_two", "fast/kernels/activations.py", "a, b = x.dtype.type(2.0 * c), x.dtype.type(2.0 * c * float(op.cubic))",
      "a, b = x.dtype.type(c), x.dtype.type(c * float(op.cubic))", "GELU-tanh's z = 2u written as u", "GELU"),
    M("gelu_erf.sqrt2", "fast/kernels/activations.py", "z: Array = -x / math.sqrt(2.0)",
      "z: Array = -x / 2.0", "GELU-erf's x/√2 written x/2", "GELU"),
    M("relu.abs", "fast/kernels/activations.py", "return np.maximum(x, 0)", "return np.abs(x)", "ReLU as |x|", "activations"),
    M("silu.branch", "fast/kernels/glu.py", "y *= np.maximum(e, x >= 0, out=e)  # × (1 where x ≥ 0, e where x < 0)",
      "y *= np.maximum(e, x > 0, out=e)  # × (1 where x ≥ 0, e where x < 0)", "SiLU's branch test x ≥ 0 → x > 0", "activations",
      equivalent="the branches differ only at x = 0, where the output is 0 either way"),
    M("silu.sign", "fast/kernels/glu.py", "        np.negative(e, out=e)\n", "", "SiLU's e^{−|x|} computed as e^{|x|}", "activations"),
    M("multiply.add", "fast/kernels/glu.py", "y: Array = a * b", "y: Array = a + b", "the gated MLP's product as a sum", "activations"),
    M("gate.weights", "fast/kernels/gate.py", "w, rest = x1.dtype.type(_sigmoid(value)), x1.dtype.type(_sigmoid(-value))",
      "rest, w = x1.dtype.type(_sigmoid(value)), x1.dtype.type(_sigmoid(-value))", "the sigmoid gate's two weights swapped", "activations"),
    M("gate.one_minus", "fast/kernels/gate.py", "w, rest = x1.dtype.type(_sigmoid(value)), x1.dtype.type(_sigmoid(-value))",
      "w, rest = x1.dtype.type(_sigmoid(value)), x1.dtype.type(1.0 - _sigmoid(value))", "1 − σ(a) computed by subtraction", "activations",
      equivalent="σ(−a) = 1 − σ(a) exactly in real arithmetic; the subtraction's rounding is within the tolerance policy"),
    M("scale.divides", "fast/kernels/scale.py", "y: Array = x * x.dtype.type(float(op.c))", "y: Array = x / x.dtype.type(float(op.c))",
      "the constant scale divides", "activations"),
    M("affine.bias", "fast/kernels/affine.py", "    if b is not None:\n        y += b\n", "", "the affine map's bias dropped", "attention"),
    M("chunk.stride", "fast/kernels/table.py", "fn(x2[i * step : (i + 1) * step], y2[i * step : (i + 1) * step])",
      "fn(x2[i * step : (i + 1) * step - 1], y2[i * step : (i + 1) * step - 1])",
      "row chunks off by one: a row between chunks is skipped", "chunking"),
    M("chunk.step", "fast/kernels/table.py", "step = -(-rows // min(n, rows))", "step = -(-rows // min(n, rows)) + 1",
      "chunks one row longer than the budget", "chunking",
      equivalent="only the chunk sizes change; every row is still computed exactly once"),
    M("conv.padding_sign", "fast/kernels/conv1d.py", "want = batch.positions - op.pad_left + i", "want = batch.positions + op.pad_left - i",
      "convolution taps read the mirrored window", "positions"),
    M("conv.key_valid", "fast/kernels/conv1d.py", "pick = (batch.key_positions[:, None, :] == want[:, :, None]) & batch.key_valid[:, None, :]",
      "pick = (batch.key_positions[:, None, :] == want[:, :, None])", "convolution reads padded rows", "masks"),
    # -- positions ------------------------------------------------------------------------------
    M("learned.positions", "fast/kernels/positional.py", "P: Array = W_P[np.minimum(batch.positions, n_ctx - 1)]",
      "P: Array = W_P[np.minimum(np.arange(batch.positions.shape[1])[None, :], n_ctx - 1)]",
      "learned positions by array index, not position id", "positions"),
    M("sinusoidal.exponent", "fast/kernels/positional.py", "angle = batch.positions[..., None] / float(op.base) ** ((2 * (j // 2)) / d)",
      "angle = batch.positions[..., None] / float(op.base) ** ((j // 2) / d)", "sinusoidal frequencies with exponent k/d instead of 2k/d", "positions"),
    M("sinusoidal.sin_cos", "fast/kernels/positional.py", "return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))",
      "return np.where(j % 2 == 0, np.cos(angle), np.sin(angle))", "sinusoidal sin and cos swapped", "positions"),
    M("sinusoidal.concat_half", "fast/kernels/positional.py", "half = (d + 1) // 2", "half = d // 2",
      "concatenated sinusoidal layout split at ⌊d/2⌋ for odd d", "positions"),
    M("rotary.sign", "fast/kernels/rotary.py", "ya -= b * s  # y_a = x_a cos − x_b sin", "ya += b * s  # y_a = x_a cos − x_b sin",
      "rotary rotation's sign flipped", "rotary"),
    M("rotary.frequency", "fast/kernels/rotary.py", "omega: npt.NDArray[np.float64] = 1.0 / op.base ** (np.arange(0, d, 2, dtype=np.float64) / d)",
      "omega: npt.NDArray[np.float64] = 1.0 / op.base ** (np.arange(0, d, 2, dtype=np.float64) / (d - 2))",
      "rotary frequencies base^(−2k/(d−2))", "rotary"),
    M("rotary.pairing", "fast/kernels/rotary.py", "    if op.pairing == \"half\":\n        a, b = x[..., :half], x[..., half:]",
      "    if op.pairing != \"half\":\n        a, b = x[..., :half], x[..., half:]", "rotary pairing (half / interleaved) inverted on reading", "rotary"),
    M("positions.no_clamp", BAT, "return np.maximum(counts, 0) + first[:, None]", "return counts + first[:, None]",
      "left-padded rows get position −1", "positions",
      equivalent="only padded rows get position −1; their outputs are zeroed and, as keys, masked; a learned table's index −1 is "
      "still a valid row (the last) and never read by a real row"),
    M("positions.no_start", BAT, "return np.maximum(counts, 0) + first[:, None]", "return np.maximum(counts, 0)",
      "decoding restarts positions at 0", "positions"),
    # -- ids -------------------------------------------------------------------------------------
    M("ids.upper_bound", BAT, "bad = np.argwhere(mask & ((array < 0) | (array >= n_vocab)))", "bad = np.argwhere(mask & ((array < 0) | (array > n_vocab)))",
      "the id range check accepts id = n_vocab", "id checks"),
    M("ids.lower_bound", BAT, "bad = np.argwhere(mask & ((array < 0) | (array >= n_vocab)))", "bad = np.argwhere(mask & (array >= n_vocab))",
      "the id range check accepts negative ids", "id checks"),
    M("ids.padded_not_sanitised", BAT, "return np.where(mask, array, 0).astype(np.int64), mask", "return array.astype(np.int64), mask",
      "ids at padded positions are not sanitised", "id checks"),
    # -- program, KV cache -------------------------------------------------------------------------
    M("program.padded_logits", PRG, "return np.where(valid[..., None], logits, logits.dtype.type(0))  # padded rows are 0",
      "return logits  # padded rows are 0", "padded rows' logits not zeroed", "masks"),
    M("program.cache.order", PRG, "return np.concatenate([kept, new], axis=1)  # the cached rows, then this call's",
      "return np.concatenate([new, kept], axis=1)  # the cached rows, then this call's",
      "op-by-op cache: new rows put before the cached ones", "KV cache"),
    M("program.cache.none", "spec/decoding.py", "cached = tuple(port for port in cached_ports(op) if sources[port] in growing)",
      "cached = ()", "op-by-op steps cache nothing", "KV cache"),
    M("program.length_check", PRG, "if mask.size and int(last.max()) >= self.n_ctx:", "if mask.size and int(last.max()) > self.n_ctx:",
      "a sequence of n_ctx + 1 tokens accepted", "id checks"),
    M("program.next_position", PRG, "state.next_position = np.maximum(state.next_position, np.where(mask, positions + 1, 0).max(axis=1, initial=0))",
      "state.next_position = np.where(mask, positions + 1, 0).max(axis=1, initial=0)",
      "a decode step with a padded row resets that row's next position", "KV cache"),
    M("lm.last_column", LM, "last = logits[:, -1, :]  # left padding: column −1 is every row's last prompt token",
      "last = logits[:, 0, :]  # left padding: column −1 is every row's last prompt token", "generation continues from the first prompt token",
      "KV cache"),
    # -- the spec's op definitions ---------------------------------------------------------------
    M("spec.layer_norm.divisor", "spec/ops/layer_norm.py", "sigma2 = sympy.Sum((x[t, k2] - mu2) ** 2, (k2, 0, d - 1)) / d",
      "sigma2 = sympy.Sum((x[t, k2] - mu2) ** 2, (k2, 0, d - 1)) / (d - 1)", "layer norm's variance divides by d − 1 (definition)", "spec"),
    M("spec.gelu.constant", "spec/ops/activations.py", "cubic: ClassVar[sympy.Rational] = sympy.Rational(44715, 1000000)",
      "cubic: ClassVar[sympy.Rational] = sympy.Rational(4472, 100000)", "GELU's constant 0.044715 → 0.04472 (read by all)", "spec"),
    M("spec.causal.indicator", "spec/masks.py", "return sympy.Piecewise((1, sympy.Le(s, t)), (0, True))",
      "return sympy.Piecewise((1, sympy.Lt(s, t)), (0, True))", "the causal mask's indicator s < t (allowed still s ≤ t)", "spec"),
    M("spec.banded.bound", "spec/masks.py", "        return t - self.w < s <= t\n", "        return t - self.w <= s <= t\n",
      "the band's allowed one wider (its windows and indicator unchanged)", "spec"),
    M("spec.softmax.numerator", "spec/ops/attention.py", "return sympy.Piecewise((allowed * sympy.exp(x[t, s]) / Z, sympy.Gt(n_allowed, 0)), (0, True))",
      "return sympy.Piecewise((sympy.exp(x[t, s]) / Z, sympy.Gt(n_allowed, 0)), (0, True))",
      "the masked softmax's numerator without its mask indicator", "spec"),
    M("spec.softmax.empty_row", "spec/ops/attention.py", "return sympy.Piecewise((allowed * sympy.exp(x[t, s]) / Z, sympy.Gt(n_allowed, 0)), (0, True))",
      "return sympy.Piecewise((allowed * sympy.exp(x[t, s]) / Z, sympy.Gt(n_allowed, 0)), (sympy.Integer(1) / x.shape[1], True))",
      "an empty row gives 1/S instead of 0 (definition)", "spec"),
    M("spec.scores.scale", "spec/ops/attention.py", "a = sympy.sympify(self.scale) * sympy.Sum(Q[t, k] * K[s, k], (k, 0, Q.shape[1] - 1))",
      "a = sympy.Sum(Q[t, k] * K[s, k], (k, 0, Q.shape[1] - 1))", "attention scores without the scale (definition)", "spec"),
    M("spec.rms_norm.divisor", "spec/ops/rms_norm.py", "mean_square = sympy.Sum(x[t, k] ** 2, (k, 0, d - 1)) / d",
      "mean_square = sympy.Sum(x[t, k] ** 2, (k, 0, d - 1)) / (d + 1)", "RMS norm's mean square divides by d + 1 (definition)", "spec"),
    M("spec.online.no_max", "spec/online_softmax.py", "        m_new = ops.maximum(m_new, state.m)  # m' = max(m, max_s x_s)\n",
      "        pass  # m' = max_s x_s: the earlier blocks' maximum forgotten\n",
      "the online softmax's running maximum forgets earlier blocks (shared by fast/)", "spec"),
)


@dataclass
class Outcome:
    mutant: str
    what: str
    area: str
    equivalent: str
    applied: bool = True
    killed: bool = False
    timed_out: bool = False
    suite_seconds: float = 0.0
    failing_tests: list[str] = field(default_factory=list)
    check_default: list[str] = field(default_factory=list)
    check_all_ops: list[str] = field(default_factory=list)
    check_seconds: float = 0.0
    theorems: list[str] = field(default_factory=list)
    note: str = ""
    tests_run: int = 0
    failing_seconds: dict[str, float] = field(default_factory=dict)
    """Each failing test's own seconds (pytest's junit report): how long the suite took to report it."""


def _copy_tree(into: Path) -> None:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "images"))
        elif src.exists():
            shutil.copy2(src, into / name)


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def _run(command: list[str], tree: Path, timeout: float) -> tuple[int | None, str, str]:
    """(return code or None on a timeout, stdout, stderr); on a timeout the whole process group
    (pytest's xdist workers included) is killed."""
    with subprocess.Popen(command, cwd=tree, env=_env(tree), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
            return proc.returncode, out, err
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return None, out, err


LAST_RUN: dict[str, Any] = {}
"""How the last pytest run went: return code, testcases, the failing tests' seconds."""


def _pytest(tree: Path, tests: tuple[str, ...], timeout: float, workers: int) -> tuple[list[str], float, bool, str]:
    """(failing test ids, wall seconds, timed out, last lines) of pytest on ``tests`` in ``tree``."""
    shutil.rmtree(tree / ".hypothesis", ignore_errors=True)  # no failing examples replayed from another mutant
    report = tree / "report.xml"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests]
    if workers > 1:
        command[4:4] = ["-n", str(workers)]
    start = time.perf_counter()
    code, out, err = _run(command, tree, timeout)
    seconds = time.perf_counter() - start
    timed_out = code is None
    tail = "timed out" if timed_out else "\n".join(out.splitlines()[-2:])
    failing: list[str] = []
    durations: dict[str, float] = {}
    cases = 0
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            cases += 1
            if case.find("failure") is not None or case.find("error") is not None:
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                failing.append(name)
                durations[name] = float(case.get("time", "0") or 0)
    LAST_RUN.clear()
    LAST_RUN.update(code=code, cases=cases, durations=durations, tail=tail)
    if code not in (0, 1, None):  # pytest itself failed (a collection error, an internal error): say so
        failing.append(f"(pytest exited {code}: {tail.strip() or err.strip()[-200:]})")
    return failing, seconds, timed_out, tail


def _check(tree: Path, timeout: float, examples: int) -> tuple[list[str], list[str], float, str]:
    """(failing components of tiny, failing components --all-ops adds, seconds, note)."""
    command = [sys.executable, "-m", "gptspec", "check", "--all-ops", "--examples", str(examples), "--format", "json"]
    start = time.perf_counter()
    code, out, err = _run(command, tree, timeout)
    seconds = time.perf_counter() - start
    if code is None:
        return [], [], seconds, "gptspec check timed out"
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        return ["(gptspec check did not run)"], [], seconds, ((err or out).strip().splitlines() or [""])[-1]
    from gptspec.verify.coverage import COVERAGE

    extra = ("all ops: ", *(f"{name}: " for name in COVERAGE))
    failed = [r["component"] for r in report["results"] if r["status"] != "passed"]
    return [c for c in failed if not c.startswith(extra)], [c for c in failed if c.startswith(extra)], seconds, ""


PROVE = (
    "import json\nfrom proofs.runner import run\n"
    "print(json.dumps([[r.theorem.name, r.proof == 'proved', r.witness in ('witnessed', 'skipped')] for r in run(examples=5)]))"
)


def _prove(tree: Path, timeout: float) -> tuple[list[str], str]:
    """The theorems that fail in ``tree``: ``name (proof)`` when the proof fails, ``name (witness)``
    when only the numeric witness does."""
    code, out, err = _run([sys.executable, "-c", PROVE], tree, timeout)
    if code is None:
        return [], "the theorems timed out"
    try:
        rows = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return ["(the theorems did not run)"], (err.strip().splitlines() or [""])[-1]
    return [f"{name} ({'proof' if not proved else 'witness'})" for name, proved, witnessed in rows if not (proved and witnessed)], ""


def run_mutant(tree: Path, mutant: Mutant, args: argparse.Namespace) -> Outcome:
    out = Outcome(mutant.name, mutant.what, mutant.area, mutant.equivalent)
    path = tree / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        out.applied, out.note = False, f"the text to mutate is found {original.count(mutant.old)} times in {mutant.path}"
        return out
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        if mutant.spec:  # the theorems, the spec-vs-reference tests, and fast/'s suite (masks, GELU's constant and the
            # online recurrence are code fast/ shares with the spec)
            out.theorems, note = _prove(tree, args.timeout)
            spec_failing, spec_seconds, spec_timeout, _ = _pytest(tree, SPEC_SUITE, args.timeout, args.workers)
            fast_failing, out.suite_seconds, out.timed_out, tail = _pytest(tree, FAST_SUITE, args.timeout, args.workers)
            out.failing_tests = spec_failing + fast_failing
            out.timed_out = out.timed_out or spec_timeout
            out.note = note
            out.killed = bool(out.theorems or out.failing_tests)
            out.tests_run, out.failing_seconds = int(LAST_RUN.get("cases", 0)), dict(LAST_RUN.get("durations", {}))
        else:
            out.failing_tests, out.suite_seconds, out.timed_out, tail = _pytest(tree, FAST_SUITE, args.timeout, args.workers)
            out.killed = bool(out.failing_tests) and not out.timed_out
            out.tests_run, out.failing_seconds = int(LAST_RUN.get("cases", 0)), dict(LAST_RUN.get("durations", {}))
            if not args.no_check:
                out.check_default, out.check_all_ops, out.check_seconds, note = _check(tree, args.timeout, args.check_examples)
                out.note = note
        if out.timed_out:
            out.note = (out.note + "; " if out.note else "") + f"the suite ran past {args.timeout:.0f} s"
    finally:
        path.write_text(original)
    return out


def baseline(tree: Path, args: argparse.Namespace) -> dict[str, object]:
    """The unmutated tree: the suite must pass, and its wall time is the 'normal time'."""
    failing, seconds, timed_out, tail = _pytest(tree, FAST_SUITE, args.timeout, args.workers)
    return {"failing_tests": failing, "suite_seconds": seconds, "timed_out": timed_out, "tail": tail, "tests_run": LAST_RUN.get("cases", 0)}


def markdown(results: list[Outcome], base: dict[str, Any]) -> str:
    fast = [r for r in results if not CATALOGUE_BY_NAME[r.mutant].spec and r.applied]
    spec = [r for r in results if CATALOGUE_BY_NAME[r.mutant].spec and r.applied]
    non_equivalent = [r for r in fast if not r.equivalent]
    killed = [r for r in non_equivalent if r.killed]
    lines = [f"fast/ mutants: {len(fast)} applied, {len(fast) - len(non_equivalent)} claimed equivalent; the equivalence suite kills "
             f"{len(killed)} of {len(non_equivalent)} non-equivalent ({100 * len(killed) / max(1, len(non_equivalent)):.1f}%); "
             f"unmutated suite: {base['suite_seconds']:.0f} s" + (f", FAILING {base['failing_tests']}" if base["failing_tests"] else ""),
             "", "| mutant | what | suite | suite s | slowest failing test s | killed by (tests) | `check` tiny | `check --all-ops` adds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in fast:
        verdict = "equivalent" if r.equivalent and not r.killed else ("killed" if r.killed else ("TIMEOUT" if r.timed_out else "SURVIVED"))
        names = sorted({t.split("::")[-1].split("[")[0] for t in r.failing_tests})
        tests = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        slowest = f"{max(r.failing_seconds.values()):.0f}" if r.failing_seconds else "—"
        lines.append(f"| `{r.mutant}` | {r.what} | {verdict} | {r.suite_seconds:.0f} | {slowest} | {tests or '—'} | "
                     f"{len(r.check_default) or '—'} | {len(r.check_all_ops) or '—'} |")
    lines += ["", "| spec mutant | what | theorems whose proof or witness fails | failing spec-vs-reference tests | failing fast/ tests |",
              "|---|---|---|---|---|"]
    for r in spec:
        by_file: dict[bool, set[str]] = {True: set(), False: set()}
        for t in r.failing_tests:
            by_file[any(f.split("::")[0].removesuffix(".py").replace("/", ".") in t for f in SPEC_SUITE)].add(t.split("::")[-1].split("[")[0])
        lines.append(f"| `{r.mutant}` | {r.what} | {', '.join(r.theorems) or '—'} | {', '.join(sorted(by_file[True])) or '—'} | "
                     f"{', '.join(sorted(by_file[False])) or '—'} |")
    skipped = [r for r in results if not r.applied]
    if skipped:
        lines += ["", "Not applied (the source changed): " + ", ".join(f"`{r.mutant}` ({r.note})" for r in skipped)]
    survivors = [r for r in non_equivalent if not r.killed]
    if survivors:
        lines += ["", "Survivors not claimed equivalent: " + ", ".join(f"`{r.mutant}`" for r in survivors)]
    return "\n".join(lines)


CATALOGUE_BY_NAME = {m.name: m for m in CATALOGUE}


def applies(m: Mutant) -> bool:
    """The mutant's text is found exactly once in its file, and the mutated file still compiles
    (a mutant that is a syntax error measures nothing)."""
    text = (ROOT / m.path).read_text()
    if text.count(m.old) != 1:
        return False
    try:
        compile(text.replace(m.old, m.new), m.path, "exec")
    except SyntaxError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--check", action="store_true", help="check that every mutant applies to the current tree, and exit")
    parser.add_argument("--only", nargs="*", default=[], metavar="NAME", help="run only these mutants")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed to each suite run and to each gptspec run (default 900)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (default 2)")
    parser.add_argument("--check-examples", type=int, default=10, help="examples per component of gptspec check (default 10)")
    parser.add_argument("--no-check", action="store_true", help="do not run gptspec check against fast/ mutants")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (updated after every mutant)")
    parser.add_argument("--shrink-seconds", type=int, metavar="N", help="cap hypothesis's shrinking of a failure at N seconds in every "
                        "test (GPTSPEC_SHRINK_SECONDS, read by tests/conftest.py); default: the suite's own cap (10 s under the ci profile)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="print the Markdown tables of a run saved with --out, and exit")
    args = parser.parse_args(argv)
    if args.render is not None:
        try:
            saved = json.loads(args.render.read_text())
            rendered = [Outcome(**row) for row in saved["results"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"--render {args.render}: expected a JSON file written by --out ({type(error).__name__}: {error})")
        print(markdown(rendered, saved["baseline"]))
        return 0
    unknown = sorted(set(args.only) - set(CATALOGUE_BY_NAME))
    if unknown:
        parser.error(f"unknown mutants {unknown}; --list lists them")
    chosen = [m for m in CATALOGUE if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.area:12} {m.path:30} {m.what}{'  [equivalent]' if m.equivalent else ''}")
        return 0
    if args.check:
        bad = [m.name for m in chosen if not applies(m)]
        print(f"{len(chosen) - len(bad)} of {len(chosen)} mutants apply" + (f"; not: {bad}" if bad else ""))
        return 1 if bad else 0
    with tempfile.TemporaryDirectory(prefix="gptspec-mutation-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        if args.shrink_seconds is not None:
            os.environ["GPTSPEC_SHRINK_SECONDS"] = str(args.shrink_seconds)  # read by tests/conftest.py in every run below
        probe = subprocess.run([sys.executable, "-c", "import fast; print(fast.__file__)"], cwd=tree, env=_env(tree), capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(tree)):
            print(f"the copy is not what Python imports ({probe.stdout.strip() or probe.stderr.strip()}); stopping", file=sys.stderr)
            return 2
        base: dict[str, Any] = {"failing_tests": [], "suite_seconds": 0.0}
        if not args.no_baseline:
            base = baseline(tree, args)
            print(f"unmutated: suite {base['suite_seconds']:.0f} s, failing {base['failing_tests']}", flush=True)
        results: list[Outcome] = []
        for k, mutant in enumerate(chosen, 1):
            result = run_mutant(tree, mutant, args)
            results.append(result)
            print(f"[{k}/{len(chosen)}] {mutant.name}: {'killed' if result.killed else 'survived'} in {result.suite_seconds:.0f} s"
                  f" ({len(result.failing_tests)} tests, check {len(result.check_default)} + {len(result.check_all_ops)}, "
                  f"theorems {result.theorems}) {result.note}", flush=True)
            if args.out is not None:
                args.out.write_text(json.dumps({"baseline": base, "results": [asdict(r) for r in results]}, indent=1))
        if not args.no_baseline:  # the machine's load changes over hours: the normal time again, at the end
            base["at_the_end"] = baseline(tree, args)
            print(f"unmutated, at the end: suite {base['at_the_end']['suite_seconds']:.0f} s", flush=True)
            if args.out is not None:
                args.out.write_text(json.dumps({"baseline": base, "results": [asdict(r) for r in results]}, indent=1))
    print()
    print(markdown(results, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
