"""Each verification aspect on its own, on probe results written by hand (no media): the problems it returns."""

from __future__ import annotations

from fractions import Fraction

import pytest

from specs.loader import load_spec
from specs.model import AudioMap, Deliverable
from tasks.audio.loudness import LoudnessResult
from tasks.deliverables.verify import (
    audio_track_problems,
    downmix_clip_problems,
    duration_problems,
    loudness_problems,
    output_track_channels,
    picture_format_problems,
    picture_geometry_problems,
    start_timecode_problems,
    stream_problems,
)
from tasks.media.probe import AudioStream, MediaInfo, VideoStream


@pytest.fixture(scope="module")
def spec():
    return load_spec("ebu-r128")  # tracks main-51 (5.1) and stereo-20 (2.0), 48 kHz, FFOA 10:00:00:00


def _video(**kw) -> VideoStream:
    base = dict(index=0, codec="h264", width=1920, height=1080, frame_rate=Fraction(25), scan="progressive",
                pix_fmt="yuv420p", profile="High")
    return VideoStream(**{**base, **kw})


def _info(video: list[VideoStream] | None = None, audio: list[AudioStream] | None = None, *,
          duration_s: float = 10.0, start_timecode: str | None = None) -> MediaInfo:
    return MediaInfo(path="x.mp4", format_name="mp4", size_bytes=1, duration_s=duration_s,
                     video=video if video is not None else [_video()], audio=audio or [],
                     start_timecode=start_timecode)


def _screener(**video) -> Deliverable:
    return Deliverable(id="s", kind="screener", container="mp4", name="{title}.mp4",
                       video={"codec": "libx264", "pix_fmt": "yuv420p", **video},
                       audio=[AudioMap(from_track="stereo-20", codec="aac")])


def _loudness(integrated_lufs: float | None, true_peak_dbtp: float | None = None,
              sample_peak_dbfs: float | None = None) -> LoudnessResult:
    return LoudnessResult(integrated_lufs=integrated_lufs, loudness_range_lu=None, true_peak_dbtp=true_peak_dbtp,
                          sample_peak_dbfs=sample_peak_dbfs, max_momentary_lufs=None, max_short_term_lufs=None,
                          duration_s=10.0, channels=[], short_term_series_lufs=[], layout="stereo",
                          sample_rate_hz=48000)


def test_stream_problems_name_the_codec_and_an_hevc_tag_apple_players_refuse():
    assert stream_problems(_screener(), _video()) == []
    assert stream_problems(_screener(), _video(codec="prores")) == ["video codec prores instead of h264"]
    hevc = _screener(codec="libx265")
    assert stream_problems(hevc, _video(codec="hevc", codec_tag="hvc1")) == []
    assert stream_problems(hevc, _video(codec="hevc", codec_tag="hev1")) == [
        "HEVC tagged hev1 instead of hvc1 (Apple players refuse hev1)"]


def test_picture_geometry_problems_size_rate_and_scan():
    master = _info([_video(codec="prores", scan="interlaced", field_order="tt")])
    proxy = _screener(width=640, height=360)
    assert picture_geometry_problems(proxy, _video(width=640, height=360), master) == []
    assert picture_geometry_problems(proxy, _video(frame_rate=Fraction(24), scan="interlaced", field_order="tt"),
                                     master) == ["size 1920x1080 instead of 640x360",
                                                 "frame rate 24 instead of the master's 25",
                                                 "interlaced (tt) instead of progressive"]


def test_picture_format_problems_pixel_format_profile_and_colour():
    master = _info([_video(codec="prores", color_primaries="bt709", color_transfer="bt709", color_matrix="bt709",
                           color_range="tv")])
    screener = _screener(profile="high")
    good = _video(color_primaries="bt709", color_transfer="bt709", color_matrix="bt709")  # range unsignalled = tv
    assert picture_format_problems(screener, good, master) == []
    bad = _video(pix_fmt="yuv422p", profile="Main", color_primaries="bt2020", color_transfer="bt709",
                 color_matrix="bt709", color_range="pc")
    assert picture_format_problems(screener, bad, master) == ["pixel format yuv422p instead of yuv420p",
                                                              "profile Main instead of high",
                                                              "color primaries bt2020 instead of bt709",
                                                              "color range pc instead of tv"]


