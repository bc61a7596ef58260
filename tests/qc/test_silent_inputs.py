"""Wrong inputs that used to pass silently: each is now a finding with the spec's severity, or a refusal naming
the real cause. A 16-bit or 32-bit float mix laid back as 24-bit, a mix three minutes longer than the picture, a
master with two video streams, a variable-frame-rate master."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from specs.errors import MediaError
from specs.loader import load_spec
from specs.model import CheckSpec, Spec
from tasks.layback import layback, plan_layback
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import probe
from tasks.media.synth import to_int24, write_bwf
from tasks.qc.metadata import check_metadata
from tasks.qc.sync import check_layback
from tests.qc.media import sample_set

DELIVER = str(Path(sys.executable).parent / "deliver")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory):
    return sample_set(tmp_path_factory.mktemp("silent") / "media")


def _converted(mix: Path, out: Path, codec: str) -> Path:
    """``mix`` in another sample format, BWF time reference kept."""
    run_ffmpeg(["-v", "error", "-i", str(mix), "-map_metadata", "0", "-c:a", codec, "-write_bext", "1", "-f", "wav",
                str(out)], what="converted mix")
    return out


@pytest.mark.parametrize(("codec", "have", "why"), [
    ("pcm_s16le", "16-bit integer PCM",
     "padded with zero bits: the mix has no more resolution than 16 bits; ask for a mix at 24-bit"),
    ("pcm_f32le", "32-bit float PCM", "float headroom and resolution are lost and samples above 0 dBFS are clipped"),
])
def test_mix_bit_depth_other_than_the_layback_masters_is_a_finding(media, tmp_path, codec, have, why) -> None:
    spec = load_spec("demo")
    mix = _converted(media.mixes["5.1"], tmp_path / f"mix_{codec}.wav", codec)
    info = probe(mix)
    assert info.audio[0].codec == codec and info.bwf_time_reference_samples == probe(
        media.mixes["5.1"]).bwf_time_reference_samples
    plan = plan_layback(probe(media.master), [info, probe(media.mixes["2.0"])], spec)
    found = [f for f in check_layback(spec, plan) if f.check == "audio.mix_bit_depth"]
    assert [(f.severity.value, f.track, f.expected, f.actual) for f in found] == [
        ("warning", "main-51", "24-bit integer PCM", have)]
    assert found[0].message == (f"track main-51: the mix {mix.name} is {have} ({codec}); the layback master carries "
                                f"it as 24-bit integer PCM (pcm_s24le): {why}")
    married = probe(layback(plan, spec, tmp_path / f"lb_{codec}.mov").path)
    assert married.audio[0].codec == "pcm_s24le"  # what the finding says the deliverable got
    strict = spec.model_copy(update={"checks": {**spec.checks, "audio.mix_bit_depth": CheckSpec(severity="error")}})
    assert [f.severity.value for f in check_layback(strict, plan) if f.check == "audio.mix_bit_depth"] == ["error"]


def test_24_bit_mixes_give_no_bit_depth_finding(media) -> None:
    spec = load_spec("demo")
    plan = plan_layback(probe(media.master), [probe(media.mixes["5.1"]), probe(media.mixes["2.0"])], spec)
    assert [f for f in check_layback(spec, plan) if f.check == "audio.mix_bit_depth"] == []


def test_mix_three_minutes_longer_than_the_picture_is_reported_with_the_trimmed_duration(media, tmp_path) -> None:
    """One stereo track at 8 kHz keeps the 3-minute file small (5 MB); placement is the same at any rate."""
    demo = load_spec("demo")
    stereo = next(t for t in demo.audio.tracks if t.layout == "2.0")
    spec = demo.model_copy(update={"audio": demo.audio.model_copy(update={"tracks": [stereo],
                                                                           "sample_rate_hz": 8000})})
    picture = probe(media.master)  # 00:59:56:00 + 8 s
    sr = 8000
    n = round(picture.duration_s * sr) + 180 * sr
    t = np.arange(n) / sr
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    mix = tmp_path / "long_20.wav"
    write_bwf(mix, to_int24(np.stack([tone, tone], axis=1)), sr, 3596 * sr, "3 minutes too long")
    plan = plan_layback(picture, [probe(mix)], spec)
    assert plan.tracks[0].tail_trim_samples == 180 * sr
    found = [f for f in check_layback(spec, plan) if f.check == "audio.layback_trim"]
    assert [(f.severity.value, f.track, f.timecode_in, f.actual) for f in found] == [
        ("warning", stereo.id, "01:00:04:00", "4500.0 frames after the picture's last frame")]
    assert (f"track {stereo.id}: 4500.0 frames (180.00 s) of the mix long_20.wav lie after the picture's last "
            "frame 01:00:04:00 and were trimmed") in found[0].message


@pytest.fixture(scope="module")
def two_pictures(media, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two") / "two_pictures.mov"
    run_ffmpeg(["-v", "error", "-i", str(media.master), "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=8",
                "-map", "0:v:0", "-map", "1:v:0", "-c:v:0", "copy", "-c:v:1", "prores_ks", "-timecode", "00:59:56:00",
                "-f", "mov", str(out)], what="two-picture master")
    return out


def test_master_with_two_video_streams_is_refused_naming_the_second(media, two_pictures) -> None:
    info = probe(two_pictures)
    assert len(info.video) == 2
    with pytest.raises(MediaError) as err:
        plan_layback(info, [probe(media.mixes["5.1"]), probe(media.mixes["2.0"])], load_spec("demo"))
    assert str(err.value).startswith("master two_pictures.mov has 2 video streams: deliver lays back the first "
                                     "(#0 prores 320x180) and would drop #1 prores 160x90.")


def test_master_with_two_video_streams_is_a_qc_finding(two_pictures) -> None:
    spec = load_spec("demo")
    found = [f for f in check_metadata(probe(two_pictures), spec) if f.check == "metadata.video_streams"]
    assert [(f.severity.value, f.actual) for f in found] == [("error", "2 video streams")]
    assert found[0].message == ("the master has 2 video streams: QC, layback and deliverables use the first (#0 "
                                "prores 320x180); #1 prores 160x90 would be dropped")


@pytest.fixture(scope="module")
def vfr(media, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The master's first 100 frames, the second half at half the rate (frames 80 ms apart), with the 5.1 mix
    as long as the picture runs."""
    out = tmp_path_factory.mktemp("vfr") / "vfr.mov"
    run_ffmpeg(["-v", "error", "-i", str(media.master), "-i", str(media.mixes["5.1"]), "-map", "0:v:0", "-map",
                "1:a:0", "-vf", "trim=end_frame=100,setpts='if(lt(N,50),N,N*2-50)/25/TB'", "-fps_mode", "passthrough",
                "-c:v", "prores_ks", "-c:a", "pcm_s24le", "-t", "6", "-timecode", "00:59:56:00", "-f", "mov",
                str(out)], what="VFR master")
    return out


