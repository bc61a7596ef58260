"""Generated media for the layback and deliverable tests: tiny, deterministic, with known content."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from specs.model import Spec
from tasks.deliverables.naming import RunFields
from tasks.layback import layback, plan_layback
from tasks.media import synth
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import MediaInfo, probe

SR = 48000
RATE = Fraction(25)
# Frames are compared at this size (small: the comparisons are of means and boxes).
W, H = 320, 180
FIELDS = RunFields(title="FILM", version="v2", recipient="ACME Post", date="2031-01-02")
LABELS_51 = ("L", "R", "C", "LFE", "Ls", "Rs")
# A distinct tone per channel, every one on an exact FFT bin of a 1 s window.
TONES_HZ = {"L": 500, "R": 700, "C": 900, "LFE": 60, "Ls": 1100, "Rs": 1300}


def tones(labels: tuple[str, ...], n_samples: int, level_dbfs: float = -20.0) -> np.ndarray:
    t = np.arange(n_samples) / SR
    a = 10 ** (level_dbfs / 20)
    return np.stack([a * np.sin(2 * np.pi * TONES_HZ[x] * t) for x in labels], axis=1)


def write_bwf(path: Path, samples: np.ndarray, time_reference: int) -> Path:
    """24-bit WAVE_FORMAT_EXTENSIBLE BWF with a bext TimeReference (samples since midnight)."""
    x = samples if samples.ndim == 2 else samples[:, None]
    synth.write_bwf(path, synth.to_int24(x), SR, time_reference, "deliver test mix")
    return path


def read_track(path: Path, track: int, *, start_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """Decode audio track ``track`` of a container to float64 [n, ch] via a temporary WAV."""
    wav = path.with_name(f"{path.stem}.a{track}.{start_s}.wav")
    args = ["-v", "error", "-y", "-i", str(path), "-map", f"0:a:{track}", "-ss", str(start_s)]
    if duration_s is not None:
        args += ["-t", str(duration_s)]
    run_ffmpeg([*args, "-c:a", "pcm_s32le", str(wav)])
    data, _ = sf.read(str(wav), dtype="float64", always_2d=True)
    wav.unlink()
    return data


def dominant_hz(x: np.ndarray) -> float:
    """Frequency of the strongest FFT bin of one channel (1 Hz resolution over a 1 s window)."""
    seg = x[:SR]
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    return float(np.argmax(spectrum) * SR / len(seg))


def level_db(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(x**2)))
    return 20 * np.log10(rms) if rms > 0 else -np.inf


def video_framemd5(path: Path) -> list[str]:
    """Per-packet MD5 of the first video stream (stream copy, no decode)."""
    out = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framemd5", "-"],
                     capture_stdout=True).stdout.decode()
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def gray_frame(path: str | Path, t_s: float) -> np.ndarray:
    """The frame at ``t_s`` seconds of ``path``, scaled to W x H, as float64 luma (0..255)."""
    raw = run_ffmpeg(["-v", "error", "-ss", str(t_s), "-i", str(path), "-frames:v", "1", "-vf", f"scale={W}:{H}",
                      "-pix_fmt", "gray", "-f", "rawvideo", "-"], capture_stdout=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W).astype(np.float64)


def married(picture: str | Path, mixes: list[str | Path], spec: Spec, out: Path) -> MediaInfo:
    """``mixes`` laid back onto ``picture`` for ``spec`` by the pipeline's own layback; the married master, probed."""
    plan = plan_layback(probe(picture), [probe(m) for m in mixes], spec)
    return probe(layback(plan, spec, out).path)
