"""gptspec's user-facing tools: the command line, checkpoint import/export, verification."""
