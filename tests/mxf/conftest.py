"""Tiny DCI-like JPEG 2000 frames (2K flat, 1998x1080) encoded once per session with OpenJPEG's
opj_compress (Debian libopenjp2-tools) in its 2K digital cinema mode, from ffmpeg test patterns."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def encode_j2k_frames(folder: Path, count: int, size: str = "1998x1080") -> list[bytes]:
    """``count`` distinct 2K cinema codestreams (a flat grey that steps per frame: a few hundred bytes each)."""
    if not shutil.which("opj_compress"):
        pytest.skip("opj_compress not installed (Debian libopenjp2-tools; `make setup` installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for n in range(count):
        tif, j2c = folder / f"f{n}.tif", folder / f"f{n}.j2c"
        grey = f"0x{0x30 + 8 * n:02x}{0x30 + 8 * n:02x}{0x30 + 8 * n:02x}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c={grey}:size={size}",
                        "-frames:v", "1", "-pix_fmt", "rgb48be", str(tif)], check=True)
        subprocess.run(["opj_compress", "-i", str(tif), "-o", str(j2c), "-cinema2K", "24"], check=True,
                       capture_output=True)
        frames.append(j2c.read_bytes())
    return frames


@pytest.fixture(scope="session")
def j2k_frames(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return encode_j2k_frames(tmp_path_factory.mktemp("j2k"), 4)
