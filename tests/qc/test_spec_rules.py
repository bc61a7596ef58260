"""The spec rules below, each checked on tiny
generated media with a known right answer, plus the edge cases as unit tests on hand-made data:

* ``metadata.start_timecode``: the drop-frame flag of the master's timecode against ``timing.drop_frame``;
* ``metadata.aspect_ratio`` (width x SAR / height against ``picture.display_aspect_ratios``) and
  ``metadata.bitrate`` (ffprobe's video bit rate against ``picture.bitrate_mbps``; not measured, never a pass);
* ``picture.commercial_blacks``: black AND silence on every track together for ``min_duration_s``;
* ``timing.head_tail_black``: an unset head/tail window is unconstrained; ``min`` is enforced;
* ``timing.av_duration``: ``av_duration_tolerance_s`` (seconds) wins over the frame tolerance.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from specs.loader import load_spec
from specs.model import CheckSpec, Range, Spec
from specs.timecode import Timecode
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import MediaInfo, VideoStream, probe
from tasks.media.synth import BlackDefect, MasterSpec, ShortMixDefect, SilenceDefect
from tasks.qc.engine import qc_master
from tasks.qc.findings import Finding
from tasks.qc.metadata import check_metadata, display_aspect_ratio, parse_aspect_ratio
from tasks.qc.picture_analysis import PictureSeries, analyse_picture
from tasks.qc.picture_checks import ProgrammeClock, check_commercial_blacks, check_picture, frame_span, programme_clock
from tests.qc.media import RATE, marry, sample_set, tc_at, within_one_frame


def _of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def _with(spec: Spec, *, checks: dict[str, CheckSpec] | None = None, **timing) -> Spec:
    update: dict = {}
    if checks:
        update["checks"] = {**spec.checks, **checks}
    if timing:
        update["timing"] = spec.timing.model_copy(update=timing)
    return spec.model_copy(update=update)


def _picture(spec: Spec, **picture) -> Spec:
    return spec.model_copy(update={"picture": spec.picture.model_copy(update=picture)})


def _clip(path: Path, *, size: str = "320x180", rate: str = "25", tc: str | None = None, sar: str = "1",
          audio: bool = False, codec: tuple[str, ...] = ("-c:v", "prores_ks", "-profile:v", "3"),
          audio_codec: tuple[str, ...] = ("-c:a", "pcm_s24le")) -> Path:
    """A 0.2 s picture (and tone) straight from lavfi."""
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d=0.2"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=d=0.2:r=48000", *audio_codec, "-ar", "48000"]
    args += ["-vf", f"setsar={sar}", *codec]
    if tc:
        args += ["-timecode", tc]
    run_ffmpeg([*args, str(path)], what="test clip")
    return path


# -- 1. drop-frame flag ---------------------------------------------------------------------------

def _df_findings(path: Path, spec: Spec) -> list[Finding]:
    return [f for f in _of(check_metadata(probe(path), spec), "metadata.start_timecode") if "drop-frame" in f.message]


def test_drop_frame_flag_compared_with_the_spec(tmp_path):
    atsc, ebu = load_spec("atsc-a85"), load_spec("ebu-r128")
    assert atsc.timing.drop_frame and not ebu.timing.drop_frame
    ndf = _clip(tmp_path / "ndf.mov", rate="30000/1001", tc="00:59:57:00")
    df = _clip(tmp_path / "df.mov", rate="30000/1001", tc="00:59:57;00")
    assert probe(df).start_timecode == "00:59:57;00" and probe(ndf).start_timecode == "00:59:57:00"
    # NDF 29.97 against ATSC (drop-frame): an error, expected/actual say which is which
    (f,) = _df_findings(ndf, atsc)
    assert f.severity.value == "error"
    assert (f.expected, f.actual) == ("drop-frame (;)", "non-drop-frame (:)")
    assert not _df_findings(df, atsc)
    # DF 29.97 against a non-drop-frame spec: the other way round
    (f,) = _df_findings(df, ebu)
    assert (f.expected, f.actual) == ("non-drop-frame (:)", "drop-frame (;)")
    assert not _df_findings(ndf, ebu)


def test_drop_frame_flag_only_meaningful_at_ntsc_rates(tmp_path):
    # 25 fps has no drop-frame: a DF spec does not flag a 25 fps master's NDF timecode here
    # (metadata.frame_rate reports the rate).
    pal = _clip(tmp_path / "pal.mov", rate="25", tc="00:59:57:00")
    assert not _df_findings(pal, load_spec("atsc-a85"))


# -- 2. display aspect ratio and bit rate -----------------------------------------------------------

def test_aspect_ratio_4x3_fails_youtube(tmp_path):
    yt = load_spec("youtube")
    assert yt.check("metadata.aspect_ratio").severity == "error" and yt.picture.display_aspect_ratios == ["16:9"]
    four_three = _clip(tmp_path / "43.mov", size="240x180")
    (f,) = _of(check_metadata(probe(four_three), yt), "metadata.aspect_ratio")
    assert f.severity.value == "error" and (f.expected, f.actual) == ("16:9", "4:3")
    assert "240x180" in f.message
    # 16:9 square pixels, and 16:9 made of 240x180 with 4:3 pixels (anamorphic): both pass
    assert not _of(check_metadata(probe(_clip(tmp_path / "169.mov")), yt), "metadata.aspect_ratio")
    ana = probe(_clip(tmp_path / "ana.mov", size="240x180", sar="4/3"))
    assert ana.primary_video.sample_aspect_ratio == Fraction(4, 3)
    assert display_aspect_ratio(ana.primary_video) == Fraction(16, 9)
    assert not _of(check_metadata(ana, yt), "metadata.aspect_ratio")
    # off: not judged
    assert not _of(check_metadata(probe(four_three), _with(yt, checks={"metadata.aspect_ratio": CheckSpec(
        severity="off")})), "metadata.aspect_ratio")


def _info(**video) -> MediaInfo:
    v = VideoStream(**{"index": 0, "codec": "prores", "width": 1920, "height": 1080, "frame_rate": Fraction(24),
                       **video})
    return MediaInfo(path="/nonexistent/master.mov", format_name="mov,mp4,m4a,3gp,3g2,mj2", size_bytes=1,
                     duration_s=1.0, video=[v])


@pytest.mark.parametrize(("width", "height", "sar", "ratios", "ok"), [
    (1998, 1080, 1, ["1.85"], True),           # DCI flat
    (2048, 858, 1, ["2.39"], True),            # DCI scope 2.387
    (3840, 1600, 1, ["2.39:1"], True),         # 2.40 counts as 2.39
    (1920, 1080, 1, ["1.85", "2.39"], False),  # 1.78 is neither
    (2048, 858, 1, ["2.35"], False),           # 2.35 and 2.39 stay apart
    (720, 576, Fraction(16, 15), ["4:3"], True),
    (720, 576, Fraction(64, 45), ["16:9"], True),
])
def test_aspect_ratio_forms_and_tolerance(width, height, sar, ratios, ok):
    # The spec model only admits W:H today; the QC side also reads decimal ratios ("1.85", "2.39:1").
    spec = _picture(_with(load_spec("demo"), checks={"metadata.aspect_ratio": CheckSpec(severity="error")}),
                    display_aspect_ratios=ratios, width=None, height=None)
    found = _of(check_metadata(_info(width=width, height=height, sample_aspect_ratio=Fraction(sar)), spec),
                "metadata.aspect_ratio")
    assert (not found) == ok, found
    assert parse_aspect_ratio("16:9") == Fraction(16, 9) and parse_aspect_ratio("1.85") == Fraction(37, 20)


def test_bitrate_against_apple_window(tmp_path):
    apple = load_spec("apple")
    assert apple.picture.bitrate_mbps.min == 88 and apple.picture.bitrate_mbps.max == 220
    info = probe(_clip(tmp_path / "small.mov", audio=True))
    bps = info.primary_video.bit_rate_bps
    assert bps and bps < 88e6  # a 320x180 ProRes is far below Apple's window
    (f,) = _of(check_metadata(info, apple), "metadata.bitrate")
    assert f.severity.value == "warning" and f.status == "fail"
    assert f.expected == "88-220 Mbit/s" and f.actual == f"{bps / 1e6:.1f} Mbit/s"
    # inside a window around the measured rate: nothing; above a max: reported
    mbps = bps / 1e6
    assert not _of(check_metadata(info, _picture(apple, bitrate_mbps=Range(min=mbps * 0.9, max=mbps * 1.1))),
                   "metadata.bitrate")
    (f,) = _of(check_metadata(info, _picture(apple, bitrate_mbps=Range(max=mbps / 2))), "metadata.bitrate")
    assert f.expected == f"at most {mbps / 2:g} Mbit/s"


def test_bitrate_from_container_minus_audio_and_not_measured(tmp_path):
    # MXF MPEG-2: ffprobe gives no video stream bit rate, but the container's and the PCM's.
    mxf = probe(_clip(tmp_path / "m.mxf", audio=True, codec=("-c:v", "mpeg2video")))
    assert mxf.primary_video.bit_rate_bps and mxf.audio[0].bit_rate_bps == 48000 * 24
    # MKV FFV1 + FLAC: no bit rate for either stream -> unknown, and QC says not measured (warning
    # even where the spec says error), never a pass.
    mkv = probe(_clip(tmp_path / "m.mkv", audio=True, codec=("-c:v", "ffv1"), audio_codec=("-c:a", "flac")))
    assert mkv.primary_video.bit_rate_bps is None
    spec = _with(load_spec("apple"), checks={"metadata.bitrate": CheckSpec(severity="error")})
    (f,) = _of(check_metadata(mkv, spec), "metadata.bitrate")
    assert f.status == "not_measured" and f.severity.value == "warning" and f.actual == "not measured"


# -- 3-5. commercial blacks, head/tail black (one master, one picture decode) -----------------------

HEAD_BLACK_S = 0.6


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    """3 s head + 11 s programme at 25 fps (FFOA 01:00:00:00): 0.6 s black at the programme head;
    black 1.6..5.8 s under silence 1.4..6.0 s (a 4.2 s commercial black); black 6.4..10.6 s with
    silence only 7.0..9.0 s (2 s together: not one)."""
    tmp = tmp_path_factory.mktemp("rules")
    defects = [BlackDefect(at_s=0.0, duration_s=HEAD_BLACK_S),
               BlackDefect(at_s=1.6, duration_s=4.2), SilenceDefect(at_s=1.4, duration_s=4.6),
               BlackDefect(at_s=6.4, duration_s=4.2), SilenceDefect(at_s=7.0, duration_s=2.0)]
    media = sample_set(tmp / "media", defects, master=MasterSpec(head_s=3.0, programme_s=11.0))
    married = marry(media.master, [media.mixes["5.1"], media.mixes["2.0"]], tmp / "married.mov",
                    start_tc="00:59:57:00")
    info = probe(married)
    series = analyse_picture(info)
    return info, series


def test_commercial_black_found_where_black_and_silence_overlap(programme):
    info, _ = programme
    spec = _with(load_spec("demo"), checks={"picture.commercial_blacks": CheckSpec(severity="error",
                                                                                    min_duration_s=4)})
    result = qc_master(info, spec)
    found = _of(result.findings, "picture.commercial_blacks")
    assert len(found) == 1, [(f.check, f.timecode_in, f.timecode_out) for f in result.findings]
    f = found[0]
    assert f.severity.value == "error" and f.actual == "4.20 s"
    assert f.expected == "no black with silence for 4 s or longer"
    assert within_one_frame(f.timecode_in, tc_at(1.6)) and within_one_frame(f.timecode_out, tc_at(5.8)), f
    # the spec default (off) reports nothing; Netflix's own setting is a 4 s Blocker
    assert not _of(qc_master(info, load_spec("demo")).findings, "picture.commercial_blacks")
    netflix = load_spec("netflix").check("picture.commercial_blacks")
    assert (netflix.severity, netflix.min_duration_s) == ("error", 4)


def test_unset_head_black_is_unconstrained(programme):
    info, series = programme
    demo = load_spec("demo")
    assert demo.timing.head_black_s is None and demo.timing.tail_black_s is None
    clock = programme_clock(info, demo, series.frame_count)
    found = check_picture(series, clock, demo, info)
    # 0.6 s of black at the programme head: no head/tail finding, and shorter than the demo's 1 s of
    # programme black; the two 4.2 s blacks inside are programme black (error in the demo).
    assert not _of(found, "timing.head_tail_black"), found
    black = _of(found, "picture.black")
    assert [f.actual for f in black] == ["4.20 s", "4.20 s"]
    # Unset, a long black at the head is programme black, judged by picture.black (not let through).
    longer = _with(demo, max_programme_black_s=0.5)
    assert [f.timecode_in for f in _of(check_picture(series, clock, longer, info), "picture.black")][0] == tc_at(0)


def test_head_black_window_max_and_min(programme):
    info, series = programme
    demo = load_spec("demo")
    clock = programme_clock(info, demo, series.frame_count)
    # within {max: 1}: allowed, and not programme black either
    ok = _with(demo, head_black_s=Range(max=1.0), max_programme_black_s=0.5)
    found = check_picture(series, clock, ok, info)
    assert not _of(found, "timing.head_tail_black")
    assert tc_at(0) not in [f.timecode_in for f in _of(found, "picture.black")]
    # over {max: 0.5}
    (f,) = _of(check_picture(series, clock, _with(demo, head_black_s=Range(max=0.5)), info), "timing.head_tail_black")
    assert (f.expected, f.actual) == ("at most 0.5 s", f"{HEAD_BLACK_S:.2f} s")
    assert within_one_frame(f.timecode_in, tc_at(0)) and within_one_frame(f.timecode_out, tc_at(HEAD_BLACK_S))
    # Netflix-style {min: 0.03, max: 1}: the head has 15 black frames (ok); the tail has none (error)
    netflix = _with(demo, head_black_s=Range(min=0.03, max=1.0), tail_black_s=Range(min=0.03, max=1.0))
    (f,) = _of(check_picture(series, clock, netflix, info), "timing.head_tail_black")
    assert f.severity.value == "error" and "tail" in f.message
    assert (f.expected, f.actual) == ("at least 0.03 s (1 frame)", "0 frames")
    assert f.timecode_in == clock.tc(clock.frame_count - 1) and f.timecode_out == clock.tc(clock.frame_count)
    # a minimum longer than the head's black
    (f,) = _of(check_picture(series, clock, _with(demo, head_black_s=Range(min=1.0)), info), "timing.head_tail_black")
    assert (f.expected, f.actual) == ("at least 1 s (25 frames)", "15 frames") and "head" in f.message


# -- commercial blacks on hand-made series (edge cases, no media) ----------------------------------

def _series(black: np.ndarray) -> PictureSeries:
    n = black.size
    z = np.zeros(n)
    return PictureSeries(rate=RATE, bit_depth=10, luma_mean=z, black_share=black.astype(float), illegal_share=z,
                         diff_to_previous=z + 1)


def _blacks(spec: Spec, black: np.ndarray, silences: list[list[tuple[int, int]]]) -> list[Finding]:
    clock = ProgrammeClock(Timecode.parse("01:00:00:00", RATE), 0, black.size)
    return check_commercial_blacks(_series(black), clock, spec, silences, [48000] * len(silences))


def test_commercial_blacks_edge_cases():
    spec = _with(load_spec("demo"), checks={"picture.commercial_blacks": CheckSpec(severity="error")})
    black = np.zeros(400, bool)
    black[50:160] = True  # 4.4 s
    sil = [(50 * 1920 + 7, 160 * 1920)]  # silence starts 7 samples into frame 50: frames 51..160 are silent
    (f,) = _blacks(spec, black, [sil, sil])
    assert f.actual == "4.36 s" and f.timecode_in == "01:00:02:01" and f.timecode_out == "01:00:06:10"
    # default minimum 4 s: 3.96 s together is not a commercial black
    assert not _blacks(spec, black, [[(50 * 1920, 149 * 1920)]])
    # one of two tracks carries sound: not silence
    assert not _blacks(spec, black, [sil, []])
    # a longer minimum from the spec
    longer = _with(spec, checks={"picture.commercial_blacks": CheckSpec(severity="error", min_duration_s=5)})
    assert not _blacks(longer, black, [sil])
    # no audio track: nothing to pair with
    assert not _blacks(spec, black, [])
    # at the programme tail, where the spec bounds tail black, it is the head/tail rule's
    tail = np.zeros(400, bool)
    tail[280:] = True
    assert _blacks(spec, tail, [[(280 * 1920, 400 * 1920)]])
    assert not _blacks(_with(spec, tail_black_s=Range(max=1.0)), tail, [[(280 * 1920, 400 * 1920)]])


def test_frame_span_is_whole_frames():
    assert frame_span(0, 1920, 48000, RATE).start == 0 and frame_span(0, 1920, 48000, RATE).end == 1
    assert frame_span(1, 1920 * 2, 48000, RATE) == frame_span(1920, 3840, 48000, RATE)
    assert frame_span(1, 1920, 48000, RATE) is None
    # 29.97: 1601.6 samples per frame
    span = frame_span(0, 48048, 48000, Fraction(30000, 1001))
    assert (span.start, span.end) == (0, 30)


# -- 6. A/V duration tolerance in seconds -----------------------------------------------------------

def test_av_duration_tolerance_seconds(tmp_path):
    media = sample_set(tmp_path / "media", [ShortMixDefect(short_by_s=1.0)], master=MasterSpec(head_s=3.0,
                                                                                                programme_s=2.0))
    info = probe(marry(media.master, [media.mixes["5.1"], media.mixes["2.0"]], tmp_path / "m.mov",
                       start_tc="00:59:57:00"))
    demo = load_spec("demo")
    assert demo.timing.av_duration_tolerance_s is None and demo.timing.av_duration_tolerance_frames == 1
    found = _of(check_metadata(info, demo), "timing.av_duration")
    assert len(found) == 2 and {f.expected for f in found} == {"within 1 frame"}
    # Amazon's clause in seconds: 1 s short is within 2.0 s, even with a frame tolerance of 1
    assert load_spec("amazon").timing.av_duration_tolerance_s == 2.0
    assert not _of(check_metadata(info, _with(demo, av_duration_tolerance_s=2.0)), "timing.av_duration")
    # 0.5 s = 12.5 frames at 25 fps: 1 s (25 frames) is out
    found = _of(check_metadata(info, _with(demo, av_duration_tolerance_s=0.5)), "timing.av_duration")
    assert len(found) == 2 and found[0].expected == "within 0.5 s (12.5 frames)" and found[0].actual == "25.0 frames"
