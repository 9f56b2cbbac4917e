"""Parameter counts come from Θ; they must reproduce the published figures (docs/sources.md)."""

from __future__ import annotations

import math

import pytest
import sympy

from spec import GPTConfig, build_gpt, count, preset, symbolic_count
from spec import dims as D
from spec.blocks import MLP, Attention, Block, Norm, pre_norm_block
from spec.graph import Architecture, Composite, graph_input
from spec.masks import Causal
from spec.ops import Affine
from spec.types import rows

GPT2 = {
    "gpt2-small": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
}


@pytest.mark.parametrize("name", GPT2)
def test_gpt2_counts_match_the_published_figures(name: str) -> None:
    got = count(build_gpt(preset(name).config))
    assert got == GPT2[name], f"count({name})={got:,}, but expected {GPT2[name]:,} [GPT-2 reference figure]"


# Brown et al. 2020, Table 2.1: the printed figure and its significant figures ("13.0B" has 3).
GPT3_TABLE = {
    "gpt3-small": (125e6, 3),
    "gpt3-medium": (350e6, 2),
    "gpt3-large": (760e6, 2),
    "gpt3-xl": (1.3e9, 2),
    "gpt3-2.7b": (2.7e9, 2),
    "gpt3-6.7b": (6.7e9, 2),
    "gpt3-13b": (13.0e9, 3),
    "gpt3-175b": (175.0e9, 4),
}
# Rows whose exact count does NOT round to the printed figure, and the count's relative
# difference from it (docs/conventions.md, "Reference figures"): Medium is a nominal label
# (355.9M, like GPT-2 medium's "345M" for 354.8M); 13B counts 12.85B under either reading of
# its inconsistent row; 175B counts 174.6B.
GPT3_OFF_BY = {"gpt3-medium": +0.0168, "gpt3-13b": -0.0113, "gpt3-175b": -0.0023}


def closed_form(c: GPTConfig) -> int:
    """GPT-3's count written independently of Θ: per block 4·d·(n_heads·d_head) + 3·n_heads·d_head
    + d (attention), 2·d·d_mlp + d_mlp + d (MLP), 4·d (two layer norms); plus W_E, W_P, final LN."""
    d, a, m = c.d_model, c.n_heads * c.head_width, c.mlp_width
    block = 4 * d * a + 3 * a + d + 2 * d * m + m + d + 4 * d
    return c.n_layers * block + c.n_vocab * d + c.n_ctx * d + 2 * d


@pytest.mark.parametrize("name", GPT3_TABLE)
def test_gpt3_counts_agree_with_a_closed_form_and_round_to_table_2_1(name: str) -> None:
    config = preset(name).config
    got = count(build_gpt(config))
    assert got == closed_form(config), f"count({name})={got:,}, but expected {closed_form(config):,} [closed form]"
    published, figures = GPT3_TABLE[name]
    rounded = round(got, figures - 1 - int(math.floor(math.log10(got))))
    if name in GPT3_OFF_BY:
        off = (got - published) / published
        assert rounded != published and abs(off - GPT3_OFF_BY[name]) < 5e-4, (
            f"count({name})={got:,} is off Table 2.1's {published:.4g} by {off:+.4f}, "
            f"but expected the documented {GPT3_OFF_BY[name]:+.4f}"
        )
    else:
        assert rounded == published, f"count({name})={got:,} rounds to {rounded:.4g}, but Table 2.1 says {published:.4g}"


