"""A page's content written once, rendered twice: a small document tree — blocks (headings,
paragraphs, lists, display math, tables, figures) of inline spans (text, code, math, links,
anchors, docstring prose) — and its two renderings, Markdown for a repository (math in ``$…$``
and ``$$…$$``, as GitHub renders it) and HTML for the site (MathML, gptspec/docs/mathml.py).

A page built as a :class:`Page` (gptspec/docs/pages.py) has no Markdown or HTML of its own: the
same blocks give ``theta.md`` and ``theta.html``. Links name a page by its stem (``ops``), so
each rendering adds its own extension. What only one format can show — the site's inline SVG
chart and graph levels, the repository's SVG files beside the page — is a :class:`Figure`
holding both forms, the one place a page differs between its renderings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

# -- inline spans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Plain text (escaped in HTML)."""

    text: str


@dataclass(frozen=True)
class Code:
    """Literal code: a name, a path, a command."""

    text: str


@dataclass(frozen=True)
class Math:
    """Inline LaTeX; ``where`` names it in a conversion error."""

    latex: str
    where: str = ""


@dataclass(frozen=True)
class Strong:
    """Emphasised spans."""

    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Link:
    """A link to ``anchor`` on page ``page`` (a stem: ``ops``), or to an outside ``href`` when
    ``page`` is empty."""

    spans: tuple[Span, ...]
    page: str = ""
    anchor: str = ""
    href: str = ""


@dataclass(frozen=True)
class Anchor:
    """A target others link to (``id``), at these spans (a table cell's entry)."""

    id: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Prose:
    """Docstring prose: ``code`` (double or single backticks) and ``:class:`~a.b.Name``` markup
    become code, bold markers are dropped."""

    text: str


Span = Text | Code | Math | Strong | Link | Anchor | Prose
Inline = tuple[Span, ...]


def spans(*parts: str | Span) -> Inline:
    """Spans from strings (plain text) and spans."""
    return tuple(Text(p) if isinstance(p, str) else p for p in parts)


def joined(items: list[Inline], separator: str = ", ") -> Inline:
    """``items`` with ``separator`` (plain text) between them."""
    out: list[Span] = []
    for i, item in enumerate(items):
        if i:
            out.append(Text(separator))
        out += item
    return tuple(out)


# -- blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    """A heading of ``level`` (2 or deeper: the page's title is its ``<h1>``), with an anchor."""

    level: int
    spans: Inline
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    """A paragraph; ``role``: the site's class for it (``lead``: the page's opening)."""

    spans: Inline
    role: str = ""


@dataclass(frozen=True)
class Bullets:
    """A bulleted list, one item of spans each; ``role``: the site's class for it."""

    items: tuple[Inline, ...]
    role: str = ""


@dataclass(frozen=True)
class Steps:
    """Numbered lines of pseudocode, each (depth, keyword, LaTeX): the LaTeX's keywords written
    ``\\textbf{for }`` (bold text on the site, where MathML Core has none), each line indented by
    its loop depth."""

    lines: tuple[tuple[int, str, str], ...]
    where: str = ""


@dataclass(frozen=True)
class Display:
    """A display formula (LaTeX); ``where`` names it in a conversion error."""

    latex: str
    where: str = ""


@dataclass(frozen=True)
class Table:
    """A table: a caption (in Markdown, which has none, an emphasised line above the table), the
    head, the rows, and the columns holding numbers (right-aligned on the site). No rows: no
    table."""

    caption: str
    head: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]
    numeric: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Listing:
    """Source code, shown as written."""

    language: str
    text: str


@dataclass(frozen=True)
class Group:
    """Blocks that belong together: on the site a ``<section>`` labelled by its heading
    (``labelled_by``: that heading's anchor) or a ``<div>`` of class ``role``; ``columns``: each
    block a column side by side on the site (a :class:`Group` each). In Markdown, its anchor and
    its blocks in order."""

    blocks: tuple[Block, ...]
    anchor: str = ""
    role: str = ""
    labelled_by: str = ""


