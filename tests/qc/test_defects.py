"""Each injected defect is found at its timecode (±1 frame) with the right severity; a clean master
has no error findings. Media: 320x180 25p ProRes HQ, 4 s head + 4 s programme, 5.1 + 2.0 PCM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specs.loader import load_spec
from specs.model import CheckSpec, Spec
from tasks.media.probe import probe
from tasks.media.synth import (
    BlackDefect,
    ClippingDefect,
    FreezeDefect,
    IllegalLevelsDefect,
    ShortMixDefect,
    SilenceDefect,
)
from tasks.qc.engine import QCResult, qc_master
from tests.qc.media import edit_mix, married_set, marry, reencode, sample_set, tc_at, within_one_frame


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec("demo")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return married_set(tmp_path_factory.mktemp("clean"))


def _qc(path: Path, spec: Spec) -> QCResult:
    return qc_master(probe(path), spec)


def _one(result: QCResult, check: str, severity: str):
    found = [f for f in result.findings if f.check == check]
    assert found, f"no {check} finding; got {[(f.check, f.timecode_in) for f in result.findings]}"
    assert all(f.severity.value == severity for f in found), found
    return found


def _at(found, tc_in: str, tc_out: str) -> None:
    assert any(within_one_frame(f.timecode_in, tc_in) and within_one_frame(f.timecode_out, tc_out) for f in found), (
        [(f.timecode_in, f.timecode_out) for f in found], tc_in, tc_out)


def _with_check(spec: Spec, check: str, **setting) -> Spec:
    return spec.model_copy(update={"checks": {**spec.checks, check: CheckSpec(**setting)}})


def test_clean_master_has_no_findings(clean, spec):
    media, married = clean
    result = _qc(married, spec)
    # The synth renders in gamut and in legal range, with a continuous timecode and a 2-pop on the
    # flash frame: a clean master has no findings at all, not even warnings or info.
    assert result.findings == [], [(f.check, f.severity.value, f.message) for f in result.findings]
    # nearest-neighbour chroma overshoots at sharp colour edges of testsrc2: well under R 103's 1 %
    assert result.measurements["picture"]["max_gamut_share_percent"] < 1.0
    assert result.measurements["picture"]["max_illegal_share_percent"] < 1.0
    assert [t["offset_frames"] for t in result.measurements["two_pop"]] == [0.0, 0.0]
    for track in result.measurements["loudness"]:
        assert track["integrated_lufs"] == pytest.approx(-24.0, abs=0.3)


def test_picture_defects_black_freeze_illegal_levels(tmp_path, spec):
    defects = [BlackDefect(at_s=0.6, duration_s=1.2), IllegalLevelsDefect(at_s=2.0, duration_s=0.4),
               FreezeDefect(at_s=2.6, duration_s=1.2)]
    media, married = married_set(tmp_path, defects)
    result = _qc(married, _with_check(spec, "picture.freeze", severity="warning", min_duration_s=1.0))
    for kind, check, severity in (("black", "picture.black", "error"), ("freeze", "picture.freeze", "warning"),
                                  ("illegal_levels", "picture.illegal_levels", "warning")):
        d = media.master_manifest.defect(kind)
        _at(_one(result, check, severity), d.timecode_in, d.timecode_out)


def test_out_of_gamut(tmp_path, spec):
    media = sample_set(tmp_path / "media")
    # The synth picture is in gamut (BT.709 matrix, RGB within 10-90 %); paint a block of maximal
    # chroma at mid luma (R' > 105 %, G' < -5 %) for 0.6 s.
    a, b = 150, 165  # file frames: 01:00:00:00 + 2.0 s .. + 2.6 s
    graph = (f"[0:v]format=yuv422p,geq=lum='lum(X,Y)':cb='if(lt(X,W/4),240,cb(X,Y))'"
             f":cr='if(lt(X,W/4),240,cr(X,Y))':enable='between(n,{a},{b - 1})'[v]")
    picture = reencode(media.master, tmp_path / "gamut.mov", graph)
    married = marry(picture, [media.mixes["5.1"], media.mixes["2.0"]], tmp_path / "married.mov")
    found = _one(_qc(married, spec), "picture.gamut", "warning")
    assert len(found) == 1, found
    _at(found, tc_at(2.0), tc_at(2.6))


def test_interlaced_content_in_progressive_master(tmp_path, spec):
    media = sample_set(tmp_path / "media")
    # 50 fields/s of moving content woven into 25 frames/s: combing; overlaid for 1.0 s.
    a, b = 125, 150
    graph = (f"testsrc2=s=320x180:r=50,tinterlace=mode=interleave_top,setpts=N/25/TB,format=yuv422p[i];"
             f"[0:v]format=yuv422p[p];[p][i]overlay=enable='between(n,{a},{b - 1})':eof_action=pass[v]")
    picture = reencode(media.master, tmp_path / "interlaced.mov", graph)
    married = marry(picture, [media.mixes["5.1"], media.mixes["2.0"]], tmp_path / "married.mov")
    info = probe(married)
    assert info.primary_video.scan == "progressive"
    found = _one(_qc(married, spec), "picture.interlaced", "error")
    _at(found, tc_at(1.0), tc_at(2.0))


def test_wrong_frame_rate_tag(tmp_path, spec):
    media = sample_set(tmp_path / "media")
    # The same frames labelled 24 fps: every frame is wrong, so the finding spans the master.
    picture = reencode(media.master, tmp_path / "24.mov", "[0:v]setpts=N/24/TB[v]", rate="24")
    married = marry(picture, [media.mixes["5.1"], media.mixes["2.0"]], tmp_path / "married.mov",
                    start_tc="00:59:56:00")
    found = _one(_qc(married, spec), "metadata.frame_rate", "error")
    assert found[0].actual == "24" and found[0].expected == "25"
    assert found[0].timecode_in == "00:59:56:00"


def test_audio_defects_silence_clipping_short_mix(tmp_path, spec):
    defects = [SilenceDefect(at_s=1.0, duration_s=1.2), ClippingDefect(at_s=2.5, duration_s=0.01, channel=0),
               ShortMixDefect(short_by_s=0.8)]
    media, married = married_set(tmp_path, defects)
    # demo allows 4 s of programme silence (its whole programme); ask for 1 s here
    result = _qc(married, _with_check(spec, "audio.silence", severity="warning", min_duration_s=1.0, threshold=-60))
    mix = media.mix_manifests["5.1"]
    d = mix.defect("silence")
    # both tracks are silent there; each track gets its finding
    _at(_one(result, "audio.silence", "warning"), d.timecode_in, d.timecode_out)
    d = mix.defect("clipping")
    clip = _one(result, "audio.clipping", "error")
    _at(clip, d.timecode_in, d.timecode_out)
    assert any("channel L" in f.message for f in clip)
    d = mix.defect("short_mix")
    _at(_one(result, "timing.av_duration", "error"), d.timecode_in, d.timecode_out)


def test_phase_inverted_channel(tmp_path, spec):
    media = sample_set(tmp_path / "media")
    a_s, b_s = 4 + 1.0, 4 + 2.4  # file seconds (4 s head)

    def invert(x, rate):
        x[round(a_s * rate):round(b_s * rate), 1] = -x[round(a_s * rate):round(b_s * rate), 0]  # R = -L
        return x

    mix = edit_mix(media.mixes["2.0"], tmp_path / "phase.wav", invert)
    married = marry(media.master, [media.mixes["5.1"], mix], tmp_path / "married.mov")
    found = _one(_qc(married, spec), "audio.phase", "warning")
    assert all(f.track == "stereo-20" for f in found)
    _at(found, tc_at(1.0), tc_at(2.4))
    assert "L/R" in found[0].message


def test_silent_centre(tmp_path, spec):
    media = sample_set(tmp_path / "media")

    def mute_centre(x, rate):
        x[4 * rate:, 2] = 0  # C silent for the whole programme
        return x

    mix = edit_mix(media.mixes["5.1"], tmp_path / "nocentre.wav", mute_centre)
    married = marry(media.master, [mix, media.mixes["2.0"]], tmp_path / "married.mov")
    found = _one(_qc(married, spec), "audio.channel_identity", "error")
    assert len(found) == 1 and "channel C is silent" in found[0].message
    _at(found, tc_at(0.0), tc_at(4.0))
