"""Audio checks of a master: loudness rules and signal checks per spec track, over the programme.

Each audio stream is decoded once (ffmpeg pipe, flat memory). The same blocks feed the streaming
BS.1770-4 meter and :class:`AudioScan`, which finds, sample-exactly, programme silence, runs of
full-scale samples (clipping), a channel that is silent or identical to another while the track
carries signal, L/R phase inversion (correlation per picture frame), DC offset, and the 2-pop in
the head. The head (bars, tone, 2-pop before first frame of action) is leader, not programme: the
meter and the programme checks start at FFOA; only the 2-pop search looks at the head. A track
with a dialogue-gated rule also feeds the meter's speech detector from the same decode.

Sample positions become timecodes on the master's clock (audio starts with the picture, as the
layback writes it): in = the frame holding the first affected sample, out = the frame after the last.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from specs.layouts import default_layout, layout_labels, loudness_labels
from specs.model import AudioTrackSpec, Spec
from specs.severity import Severity
from tasks.audio.loudness import LoudnessResult, measure_blocks
from tasks.audio.reader import iter_ffmpeg_blocks, prefetch
from tasks.media.probe import AudioStream, MediaInfo
from tasks.qc.findings import Finding, make_finding
from tasks.qc.loudness import RuleOutcome, evaluate_loudness_rule
from tasks.qc.picture_checks import DEFAULT_COMMERCIAL_BLACK_MIN_S, ProgrammeClock

__all__ = ["check_audio", "scan_track", "scan_shared", "scan_settings", "track_findings", "AudioScan", "TrackScan",
           "meter_labels", "skip_samples", "RunTracker", "needs_dialogue"]

DEFAULT_SILENCE_DBFS = -90.0
DEFAULT_SILENCE_MIN_S = 1.0
DEFAULT_CLIP_DBFS = -0.1
CLIP_MIN_SAMPLES = 3  # one full-scale sample is a peak; three in a row is a clipped waveform
DEFAULT_PHASE_CORRELATION = -0.5
DEFAULT_PHASE_MIN_S = 1.0
DEFAULT_DC_DBFS = -45.0
DEFAULT_IDENTITY_MIN_S = 2.0
IDENTICAL_TOLERANCE = 1e-6  # |a - b| at or below this (float32 of 24-bit PCM) counts as the same sample
TWO_POP_SEARCH_S = 0.5  # look for the beep this far either side of FFOA - 2 s
TWO_POP_DBFS = -40.0
PHASE_PAIRS = (("L", "R"), ("Ls", "Rs"), ("Lss", "Rss"), ("Lrs", "Rrs"), ("Lb", "Rb"))
MAX_FINDINGS_PER_CHECK = 20

def meter_labels(track: AudioTrackSpec, channels: int) -> list[str]:
    """The meter's channel labels for a spec track (falls back to the layout when counts differ)."""
    if len(track.channels) == channels:
        return list(loudness_labels(track.channels))
    layout = default_layout(channels)
    return list(loudness_labels(layout.labels) if layout is not None else layout_labels("stereo"))


