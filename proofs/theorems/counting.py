"""Parameter counts: the closed formula read off Θ, and the FFN's share (the glossary's "2/3")."""

from __future__ import annotations

from fractions import Fraction

import sympy
from hypothesis import strategies as st

from proofs.core import Kind, Scope, for_all, require, require_zero, theorem, witness_check
from spec import dims as D
from spec.architectures import PRESETS
from spec.architectures.gpt import GPTConfig, build_gpt
from spec.counting import count, size, symbolic_count
from spec.graph import Architecture

d, H, dh, dm, V, n_ctx, L = D.d_model, D.n_heads, D.d_head, D.d_mlp, D.n_vocab, D.n_ctx, D.n_layers


def formula(bias: bool, tied: bool, learned: bool) -> sympy.Expr:
    """The parameter count of build_gpt, in the dims (a theorem checks it against Θ)."""
    per_block = 4 * H * d * dh + 2 * d * dm + ((3 * H * dh + dm + 6 * d) if bias else 2 * d)
    outside = V * d + (n_ctx * d if learned else 0) + (2 * d if bias else d) + (0 if tied else d * V)
    return L * per_block + outside


def _options() -> list[tuple[bool, bool, bool]]:
    return [(b, t, ell) for b in (False, True) for t in (False, True) for ell in (False, True)]


def _config(bias: bool, tied: bool, learned: bool, n_layers: int = 1, **sizes: int) -> GPTConfig:
    base = dict(n_vocab=7, n_ctx=5, d_model=6, n_heads=2, d_head=3, d_mlp=5) | sizes
    return GPTConfig(n_layers=n_layers, bias=bias, tied=tied, positional="learned" if learned else "sinusoidal", **base)  # type: ignore[arg-type]


def _witness_formula(examples: int) -> None:
    def check(case: tuple[int, int, int, int, int, int, int, bool, bool, bool]) -> None:
        vocab, ctx, width, heads, head, mlp, layers, bias, tied, learned = case
        config = _config(bias, tied, learned, layers, n_vocab=vocab, n_ctx=ctx, d_model=width, n_heads=heads, d_head=head, d_mlp=mlp)
        arch = build_gpt(config)
        by_shapes = sum(int(sympy.Mul(*shape)) for shape in arch.theta_shapes().values())
        want = int(formula(bias, tied, learned).subs(config.dims()))
        witness_check(count(arch) == by_shapes == want, f"count {count(arch)}, Σ shapes {by_shapes}, formula {want} [{config}]")

    sizes = st.tuples(st.integers(2, 5000), st.integers(1, 64), st.integers(1, 96), st.integers(1, 8), st.integers(1, 16),
                      st.integers(1, 384), st.integers(1, 6), st.booleans(), st.booleans(), st.booleans())
    for_all(sizes, examples, check)


@theorem(
    name="parameter_count_formula",
    title="the parameter count is the sum over Θ of its shape products, as a formula per architecture",
    statement="For the GPT builder, Σ over Θ of the product of each shape is n_layers·(4·n_heads·d_model·d_head + "
    "2·d_model·d_mlp + [biases] (3·n_heads·d_head + d_mlp + 6·d_model) or [no biases] 2·d_model) + n_vocab·d_model + "
    "[learned positions] n_ctx·d_model + [biases] 2·d_model or d_model (final norm) + [untied] d_model·n_vocab. "
    "With d_mlp = 4·d_model, n_heads·d_head = d_model and biases this is GPT-2's 12d² + 13d per block.",
    latex=r"|\Theta| = \sum_{\theta \in \Theta} \prod \operatorname{shape}(\theta) = n_\mathrm{layers}\big(4 n_\mathrm{heads} d_\mathrm{model} d_\mathrm{head}"
    r" + 2 d_\mathrm{model} d_\mathrm{mlp} + b\,(3 n_\mathrm{heads} d_\mathrm{head} + d_\mathrm{mlp} + 6 d_\mathrm{model}) + (1-b)\, 2 d_\mathrm{model}\big)"
    r" + n_\mathrm{vocab} d_\mathrm{model} + \ell\, n_\mathrm{ctx} d_\mathrm{model} + (1+b)\, d_\mathrm{model} + (1-\tau)\, d_\mathrm{model} n_\mathrm{vocab}",
    hypotheses=("b = 1 with biases (attention, MLP, layer-norm β), ℓ = 1 for learned positions, τ = 1 for tied embeddings",
                "the count does not depend on the attention pattern (dense / banded) or the band width"),
    scope=Scope(Kind.MIXED, "symbolic in every dim; every combination of biases, tying and positional encoding; "
                "built with n_layers = 1, 2, 3 (each block declares the same Θ entries, checked)"),
    witness=_witness_formula,
    derived_from='Θ of GPTs built by `build_gpt` (every option, depths 1–3) and `spec.counting`',
    families=('gpt',),
)
def parameter_count_formula() -> None:
    """For every option combination and depth 1–3, Σ_Θ Π shape (symbolic in the dims) minus the formula expands to 0, as does symbolic_count; count() agrees at the config; the formula reproduces GPT-2's published counts."""
    for bias, tied, learned in _options():
        for n_layers in (1, 2, 3):
            for attention in (("dense",), ("dense", "banded")):
                config = _config(bias, tied, learned, n_layers).replace(attention=attention, band_width=2 if "banded" in attention else None)
                arch = build_gpt(config)
                where = f"bias={bias}, tied={tied}, learned={learned}, n_layers={n_layers}, {attention}"
                by_theta = sympy.Add(*(size(shape) for shape in arch.theta.values()))
                require_zero(by_theta.subs(L, n_layers) - formula(bias, tied, learned).subs(L, n_layers), f"Σ_Θ Π shape = formula ({where})")
                require_zero(symbolic_count(arch) - formula(bias, tied, learned), f"symbolic_count = formula in n_layers ({where})")
                require(count(arch) == int(formula(bias, tied, learned).subs(config.dims())), f"count = formula at the config ({where})")
    for name, figure in GPT2_FIGURES.items():
        require(formula(True, True, True).subs(PRESETS[name].config.dims()) == figure, f"{name}: the formula gives {figure:,}")


