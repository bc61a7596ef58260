"""QC of one master against one spec: metadata, picture (one decode), audio and loudness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from specs.model import Spec
from tasks.media.probe import MediaInfo
from tasks.qc.audio import check_audio
from tasks.qc.findings import Finding
from tasks.qc.metadata import check_metadata
from tasks.qc.picture import check_picture, programme_clock
from tasks.qc.video import analyse_picture

__all__ = ["QCResult", "qc_master"]


class QCResult(BaseModel):
    findings: list[Finding]
    measurements: dict[str, Any] = Field(default_factory=dict)


def qc_master(info: MediaInfo, spec: Spec, *, progress: Callable[[float, float], None] | None = None) -> QCResult:
    """Run every check the spec enables on ``info`` and return findings plus measurements."""
    findings = list(check_metadata(info, spec))
    measurements: dict[str, Any] = {}
    clock = None
    if info.primary_video is not None:
        series = analyse_picture(info, progress=progress)
        clock = programme_clock(info, spec, series.frame_count)
        findings += check_picture(series, clock, spec)
        measurements["picture"] = {
            "frames": series.frame_count,
            "ffoa_frame": clock.ffoa_frame,
            "start_timecode": clock.tc(0),
            "luma_mean_series": [round(float(x), 4) for x in series.luma_mean],
            "max_illegal_share_percent": round(float(series.illegal_share.max() * 100.0), 3),
        }
    audio_findings, audio_measurements = check_audio(info, spec, clock)
    findings += audio_findings
    measurements.update(audio_measurements)
    findings.sort(key=lambda f: ({"error": 0, "warning": 1, "info": 2}[f.severity.value], f.timecode_in or "", f.check))
    return QCResult(findings=findings, measurements=measurements)
