"""A scope 25 fps DCP made and verified (ours, ClairMeta, MediaInfo); rate refusals; spec lint refusals.

The `deliver run` cases are in tests/flows/test_dcp_flow.py (they need the Prefect API).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from specs.errors import MediaError
from specs.loader import load_spec
from specs.model import DcpSpec
from tasks.dcp.plan import dcp_rate, make_dcp, plan_dcp, plan_deliverable, sound_args
from tasks.dcp.verify import verify_dcp
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, MixSpec, make_master, make_mix

pytestmark = pytest.mark.skipif(shutil.which("grk_compress") is None or shutil.which("mediainfo") is None,
                                reason="grokj2k-tools and mediainfo are needed (make setup)")


def _inputs(root: Path, *, rate: Fraction | int = 24, width: int = 1920, height: int = 1080,
            layout: str = "5.1", programme_s: float = 1.5) -> tuple[Path, Path]:
    timing = dict(rate=rate, head_s=3, programme_s=programme_s)
    root.mkdir(parents=True, exist_ok=True)
    master, mix = root / "master.mov", root / f"mix{layout}.wav"
    make_master(master, MasterSpec.fast_prores(width=width, height=height, **timing))
    make_mix(mix, MixSpec(layout=layout, **timing))
    return master, mix


def _mediainfo(path: Path) -> list[dict]:
    out = subprocess.run(["mediainfo", "--Output=JSON", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["media"]["track"]


def _clairmeta_errors(path: Path) -> tuple[list[str], set[str]]:
    out = subprocess.run([sys.executable, "-m", "clairmeta.cli", "check", "-type", "dcp", str(path), "-format",
                          "json"], capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    report = json.loads(out.stdout)
    errors = [f"{c['name']}: {e['message']}" for c in report["checks"] for e in c["errors"]
              if e.get("criticality") == "ERROR"]
    return errors, {c["name"] for c in report["checks"] if not c["bypass"]}


def _check_tracks(dcp: Path, width: int, height: int, fps: int, frames: int, channels: int,
                  resolution: str = "2k") -> None:
    picture = _mediainfo(next(dcp.glob("j2c_*.mxf")))
    video = next(t for t in picture if t["@type"] == "Video")
    assert video["Format"] == "JPEG 2000" and video["Format_Profile"].startswith(f"D-Cinema {resolution}")
    assert (int(video["Width"]), int(video["Height"])) == (width, height)
    assert float(video["FrameRate"]) == fps and int(video["FrameCount"]) == frames
    assert video["BitDepth"] == "12"
    sound = _mediainfo(next(dcp.glob("pcm_*.mxf")))
    audio = next(t for t in sound if t["@type"] == "Audio")
    assert audio["Format"] == "PCM" and int(audio["Channels"]) == channels
    assert audio["BitDepth"] == "24" and audio["SamplingRate"] == "48000"
    assert abs(float(audio["Duration"]) - frames / fps) < 0.002


def test_scope_dcp_at_25_fps_from_a_239_master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master, _mix = _inputs(tmp_path / "in", rate=25, width=1920, height=804, programme_s=1.0)
    # The married master of a run: the picture with the 5.1 mix as its first audio track.
    married = tmp_path / "married.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(master), "-i", str(_mix), "-map", "0:v", "-map", "1:a",
                    "-c", "copy", "-timecode", "00:59:57:00", str(married)], check=True)
    spec = load_spec("dci-cinema")
    plan = plan_deliverable(spec.deliverables[0], spec, probe(married), "Scope Film")
    assert plan.picture.placement.container.name == "scope" and plan.edit_rate == 25
    assert plan.reels == [(75, 25)]  # FFOA 01:00:00:00 after a 3 s leader: 1 s of programme
    dcp = make_dcp(married, plan, tmp_path / "DCP", 2, signer_dir=tmp_path / "signer")
    assert verify_dcp(dcp).problems == []
    _check_tracks(dcp, 2048, 858, 25, 25, 6)
    errors, _ran = _clairmeta_errors(dcp)
    assert errors == []


def test_make_dcp_on_a_local_dask_cluster_matches_one_process(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/dcp.yaml encode: through the environment: 2 Dask workers, 10-frame chunks; the picture
    track holds the frames one local process makes, and the DCP verifies."""
    from tasks.dcp.picture import iter_picture
    from tasks.mxf.reader import read_track

    master, mix = _inputs(tmp_path / "in", rate=24, programme_s=1.0)
    married = tmp_path / "married.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(master), "-i", str(mix), "-map", "0:v", "-map", "1:a",
                    "-c", "copy", "-timecode", "00:59:57:00", str(married)], check=True)
    spec = load_spec("dci-cinema")
    plan = plan_deliverable(spec.deliverables[0], spec, probe(married), "Dask Film")
    assert plan.reels == [(72, 24)]
    monkeypatch.setenv("DELIVER_DCP_DASK", "local")
    monkeypatch.setenv("DELIVER_DCP_WORKERS", "2")
    monkeypatch.setenv("DELIVER_DCP_CHUNK_FRAMES", "10")
    dcp = make_dcp(married, plan, tmp_path / "DCP", 1, signer_dir=tmp_path / "signer")
    assert verify_dcp(dcp).problems == []
    track = read_track(next(dcp.glob("j2c_*.mxf")))
    local = [p.read_bytes() for p in iter_picture(married, plan.picture, 1, tmp_path / "local", 72, 24)]
    assert list(track.iter_frames()) == local and len(local) == 24


