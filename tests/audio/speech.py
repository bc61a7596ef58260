"""Test programmes with real (synthesised) speech: espeak-ng utterances under music and effects.

Speech comes from espeak-ng (Debian package ``espeak-ng``) in several voices and languages, with
pauses between utterances; the true speech intervals are known from the synthesis (each
utterance's extent after trimming espeak's leading and trailing silence). The background is
synthesised music (triads with harmonics and note envelopes, a new chord every 1.6 s) plus effects
(noise bursts and decaying impacts). Speech is set to a known loudness over its own intervals;
the bed's whole-programme loudness sits ``dbr_db`` below it (dialogue-to-background ratio).

Layouts: ``2.0`` puts the speech in L and R (phantom centre), ``5.1`` in C only; the bed goes to the
full-range channels (C included, as in a real mix) and a low-passed copy to LFE.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.signal import fftconvolve

from specs.layouts import channel_weights, layout_labels
from tasks.audio.loudness import LoudnessMeter, k_weighting_sos, measure_array

FS = 48000
#: (voice, speed wpm, text): several voices and languages.
UTTERANCES: tuple[tuple[str, int, str], ...] = (
    ("en-us", 165, "We have to leave before the storm reaches the valley."),
    ("en-gb+m3", 150, "I told you already, the keys are in the blue drawer by the door."),
    ("de", 150, "Das ist nicht der Weg, den wir gestern genommen haben."),
    ("fr+f2", 160, "Attends, je crois que quelqu'un nous suit depuis la gare."),
    ("es", 160, "No puedo creer que hayas vuelto despues de tantos anos."),
    ("en-us+f3", 175, "Listen. Do you hear that? It stopped."),
    ("it", 155, "Domani mattina partiamo presto, prima che faccia caldo."),
    ("en-gb", 140, "Right, then. Everyone back to the house, and keep your voices down."),
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@cache
def utterance(index: int) -> np.ndarray:
    """One utterance at 48 kHz, trimmed to its first and last sample above -50 dBFS (float64)."""
    voice, wpm, text = UTTERANCES[index % len(UTTERANCES)]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True,
                       capture_output=True)
        import soundfile as sf

        x, fs = sf.read(str(wav), dtype="float64")
    if x.ndim > 1:
        x = x.mean(axis=1)
    from math import gcd

    g = gcd(FS, int(fs))
    y = signal.resample_poly(x, FS // g, int(fs) // g)
    loud = np.flatnonzero(np.abs(y) > 10 ** (-50 / 20))
    return y[loud[0]: loud[-1] + 1]


@dataclass
class Programme:
    """A mix with its parts and the truth."""

    mix: np.ndarray  # [frames, channels]
    speech: np.ndarray  # [frames, channels], speech alone (same placement)
    layout: str
    intervals_s: list[tuple[float, float]]  # true speech intervals

    @property
    def duration_s(self) -> float:
        return len(self.mix) / FS

    @property
    def speech_percent(self) -> float:
        return 100.0 * sum(e - s for s, e in self.intervals_s) / self.duration_s


def _mono_loudness(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """K-weighted power (LUFS of a one-front-channel signal) over ``mask`` samples (or all)."""
    y = signal.sosfilt(k_weighting_sos(FS), x)
    p = y**2 if mask is None else y[mask] ** 2
    return -0.691 + 10 * np.log10(p.mean())


def music_bed(n: int, seed: int, *, effects: bool = True, music: bool = True) -> np.ndarray:
    """Music-like bed: triads with harmonics under note envelopes, plus noise bursts and impacts."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    out = np.zeros(n)
    if music:
        chord_n = round(1.6 * FS)
        roots = (110.0, 146.83, 130.81, 164.81, 98.0, 123.47)
        for k, start in enumerate(range(0, n, chord_n)):
            end = min(n, start + chord_n)
            tt = t[start:end] - t[start]
            env = (1 - np.exp(-tt / 0.02)) * np.exp(-tt / 1.2)
            root = roots[k % len(roots)]
            note = np.zeros(end - start)
            for ratio in (1.0, 1.25, 1.5, 2.0):
                for h in (1, 2, 3, 4):
                    note += (0.6 ** h) * np.sin(2 * np.pi * root * ratio * h * tt + rng.uniform(0, 6.28))
            out[start:end] += env * note
        out += 0.05 * signal.lfilter([1.0], [1.0, -0.97], rng.standard_normal(n)) / 6  # room rumble
    if effects:
        fx = np.zeros(n)
        for at in rng.uniform(0.5, n / FS - 0.5, size=max(1, int(n / FS / 3))):
            i = int(at * FS)
            if rng.random() < 0.5:  # noise burst, 150-400 ms, band-passed
                m = min(n - i, int(rng.uniform(0.15, 0.4) * FS))
                sos = signal.butter(2, [rng.uniform(300, 800), rng.uniform(2000, 6000)], "bandpass", fs=FS,
                                    output="sos")
                fx[i:i + m] += 1.5 * signal.sosfilt(sos, rng.standard_normal(m)) * np.hanning(m)
            else:  # impact: decaying low noise
                m = min(n - i, int(0.6 * FS))
                tt = np.arange(m) / FS
                sos = signal.butter(2, 400, "lowpass", fs=FS, output="sos")
                fx[i:i + m] += 4.0 * signal.sosfilt(sos, rng.standard_normal(m)) * np.exp(-tt / 0.08)
        out += fx
    return out


