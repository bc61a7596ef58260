"""The MXF track-file writer and reader: KLV coding, round trips, index tables, MCA labels, MediaInfo."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.errors import BadInputError, MediaError
from tasks.mxf import klv, read_track, samples_per_frame, write_picture_track, write_sound_track
from tasks.mxf.labels import KEY, UL
from tasks.mxf.writer import INDEX_SID


def test_ber_lengths_round_trip() -> None:
    for n in (0, 1, 127, 128, 65535, 1 << 23, (1 << 24) - 1):
        coded = klv.ber_length(n)
        assert len(coded) == 4 and coded[0] == 0x83
        assert klv.read_ber(coded, 0) == (n, 4)
    assert klv.read_ber(bytes([0x05]), 0) == (5, 1)  # short form
    assert klv.read_ber(bytes([0x82, 0x01, 0x00]), 0) == (256, 3)
    with pytest.raises(ValueError):
        klv.ber_length(1 << 24)


def test_local_set_and_batch_round_trip() -> None:
    coded = klv.local_set(KEY["preface"], [(0x3C0A, b"\x01" * 16), (0x3B06, klv.batch([b"\x02" * 16] * 3, 16))])
    length, start = klv.read_ber(coded, 16)
    items = klv.parse_local_set(coded[start:start + length])
    assert items[0x3C0A] == b"\x01" * 16
    assert klv.read_batch(items[0x3B06]) == [b"\x02" * 16] * 3
    assert klv.read_rational(klv.rational(Fraction(24000, 1001))) == Fraction(24000, 1001)
    assert klv.read_utf16(klv.utf16("Left Surround")) == "Left Surround"


def _pcm_frames(count: int, channels: int, spf: int = 2000, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, spf * channels * 3, dtype=np.uint8).tobytes() for _ in range(count)]


def test_picture_round_trip_streams_and_indexes_every_frame(tmp_path: Path, j2k_frames: list[bytes]) -> None:
    frames = [j2k_frames[i % len(j2k_frames)] for i in range(30)]
    asset = uuid.uuid4()
    # A generator (never a list) and a tiny index segment size, so the VBR index spans several segments.
    info = write_picture_track((f for f in frames), tmp_path / "pic.mxf", Fraction(24), 1998, 1080,
                               asset_id=asset, index_entries_per_segment=7)
    assert (info.duration, info.asset_id, info.kind) == (30, asset, "picture")
    assert info.size_bytes == (tmp_path / "pic.mxf").stat().st_size
    assert not list(tmp_path.glob("*.partial*"))
    track = read_track(tmp_path / "pic.mxf")
    assert track.kind == "picture" and track.asset_id == asset
    assert (track.edit_rate, track.duration, track.frame_count, track.index_duration) == (Fraction(24), 30, 30, 30)
    assert track.stored_size == (1998, 1080)
    assert track.operational_pattern == UL["op_atom"]
    assert track.essence_container == UL["jp2k_frame_wrapped"]
    assert track.descriptor.kind == "rgba_descriptor"
    assert track.descriptor.get("PictureEssenceCoding") == UL["jp2k_2k"]
    assert track.descriptor.uint("ComponentMaxRef") == 4095
    assert [s.kind for s in track.subdescriptors] == ["jp2k_subdescriptor"]
    sub = track.subdescriptors[0]
    assert (sub.uint("Xsize"), sub.uint("Ysize"), sub.uint("Csize"), sub.uint("Rsize")) == (1998, 1080, 3, 3)
    assert [p.kind for p in track.partitions] == ["header", "body", "footer"]
    assert track.partitions[-1].index_sid == INDEX_SID and track.has_rip
    assert list(track.iter_frames()) == frames
    assert track.frame(17) == frames[17]
    # Stream offsets: each is the previous plus the previous frame's KLV (16-byte key, 4-byte length).
    expected = np.cumsum([0] + [len(f) + 20 for f in frames[:-1]]).tolist()
    assert track.index_entries == expected


def test_sound_round_trip_with_mca_labels(tmp_path: Path) -> None:
    frames = _pcm_frames(25, 6)
    info = write_sound_track(iter(frames), tmp_path / "snd.mxf", Fraction(24), "5.1", language="en")
    track = read_track(tmp_path / "snd.mxf")
    assert (info.duration, info.channel_count, info.sample_rate) == (25, 6, 48000)
    assert track.kind == "sound" and track.asset_id == info.asset_id
    assert (track.channel_count, track.quantization_bits, track.audio_sample_rate) == (6, 24, Fraction(48000))
    assert track.descriptor.get("ChannelAssignment") == UL["dc_audio_cfg_mca"]
    assert track.index_edit_unit_bytes == 2000 * 6 * 3 + 20 and track.index_duration == 25
    assert track.mca_labels() == [("soundfield_group_label", "sg51")] + [
        ("audio_channel_label", f"ch{c}") for c in ("L", "R", "C", "LFE", "Ls", "Rs")]
    group = track.subdescriptors[0].get("MCALinkID")
    assert all(s.get("SoundfieldGroupLinkID") == group for s in track.subdescriptors[1:])
    assert [s.uint("MCAChannelID") for s in track.subdescriptors[1:]] == [1, 2, 3, 4, 5, 6]
    assert list(track.iter_frames()) == frames


def test_sound_from_wav_pads_the_last_frame_and_keeps_samples(tmp_path: Path) -> None:
    rate, channels = Fraction(25), 8
    spf = samples_per_frame(rate)
    assert spf == 1920
    samples = 1920 * 3 + 500  # 3 whole frames and a partial one
    rng = np.random.default_rng(1)
    pcm = rng.integers(-(1 << 23), 1 << 23, (samples, channels), dtype=np.int32)
    wav = tmp_path / "mix.wav"
    sf.write(wav, pcm << 8, 48000, subtype="PCM_24")
    info = write_sound_track(wav, tmp_path / "snd71.mxf", rate, "7.1")
    track = read_track(tmp_path / "snd71.mxf")
    assert info.duration == 4 and track.frame_count == 4
    assert [s for _k, s in track.mca_labels()][0] == "sg71"
    raw = b"".join(track.iter_frames())
    as_int = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
    values = (as_int[:, 0] | (as_int[:, 1] << 8) | (as_int[:, 2] << 16))
    values = np.where(values >= 1 << 23, values - (1 << 24), values).reshape(-1, channels)
    assert np.array_equal(values[:samples], pcm)
    assert not values[samples:].any()  # the padding is silence


def test_bad_input_is_refused_and_nothing_is_published(tmp_path: Path, j2k_frames: list[bytes]) -> None:
    out = tmp_path / "bad.mxf"
    with pytest.raises(MediaError, match="sound frame 1"):
        write_sound_track(iter([bytes(36000), bytes(10)]), out, Fraction(24), "5.1")
    with pytest.raises(MediaError, match="frame 2 is not a JPEG 2000"):
        write_picture_track(iter([j2k_frames[0], j2k_frames[1], b"not j2k"]), out, Fraction(24), 1998, 1080)
    with pytest.raises(MediaError, match="1998x1080, the track is 2048x858"):
        write_picture_track(iter(j2k_frames), out, Fraction(24), 2048, 858)
    with pytest.raises(MediaError, match="no picture frames"):
        write_picture_track(iter([]), out, Fraction(24), 1998, 1080)
    with pytest.raises(BadInputError, match="whole"):
        write_sound_track(iter([]), out, Fraction(30000, 1001), "5.1")
    with pytest.raises(BadInputError, match="MCA"):
        write_sound_track(iter([]), out, Fraction(24), "2.0")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not shutil.which("mediainfo"), reason="mediainfo not installed (Debian mediainfo)")
def test_mediainfo_identifies_dcp_track_files(tmp_path: Path, j2k_frames: list[bytes]) -> None:
    write_picture_track(iter(j2k_frames * 12), tmp_path / "pic.mxf", Fraction(24), 1998, 1080)
    write_sound_track(iter(_pcm_frames(48, 6)), tmp_path / "snd.mxf", Fraction(24), "5.1")

    def tracks(path: Path) -> list[dict[str, str]]:
        out = subprocess.run(["mediainfo", "--Output=JSON", str(path)], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)["media"]["track"]

    general, video = tracks(tmp_path / "pic.mxf")[:2]
    assert general["Format"] == "MXF" and general["Format_Profile"] == "OP-Atom"
    assert video["Format"] == "JPEG 2000" and video["Format_Profile"] == "D-Cinema 2k"
    assert (video["Width"], video["Height"], video["ColorSpace"], video["BitDepth"]) == ("1998", "1080", "XYZ", "12")
    assert float(video["Duration"]) == pytest.approx(2.0, abs=0.001) and video["FrameCount"] == "48"
    audio = [t for t in tracks(tmp_path / "snd.mxf") if t["@type"] == "Audio"][0]
    assert (audio["Format"], audio["BitDepth"], audio["SamplingRate"], audio["Channels"]) == ("PCM", "24", "48000", "6")
    assert audio["ChannelLayout"] == "L R C LFE Ls Rs"
    assert float(audio["Duration"]) == pytest.approx(2.0, abs=0.001)


def test_reader_keeps_only_its_tracks_essence_when_elements_are_interleaved(tmp_path: Path,
                                                                            j2k_frames: list[bytes]) -> None:
    """An OP1a file (ST 2067-5) may interleave other elements; the reader lists the descriptor's track only."""
    from tasks.mxf.labels import WAVE_ELEMENT_KEY

    path = tmp_path / "pic.mxf"
    write_picture_track(iter(j2k_frames), path, Fraction(24), 1998, 1080)
    track = read_track(path)
    at = track.essence[1].offset
    data = path.read_bytes()
    path.write_bytes(data[:at] + klv.klv(WAVE_ELEMENT_KEY, bytes(36000)) + data[at:])
    again = read_track(path)
    assert again.frame_count == 4 and list(again.iter_frames()) == j2k_frames