def test_rates_needing_a_speed_change_are_refused_unless_asked() -> None:
    assert dcp_rate(Fraction(25), DcpSpec()) == 25
    with pytest.raises(MediaError, match=r"23.976 fps and a DCP at 24: that needs a speed change \(0.1 %\)"):
        dcp_rate(Fraction(24000, 1001), DcpSpec())
    assert dcp_rate(Fraction(24000, 1001), DcpSpec(speed_change=True)) == 24
    with pytest.raises(MediaError, match="needs a speed change"):
        dcp_rate(Fraction(24), DcpSpec(frame_rate=25))
    assert dcp_rate(Fraction(24), DcpSpec(frame_rate=25, speed_change=True)) == 25
    with pytest.raises(MediaError, match="more than the 4.4 %"):
        dcp_rate(Fraction(24), DcpSpec(frame_rate=30, speed_change=True))


def test_4k_is_planned_at_24_fps_and_refused_at_other_rates() -> None:
    """SMPTE RDD 52 (Bv2.1): 4K pictures at 24 fps only; the 4K containers double the 2K ones."""
    from tasks.media.probe import VideoStream

    def video(rate: int) -> VideoStream:
        return VideoStream(index=0, codec="prores", width=3840, height=2160, frame_rate=Fraction(rate),
                           frame_count=48, scan="progressive", color_primaries="bt709", color_transfer="bt709")

    plan = plan_dcp(video(24), DcpSpec(resolution="4k"), audio_channels=6, audio_stream=1, title="T", source="m")
    c = plan.picture.placement.container
    assert (c.width, c.height, plan.picture.profile, plan.edit_rate) == (3996, 2160, "4k", 24)
    assert (plan.picture.placement.active_width, plan.picture.placement.active_height) == (3840, 2160)
    with pytest.raises(MediaError, match="a 4K DCP plays at 24 fps only; this one would run at 25 fps"):
        plan_dcp(video(25), DcpSpec(resolution="4k"), audio_channels=6, audio_stream=1, title="T", source="m")


