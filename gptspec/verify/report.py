"""A verification report as text, JSON or JUnit XML (docs/verify.md, "Reports")."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np

from gptspec.verify.component import Result
from gptspec.verify.session import Report

VERDICT = {"passed": "PASS", "failed": "FAIL", "not run": "NOT RUN", "error": "ERROR"}


def header(report: Report) -> list[str]:
    from gptspec.verify.conventions import DESCRIPTIONS

    lines = [
        f"gptspec verify: {report.implementation} against the float64 reference",
        f"  layout {report.layout}; architecture {report.architecture}",
        f"  function: {', '.join(f'{k}={_show(v)}' for k, v in report.function.items())}",
        f"  dtype {report.dtype}; {report.policy}",
        f"  empty rows: {report.empty_rows} — {DESCRIPTIONS.get(report.empty_rows, '')}",
        f"  seed {report.seed}; θ drawn per example (biases and β nonzero, gains ≠ 1, scores {report.draws})",
    ]
    lines += [f"  note: {n}" for n in report.notes]
    return lines


def _show(value: object) -> str:
    from gptspec.verify.session import _show as show

    return show(value)


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
    if report.identified is not None:  # gptspec/verify/identify.py
        lines.append(f"  IDENTIFY {report.identified['summary']}")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


NON_FINITE = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}
"""How a non-finite number is written in a JSON report: as the string ``"inf"``, ``"-inf"`` or
``"nan"`` (JSON has no such numbers; ``float()`` reads each string back). Which fields can hold
one: docs/verify.md, "Reports"."""


def json_safe(value: object) -> object:
    """``value`` with every non-finite float replaced by its string (:data:`NON_FINITE`), tuples
    as lists, and anything else JSON cannot hold as its ``str``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return json_safe(value.item())
    return str(value)


def as_json(report: Report) -> str:
    """The report as standard JSON (``allow_nan=False``: no NaN or Infinity tokens)."""
    return json.dumps(json_safe(report.as_dict()), indent=2, allow_nan=False) + "\n"


_XML_BAD = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: object) -> str:
    """``text`` with every character XML 1.0 cannot hold (control characters but tab, newline
    and return; lone surrogates; U+FFFE/U+FFFF) written as ``\\xNN`` / ``\\uNNNN``, so the
    document stays well-formed whatever a target's messages contain."""
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _XML_BAD.sub(escape, str(text))


def junit(report: Report) -> str:
    """JUnit XML: one testcase per component; a failure carries the detail, the minimal
    counterexample, the localisation and the script; ``not run`` is ``skipped``; a target that
    raised is an ``error``."""
    root = ET.Element("testsuites", name="gptspec verify")
    suite = ET.SubElement(
        root, "testsuite", name=xml_text(f"gptspec verify {report.target}"), tests=str(len(report.results)),
        failures=str(report.count("failed")), errors=str(report.count("error")), skipped=str(report.count("not run")),
        time=f"{report.seconds:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for key in ("implementation", "layout", "architecture", "dtype", "empty_rows", "policy", "seed"):
        ET.SubElement(properties, "property", name=key, value=xml_text(getattr(report, key)))
    for key, value in report.function.items():
        ET.SubElement(properties, "property", name=f"config.{key}", value=xml_text(_show(value)))
    for note in report.notes:
        ET.SubElement(properties, "property", name="note", value=xml_text(note))
    for result in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"gptspec.verify.{report.layout}", name=xml_text(result.component), time=f"{result.seconds:.3f}")
        if result.status == "failed":
            failure = ET.SubElement(case, "failure", message=xml_text(result.detail[:500]), type="VerificationFailure")
            failure.text = xml_text("\n".join(line.strip() for line in result_lines(result)[1:]))
        elif result.status == "error":
            ET.SubElement(case, "error", message=xml_text((result.error or "")[:500]), type="CouldNotRun").text = xml_text(result.error)
        elif result.status == "not run":
            ET.SubElement(case, "skipped", message=xml_text(result.skipped or "not run"))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


FORMATS = {"text": text, "json": as_json, "junit": junit}