def skip_samples(blocks: Iterator[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """Drop the first ``count`` sample frames of a block stream."""
    for block in blocks:
        if count >= len(block):
            count -= len(block)
            continue
        yield block[count:] if count else block
        count = 0



class RunTracker:
    """Sample-exact runs of True across a stream of boolean blocks (flat memory)."""

    def __init__(self, min_len: int, limit: int = 10_000) -> None:
        self.min_len = max(1, min_len)
        self.limit = limit
        self.intervals: list[tuple[int, int]] = []
        self.count = 0  # runs found, including those beyond ``limit``
        self._open: int | None = None

    def feed(self, mask: np.ndarray, offset: int) -> None:
        if mask.size == 0:
            return
        d = np.diff(mask.astype(np.int8), prepend=np.int8(self._open is not None))
        starts = np.flatnonzero(d == 1) + offset
        ends = np.flatnonzero(d == -1) + offset
        if self._open is not None:
            if not ends.size:
                return
            self._close(self._open, int(ends[0]))
            ends = ends[1:]
            self._open = None
        for s, e in zip(starts, ends, strict=False):  # a run still open has no end yet
            self._close(int(s), int(e))
        if starts.size > ends.size:
            self._open = int(starts[-1])

    def finish(self, end: int) -> list[tuple[int, int]]:
        if self._open is not None:
            self._close(self._open, end)
            self._open = None
        return self.intervals

    def _close(self, s: int, e: int) -> None:
        if e - s >= self.min_len:
            self.count += 1
            if len(self.intervals) < self.limit:
                self.intervals.append((s, e))


def _hold(mask: np.ndarray, n: int) -> np.ndarray:
    """True for every sample of each ``n``-sample window (from the block start) that has a True."""
    m = mask.size
    if n <= 1 or m == 0:
        return mask
    k = -(-m // n)
    pad = np.zeros(k * n, bool)
    pad[:m] = mask
    return np.repeat(pad.reshape(k, n).any(axis=1), n)[:m]


@dataclass
class TrackScan:
    """What :class:`AudioScan` found in one track; positions are samples from the file start."""

    sample_rate_hz: int
    labels: list[str]
    start_sample: int
    end_sample: int = 0
    silence: list[tuple[int, int]] = field(default_factory=list)
    #: silence runs (every channel) at least as long as the commercial-blacks minimum, for pairing with
    #: black picture (:func:`tasks.qc.picture_checks.check_commercial_blacks`); empty when that check is off
    silence_for_blacks: list[tuple[int, int]] = field(default_factory=list)
    clipping: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    clipping_runs: dict[int, int] = field(default_factory=dict)
    channel_silent: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    identical: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)
    phase: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)
    min_correlation: dict[tuple[int, int], float] = field(default_factory=dict)
    dc_dbfs: list[float | None] = field(default_factory=list)
    two_pop_sample: int | None = None


class AudioScan:
    """Signal checks on a block stream, in the same decode as the loudness meter.

    Args:
        sample_rate_hz, labels: of the track.
        start_sample: first programme sample (FFOA); earlier samples are only searched for the 2-pop.
        window_samples: phase correlation window (one picture frame keeps in/out frame-exact).
        two_pop_sample: where the 2-pop should be (FFOA - 2 s), or None to skip the search.
    """

    def __init__(self, sample_rate_hz: int, labels: Sequence[str], start_sample: int, window_samples: int, *,
                 silence_dbfs: float = DEFAULT_SILENCE_DBFS, silence_min_s: float = DEFAULT_SILENCE_MIN_S,
                 clip_dbfs: float = DEFAULT_CLIP_DBFS, clip_min_samples: int = CLIP_MIN_SAMPLES,
                 phase_correlation: float = DEFAULT_PHASE_CORRELATION, phase_min_s: float = DEFAULT_PHASE_MIN_S,
                 identity_dbfs: float = DEFAULT_SILENCE_DBFS, identity_min_s: float = DEFAULT_IDENTITY_MIN_S,
                 two_pop_sample: int | None = None, black_silence_min_s: float | None = None) -> None:
        self.sr = sample_rate_hz
        self.labels = list(labels)
        self.start = start_sample
        self.window = max(1, window_samples)
        self.silence_lin = 10 ** (silence_dbfs / 20)
        self.identity_lin = 10 ** (identity_dbfs / 20)
        self.clip_lin = np.float32(10 ** (clip_dbfs / 20) - 1e-7)
        self.phase_correlation = phase_correlation
        self.phase_min_windows = max(1, math.ceil(phase_min_s * sample_rate_hz / self.window))
        n = len(self.labels)
        full = [i for i, lab in enumerate(self.labels) if lab != "LFE"]
        self.full_range = full
        self.silence = RunTracker(round(silence_min_s * sample_rate_hz), limit=MAX_FINDINGS_PER_CHECK * 5)
        # Silence to pair with black picture (commercial blacks): its own minimum, which may be shorter
        # than audio.silence's; the same level threshold.
        self.black_silence = (RunTracker(round(black_silence_min_s * sample_rate_hz), limit=1000)
                              if black_silence_min_s else None)
        self.clip = {c: RunTracker(clip_min_samples) for c in range(n)}
        id_min = round(identity_min_s * sample_rate_hz)
        self.silent = {c: RunTracker(id_min, limit=100) for c in full} if len(full) > 1 else {}
        self.same = {(a, b): RunTracker(id_min, limit=100) for i, a in enumerate(full) for b in full[i + 1:]}
        self.pairs = [(self.labels.index(a), self.labels.index(b)) for a, b in PHASE_PAIRS
                      if a in self.labels and b in self.labels]
        self.phase = {p: RunTracker(self.phase_min_windows, limit=100) for p in self.pairs}
        self.min_corr = {p: 1.0 for p in self.pairs}
        self._carry = np.zeros((0, n), np.float32)
        self._window_index = 0
        self.dc_sum = np.zeros(n)
        self.count = 0
        self.pos = 0
        self.pop_target = two_pop_sample
        self.pop_sample: int | None = None
        self._pop_done = two_pop_sample is None

    def wrap(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Observe every block and pass it on unchanged (for the meter)."""
        for block in blocks:
            self.observe(block)
            yield block

    def observe(self, block: np.ndarray) -> None:
        pos, n = self.pos, len(block)
        self.pos += n
        if not self._pop_done:
            self._find_pop(block, pos)
        if pos + n <= self.start:
            return
        x = block[max(0, self.start - pos):]
        offset = max(pos, self.start)
        ax = np.abs(x)
        loud = ax > self.silence_lin
        any_loud = loud.any(axis=1)
        self.silence.feed(~any_loud, offset)
        if self.black_silence is not None:
            self.black_silence.feed(~any_loud, offset)
        for c, tracker in self.clip.items():
            tracker.feed(ax[:, c] >= self.clip_lin, offset)
        if self.silent:
            quiet = ax <= self.identity_lin
            for c, tracker in self.silent.items():
                others = np.delete(loud[:, self.full_range], self.full_range.index(c), axis=1).any(axis=1)
                tracker.feed(quiet[:, c] & others, offset)
            # "Carries signal" over 10 ms windows: noise crosses zero, and a per-sample level gate
            # would cut an identical run into pieces at every sample below the threshold.
            held = {a: _hold(loud[:, a], self.sr // 100) for a in {a for a, _ in self.same}}
            for (a, b), tracker in self.same.items():
                tracker.feed((np.abs(x[:, a] - x[:, b]) <= IDENTICAL_TOLERANCE) & held[a], offset)
        self.dc_sum += x.sum(axis=0, dtype=np.float64)
        self.count += len(x)
        if self.pairs:
            self._phase(x)

    def _phase(self, x: np.ndarray) -> None:
        buf = np.concatenate([self._carry, x]) if self._carry.size else x
        whole = len(buf) // self.window * self.window
        self._carry = buf[whole:].copy()
        if not whole:
            return
        w = buf[:whole].reshape(-1, self.window, buf.shape[1]).astype(np.float64)
        first = self._window_index
        self._window_index += w.shape[0]
        floor = self.silence_lin ** 2 * self.window * 100  # both channels must carry signal
        for p in self.pairs:
            a, b = w[:, :, p[0]], w[:, :, p[1]]
            ea, eb = (a * a).sum(axis=1), (b * b).sum(axis=1)
            ok = (ea > floor) & (eb > floor)
            corr = np.where(ok, (a * b).sum(axis=1) / np.sqrt(np.maximum(ea * eb, 1e-30)), 1.0)
            self.min_corr[p] = min(self.min_corr[p], float(corr.min()))
            self.phase[p].feed(corr < self.phase_correlation, first)

    def _find_pop(self, block: np.ndarray, pos: int) -> None:
        assert self.pop_target is not None
        lo = max(0, self.pop_target - round(TWO_POP_SEARCH_S * self.sr))
        hi = self.pop_target + round(TWO_POP_SEARCH_S * self.sr)
        if pos >= hi:
            self._pop_done = True
            return
        a, b = max(lo, pos), min(hi, pos + len(block))
        if b <= a:
            return
        seg = np.abs(block[a - pos:b - pos][:, self.full_range or slice(None)]).max(axis=1)
        hits = np.flatnonzero(seg > 10 ** (TWO_POP_DBFS / 20))
        if hits.size:
            # A signal already present at the start of the window is tone, not a pop.
            self.pop_sample = a + int(hits[0]) if a + int(hits[0]) > lo else None
            self._pop_done = True

    def result(self) -> TrackScan:
        end = self.pos
        windows_start = self.start
        phase = {p: [(windows_start + s * self.window, windows_start + e * self.window) for s, e in t.finish(
            self._window_index)] for p, t in self.phase.items()}
        dc = [None if self.count == 0 else (20 * math.log10(abs(v) / self.count) if v else -math.inf)
              for v in self.dc_sum]
        return TrackScan(
            sample_rate_hz=self.sr, labels=self.labels, start_sample=self.start, end_sample=end,
            silence=self.silence.finish(end),
            silence_for_blacks=self.black_silence.finish(end) if self.black_silence is not None else [],
            clipping={c: t.finish(end) for c, t in self.clip.items() if t.count},
            clipping_runs={c: t.count for c, t in self.clip.items() if t.count},
            channel_silent={c: t.finish(end) for c, t in self.silent.items() if t.finish(end)},
            identical={p: t.finish(end) for p, t in self.same.items() if t.finish(end)},
            phase={p: v for p, v in phase.items() if v}, min_correlation=dict(self.min_corr),
            dc_dbfs=dc, two_pop_sample=self.pop_sample)


def _dbfs(setting: float | None, default: float) -> float:
    return default if setting is None else setting


def scan_settings(stream: AudioStream, track: AudioTrackSpec, spec: Spec, clock: ProgrammeClock | None
                  ) -> dict[str, Any]:
    """Everything a scan of one stream for one track computes with (the meter's labels and layout, where the
    programme starts, the signal checks' thresholds), nothing it does not: two specs with equal settings get equal
    measurements from one decode, however their severities, clauses and loudness targets differ."""
    sr = stream.sample_rate_hz
    rate = clock.rate if clock else Fraction(25)
    silence = spec.check("audio.silence")
    clip = spec.check("audio.clipping")
    phase = spec.check("audio.phase")
    ident = spec.check("audio.channel_identity")
    blacks = spec.check("picture.commercial_blacks")
    # Silence is paired with black in whole frames and the minimum is rounded to frames: track runs
    # from a frame below the minimum so that rounding loses none (the pairing applies the minimum).
    black_silence_min_s = (None if blacks.severity == "off" else
                           max((blacks.min_duration_s or DEFAULT_COMMERCIAL_BLACK_MIN_S) - 1 / float(rate), 0.0)
                           or None)
    return {
        "labels": meter_labels(track, stream.channels), "layout": track.layout,
        "start": round(clock.seconds(clock.ffoa_frame) * sr) if clock else 0, "frame": round(sr / float(rate)),
        "silence_dbfs": _dbfs(silence.threshold, DEFAULT_SILENCE_DBFS),
        "silence_min_s": silence.min_duration_s or spec.timing.max_programme_silence_s or DEFAULT_SILENCE_MIN_S,
        "clip_dbfs": _dbfs(clip.threshold, DEFAULT_CLIP_DBFS),
        "phase_correlation": _dbfs(phase.threshold, DEFAULT_PHASE_CORRELATION),
        "phase_min_s": phase.min_duration_s or DEFAULT_PHASE_MIN_S,
        "identity_dbfs": _dbfs(ident.threshold, DEFAULT_SILENCE_DBFS),
        "identity_min_s": ident.min_duration_s or DEFAULT_IDENTITY_MIN_S,
        "two_pop_sample": (round((clock.seconds(clock.ffoa_frame) - 2.0) * sr)
                           if clock and clock.ffoa_frame >= 2 * rate else None),
        "black_silence_min_s": black_silence_min_s}


def scan_track(info: MediaInfo, stream: AudioStream, track: AudioTrackSpec, settings: Sequence[dict[str, Any]],
               dialogue: bool) -> tuple[LoudnessResult, list[TrackScan]]:
    """ONE decode of one audio stream: loudness over the programme (dialogue-gated too when ``dialogue``) and the
    signal checks once per :func:`scan_settings` in ``settings``, all sharing the meter's labels and start."""
    labels, start, sr = settings[0]["labels"], settings[0]["start"], stream.sample_rate_hz
    scans = [AudioScan(sr, k["labels"], k["start"], k["frame"], silence_dbfs=k["silence_dbfs"],
                       silence_min_s=k["silence_min_s"], clip_dbfs=k["clip_dbfs"],
                       phase_correlation=k["phase_correlation"], phase_min_s=k["phase_min_s"],
                       identity_dbfs=k["identity_dbfs"], identity_min_s=k["identity_min_s"],
                       two_pop_sample=k["two_pop_sample"], black_silence_min_s=k["black_silence_min_s"])
             for k in settings]
    blocks = iter_ffmpeg_blocks(info.path, stream_index=stream.index, channels=stream.channels)
    for scan in scans:  # each observes every block as it passes on to the meter
        blocks = scan.wrap(blocks)
    # The scans run in the reader thread, the meter in this one: two cores, one decode.
    metered = prefetch(skip_samples(blocks, start))
    result = measure_blocks(metered, sr, labels, layout=track.layout, track_index=stream.index, dialogue=dialogue)
    return result, [scan.result() for scan in scans]


def needs_dialogue(track: AudioTrackSpec) -> bool:
    """Whether a track's loudness rule (or its fallback) is dialogue-gated: then the same decode
    also feeds the speech detector (:mod:`tasks.audio.dialogue`)."""
    rule = track.loudness
    while rule is not None:
        if rule.method == "dialogue-gated":
            return True
        rule = rule.fallback
    return False


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


def _span(clock: ProgrammeClock | None, sr: int, s: int, e: int) -> tuple[str | None, str | None]:
    """Timecodes of samples [s, e): the frame holding s, the frame after the one holding e - 1."""
    if clock is None:
        return None, None
    f_in = int(Fraction(s) * clock.rate / sr)
    f_out = int(Fraction(max(e - 1, s)) * clock.rate / sr) + 1
    return clock.tc(f_in), clock.tc(f_out)


def _merge(intervals: list[tuple[int, int]], gap: int) -> list[tuple[int, int, int]]:
    """Merge intervals closer than ``gap``; returns (start, end, runs merged)."""
    out: list[list[int]] = []
    for s, e in sorted(intervals):
        if out and s - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], e)
            out[-1][2] += 1
        else:
            out.append([s, e, 1])
    return [(a, b, c) for a, b, c in out]


def track_findings(spec: Spec, track: AudioTrackSpec, scan: TrackScan, clock: ProgrammeClock | None) -> list[Finding]:
    """Findings of the signal checks of one track (loudness rules are separate)."""
    sr = scan.sample_rate_hz
    found: list[Finding | None] = []
    lab = scan.labels

    def add(check: str, message: str, s: int, e: int, expected: str, actual: str) -> None:
        tc_in, tc_out = _span(clock, sr, s, e)
        found.append(make_finding(spec, check, f"track {track.id}: {message}", expected=expected, actual=actual,
                                  timecode_in=tc_in, timecode_out=tc_out, track=track.id))

    chk = spec.check("audio.silence")
    for s, e in scan.silence[:MAX_FINDINGS_PER_CHECK]:
        add("audio.silence", f"{(e - s) / sr:.2f} s of silence on every channel", s, e,
            "no silence longer than "
            f"{chk.min_duration_s or spec.timing.max_programme_silence_s or DEFAULT_SILENCE_MIN_S:g} s",
            f"{(e - s) / sr:.2f} s")
    clip_db = _dbfs(spec.check("audio.clipping").threshold, DEFAULT_CLIP_DBFS)
    for c, runs_ in scan.clipping.items():
        for s, e, n in _merge(runs_, sr)[:MAX_FINDINGS_PER_CHECK]:
            add("audio.clipping", f"channel {lab[c]}: {n} run(s) of samples at or above {clip_db:g} dBFS "
                f"(longest {max(b - a for a, b in runs_ if s <= a < e)} samples)", s, e,
                f"no runs of {CLIP_MIN_SAMPLES}+ samples at or above {clip_db:g} dBFS", f"{n} run(s)")
    phase_thr = _dbfs(spec.check("audio.phase").threshold, DEFAULT_PHASE_CORRELATION)
    for (a, b), ivs in scan.phase.items():
        for s, e in ivs[:MAX_FINDINGS_PER_CHECK]:
            add("audio.phase", f"{lab[a]}/{lab[b]} out of phase for {(e - s) / sr:.2f} s (correlation down to "
                f"{scan.min_correlation[(a, b)]:+.2f})", s, e, f"correlation at least {phase_thr:+.2f}",
                f"{scan.min_correlation[(a, b)]:+.2f}")
    dc_thr = _dbfs(spec.check("audio.dc_offset").threshold, DEFAULT_DC_DBFS)
    for c, dc in enumerate(scan.dc_dbfs):
        if dc is not None and dc > dc_thr:
            add("audio.dc_offset", f"channel {lab[c]} has a DC offset of {dc:.1f} dBFS", scan.start_sample,
                scan.end_sample, f"below {dc_thr:g} dBFS", f"{dc:.1f} dBFS")
    for c, ivs in scan.channel_silent.items():
        for s, e in ivs[:MAX_FINDINGS_PER_CHECK]:
            add("audio.channel_identity", f"channel {lab[c]} is silent for {(e - s) / sr:.2f} s while the other "
                f"channels carry signal", s, e, f"{lab[c]} carries its own signal", "silent")
    for (a, b), ivs in scan.identical.items():
        for s, e in ivs[:MAX_FINDINGS_PER_CHECK]:
            add("audio.channel_identity", f"channels {lab[a]} and {lab[b]} are identical for {(e - s) / sr:.2f} s",
                s, e, f"{lab[a]} and {lab[b]} carry their own signals", "identical")
    return [f for f in found if f is not None]


def loudness_findings(spec: Spec, track: AudioTrackSpec, result: LoudnessResult,
                      clock: ProgrammeClock | None) -> list[Finding]:
    """Loudness rule findings of one track (with the spec's fallback method)."""
    if track.loudness is None:
        return []
    tc_in = clock.tc(clock.ffoa_frame) if clock else None
    tc_out = clock.tc(clock.frame_count) if clock else None
    outcomes = evaluate_loudness_rule(result, track.loudness)
    integrated = next((o for o in outcomes if o.check == "audio.loudness.integrated"), None)
    fallback = track.loudness.fallback
    if fallback is not None and integrated is not None and integrated.status == "not_measured":
        # The spec's own procedure (e.g. Netflix): judge by the fallback method when the primary
        # cannot be measured or does not apply (dialogue-gated with too little speech); the
        # primary's not_measured stays visible as a warning saying why. A measured primary that
        # fails stays a failure.
        fb = [o for o in evaluate_loudness_rule(result, fallback) if o.check == "audio.loudness.integrated"]
        verdicts = "; ".join(f"{o.status}: {o.message}" for o in fb)
        outcomes = [o.model_copy(update={"message": f"{o.message} -> {verdicts}"})
                    if o is integrated and verdicts else o for o in outcomes]
        outcomes += [o.model_copy(update={"message": f"fallback ({fallback.method}): {o.message}"}) for o in fb]
    return _outcome_findings(spec, track, outcomes, tc_in, tc_out)


def _programme_timecode(clock: ProgrammeClock | None) -> Callable[[float], str] | None:
    """Seconds from FFOA (where the meter starts) -> timecode of the frame holding that instant."""
    if clock is None:
        return None
    return lambda seconds: clock.tc(clock.ffoa_frame + int(Fraction(seconds) * clock.rate))


def loudness_entry(track: AudioTrackSpec, stream: AudioStream, result: LoudnessResult,
                   clock: ProgrammeClock | None) -> dict[str, Any]:
    return {"track": track.id, "label": track.label, "stream_index": stream.index,
            **result.contract_dict(_programme_timecode(clock)),
            "short_term_series_lufs": result.short_term_series_lufs, "series_rate_hz": result.series_rate_hz,
            "measured_from": clock.tc(clock.ffoa_frame) if clock else None}


Scans = list[tuple[AudioTrackSpec, AudioStream, LoudnessResult, TrackScan]]


def scan_all(info: MediaInfo, spec: Spec, clock: ProgrammeClock | None) -> Scans:
    """Decode and analyse every spec track present in the master (one decode per stream)."""
    return scan_shared(info, [spec], [clock])[0]


def scan_shared(info: MediaInfo, specs: Sequence[Spec], clocks: Sequence[ProgrammeClock | None]) -> list[Scans]:
    """:func:`scan_all` for several specs, each stream decoded ONCE for every spec whose meter agrees on it (labels,
    layout, programme start): the decode meters loudness once (dialogue-gated too when any of them gates that
    track) and runs each distinct set of signal-check settings on the same blocks. Each spec gets what its own
    :func:`scan_all` would: its own signal scan, the dialogue figure only where its rule asks for it."""
    out: list[Scans] = [[] for _ in specs]
    for j, stream in enumerate(info.audio):
        users = [(i, spec.audio.tracks[j]) for i, spec in enumerate(specs) if j < len(spec.audio.tracks)]
        settings = {i: scan_settings(stream, track, specs[i], clocks[i]) for i, track in users}
        meters: dict[str, list[tuple[int, AudioTrackSpec]]] = {}
        for i, track in users:
            k = settings[i]
            meters.setdefault(_key([k["labels"], k["layout"], k["start"]]), []).append((i, track))
        for members in meters.values():
            distinct = {_key(settings[i]): settings[i] for i, _ in reversed(members)}  # first one of each
            result, scans = scan_track(info, stream, members[0][1], list(distinct.values()),
                                       any(needs_dialogue(t) for _, t in members))
            by_key = dict(zip(distinct, scans, strict=True))
            for i, track in members:
                own = result if needs_dialogue(track) else result.model_copy(update={"dialogue": None})
                out[i].append((track, stream, own, by_key[_key(settings[i])]))
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def audio_findings(spec: Spec, scans: list[tuple[AudioTrackSpec, AudioStream, LoudnessResult, TrackScan]],
                   clock: ProgrammeClock | None) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    loudness: list[dict[str, Any]] = []
    for track, stream, result, scan in scans:
        loudness.append(loudness_entry(track, stream, result, clock))
        findings += loudness_findings(spec, track, result, clock)
        findings += track_findings(spec, track, scan, clock)
    return findings, {"loudness": loudness}


def check_audio(info: MediaInfo, spec: Spec, clock: ProgrammeClock | None) -> tuple[list[Finding], dict[str, Any]]:
    """Loudness and signal findings per spec track and the measured values (for report.json)."""
    return audio_findings(spec, scan_all(info, spec, clock), clock)