def test_table_2_1_inconsistent_rows_are_the_ones_the_presets_flag() -> None:
    """n_heads·d_head ≠ d_model exactly in the XL and 13B rows as published; their presets say so."""
    table = {  # name: (n_layers, d_model, n_heads, d_head) as printed in Table 2.1
        "small": (12, 768, 12, 64), "medium": (24, 1024, 16, 64), "large": (24, 1536, 16, 96),
        "xl": (24, 2048, 24, 128), "2.7b": (32, 2560, 32, 80), "6.7b": (32, 4096, 32, 128),
        "13b": (40, 5140, 40, 128), "175b": (96, 12288, 96, 128),
    }
    inconsistent = {k for k, (_, d, h, dh) in table.items() if h * dh != d}
    assert inconsistent == {"xl", "13b"}
    for k in inconsistent:
        assert "≠" in preset(f"gpt3-{k}").note and "≠" in preset(f"gpt3-{k}-as-published").note
        published = preset(f"gpt3-{k}-as-published").config
        assert (published.d_model, published.n_heads, published.head_width) == table[k][1:]


def test_the_13b_readings_differ_as_documented() -> None:
    a = count(build_gpt(preset("gpt3-13b").config))
    b = count(build_gpt(preset("gpt3-13b-as-published").config))
    assert a == 12_853_386_240 == closed_form(preset("gpt3-13b").config)
    assert b == closed_form(preset("gpt3-13b-as-published").config)
    assert a < b


def test_symbolic_count_of_a_gpt2_block_is_12d2_plus_13d() -> None:
    arch = build_gpt(preset("gpt2-small").config)
    formula = symbolic_count(arch)
    d = D.d_model
    gpt2_dims = {D.d_head * D.n_heads: d, D.d_mlp: 4 * d}
    per_block = sympy.expand(formula.coeff(D.n_layers).subs(D.d_mlp, 4 * d).subs(D.d_head, d / D.n_heads))
    assert sympy.expand(per_block - (12 * d**2 + 13 * d)) == 0, f"per block {per_block}, but expected 12 d² + 13 d {gpt2_dims}"
    assert int(formula.subs(arch.dims)) == count(arch)


def test_symbolic_count_does_not_fold_non_uniform_blocks() -> None:
    """Blocks of different widths (d, then d/2 after an affine reducer, as LinearGPT) are not
    folded into n_layers × one block, and the formula still counts exactly."""
    dims = {D.n_vocab: 10, D.n_ctx: 4, D.d_model: 8, D.n_heads: 2, D.n_layers: 2}
    arch = Architecture("two widths", {"x": rows(D.T, D.d_model)}, dims)
    half = D.d_model / 2

    def block(name: str, width: sympy.Expr) -> Composite:
        spec = Block(Attention(D.n_heads, width / D.n_heads, Causal(), sympy.Integer(1), bias=True), Norm("layer", 1e-5, True),
                     MLP(4 * width, "relu", True))
        return pre_norm_block(arch.declare, name, dims, spec, d=width)

    h = arch.add("blocks.0", block("blocks.0", D.d_model), {"x": graph_input("x")})
    h = arch.add("reduce", Affine(D.d_model, half), {"x": h}, {"W": arch.declare("reduce.W", (D.d_model, half)), "b": arch.declare("reduce.b", (half,))})
    arch.output("y", arch.add("blocks.1", block("blocks.1", half), {"x": h}))
    arch.validate()
    formula = symbolic_count(arch)
    assert not formula.has(D.n_layers), f"the blocks differ, but the formula {formula} folds them into n_layers × one"
    assert int(formula.subs(arch.dims)) == count(arch) == sum(math.prod(s) for s in arch.theta_shapes().values())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("tied", [True, False])
def test_count_is_the_sum_of_theta_shape_products(bias: bool, tied: bool) -> None:
    c = GPTConfig(n_vocab=50, n_ctx=7, d_model=12, n_layers=3, n_heads=3, d_head=5, d_mlp=20, bias=bias, tied=tied)
    arch = build_gpt(c)
    assert count(arch) == sum(math.prod(s) for s in arch.theta_shapes().values())
    a = c.n_heads * c.head_width
    block = 3 * 12 * a + a * 12 + 2 * 12 * 20 + (3 * a + 12 + 20 + 12 + 4 * 12 if bias else 2 * 12)
    expected = 3 * block + 50 * 12 + 7 * 12 + (2 * 12 if bias else 12) + (0 if tied else 12 * 50)
    assert count(arch) == expected