GPT2_FIGURES = {"gpt2-small": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
"""GPT-2's published parameter counts (docs/sources.md, reference figures)."""


# -- g. the FFN's share --------------------------------------------------------------------


def _share(arch: Architecture, weights_only: bool = False) -> tuple[sympy.Expr, sympy.Expr]:
    """(FFN parameters, all parameters) of block 0, read off Θ; optionally the weight
    matrices (W_*) only."""
    def keep(name: str) -> bool:
        return name.startswith("blocks.0.") and (not weights_only or name.rsplit(".", 1)[1].startswith("W_"))

    ffn = sympy.Add(*(size(s) for n, s in arch.theta.items() if keep(n) and ".mlp." in n))
    block = sympy.Add(*(size(s) for n, s in arch.theta.items() if keep(n)))
    return ffn, block


def preset_shares() -> dict[str, Fraction]:
    """The FFN's share of each preset's whole parameter count (embeddings included)."""
    shares = {}
    for name, preset in PRESETS.items():
        if not isinstance(preset.config, GPTConfig):
            continue  # the glossary's claim is about GPT's block (other families: their own theorems)
        one = build_gpt(preset.config.replace(n_layers=1))
        ffn, block = (int(x.subs(one.dims)) for x in _share(one))
        total = count(one) + (preset.config.n_layers - 1) * block
        shares[name] = Fraction(preset.config.n_layers * ffn, total)
    return shares


def _witness_share(examples: int) -> None:
    def check(case: tuple[int, int, bool]) -> None:
        heads, head, bias = case
        width = heads * head
        arch = build_gpt(GPTConfig(n_vocab=11, n_ctx=4, d_model=width, n_layers=1, n_heads=heads, d_mlp=4 * width, bias=bias))
        ffn, block = (int(x.subs(arch.dims)) for x in _share(arch))
        w_ffn, w_block = (int(x.subs(arch.dims)) for x in _share(arch, weights_only=True))
        witness_check(Fraction(w_ffn, w_block) == Fraction(2, 3), f"weights only: {w_ffn}/{w_block} ≠ 2/3 (d={width})")
        witness_check(Fraction(ffn, block) < Fraction(2, 3), f"{'with' if bias else 'without'} biases: {ffn}/{block} ≥ 2/3 (d={width})")
        if bias:
            witness_check(Fraction(2, 3) - Fraction(ffn, block) == Fraction(11, 3 * (12 * width + 13)), f"the gap at d={width}")
        witness_check(Fraction(ffn, count(arch)) < Fraction(ffn, block), "embeddings lower the share")

    for_all(st.tuples(st.integers(1, 64), st.integers(1, 128), st.booleans()), examples, check)


@theorem(
    name="ffn_share_below_two_thirds",
    title="the FFN holds exactly 2/3 of a block's weight matrices, and less than 2/3 of its parameters",
    statement="Per block with d_mlp = 4·d_model and n_heads·d_head = d_model = d: counting weight matrices only, the FFN "
    "holds exactly 8d² of 12d², i.e. 2/3 (and r/(r + 2) for d_mlp = r·d, so at least 2/3 exactly when d_mlp ≥ 4·d). "
    "With biases and layer-norm parameters it holds 8d² + 5d of 12d² + 13d, strictly less than 2/3 for every d: "
    "2/3 minus the share is 11/(3(12d + 13)), tending to 0 as d grows. Without biases but with layer-norm gains it holds "
    "8d² of 12d² + 2d, also less than 2/3. For a whole model the embeddings lower the share further: among the presets "
    "it is below 2/3 for every one (largest: gpt3-175b, 0.664; gpt2-small 0.455).",
    latex=r"\frac{8d^2}{12d^2} = \frac{2}{3},\qquad \frac{2}{3} - \frac{8d^2 + 5d}{12d^2 + 13d} = \frac{11}{3(12d + 13)} > 0,"
    r"\qquad \frac{8d^2}{12d^2 + 2d} < \frac{2}{3}\qquad (d \ge 1)",
    hypotheses=("d_mlp = 4·d_model and n_heads·d_head = d_model (GPT-2, GPT-3); d = d_model ≥ 1",
                "\"weight matrices\" are the Θ entries W_* (W_Q, W_K, W_V, W_O, W_in, W_out)"),
    scope=Scope(Kind.SYMBOLIC, "every d (the counts are read off Θ of built blocks, with d_mlp = 4d and d_head = d/n_heads "
                "substituted); the per-model shares: every preset, exactly"),
    witness=_witness_share,
    refutes="the FFN holds \"2/3 or more\" of the parameters (per block with d_mlp = 4·d_model: 8d² + 5d of 12d² + 13d) — "
    "false as stated: with biases and norms the share is below 2/3 for every d; it is exactly 2/3 for weight matrices only",
    derived_from='Θ of blocks built by `build_gpt` and of the presets',
    families=('gpt',),
)
def ffn_share_below_two_thirds() -> None:
    """The FFN and block counts are read off Θ of built blocks with d_mlp = 4d and d_head = d/n_heads substituted; the shares, their gap to 2/3 and its sign are computed by sympy; the presets' shares are exact fractions from their Θ."""
    gpt2_like = {dm: 4 * d, dh: d / H}
    for bias in (True, False):
        arch = build_gpt(GPTConfig(n_vocab=11, n_ctx=4, d_model=6, n_layers=1, n_heads=2, d_mlp=24, bias=bias))
        ffn, block = (sympy.expand(x.subs(gpt2_like)) for x in _share(arch))
        if bias:
            require_zero(ffn - (8 * d**2 + 5 * d), "with biases: FFN = 8d² + 5d")
            require_zero(block - (12 * d**2 + 13 * d), "with biases: block = 12d² + 13d")
            gap = sympy.simplify(sympy.Rational(2, 3) - ffn / block)
            require_zero(gap - sympy.Rational(11, 3) / (12 * d + 13), "2/3 − share = 11/(3(12d + 13))")
            require(gap.is_positive is True, "the gap is positive for every d ≥ 1: the share is below 2/3")
            require(sympy.limit(ffn / block, d, sympy.oo) == sympy.Rational(2, 3), "the share tends to 2/3 as d → ∞")
        else:
            require_zero(ffn - 8 * d**2, "without biases: FFN = 8d²")
            require_zero(block - (12 * d**2 + 2 * d), "without biases: block = 12d² + 2d (layer-norm gains)")
            require(sympy.simplify(sympy.Rational(2, 3) - ffn / block).is_positive is True, "below 2/3 for every d")
        w_ffn, w_block = (sympy.expand(x.subs(gpt2_like)) for x in _share(arch, weights_only=True))
        require_zero(w_ffn / w_block - sympy.Rational(2, 3), "weight matrices only: exactly 2/3")
        r = sympy.Symbol("r", positive=True)
        w_ffn_r, w_block_r = (sympy.expand(x.subs({dm: r * d, dh: d / H})) for x in _share(arch, weights_only=True))
        require_zero(w_ffn_r / w_block_r - r / (r + 2), "weight matrices, d_mlp = r d: share r/(r + 2)")
        require(sympy.solve(sympy.Eq(r / (r + 2), sympy.Rational(2, 3)), r) == [4], "r/(r + 2) = 2/3 exactly at r = 4 (increasing in r)")
    shares = preset_shares()
    require(all(share < Fraction(2, 3) for share in shares.values()), f"every preset is below 2/3: {shares}")
    require(max(shares, key=lambda n: shares[n]) == "gpt3-175b", "the largest share is gpt3-175b's")
    require(round(float(shares["gpt3-175b"]), 3) == 0.664 and round(float(shares["gpt2-small"]), 3) == 0.455,
            "gpt3-175b: 0.664, gpt2-small: 0.455 (as stated)")
