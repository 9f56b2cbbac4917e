"""Wrong argument types at the public Python API raise gptspec's typed errors (spec/errors.py) in
the house message shape — ``{name}={got}, but expected {what} [{where}]`` — never a foreign
AttributeError, TypeError or numpy ValueError from deep inside.

The table covers every entry point docs/architecture.md lists under "The public ways to run"
(:func:`test_the_table_covers_the_documented_entry_points` reads the page), the functions the
README's Python API section calls, and the tokenizer and sampler of the language-model tools."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fast
import fast.bpe
import reference
from gptspec.checkpoint import export_state_dict, load
from gptspec.run import runner
from spec import GPTConfig, build, build_gpt, count, preset, symbolic_count
from spec.errors import CheckpointError, ConfigError, FileError, GptSpecError, ShapeError, TokenError
from spec.lm import Sampler
from spec.ops import LayerNorm
from spec.theta import random_theta

ROOT = Path(__file__).resolve().parent.parent
CONFIG = GPTConfig(n_vocab=7, n_ctx=4, d_model=4, n_layers=1, n_heads=2, name="tiny-api")
ARCH = build(CONFIG)
THETA = random_theta(ARCH, 0)
OP = LayerNorm(4)
X = {"x": np.ones((2, 4))}
PARAMS = {"gamma": np.ones(4), "beta": np.zeros(4)}


def program() -> Any:
    return fast.compile(ARCH, THETA, "float64")


Row = tuple[str, Callable[[], object], type[GptSpecError], str]
ROWS: list[Row] = [
    # (entry point, a call with a wrong type, the error class, a fragment of its message)
    ("reference.run_op", lambda: reference.run_op("layer_norm", X, PARAMS), ShapeError, "op of type str"),  # type: ignore[arg-type]
    ("reference.run_op", lambda: reference.run_op(OP, None, PARAMS), ShapeError, "inputs of type NoneType"),  # type: ignore[arg-type]
    ("reference.run_op", lambda: reference.run_op(OP, X, [1.0]), ShapeError, "params of type list"),  # type: ignore[arg-type]
    ("reference.evaluate", lambda: reference.evaluate(CONFIG, THETA, {"ids": [1]}), ShapeError, "architecture of type GPTConfig"),  # type: ignore[arg-type]
    ("reference.evaluate", lambda: reference.evaluate(ARCH, THETA, [1]), ShapeError, "inputs of type list"),  # type: ignore[arg-type]
    ("reference.evaluate", lambda: reference.evaluate(ARCH, THETA, {"ids": [1]}, keep="everything"), ConfigError, "keep='everything'"),  # type: ignore[arg-type]
    ("reference.forward", lambda: reference.forward(CONFIG, THETA, [1]), ShapeError, "architecture of type GPTConfig"),  # type: ignore[arg-type]
    ("reference.forward", lambda: reference.forward(ARCH, None, [1]), ShapeError, "θ of type NoneType"),  # type: ignore[arg-type]
    ("reference.forward", lambda: reference.forward(ARCH, THETA, [1.5]), TokenError, "dtype float64"),
    ("gptspec.checkpoint.load", lambda: load(None), FileError, "path=None of type NoneType"),  # type: ignore[arg-type]
    ("gptspec.checkpoint.load", lambda: load(3), FileError, "of type int"),  # type: ignore[arg-type]
    ("gptspec.checkpoint.load", lambda: load("x.safetensors", lazy="yes"), ConfigError, "lazy='yes'"),  # type: ignore[call-overload]
    ("fast.run_op", lambda: fast.run_op(None, X, PARAMS), ShapeError, "op of type NoneType"),  # type: ignore[arg-type]
    ("fast.run_op", lambda: fast.run_op(OP, None, PARAMS), ShapeError, "inputs of type NoneType"),  # type: ignore[arg-type]
    ("fast.run_op", lambda: fast.run_op(OP, X, PARAMS, 32), ConfigError, "dtype=32"),
    ("fast.compile", lambda: fast.compile(CONFIG, THETA, "float64"), ShapeError, "architecture of type GPTConfig"),  # type: ignore[arg-type]
    ("fast.compile", lambda: fast.compile(ARCH, [THETA], "float64"), ShapeError, "θ of type list"),  # type: ignore[arg-type]
    ("fast.compile", lambda: fast.compile(ARCH, THETA, 3.5), ConfigError, "dtype=3.5"),  # type: ignore[arg-type]
    ("Program.forward", lambda: program().forward("1 2"), TokenError, "dtype <U3"),
    ("Program.prefill", lambda: program().prefill(None), TokenError, "dtype object"),
    ("Program.decode", lambda: program().decode(None, np.array([1])), ShapeError, "state of type NoneType"),  # type: ignore[arg-type]
    ("Program.value_and_grad", lambda: program().value_and_grad("1 2"), TokenError, "dtype <U3"),
    ("gptspec.run.runner", lambda: runner("fast", CONFIG, THETA), ShapeError, "architecture of type GPTConfig"),  # type: ignore[arg-type]
    ("gptspec.run.runner", lambda: runner(None, ARCH, THETA), ConfigError, "--impl None"),  # type: ignore[arg-type]
    ("gptspec.run.runner", lambda: runner("fast", ARCH, THETA).generate([1], 2, None, ()), ConfigError, "sampler of type NoneType"),  # type: ignore[arg-type]
    ("gptspec.run.runner", lambda: runner("reference", ARCH, THETA).generate([1], 2, "greedy", ()), ConfigError, "sampler of type str"),  # type: ignore[arg-type]
    ("gptspec.run.runner", lambda: runner("reference", ARCH, THETA).token_log_probs(None), TokenError, "dtype object"),  # type: ignore[arg-type]
    # the README's Python API
    ("spec.build", lambda: build({"n_vocab": 3}), ConfigError, "config of type dict"),  # type: ignore[arg-type]
    ("spec.build_gpt", lambda: build_gpt(None), ConfigError, "config of type NoneType"),  # type: ignore[arg-type]
    ("spec.preset", lambda: preset(None), ConfigError, "preset=None"),  # type: ignore[arg-type]
    ("spec.count", lambda: count(CONFIG), ShapeError, "architecture of type GPTConfig"),  # type: ignore[arg-type]
    ("spec.symbolic_count", lambda: symbolic_count(None), ShapeError, "architecture of type NoneType"),  # type: ignore[arg-type]
    ("spec.theta.random_theta", lambda: random_theta(CONFIG, 0), ShapeError, "architecture of type GPTConfig"),  # type: ignore[arg-type]
    ("spec.theta.random_theta", lambda: random_theta(ARCH, "0"), ConfigError, "seed='0'"),  # type: ignore[arg-type]
    ("gptspec.checkpoint.export_state_dict", lambda: export_state_dict(ARCH, THETA, None), ConfigError, "layout=None"),  # type: ignore[arg-type]
    ("gptspec.checkpoint.export_state_dict", lambda: export_state_dict(ARCH, None, "hf-gpt2"), ShapeError, "θ of type NoneType"),  # type: ignore[arg-type]
    # the tokenizer and the sampler
    ("fast.bpe.train", lambda: fast.bpe.train(None, 300), ConfigError, "corpus of type NoneType"),  # type: ignore[arg-type]
    ("fast.bpe.train", lambda: fast.bpe.train(["a b", b"c d"], 300), ConfigError, "corpus document 1 of type bytes"),  # type: ignore[list-item]
    ("fast.bpe.train", lambda: fast.bpe.train("a b", "300"), ConfigError, "vocab size='300' of type str"),  # type: ignore[arg-type]
    ("spec.lm.Sampler", lambda: Sampler(1.0, None, -1).rng(), ConfigError, "seed=-1"),
    ("spec.lm.Sampler", lambda: Sampler(1.0, None, "7"), ConfigError, "seed='7'"),  # type: ignore[arg-type]
    ("spec.lm.Sampler", lambda: Sampler("1"), ConfigError, "temperature='1'"),  # type: ignore[arg-type]
]

HOUSE = re.compile(r"^.+, but expected .+ \[[^\]]+\]")
"""``{name}={got}, but expected {what} [{where}]`` (then, optionally, the fix)."""


@pytest.mark.parametrize(("entry", "call", "error", "fragment"), ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)])
def test_a_wrong_type_is_a_typed_error_in_the_house_shape(entry: str, call: Callable[[], object], error: type[GptSpecError], fragment: str) -> None:
    with pytest.raises(GptSpecError) as raised:
        call()
    message = str(raised.value)
    assert type(raised.value) is error, f"{entry}: {type(raised.value).__name__}, but expected {error.__name__}: {message}"
    assert fragment in message, f"{entry}: {fragment!r} not in {message!r}"
    assert HOUSE.match(message) and "\n" not in message, f"{entry}: not the house shape: {message!r}"


def test_the_table_covers_the_documented_entry_points() -> None:
    """Every call docs/architecture.md lists under "The public ways to run" has rows here."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = " ".join(text.split("## The public ways to run", 1)[1].split("\n## ", 1)[0].split())
    documented = set(re.findall(r"`([a-z_][\w.]*)\(", section))
    methods = re.search(r"`Program\.forward / ([^`]*)`", section)
    assert methods is not None, "the page lists Program's methods as `Program.forward / prefill / decode`"
    documented |= {"Program.forward"} | {f"Program.{m.strip()}" for m in methods.group(1).split("/")}
    assert {"reference.forward", "fast.compile", "gptspec.checkpoint.load", "gptspec.run.runner"} <= documented, documented
    assert documented <= {row[0] for row in ROWS}, f"entry points without a wrong-type row: {sorted(documented - {row[0] for row in ROWS})}"


def test_a_checkpoint_error_still_names_the_file(tmp_path: Path) -> None:
    """A path of the right type that is not a checkpoint keeps its own error (not a type error)."""
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "missing.safetensors")
