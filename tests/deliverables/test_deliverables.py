"""Deliverables from one decode: both built-in specs, burn-in, downmix, loudness correction, resume, no overwrite."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from specs.errors import BadInputError, FFmpegError, VerificationError
from specs.loader import load_spec
from specs.model import AudioMap, Deliverable
from tasks.audio.loudness import measure_file
from tasks.deliverables.make import transcode_all
from tasks.deliverables.naming import RunFields, language_tag
from tasks.deliverables.verify import verify_deliverable
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, make_sample_set
from tests.deliverables.helpers import FIELDS, SR, H, W, gray_frame, level_db, married, read_track, tones, write_bwf


@pytest.mark.parametrize("which", ["ebu", "netflix"])
def test_every_deliverable_of_the_builtin_spec_is_made_and_verified(which, request, tmp_path):
    spec, master = request.getfixturevalue(which)
    result = transcode_all(spec.deliverables, spec, master, tmp_path / "pkg", fields=FIELDS,
                           extras_dir=tmp_path / "pkg" / "extras", thumbnails=3)
    assert [r.id for r in result.deliverables] == [d.id for d in spec.deliverables]
    assert result.ffmpeg_runs == 1  # one decode for every deliverable
    for r, d in zip(result.deliverables, spec.deliverables, strict=True):
        assert Path(r.path).is_file() and Path(r.path).parent == tmp_path / "pkg"
        assert "full decode clean" in r.checks
        info = probe(r.path)
        assert len(info.audio) == len(d.audio)
    assert len(result.extras) == 4
    assert [probe(p).primary_video.width for p in result.extras] == [W, W, W, W]
    assert not list((tmp_path / "pkg").rglob("*.partial*"))
    names = {Path(r.path).name for r in result.deliverables}
    assert "FILM_v2_screener.mp4" in names or "FILM_v2_viewing-copy.mp4" in names


@pytest.mark.parametrize("name", ["amazon", "apple", "atsc-a85", "demo", "youtube"])
def test_every_deliverable_of_the_other_builtin_specs_is_made_and_verified(name, tmp_path):
    """At each spec's own first frame rate (29.97 drop-frame for A/85) and FFOA; the AVC-Intra MXF specs
    (ard-zdf, dpp-as11) need a 1080 master: tests/deliverables/test_broadcast.py."""
    spec = load_spec(name)
    ffoa = spec.timing.ffoa_timecode or "01:00:00:00"
    rate = spec.picture.frame_rates[0] if spec.picture.frame_rates else 25
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode=ffoa, head_s=4, programme_s=2, rate=rate))
    master = married(media.master, list(media.mixes.values()), spec, tmp_path / "layback.mov")
    result = transcode_all(spec.deliverables, spec, master, tmp_path / "pkg", fields=FIELDS)
    assert [r.id for r in result.deliverables] == [d.id for d in spec.deliverables]
    for r, d in zip(result.deliverables, spec.deliverables, strict=True):
        assert "full decode clean" in r.checks, (d.id, r.checks)
        # The whole master (head included) when the deliverable keeps it or the spec names no FFOA.
        want_s = master.duration_s if d.include_head or not spec.timing.ffoa_timecode else 2.0
        assert r.duration_s == pytest.approx(want_s, abs=0.05), d.id


def test_ebu_screener_burn_in_is_visible_and_mezzanine_starts_at_its_timecode(ebu, tmp_path):
    spec, master = ebu
    result = {r.id: r for r in transcode_all(spec.deliverables, spec, master, tmp_path, fields=FIELDS).deliverables}
    mezz, screener = result["mezzanine"].path, result["viewing-copy"].path
    assert probe(mezz).start_timecode == "09:59:56:00"  # include_head: the broadcast mezzanine keeps the head
    assert probe(screener).start_timecode == "10:00:00:00"  # the screener starts at FFOA
    assert result["viewing-copy"].duration_s == pytest.approx(2.0, abs=0.05)
    a, b = gray_frame(mezz, 4.5), gray_frame(screener, 0.5)  # the same programme frame
    box = (slice(int(H * 0.86), int(H * 0.94)), slice(int(W * 0.35), int(W * 0.65)))
    top = slice(int(H * 0.1), int(H * 0.6))
    assert np.mean(np.abs(a[box] - b[box])) > 25  # the timecode box and digits
    assert np.mean(np.abs(a[top] - b[top])) < 3  # the rest of the picture is untouched
    stem = probe(result["stereo-stem"].path)
    assert stem.bwf_time_reference_samples == 10 * 3600 * SR  # BWF time reference = FFOA


def test_netflix_screener_carries_the_recipient_watermark(netflix, tmp_path):
    spec, master = netflix
    plain = RunFields(title="FILM", version="v2", date="2031-01-02")
    screener = next(d for d in spec.deliverables if d.id == "screener")
    with_mark = transcode_all([screener], spec, master, tmp_path / "a", fields=FIELDS).deliverables[0].path
    no_recipient = transcode_all([screener], spec, master, tmp_path / "b", fields=plain).deliverables[0].path
    a, b = gray_frame(with_mark, 5.0), gray_frame(no_recipient, 5.0)
    line = (slice(int(H * 0.6), int(H * 0.66)), slice(int(W * 0.3), int(W * 0.7)))  # recipient and date
    print(np.mean(np.abs(a[line] - b[line])))
    assert np.mean(np.abs(a[line] - b[line])) > 4
    assert np.mean(np.abs(a[: int(H * 0.3)] - b[: int(H * 0.3)])) < 2


def test_lo_ro_downmix_puts_centre_into_left_and_right_at_minus_3_db(tmp_path):
    spec = load_spec("demo")
    media = make_sample_set(tmp_path / "media", layout="2.0", master=MasterSpec(head_s=4, programme_s=2))
    n = int(media.master_manifest.duration_s * SR)
    tref = round(media.master_manifest.start_seconds * SR)
    x = np.zeros((n, 6))
    x[:, 2] = tones(("C",), n)[:, 0]  # a tone in C only
    mix51 = write_bwf(tmp_path / "c_only.wav", x, tref)
    master = married(media.master, [mix51, media.mixes["2.0"]], spec, tmp_path / "lb.mov")
    loro = Deliverable(id="loro", kind="downmix", container="wav", name="{title}_{id}.wav",
                       audio=[AudioMap(from_track="main-51", codec="pcm_s24le", downmix="2.0")])
    out = Path(transcode_all([loro], spec, master, tmp_path / "pkg", fields=FIELDS).deliverables[0].path)
    y = read_track(out, 0, start_s=0.5, duration_s=1.0)
    c = tones(("C",), SR)[:, 0]
    assert y.shape[1] == 2
    for ch in (0, 1):
        assert level_db(y[:, ch]) - level_db(c) == pytest.approx(-3.01, abs=0.05)


def test_lo_ro_downmix_that_clips_fails_verification_unless_corrected(tmp_path):
    spec = load_spec("demo")
    media = make_sample_set(tmp_path / "media", layout="2.0", master=MasterSpec(head_s=4, programme_s=2))
    n = int(media.master_manifest.duration_s * SR)
    x = np.zeros((n, 6))
    for ch in (0, 2, 4):  # L, C, Ls at -3 dBFS: Lo = 0.71 x (1 + 0.71 + 0.71) = 1.7 = +4.6 dBFS
        x[:, ch] = tones(("C",), n, level_dbfs=-3.0)[:, 0]
    hot = write_bwf(tmp_path / "hot.wav", x, round(media.master_manifest.start_seconds * SR))
    master = married(media.master, [hot, media.mixes["2.0"]], spec, tmp_path / "lb.mov")
    loro = Deliverable(id="loro", kind="downmix", container="wav", name="{title}_{id}.wav",
                       audio=[AudioMap(from_track="main-51", codec="pcm_s24le", downmix="2.0")])
    with pytest.raises(VerificationError, match=r"the 2.0 downmix clips \(sample peak -?0.00 dBFS\)"):
        transcode_all([loro], spec, master, tmp_path / "a", fields=FIELDS)
    assert not (tmp_path / "a" / "FILM_loro.wav").exists()
    fixed = loro.model_copy(update={"audio": [loro.audio[0].model_copy(
        update={"loudness_target_lufs": -23.0, "max_true_peak_dbtp": -1.0})]})
    made = transcode_all([fixed], spec, master, tmp_path / "b", fields=FIELDS).deliverables[0]
    assert measure_file(made.path).true_peak_dbtp <= -0.9


def test_loudness_corrected_audio_deliverable_hits_its_target(ebu, tmp_path):
    spec, master = ebu
    d = Deliverable(id="loro-r128", kind="downmix", container="wav", name="{title}_{version}_{id}.wav",
                    audio=[AudioMap(from_track="main-51", codec="pcm_s24le", downmix="2.0", loudness_target_lufs=-23.0,
                                    max_true_peak_dbtp=-1.0)])
    result = transcode_all([d], spec, master, tmp_path, fields=FIELDS).deliverables[0]
    assert any("LUFS (target -23.0)" in c for c in result.checks)
    measured = measure_file(result.path)
    assert measured.integrated_lufs == pytest.approx(-23.0, abs=0.3)
    assert measured.true_peak_dbtp <= -0.9


def test_rerun_resumes_without_redoing_finished_deliverables(ebu, tmp_path):
    spec, master = ebu
    first = transcode_all(spec.deliverables, spec, master, tmp_path, fields=FIELDS)
    mtimes = {r.id: os.stat(r.path).st_mtime_ns for r in first.deliverables}
    again = transcode_all(spec.deliverables, spec, master, tmp_path, fields=FIELDS)
    assert again.ffmpeg_runs == 0 and all(r.reused for r in again.deliverables)
    assert {r.id: os.stat(r.path).st_mtime_ns for r in again.deliverables} == mtimes
    Path(first.deliverables[1].path).unlink()  # as if the run had stopped before this one
    third = transcode_all(spec.deliverables, spec, master, tmp_path, fields=FIELDS)
    assert [r.reused for r in third.deliverables] == [True, False, True]
    assert Path(first.deliverables[1].path).is_file()


def test_existing_file_that_does_not_verify_is_never_overwritten(ebu, tmp_path):
    spec, master = ebu
    junk = tmp_path / "FILM_v2_viewing-copy.mp4"
    junk.write_bytes(b"not a movie")
    with pytest.raises(BadInputError, match="never overwritten"):
        transcode_all(spec.deliverables, spec, master, tmp_path, fields=FIELDS)
    assert junk.read_bytes() == b"not a movie"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILM_v2_viewing-copy.mp4"]


def test_failed_run_leaves_no_partial_file(ebu, tmp_path):
    spec, master = ebu
    broken = Deliverable(id="broken", kind="screener", container="mp4", name="{title}_{id}.mp4",
                         video={"codec": "no_such_encoder"}, audio=[AudioMap(from_track="stereo-20", codec="aac")])
    with pytest.raises(FFmpegError):
        transcode_all([spec.deliverables[0], broken], spec, master, tmp_path, fields=FIELDS)
    assert list(tmp_path.iterdir()) == []


def test_language_fills_lang_in_names(ebu, tmp_path):
    spec, master = ebu
    d = Deliverable(id="stem", kind="audio-stem", container="wav", name="{title}_{version}_{lang}_{id}.wav",
                    audio=[AudioMap(from_track="stereo-20", codec="pcm_s24le")])
    made = transcode_all([d], spec, master, tmp_path, fields=FIELDS.model_copy(update={"lang": "de-AT"}))
    assert Path(made.deliverables[0].path).name == "FILM_v2_de-AT_stem.wav"
    with pytest.raises(BadInputError, match="not a language tag"):
        language_tag("../x")


def test_watermark_naming_the_recipient_needs_one(ebu, tmp_path):
    spec, master = ebu
    d = Deliverable(id="s", kind="screener", container="mp4", name="{title}_{id}.mp4",
                    video={"codec": "libx264", "pix_fmt": "yuv420p", "crf": 30},
                    audio=[AudioMap(from_track="stereo-20", codec="aac")],
                    watermark={"text": "FOR {recipient} ONLY"})
    with pytest.raises(BadInputError, match="--recipient"):
        transcode_all([d], spec, master, tmp_path, fields=RunFields(title="FILM"))


def test_hevc_screener_is_tagged_hvc1_with_burned_in_timecode(ebu, tmp_path):
    spec, master = ebu
    d = Deliverable(id="hevc", kind="screener", container="mp4", name="{title}_{id}.mp4",
                    video={"codec": "libx265", "profile": "main10", "pix_fmt": "yuv420p10le", "crf": 28},
                    audio=[AudioMap(from_track="stereo-20", codec="aac")], burn_in={"timecode": True})
    r = transcode_all([d], spec, master, tmp_path, fields=FIELDS).deliverables[0]
    info = probe(r.path)
    v = info.primary_video
    assert (v.codec, v.codec_tag, v.profile, v.pix_fmt) == ("hevc", "hvc1", "Main 10", "yuv420p10le")
    assert (v.color_primaries, v.color_transfer, v.color_matrix) == ("bt709", "bt709", "bt709")
    assert info.start_timecode == "10:00:00:00" and r.duration_s == pytest.approx(2.0, abs=0.05)
    assert "full decode clean" in r.checks
    mezz = transcode_all([spec.deliverables[0]], spec, master, tmp_path / "m", fields=FIELDS).deliverables[0].path
    box = (slice(int(H * 0.86), int(H * 0.94)), slice(int(W * 0.35), int(W * 0.65)))
    assert np.mean(np.abs(gray_frame(mezz, 4.5)[box] - gray_frame(r.path, 0.5)[box])) > 25  # the timecode burn-in


@pytest.mark.parametrize(("change", "message"), [
    ({"pix_fmt": "yuv422p10le"}, "pixel format yuv420p instead of yuv422p10le"),
    ({"profile": "main"}, "profile High instead of main"),
])
def test_verification_rejects_a_picture_format_the_deliverable_does_not_ask_for(ebu, tmp_path, change, message):
    spec, master = ebu
    screener = next(d for d in spec.deliverables if d.id == "viewing-copy")
    path = transcode_all([screener], spec, master, tmp_path, fields=FIELDS).deliverables[0].path
    other = screener.model_copy(update={"video": screener.video.model_copy(update=change)})
    with pytest.raises(VerificationError, match=message):
        verify_deliverable(other, spec, path, 2.0, master=master)


def test_verification_rejects_a_deliverable_that_starts_at_the_wrong_timecode(ebu, tmp_path):
    spec, master = ebu
    screener = next(d for d in spec.deliverables if d.id == "viewing-copy")
    path = transcode_all([screener], spec, master, tmp_path, fields=FIELDS).deliverables[0].path
    with_head = screener.model_copy(update={"include_head": True})  # should start 4 s earlier, at 09:59:56:00
    with pytest.raises(VerificationError, match="start timecode 10:00:00:00 instead of 09:59:56:00"):
        verify_deliverable(with_head, spec, path, 2.0, master=master)