def test_spec_lint_refuses_dcp_mistakes(tmp_path: Path) -> None:
    from specs.loader import lint_paths

    base = ("schema: 1\nname: bad-dcp\nextends: dci-cinema\ndescription: broken\n"
            "provenance: {document: test, confidence: NC}\ndeliverables:\n  - id: dcp\n    kind: dcp\n"
            "    container: dcp\n    audio: [{from_track: main-51, codec: pcm_s24le}]\n"
            "    name: \"{title}_{version}_dcp\"\n")
    cases = {
        "    dcp: {sound: \"7.1\"}\n": "the 7.1 DCP 'dcp' maps track 'main-51', a 5.1 mix",
        "    dcp: {frame_rate: 23}\n": "23 fps is not a DCP rate",
        "    dcp: {content_kind: MOVIE}\n": "content kind 'MOVIE' is not an ISDCF content type",
        "    dcp: {fit: wide}\n": "fit",
        "    dcp: {resolution: 4k, frame_rate: 25}\n": "a 4K DCP plays at 24 fps only, not 25",
        "    video: {codec: prores_ks}\n": "a DCP has no video: settings",
    }
    for line, words in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(base.replace("    container: dcp\n", "    container: dcp\n" + line))
        issues = lint_paths([path])
        assert issues and any(words in i.message for i in issues), (line, [str(i) for i in issues])
        assert all(i.line > 0 for i in issues)


def test_speed_change_sound_is_whole_frames_at_the_dcp_rate(tmp_path: Path) -> None:
    """23.976 -> 24 with speed_change: 24 frames of sound are exactly 48,000 samples, played 0.1 % fast."""
    master, mix = _inputs(tmp_path / "in", rate=Fraction(24000, 1001), width=320, height=180, programme_s=2.0)
    married = tmp_path / "married.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(master), "-i", str(mix), "-map", "0:v", "-map", "1:a",
                    "-c", "copy", str(married)], check=True)
    info = probe(married)
    assert info.primary_video is not None
    plan = plan_dcp(info.primary_video, DcpSpec(speed_change=True), audio_channels=6, audio_stream=0,
                    title="Film", source=str(married))
    assert plan.edit_rate == 24 and plan.speed_changed and plan.picture.master_rate == Fraction(24000, 1001)
    wav = tmp_path / "reel.wav"
    subprocess.run(["ffmpeg", "-v", "error", *sound_args(married, plan, 24, 24, wav)], check=True)
    sound = probe(wav).audio[0]
    assert (sound.channels, sound.sample_rate_hz, sound.bit_depth) == (6, 48000, 24)
    assert sound.duration_s == pytest.approx(1.0, abs=1e-6)


def test_credit_markers_and_composition_metadata_come_from_the_spec() -> None:
    """FFEC/FFMC are master timecodes turned into composition frames after the dropped leader (ST 429-7
    Table 2); a credits timecode outside the programme is refused before any encode; ReleaseTerritory
    follows the ISDCF territory unless the spec names one (ST 429-16 §6.6)."""
    from pydantic import ValidationError

    from specs.timecode import Timecode
    from tasks.media.probe import VideoStream

    video = VideoStream(index=0, codec="prores", width=1920, height=1080, frame_rate=Fraction(24),
                        frame_count=24 * 100, scan="progressive", color_primaries="bt709", color_transfer="bt709")
    start = Timecode.parse("00:59:50:00", Fraction(24))  # a 10 s leader before the FFOA at 01:00:00:00
    spec = DcpSpec(ffec_timecode="01:01:20:00", ffmc_timecode="01:01:21:12", luminance_fl=10,
                   isdcf={"territory": "INT"}, distributor="Cinema Distribution Ltd")
    plan = plan_dcp(video, spec, audio_channels=6, audio_stream=0, title="T", source="m", first_frame=240,
                    start=start)
    assert plan.markers == {"FFEC": 80 * 24, "FFMC": 81 * 24 + 12}
    assert (plan.release_territory, plan.luminance_fl, plan.distributor) == ("001", 10, "Cinema Distribution Ltd")
    assert plan_dcp(video, DcpSpec(isdcf={"territory": "UK"}), audio_channels=6, audio_stream=0, title="T",
                    source="m").release_territory == "GB"
    with pytest.raises(MediaError, match=r"dcp.ffec_timecode 01:02:00:00 is outside the DCP's programme "
                                         r"\(01:00:00:00 to 01:01:29:23\)"):
        plan_dcp(video, DcpSpec(ffec_timecode="01:02:00:00"), audio_channels=6, audio_stream=0, title="T",
                 source="m", first_frame=240, start=start)
    with pytest.raises(MediaError, match="dcp.ffmc_timecode 00:59:59:23 is outside"):
        plan_dcp(video, DcpSpec(ffmc_timecode="00:59:59:23"), audio_channels=6, audio_stream=0, title="T",
                 source="m", first_frame=240, start=start)
    for bad, words in (({"isdcf": {"territory": "EUR"}}, "not an ISO 3166 region"),
                       ({"release_territory": "Int"}, "release_territory"),
                       ({"luminance_fl": 0}, "luminance_fl"), ({"ffec_timecode": "1:00"}, "ffec_timecode")):
        with pytest.raises(ValidationError, match=words):
            DcpSpec(**bad)
    assert DcpSpec(isdcf={"territory": "EUR"}, release_territory="150").territory_code() == "150"