def make_programme(duration_s: float, *, dbr_db: float | None, layout: str = "5.1", speech_lufs: float = -27.0,
                   seed: int = 1, speech: bool = True, music: bool = True, effects: bool = True,
                   pause_s: tuple[float, float] = (0.6, 2.5)) -> Programme:
    """Speech (several voices) with pauses under a bed ``dbr_db`` below it (``None``: no bed).

    With ``speech=False`` the bed alone is placed at ``speech_lufs - dbr_db``.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * FS)
    voice = np.zeros(n)
    intervals: list[tuple[float, float]] = []
    if speech:
        pos = int(rng.uniform(*pause_s) * FS)
        k = seed
        while True:
            u = utterance(k)
            if pos + len(u) > n - int(0.3 * FS):
                break
            voice[pos:pos + len(u)] = u
            intervals.append((pos / FS, (pos + len(u)) / FS))
            pos += len(u) + int(rng.uniform(*pause_s) * FS)
            k += 1
        mask = np.zeros(n, bool)
        for s, e in intervals:
            mask[round(s * FS):round(e * FS)] = True
        voice *= 10 ** ((speech_lufs - _mono_loudness(voice, mask)) / 20)
    bed = np.zeros(n)
    if dbr_db is not None:
        bed = music_bed(n, seed + 100, music=music, effects=effects)
        bed *= 10 ** ((speech_lufs - dbr_db - _mono_loudness(bed)) / 20)
    labels = layout_labels(layout)
    sp = np.zeros((n, len(labels)))
    if "C" in labels:
        sp[:, labels.index("C")] = voice
    else:  # phantom centre: -3.01 dB in each of L and R; BS.1770 adds channel powers, so the
        # speech reads as loud as in C alone
        for c in (labels.index("L"), labels.index("R")):
            sp[:, c] = voice / np.sqrt(2)
    mix = spread(bed, layout) + sp
    return Programme(mix=mix.astype(np.float32), speech=sp.astype(np.float32), layout=layout, intervals_s=intervals)


def spread(bed: np.ndarray, layout: str) -> np.ndarray:
    """A mono bed over every full-range channel (C included, as in a real mix), each a decorrelated
    (delayed) copy at an equal share of the BS.1770 weighted power, so the layout reads as loud as
    the mono bed; a 120 Hz low-passed copy goes to LFE."""
    labels = layout_labels(layout)
    out = np.zeros((len(bed), len(labels)))
    beds = [c for c, lab in enumerate(labels) if lab != "LFE"]
    share = 1.0 / np.sqrt(np.array(channel_weights(labels))[beds].sum())
    for j, c in enumerate(beds):
        out[:, c] = np.roll(bed, round(0.013 * j * FS)) * share
    if "LFE" in labels:
        sos = signal.butter(4, 120, "lowpass", fs=FS, output="sos")
        out[:, labels.index("LFE")] = signal.sosfilt(sos, bed)
    return out


def loud_between_lines(duration_s: float, layout: str, seed: int, *, dialogue_lufs: float = -30.0,
                       programme_lufs: float = -24.0) -> Programme:
    """Dialogue at ``dialogue_lufs`` (bed 10 dB under it), plus loud music between the lines (0.2 s
    ramps starting 0.4 s from each line) scaled until the programme reads ``programme_lufs``."""
    prog = make_programme(duration_s, dbr_db=10, layout=layout, seed=seed, speech_lufs=dialogue_lufs)
    n = len(prog.mix)
    between = np.ones(n)
    for s, e in prog.intervals_s:
        between[max(0, round((s - 0.4) * FS)):round((e + 0.4) * FS)] = 0.0
    ramp = np.hanning(round(0.4 * FS))
    between = fftconvolve(between, ramp / ramp.sum(), mode="same")
    extra = spread(music_bed(n, seed + 300, effects=False) * between, layout).astype(np.float32)
    gain = 10 ** ((programme_lufs - dialogue_lufs) / 20)
    for _ in range(4):
        got = measure_array(prog.mix + gain * extra, FS, layout=layout).integrated_lufs
        assert got is not None
        gain *= 10 ** ((programme_lufs - got) / 20)
    return Programme(mix=prog.mix + (gain * extra).astype(np.float32), speech=prog.speech, layout=layout,
                     intervals_s=prog.intervals_s)


def truth_mask_10ms(intervals_s: list[tuple[float, float]], sub_blocks: int) -> np.ndarray:
    """10 ms sub-blocks whose centre lies in a true speech interval."""
    centres = (np.arange(sub_blocks) + 0.5) * 0.01
    m = np.zeros(sub_blocks, bool)
    for s, e in intervals_s:
        m |= (centres >= s) & (centres < e)
    return m


def truth_dialogue_lufs(prog: Programme, signal_: np.ndarray | None = None) -> float:
    """Ground truth: BS.1770 (K-weighted, channel-weighted) power of ``signal_`` (default the full mix)
    over the true speech intervals."""
    x = prog.mix if signal_ is None else signal_
    labels = layout_labels(prog.layout)
    meter = LoudnessMeter(FS, channel_weights(labels), labels=labels, threads=False)
    meter.process(x)
    ms = meter.sub_block_mean_squares()
    mask = truth_mask_10ms(prog.intervals_s, len(ms))
    return float(-0.691 + 10 * np.log10(ms[mask].mean()))


def programme_lufs(prog: Programme) -> float | None:
    return measure_array(prog.mix, FS, layout=prog.layout).integrated_lufs
