"""Audio checks of a master: loudness rules per spec track, measured over the programme.

Each audio stream is decoded once (ffmpeg pipe, flat memory) and fed to the streaming BS.1770-4
meter. The head (bars, tone, 2-pop before first frame of action) is leader, not programme, so the
samples before FFOA are dropped before metering.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from specs.model import AudioTrackSpec, LoudnessSpec, Spec
from tasks.audio.loudness import LoudnessResult, LoudnessRule, RuleOutcome, evaluate_loudness_rule, measure_blocks
from tasks.audio.reader import iter_ffmpeg_blocks, prefetch
from tasks.media.probe import AudioStream, MediaInfo
from tasks.qc.findings import Finding, Severity
from tasks.qc.metadata import make_finding
from tasks.qc.picture import ProgrammeClock

__all__ = ["check_audio", "meter_labels", "loudness_rule", "skip_samples"]

# Spec channel names -> the meter's names (BS.1770-4 weights: side/surround pair at 60-120 degrees
# +1.5 dB, rear pair 1.0, LFE excluded).
_METER_LABEL = {"Lss": "Ls", "Rss": "Rs", "Lrs": "Lb", "Rrs": "Rb"}


def meter_labels(track: AudioTrackSpec, channels: int) -> list[str]:
    """The meter's channel labels for a spec track (falls back to the layout when counts differ)."""
    if len(track.channels) == channels:
        return [_METER_LABEL.get(c, c) for c in track.channels]
    from tasks.audio.loudness import layout_labels

    return list(layout_labels({1: "mono", 2: "stereo", 5: "5.0", 6: "5.1", 8: "7.1"}.get(channels, "stereo"), None))


def loudness_rule(spec: LoudnessSpec) -> LoudnessRule:
    return LoudnessRule(
        method=spec.method, target_lufs=spec.target_lufs, tolerance_minus_lu=spec.tolerance_lu.minus,
        tolerance_plus_lu=spec.tolerance_lu.plus, max_true_peak_dbtp=spec.max_true_peak_dbtp,
        lra_min_lu=spec.lra_lu.min if spec.lra_lu else None, lra_max_lu=spec.lra_lu.max if spec.lra_lu else None,
        max_short_term_lufs=spec.max_short_term_lufs, max_momentary_lufs=spec.max_momentary_lufs)


def skip_samples(blocks: Iterator[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """Drop the first ``count`` sample frames of a block stream."""
    for block in blocks:
        if count >= len(block):
            count -= len(block)
            continue
        yield block[count:] if count else block
        count = 0


def _measure(info: MediaInfo, stream: AudioStream, labels: list[str], start_s: float, layout: str) -> LoudnessResult:
    blocks = iter_ffmpeg_blocks(info.path, stream_index=stream.index, channels=stream.channels)
    start = round(start_s * stream.sample_rate_hz)
    return measure_blocks(prefetch(skip_samples(blocks, start)), stream.sample_rate_hz, labels, layout=layout,
                          track_index=stream.index)


def _outcome_findings(spec: Spec, track: AudioTrackSpec, outcomes: list[RuleOutcome], tc_in: str | None,
                      tc_out: str | None) -> list[Finding]:
    out = []
    for o in outcomes:
        if o.status == "pass":
            continue
        f = make_finding(spec, o.check, f"track {track.id}: {o.message}", expected=o.expected, actual=o.actual,
                         timecode_in=tc_in, timecode_out=tc_out, track=track.id, status=o.status)
        if f is None:
            continue
        if o.status == "not_measured":
            # Never a pass, never a silent error either: the operator must measure it another way.
            f = f.model_copy(update={"severity": Severity.WARNING})
        out.append(f)
    return out


def check_audio(info: MediaInfo, spec: Spec, clock: ProgrammeClock | None) -> tuple[list[Finding], dict[str, Any]]:
    """Loudness findings per spec track and the measured values (for report.json)."""
    findings: list[Finding] = []
    loudness: list[dict[str, Any]] = []
    start_s = clock.seconds(clock.ffoa_frame) if clock else 0.0
    tc_in = clock.tc(clock.ffoa_frame) if clock else None
    tc_out = clock.tc(clock.frame_count) if clock else None
    for track, stream in zip(spec.audio.tracks, info.audio):
        labels = meter_labels(track, stream.channels)
        result = _measure(info, stream, labels, start_s, track.layout)
        entry = {"track": track.id, "label": track.label, "stream_index": stream.index, **result.contract_dict(),
                 "short_term_series_lufs": result.short_term_series_lufs, "series_rate_hz": result.series_rate_hz,
                 "measured_from": tc_in}
        loudness.append(entry)
        if track.loudness is None:
            continue
        outcomes = evaluate_loudness_rule(result, loudness_rule(track.loudness))
        integrated = next((o for o in outcomes if o.check == "audio.loudness.integrated"), None)
        fallback = track.loudness.fallback
        if fallback is not None and integrated is not None and integrated.status != "pass":
            # The spec's own procedure (e.g. Netflix): judge by the fallback method when the primary
            # cannot be measured or fails; the primary's not_measured stays visible as a warning.
            fb = [o for o in evaluate_loudness_rule(result, loudness_rule(fallback)) if o.check == "audio.loudness.integrated"]
            outcomes = [o for o in outcomes if o.check != "audio.loudness.integrated" or o.status == "not_measured"]
            outcomes += [o.model_copy(update={"message": f"fallback ({fallback.method}): {o.message}"}) for o in fb]
        findings += _outcome_findings(spec, track, outcomes, tc_in, tc_out)
    return findings, {"loudness": loudness}
