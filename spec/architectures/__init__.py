"""Architecture families (config → Architecture builders), registered by name, and the one table
of named presets. Importing this package registers every built-in family and preset."""

from spec.architectures import presets as _presets  # noqa: F401  (registers the GPT presets)
from spec.architectures.gpt import GPTConfig, build_gpt
from spec.architectures.registry import (
    FAMILIES,
    PRESETS,
    Family,
    Preset,
    build,
    family,
    family_of,
    preset,
    register_family,
    register_preset,
)

__all__ = [
    "FAMILIES", "PRESETS", "Family", "GPTConfig", "Preset", "build", "build_gpt", "family", "family_of", "preset",
    "register_family", "register_preset",
]
