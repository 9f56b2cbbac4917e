"""A page's content is written once (issue 21, "algorithms written twice"): the pages built as a
document (gptspec/docs/pages.py) give the site's HTML and the repository's Markdown from the same
blocks (gptspec/docs/document.py), so the two renderings carry the same headings, anchors, links,
formulas and table cells."""

from __future__ import annotations

import re
from html import unescape

import pytest

from gptspec.docs import pages
from gptspec.docs.content import Site, collect
from gptspec.docs.document import (
    Anchor,
    Block,
    Bullets,
    Code,
    Display,
    Figure,
    Heading,
    Link,
    Math,
    Page,
    Para,
    Prose,
    Steps,
    Strong,
    Table,
    html_blocks,
    md_blocks,
    spans,
)
from spec import build, preset


@pytest.fixture(scope="module")
def site() -> Site:
    return collect(build(preset("tiny").config), "preset tiny")


def built(site: Site) -> list[Page]:
    return [pages.algorithm(site), pages.ops(site), pages.theta(site, "breakdown.svg"), pages.theorems(site), pages.conventions(site)]


def test_a_small_page_renders_the_same_content_in_both_formats() -> None:
    blocks: list[Block] = [
        Heading(2, spans("Section ", Code("x")), "sec"),
        Para(spans(Strong(spans("12,345")), " entries, see ", Link(spans("the ops"), "ops", "op-add"), " and ", Math("d^2", "t"), "."), role="lead"),
        Para((Prose("A docstring with ``code`` and :class:`~spec.graph.Node` and **bold**."),)),
        Bullets((spans("one"), spans(Anchor("item-2", spans("two")))), role="params"),
        Display(r"y = x + 1", "t"),
        Steps(((0, "for", r"\textbf{for } \ell = 1"), (1, "", r"y \gets x")), "t"),
        Table("cap", ("a", "b"), ((spans("1|2"), spans(Code("z"))),), frozenset({0})),
        Table("empty", ("a",), ()),
        Figure("<svg></svg>", "![chart](chart.svg)"),
    ]
    md = "\n".join(md_blocks(blocks))
    html = html_blocks(blocks)
    assert '<a id="sec"></a>\n\n## Section `x`' in md and '<h2 id="sec">Section <code>x</code></h2>' in html
    assert "**12,345** entries, see [the ops](ops.md#op-add) and $d^2$." in md
    assert '<p class="lead"><strong>12,345</strong> entries, see <a href="ops.html#op-add">the ops</a> and <math' in html
    assert "A docstring with `code` and `Node` and bold." in md and "A docstring with <code>code</code> and <code>Node</code> and bold." in html
    assert '- <a id="item-2"></a>two' in md and '<ul class="params"><li>one</li><li><span id="item-2">two</span></li></ul>' in html
    assert "$$\ny = x + 1\n$$" in md and '<div class="math"><math xmlns="http://www.w3.org/1998/Math/MathML" display="block"' in html
    assert "1. $\\textbf{for } \\ell = 1$\n1. &emsp;&emsp;$y \\gets x$" in md
    assert '<li style="--depth:0" class="for"><strong>for</strong> <math' in html and '<li style="--depth:1" class="step"><math' in html
    assert "| 1\\|2 | `z` |" in md and "<caption>cap</caption>" in html and '<td class=num>1|2</td>' in html
    assert "empty" not in md and "empty" not in html  # a table without rows is not drawn
    assert "![chart](chart.svg)" in md and "<svg></svg>" in html and "chart.svg" not in html and "<svg" not in md


def _ids(text: str) -> set[str]:
    """The anchors of a rendering (not those inside a figure's inline SVG: the Markdown's is a file)."""
    return set(re.findall(r'\bid="([^"]+)"', re.sub(r"<svg.*?</svg>", "", text, flags=re.S)))


def _links(text: str, ext: str) -> set[str]:
    found = set(re.findall(r'href="([^"]+)"', text)) | set(re.findall(r"\]\(([^)]+)\)", text))
    return {link.replace(ext, "") for link in found if not link.endswith(".svg")}


def _words(text: str, html: bool) -> list[str]:
    """The prose of a rendering: tags (in Markdown, its anchors only: "a < 0" is prose), math and
    Markdown markup removed, words in order."""
    text = re.sub(r"^1\. .*$|<ol class=\"algorithm\">.*?</ol>", " ", text, flags=re.M | re.S)  # steps: counted apart (their keywords are math or bold text)
    text = re.sub(r"<math.*?</math>|\$\$.*?\$\$|\$[^$\n]*\$", " ", text, flags=re.S)
    text = re.sub(r"<svg.*?</svg>|!\[[^\]]*\]\([^)]*\)", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text) if html else re.sub(r'<a id="[^"]*"></a>|^```\w*$', " ", text, flags=re.M)
    text = unescape(text) if html else text
    text = re.sub(r"\]\([^)]*\)", " ", text)
    return re.findall(r"[A-Za-z0-9_,.]+", text.replace("**", " "))


def test_the_pages_written_once_carry_the_same_content_in_both_formats(site: Site) -> None:
    for page in built(site):
        md, html = "\n".join(md_blocks(page.blocks)), html_blocks(page.blocks)
        assert _ids(md) == _ids(html) and _ids(md), page.stem  # every anchor, in both
        assert _links(md, ".md") == _links(html, ".html"), page.stem  # every link, to the same page and anchor
        assert html.count('display="block"') == md.count("$$") // 2, page.stem  # the same display formulas
        assert len(re.findall(r"^1\. ", md, flags=re.M)) == html.count("<li style=\"--depth:"), page.stem  # the same pseudocode lines
        words = _words(html, True)
        assert len(words) > 20 and _words(md, False) == words, page.stem  # the same words, in the same order


def test_the_index_and_diff_pages_are_written_once_too(site: Site) -> None:
    """The architecture page and the comparison page (issue 21's last two) come from one document
    each; only the graph (a Figure: the site's SVG levels and node lists, the repository's SVG
    files and nested node list) differs between the formats."""
    from dataclasses import replace

    from gptspec.diff import compare

    llama = collect(build(preset("tiny-llama").config), "preset tiny-llama")
    llama = replace(llama, diff=compare(site.arch, llama.arch, "preset tiny", "preset tiny-llama"))
    for page in (pages.index(site), pages.diff(llama)):
        figures = [b for b in page.blocks if isinstance(b, Figure)]
        shared = [b for b in page.blocks if not isinstance(b, Figure)]
        md, html = "\n".join(md_blocks(shared)), html_blocks(shared)
        assert _ids(md) == _ids(html) and _ids(md), page.stem
        assert _links(md, ".md") == _links(html, ".html"), page.stem
        assert html.count('display="block"') == md.count("$$") // 2, page.stem
        words = _words(html, True)
        assert len(words) > 20 and _words(md, False) == words, page.stem
        if page.stem == "index":
            (graph,) = figures
            assert 'id="g-model"' in graph.html and "<svg" in graph.html and "(graph-model.svg)" in graph.markdown and "<svg" not in graph.markdown
        else:
            assert not figures and "| replaced |" in md and "<td>replaced</td>" in html
