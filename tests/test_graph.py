"""The formalism refuses malformed DAGs and configs with errors that say what and where."""

from __future__ import annotations

import pytest
import sympy

from spec import (
    Architecture,
    ConfigError,
    GPTConfig,
    Graph,
    GraphError,
    ShapeError,
    build_gpt,
    graph_input,
    preset,
)
from spec import dims as D
from spec.graph import Composite, Source
from spec.masks import Banded, Causal
from spec.ops import Add, Affine, LayerNorm, Relu
from spec.types import rows


def two_node_arch() -> Architecture:
    return Architecture("toy", {"x": rows(D.T, D.d_model)}, {D.d_model: 4})


def test_a_cycle_is_refused_and_shown() -> None:
    arch = two_node_arch()
    arch.add("a", Add(D.d_model), {"a": graph_input("x"), "b": Source("c")})
    arch.add("b", Relu(D.d_model), {"x": Source("a")})
    arch.add("c", Relu(D.d_model), {"x": Source("b")})
    arch.output("y", Source("c"))
    with pytest.raises(GraphError, match=r"cycle .*a → b → c → a|cycle .*b → c → a → b|cycle .*c → a → b → c"):
        arch.validate()


def test_a_type_mismatch_names_the_edge_and_both_types() -> None:
    arch = Architecture("toy", {"x": rows(D.T, D.d_model)}, {D.d_model: 4, D.d_mlp: 6})
    arch.add("up", Affine(D.d_model, D.d_mlp), {"x": graph_input("x")}, {"W": arch.declare("W", (D.d_model, D.d_mlp)), "b": arch.declare("b", (D.d_mlp,))})
    arch.add("ln", LayerNorm(D.d_model), {"x": Source("up")}, {"gamma": arch.declare("g", (D.d_model,)), "beta": arch.declare("beta", (D.d_model,))})
    arch.output("y", Source("ln"))
    with pytest.raises(ShapeError) as info:
        arch.validate()
    message = str(info.value)
    assert "edge up.y → ln.x" in message and "(T, 6)" in message and "(T, 4)" in message


def test_types_that_agree_only_after_substitution_are_accepted() -> None:
    arch = Architecture("toy", {"x": rows(D.T, D.d_model)}, {D.d_model: 4, D.d_mlp: 4})
    arch.add("up", Affine(D.d_model, D.d_mlp, bias=False), {"x": graph_input("x")}, {"W": arch.declare("W", (D.d_model, D.d_mlp))})
    arch.add("ln", LayerNorm(D.d_model, bias=False), {"x": Source("up")}, {"gamma": arch.declare("g", (D.d_model,))})
    arch.output("y", Source("ln"))
    arch.validate()


def test_a_missing_node_suggests_the_nearest_name() -> None:
    arch = two_node_arch()
    arch.add("relu", Relu(D.d_model), {"x": graph_input("x")})
    arch.output("y", Source("rleu"))
    with pytest.raises(GraphError, match="did you mean 'relu'"):
        arch.validate()


def test_unused_and_unreachable_nodes_are_refused() -> None:
    arch = two_node_arch()
    arch.add("used", Relu(D.d_model), {"x": graph_input("x")})
    arch.add("dead_end", Relu(D.d_model), {"x": graph_input("x")})
    arch.output("y", Source("used"))
    with pytest.raises(GraphError, match="'dead_end' feeds no output"):
        arch.validate()


def test_wrong_ports_and_params_are_refused() -> None:
    arch = two_node_arch()
    arch.add("relu", Relu(D.d_model), {"input": graph_input("x")})
    arch.output("y", Source("relu"))
    with pytest.raises(GraphError, match=r"input ports=\['input'\], but expected ports=\['x'\]"):
        arch.validate()
    arch = two_node_arch()
    arch.add("ln", LayerNorm(D.d_model), {"x": graph_input("x")}, {"gamma": arch.declare("g", (D.d_model,))})
    arch.output("y", Source("ln"))
    with pytest.raises(GraphError, match=r"parameters=\['gamma'\], but expected parameters=\['beta', 'gamma'\]"):
        arch.validate()


def test_duplicate_and_unused_parameters_are_refused() -> None:
    arch = two_node_arch()
    arch.declare("W", (D.d_model,))
    with pytest.raises(ConfigError, match="declared twice"):
        arch.declare("W", (D.d_model,))
    arch.add("relu", Relu(D.d_model), {"x": graph_input("x")})
    arch.output("y", Source("relu"))
    with pytest.raises(GraphError, match=r"Θ entries \['W'\] are read by no node"):
        arch.validate()


def test_a_parameter_of_the_wrong_shape_is_refused() -> None:
    arch = two_node_arch()
    arch.add("ln", LayerNorm(D.d_model, bias=False), {"x": graph_input("x")}, {"gamma": arch.declare("g", (D.d_model + 1,))})
    arch.output("y", Source("ln"))
    with pytest.raises(ShapeError, match=r"parameter g bound to ln.gamma"):
        arch.validate()


