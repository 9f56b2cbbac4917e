"""The primitive ops, one concern per module; importing this package registers them all.

:data:`MODULES` names the modules that define registered ops. Each interpreter keeps its
functions for an op in a module of the same name (reference/ops/, fast/kernels/) and imports them
all with :func:`import_all`, so a new module of ops is added in one list, here.
"""

import importlib

from spec.ops.activations import GeluErf, GeluTanh, Relu
from spec.ops.add import Add
from spec.ops.affine import Affine
from spec.ops.attention import AttentionScores, ConcatHeads, MaskedSoftmax, WeightedSum
from spec.ops.conv1d import Conv1d
from spec.ops.gate import SigmoidGate
from spec.ops.glu import Multiply, Silu
from spec.ops.heads import TakeHead
from spec.ops.layer_norm import LayerNorm
from spec.ops.moe import MoeExperts, MoeRouter
from spec.ops.one_hot import OneHot
from spec.ops.positional import LearnedPositional, SinusoidalPositional
from spec.ops.rms_norm import RMSNorm
from spec.ops.rotary import Rotary
from spec.ops.scale import Scale
from spec.ops.softcap import SoftCap
from spec.ops.token_embedding import TokenEmbedding

MODULES: tuple[str, ...] = (
    "activations",
    "add",
    "affine",
    "attention",
    "conv1d",
    "gate",
    "glu",
    "heads",
    "layer_norm",
    "moe",
    "one_hot",
    "positional",
    "rms_norm",
    "rotary",
    "scale",
    "softcap",
    "token_embedding",
)
"""The modules of spec/ops/ that register primitives (helpers such as ``elementwise`` excluded)."""


def import_all(package: str) -> None:
    """Import ``package.<module>`` for every module in :data:`MODULES` (which registers an
    interpreter's functions); a missing module is an error that names it."""
    for name in MODULES:
        try:
            importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
            raise ImportError(
                f"{package}.{name} is missing, but expected a module of {package} for every module of spec/ops/ "
                f"(spec.ops.MODULES lists {name!r}); add {package.replace('.', '/')}/{name}.py with its functions"
            ) from error


__all__ = [
    "MODULES",
    "import_all",
    "Add",
    "Affine",
    "AttentionScores",
    "ConcatHeads",
    "Conv1d",
    "GeluErf",
    "GeluTanh",
    "LayerNorm",
    "LearnedPositional",
    "MaskedSoftmax",
    "MoeExperts",
    "MoeRouter",
    "Multiply",
    "OneHot",
    "RMSNorm",
    "Relu",
    "Rotary",
    "Scale",
    "SoftCap",
    "SigmoidGate",
    "Silu",
    "SinusoidalPositional",
    "TakeHead",
    "TokenEmbedding",
    "WeightedSum",
]