def test_start_timecode_problems_expect_the_master_start_plus_the_dropped_head(spec):
    master = _info(start_timecode="09:59:56:00")  # 4 s of head before the FFOA at 10:00:00:00
    screener = _screener()  # drops the head
    assert start_timecode_problems(screener, spec, _info(start_timecode="10:00:00:00"), master) == []
    assert start_timecode_problems(screener, spec, _info(start_timecode="09:59:56:00"), master) == [
        "start timecode 09:59:56:00 instead of 10:00:00:00"]
    assert start_timecode_problems(screener, spec, _info(start_timecode=None), _info()) == []  # master has none


def test_audio_track_problems_count_channels_and_sample_rate(spec):
    mono = Deliverable(id="m", kind="audio-stem", container="wav", name="{title}.wav",
                       audio=[AudioMap(from_track="main-51", codec="pcm_s24le", mono_tracks=True),
                              AudioMap(from_track="main-51", codec="pcm_s24le", downmix="2.0")])
    assert output_track_channels(mono, spec) == [[1] * 6, [2]]
    tracks = [AudioStream(index=k, codec="pcm_s24le", channels=1, sample_rate_hz=48000) for k in range(6)]
    assert audio_track_problems(mono, spec, _info(audio=[*tracks, tracks[0].model_copy(update={"channels": 2})])) == []
    assert audio_track_problems(mono, spec, _info(audio=tracks)) == ["6 audio streams instead of 7"]
    wrong = [*tracks[:5], tracks[5].model_copy(update={"sample_rate_hz": 44100}),
             tracks[0].model_copy(update={"channels": 6})]
    assert audio_track_problems(mono, spec, _info(audio=wrong)) == ["audio track 6 is 44100 Hz instead of 48000",
                                                                    "audio track 7 has 6 channels instead of 2"]


def test_duration_problems_allow_one_frame_and_one_aac_frame():
    assert duration_problems(_info(duration_s=10.0 + 0.04 + 0.03), 10.0) == []
    assert duration_problems(_info(duration_s=10.08), 10.0) == ["duration 10.080 s instead of 10.000 s"]


def test_loudness_problems_target_tolerance_and_true_peak():
    aac = AudioMap(from_track="stereo-20", codec="aac", loudness_target_lufs=-23.0, max_true_peak_dbtp=-1.0)
    pcm = AudioMap(from_track="stereo-20", codec="pcm_s24le", loudness_target_lufs=-23.0, max_true_peak_dbtp=-1.0)
    assert loudness_problems(0, aac, _loudness(-22.1, -0.5)) == []  # lossy: ±1 LU, +1 dB of peak
    assert loudness_problems(0, pcm, _loudness(-22.1, -1.5)) == [
        "audio track 1 integrated -22.1 LUFS instead of -23.0 ±0.5 LU"]
    assert loudness_problems(1, pcm, _loudness(-23.0, -0.8)) == ["audio track 2 true peak -0.80 dBTP above -1.0 dBTP"]
    assert loudness_problems(0, AudioMap(from_track="stereo-20", codec="aac"), _loudness(None)) == []  # no target


def test_downmix_clip_problems_only_for_an_uncorrected_downmix():
    loro = AudioMap(from_track="main-51", codec="aac", downmix="2.0")
    assert downmix_clip_problems(0, loro, _loudness(-20.0, sample_peak_dbfs=-3.0)) == []
    assert downmix_clip_problems(0, loro, _loudness(-20.0, sample_peak_dbfs=0.0)) == [
        "audio track 1: the 2.0 downmix clips (sample peak 0.00 dBFS); give the map loudness_target_lufs and "
        "max_true_peak_dbtp so deliver corrects it"]
    corrected = loro.model_copy(update={"loudness_target_lufs": -23.0})
    assert downmix_clip_problems(0, corrected, _loudness(-23.0, sample_peak_dbfs=0.0)) == []


def test_a_first_frame_of_action_past_the_masters_end_is_refused_before_any_encode(spec):
    from specs.errors import BadInputError
    from tasks.deliverables.shape import head_frames

    # ebu-r128's FFOA is 10:00:00:00; a 10 s master at 25 fps from 09:59:56:00 has 100 frames from 4 s of head
    start, head = head_frames(_screener(), spec, _info(start_timecode="09:59:56:00", duration_s=10.0))
    assert (str(start), head) == ("09:59:56:00", 100)
    with pytest.raises(BadInputError, match=r"first frame of action 10:00:00:00 is past the master's end "
                                            r"\(it starts at 00:59:56:00, 250 frames\)"):
        head_frames(_screener(), spec, _info(start_timecode="00:59:56:00", duration_s=10.0))
