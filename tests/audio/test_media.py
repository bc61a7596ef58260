"""Container tracks through the ffmpeg pipe: a tiny MOV with video + two audio tracks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.errors import MediaError
from tasks.audio.loudness import measure_file, measure_media
from tasks.audio.reader import iter_ffmpeg_blocks
from tasks.media.ffmpeg import run_ffmpeg
from tests.audio.signals import FS, noise, tone_segments

PCM_EXACT_LU = 0.001  # same PCM samples, so the same numbers


@pytest.fixture(scope="module")
def mov(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("mov")
    stereo = d / "stereo.wav"
    sf.write(stereo, tone_segments([(4.0, -23.0)]), FS, subtype="PCM_24")
    surround = d / "surround.wav"
    sf.write(surround, noise(FS, 4.0, -30.0, channels=6), FS, subtype="PCM_24")
    out = d / "master.mov"
    run_ffmpeg(["-nostats", "-f", "lavfi", "-i", "color=c=black:s=64x36:r=24:d=4",
                "-i", str(stereo), "-i", str(surround),
                "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "mpeg4",
                "-c:a", "pcm_s24le", "-channel_layout:a:1", "5.1", str(out)])
    return out, stereo, surround


def test_two_tracks(mov: tuple[Path, Path, Path]) -> None:
    path, stereo, surround = mov
    results = measure_media(path)
    assert [r.track_index for r in results] == [1, 2]
    a, b = results
    ref_a, ref_b = measure_file(stereo), measure_file(surround, layout="5.1")
    assert a.layout == "stereo" and b.layout == "5.1"
    assert a.integrated_lufs == pytest.approx(ref_a.integrated_lufs, abs=PCM_EXACT_LU)
    assert b.integrated_lufs == pytest.approx(ref_b.integrated_lufs, abs=PCM_EXACT_LU)
    assert b.true_peak_dbtp == pytest.approx(ref_b.true_peak_dbtp, abs=PCM_EXACT_LU)
    assert a.duration_s == pytest.approx(4.0, abs=1e-3)
    json.dumps([r.contract_dict() for r in results])  # JSON-ready


def test_wav_goes_through_soundfile(mov: tuple[Path, Path, Path]) -> None:
    _, stereo, _ = mov
    (r,) = measure_media(stereo)
    assert r.track_index == 0
    assert r.integrated_lufs == pytest.approx(-23.0, abs=0.1)


def test_ffmpeg_blocks_early_close_is_clean(mov: tuple[Path, Path, Path]) -> None:
    path, _, _ = mov
    gen = iter_ffmpeg_blocks(path, stream_index=2, channels=6, block_frames=1024)
    first = next(gen)
    assert first.shape == (1024, 6) and first.dtype == np.float32
    gen.close()  # kills ffmpeg's process group, no error


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        measure_media(tmp_path / "nope.mov")
    with pytest.raises(MediaError):
        measure_file(tmp_path / "nope.wav")