@dataclass(frozen=True)
class Figure:
    """What the formats show differently: the site's markup and the repository's Markdown."""

    html: str
    markdown: str


Block = Heading | Para | Bullets | Steps | Display | Table | Listing | Group | Figure


@dataclass
class Page:
    """One page: its file stem (``theta``), its navigation label, its title (after the
    architecture's name), and its blocks."""

    stem: str
    label: str
    title: str
    blocks: list[Block] = field(default_factory=list)


# -- Markdown --------------------------------------------------------------------------------


def _md_code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _md_prose(text: str) -> str:
    text = re.sub(r":(?:class|func|meth|attr|mod|data):", "", text)
    parts = re.split(r"``?([^`]+)``?", text)
    return "".join(_md_code(p[1:].rsplit(".", 1)[-1] if p.startswith("~") else p) if i % 2 else p.replace("**", "")
                   for i, p in enumerate(parts))


def md_inline(items: Inline) -> str:
    """Spans as Markdown."""
    out = []
    for s in items:
        if isinstance(s, Text):
            out.append(s.text)
        elif isinstance(s, Code):
            out.append(_md_code(s.text))
        elif isinstance(s, Math):
            out.append(f"${s.latex}$")
        elif isinstance(s, Strong):
            out.append(f"**{md_inline(s.spans)}**")
        elif isinstance(s, Link):
            target = s.href or f"{s.page}.md" + (f"#{s.anchor}" if s.anchor else "")
            out.append(f"[{md_inline(s.spans)}]({target})")
        elif isinstance(s, Anchor):
            out.append(f'<a id="{s.id}"></a>{md_inline(s.spans)}')
        else:
            out.append(_md_prose(s.text))
    return "".join(out)


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, one line."""
    return " ".join(text.split()).replace("|", "\\|")


def md_blocks(blocks: list[Block]) -> list[str]:
    """Blocks as Markdown lines (each block followed by a blank line)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ([f'<a id="{b.anchor}"></a>', ""] if b.anchor else []) + [f"{'#' * b.level} {md_inline(b.spans)}", ""]
        elif isinstance(b, Para):
            out += [md_inline(b.spans), ""]
        elif isinstance(b, Listing):
            out += [f"```{b.language}", b.text.rstrip("\n"), "```", ""]
        elif isinstance(b, Group):
            out += ([f'<a id="{b.anchor}"></a>', ""] if b.anchor else []) + md_blocks(list(b.blocks))
        elif isinstance(b, Bullets):
            out += [f"- {md_inline(item)}" for item in b.items] + [""]
        elif isinstance(b, Steps):  # indented by non-breaking spaces: a list cannot nest loops deeper
            out += ["1. " + "&emsp;&emsp;" * depth + f"${latex}$" for depth, _, latex in b.lines] + [""]
        elif isinstance(b, Display):
            out += [f"$$\n{b.latex}\n$$", ""]
        elif isinstance(b, Table):
            if b.rows:
                out += [f"*{b.caption}*", ""] if b.caption else []  # Markdown tables have no caption: a line above it
                out += ["| " + " | ".join(b.head) + " |", "|" + "---|" * len(b.head)]
                out += ["| " + " | ".join(_cell(md_inline(c)) for c in row) + " |" for row in b.rows] + [""]
        else:
            out += [b.markdown, ""]
    return out


# -- HTML ------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return escape(str(text))


def _html_prose(text: str) -> str:
    text = re.sub(r":(?:class|func|meth|attr|mod|data):", "", text)
    parts = re.split(r"``?([^`]+)``?", text)
    return "".join(f"<code>{_e(p[1:].rsplit('.', 1)[-1] if p.startswith('~') else p)}</code>" if i % 2 else _e(p.replace("**", ""))
                   for i, p in enumerate(parts))


