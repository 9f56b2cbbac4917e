"""gptspec's user-facing tools: the command line, checkpoint import/export, verification."""

__version__ = "0.2.0"
"""The release (CHANGELOG.md); pyproject.toml reads it from here, so it is written once."""
