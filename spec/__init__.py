"""gptspec's specification: the formalism (dims, types, ops, graphs) and the architectures.

This package imports nothing else of gptspec's; every other part interprets its values.
"""

from spec import dims, masks, ops
from spec.architectures import FAMILIES, PRESETS, GPTConfig, build, build_gpt, family_of, preset
from spec.config import Config
from spec.counting import count, symbolic_count
from spec.errors import CheckpointError, ConfigError, FileError, GptSpecError, GraphError, ShapeError, TokenError
from spec.graph import Architecture, Composite, Graph, Node, ParamRef, Source, graph_input
from spec.objective import Objective
from spec.op import PRIMITIVES, Op, Primitive

__all__ = [
    "FAMILIES", "PRESETS", "PRIMITIVES", "Architecture", "Config", "build", "family_of", "CheckpointError", "Composite", "ConfigError", "FileError",
    "GPTConfig", "GptSpecError", "Graph", "GraphError", "Node", "Objective", "Op", "ParamRef", "Primitive",
    "ShapeError", "Source", "TokenError", "build_gpt", "count", "dims", "graph_input", "masks",
    "ops", "preset", "symbolic_count",
]
