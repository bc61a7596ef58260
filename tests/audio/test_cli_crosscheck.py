"""`deliver loudness --json` (the CLI, in a subprocess) agrees with ffmpeg ``ebur128`` on noise within 0.1 LU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.audio.signals import FS, noise
from tests.audio.tools import ffmpeg_ebur128

DELIVER = str(Path(sys.executable).parent / "deliver")
CROSS_TOL_LU = 0.1


@pytest.mark.parametrize("channels", [2, 6])
def test_cli_agrees_with_ffmpeg_on_noise(tmp_path: Path, channels: int) -> None:
    # stepped white noise (LRA > 0), 24-bit PCM as delivered; 5.1 has LFE excluded by both meters
    x = np.concatenate([noise(FS, 8.0, lv, channels=channels, seed=i)
                        for i, lv in enumerate((-20.0, -30.0, -24.0, -18.0))])
    wav = tmp_path / f"noise-{channels}ch.wav"
    sf.write(wav, x, FS, subtype="PCM_24")
    proc = subprocess.run([DELIVER, "loudness", str(wav), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    ref = ffmpeg_ebur128(wav, tmp_dir=tmp_path)
    assert doc["integrated_lufs"] == pytest.approx(ref["I"], abs=CROSS_TOL_LU)
    assert doc["loudness_range_lu"] == pytest.approx(ref["LRA"], abs=CROSS_TOL_LU)