def test_deliverables_timeout_grows_with_the_dcp_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliverables step's timeout is the file deliverables' 24 h plus the DCP budget: frames x the
    per-frame core-seconds / cores. A two-hour 2K feature at the measured 1.05 core-s a frame needs ~25 h on
    2 cores, more than a fixed 24 h; its timeout leaves it 4x that. 4K budgets 4x 2K; no DCP, no change."""
    from tasks.dcp.plan import encode_budget_s
    from tasks.media.probe import MediaInfo, VideoStream
    from tasks.steps import DELIVERABLES_TIMEOUT_S, deliverables_task, deliverables_timeout_s

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    frames = 2 * 3600 * 24
    video = VideoStream(index=0, codec="prores", width=1920, height=1080, frame_rate=Fraction(24),
                        frame_count=frames, scan="progressive", color_primaries="bt709", color_transfer="bt709")
    feature = MediaInfo(path="feature.mov", format_name="mov", size_bytes=1, duration_s=7200.0, video=[video])
    dcp = load_spec("dci-cinema").deliverables[0]
    measured_s = frames * 1.05 / 2  # the bench's 2K cost on 2 cores: 25.2 h
    assert measured_s > DELIVERABLES_TIMEOUT_S
    timeout = deliverables_timeout_s([dcp], feature)
    assert timeout == pytest.approx(DELIVERABLES_TIMEOUT_S + frames * 4.0 / 2)  # 24 h + 96 h
    assert timeout > 4 * measured_s
    assert deliverables_task([dcp], feature).timeout_seconds == pytest.approx(timeout)
    assert dcp.dcp is not None
    dcp_4k = dcp.model_copy(update={"dcp": dcp.dcp.model_copy(update={"resolution": "4k"})})
    assert encode_budget_s([dcp_4k], feature) == pytest.approx(4 * encode_budget_s([dcp], feature))
    assert encode_budget_s([dcp, dcp_4k], feature, workers=8) == pytest.approx(frames * 20.0 / 8)
    # No frame count: the duration scales it; no DCP, or nothing to scale by: the fixed ceiling.
    by_duration = feature.model_copy(update={"video": [video.model_copy(update={"frame_count": None})]})
    assert deliverables_timeout_s([dcp], by_duration) == pytest.approx(timeout)
    files = load_spec("amazon").deliverables
    assert files and all(d.kind != "dcp" for d in files)
    assert deliverables_timeout_s(files, feature) == DELIVERABLES_TIMEOUT_S
    assert deliverables_task([], feature).timeout_seconds == DELIVERABLES_TIMEOUT_S
