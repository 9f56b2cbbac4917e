"""Minimal counterexamples: a failing case shrunk to the smallest batch, length, depth and width
that still fails the same way, and a standalone script that reproduces it.

Shrinking is greedy: candidates are tried smallest first — when the target can be rebuilt for
another config (a class, a factory, a callable, an Implementation; not an instance), each size
field of the config (``n_layers``, ``n_heads``, ``d_model``, …) lowered towards 1 (first, since
a smaller model makes every later candidate cheaper to judge); then fewer rows, shorter rows,
narrower batches, fewer new tokens, a plainer θ magnitude — and the first that still fails the
same way (wrong values, or a padded-position violation) is kept, until no candidate fails or
the attempt budget is spent. A candidate config the family or the layout refuses (a width
the heads do not divide; a shape the native format cannot express) is skipped.

The greedy loop (:func:`shrink`) and the smaller configs (:func:`smaller_configs`) serve every
kind of case: a padded batch's candidates are :func:`candidates`, a gradient example's
``gptspec.verify.grad.grad_candidates``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from gptspec.verify.cases import Batch, Case
from gptspec.verify.draws import MAGNITUDES, ThetaDraw

SIZE_FIELDS = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "d_mlp", "n_ctx", "n_vocab")
"""Config fields shrinking lowers, in this order, when the config has them (ints only)."""
MINIMUM = {"n_vocab": 2}
"""The least value shrinking tries (a one-token vocabulary has one constant argmax)."""

C = TypeVar("C")
"""A case: :class:`~gptspec.verify.cases.Case`, or a gradient run's ``GradCase``."""
R = TypeVar("R")
"""What ``still_fails`` finds on a candidate that fails the same way (a verdict)."""


def shrink(
    case: C, still_fails: Callable[[C], R | None], candidates: Callable[[C], Iterable[C]], *, max_attempts: int = 80,
    max_seconds: float = 60.0,
) -> tuple[C, R | None, int]:
    """The smallest case found that still fails (``still_fails`` returns its verdict, or None
    when the candidate passes or fails otherwise), its verdict, and how many candidates were
    tried: greedy over ``candidates(case)`` (smallest first), restarting from each candidate that
    still fails. One loop for every kind of case — a padded batch (:func:`candidates`), a gradient
    example (gptspec/verify/grad.py: ``grad_candidates``)."""
    attempts = 0
    verdict: R | None = None
    start = time.perf_counter()
    improved = True
    while improved and attempts < max_attempts and time.perf_counter() - start < max_seconds:
        improved = False
        for candidate in candidates(case):
            if attempts >= max_attempts or time.perf_counter() - start >= max_seconds:
                break
            attempts += 1
            found = still_fails(candidate)
            if found is not None:
                case, verdict, improved = candidate, found, True
                break
    return case, verdict, attempts


