"""`gptspec docs` in a real browser: headless Chromium (Debian's package) loads the generated sites
of `tiny`, `gpt2-small` and a registered architecture of another family from file://, and the
tests assert what a reader relies on:

* every ``<math>`` lays out with a nonzero size, holds no ``<merror>``, and is laid out as MathML
  (a fraction's numerator sits above its denominator);
* the graph's SVGs are present and, with every cluster expanded (the page's own button), every
  node is visible; every link resolves (its file exists and holds its fragment's id);
* headings go down one level at a time; the graph has its text alternative (a node list per
  drawing); at phone width (375 px) no page scrolls sideways;
* no console error or uncaught exception, and no request leaves the machine (every request the
  browser sends is a file: or data: URL).

A screenshot of the architecture page is kept as a test artifact in
``build/test-artifacts/`` (``GPTSPEC_ARTIFACTS`` overrides it).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``) by the
small client below: no driver download, no extra package. **If Chromium is missing these tests
fail, they do not skip**: CI installs it (``.ci/run``), and a skip would read as a pass; install
it with ``apt-get install -y chromium``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from gptspec.docs import write_docs
from gptspec.models import resolve

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("GPTSPEC_ARTIFACTS", ROOT / "build" / "test-artifacts"))
PAGES = ("index.html", "algorithm.html", "ops.html", "theta.html", "theorems.html", "conventions.html", "diff.html")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
    "--hide-scrollbars", "--remote-debugging-pipe",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        # skipped on a machine without chromium (a user may have no root); a run that must drive the
        # browser (.ci/run sets GPTSPEC_REQUIRE_BROWSER=1, after installing it) fails instead
        reason = "chromium is not installed, but the docs' browser tests need it: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("GPTSPEC_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; GPTSPEC_REQUIRE_BROWSER=1 requires them")
        pytest.skip(reason)
    return found


def _high(fd: int) -> int:
    """``fd`` duplicated to a number ≥ 10 (the original closed)."""
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Browser:
    """A headless Chromium driven over the DevTools protocol on a pipe: messages are JSON, each
    ended by a NUL byte; the browser reads commands on fd 3 and writes replies and events on fd 4."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="gptspec-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # a small Python launcher puts the child's ends on fds 3 and 4 (moved to fds ≥ 10 first, so
        # neither dup2 can clobber the other) and execs chromium
        to_browser_r, from_browser_w = (_high(fd) for fd in (to_browser_r, from_browser_w))
        launcher = f"import os, sys; os.dup2({to_browser_r}, 3); os.dup2({from_browser_w}, 4); os.execv(sys.argv[1], sys.argv[1:])"
        self.process = subprocess.Popen(
            [sys.executable, "-c", launcher, chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                self.messages.put(None)
                return
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                self.messages.put(json.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False, timeout: float = 60) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply is None:
                raise RuntimeError(f"chromium closed the pipe while waiting for {method}")
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(m.get("method") == event for m in self.events):
            reply = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply is None:
                raise RuntimeError(f"chromium closed the pipe while waiting for {event}")
            self.events.append(reply)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session=True)

    def load(self, url: str) -> None:
        self.events = [m for m in self.events if m.get("method") != "Page.loadEventFired"]
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full: bool = False) -> None:
        import base64

        params: dict[str, Any] = {"format": "png"}
        if full:
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, session=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, and requests that are not file: or data:."""
        found = []
        for m in self.events:
            method, params = m.get("method"), m.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log error: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.requestWillBeSent":
                url = params.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "about:")):
                    found.append(f"request leaves the machine: {url}")
        return found

    def requests(self) -> list[str]:
        return [m["params"]["request"]["url"] for m in self.events if m.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # already gone: fall through to terminate
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


def other_family() -> str:
    """A registered preset of a family other than GPT: the one with the smallest graph."""
    from spec.architectures import PRESETS

    others = [(name, p) for name, p in PRESETS.items() if p.family != "gpt"]
    if not others:
        pytest.fail("no registered family other than gpt: the docs must be tested on one")
    return min(others, key=lambda item: item[1].config.graph_size())[0]


TARGETS = ("tiny", "gpt2-small", other_family())


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from gptspec.diff import compare

    out = {}
    base = resolve("tiny", (), need_theta=False, progress=False)
    for name in TARGETS:
        model = resolve(name, (), need_theta=False, progress=False)
        directory = tmp_path_factory.mktemp(f"docs-{name}")
        diff = compare(base.arch, model.arch, base.source, model.source)  # every site also has the page of its changes
        write_docs(model.arch, directory, "html", model.source, model.note, diff=diff)
        out[name] = directory
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


AUDIT = """(() => {
  const out = {};
  const maths = [...document.querySelectorAll('math')];
  out.maths = maths.length;
  out.mathml = maths.every(m => m instanceof MathMLElement);
  out.emptyMath = maths.filter(m => { const r = m.getBoundingClientRect(); return !(r.width > 0 && r.height > 0); })
                       .map(m => m.textContent.slice(0, 60));
  out.merrors = document.querySelectorAll('merror').length;
  out.fractions = [...document.querySelectorAll('mfrac')].filter(f => f.children.length == 2).map(f => {
      const a = f.children[0].getBoundingClientRect(), b = f.children[1].getBoundingClientRect();
      return a.bottom <= b.top + 1; });
  out.headings = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => Number(h.tagName[1]));
  out.links = [...document.querySelectorAll('a[href]')].map(a => new URL(a.getAttribute('href'), document.baseURI).href);
  out.ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  out.svgs = document.querySelectorAll('svg.graph').length;
  out.lists = [...document.querySelectorAll('svg.graph')].every(s => {
      const d = document.getElementById(s.getAttribute('aria-describedby')); return d && d.querySelectorAll('li').length > 0; });
  out.scrollWidth = document.documentElement.scrollWidth;
  out.innerWidth = window.innerWidth;
  return out;
})()"""

NODES = """(() => {
  const button = document.querySelector('.controls [data-action=expand]');
  if (!button || document.querySelector('.controls').hidden) return {error: 'no expand-all control'};
  button.click();
  const nodes = [...document.querySelectorAll('svg.graph .node')];
  const hidden = nodes.filter(n => { const r = n.getBoundingClientRect(); return !(r.width > 0 && r.height > 0); })
                      .map(n => n.getAttribute('data-key'));
  const closed = document.querySelectorAll('details.level:not([open])').length;
  const edges = document.querySelectorAll('svg.graph .edge').length;
  return {nodes: nodes.length, hidden, closed, edges};
})()"""


RENDERED = r"""(() => {
  // Text a reader sees, outside code, pre and math: no TeX command, no $…$, no Markdown markup.
  const bad = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT, {
    acceptNode: n => n.parentElement.closest('code, pre, math, script, style') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT });
  const pattern = /\\[A-Za-z]+|\$[^$\s][^$]*\$|\*\*|`|:class:|:func:/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (pattern.test(n.textContent)) bad.push(n.textContent.trim().slice(0, 80));
  }
  // Equations that fit show no scrollbar: a .math box overflows only when its equation is wider.
  const scrolls = [];
  for (const box of document.querySelectorAll('.math')) {
    const math = box.querySelector('math');
    const range = document.createRange();
    if (math) range.selectNodeContents(math);
    const wide = math && range.getBoundingClientRect().width > box.clientWidth + 1;  // the equation's own width
    if ((!wide && box.scrollWidth > box.clientWidth + 1) || box.scrollHeight > box.clientHeight + 1) {
      scrolls.push((math ? math.textContent : box.textContent).slice(0, 60));
    }
  }
  // Numbers in table cells are never broken inside: each run of digits lays out on one line.
  const broken = [];
  for (const cell of document.querySelectorAll('td, th')) {
    const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let t = texts.nextNode(); t; t = texts.nextNode()) {
      for (const m of t.textContent.matchAll(/\d[\d,.]*\d/g)) {
        const r = document.createRange();
        r.setStart(t, m.index); r.setEnd(t, m.index + m[0].length);
        const lines = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  return {bad, scrolls, broken};
})()"""


def test_rendered_text_equations_and_numbers_read_cleanly(sites: dict[str, Path], browser: Browser) -> None:
    """No raw TeX or Markdown in the text of any page; no scrollbar beside an equation that fits
    (and none vertical); no number broken inside a table cell — at desktop and at phone width."""
    browser.events.clear()
    try:
        for width, height, mobile in ((1280, 900, False), (375, 800, True)):
            browser.viewport(width, height, mobile)
            for name, directory in sites.items():
                for filename in PAGES:
                    browser.load((directory / filename).as_uri())
                    found = browser.js(RENDERED)
                    where = f"{name}/{filename} at {width} px"
                    assert not found["bad"], f"{where}: raw markup in the text: {found['bad'][:5]}"
                    assert not found["scrolls"], f"{where}: a scrollbar beside an equation that fits: {found['scrolls'][:5]}"
                    assert not found["broken"], f"{where}: numbers broken inside a cell: {found['broken'][:5]}"
    finally:
        browser.viewport(1280, 900)
    assert not browser.problems(), browser.problems()[:5]


def test_definitions_and_algorithm_render(sites: dict[str, Path], browser: Browser) -> None:
    """Every composite's definition block holds MathML laid out with a size, its sub-ops link to
    their definitions, and the algorithm's lines are numbered and indented by depth."""
    browser.viewport(1280, 900)
    browser.load((sites["gpt2-small"] / "ops.html").as_uri())
    blocks = browser.js("""[...document.querySelectorAll('.composite-definition')].map(b => ({
        maths: [...b.querySelectorAll('math')].filter(m => m.getBoundingClientRect().width > 0).length,
        links: [...b.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))}))""")
    assert len(blocks) == 4 and all(b["maths"] >= 1 and b["links"] for b in blocks), blocks
    browser.load((sites["gpt2-small"] / "algorithm.html").as_uri())
    lines = browser.js("""[...document.querySelectorAll('ol.algorithm > li')].map(li => ({
        depth: Number(getComputedStyle(li).getPropertyValue('--depth')), left: li.firstElementChild.getBoundingClientRect().left,
        keyword: li.querySelector('strong') ? li.querySelector('strong').textContent : ''}))""")
    assert len(lines) > 10
    deeper = [(a, b) for a, b in zip(lines, lines[1:]) if b["depth"] > a["depth"]]
    assert deeper and all(b["left"] > a["left"] for a, b in deeper), "a loop's body is not indented"
    assert [x["keyword"] for x in lines].count("for") == [x["keyword"] for x in lines].count("end for") >= 2  # layers and heads
    assert not browser.problems(), browser.problems()[:5]


def check_links(pages: dict[str, dict[str, Any]], directory: Path) -> list[str]:
    ids = {name: set(audit["ids"]) for name, audit in pages.items()}
    bad = []
    for name, audit in pages.items():
        for href in audit["links"]:
            parts = urlsplit(href)
            if parts.scheme != "file":
                bad.append(f"{name}: {href} is not a local file")
                continue
            target = Path(unquote(parts.path))
            if not target.is_file():
                bad.append(f"{name}: {href} names a missing file")
            elif parts.fragment and unquote(parts.fragment) not in ids.get(target.name, set()):
                bad.append(f"{name}: {href} names a missing id")
            elif target.parent != directory:
                bad.append(f"{name}: {href} leaves the site")
    return bad


@pytest.mark.parametrize("name", TARGETS)
def test_site_renders_in_chromium(name: str, sites: dict[str, Path], browser: Browser) -> None:
    directory = sites[name]
    browser.events.clear()
    browser.viewport(1280, 900)
    audits: dict[str, dict[str, Any]] = {}
    for filename in PAGES:
        browser.load((directory / filename).as_uri())
        audit = browser.js(AUDIT)
        audits[filename] = audit
        assert audit["merrors"] == 0, f"{name}/{filename}: <merror> in the page"
        assert not audit["emptyMath"], f"{name}/{filename}: <math> with zero size: {audit['emptyMath'][:5]}"
        assert audit["mathml"], f"{name}/{filename}: <math> is not laid out as MathML"
        assert all(audit["fractions"]), f"{name}/{filename}: a fraction's numerator is not above its denominator"
        levels = audit["headings"]
        assert levels and levels[0] == 1 and levels.count(1) == 1, f"{name}/{filename}: headings {levels[:10]} do not start with one h1"
        jumps = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
        assert not jumps, f"{name}/{filename}: headings skip a level {jumps[:3]}"
    assert audits["ops.html"]["maths"] > 0 and audits["theorems.html"]["maths"] > 0
    index = audits["index.html"]
    assert index["svgs"] >= 1 and index["lists"], f"{name}: the graph's SVG or its node list is missing"
    assert not check_links(audits, directory), check_links(audits, directory)[:5]
    browser.load((directory / "index.html").as_uri())
    nodes = browser.js(NODES)
    assert "error" not in nodes, nodes
    assert nodes["closed"] == 0 and nodes["nodes"] > 0 and nodes["edges"] > 0
    assert not nodes["hidden"], f"{name}: nodes not visible with every cluster expanded: {nodes['hidden'][:5]}"
    assert not browser.problems(), browser.problems()[:5]
    assert browser.requests() and all(url.startswith("file:") for url in browser.requests())


@pytest.mark.parametrize("name", TARGETS)
def test_pages_fit_a_phone(name: str, sites: dict[str, Path], browser: Browser) -> None:
    directory = sites[name]
    browser.events.clear()
    browser.viewport(375, 800, mobile=True)
    try:
        for filename in PAGES:
            browser.load((directory / filename).as_uri())
            audit = browser.js(AUDIT)
            assert audit["scrollWidth"] <= audit["innerWidth"], f"{name}/{filename} scrolls sideways at 375 px: {audit['scrollWidth']} px wide"
        if name == "tiny":
            browser.screenshot(ARTIFACTS / "docs-tiny-phone.png")
    finally:
        browser.viewport(1280, 900)
    assert not browser.problems(), browser.problems()[:5]


def test_screenshot_of_the_architecture_page(sites: dict[str, Path], browser: Browser) -> None:
    """The architecture page of gpt2-small (a link to its first block opens it), the ops page at
    the masked softmax and at the attention head's derived definition, and the algorithm's lines,
    kept as artifacts (docs/images/ holds copies)."""
    browser.viewport(1280, 1000)
    browser.load((sites["gpt2-small"] / "index.html").as_uri() + "#g-blocks.0")
    assert browser.js("document.getElementById('g-blocks.0').open") is True, "a link to a cluster does not expand it"
    browser.js("window.scrollTo(0, document.getElementById('graph').offsetTop - 8)")
    path = ARTIFACTS / "docs-architecture.png"
    browser.screenshot(path)
    assert path.stat().st_size > 10_000
    browser.load((sites["gpt2-small"] / "ops.html").as_uri() + "#op-masked_softmax")
    browser.screenshot(ARTIFACTS / "docs-ops.png")
    browser.load((sites["gpt2-small"] / "algorithm.html").as_uri() + "#lines")  # another document: a load event
    browser.screenshot(ARTIFACTS / "docs-algorithm.png")
    browser.load((sites["gpt2-small"] / "ops.html").as_uri() + "#comp-attention_head")
    browser.screenshot(ARTIFACTS / "docs-composite.png")
    assert not browser.problems(), browser.problems()[:5]
