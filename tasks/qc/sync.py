"""Sync: the 2-pop beep against the flash frame, two seconds before first frame of action; the coverage of
mixes placed by the layback.

The flash frame is the brightest frame of the head (the countdown's "2" is a full-white frame);
the beep onset is the first sample above -40 dBFS near FFOA - 2 s (found during the audio decode,
see :class:`tasks.qc.audio.AudioScan`). Their difference, in frames, is the sync offset of that
track: positive means the sound is late.

The layback places every mix where its BWF time reference says (EBU Tech 3285); :func:`check_layback`
reports what that placement leaves without sound or cuts off, and a 2-pop that the time reference
puts off the picture's 2-pop, each with the spec's severity.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from specs.model import AudioTrackSpec, Spec
from specs.severity import Severity
from specs.timecode import Timecode
from tasks.layback import LaybackPlan, TrackAssignment
from tasks.qc.audio import TrackScan
from tasks.qc.findings import Finding, make_finding
from tasks.qc.picture_analysis import PictureSeries
from tasks.qc.picture_checks import ProgrammeClock

__all__ = ["flash_frame", "check_two_pop", "check_layback", "DEFAULT_TWO_POP_TOLERANCE_FRAMES"]

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


def _frames(samples: int, track: TrackAssignment, rate: Fraction) -> Fraction:
    return Fraction(samples) * rate / track.sample_rate_hz


def check_layback(spec: Spec, plan: LaybackPlan, two_pop_measured: set[str] | None = None) -> list[Finding]:
    """Findings of the mixes' placement (:class:`~tasks.layback.LaybackPlan`), on the picture's clock.

    ``audio.layback_coverage``: the programme without the mix's sound at the head or the tail, by more than
    the check's threshold in frames (default the spec's A/V duration tolerance). ``audio.layback_trim``: mix
    before the picture's first or after its last frame, cut off. ``timing.two_pop``: the mix's 2-pop, placed
    by its time reference, off the picture's 2-pop (tracks in ``two_pop_measured`` were already judged
    against the flash frame and are skipped).
    """
    start = Timecode.parse(plan.start_timecode, plan.rate)
    default_tol = spec.timing.av_tolerance_frames(plan.rate)
    tol_text = spec.timing.av_tolerance_text(plan.rate)

    def tc(frame: Fraction | int) -> str:
        return str(start + int(frame))

    def tolerance(check: str) -> tuple[float, str]:
        threshold = spec.check(check).threshold
        return (default_tol, tol_text) if threshold is None else (threshold, f"within {threshold:g} frames")

    found: list[Finding | None] = []
    prog = plan.programme_start_frame
    end = plan.picture_frames
    for t in plan.tracks:
        mix = Path(t.mix_path).name
        gap_tol, gap_text = tolerance("audio.layback_coverage")
        head = _frames(t.head_gap_samples, t, plan.rate)
        if head > gap_tol:
            found.append(make_finding(
                spec, "audio.layback_coverage", f"track {t.track_id}: the mix {mix} starts {float(head):.1f} frames "
                f"after the programme start {tc(prog)} (placed by its BWF time reference); the programme has no "
                "sound from it until then", expected=f"mix from {tc(prog)} {gap_text}",
                actual=f"starts {float(head):+.1f} frames late ({t.head_gap_samples} samples)",
                timecode_in=tc(prog), timecode_out=tc(prog + math.ceil(head)), track=t.track_id))
        tail = _frames(t.tail_gap_samples, t, plan.rate)
        if tail > gap_tol:
            found.append(make_finding(
                spec, "audio.layback_coverage", f"track {t.track_id}: the mix {mix} ends {float(tail):.1f} frames "
                f"before the picture's end {tc(end)}; padded with silence", expected=f"mix to {tc(end)} {gap_text}",
                actual=f"ends {float(tail):.1f} frames early ({t.tail_gap_samples} samples)",
                timecode_in=tc(end - math.ceil(tail)), timecode_out=tc(end), track=t.track_id))
        trim_tol, trim_text = tolerance("audio.layback_trim")
        for where, samples, at in (("before the picture's first frame", t.head_trim_samples, 0),
                                   ("after the picture's last frame", t.tail_trim_samples, end)):
            frames = _frames(samples, t, plan.rate)
            if frames > trim_tol:
                found.append(make_finding(
                    spec, "audio.layback_trim", f"track {t.track_id}: {float(frames):.1f} frames "
                    f"({float(Fraction(samples, t.sample_rate_hz)):.2f} s) of the mix {mix} lie {where} {tc(at)} "
                    "and were trimmed", expected=f"mix inside the picture {trim_text}",
                    actual=f"{float(frames):.1f} frames {where}", timecode_in=tc(at), timecode_out=tc(at),
                    track=t.track_id))
        found.append(_mix_bit_depth(spec, t, mix))
        pop = t.two_pop_offset_samples
        if pop is not None and t.track_id not in (two_pop_measured or set()):
            chk = spec.check("timing.two_pop")
            pop_tol = chk.threshold if chk.threshold is not None else DEFAULT_TWO_POP_TOLERANCE_FRAMES
            offset = _frames(pop, t, plan.rate)
            if abs(offset) > pop_tol:
                pop_at = Fraction(prog) - 2 * plan.rate
                first, last = (pop_at, pop_at + offset) if offset > 0 else (pop_at + offset, pop_at)
                found.append(make_finding(
                    spec, "timing.two_pop", f"track {t.track_id}: placed by its BWF time reference, the 2-pop of "
                    f"{mix} is {abs(float(offset)):.1f} frames {'after' if offset > 0 else 'before'} the picture's "
                    "2-pop; the time reference and the mix content disagree", expected=f"within {pop_tol:g} frames",
                    actual=f"{float(offset):+.1f} frames", timecode_in=tc(first),
                    timecode_out=tc(last + 1), track=t.track_id))
    return [f for f in found if f is not None]


_PCM = re.compile(r"^pcm_(?P<kind>[suf])(?P<bits>\d+)")


def _sample_format(codec: str, bit_depth: int | None) -> str:
    """``pcm_s16le`` -> ``16-bit integer PCM``, ``pcm_f32le`` -> ``32-bit float PCM`` (else the codec's name)."""
    m = _PCM.match(codec)
    if m is None:
        return f"{codec} ({bit_depth}-bit)" if bit_depth else codec
    return f"{m['bits']}-bit {'float' if m['kind'] == 'f' else 'integer'} PCM"


def _mix_bit_depth(spec: Spec, t: TrackAssignment, mix: str) -> Finding | None:
    """``audio.mix_bit_depth``: the layback writes the spec's ``audio.codec`` (default 24-bit integer PCM); a mix
    in another sample format is converted: 16-bit is padded with zero bits (no resolution gained), 32-bit float
    loses its resolution and anything above 0 dBFS is clipped, 32-bit integer is truncated."""
    out_codec = spec.audio.codec or "pcm_s24le"
    if not t.mix_codec or not _PCM.match(t.mix_codec) or not _PCM.match(out_codec):
        return None
    have, want = _sample_format(t.mix_codec, t.mix_bit_depth), _sample_format(out_codec, None)
    if have == want:
        return None
    why = ("padded with zero bits: the mix has no more resolution than 16 bits; ask for a mix at "
           f"{want.split(' ')[0]}" if have.startswith(("8-bit", "16-bit")) else
           "float headroom and resolution are lost and samples above 0 dBFS are clipped" if "float" in have else
           "the low bits are truncated")
    return make_finding(spec, "audio.mix_bit_depth",
                        f"track {t.track_id}: the mix {mix} is {have} ({t.mix_codec}); the layback master carries "
                        f"it as {want} ({out_codec}): {why}", expected=want, actual=have, track=t.track_id)
