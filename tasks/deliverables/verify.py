"""Verification of a written deliverable against its own deliverable spec, one function per aspect.

Each ``*_problems`` function checks one aspect and returns its problems (empty when it conforms);
:func:`verify_deliverable` probes the file, composes them, measures loudness where the deliverable asks
for it (ITU-R BS.1770-4 integrated loudness and true peak) and fully decodes it.
"""

from __future__ import annotations

from pathlib import Path

from specs.errors import VerificationError
from specs.model import AVC_INTRA_PROFILE, AudioMap, Deliverable, Spec
from specs.timecode import Timecode
from tasks.audio.loudness import LoudnessResult, measure_media
from tasks.deliverables.shape import head_frames, keeps_fields, map_channels, out_colour
from tasks.media.ffmpeg import run_ffmpeg, run_ffprobe_json
from tasks.media.probe import MediaInfo, VideoStream, colour_tag, probe

__all__ = ["verify_deliverable", "stream_problems", "picture_geometry_problems", "picture_format_problems",
           "container_colour_problems", "start_timecode_problems", "audio_track_problems", "duration_problems",
           "loudness_problems",
           "downmix_clip_problems", "decode_problems", "output_track_channels"]

_CLIP_DBFS = -0.01  # a downmix sample this close to full scale was clipped when summed
_AAC_TOLERANCE_LU = 1.0  # a lossy encode moves integrated loudness by a few tenths of a LU
_PCM_TOLERANCE_LU = 0.5


def _norm_profile(name: str) -> str:
    """``High 4:2:2`` -> ``high422``, ``4444 XQ`` -> ``4444xq``: ffprobe's and the spec's spellings compared."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def stream_problems(d: Deliverable, vs: VideoStream) -> list[str]:
    """Video codec of a written picture deliverable, and HEVC tagged ``hvc1`` in MOV/MP4 (the ISO/IEC 14496-15
    sample entry Apple players require)."""
    assert d.video is not None
    problems = []
    want_codec = {"prores_ks": "prores", "prores_aw": "prores", "libx264": "h264",
                  "libx265": "hevc"}.get(d.video.codec, d.video.codec)
    if vs.codec != want_codec:
        problems.append(f"video codec {vs.codec} instead of {want_codec}")
    if vs.codec == "hevc" and d.container in ("mov", "mp4") and vs.codec_tag != "hvc1":
        problems.append(f"HEVC tagged {vs.codec_tag} instead of hvc1 (Apple players refuse hev1)")
    return problems


def picture_geometry_problems(d: Deliverable, vs: VideoStream, master: MediaInfo | None) -> list[str]:
    """Picture size (the deliverable's), frame rate (the master's) and scan and field order: an interlaced master
    stays interlaced with its field order only in a mezzanine at its own size, everything else is progressive."""
    assert d.video is not None
    problems = []
    mv = master.primary_video if master else None
    if d.video.width and d.video.height and (vs.width, vs.height) != (d.video.width, d.video.height):
        problems.append(f"size {vs.width}x{vs.height} instead of {d.video.width}x{d.video.height}")
    if mv is not None and vs.frame_rate != mv.frame_rate:
        problems.append(f"frame rate {vs.frame_rate} instead of the master's {mv.frame_rate}")
    if master is not None and mv is not None and mv.scan == "interlaced":
        want_scan = "interlaced" if keeps_fields(d, master) else "progressive"
        if vs.scan != want_scan or (want_scan == "interlaced" and vs.field_order != (mv.field_order or "tt")):
            problems.append(f"{vs.scan} ({vs.field_order}) instead of {want_scan}"
                            + (f" ({mv.field_order})" if want_scan == "interlaced" else ""))
    return problems


_COLOUR_NAMES = ("color_primaries", "color_transfer", "color_matrix", "color_range")
_FFPROBE_COLOUR = ("color_primaries", "color_transfer", "color_space", "color_range")


def picture_format_problems(d: Deliverable, vs: VideoStream, master: MediaInfo | None,
                            spec: Spec | None = None) -> list[str]:
    """Pixel format, codec profile and colour description of a written picture deliverable as its decoder reads it
    (ProRes frame header, H.264/HEVC VUI): the spec's where the master is untagged or converted, else the
    master's, BT.709 when tone-mapped to SDR (``out_colour``). A tag that is missing or different is a problem."""
    assert d.video is not None
    enc = d.video
    problems = []
    if enc.pix_fmt and vs.pix_fmt != enc.pix_fmt:
        problems.append(f"pixel format {vs.pix_fmt} instead of {enc.pix_fmt}")
    want_profile = ((enc.profile or "hq") if enc.codec == "prores_ks" else
                    AVC_INTRA_PROFILE[enc.avc_intra_class] if enc.avc_intra_class else enc.profile)
    if want_profile and vs.profile and _norm_profile(vs.profile) != _norm_profile(want_profile):
        problems.append(f"profile {vs.profile} instead of {want_profile}")
    if master is not None and master.primary_video is not None:
        for what, want in zip(_COLOUR_NAMES, out_colour(d, spec, master), strict=True):
            got = colour_tag(getattr(vs, what))
            if what == "color_range" and got is None:
                got = "tv"  # unsignalled range is limited (H.264/HEVC VUI default; x264 omits it without a matrix)
            if want and got != want:
                problems.append(f"{what.replace('_', ' ')} {got or 'missing'} instead of {want}")
    return problems


