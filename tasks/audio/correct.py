"""Loudness correction for deliverables: static gain, true-peak limiting only where needed, re-measure.

Why not ffmpeg ``loudnorm`` (libavfilter/af_loudnorm.c, ffmpeg filters documentation): its first
pass runs dynamic mode at 192 kHz, its "true peak" is a sample peak of an ffmpeg-resampled signal, its
192 kHz measurement differs from the native-rate one by up to 0.2 LU, and linear mode silently falls back to
dynamic gain riding. A mastering deliverable wants the mix untouched except for one gain, so:

1. measure the source (native rate, :func:`tasks.audio.loudness.measure_file`): programme loudness
   (BS.1770-4 gated) or, for ``method="dialogue-gated"``, deliver's open VAD-gated dialogue
   loudness (:mod:`tasks.audio.dialogue`; not Dolby Dialogue Intelligence);
2. gain = target - measured; predicted true peak = true peak + gain;
3. if the prediction crosses the ceiling, run a look-ahead **true-peak** limiter (4x oversampled
   envelope, same interpolator as the meter) that only acts around the offending peaks;
4. write 24-bit PCM atomically (``name.partial.wav``, fsync, no-clobber rename:
   :func:`tasks.media.files.atomic_output`), re-measure the rendered file with the same meter, and
   fail the step (:class:`LoudnessCorrectionError`) if it is out of tolerance.

References:
    ITU-R BS.1770-4 (loudness and true peak); EBU R 128 (2020); EBU Tech 3343 (2023) §3.4.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict
from scipy.ndimage import minimum_filter1d

from specs.errors import EXIT_FAILED, DeliverError, OutputExistsError
from tasks.audio.loudness import (
    TRUE_PEAK_TAPS,
    LoudnessResult,
    file_labels,
    measure_file,
    true_peak_factor,
    true_peak_phases,
)
from tasks.audio.reader import DEFAULT_BLOCK_FRAMES, iter_soundfile_blocks, soundfile_info
from tasks.media.files import atomic_output

__all__ = [
    "CorrectionResult",
    "LoudnessCorrectionError",
    "correct_loudness",
    "TRUE_PEAK_CHECK_TOLERANCE_DB",
]

#: A rendered file may read at most this much above the ceiling (24-bit rounding and gain
#: modulation between oversampled points); the limiter aims LIMITER_MARGIN_DB below the ceiling.
TRUE_PEAK_CHECK_TOLERANCE_DB = 0.1
LIMITER_MARGIN_DB = 0.1
LOOKAHEAD_S = 0.002  # attack = look-ahead: 2 ms, short enough to keep transients' shape
RELEASE_DB_PER_S = 40.0  # linear-in-dB recovery: 3 dB of reduction recovers in 75 ms
MAX_RENDERS = 3  # re-render with the loudness the limiter removed, at most twice
RETRY_THRESHOLD_LU = 0.05
_WAV_LIMIT_BYTES = 0xFFFFFFFF - 1024  # above this a RIFF WAV overflows: write RF64
_PCM24_MAX = 1.0 - 2.0 ** -23


class LoudnessCorrectionError(DeliverError):
    """The corrected file is out of tolerance after re-measurement (the step fails, exit 1)."""

    exit_code = EXIT_FAILED


class CorrectionResult(BaseModel):
    """What the correction did, with the source and rendered measurements."""

    model_config = ConfigDict(frozen=True)

    dst_path: str
    gain_db: float
    limiter_engaged: bool
    before: LoudnessResult
    after: LoudnessResult


def correct_loudness(src_path: str | Path, dst_path: str | Path, *, target_lufs: float,
                     max_true_peak_dbtp: float, tolerance_lu: float = 0.5, layout: str | None = None,
                     subtype: str = "PCM_24", block_frames: int = DEFAULT_BLOCK_FRAMES,
                     method: Literal["bs1770-4", "dialogue-gated"] = "bs1770-4") -> CorrectionResult:
    """Bring a WAV/BWF/FLAC mix to ``target_lufs`` with true peak <= ``max_true_peak_dbtp``.

    Args:
        src_path: source mix (never modified).
        dst_path: output WAV (RF64 when > 4 GiB); must not exist.
        target_lufs: loudness wanted, measured by ``method``.
        max_true_peak_dbtp: true-peak ceiling.
        tolerance_lu: allowed |after - target| after re-measurement.
        layout: channel layout of the source (see :func:`tasks.audio.loudness.measure_file`).
        subtype: libsndfile subtype of the output (24-bit PCM by default).
        block_frames: streaming block size.
        method: ``bs1770-4`` programme loudness, or ``dialogue-gated`` (the open VAD-gated estimate
            of :mod:`tasks.audio.dialogue`; the speech segments are detected again on the render).

    Returns:
        gain applied, whether the limiter acted, and both measurements.

    Raises:
        OutputExistsError: ``dst_path`` exists.
        MediaError: unreadable source or unknown layout.
        LoudnessCorrectionError: silent source (dialogue-gated: no speech detected), or the rendered
            file is out of tolerance (it is then deleted, nothing is left under ``dst_path``).
    """
    src, dst = Path(src_path), Path(dst_path)
    if dst.exists():
        raise OutputExistsError(f"{dst} already exists; deliver never overwrites a deliverable. "
                                "Remove it or choose another output name.")
    info = soundfile_info(src)
    labels = file_labels(src, info.channels, info.channel_mask, layout)
    dialogue = method == "dialogue-gated"
    before = measure_file(src, labels=labels, block_frames=block_frames, dialogue=dialogue)
    measured = _measured(before, dialogue)
    if measured is None:
        what = ("no speech detected, so no dialogue loudness (an open VAD-gated estimate)" if dialogue
                else "no measurable loudness (silence or < 400 ms)")
        raise LoudnessCorrectionError(f"{src} has {what}; cannot normalise it. Check that the right file was "
                                      "given" + (", or correct it to a bs1770-4 target." if dialogue else "."))
    gain_db = target_lufs - measured
    ceiling_lin = 10.0 ** ((max_true_peak_dbtp - LIMITER_MARGIN_DB) / 20.0)
    # WAVEX keeps the source's channel mask (patched in after writing), so the rendered file maps
    # to the same speakers; without a source mask the count-based convention applies to both.
    fmt = "RF64" if info.frames * info.channels * 3 > _WAV_LIMIT_BYTES else ("WAVEX" if info.channel_mask else "WAV")
    limiter = before.true_peak_dbtp is not None and before.true_peak_dbtp + gain_db > max_true_peak_dbtp
    after: LoudnessResult | None = None
    with atomic_output(dst) as partial:
        for _ in range(MAX_RENDERS):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()  # a stale partial of ours from an interrupted run
            _render(src, partial, fmt=fmt, subtype=subtype, samplerate=info.sample_rate_hz,
                    channels=info.channels, frames=info.frames, gain_db=gain_db,
                    ceiling_lin=ceiling_lin if limiter else None, block_frames=block_frames)
            if info.channel_mask:
                _patch_channel_mask(partial, info.channel_mask)
            after = measure_file(partial, labels=labels, block_frames=block_frames, dialogue=dialogue)
            got = _measured(after, dialogue)
            shortfall = target_lufs - got if got is not None else 0.0
            # Only the limiter can move programme loudness away from target (it removes peak energy);
            # a dialogue reading can also move because speech is detected again on the render.
            if not (limiter or dialogue) or abs(shortfall) <= RETRY_THRESHOLD_LU:
                break
            gain_db += shortfall
        assert after is not None
        problems = _out_of_tolerance(after, _measured(after, dialogue), target_lufs, tolerance_lu,
                                     max_true_peak_dbtp, method)
        if problems:
            raise LoudnessCorrectionError(
                f"loudness correction of {src} failed: {problems} (gain {gain_db:+.2f} dB, limiter "
                f"{'on' if limiter else 'off'}). The mix needs more peak reduction than a transparent limiter "
                "gives; revise the mix or the target.")
    return CorrectionResult(dst_path=str(dst), gain_db=gain_db, limiter_engaged=limiter, before=before,
                            after=after)


def _measured(result: LoudnessResult, dialogue: bool) -> float | None:
    if not dialogue:
        return result.integrated_lufs
    return result.dialogue.dialogue_lufs if result.dialogue is not None else None


def _out_of_tolerance(after: LoudnessResult, got: float | None, target_lufs: float, tolerance_lu: float,
                      ceiling_dbtp: float, method: str) -> str:
    problems = []
    if got is None or abs(got - target_lufs) > tolerance_lu + 1e-9:
        what = "dialogue-gated" if method == "dialogue-gated" else "integrated"
        problems.append(f"{what} {got} LUFS is not within {target_lufs} ±{tolerance_lu} LU")
    if after.true_peak_dbtp is not None and after.true_peak_dbtp > ceiling_dbtp + TRUE_PEAK_CHECK_TOLERANCE_DB:
        problems.append(f"true peak {after.true_peak_dbtp:.2f} dBTP exceeds {ceiling_dbtp} dBTP")
    return "; ".join(problems)


def _patch_channel_mask(path: Path, mask: int) -> None:
    """Write ``mask`` into the dwChannelMask of a WAVE_FORMAT_EXTENSIBLE header, in place."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:4] not in (b"RIFF", b"RF64", b"BW64"):
            return
        for _ in range(64):
            chunk = fh.read(8)
            if len(chunk) < 8:
                return
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body_at = fh.tell()
                body = fh.read(min(size, 40))
                if len(body) >= 24 and struct.unpack("<H", body[:2])[0] == 0xFFFE:
                    fh.seek(body_at + 20)
                    fh.write(struct.pack("<I", mask))
                    fh.flush()
                    os.fsync(fh.fileno())
                return
            fh.seek(size + (size & 1), 1)


