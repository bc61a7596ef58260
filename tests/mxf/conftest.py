"""Tiny 2K digital-cinema JPEG 2000 frames (flat 1998x1080), encoded once per session by the DCP picture
encoder (tasks.dcp.picture: Grok with the 2K cinema profile, checked by tasks.dcp.codestream)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def encode_j2k_frames(folder: Path, count: int, fit: str = "flat") -> list[bytes]:
    """``count`` distinct conforming codestreams: flat X'Y'Z' greys stepping per frame (a few KB each)."""
    from tasks.dcp.container import CONTAINERS, place_picture
    from tasks.dcp.picture import GROK, PicturePlan, encode_codestream

    if not shutil.which(GROK):
        pytest.skip(f"{GROK} not installed (Debian grokj2k-tools; `make setup` installs it)")
    container = CONTAINERS[("2k", fit)]
    plan = PicturePlan(place_picture(container.width, container.height, Fraction(1), container), fps=24,
                       frame_count=count)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for n in range(count):
        xyz = np.full((container.height, container.width, 3), 1500 + 200 * n, dtype=np.uint16)
        xyz[: container.height // 2, :, 1] += 300  # some structure, so frames differ in content and size
        frames.append(encode_codestream(xyz.transpose(2, 0, 1), plan, folder))  # the encoder takes planar
    return frames


@pytest.fixture(scope="session")
def j2k_frames(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return encode_j2k_frames(tmp_path_factory.mktemp("j2k"), 4)
