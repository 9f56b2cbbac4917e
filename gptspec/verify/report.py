"""A verification report as text, JSON or JUnit XML (docs/verify.md, "Reports")."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from gptspec.verify.engine import Result
from gptspec.verify.session import Report

VERDICT = {"passed": "PASS", "failed": "FAIL", "not run": "NOT RUN", "error": "ERROR"}


def header(report: Report) -> list[str]:
    from gptspec.verify.conventions import DESCRIPTIONS

    lines = [
        f"gptspec verify: {report.implementation} against the float64 reference",
        f"  layout {report.layout}; architecture {report.architecture}",
        f"  dtype {report.dtype}; {report.policy}",
        f"  empty rows: {report.empty_rows} — {DESCRIPTIONS.get(report.empty_rows, '')}",
        f"  seed {report.seed}; θ drawn per example (biases and β nonzero, gains ≠ 1, scores plain / ~30 / ~1e4)",
    ]
    lines += [f"  note: {n}" for n in report.notes]
    return lines


def result_lines(result: Result) -> list[str]:
    verdict = VERDICT[result.status]
    line = f"  {verdict:<8} {result.component}"
    if result.status in ("passed", "failed"):
        line += f"  ({result.examples} examples, worst error/budget {result.ratio:.3g}, {result.seconds:.1f} s)"
    lines = [line]
    if result.status == "not run":
        lines.append(f"           {result.skipped}")
    if result.status == "error":
        lines.append(f"           {result.error}")
    if result.status == "failed":
        lines.append(f"           {result.detail}")
        if result.example:
            lines.append(f"           minimal counterexample: {result.example}")
        if result.localisation:
            loc = result.localisation
            lines.append(f"           localisation: {loc['path']} ({loc['kind']}), by {loc['method']}: {loc['detail']}")
        if result.counterexample:
            lines.append("           reproduce with this script:")
            lines += [f"             {s}" for s in result.counterexample.rstrip().splitlines()]
    return lines


def summary(report: Report) -> str:
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("passed", "failed", "not run", "error"))
    verdict = {0: "PASS", 1: "FAIL", 2: "COULD NOT RUN"}[report.exit_code]
    return f"{verdict}: {counts} ({report.seconds:.1f} s)"


def text(report: Report) -> str:
    lines = header(report)
    for result in report.results:
        lines += result_lines(result)
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str) + "\n"


def junit(report: Report) -> str:
    """JUnit XML: one testcase per component; a failure carries the detail, the minimal
    counterexample, the localisation and the script; ``not run`` is ``skipped``; a target that
    raised is an ``error``."""
    root = ET.Element("testsuites", name="gptspec verify")
    suite = ET.SubElement(
        root, "testsuite", name=f"gptspec verify {report.target}", tests=str(len(report.results)),
        failures=str(report.count("failed")), errors=str(report.count("error")), skipped=str(report.count("not run")),
        time=f"{report.seconds:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for key in ("implementation", "layout", "architecture", "dtype", "empty_rows", "policy", "seed"):
        ET.SubElement(properties, "property", name=key, value=str(getattr(report, key)))
    for result in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"gptspec.verify.{report.layout}", name=result.component, time=f"{result.seconds:.3f}")
        if result.status == "failed":
            failure = ET.SubElement(case, "failure", message=result.detail[:500], type="VerificationFailure")
            failure.text = "\n".join(line.strip() for line in result_lines(result)[1:])
        elif result.status == "error":
            ET.SubElement(case, "error", message=(result.error or "")[:500], type="CouldNotRun").text = result.error
        elif result.status == "not run":
            ET.SubElement(case, "skipped", message=result.skipped or "not run")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


FORMATS = {"text": text, "json": as_json, "junit": junit}