def html_inline(items: Inline) -> str:
    """Spans as HTML (math as MathML)."""
    from gptspec.docs.mathml import to_mathml

    out = []
    for s in items:
        if isinstance(s, Text):
            out.append(_e(s.text))
        elif isinstance(s, Code):
            out.append(f"<code>{_e(s.text)}</code>")
        elif isinstance(s, Math):
            out.append(to_mathml(s.latex, False, s.where))
        elif isinstance(s, Strong):
            out.append(f"<strong>{html_inline(s.spans)}</strong>")
        elif isinstance(s, Link):
            target = s.href or f"{s.page}.html" + (f"#{s.anchor}" if s.anchor else "")
            out.append(f'<a href="{_e(target)}">{html_inline(s.spans)}</a>')
        elif isinstance(s, Anchor):
            out.append(f'<span id="{_e(s.id)}">{html_inline(s.spans)}</span>')
        else:
            out.append(_html_prose(s.text))
    return "".join(out)


def _html_step(latex: str, where: str) -> str:
    """A pseudocode line: its keywords (``\\textbf{for }``) as bold text, the math between them as MathML."""
    from gptspec.docs.mathml import to_mathml

    out = []
    for i, part in enumerate(re.split(r"\\textbf\{([^}]*)\}", latex)):
        if i % 2:
            out.append(f"<strong>{_e(part.strip())}</strong>")
        elif part.strip():
            out.append(to_mathml(part.strip(), False, where))
    return " ".join(out)


def html_blocks(blocks: list[Block]) -> str:
    """Blocks as HTML (one element per block, a line each)."""
    from gptspec.docs.mathml import to_mathml

    out = []
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f' id="{_e(b.anchor)}"' if b.anchor else ""
            out.append(f"<h{b.level}{anchor}>{html_inline(b.spans)}</h{b.level}>")
        elif isinstance(b, Para):
            role = f' class="{_e(b.role)}"' if b.role else ""
            out.append(f"<p{role}>{html_inline(b.spans)}</p>")
        elif isinstance(b, Listing):
            out.append(f'<pre><code class="language-{_e(b.language)}">{_e(b.text)}</code></pre>')
        elif isinstance(b, Group):
            inner = html_blocks(list(b.blocks)).rstrip("\n")
            anchor = f' id="{_e(b.anchor)}"' if b.anchor else ""
            if b.labelled_by:
                out.append(f'<section{anchor} aria-labelledby="{_e(b.labelled_by)}">\n{inner}\n</section>')
            else:
                role = f' class="{_e(b.role)}"' if b.role else ""
                out.append(f"<div{role}{anchor}>{inner}</div>")
        elif isinstance(b, Bullets):
            role = f' class="{_e(b.role)}"' if b.role else ""
            out.append(f"<ul{role}>" + "".join(f"<li>{html_inline(item)}</li>" for item in b.items) + "</ul>")
        elif isinstance(b, Steps):
            out.append('<ol class="algorithm">' + "".join(
                f'<li style="--depth:{depth}" class="{_e(keyword or "step")}">{_html_step(latex, b.where)}</li>' for depth, keyword, latex in b.lines
            ) + "</ol>")
        elif isinstance(b, Display):
            out.append(f'<div class="math">{to_mathml(b.latex, True, b.where)}</div>')
        elif isinstance(b, Table):
            if not b.rows:
                continue
            th = "".join(f'<th scope="col"{" class=num" if i in b.numeric else ""}>{_e(h)}</th>' for i, h in enumerate(b.head))
            body = "".join("<tr>" + "".join(f'<td{" class=num" if i in b.numeric else ""}>{html_inline(c)}</td>' for i, c in enumerate(row))
                           + "</tr>" for row in b.rows)
            cap = f"<caption>{_e(b.caption)}</caption>" if b.caption else ""
            out.append(f'<div class="table-wrap"><table>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>')
        else:
            out.append(b.html)
    return "\n".join(out) + "\n"


__all__ = [
    "Anchor", "Block", "Bullets", "Code", "Display", "Figure", "Group", "Heading", "Inline", "Link", "Listing", "Math", "Page", "Para",
    "Prose", "Span",
    "Steps", "Strong", "Table", "Text", "html_blocks", "html_inline", "joined", "md_blocks", "md_inline", "spans",
]
