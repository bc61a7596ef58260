"""Channel weighting per layout (BS.1770-4 Table 3), sample rates, silence, N mono files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.layouts import layout_labels
from tasks.audio.loudness import measure_array, measure_file, measure_files_as_layout
from tasks.audio.reader import wav_channel_mask
from tasks.media.ffmpeg import run_ffmpeg
from tests.audio.signals import FS, sine, tone_segments

LEVEL_DBFS = -20.0
# One channel of a 1 kHz sine at L dBFS peak reads L - 3.01 LUFS (-0.691 cancels the K gain at
# ~1 kHz; at 1000 Hz instead of 997 Hz the reading is ~0.01 higher).
ONE_CHANNEL_LUFS = LEVEL_DBFS - 3.01
SURROUND_DB = 10 * math.log10(1.41)  # +1.49 dB
TOL_LU = 0.05


def _one_channel(layout: str, label: str, fs: int = FS) -> np.ndarray:
    labels = layout_labels(layout)
    tone = tone_segments([(4.0, LEVEL_DBFS)], fs=fs, channels=1)[:, 0]
    x = np.zeros((len(tone), len(labels)), dtype=np.float32)
    x[:, labels.index(label)] = tone
    return x


@pytest.mark.parametrize(("layout", "label", "offset_db"), [
    ("mono", "M", 0.0),
    ("stereo", "L", 0.0),
    ("5.0", "C", 0.0),
    ("5.0", "Ls", SURROUND_DB),
    ("5.1", "R", 0.0),
    ("5.1", "Rs", SURROUND_DB),
    ("7.1", "Ls", SURROUND_DB),  # side pair: +1.5 dB
    ("7.1", "Lb", 0.0),  # back pair: 1.0 (ffmpeg wrongly gives 1.41)
    ("7.1", "Rb", 0.0),
])
def test_channel_weight(layout: str, label: str, offset_db: float) -> None:
    r = measure_array(_one_channel(layout, label), FS, layout=layout)
    assert r.integrated_lufs == pytest.approx(ONE_CHANNEL_LUFS + offset_db, abs=TOL_LU)
    assert r.layout == layout
    assert [c.label for c in r.channels] == list(layout_labels(layout))


@pytest.mark.parametrize("layout", ["5.1", "7.1"])
def test_lfe_excluded_but_peaks_reported(layout: str) -> None:
    r = measure_array(_one_channel(layout, "LFE"), FS, layout=layout)
    assert r.integrated_lufs is None  # LFE alone carries no loudness
    lfe = next(c for c in r.channels if c.label == "LFE")
    assert lfe.sample_peak_dbfs == pytest.approx(LEVEL_DBFS, abs=0.01)
    assert r.true_peak_dbtp == pytest.approx(LEVEL_DBFS, abs=0.05)


def test_mono_has_no_dual_mono_gain() -> None:
    mono = measure_array(tone_segments([(4.0, LEVEL_DBFS)], channels=1), FS, layout="mono")
    stereo = measure_array(tone_segments([(4.0, LEVEL_DBFS)], channels=2), FS, layout="stereo")
    assert stereo.integrated_lufs - mono.integrated_lufs == pytest.approx(10 * math.log10(2), abs=0.01)


def test_wave_extensible_71_mask_maps_back_pair(tmp_path: Path) -> None:
    """ffmpeg writes 7.1 WAVs as FL FR FC LFE BL BR SL SR (mask 0x63F): ch5/6 are the back pair."""
    src = tmp_path / "ch.wav"
    sf.write(src, tone_segments([(4.0, LEVEL_DBFS)], channels=1), FS, subtype="PCM_24")
    dst = tmp_path / "71.wav"
    # tone in the 5th channel (BL) only
    run_ffmpeg(["-nostats", "-i", str(src), "-filter_complex",
                "[0:a]pan=7.1|BL=c0[a]", "-map", "[a]", "-c:a", "pcm_s24le", str(dst)])
    assert wav_channel_mask(dst) == 0x63F
    r = measure_file(dst)
    assert [c.label for c in r.channels] == ["L", "R", "C", "LFE", "Lb", "Rb", "Ls", "Rs"]
    assert r.layout == "7.1"
    assert r.integrated_lufs == pytest.approx(ONE_CHANNEL_LUFS, abs=TOL_LU)  # weight 1.0, not 1.41


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
def test_sample_rates(fs: int) -> None:
    r = measure_array(tone_segments([(5.0, -23.0)], fs=fs), fs)
    assert r.integrated_lufs == pytest.approx(-23.0, abs=0.1)
    assert r.max_momentary_lufs == pytest.approx(-23.0, abs=0.1)
    # Tech 3341 #16-style true-peak tone at fs/4, 45°: samples at -9.03 dBFS, true peak -6.02 dBTP
    tp = measure_array(sine(fs, 1.0, fs / 4, 0.5, 45.0), fs)
    assert tp.sample_peak_dbfs == pytest.approx(-9.03, abs=0.05)
    assert -6.42 <= tp.true_peak_dbtp <= -5.82


@pytest.mark.parametrize("layout", ["mono", "stereo", "5.1"])
def test_silence_gives_none(layout: str) -> None:
    x = np.zeros((FS * 5, len(layout_labels(layout))), dtype=np.float32)
    r = measure_array(x, FS, layout=layout)
    assert r.duration_s == pytest.approx(5.0)
    for value in (r.integrated_lufs, r.loudness_range_lu, r.true_peak_dbtp, r.sample_peak_dbfs,
                  r.max_momentary_lufs, r.max_short_term_lufs):
        assert value is None
    assert all(c.true_peak_dbtp is None and c.sample_peak_dbfs is None for c in r.channels)
    assert all(v is None for v in r.short_term_series_lufs)
    d = r.contract_dict()
    assert d["integrated_lufs"] is None and d["channels"][0]["true_peak_dbtp"] is None


def test_too_short_for_blocks() -> None:
    r = measure_array(tone_segments([(0.3, -23.0)]), FS)  # < 400 ms: no gating block
    assert r.integrated_lufs is None and r.max_momentary_lufs is None and r.max_short_term_lufs is None
    assert r.sample_peak_dbfs == pytest.approx(-23.0, abs=0.01)


def test_series_is_10hz_short_term(tmp_path: Path) -> None:
    r = measure_array(tone_segments([(6.0, -23.0)]), FS)
    assert r.series_rate_hz == 10.0
    assert len(r.short_term_series_lufs) == 60
    assert r.short_term_series_lufs[-1] == pytest.approx(-23.0, abs=0.05)  # full 3 s window
    assert r.short_term_series_lufs[14] == pytest.approx(-23.0 - 3.01, abs=0.05)  # 1.5 s of 3 s


def test_n_mono_files_equal_interleaved(tmp_path: Path) -> None:
    labels = layout_labels("5.1")
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((FS * 4, 6)) * np.array([0.1, 0.1, 0.2, 0.3, 0.05, 0.05])).astype(np.float32)
    paths = []
    for i, lab in enumerate(labels):
        p = tmp_path / f"mix.{lab}.wav"
        sf.write(p, x[:, i], FS, subtype="FLOAT")
        paths.append(p)
    inter = tmp_path / "mix.wav"
    sf.write(inter, x, FS, subtype="FLOAT")
    a = measure_files_as_layout(paths, "5.1")
    b = measure_file(inter, layout="5.1")
    assert a.layout == "5.1"
    assert a.integrated_lufs == pytest.approx(b.integrated_lufs, abs=1e-9)
    assert a.true_peak_dbtp == pytest.approx(b.true_peak_dbtp, abs=1e-6)
    assert [c.label for c in a.channels] == list(labels)
