"""Architecture builders (config → Architecture) and the table of named presets."""

from spec.architectures.gpt import GPTConfig, build_gpt
from spec.architectures.presets import PRESETS, Preset, preset

__all__ = ["GPTConfig", "PRESETS", "Preset", "build_gpt", "preset"]