def candidates(case: Case, resizable: bool, config_ok: Callable[[Any], bool]) -> Iterator[Case]:
    """A padded batch's smaller candidates, smallest first (the module docstring's order)."""
    if resizable:  # a smaller model first: every later candidate is then cheaper to judge
        for config in smaller_configs(case.config):
            shrunk = _fit(replace(case, config=config), config)
            if shrunk is not None and config_ok(config):
                yield shrunk
    batch = case.batch
    rows = len(batch.tokens)
    if rows > 1:
        for b in range(rows):
            keep = [i for i in range(rows) if i != b]
            yield replace(case, batch=_rows(batch, keep), source=None if case.source is None else _rows(case.source, keep))
    if case.new_tokens > 1:
        yield replace(case, new_tokens=1)
        yield replace(case, new_tokens=case.new_tokens // 2)
    longest = max((len(t) for t in batch.tokens), default=0)
    for width in sorted({1, 2, batch.width // 2, batch.width - 1}):
        if 1 <= width < batch.width and width >= (1 if not case.new_tokens else 1):
            yield replace(case, batch=_cut(batch, width))
    if longest < batch.width:
        yield replace(case, batch=_cut(batch, max(1, longest)))
    for width in sorted({1, 2, batch.width // 2, batch.width - 1}):
        if 1 <= width < batch.width and any(0 < len(t) < batch.width for t in batch.tokens):
            yield replace(case, batch=_keep_padding(batch, width))
    for b, row in enumerate(batch.tokens):
        for n in sorted({1, len(row) // 2, len(row) - 1}):
            if 1 <= n < len(row):
                yield replace(case, batch=replace(batch, tokens=tuple(r[:n] if i == b else r for i, r in enumerate(batch.tokens))))
    for b, left in enumerate(batch.left_padded):
        if left and len(batch.tokens[b]) < batch.width and not case.new_tokens:
            yield replace(case, batch=replace(batch, left_padded=tuple(False if i == b else x for i, x in enumerate(batch.left_padded))))
    if case.draw is None:  # θ given: no magnitude to lower
        return
    level = MAGNITUDES.index(case.draw.magnitude)
    for plainer in MAGNITUDES[:level]:
        yield replace(case, draw=ThetaDraw(case.draw.seed, plainer))


def smaller_configs(config: Any, minimum: Mapping[str, int] = MINIMUM) -> Iterator[Any]:
    """``config`` with one size field (:data:`SIZE_FIELDS`, in order) lowered — to its least
    value (``minimum``, else 1), 2, half, one less — each the family accepts (``config.replace``
    raising: skipped). The caller fits its case to each and asks the layout (``config_ok``)."""
    names = {f.name for f in fields(config)} if hasattr(config, "__dataclass_fields__") else set()
    for name in SIZE_FIELDS:
        value = getattr(config, name, None) if name in names else None
        least = minimum.get(name, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= least:
            continue
        for smaller in sorted({least, 2, value // 2, value - 1}):
            if not least <= smaller < value:
                continue
            try:
                yield config.replace(**{name: smaller})
            except Exception:  # noqa: BLE001 - the family refuses this size: not a candidate
                continue


def _fit(case: Case, config: Any) -> Case | None:
    """The case adjusted to a smaller config: token ids folded into n_vocab, the batch within n_ctx."""
    n_vocab = getattr(config, "n_vocab", None)
    n_ctx = getattr(config, "n_ctx", None)
    batch = case.batch
    if isinstance(n_ctx, int) and batch.width + case.new_tokens > n_ctx:
        return None
    if isinstance(n_vocab, int):
        batch = replace(batch, tokens=tuple(tuple(t % n_vocab for t in row) for row in batch.tokens))
    return replace(case, batch=batch)


def _rows(batch: Batch, keep: list[int]) -> Batch:
    return replace(batch, tokens=tuple(batch.tokens[i] for i in keep), left_padded=tuple(batch.left_padded[i] for i in keep))


def _keep_padding(batch: Batch, width: int) -> Batch:
    """A narrower batch in which each row keeps its amount of padding (as far as it fits)."""
    rows = tuple(row[: max(0, len(row) - (batch.width - width))] if len(row) < batch.width else row[:width] for row in batch.tokens)
    return replace(batch, tokens=rows, width=width)


def _cut(batch: Batch, width: int) -> Batch:
    """Each row's first tokens, within ``width``."""
    return replace(batch, tokens=tuple(row[:width] for row in batch.tokens), width=width)


def script(target: str, options: dict[str, Any], component: str, case: Case) -> str:
    """A standalone Python script that reproduces ``case`` for ``component``: it prints the
    verdict and exits 1 while the failure is there, 0 once it is fixed."""
    import os

    config = case.config
    module = type(config).__module__
    path, sep, name = target.rpartition(":")
    if sep and path.endswith(".py"):
        target = f"{os.path.abspath(path)}:{name}"
    lines = [
        f"# gptspec verify: minimal counterexample for {component!r}; run it from the directory the target imports from.",
        "# It prints the verdict and exits 1 while the failure is there, 0 once it is fixed.",
        "import os, sys",
        "sys.path.insert(0, os.getcwd())",
        "from gptspec.verify import reproduce",
        "from gptspec.verify.cases import Batch, Case",
        "from gptspec.verify.draws import ThetaDraw",
        f"from {module} import {type(config).__name__}",
        "",
        f"case = {case!r}",
        f"verdict = reproduce({target!r}, {component!r}, case, **{options!r})",
        "print(verdict)",
        "raise SystemExit(0 if verdict.passed else 1)",
    ]
    return "\n".join(lines) + "\n"