def container_colour_problems(d: Deliverable, path: str | Path, master: MediaInfo | None,
                              spec: Spec | None = None) -> list[str]:
    """Colour description the container itself carries: the MOV/MP4 ``colr`` atom (QuickTime File Format
    'colr' nclc; ISO/IEC 14496-12 §12.1.5 nclx) or the MXF picture descriptor (SMPTE ST 377-1 Annex G), read
    without decoding (``-nofind_stream_info``), against what the deliverable should carry. Players and
    distributors' checkers (MediaInfo among them) read the container first. A ``nclc`` atom has no range
    field, so a range the container does not state is not a problem here (the bitstream check covers it)."""
    if d.video is None or d.container not in ("mov", "mp4", "mxf") or master is None or master.primary_video is None:
        return []
    wanted = out_colour(d, spec, master)
    if not any(wanted):
        return []
    doc = run_ffprobe_json(["-nofind_stream_info", "-select_streams", "v:0", "-show_entries",
                            "stream=" + ",".join(_FFPROBE_COLOUR), str(path)])
    stream = (doc.get("streams") or [{}])[0]
    where = {"mxf": "MXF descriptor"}.get(d.container, "colr atom")
    problems = []
    for what, key, want in zip(_COLOUR_NAMES, _FFPROBE_COLOUR, wanted, strict=True):
        got = colour_tag(stream.get(key))
        if want and got != want and not (what == "color_range" and got is None):
            problems.append(f"{where} {what.replace('_', ' ')} {got or 'missing'} instead of {want}")
    return problems


def _expected_start(d: Deliverable, spec: Spec, master: MediaInfo | None) -> Timecode | None:
    """The master's start timecode plus the head ``d`` drops (None when the master carries no timecode)."""
    if master is None or master.primary_video is None or not master.start_timecode:
        return None
    start, head = head_frames(d, spec, master)
    return start + head


def start_timecode_problems(d: Deliverable, spec: Spec, info: MediaInfo, master: MediaInfo | None) -> list[str]:
    """Start timecode (SMPTE ST 12-1) of a picture deliverable: the master's plus the head it drops."""
    expected_tc = _expected_start(d, spec, master)
    if d.container != "wav" and expected_tc is not None and info.start_timecode != str(expected_tc):
        return [f"start timecode {info.start_timecode} instead of {expected_tc}"]
    return []


def output_track_channels(d: Deliverable, spec: Spec) -> list[list[int]]:
    """Channels of each output track, per audio map: ``[n]``, or ``[1] * n`` for a map split into mono tracks
    (``n`` is 2 for a downmix, else the spec track's channel count)."""
    map_tracks: list[list[int]] = []
    for i, amap in enumerate(d.audio):
        n = map_channels(d, i, spec)
        map_tracks.append([1] * n if amap.mono_tracks else [n])
    return map_tracks


def audio_track_problems(d: Deliverable, spec: Spec, info: MediaInfo) -> list[str]:
    """Audio track count, channels per track and sample rate (the spec's)."""
    want_channels = [c for tracks in output_track_channels(d, spec) for c in tracks]
    if len(info.audio) != len(want_channels):
        return [f"{len(info.audio)} audio streams instead of {len(want_channels)}"]
    problems = []
    for i, (want, a) in enumerate(zip(want_channels, info.audio, strict=True)):
        if a.channels != want:
            problems.append(f"audio track {i + 1} has {a.channels} channels instead of {want}")
        if a.sample_rate_hz != spec.audio.sample_rate_hz:
            problems.append(f"audio track {i + 1} is {a.sample_rate_hz} Hz instead of {spec.audio.sample_rate_hz}")
    return problems


def duration_problems(info: MediaInfo, expected_s: float) -> list[str]:
    """Duration equal to the master's programme within one frame (plus one AAC frame of priming/padding)."""
    tol_s = 1.0 / float(info.primary_video.frame_rate) if info.primary_video else 1.0 / 25
    got_s = info.duration_s or 0.0
    if abs(got_s - expected_s) > tol_s + 0.03:  # + one AAC frame of priming/padding
        return [f"duration {got_s:.3f} s instead of {expected_s:.3f} s"]
    return []


def downmix_clip_problems(i: int, amap: AudioMap, result: LoudnessResult) -> list[str]:
    """A downmix without a loudness target must not clip: BS.775 Lo/Ro sums up to three channels, so a mix
    legal in 5.1 can clip in 2.0. ``result`` is the map's first output track measured."""
    if amap.loudness_target_lufs is None and amap.downmix and result.sample_peak_dbfs is not None \
            and result.sample_peak_dbfs >= _CLIP_DBFS:
        return [f"audio track {i + 1}: the {amap.downmix} downmix clips (sample peak "
                f"{result.sample_peak_dbfs:.2f} dBFS); give the map loudness_target_lufs and "
                "max_true_peak_dbtp so deliver corrects it"]
    return []