def test_reader_refuses_what_is_not_a_whole_track_file(tmp_path: Path, j2k_frames: list[bytes]) -> None:
    junk = tmp_path / "junk.mxf"
    junk.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(MediaError, match="not an MXF file"):
        read_track(junk)
    path = tmp_path / "pic.mxf"
    write_picture_track(iter(j2k_frames), path, Fraction(24), 1998, 1080)
    cut = read_track(path).essence[2]
    path.write_bytes(path.read_bytes()[:cut.value_offset + 10])  # a copy that stopped mid-frame
    with pytest.raises(MediaError, match="truncated"):
        read_track(path)


def test_sound_reels_cut_from_one_wav(tmp_path: Path) -> None:
    """Split reels: each sound track file takes its edit units from the one mix, contiguous and exact."""
    rng = np.random.default_rng(2)
    pcm = rng.integers(-(1 << 23), 1 << 23, (2000 * 10, 6), dtype=np.int32)
    wav = tmp_path / "mix.wav"
    sf.write(wav, pcm << 8, 48000, subtype="PCM_24")
    first = write_sound_track(wav, tmp_path / "r1.mxf", Fraction(24), "5.1", frame_count=4)
    second = write_sound_track(wav, tmp_path / "r2.mxf", Fraction(24), "5.1", start_frame=4, frame_count=6)
    assert (first.duration, second.duration) == (4, 6)
    joined = b"".join(read_track(tmp_path / "r1.mxf").iter_frames()) + b"".join(
        read_track(tmp_path / "r2.mxf").iter_frames())
    write_sound_track(wav, tmp_path / "whole.mxf", Fraction(24), "5.1")
    whole = b"".join(read_track(tmp_path / "whole.mxf").iter_frames())
    assert joined == whole and len(whole) == 10 * 2000 * 6 * 3
    with pytest.raises(MediaError, match="ends after 10 frames; the reel needs 12"):
        write_sound_track(wav, tmp_path / "r3.mxf", Fraction(24), "5.1", start_frame=8, frame_count=4)
    assert not (tmp_path / "r3.mxf").exists()


