"""QC checks that measure the essence, each on a generated master with a known right answer:
timecode continuity, HDR MaxCLL/MaxFALL against the tags, letterbox, DC offset, identical
channels, a 2-pop N frames late. Media: 320x180 25p, 4 s head + 4 s programme (tests/qc/media.py).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from specs.loader import load_spec
from specs.model import Spec
from tasks.media.probe import probe
from tasks.qc.engine import QCResult, qc_master
from tasks.qc.tmcd import read_timecode_tracks
from tests.qc.media import (
    break_timecode,
    edit_mix,
    marry,
    pq_code,
    pq_master,
    pq_nits,
    reencode,
    sample_set,
    tc_at,
    within_one_frame,
)

FULL_SCALE = 2 ** 31  # soundfile int32 of 24-bit PCM


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec("demo")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("more")
    return sample_set(tmp / "media"), tmp


def _qc(path: Path, spec: Spec) -> QCResult:
    return qc_master(probe(path), spec)


def _of(result: QCResult, check: str) -> list:
    return [f for f in result.findings if f.check == check]


# -- timecode continuity ------------------------------------------------------------------------

def test_timecode_break_found_at_its_frame(media, spec, tmp_path):
    sset, _ = media
    married = marry(sset.master, [sset.mixes["5.1"], sset.mixes["2.0"]], tmp_path / "married.mov")
    # 01:00:02:00 is file frame 150 (the master starts at 00:59:56:00); from there the tmcd says 10:00:00:00
    broken = break_timecode(married, tmp_path / "broken.mov", 150, "10:00:00:00")
    # ffmpeg itself sees two timecode samples, split where we asked
    doc = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "d", "-show_entries",
                                     "packet=pts,duration", "-of", "json", str(broken)],
                                    capture_output=True, text=True, check=True).stdout)
    assert len(doc["packets"]) == 2
    result = _qc(broken, spec)
    found = _of(result, "metadata.timecode_continuity")
    assert len(found) == 1, result.findings
    f = found[0]
    assert f.severity.value == "error" and f.status == "fail"
    assert f.timecode_in == tc_at(2.0) and within_one_frame(f.timecode_out, tc_at(2.0))
    assert f.expected == "01:00:02:00" and f.actual == "10:00:00:00"
    assert result.findings == found  # nothing else is wrong with this master


def test_timecode_in_two_continuous_samples_is_continuous(media, spec, tmp_path):
    sset, _ = media
    married = marry(sset.master, [sset.mixes["5.1"], sset.mixes["2.0"]], tmp_path / "married.mov")
    split = break_timecode(married, tmp_path / "split.mov", 150, None)
    track = read_timecode_tracks(split)[0]
    assert [r.frames for r in track.runs] == [150, 50] and track.breaks() == []
    assert not _of(_qc(split, spec), "metadata.timecode_continuity")


def test_timecode_track_reads_drop_frame(tmp_path):
    from tasks.media.ffmpeg import run_ffmpeg

    out = tmp_path / "df.mov"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=s=64x36:r=30000/1001:d=1", "-c:v", "prores_ks",
                "-timecode", "01:00:00;00", str(out)], what="df")
    (track,) = read_timecode_tracks(out)
    assert track.drop_frame and track.nominal_fps == 30
    assert track.runs[0].first_label == 3600 * 30 - 108  # 01:00:00;00 in real frames
    assert track.frames == 30 and track.breaks() == []


# -- HDR light level ----------------------------------------------------------------------------

@pytest.mark.parametrize("tag", [(400, 200), (1100, 200)])
def test_hdr_max_cll_measured_and_compared_with_the_tag(tmp_path, spec, tag):
    # 100 cd/m2 background, a 32x32 patch at 1000 cd/m2 from frame 5: MaxCLL is the patch's light
    # level after 10-bit quantisation, MaxFALL the area-weighted average of the frame.
    master = pq_master(tmp_path / "pq.mov", background_nits=100, patch_nits=1000, patch_px=32, frames=10,
                       patch_from=5, max_cll=tag)
    info = probe(master)
    assert info.primary_video.color_transfer == "smpte2084"
    result = _qc(master, spec)
    want_cll = float(pq_nits(pq_code(1000)))
    want_fall = (32 * 32 * want_cll + (320 * 180 - 32 * 32) * float(pq_nits(pq_code(100)))) / (320 * 180)
    pic = result.measurements["picture"]
    assert pic["max_cll_nits"] == pytest.approx(want_cll, rel=0.002)  # exact up to rounding to 0.1
    assert pic["max_fall_nits"] == pytest.approx(want_fall, rel=0.01)
    found = _of(result, "picture.hdr_light_level")
    if tag[0] < want_cll:
        assert len(found) == 1, found
        f = found[0]
        assert f.severity.value == "warning" and "MaxCLL" in f.message
        assert f.actual == f"{want_cll:.0f} cd/m2" and f.expected.startswith("at most 400 cd/m2")
        assert f.timecode_in == "01:00:00:05"  # the first frame with the patch
    else:
        assert not found, found


def test_hdr_master_without_light_level_tag(tmp_path, spec):
    master = pq_master(tmp_path / "pq.mov", background_nits=100, patch_nits=600, patch_px=16, frames=4,
                       patch_from=0, max_cll=None)
    # x265 without max-cll writes a content light level SEI of 0,0: "unknown" (CTA-861.3), not 0 cd/m2
    found = _of(_qc(master, spec), "picture.hdr_light_level")
    assert len(found) == 1 and found[0].message.startswith("no MaxCLL/MaxFALL tag"), found
    assert f"MaxCLL {float(pq_nits(pq_code(600))):.0f}" in found[0].actual


# -- letterbox ------------------------------------------------------------------------------------

def test_letterbox_bars_found_with_their_size(media, spec, tmp_path):
    sset, _ = media
    a, b = 125, 165  # file frames: FFOA + 1.0 s .. + 2.6 s
    en = f"enable='between(n,{a},{b - 1})'"
    graph = (f"[0:v]drawbox=x=0:y=0:w=iw:h=22:color=black:t=fill:{en},"
             f"drawbox=x=0:y=ih-22:w=iw:h=22:color=black:t=fill:{en}[v]")
    picture = reencode(sset.master, tmp_path / "lb.mov", graph)
    married = marry(picture, [sset.mixes["5.1"], sset.mixes["2.0"]], tmp_path / "married.mov")
    found = _of(_qc(married, spec), "picture.letterbox")
    assert len(found) == 1, found
    f = found[0]
    assert f.severity.value == "info" and f.actual == "320x136"
    assert "top 22, bottom 22, left 0, right 0" in f.message
    assert within_one_frame(f.timecode_in, tc_at(1.0)) and within_one_frame(f.timecode_out, tc_at(2.6))


def test_pillarbox(media, spec, tmp_path):
    sset, _ = media
    graph = ("[0:v]drawbox=x=0:y=0:w=40:h=ih:color=black:t=fill:enable='gte(n,100)',"
             "drawbox=x=iw-40:y=0:w=40:h=ih:color=black:t=fill:enable='gte(n,100)'[v]")
    picture = reencode(sset.master, tmp_path / "pb.mov", graph)
    married = marry(picture, [sset.mixes["5.1"], sset.mixes["2.0"]], tmp_path / "married.mov")
    (f,) = _of(_qc(married, spec), "picture.letterbox")
    assert "pillarbox" in f.message and f.actual == "240x180"
    assert f.timecode_in == tc_at(0.0) and f.timecode_out == tc_at(4.0)


# -- audio: DC offset, identical channels -------------------------------------------------------

def test_dc_offset_measured_in_dbfs(media, spec, tmp_path):
    sset, _ = media

    def add_dc(x, rate):
        x[4 * rate:, 1] += int(0.01 * FULL_SCALE)  # R: +1 % of full scale = -40 dBFS over the programme
        return x

    mix = edit_mix(sset.mixes["2.0"], tmp_path / "dc.wav", add_dc)
    married = marry(sset.master, [sset.mixes["5.1"], mix], tmp_path / "married.mov")
    result = _qc(married, spec)
    found = _of(result, "audio.dc_offset")
    assert len(found) == 1, found
    f = found[0]
    assert f.severity.value == "warning" and f.track == "stereo-20" and "channel R" in f.message
    assert float(f.actual.split()[0]) == pytest.approx(20 * math.log10(0.01), abs=0.5)
    assert f.timecode_in == tc_at(0.0) and f.timecode_out == tc_at(4.0)


def test_identical_surrounds(media, spec, tmp_path):
    sset, _ = media

    def copy_ls_to_rs(x, rate):
        x[round(5.0 * rate):round(7.5 * rate), 5] = x[round(5.0 * rate):round(7.5 * rate), 4]  # Rs = Ls
        return x

    mix = edit_mix(sset.mixes["5.1"], tmp_path / "same.wav", copy_ls_to_rs)
    married = marry(sset.master, [mix, sset.mixes["2.0"]], tmp_path / "married.mov")
    result = _qc(married, spec)
    found = _of(result, "audio.channel_identity")
    assert len(found) == 1, found
    f = found[0]
    assert f.severity.value == "error" and "channels Ls and Rs are identical for 2.50 s" in f.message
    assert within_one_frame(f.timecode_in, tc_at(1.0)) and within_one_frame(f.timecode_out, tc_at(3.5))
    assert not _of(result, "audio.phase")  # identical is in phase


# -- 2-pop ----------------------------------------------------------------------------------------

def test_two_pop_three_frames_late(media, spec, tmp_path):
    sset, _ = media
    late = 3

    def delay_pop(x, rate):
        spf = rate // 25
        pop = 2 * rate  # FFOA (4 s) - 2 s
        beep = x[pop:pop + spf].copy()
        x[pop:pop + spf] = 0
        x[pop + late * spf:pop + (late + 1) * spf] = beep
        return x

    mix = edit_mix(sset.mixes["5.1"], tmp_path / "late.wav", delay_pop)
    married = marry(sset.master, [mix, sset.mixes["2.0"]], tmp_path / "married.mov")
    result = _qc(married, spec)
    offsets = {t["track"]: t["offset_frames"] for t in result.measurements["two_pop"]}
    assert list(offsets.values()) == [3.0, 0.0], offsets
    found = _of(result, "timing.two_pop")
    assert len(found) == 1, found
    f = found[0]
    assert f.severity.value == "warning" and f.actual == "+3.0 frames" and "3.0 frames after" in f.message
    assert f.timecode_in == "00:59:58:00" and f.timecode_out == "00:59:58:04"


def test_hdr_max_cll_exact_off_the_analysis_grid(tmp_path, spec):
    # 640x540 analyses every 2nd pixel; a single 4000 cd/m2 pixel at an odd position is off that
    # grid: MaxCLL must still be exact (the frame is measured in full when its extremes allow it).
    master = pq_master(tmp_path / "spot.mov", background_nits=100, patch_nits=4000, patch_px=1, frames=6,
                       patch_from=3, max_cll=(1000, 400), size=(640, 540), patch_xy=(301, 201))
    result = _qc(master, spec)
    assert result.measurements["picture"]["analysis_grid_step_px"] == 2
    assert result.measurements["picture"]["max_cll_nits"] == pytest.approx(float(pq_nits(pq_code(4000))), rel=0.002)
    (f,) = _of(result, "picture.hdr_light_level")
    assert "MaxCLL" in f.message and f.timecode_in == "01:00:00:03"
