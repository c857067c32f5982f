"""A `kvplan check` report as JUnit XML: one test case per deployment, a failure for each that does not pass.

CI systems (GitHub Actions, GitLab, Jenkins) show these as test results. Pure Python (xml.etree).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree as ET

from kvplan.checking.check import CheckReport


def junit_xml(report: CheckReport) -> str:
    """A JUnit XML report: one test case per deployment, a failure for each that does not pass."""
    failures = sum(not r.ok for r in report.results)
    suites = ET.Element(
        "testsuites", name="kvplan check", tests=str(len(report.results)), failures=str(failures), errors="0"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="kvplan check",
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for r in report.results:
        dep, rec = r.deployment, r.recommendation
        case = ET.SubElement(
            suite,
            "testcase",
            name=dep.name,
            classname=f"kvplan.checking.check.{Path(dep.source).stem}",
            file=dep.source,
            line=str(dep.line),
        )
        lines = [
            f"model {rec.model} on {rec.gpus} x {rec.gpu_profile}, {dep.engine}, TP {rec.tp} PP {rec.pp}, "
            f"KV {rec.kv_dtype}",
            f"max_model_len {rec.max_model_len}, required concurrency {r.required_concurrency}",
            f"available KV memory {rec.available_kv_memory_bytes} B, needed {r.needed_kv_bytes} B, "
            f"headroom {r.headroom_bytes} B" + ("" if r.headroom_fraction is None else f" ({r.headroom_fraction:.2%})"),
            f"max concurrency {rec.max_concurrency:g}x, largest max_model_len {rec.max_model_len_fit}",
        ]
        lines += [f"lint [{w.code}]: {w.message}" for w in r.lint]
        if not r.ok:
            failure = ET.SubElement(
                case,
                "failure",
                type=r.binding_constraint or "failure",
                message=f"{r.binding_constraint}: {r.binding_detail}",
            )
            failure.text = "\n".join([r.binding_detail or ""] + [f"fix: {f.text}" for f in r.fixes])
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    for element in suites.iter():  # names and messages come from the user's files: keep the XML well-formed
        element.attrib.update({k: _xml_safe(v) for k, v in element.attrib.items()})
        if element.text:
            element.text = _xml_safe(element.text)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


# Characters XML 1.0 cannot hold at all, escaped or not (C0 controls but tab, newline and return; surrogates;
# U+FFFE and U+FFFF): shown as a visible `\xNN` / `\uNNNN` instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )
