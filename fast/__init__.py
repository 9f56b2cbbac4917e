"""The batched implementation: the same function as reference/, fast. Imports spec/ only."""

from fast.program import Program, State, compile, forward

__all__ = ["Program", "State", "compile", "forward"]
