"""``gptspec docs``: the documentation of the math, generated from the executed objects.

* :mod:`gptspec.docs.content` — what the docs say, read off an architecture, the primitives'
  records, Θ, the theorems, the reference functions and the conventions;
* :mod:`gptspec.docs.site` — the static HTML site (works from ``file://``, no network);
* :mod:`gptspec.docs.markdown` — the same content as Markdown (math in ``$…$``);
* :mod:`gptspec.docs.svg` — the graph's layout and drawing, and the breakdown chart;
* :mod:`gptspec.docs.mathml` — LaTeX → MathML, offline;
* :mod:`gptspec.docs.conventions` — the conventions an implementer must match;
* :mod:`gptspec.docs.repo` — the generated files in docs/ (``python -m gptspec.docs``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from spec.errors import FileError
from spec.graph import Architecture

Format = Literal["html", "markdown"]


def write_docs(
    arch: Architecture, out: str | Path, fmt: Format = "html", source: str = "", note: str = "", diff: Any = None,
) -> list[Path]:
    """Write the documentation of ``arch`` into the directory ``out`` (created if missing);
    return the files written. With ``diff`` (a :class:`gptspec.diff.Diff` whose B is ``arch``),
    the site has a page of what ``arch`` changes relative to the diff's A."""
    from gptspec.docs.content import collect

    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise FileError(f"--out {directory} is a file, but expected a directory [gptspec docs]; choose another path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FileError(f"--out {directory} could not be created ({error.strerror}), but expected a writable directory [gptspec docs]") from error
    site = collect(arch, source or f"architecture {arch.name}", note)
    site.diff = diff
    proofs = Path(__file__).resolve().parent.parent.parent / "docs" / "proofs.md"
    if proofs.is_file() and directory.resolve().is_relative_to(proofs.parent.parent):
        site.proofs_href = Path(os.path.relpath(proofs, directory.resolve())).as_posix()
    if fmt == "html":
        from gptspec.docs.site import write_html

        return write_html(site, directory)
    from gptspec.docs.markdown import write_markdown

    return write_markdown(site, directory)


__all__ = ["Format", "write_docs"]
