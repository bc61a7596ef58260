"""Sync: the 2-pop beep against the flash frame, two seconds before first frame of action.

The flash frame is the brightest frame of the head (the countdown's "2" is a full-white frame);
the beep onset is the first sample above -40 dBFS near FFOA - 2 s (found during the audio decode,
see :class:`tasks.qc.audio.AudioScan`). Their difference, in frames, is the sync offset of that
track: positive means the sound is late.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from specs.model import AudioTrackSpec, Spec
from specs.severity import Severity
from tasks.qc.audio import TrackScan
from tasks.qc.findings import Finding, make_finding
from tasks.qc.picture_analysis import PictureSeries
from tasks.qc.picture_checks import ProgrammeClock

__all__ = ["flash_frame", "check_two_pop", "DEFAULT_TWO_POP_TOLERANCE_FRAMES"]

DEFAULT_TWO_POP_TOLERANCE_FRAMES = 0.5
FLASH_MIN_LUMA = 0.5  # a flash frame is bright; a head of bars and black has none


def flash_frame(series: PictureSeries, clock: ProgrammeClock) -> int | None:
    """Index of the brightest frame in the second before FFOA - 2 s .. FFOA - 1 s window, if bright."""
    target = clock.ffoa_frame - 2 * clock.rate
    lo, hi = max(0, int(target - clock.rate / 2)), min(clock.ffoa_frame, int(target + clock.rate / 2) + 1)
    if hi <= lo:
        return None
    i = lo + int(np.argmax(series.luma_mean[lo:hi]))
    return i if series.luma_mean[i] >= FLASH_MIN_LUMA else None


def check_two_pop(spec: Spec, clock: ProgrammeClock, series: PictureSeries,
                  scans: list[tuple[AudioTrackSpec, TrackScan]]) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Findings and measurements (offset in frames per track) of the 2-pop alignment."""
    if clock.ffoa_frame < 2 * clock.rate:
        return [], []  # no head: nothing to align
    flash = flash_frame(series, clock)
    chk = spec.check("timing.two_pop")
    tol = chk.threshold if chk.threshold is not None else DEFAULT_TWO_POP_TOLERANCE_FRAMES
    findings: list[Finding | None] = []
    measured: list[dict[str, Any]] = []
    for track, scan in scans:
        if flash is None and scan.two_pop_sample is None:
            continue  # a head without a countdown: nothing to measure, nothing asked
        if flash is None or scan.two_pop_sample is None:
            missing = "flash frame" if flash is None else "beep"
            f = make_finding(spec, "timing.two_pop", f"track {track.id}: 2-pop {missing} not found near FFOA - 2 s; "
                             "sync not measured", expected="beep on the flash frame", actual=f"no {missing}",
                             timecode_in=clock.tc(max(0, clock.ffoa_frame - 2 * int(clock.rate))),
                             timecode_out=clock.tc(clock.ffoa_frame), track=track.id, status="not_measured")
            findings.append(f.model_copy(update={"severity": Severity.WARNING}) if f else None)
            measured.append({"track": track.id, "flash_frame_tc": clock.tc(flash) if flash is not None else None,
                             "offset_frames": None})
            continue
        beep_frames = Fraction(scan.two_pop_sample) * clock.rate / scan.sample_rate_hz
        offset = float(beep_frames - flash)
        measured.append({"track": track.id, "flash_frame_tc": clock.tc(flash), "offset_frames": round(offset, 2)})
        if abs(offset) > tol:
            beep_frame = int(beep_frames)
            findings.append(make_finding(
                spec, "timing.two_pop", f"track {track.id}: 2-pop beep is {abs(offset):.1f} frames "
                f"{'after' if offset > 0 else 'before'} the flash frame", expected=f"within {tol:g} frames",
                actual=f"{offset:+.1f} frames", timecode_in=clock.tc(min(flash, beep_frame)),
                timecode_out=clock.tc(max(flash, beep_frame) + 1), track=track.id))
    return [f for f in findings if f is not None], measured
