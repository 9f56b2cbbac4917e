"""LaTeX → MathML, offline, from the ops' own LaTeX (``Primitive.latex``, ``Relation.latex()``).

The formula exists once, in spec/; this module only converts it, with latex2mathml (pure Python).
One input fix is applied before converting, because latex2mathml renders the environment
wrongly (it emits a bare ``&`` — not well-formed XML — and a line break Chromium ignores):

* ``aligned`` is converted as ``split``, which latex2mathml renders as the aligned table it is.

Every conversion is checked: the MathML must be well-formed XML, hold no ``<merror>`` and no
command latex2mathml passed through unconverted (``<mi>\\foo</mi>``); otherwise a :class:`~spec.errors.ConfigError` names the LaTeX (tests/test_docs.py converts every
primitive's and every relation family's LaTeX).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

from latex2mathml.converter import convert

from spec.errors import ConfigError

INPUT_FIXES: tuple[tuple[str, str], ...] = (
    (r"\begin{aligned}", r"\begin{split}"),
    (r"\end{aligned}", r"\end{split}"),
)
"""Textual rewrites of the LaTeX before conversion (see the module docstring)."""

MATHML = "{http://www.w3.org/1998/Math/MathML}"


def prepare(latex: str) -> str:
    """The LaTeX as latex2mathml should read it (:data:`INPUT_FIXES`)."""
    for old, new in INPUT_FIXES:
        latex = latex.replace(old, new)
    return latex


@functools.lru_cache(maxsize=4096)
def to_mathml(latex: str, display: bool = True, where: str = "") -> str:
    """``latex`` as a ``<math>`` element (block or inline), checked well-formed and free of
    ``<merror>``."""
    place = where or "docs"
    try:
        text = convert(prepare(latex), display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises its own exception types; name the formula
        raise ConfigError(f"LaTeX {latex!r} could not be converted ({type(error).__name__}: {error}), but expected valid LaTeX [{place}]") from error
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise ConfigError(f"LaTeX {latex!r} converts to MathML that is not well-formed ({error}), but expected XML [{place}]; "
                          "add an input fix in gptspec/docs/mathml.py or correct the LaTeX") from error
    if any(True for _ in root.iter(f"{MATHML}merror")):
        raise ConfigError(f"LaTeX {latex!r} converts to MathML with <merror>, but expected none [{place}]")
    unknown = sorted({e.text for e in root.iter() if e.text and e.text.startswith("\\")})
    if unknown:
        raise ConfigError(f"LaTeX {latex!r} uses {unknown}, which latex2mathml does not know, but expected only commands it converts [{place}]; "
                          "add an input fix in gptspec/docs/mathml.py or correct the LaTeX")
    return text


def equations(latex: str) -> list[str]:
    """``latex`` split at its top-level ``\\qquad`` (outside braces and environments): the
    equations an op's definition writes side by side, shown one per line."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(latex):
        if latex.startswith(r"\begin{", i):
            depth += 1
        elif latex.startswith(r"\end{", i):
            depth -= 1
        elif latex[i] == "{":
            depth += 1
        elif latex[i] == "}":
            depth -= 1
        elif depth == 0 and latex.startswith(r"\qquad", i) and not latex[i + 6 : i + 7].isalpha():
            parts.append(latex[start:i])
            start = i + 6
            i += 6
            continue
        i += 1
    parts.append(latex[start:])
    return [p.strip() for p in parts if p.strip()]