def test_reader_reads_files_another_writer_made(tmp_path: Path) -> None:
    """ffmpeg's MXF muxers: OP1a frame-wrapped and OP-Atom clip-wrapped JPEG 2000 give the same frames;
    OP-Atom PCM (one CBR clip, an edit unit per sample) is sliced by its index without listing every unit."""
    def ffmpeg(*args: str) -> None:
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)

    src = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=24", "-frames:v", "10", "-c:v", "jpeg2000",
           "-pix_fmt", "yuv444p"]
    ffmpeg(*src, "-f", "mxf", str(tmp_path / "op1a.mxf"))
    ffmpeg(*src, "-f", "mxf_opatom", str(tmp_path / "atom.mxf"))
    op1a, atom = read_track(tmp_path / "op1a.mxf"), read_track(tmp_path / "atom.mxf")
    assert (op1a.kind, op1a.frame_count, op1a.clip_wrapped, op1a.stored_size) == ("picture", 10, False, (320, 240))
    assert (atom.frame_count, atom.clip_wrapped, atom.duration) == (10, True, 10)
    assert list(op1a.iter_frames()) == list(atom.iter_frames())
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=1", "-c:a", "pcm_s24le",
           "-f", "mxf_opatom", "-mxf_audio_edit_rate", "25", str(tmp_path / "snd.mxf"))
    snd = read_track(tmp_path / "snd.mxf")
    assert (snd.kind, snd.channel_count, snd.quantization_bits, snd.clip_wrapped) == ("sound", 1, 24, True)
    assert snd.frame_count == 48000 and not isinstance(snd.edit_units, list)
    pcm = b"".join(snd.iter_frames())
    assert len(pcm) == 48000 * 3 and snd.frame(47999) == pcm[-3:]