def _render(src: Path, partial: Path, *, fmt: str, subtype: str, samplerate: int, channels: int, frames: int,
            gain_db: float, ceiling_lin: float | None, block_frames: int) -> None:
    gain = 10.0 ** (gain_db / 20.0)
    with open(partial, "xb") as fh:
        with sf.SoundFile(fh, "w", samplerate=samplerate, channels=channels, subtype=subtype, format=fmt) as out:
            if ceiling_lin is None:
                for block in iter_soundfile_blocks(src, block_frames=block_frames, dtype="float64"):
                    out.write(np.clip(block * gain, -1.0, _PCM24_MAX))
            else:
                limiter = _TruePeakLimiter(src, samplerate=samplerate, frames=frames, gain=gain,
                                           ceiling_lin=ceiling_lin)
                for start in range(0, frames, block_frames):
                    out.write(np.clip(limiter.chunk(start, min(start + block_frames, frames)), -1.0, _PCM24_MAX))
        fh.flush()
        os.fsync(fh.fileno())


class _TruePeakLimiter:
    """Look-ahead limiter on the 4x-oversampled (true-peak) envelope, chunk by chunk.

    For every sample pair the required gain is ``ceiling / true-peak envelope`` (<= 1). A forward
    sliding minimum over the look-ahead, a linear-in-dB release, and a moving average over the
    look-ahead give a smooth gain that reaches each required value *by* the sample it protects:
    the average at n covers k in [n-L, n], and every such k already saw sample n in its forward
    minimum, so ``gain[n] <= required[n]``. Where the envelope stays under the ceiling the gain is
    exactly 1 (the limiter is inaudible there). Random access (seek) on the source gives each
    chunk its filter history and look-ahead without buffering the programme.
    """

    def __init__(self, src: Path, *, samplerate: int, frames: int, gain: float, ceiling_lin: float) -> None:
        self._sf = sf.SoundFile(str(src))
        self._frames = frames
        self._gain = gain
        self._ceiling = ceiling_lin
        self._phases = true_peak_phases(samplerate)
        factor = true_peak_factor(samplerate)
        self._delay = ((TRUE_PEAK_TAPS - 1) // 2) // factor if self._phases else 0
        self._k1 = max((len(h) for h in self._phases), default=1) - 1
        self._bound = max((float(np.abs(h).sum()) for h in self._phases), default=1.0)
        self._look = max(1, round(LOOKAHEAD_S * samplerate))
        self._release_db = RELEASE_DB_PER_S / samplerate
        self._pre = self._k1 + 2
        self._post = self._look + self._delay + 2
        self._r_prev_db = 0.0  # release state at the sample before the chunk
        self._r_hist = np.ones(self._look)  # last L release gains (linear) before the chunk

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._sf.close()

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Gained samples ``[start, stop)``, zero outside the file."""
        lo, hi = max(start, 0), min(stop, self._frames)
        self._sf.seek(lo)
        data = self._sf.read(hi - lo, dtype="float64", always_2d=True) * self._gain
        return np.pad(data, ((lo - start, stop - hi), (0, 0)))

    def _envelope(self, z: np.ndarray) -> np.ndarray:
        """Per-sample true-peak envelope over [m, m+1), max over channels (valid where history exists)."""
        env = np.abs(z).max(axis=1)
        d = self._delay
        n = len(z)
        for h in self._phases:
            y = np.zeros_like(z)
            for k, c in enumerate(h):
                y[k:] += c * z[: n - k]
            peak = np.abs(y).max(axis=1)
            env[: n - d] = np.maximum(env[: n - d], peak[d:])
        return env

    def chunk(self, start: int, stop: int) -> np.ndarray:
        pre, post, look = self._pre, self._post, self._look
        z = self._read(start - pre, stop + post)
        n = stop - start
        core = z[pre: pre + n]
        if self._bound * float(np.abs(z).max(initial=0.0)) <= self._ceiling:
            g_req = np.ones(n + look)  # nothing here can reach the ceiling
        else:
            env = self._envelope(z)
            env2 = np.maximum(env[1:], env[:-1])  # peak between m-1 and m+1 constrains sample m
            with np.errstate(divide="ignore"):
                req = np.minimum(1.0, self._ceiling / env2)
            # req index i corresponds to sample (start - pre + 1 + i)
            off = pre - 1
            g_req = req[off: off + n + look]
        g_min = minimum_filter1d(g_req, look + 1, origin=-((look + 1) // 2), mode="nearest")[:n]
        g_db = 20.0 * np.log10(np.maximum(g_min, 1e-12))
        idx = np.arange(n, dtype=np.float64)
        # r[n] = min(g[n], r[n-1] + rate) == rate*n + running min of (g[k] - rate*k), k <= n
        r_db = self._release_db * idx + np.minimum.accumulate(
            np.minimum(g_db - self._release_db * idx,
                       np.r_[self._r_prev_db + self._release_db, np.full(n - 1, np.inf)]))
        r_db = np.minimum(r_db, 0.0)
        r_lin = 10.0 ** (r_db / 20.0)
        self._r_prev_db = float(r_db[-1])
        both = np.concatenate([self._r_hist, r_lin])
        csum = np.concatenate([[0.0], np.cumsum(both)])
        smooth = (csum[look + 1:] - csum[: len(both) - look]) / (look + 1)  # mean of r[n-L..n]
        self._r_hist = both[-look:].copy()
        return core * smooth[:, None]
