"""Picture checks: per-frame series from :mod:`tasks.qc.picture_analysis` -> findings with timecodes.

Windows: the head (before first frame of action) is leader — bars, countdown, 2-pop — and is not
judged as programme. Black at the very start or end of the programme is allowed up to the spec's
head/tail black maximum; anything else longer than the threshold is a finding.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from specs.model import Spec
from specs.timecode import Timecode
from tasks.media.probe import MediaInfo, tagged_light_level
from tasks.qc.findings import Finding, make_finding
from tasks.qc.picture_analysis import BLACK_PICTURE_RATIO, FREEZE_NOISE, GAMUT_TOLERANCE, Interval, PictureSeries, runs

__all__ = ["ProgrammeClock", "programme_clock", "check_picture", "check_commercial_blacks", "frame_span",
           "DEFAULT_COMMERCIAL_BLACK_MIN_S"]

DEFAULT_BLACK_MIN_S = 1.0
DEFAULT_COMMERCIAL_BLACK_MIN_S = 4.0  # Netflix: black + silence for 4 s or longer is a commercial black
DEFAULT_FREEZE_MIN_S = 2.0
DEFAULT_ILLEGAL_SHARE_PERCENT = 1.0  # EBU R 103: excursions on up to 1 % of the picture are tolerated
DEFAULT_GAMUT_SHARE_PERCENT = 1.0  # same area tolerance for R'G'B' gamut
DEFAULT_LETTERBOX_MIN_S = 1.0
DEFAULT_INTERLACED_MIN_S = 0.2  # a few combed frames are a cut/edit artefact, more is content
DEFAULT_COMB_RATIO = 1.3  # across-field / within-field combing; progressive pictures stay near 0.6
MIN_COMB_SHARE = 0.002  # and at least this share of samples combed across fields
COMB_GAP_FRAMES = 2
DEFAULT_LIGHT_LEVEL_TOLERANCE = 0.10
BAR_MIN_SHARE = 0.02  # bars thinner than 2 % of the picture are blanking, not letterbox


class ProgrammeClock:
    """Maps frame indices of the master to timecode and knows where the programme starts."""

    def __init__(self, start: Timecode, ffoa_frame: int, frame_count: int, *, ffoa_outside: bool = False) -> None:
        self.start = start
        self.ffoa_frame = ffoa_frame
        self.frame_count = frame_count
        self.ffoa_outside = ffoa_outside  # the spec's FFOA is not in the master: the programme is all of it

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
    # An FFOA outside the master is reported by metadata.start_timecode; the whole master is then the
    # programme, so one pass still shows every picture and audio defect.
    ffoa_frame = spec.timing.ffoa_frame(start, frame_count)
    return ProgrammeClock(start, 0 if ffoa_frame is None else ffoa_frame, frame_count,
                          ffoa_outside=ffoa_frame is None)


def _s_to_frames(seconds: float, rate: Fraction) -> int:
    return max(1, round(seconds * float(rate)))


def _in_programme(intervals: list[Interval], clock: ProgrammeClock) -> list[Interval]:
    out = []
    for iv in intervals:
        s, e = max(iv.start, clock.ffoa_frame), iv.end
        if e > s:
            out.append(Interval(s, e))
    return out


def check_picture(series: PictureSeries, clock: ProgrammeClock, spec: Spec,
                  info: MediaInfo | None = None) -> list[Finding]:
    """Black, freeze, levels, gamut, light level, bars and interlace findings over the programme."""
    found: list[Finding | None] = []
    rate = series.rate
    is_black = series.black_share >= BLACK_PICTURE_RATIO

    # -- programme black and head/tail black ----------------------------------------------------
    found += _black(series, clock, spec, is_black)

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
                actual=f"{clock.seconds(iv.frames):.2f} s", timecode_in=clock.tc(iv.start),
                timecode_out=clock.tc(iv.end)))

    # -- out-of-legal-range levels (EBU R 103) ----------------------------------------------------
    chk = spec.check("picture.illegal_levels")
    share = chk.max_share_percent if chk.max_share_percent is not None else DEFAULT_ILLEGAL_SHARE_PERCENT
    illegal = series.illegal_share * 100.0 > share
    min_frames = _s_to_frames(chk.min_duration_s or 0.0, rate) if chk.min_duration_s else 1
    for iv in _in_programme(runs(illegal, min_frames), clock):
        worst = float(np.max(series.illegal_share[iv.start:iv.end]) * 100.0)
        found.append(make_finding(
            spec, "picture.illegal_levels",
            f"{worst:.1f} % of samples outside the EBU R 103 range for {iv.frames} frames",
            expected=f"at most {share:g} % of the picture", actual=f"{worst:.1f} %",
            timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    found += _gamut(series, clock, spec)
    found += _bars(series, clock, spec, is_black)
    found += _interlaced(series, clock, spec, info)
    if info is not None and series.max_nits is not None:
        found += _light_level(series, clock, spec, info)
    return [f for f in found if f is not None]


def _black(series: PictureSeries, clock: ProgrammeClock, spec: Spec, is_black: np.ndarray) -> list[Finding | None]:
    """``picture.black`` inside the programme and ``timing.head_tail_black`` at its edges.

    A black run that starts at the first programme frame (FFOA) is head black, one that ends at the
    last frame tail black — judged against ``timing.head_black_s`` / ``tail_black_s`` (min and
    max) when the spec sets them. An edge the spec leaves unset (``null``) is unconstrained by the
    head/tail rule: black there is programme black like any other and ``picture.black`` judges it.
    """
    rate = series.rate
    timing = spec.timing
    chk = spec.check("picture.black")
    black_min_s = chk.min_duration_s or timing.max_programme_black_s or DEFAULT_BLACK_MIN_S
    out: list[Finding | None] = []
    programme = _in_programme(runs(is_black), clock)
    head = next((iv for iv in programme if iv.start == clock.ffoa_frame), None)
    tail = next((iv for iv in programme if iv.end == clock.frame_count), None)
    if clock.frame_count <= clock.ffoa_frame:
        return out
    for where, window, iv in (("head", timing.head_black_s, head), ("tail", timing.tail_black_s, tail)):
        if window is None:
            continue
        got_frames = iv.frames if iv is not None else 0
        got_s = clock.seconds(got_frames)
        if window.max is not None and got_s > window.max + 1e-9:
            assert iv is not None
            out.append(make_finding(
                spec, "timing.head_tail_black", f"{got_s:.2f} s of black at the programme {where}",
                expected=f"at most {window.max:g} s", actual=f"{got_s:.2f} s",
                timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
        # At least ``min`` seconds, and never less than one frame when a minimum is asked for.
        need = max(1, math.ceil(window.min * float(rate) - 1e-6)) if window.min else 0
        if need and got_frames < need:
            at = clock.ffoa_frame if where == "head" else clock.frame_count - 1
            out.append(make_finding(
                spec, "timing.head_tail_black",
                (f"{got_frames} frame(s) ({got_s:.3f} s) of black at the programme {where}" if got_frames else
                 f"no black frame at the programme {where}") + f"; the spec asks for at least {window.min:g} s",
                expected=f"at least {window.min:g} s ({need} frame{'s' if need > 1 else ''})",
                actual=f"{got_frames} frame{'s' if got_frames != 1 else ''}",
                timecode_in=clock.tc(at), timecode_out=clock.tc(at + 1)))
    for iv in programme:
        if (iv is head and timing.head_black_s is not None) or (iv is tail and timing.tail_black_s is not None):
            continue  # judged by timing.head_tail_black above
        if iv.frames >= _s_to_frames(black_min_s, rate):
            out.append(make_finding(
                spec, "picture.black", f"{clock.seconds(iv.frames):.2f} s of black picture inside the programme",
                expected=f"no black longer than {black_min_s:g} s", actual=f"{clock.seconds(iv.frames):.2f} s",
                timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    return out


def frame_span(start_sample: int, end_sample: int, sample_rate_hz: int, rate: Fraction) -> Interval | None:
    """The picture frames wholly inside samples ``[start_sample, end_sample)`` (audio starts with
    the picture), or None when no whole frame is."""
    first = -((-start_sample * rate.numerator) // (sample_rate_hz * rate.denominator))  # ceil
    last = (end_sample * rate.numerator) // (sample_rate_hz * rate.denominator)  # floor
    return Interval(int(first), int(last)) if last > first else None


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if e > s:
            out.append(Interval(s, e))
        if a[i].end < b[j].end:
            i += 1
        else:
            j += 1
    return out


def check_commercial_blacks(series: PictureSeries, clock: ProgrammeClock, spec: Spec,
                            silences: list[list[tuple[int, int]]], sample_rates_hz: list[int]) -> list[Finding]:
    """``picture.commercial_blacks``: black picture AND silence on every audio track together for
    ``min_duration_s`` (default :data:`DEFAULT_COMMERCIAL_BLACK_MIN_S`) or longer inside the programme.

    Args:
        silences: per audio track, its silence runs in samples from the file start (all channels
            silent, see :class:`tasks.qc.audio.AudioScan`), at least as short as the minimum.
        sample_rates_hz: the sample rate of each track.

    A run at the programme head or tail is left to ``timing.head_tail_black`` where the spec bounds
    that edge. Without audio tracks there is no silence to pair with black: nothing is reported.
    """
    chk = spec.check("picture.commercial_blacks")
    if chk.severity == "off" or not silences:
        return []
    min_s = chk.min_duration_s or DEFAULT_COMMERCIAL_BLACK_MIN_S
    rate = series.rate
    is_black = series.black_share >= BLACK_PICTURE_RATIO
    both = _in_programme(runs(is_black), clock)
    for runs_, sr in zip(silences, sample_rates_hz, strict=True):
        frames = [iv for iv in (frame_span(s, e, sr, rate) for s, e in runs_) if iv is not None]
        both = _intersect(both, frames)
    out: list[Finding | None] = []
    for iv in both:
        if iv.frames < _s_to_frames(min_s, rate):
            continue
        if (iv.start == clock.ffoa_frame and spec.timing.head_black_s is not None) or (
                iv.end == clock.frame_count and spec.timing.tail_black_s is not None):
            continue
        out.append(make_finding(
            spec, "picture.commercial_blacks",
            f"{clock.seconds(iv.frames):.2f} s of black picture with silence on every audio track inside the "
            "programme (a commercial black)", expected=f"no black with silence for {min_s:g} s or longer",
            actual=f"{clock.seconds(iv.frames):.2f} s", timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    return [f for f in out if f is not None]


def _gamut(series: PictureSeries, clock: ProgrammeClock, spec: Spec) -> list[Finding | None]:
    chk = spec.check("picture.gamut")
    if chk.severity == "off" or series.gamut_share.size == 0:
        return []
    share = chk.max_share_percent if chk.max_share_percent is not None else DEFAULT_GAMUT_SHARE_PERCENT
    tol = chk.threshold if chk.threshold is not None else GAMUT_TOLERANCE
    min_frames = _s_to_frames(chk.min_duration_s, series.rate) if chk.min_duration_s else 1
    out: list[Finding | None] = []
    for iv in _in_programme(runs(series.gamut_share * 100.0 > share, min_frames), clock):
        worst = float(np.max(series.gamut_share[iv.start:iv.end]) * 100.0)
        out.append(make_finding(
            spec, "picture.gamut", f"{worst:.1f} % of the picture outside the {series.matrix} R'G'B' gamut "
            f"(beyond {-tol * 100:g} %..{100 + tol * 100:g} %) for {iv.frames} frames",
            expected=f"at most {share:g} % of the picture", actual=f"{worst:.1f} %",
            timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    return out


def _bars(series: PictureSeries, clock: ProgrammeClock, spec: Spec, is_black: np.ndarray) -> list[Finding | None]:
    chk = spec.check("picture.letterbox")
    if chk.severity == "off" or series.bars_px.size == 0:
        return []
    b = series.bars_px
    letter = (b[:, 0] + b[:, 1]) >= BAR_MIN_SHARE * series.height
    pillar = (b[:, 2] + b[:, 3]) >= BAR_MIN_SHARE * series.width
    min_frames = _s_to_frames(chk.min_duration_s or DEFAULT_LETTERBOX_MIN_S, series.rate)
    out: list[Finding | None] = []
    for iv in _in_programme(runs((letter | pillar) & ~is_black, min_frames), clock):
        top, bottom, left, right = (int(np.median(b[iv.start:iv.end, i])) for i in range(4))
        kind = " and ".join(k for k, on in (("letterbox", top + bottom), ("pillarbox", left + right)) if on)
        active = f"{series.width - left - right}x{series.height - top - bottom}"
        out.append(make_finding(
            spec, "picture.letterbox",
            f"{kind or 'black bars'}: top {top}, bottom {bottom}, left {left}, right {right} px "
            f"(active picture {active})", expected="full-frame active picture", actual=active,
            timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    return out


def _interlaced(series: PictureSeries, clock: ProgrammeClock, spec: Spec,
                info: MediaInfo | None) -> list[Finding | None]:
    chk = spec.check("picture.interlaced")
    declared = (info.primary_video.scan if info and info.primary_video else "unknown")
    if (chk.severity == "off" or series.comb_share.size == 0 or declared == "interlaced"
            or spec.picture.scan == "interlaced"):
        return []
    ratio = chk.threshold if chk.threshold is not None else DEFAULT_COMB_RATIO
    min_frames = _s_to_frames(chk.min_duration_s or DEFAULT_INTERLACED_MIN_S, series.rate)
    combed = (series.comb_ratio > ratio) & (series.comb_share > MIN_COMB_SHARE)
    out: list[Finding | None] = []
    # Fields without motion between them do not comb: bridge such frames inside interlaced runs.
    for iv in _in_programme(runs(combed, min_frames, max_gap=COMB_GAP_FRAMES), clock):
        worst = float(np.max(series.comb_share[iv.start:iv.end]) * 100.0)
        out.append(make_finding(
            spec, "picture.interlaced", f"combing (interlaced content) for {iv.frames} frames in a master declared "
            f"{declared}; up to {worst:.1f} % of samples combed", expected="progressive content",
            actual=f"interlaced ({worst:.1f} % combed)", timecode_in=clock.tc(iv.start), timecode_out=clock.tc(iv.end)))
    return out


def _light_level(series: PictureSeries, clock: ProgrammeClock, spec: Spec, info: MediaInfo) -> list[Finding | None]:
    chk = spec.check("picture.hdr_light_level")
    if chk.severity == "off" or series.max_nits is None or series.mean_nits is None:
        return []
    prog = slice(clock.ffoa_frame, clock.frame_count)
    max_cll = float(np.max(series.max_nits[prog], initial=0.0))
    max_fall = float(np.max(series.mean_nits[prog], initial=0.0))
    tag_cll, tag_fall = tagged_light_level(info.path)
    tol = chk.threshold if chk.threshold is not None else DEFAULT_LIGHT_LEVEL_TOLERANCE
    measured = f"MaxCLL {max_cll:.0f}, MaxFALL {max_fall:.0f} cd/m2"
    if tag_cll is None:
        return [make_finding(spec, "picture.hdr_light_level", f"no MaxCLL/MaxFALL tag; measured {measured}",
                             expected="MaxCLL/MaxFALL tagged", actual=measured,
                             timecode_in=clock.tc(clock.ffoa_frame), timecode_out=clock.tc(clock.frame_count))]
    out: list[Finding | None] = []
    for name, have, tag, series_nits in (("MaxCLL", max_cll, tag_cll, series.max_nits),
                                         ("MaxFALL", max_fall, tag_fall, series.mean_nits)):
        if tag is None:
            out.append(make_finding(spec, "picture.hdr_light_level", f"{name} is tagged 0 (unknown); measured "
                                    f"{have:.0f} cd/m2", expected=f"{name} tagged", actual=f"{have:.0f} cd/m2",
                                    timecode_in=clock.tc(clock.ffoa_frame), timecode_out=clock.tc(clock.frame_count)))
        elif have > tag * (1 + tol) + 1.0:
            at = clock.ffoa_frame + int(np.argmax(series_nits[prog]))
            out.append(make_finding(
                spec, "picture.hdr_light_level", f"measured {name} {have:.0f} cd/m2 exceeds the tagged {tag:.0f} cd/m2",
                expected=f"at most {tag:.0f} cd/m2 (+{tol * 100:g} %)", actual=f"{have:.0f} cd/m2",
                timecode_in=clock.tc(at), timecode_out=clock.tc(at + 1)))
    return out
