"""The one small hierarchy of errors gptspec raises.

Every message names the thing, what was expected, what was found, and the fix when there is
one, in the shape ``{name}={got}, but expected {what}={want} [{where}]; {fix}``.
"""

from __future__ import annotations


class GptSpecError(Exception):
    """Base of every error gptspec raises on purpose."""


class ConfigError(GptSpecError, ValueError):
    """A configuration or preset that does not describe a valid architecture."""


class ShapeError(GptSpecError, ValueError):
    """A tensor whose type (shape or axes) is not the one the spec declares."""


class GraphError(GptSpecError, ValueError):
    """A DAG that is not well formed: a cycle, an unreachable or unused node, a dangling edge."""


class CheckpointError(GptSpecError, ValueError):
    """Weights or a checkpoint configuration the spec cannot read or does not model."""


class TokenError(GptSpecError, ValueError):
    """A token sequence the spec does not define: an id outside the vocabulary, too long a sequence."""


class FileError(GptSpecError, ValueError):
    """A path that cannot be read or written as asked: missing, a directory where a file is
    expected, unreadable, too large, or a write that failed (a full device); nothing is left
    half-written."""