def test_vfr_master_is_detected_from_rates_and_packet_durations(vfr) -> None:
    v = probe(vfr).primary_video
    assert v.frame_rate == 25 and v.avg_frame_rate is not None and v.avg_frame_rate != 25
    assert v.variable_rate is not None
    assert "r_frame_rate 25 but avg_frame_rate" in v.variable_rate
    assert v.variable_rate.endswith("frame durations 40.0 to 80.0 ms")


def test_vfr_master_is_refused_for_layback_naming_vfr(media, vfr) -> None:
    with pytest.raises(MediaError) as err:
        plan_layback(probe(vfr), [probe(media.mixes["5.1"]), probe(media.mixes["2.0"])], load_spec("demo"))
    text = str(err.value)
    assert text.startswith("master vfr.mov has a variable frame rate: r_frame_rate 25 but avg_frame_rate ")
    assert "deliver needs a constant frame rate" in text and "audio" not in text


def test_vfr_master_in_qc_is_a_frame_rate_finding_not_an_audio_duration_error(vfr) -> None:
    spec: Spec = load_spec("demo")
    info = probe(vfr)
    findings = check_metadata(info, spec)
    found = [f for f in findings if f.check == "metadata.frame_rate_mode"]
    assert [(f.severity.value, f.expected) for f in found] == [("error", "constant 25 fps")]
    avg = float(info.primary_video.avg_frame_rate)
    assert found[0].actual == f"variable ({avg:.3f} fps on average)"
    assert found[0].message.startswith("the master has a variable frame rate: r_frame_rate 25")
    assert not [f for f in findings if f.check == "timing.av_duration"]
    assert Fraction(avg).limit_denominator(1000) != 25


def test_deliver_run_of_a_vfr_master_exits_2_with_one_line_naming_vfr(media, vfr, tmp_path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([DELIVER, "run", "--master", str(vfr), "--mix", str(media.mixes["5.1"]), "--mix",
                           str(media.mixes["2.0"]), "--spec", "demo", "--title", "VFR", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("deliver: error: master vfr.mov has a variable frame rate: r_frame_rate 25")
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing written, under a final name or not
