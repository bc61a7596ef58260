"""Fixtures of the deliverables tests: the built-in EBU R 128 and Netflix specs, each with a married master."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs.loader import load_spec
from specs.model import Spec
from tasks.media.probe import MediaInfo
from tasks.media.synth import MasterSpec, make_sample_set
from tests.deliverables.helpers import married


def _married(tmp: Path, spec_name: str, ffoa: str) -> tuple[Spec, MediaInfo]:
    spec = load_spec(spec_name)
    media = make_sample_set(tmp / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode=ffoa, head_s=4, programme_s=2))
    return spec, married(media.master, list(media.mixes.values()), spec, tmp / "layback.mov")


@pytest.fixture(scope="module")
def ebu(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, MediaInfo]:
    return _married(tmp_path_factory.mktemp("ebu"), "ebu-r128", "10:00:00:00")


@pytest.fixture(scope="module")
def netflix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, MediaInfo]:
    return _married(tmp_path_factory.mktemp("nflx"), "netflix", "01:00:00:00")
