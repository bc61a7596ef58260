"""Loudness correction: gain only, limiter where needed, atomic no-clobber output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.errors import OutputExistsError
from tasks.audio.correct import TRUE_PEAK_CHECK_TOLERANCE_DB, LoudnessCorrectionError, correct_loudness
from tasks.audio.loudness import measure_file
from tasks.audio.reader import wav_channel_mask
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.files import partial_name
from tests.audio.signals import FS, noise, tone_segments

TOL_LU = 0.5  # correct_loudness default tolerance


def _peaky(seconds: float = 12.0) -> np.ndarray:
    """Noise with sparse loud clicks: a static +gain would push the clicks over the ceiling."""
    x = noise(FS, seconds, -28.0, channels=2, seed=5)
    rng = np.random.default_rng(11)
    for pos in rng.integers(0, len(x) - 64, 8):
        x[pos:pos + 32] += (np.hanning(32) * 0.6).astype(np.float32)[:, None]
    return x


def test_gain_only_minus27_to_minus24(tmp_path: Path) -> None:
    src = tmp_path / "mix.wav"
    x = tone_segments([(6.0, -27.0)])  # stereo 1 kHz: reads -27.0 LUFS, peaks -27 dBFS
    sf.write(src, x, FS, subtype="PCM_24")
    dst = tmp_path / "mix_-24.wav"
    res = correct_loudness(src, dst, target_lufs=-24.0, max_true_peak_dbtp=-2.0)
    assert not res.limiter_engaged
    assert res.gain_db == pytest.approx(3.0, abs=0.05)
    assert res.after.integrated_lufs == pytest.approx(-24.0, abs=0.01)
    assert res.after.true_peak_dbtp == pytest.approx(res.before.true_peak_dbtp + res.gain_db, abs=0.01)
    assert sf.info(dst).subtype == "PCM_24"
    assert not partial_name(tmp_path / "mix_-24.wav").exists()
    # re-measuring the delivered file gives the same figures
    assert measure_file(dst).integrated_lufs == pytest.approx(res.after.integrated_lufs, abs=1e-9)


def test_limiter_engages_and_holds_ceiling(tmp_path: Path) -> None:
    src = tmp_path / "peaky.wav"
    sf.write(src, _peaky(), FS, subtype="PCM_24")
    ceiling = -1.0
    res = correct_loudness(src, tmp_path / "web.wav", target_lufs=-16.0, max_true_peak_dbtp=ceiling)
    assert res.before.true_peak_dbtp + (-16.0 - res.before.integrated_lufs) > ceiling  # static gain would cross
    assert res.limiter_engaged
    assert res.after.true_peak_dbtp <= ceiling + TRUE_PEAK_CHECK_TOLERANCE_DB
    assert res.after.integrated_lufs == pytest.approx(-16.0, abs=TOL_LU)
    # "only where needed": away from the clicks the samples are the plain gained source
    src_x, _ = sf.read(src)
    dst_x, _ = sf.read(tmp_path / "web.wav")
    gain = 10 ** (res.gain_db / 20)
    untouched = np.isclose(dst_x, src_x * gain, atol=2 ** -22).all(axis=1).mean()
    assert untouched > 0.8  # 8 clicks x (2 ms attack + <=150 ms release) in 12 s


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "mix.wav"
    sf.write(src, tone_segments([(2.0, -27.0)]), FS, subtype="PCM_24")
    dst = tmp_path / "out.wav"
    dst.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        correct_loudness(src, dst, target_lufs=-24.0, max_true_peak_dbtp=-2.0)
    assert dst.read_bytes() == b"precious"


def test_out_of_tolerance_fails_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "square.wav"
    # a square wave reading -2.2 LUFS with peaks at -4.1 dBTP cannot reach +3 LUFS under -1 dBTP
    x = np.sign(tone_segments([(4.0, 0.0)])).astype(np.float32) * 0.5
    sf.write(src, x, FS, subtype="PCM_24")
    dst = tmp_path / "loud.wav"
    with pytest.raises(LoudnessCorrectionError):
        correct_loudness(src, dst, target_lufs=3.0, max_true_peak_dbtp=-1.0)
    assert not dst.exists() and not partial_name(tmp_path / "loud.wav").exists()


def test_silence_cannot_be_corrected(tmp_path: Path) -> None:
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros((FS * 2, 2), dtype=np.float32), FS, subtype="PCM_24")
    with pytest.raises(LoudnessCorrectionError):
        correct_loudness(src, tmp_path / "out.wav", target_lufs=-24.0, max_true_peak_dbtp=-2.0)


def test_channel_mask_is_kept(tmp_path: Path) -> None:
    mono = tmp_path / "m.wav"
    sf.write(mono, noise(FS, 3.0, -30.0, channels=1), FS, subtype="PCM_24")
    src = tmp_path / "71.wav"
    run_ffmpeg(["-nostats", "-i", str(mono), "-filter_complex", "[0:a]pan=7.1|BL=c0|SL=c0|FL=c0[a]",
                "-map", "[a]", "-c:a", "pcm_s24le", str(src)])
    res = correct_loudness(src, tmp_path / "out.wav", target_lufs=-24.0, max_true_peak_dbtp=-2.0)
    assert wav_channel_mask(tmp_path / "out.wav") == wav_channel_mask(src) == 0x63F
    assert [c.label for c in res.after.channels] == ["L", "R", "C", "LFE", "Lb", "Rb", "Ls", "Rs"]
    assert res.after.integrated_lufs == pytest.approx(-24.0, abs=0.05)
