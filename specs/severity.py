"""How bad a finding is: the one severity scale of specs, QC findings and reports.

``error`` fails a master (unless the run is forced), ``warning`` and ``info`` are reported only.
A spec may call them by the distributor's own words (``severity_names``) and may switch a check
``off``; the report always writes these three values.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

__all__ = ["Severity", "CheckSeverity"]


class Severity(str, Enum):
    """Severity of a finding (report.json ``findings[].severity``)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


#: A check's setting in a spec: one of the :class:`Severity` values, or ``off`` (not run).
CheckSeverity = Literal["error", "warning", "info", "off"]
