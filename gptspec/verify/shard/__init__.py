"""Campaigns that shard: ``--shard i/n`` for ``gptspec verify`` and ``gptspec check``, and merging
the shards' JUnit reports (docs/ci.md, "Sharding a campaign").

A campaign is a fixed, seeded list of work: ``verify`` draws its model-level cases (configs, θ
seeds and batches: gptspec/verify/cases.py) and generation cases as lists, and runs one
hypothesis component per op; ``check`` runs one hypothesis component per op and per model-level
component, each drawing its examples from the seed. Shard i of n takes the items whose position
k in their list has k mod n = i − 1 — model cases, generation cases and op components in
``verify``, components in ``check`` — so every item is run by exactly one shard, with exactly
the draws the unsharded run gives it, and the n shards together run the unsharded campaign
(tests/test_shard.py checks the union). A component whose items all fall in other shards is not
reported by this one.

Merging: ``python -m gptspec.verify.shard merge a.xml b.xml … --out all.xml`` writes one
JUnit report in which a component reported by several shards is one testcase (failed if any
shard failed it, an error if any could not run it, skipped only if every shard skipped it;
times added).
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from spec.errors import ConfigError

Shard = tuple[int, int]
"""(i, n): the i-th of n shards, 1 ≤ i ≤ n."""

WHOLE: Shard = (1, 1)
T = TypeVar("T")


def parse_shard(text: object, where: str = "--shard") -> Shard:
    """``"i/n"`` as (i, n), refusing anything but whole numbers with 1 ≤ i ≤ n."""
    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{where} {text!r}, but expected i/n with whole numbers 1 ≤ i ≤ n, e.g. 2/4 [command line]")
    i, n = int(match.group(1)), int(match.group(2))
    if not 1 <= i <= n:
        raise ConfigError(f"{where} {text!r}, but expected i/n with whole numbers 1 ≤ i ≤ n, e.g. 2/4 [command line]")
    return (i, n)


def check_shard(shard: object, where: str = "shard") -> Shard:
    if (not isinstance(shard, tuple) or len(shard) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
            or not 1 <= shard[0] <= shard[1]):
        raise ConfigError(f"{where} {shard!r}, but expected i/n with whole numbers 1 ≤ i ≤ n, e.g. 2/4 [command line]")
    return (int(shard[0]), int(shard[1]))


def owns(shard: Shard, k: int) -> bool:
    """Item k (0-based, in its list) belongs to ``shard``."""
    i, n = shard
    return k % n == i - 1


def select(items: Sequence[T], shard: Shard) -> list[T]:
    """The items of ``shard``, in their order."""
    return [item for k, item in enumerate(items) if owns(shard, k)]


def describe(shard: Shard) -> str:
    return f"shard {shard[0]}/{shard[1]}: items k with k mod {shard[1]} = {shard[0] - 1} of each list of drawn cases and components"


# -- merging JUnit reports -------------------------------------------------------------------

RANK = {"passed": 0, "skipped": 1, "failure": 2, "error": 3}


def _status(case: ET.Element) -> str:
    for tag in ("error", "failure", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


def merge_junit(texts: Sequence[str], where: str = "merge") -> str:
    """One JUnit report from the shards' (module docstring)."""
    if not texts:
        raise ConfigError(f"reports=[], but expected at least one JUnit file [{where}]")
    root = ET.Element("testsuites", name="gptspec verify")
    suites: dict[str, ET.Element] = {}
    cases: dict[tuple[str, str, str], ET.Element] = {}
    for number, text in enumerate(texts):
        try:
            parsed = ET.fromstring(text)
        except ET.ParseError as error:
            raise ConfigError(f"report {number + 1} is not XML ({error}), but expected a JUnit report [{where}]") from None
        found = [parsed] if parsed.tag == "testsuite" else parsed.findall("testsuite")
        if parsed.tag not in ("testsuite", "testsuites"):
            raise ConfigError(f"report {number + 1} has root <{parsed.tag}>, but expected <testsuites> or <testsuite> [{where}]")
        for suite in found:
            name = suite.get("name", "")
            merged = suites.get(name)
            if merged is None:
                merged = ET.SubElement(root, "testsuite", name=name)
                properties = suite.find("properties")
                if properties is not None:
                    merged.append(properties)
                suites[name] = merged
            for case in suite.findall("testcase"):
                key = (name, case.get("classname", ""), case.get("name", ""))
                have = cases.get(key)
                if have is None:
                    copy = ET.SubElement(merged, "testcase", dict(case.attrib))
                    for child in case:
                        copy.append(child)
                    cases[key] = copy
                    continue
                have.set("time", f"{float(have.get('time', '0')) + float(case.get('time', '0')):.3f}")
                if RANK[_status(case)] > RANK[_status(have)]:
                    for child in list(have):
                        have.remove(child)
                    for child in case:
                        have.append(child)
                elif _status(case) in ("failure", "error") and _status(case) == _status(have):
                    for child in case:
                        have.append(child)
                elif _status(have) == "skipped" and _status(case) == "passed":
                    for child in list(have):
                        have.remove(child)
    for name, suite in suites.items():
        own = [c for key, c in cases.items() if key[0] == name]
        statuses = [_status(c) for c in own]
        suite.set("tests", str(len(own)))
        suite.set("failures", str(statuses.count("failure")))
        suite.set("errors", str(statuses.count("error")))
        suite.set("skipped", str(statuses.count("skipped")))
        suite.set("time", f"{sum(float(c.get('time', '0')) for c in own):.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gptspec.verify.shard", description="Merge the JUnit reports of a sharded campaign.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("merge", help="merge JUnit reports into one")
    p.add_argument("reports", nargs="+", metavar="REPORT.xml")
    p.add_argument("--out", required=True, metavar="FILE", help="the merged report (written atomically)")
    args = parser.parse_args(argv)
    from gptspec.files import read_text, write_text
    from spec.errors import GptSpecError

    try:
        merged = merge_junit([read_text(str(Path(r)), "gptspec.verify.shard merge") for r in args.reports])
        written = write_text(args.out, merged, "gptspec.verify.shard merge --out")
    except GptSpecError as error:
        print(f"gptspec.verify.shard merge: error: {error}", file=sys.stderr)
        return 2  # could not run (README, "Exit status")
    root = ET.fromstring(merged)
    counts = {key: sum(int(s.get(key, "0")) for s in root.findall("testsuite")) for key in ("tests", "failures", "errors", "skipped")}
    print(f"wrote {written}: {counts['tests']} testcases, {counts['failures']} failures, {counts['errors']} errors, {counts['skipped']} skipped")
    return 1 if counts["failures"] or counts["errors"] else 0

