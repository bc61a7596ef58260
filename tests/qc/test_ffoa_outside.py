"""QC keeps looking when the timecode is wrong: a master at 00:59:56:00 (FFOA 01:00:00:00) checked against a
spec whose first frame of action is 10:00:00:00 gets the FFOA finding AND every picture and audio finding of the
whole master, with a defined loudness."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs.loader import load_spec
from tasks.media.probe import probe
from tasks.media.synth import BlackDefect, LoudnessOffsetDefect, SampleSet
from tasks.qc.engine import qc_master
from tests.qc.media import married_set


@pytest.fixture(scope="module")
def wrong_tc(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleSet, Path]:
    return married_set(tmp_path_factory.mktemp("ffoa"), [BlackDefect(at_s=1.0, duration_s=2.5),
                                                         LoudnessOffsetDefect(offset_lu=6.0)])


def test_ffoa_outside_the_master_then_the_whole_master_is_analysed(wrong_tc: tuple[SampleSet, Path]) -> None:
    media, married = wrong_tc
    spec = load_spec("ebu-r128")
    assert spec.timing.ffoa_timecode == "10:00:00:00"
    result = qc_master(probe(married), spec)
    by_check = {}
    for f in result.findings:
        by_check.setdefault(f.check, []).append(f)
    ffoa = by_check["metadata.start_timecode"]
    assert any("first frame of action 10:00:00:00 is outside the master (00:59:56:00 to" in f.message for f in ffoa)
    # the injected black where the generator put it (programme + 1 s, 2.5 s long)
    injected = media.master_manifest.defect("black")
    black = [(f.timecode_in, f.timecode_out) for f in by_check["picture.black"]]
    assert black == [(injected.timecode_in, injected.timecode_out)] == [("01:00:01:00", "01:00:03:13")]
    loud = {t["track"]: t for t in result.measurements["loudness"]}
    main = loud["main-51"]["integrated_lufs"]
    assert main is not None and main == pytest.approx(-18.0, abs=1.5)  # generated at -24 LUFS, +6 LU
    assert any(f.track == "main-51" for f in by_check["audio.loudness.integrated"])
    assert result.measurements["picture"]["ffoa_in_master"] is False
    assert result.measurements["picture"]["ffoa_frame"] == 0
