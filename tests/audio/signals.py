"""Test-signal synthesis from the EBU Tech 3341 / 3342 tables (Tech 3341 V4 Table 1, Tech 3342 V4 Table 1).

Conventions (Tech 3341 §2.9 and the official files): 1000 Hz sine (not 997 Hz), level = peak
level per channel in dBFS, same signal in phase on every channel, starting at sine phase 0 and
continuous in phase across level changes; "silence" is digital zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal as sps

FS = 48000


def tone_segments(segments: Sequence[tuple[float, float | None]], *, fs: int = FS, channels: int = 2,
                  freq_hz: float = 1000.0) -> np.ndarray:
    """Phase-continuous 1 kHz sine with per-segment peak level; ``None`` level = silence.

    Args:
        segments: ``(seconds, dbfs)`` pairs, back to back.
    """
    counts = [round(sec * fs) for sec, _ in segments]
    n = sum(counts)
    phase = 2.0 * np.pi * freq_hz * np.arange(n) / fs
    gain = np.concatenate([np.full(c, 0.0 if db is None else 10.0 ** (db / 20.0)) for c, (_, db) in
                           zip(counts, segments, strict=True)])
    mono = (np.sin(phase) * gain).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def sine(fs: int, seconds: float, freq_hz: float, amplitude: float, phase_deg: float = 0.0,
         fade_s: float = 0.010, channels: int = 2) -> np.ndarray:
    """Tapered sine (Tech 3341 #15-#19: 10 ms linear fades)."""
    n = round(seconds * fs)
    t = np.arange(n) / fs
    x = amplitude * np.sin(2.0 * np.pi * freq_hz * t + np.deg2rad(phase_deg))
    f = round(fade_s * fs)
    ramp = np.linspace(0.0, 1.0, f)
    x[:f] *= ramp
    x[n - f:] *= ramp[::-1]
    return np.repeat(x[:, None], channels, axis=1)


def burst_signal(offset: int, *, fs: int = FS, seconds: float = 2.0) -> np.ndarray:
    """Tech 3341 #20-#23: fs/6 sine 0.5 FFS holding one period of fs/4 at 1.0 FFS.

    Synthesised at 4*fs, low-passed (Kaiser beta 12, 8191 taps, cut-off 0.45*fs; the EBU does
    not specify the filter) and decimated by 4 starting at ``offset`` (0..3).
    """
    up = 4 * fs
    n = round(seconds * up)
    period_6 = 24  # fs/6 at 4*fs: 24 samples
    period_4 = 16  # fs/4 at 4*fs: 16 samples
    start = (n // 2) // period_6 * period_6  # an upward zero crossing of the fs/6 tone
    k = np.arange(n)
    tone = 0.5 * np.sin(2.0 * np.pi * k / period_6)
    after = k >= start + period_4
    tone[after] = 0.5 * np.sin(2.0 * np.pi * (k[after] - start - period_4) / period_6)
    burst = np.arange(period_4)
    tone[start:start + period_4] = 1.0 * np.sin(2.0 * np.pi * burst / period_4)
    fade = round(0.05 * up)
    ramp = np.linspace(0.0, 1.0, fade)
    tone[:fade] *= ramp
    tone[n - fade:] *= ramp[::-1]
    h = sps.firwin(8191, 0.45 * fs, window=("kaiser", 12.0), fs=up)
    y = sps.fftconvolve(tone, h, mode="same")
    x = y[offset::4]
    return np.repeat(x[:, None], 2, axis=1)


def noise(fs: int, seconds: float, rms_dbfs: float, *, channels: int = 2, seed: int = 1) -> np.ndarray:
    """White Gaussian noise with the given RMS level per channel (independent channels)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((round(seconds * fs), channels)) * 10.0 ** (rms_dbfs / 20.0)).astype(np.float32)