def loudness_problems(i: int, amap: AudioMap, result: LoudnessResult) -> list[str]:
    """Integrated loudness within tolerance of the map's target and true peak under its ceiling (ITU-R BS.1770-4;
    a lossy encode is allowed more of both). ``result`` is the map's first output track measured."""
    if amap.loudness_target_lufs is None:
        return []
    tol = _PCM_TOLERANCE_LU if amap.codec.startswith("pcm") else _AAC_TOLERANCE_LU
    got = result.integrated_lufs
    if got is None or abs(got - amap.loudness_target_lufs) > tol:
        return [f"audio track {i + 1} integrated {got} LUFS instead of {amap.loudness_target_lufs} ±{tol} LU"]
    if amap.max_true_peak_dbtp is not None and result.true_peak_dbtp is not None and \
            result.true_peak_dbtp > amap.max_true_peak_dbtp + (0.1 if amap.codec.startswith("pcm") else 1.0):
        return [f"audio track {i + 1} true peak {result.true_peak_dbtp:.2f} dBTP above {amap.max_true_peak_dbtp} dBTP"]
    return []


def decode_problems(d: Deliverable, path: str | Path) -> list[str]:
    """A full decode: catches truncated or corrupt essence that probing cannot see."""
    result = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
                        what=f"verification decode of {d.id}")
    if result.stderr_tail.strip():
        return [f"decode errors: {result.stderr_tail.splitlines()[-1]}"]
    return []


def verify_deliverable(d: Deliverable, spec: Spec, path: str | Path, expected_s: float, *,
                       master: MediaInfo | None = None) -> tuple[MediaInfo, list[str]]:
    """Probe, measure and fully decode a written deliverable against its own spec.

    Checks: video codec, profile, pixel format, size, frame rate and colour description in the bitstream
    and in the container (the spec's where the master is untagged or converted, else the master's, BT.709
    when tone-mapped to SDR; a missing or different tag fails); scan and field order; start timecode (the master's,
    plus the head the deliverable drops); HEVC tagged hvc1 in MOV/MP4; audio track count, channels
    per track (2 for a downmix, 1 for mono tracks), sample rate; duration equal to the master's
    programme within one frame; integrated loudness and true peak where the deliverable sets a
    target, no clipping in an uncorrected downmix; a clean full decode. Returns the probe and what
    verification confirmed.

    Raises:
        VerificationError: any mismatch (the caller deletes the file; it never gets a final name).
    """
    info = probe(path, what=f"deliverable {d.id}")
    problems: list[str] = []
    checks: list[str] = []
    if d.video is not None:
        vs = info.primary_video
        if vs is None:
            problems.append("no video stream")
        else:
            problems += stream_problems(d, vs)
            problems += picture_geometry_problems(d, vs, master)
            fmt = picture_format_problems(d, vs, master, spec)
            box = container_colour_problems(d, path, master, spec)
            problems += fmt + box
            tags = out_colour(d, spec, master) if master is not None and master.primary_video is not None else ()
            if any(tags) and not box and not any(p.startswith("color ") for p in fmt):
                checks.append("colour " + "/".join(t or "-" for t in tags) + " in the bitstream and the container")
            problems += start_timecode_problems(d, spec, info, master)
            checks.append(f"video {vs.codec} {vs.profile or ''} {vs.pix_fmt} {vs.width}x{vs.height} @ {vs.frame_rate}"
                          + (f", timecode {info.start_timecode}" if info.start_timecode else ""))
    map_tracks = output_track_channels(d, spec)
    problems += audio_track_problems(d, spec, info)
    if len(info.audio) == sum(len(tracks) for tracks in map_tracks):
        checks.append(f"{len(info.audio)} audio track(s): "
                      + ", ".join(f"{a.codec} {a.channels} ch" for a in info.audio))
    late = duration_problems(info, expected_s)
    if not late:
        checks.append(f"duration {info.duration_s or 0.0:.3f} s (master programme {expected_s:.3f} s)")
    problems += late
    if not problems and any(a.loudness_target_lufs is not None or a.downmix for a in d.audio):
        results = measure_media(path)
        for i, amap in enumerate(d.audio):
            result = results[sum(len(tracks) for tracks in map_tracks[:i])]  # the map's first output track
            loud = downmix_clip_problems(i, amap, result) + loudness_problems(i, amap, result)
            if not loud and amap.loudness_target_lufs is not None:
                checks.append(f"audio track {i + 1} {result.integrated_lufs:.2f} LUFS "
                              f"(target {amap.loudness_target_lufs})")
            problems += loud
    if not problems:
        decode = decode_problems(d, path)
        if not decode:
            checks.append("full decode clean")
        problems += decode
    if problems:
        raise VerificationError(f"deliverable {d.id} failed verification after writing: {'; '.join(problems)}. "
                                "The file was not kept; check the deliverable's settings in the spec.")
    return info, checks
