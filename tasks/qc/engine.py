"""QC of one master against one spec: metadata, picture (one decode), audio and loudness, sync, and for a
married master the placement of its mixes (the layback plan).

The picture decode is the long pole; every audio stream is decoded (once) in a worker thread at
the same time, so the whole QC costs little more than the picture decode itself.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from specs.model import Spec
from tasks.layback import LaybackPlan
from tasks.media.probe import MediaInfo
from tasks.qc.audio import audio_findings, scan_shared
from tasks.qc.findings import Finding
from tasks.qc.metadata import check_metadata, container_word
from tasks.qc.picture_analysis import PictureSeries, analyse_picture
from tasks.qc.picture_checks import ProgrammeClock, check_commercial_blacks, check_picture, programme_clock
from tasks.qc.sync import check_layback, check_two_pop

__all__ = ["QCResult", "qc_master", "qc_masters", "facts_of"]

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


class QCResult(BaseModel):
    findings: list[Finding]
    measurements: dict[str, Any] = Field(default_factory=dict)


def facts_of(info: MediaInfo) -> dict[str, Any]:
    """The probed facts ``when:`` rules of a spec match on."""
    v = info.primary_video
    facts: dict[str, Any] = {"container": container_word(info)}
    if v is not None:
        hdr = {"smpte2084": "hdr10", "arib-std-b67": "hlg"}.get(v.color_transfer or "", "none")
        facts.update(frame_rate=v.frame_rate, scan=v.scan, hdr=hdr, codec=v.codec, width=v.width, height=v.height)
    return facts


def _round(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(x), digits) for x in values]


def qc_master(info: MediaInfo, spec: Spec, *, layback: LaybackPlan | None = None,
              progress: Callable[[float, float], None] | None = None) -> QCResult:
    """Run every check the spec enables on ``info`` and return findings plus measurements.

    ``layback``: the plan that made ``info`` (a married master); its mixes' coverage is reported too.
    When the spec's first frame of action lies outside the master, the FFOA finding is reported and
    the whole master is analysed as the programme.
    """
    return qc_masters(info, [spec], layback=layback, progress=progress)[0]


def qc_masters(info: MediaInfo, specs: list[Spec], *, layback: LaybackPlan | None = None,
               progress: Callable[[float, float], None] | None = None) -> list[QCResult]:
    """:func:`qc_master` for several specs from ONE analysis: the picture is decoded and measured once
    (spec-independent), each audio stream is decoded once for every spec whose meter agrees on it
    (:func:`tasks.qc.audio.scan_shared`: each spec's own signal-check settings run on the same blocks), and every
    spec's rules are evaluated on the shared measurements. One result per spec, in order."""
    specs = [s.for_facts(facts_of(info)) for s in specs]
    v = info.primary_video
    if v is None:
        return [_evaluate(info, spec, None, scans, layback)
                for spec, scans in zip(specs, scan_shared(info, specs, [None] * len(specs)), strict=True)]
    expected = v.frame_count or round((v.duration_s or info.duration_s or 0) * float(v.frame_rate))
    early = [programme_clock(info, s, max(expected, 1)) for s in specs]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qc-audio") as pool:
        audio_job = pool.submit(scan_shared, info, specs, early)
        try:
            series = analyse_picture(info, progress=progress)
        finally:
            per_spec = audio_job.result()
    return [_evaluate(info, spec, series, scans, layback) for spec, scans in zip(specs, per_spec, strict=True)]


def _evaluate(info: MediaInfo, spec: Spec, series: PictureSeries | None, scans: list[Any],
              layback: LaybackPlan | None) -> QCResult:
    """One spec's findings and measurements from the shared picture series and audio scans."""
    findings = list(check_metadata(info, spec))
    measurements: dict[str, Any] = {}
    clock: ProgrammeClock | None = None
    if series is not None:
        clock = programme_clock(info, spec, series.frame_count)
        findings += check_picture(series, clock, spec, info)
        findings += check_commercial_blacks(series, clock, spec, [scan.silence_for_blacks for *_, scan in scans],
                                            [scan.sample_rate_hz for *_, scan in scans])
        sync_findings, two_pop = check_two_pop(spec, clock, series, [(t, s) for t, _, _, s in scans])
        findings += sync_findings
        if layback is not None:
            # a track whose beep QC measured against the flash frame is judged there, not again by placement
            measured = {m["track"] for m in two_pop if m.get("offset_frames") is not None}
            findings += check_layback(spec, layback, measured)
        measurements["picture"] = {
            "frames": series.frame_count,
            "rate": str(series.rate),
            "ffoa_frame": clock.ffoa_frame,
            "ffoa_in_master": not clock.ffoa_outside,
            "start_timecode": clock.tc(0),
            "luma_mean_series": _round(series.luma_mean),
            "max_illegal_share_percent": round(float(series.illegal_share.max() * 100.0), 3),
            "max_gamut_share_percent": round(float(series.gamut_share.max() * 100.0), 3),
            "analysis_grid_step_px": series.grid_step,
        }
        if series.max_nits is not None and series.mean_nits is not None:
            prog = slice(clock.ffoa_frame, clock.frame_count)
            measurements["picture"]["max_cll_nits"] = round(float(np.max(series.max_nits[prog], initial=0)), 1)
            measurements["picture"]["max_fall_nits"] = round(float(np.max(series.mean_nits[prog], initial=0)), 1)
        if two_pop:
            measurements["two_pop"] = two_pop
        # Whole-file metadata findings apply to every frame of the master.
        findings = [f if f.timecode_in else f.model_copy(update={"timecode_in": clock.tc(0),
                                                                 "timecode_out": clock.tc(clock.frame_count)})
                    for f in findings]
    a_findings, a_measurements = audio_findings(spec, scans, clock)
    findings += a_findings
    measurements.update(a_measurements)
    findings.sort(key=lambda f: (_SEVERITY_ORDER[f.severity.value], f.timecode_in or "", f.check))
    return QCResult(findings=findings, measurements=measurements)
