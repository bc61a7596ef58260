"""Picture checks: per-frame series from :mod:`tasks.qc.video` -> findings with timecodes.

Windows: the head (before first frame of action) is leader — bars, countdown, 2-pop — and is not
judged as programme. Black at the very start or end of the programme is allowed up to the spec's
head/tail black maximum; anything else longer than the threshold is a finding.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from specs.model import Spec
from tasks.media.probe import MediaInfo
from tasks.media.timecode import Timecode
from tasks.qc.findings import Finding
from tasks.qc.metadata import make_finding
from tasks.qc.video import BLACK_PICTURE_RATIO, FREEZE_NOISE, Interval, PictureSeries, runs

__all__ = ["ProgrammeClock", "programme_clock", "check_picture"]

DEFAULT_BLACK_MIN_S = 1.0
DEFAULT_FREEZE_MIN_S = 2.0
DEFAULT_ILLEGAL_SHARE_PERCENT = 1.0  # EBU R 103: excursions on up to 1 % of the picture are tolerated


class ProgrammeClock:
    """Maps frame indices of the master to timecode and knows where the programme starts."""

    def __init__(self, start: Timecode, ffoa_frame: int, frame_count: int) -> None:
        self.start = start
        self.ffoa_frame = ffoa_frame
        self.frame_count = frame_count

    @property
    def rate(self) -> Fraction:
        return self.start.rate

    def tc(self, frame: int) -> str:
        return str(self.start + frame)

    def seconds(self, frames: int) -> float:
        return frames / float(self.rate)


def programme_clock(info: MediaInfo, spec: Spec, frame_count: int) -> ProgrammeClock:
    """The master's clock: start timecode (00:00:00:00 when untagged) and FFOA frame index."""
    v = info.primary_video
    rate = v.frame_rate if v else Fraction(25)
    if info.start_timecode:
        start = Timecode.parse(info.start_timecode, rate)
    else:
        start = Timecode(0, rate, spec.timing.drop_frame)
    ffoa_frame = 0
    if spec.timing.ffoa_timecode:
        ffoa = Timecode.parse(spec.timing.ffoa_timecode, rate, drop_frame=start.drop_frame)
        ffoa_frame = min(max(ffoa.frames - start.frames, 0), frame_count)
    return ProgrammeClock(start, ffoa_frame, frame_count)


def _s_to_frames(seconds: float, rate: Fraction) -> int:
    return max(1, round(seconds * float(rate)))


def _in_programme(intervals: list[Interval], clock: ProgrammeClock) -> list[Interval]:
    out = []
    for iv in intervals:
        s, e = max(iv.start, clock.ffoa_frame), iv.end
        if e > s:
            out.append(Interval(s, e))
    return out


def check_picture(series: PictureSeries, clock: ProgrammeClock, spec: Spec) -> list[Finding]:
    """Black, freeze and illegal-level findings over the programme."""
    found: list[Finding | None] = []
    rate = series.rate
    is_black = series.black_share >= BLACK_PICTURE_RATIO

    # -- programme black -------------------------------------------------------------------------
    chk = spec.check("picture.black")
    black_min_s = chk.min_duration_s or spec.timing.max_programme_black_s or DEFAULT_BLACK_MIN_S
    head_max = spec.timing.head_black_s.max if spec.timing.head_black_s and spec.timing.head_black_s.max else 0.0
    tail_max = spec.timing.tail_black_s.max if spec.timing.tail_black_s and spec.timing.tail_black_s.max else 0.0
    for iv in _in_programme(runs(is_black), clock):
        at_head = iv.start == clock.ffoa_frame
        at_tail = iv.end == clock.frame_count
        allowed_s = head_max if at_head else tail_max if at_tail else 0.0
        if at_head or at_tail:
            if clock.seconds(iv.frames) <= allowed_s + 1e-9:
                continue
            where = "head" if at_head else "tail"
            found.append(make_finding(
                spec, "timing.head_tail_black", f"{clock.seconds(iv.frames):.2f} s of black at the programme {where}",
                expected=f"at most {allowed_s:g} s", actual=f"{clock.seconds(iv.frames):.2f} s",
                timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
        elif iv.frames >= _s_to_frames(black_min_s, rate):
            found.append(make_finding(
                spec, "picture.black", f"{clock.seconds(iv.frames):.2f} s of black picture inside the programme",
                expected=f"no black longer than {black_min_s:g} s", actual=f"{clock.seconds(iv.frames):.2f} s",
                timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))

    # -- freeze (identical frames that are not black) ---------------------------------------------
    chk = spec.check("picture.freeze")
    freeze_min = _s_to_frames(chk.min_duration_s or DEFAULT_FREEZE_MIN_S, rate)
    frozen = (series.diff_to_previous <= (chk.threshold if chk.threshold is not None else FREEZE_NOISE)) & ~is_black
    # A frozen run of N repeats shows N-1 zero diffs; include the frame that was repeated.
    for iv in _in_programme(runs(frozen), clock):
        iv = Interval(max(iv.start - 1, clock.ffoa_frame), iv.end)
        if iv.frames >= freeze_min:
            found.append(make_finding(
                spec, "picture.freeze", f"picture frozen for {clock.seconds(iv.frames):.2f} s",
                expected=f"no freeze longer than {clock.seconds(freeze_min):g} s",
                actual=f"{clock.seconds(iv.frames):.2f} s", timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))

    # -- out-of-legal-range levels (EBU R 103) ----------------------------------------------------
    chk = spec.check("picture.illegal_levels")
    share = chk.max_share_percent if chk.max_share_percent is not None else DEFAULT_ILLEGAL_SHARE_PERCENT
    illegal = series.illegal_share * 100.0 > share
    for iv in _in_programme(runs(illegal, _s_to_frames(chk.min_duration_s or 0.0, rate) if chk.min_duration_s else 1), clock):
        worst = float(np.max(series.illegal_share[iv.start:iv.end]) * 100.0)
        found.append(make_finding(
            spec, "picture.illegal_levels",
            f"{worst:.1f} % of samples outside the EBU R 103 range for {iv.frames} frames",
            expected=f"at most {share:g} % of the picture", actual=f"{worst:.1f} %",
            timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    return [f for f in found if f is not None]
