"""The primitive ops, one concern per module; importing this package registers them all."""

from spec.ops.activations import GeluErf, GeluTanh, Relu
from spec.ops.add import Add
from spec.ops.affine import Affine
from spec.ops.attention import AttentionScores, ConcatHeads, MaskedSoftmax, WeightedSum
from spec.ops.conv1d import Conv1d
from spec.ops.gate import SigmoidGate
from spec.ops.glu import Multiply, Silu
from spec.ops.layer_norm import LayerNorm
from spec.ops.one_hot import OneHot
from spec.ops.positional import LearnedPositional, SinusoidalPositional
from spec.ops.rms_norm import RMSNorm
from spec.ops.rotary import Rotary
from spec.ops.scale import Scale
from spec.ops.token_embedding import TokenEmbedding

__all__ = [
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
    "Multiply",
    "OneHot",
    "RMSNorm",
    "Relu",
    "Rotary",
    "Scale",
    "SigmoidGate",
    "Silu",
    "SinusoidalPositional",
    "TokenEmbedding",
    "WeightedSum",
]