def test_composites_nest_and_expand_to_primitives_in_order() -> None:
    arch = build_gpt(preset("tiny").config)
    paths = [path for path, _, _ in arch.expand()]
    assert paths[:2] == ["one_hot", "token_embedding"]
    assert paths[-1] == "unembed"
    assert "blocks.1.attn.head_1.softmax" in paths
    assert paths.index("blocks.0.add_mlp") < paths.index("blocks.1.ln_1")
    block = arch.nodes["blocks.0"].op
    assert isinstance(block, Composite) and block.kind == "block"


def test_masks_and_scales_follow_the_config_per_layer() -> None:
    config = GPTConfig(n_vocab=8, n_ctx=8, d_model=4, n_layers=4, n_heads=2, attention=("dense", "banded"), band_width=3, scale_by_inverse_layer=True)
    ops = {path: node.op for path, node, _ in build_gpt(config).expand()}
    assert ops["blocks.0.attn.head_0.softmax"].mask == Causal()  # type: ignore[attr-defined]
    assert ops["blocks.1.attn.head_0.softmax"].mask == Banded(3)  # type: ignore[attr-defined]
    assert ops["blocks.3.attn.head_1.scores"].scale == 1 / (sympy.sqrt(2) * 4)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"d_model": 0}, r"d_model=0, but expected a whole number ≥ 1"),
        ({"n_heads": -2}, r"n_heads=-2, but expected a whole number ≥ 1"),
        ({"n_vocab": 2.5}, r"n_vocab=2.5, but expected a whole number"),
        ({"bias": "no"}, r"bias='no', but expected true or false"),
        ({"tied": 0}, r"tied=0, but expected true or false"),
        ({"attn_scale": float("inf")}, r"attn_scale=inf, but expected a finite number"),
        ({"attn_scale": True}, r"attn_scale=True, but expected a finite number"),
        ({"eps": float("nan")}, r"eps=nan, but expected a finite number"),
        ({"attention": ["dense"]}, r"attention=\['dense'\], but expected a tuple"),
        ({"n_heads": 3}, r"d_model=16 is not divisible by n_heads=3"),
        ({"activation": "gelu_tahn"}, r"activation='gelu_tahn'.*did you mean 'gelu_tanh'"),
        ({"activation": "swish"}, r"activation='swish', but expected one of"),
        ({"attention": ("dense", "banded")}, r"band_width=None"),
        ({"attention": ("sparse",)}, r"attention=\('sparse',\)"),
        ({"eps": -1.0}, r"eps=-1.0"),
        ({"positional": "rotary"}, r"positional='rotary'"),
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset("tiny").config.replace(**changes)


def test_unknown_preset_suggests_the_nearest_names() -> None:
    with pytest.raises(ConfigError, match=r"preset='gpt2-smal'.*did you mean 'gpt2-small'"):
        preset("gpt2-smal")


def test_unknown_config_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="n_layer"):
        preset("tiny").config.replace(n_layer=3)


def test_widths_are_arguments_so_heads_need_not_tile_d_model() -> None:
    """n_heads·d_head ≠ d_model builds and types check (the 13B-as-published reading)."""
    arch = build_gpt(GPTConfig(n_vocab=8, n_ctx=8, d_model=10, n_layers=1, n_heads=3, d_head=4))
    assert arch.theta_shapes()["blocks.0.attn.W_O"] == (3, 4, 10)


def test_cross_attention_with_s_different_from_t_types_check() -> None:
    """The head composite takes S key rows; an encoder–decoder fits without new formalism."""
    from spec.blocks import Attention, multi_head_attention
    from spec.types import rows as rows_type

    arch = Architecture("xattn", {"x": rows_type(D.T, D.d_model), "memory": rows_type(D.S, D.d_model)}, {D.d_model: 6, D.n_heads: 2, D.d_head: 3})
    attention = Attention(D.n_heads, D.d_head, Causal(), 1 / sympy.sqrt(3), bias=True)
    mha = multi_head_attention(arch.declare, "cross", arch.dims, attention, d_in=D.d_model, d_out=D.d_model, q_rows=D.T, k_rows=D.S)
    arch.add("cross", mha, {"x_q": graph_input("x"), "x_kv": graph_input("memory")})
    arch.output("y", Source("cross"))
    arch.validate()
    with pytest.raises(ShapeError, match=r"\(T, 6\)"):
        bad = Architecture("xattn", {"x": rows_type(D.T, D.d_model), "memory": rows_type(D.S, D.d_model)}, {D.d_model: 6, D.n_heads: 2, D.d_head: 3})
        mha = multi_head_attention(bad.declare, "cross", bad.dims, attention, d_in=D.d_model, d_out=D.d_model, q_rows=D.T, k_rows=D.T)
        bad.add("cross", mha, {"x_q": graph_input("x"), "x_kv": graph_input("memory")})
        bad.output("y", Source("cross"))
        bad.validate()


def test_graph_without_outputs_is_refused() -> None:
    g = Graph("empty", {"x": rows(D.T, 3)})
    with pytest.raises(GraphError, match="at least one output"):
        g.validate_structure()
