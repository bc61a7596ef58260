"""Findings, severities and the verdict.

A finding is one thing a QC operator must look at: which check, how bad, what the spec expected,
what we measured, and where (timecode in/out on the master's clock). A rule that we could not
measure is a finding with status ``not_measured`` — never a silent pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from specs.model import Spec
from specs.severity import Severity

__all__ = ["Finding", "Verdict", "verdict_of", "count_by_severity", "make_finding"]



class Finding(BaseModel):
    """One QC result worth reporting (report.json ``findings[]``, see README)."""

    model_config = ConfigDict(frozen=True)

    check: str
    severity: Severity
    message: str
    expected: str | None = None
    actual: str | None = None
    timecode_in: str | None = None
    timecode_out: str | None = None
    status: Literal["fail", "not_measured"] = "fail"
    track: str | None = None


Verdict = Literal["pass", "fail"]


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """``fail`` when any finding is an error; warnings and info do not fail a master."""
    return "fail" if any(f.severity is Severity.ERROR for f in findings) else "pass"


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for f in findings:
        counts[f.severity.value] += 1
    return counts


def make_finding(spec: Spec, check: str, message: str, *, expected: Any = None, actual: Any = None,
                 timecode_in: str | None = None, timecode_out: str | None = None, track: str | None = None,
                 status: str = "fail") -> Finding | None:
    """A finding at the spec's severity for ``check``, or None when the spec turns the check off."""
    severity = spec.check(check).severity
    if severity == "off":
        return None
    return Finding(check=check, severity=Severity(severity), message=message,
                   expected=None if expected is None else str(expected),
                   actual=None if actual is None else str(actual),
                   timecode_in=timecode_in, timecode_out=timecode_out, track=track, status=status)
