"""Metadata checks: the probed master against the spec's picture, audio and timing rules.

Each check has a stable id (``metadata.*``); its severity comes from the spec (``off`` skips it).
Values are compared exactly where the spec is exact (rational frame rates, integer sizes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

from specs.model import Spec
from specs.severity import Severity
from specs.timecode import DROP_FRAME_RATES, Timecode
from tasks.deliverables.shape import ColourTags, converted_colour
from tasks.media.probe import COLOUR_TAGS, MediaInfo, VideoStream, colour_tag
from tasks.qc.findings import Finding, make_finding

__all__ = ["check_metadata", "container_word", "display_aspect_ratio", "parse_aspect_ratio", "ratio_text",
           "ASPECT_RATIO_TOLERANCE"]

# ffprobe's format_name for QuickTime lists every ISO-BMFF brand; map to the spec's words.
_CONTAINERS = {"mov": "mov", "mp4": "mp4", "mxf": "mxf", "wav": "wav", "matroska": "mkv"}


def container_word(info: MediaInfo) -> str:
    """Our one-word container name (mov, mp4, mxf, wav, …) from ffprobe's format and extension."""
    names = info.format_name.split(",")
    ext = info.path.rsplit(".", 1)[-1].lower() if "." in info.path else ""
    if ext in names and ext in _CONTAINERS:
        return _CONTAINERS[ext]
    for name in names:
        if name in _CONTAINERS:
            return _CONTAINERS[name]
    return names[0]


def _fmt_list(values: Sequence[Any]) -> str:
    return " or ".join(str(v) for v in values)


def check_metadata(info: MediaInfo, spec: Spec) -> list[Finding]:
    """Compare the probed master with the spec. Returns the findings (possibly empty)."""
    out: list[Finding | None] = []
    add = out.append
    pic = spec.picture
    container = container_word(info)
    if pic.containers and container not in pic.containers:
        add(make_finding(spec, "metadata.container",
                         f"container is {container}, spec wants {_fmt_list(pic.containers)}",
                         expected=_fmt_list(pic.containers), actual=container))
    v = info.primary_video
    if v is None:
        add(make_finding(spec, "metadata.codec", "the master has no video stream", expected=pic.codec, actual="none"))
    else:
        if len(info.video) > 1:
            others = ", ".join(f"#{o.index} {o.codec} {o.width}x{o.height}" for o in info.video[1:])
            add(make_finding(spec, "metadata.video_streams",
                             f"the master has {len(info.video)} video streams: QC, layback and deliverables use the "
                             f"first (#{v.index} {v.codec} {v.width}x{v.height}); {others} would be dropped",
                             expected="1 video stream", actual=f"{len(info.video)} video streams"))
        if v.variable_rate:
            add(make_finding(spec, "metadata.frame_rate_mode",
                             f"the master has a {v.variable_rate}; timecode, durations and A/V sync count frames at "
                             "one rate: conform it to a constant frame rate",
                             expected=f"constant {v.frame_rate} fps",
                             actual=f"variable ({float(v.avg_frame_rate or 0):.3f} fps on average)"))
        if pic.codec and v.codec != pic.codec:
            add(make_finding(spec, "metadata.codec", f"video codec is {v.codec}, spec wants {pic.codec}",
                             expected=pic.codec, actual=v.codec))
        if pic.profiles and (v.profile or "") not in pic.profiles:
            add(make_finding(spec, "metadata.profile",
                             f"codec profile is {v.profile}, spec wants {_fmt_list(pic.profiles)}",
                             expected=_fmt_list(pic.profiles), actual=v.profile))
        if (pic.width and v.width != pic.width) or (pic.height and v.height != pic.height):
            add(make_finding(spec, "metadata.size",
                             f"picture is {v.width}x{v.height}, spec wants {pic.width}x{pic.height}",
                             expected=f"{pic.width}x{pic.height}", actual=f"{v.width}x{v.height}"))
        if v.sample_aspect_ratio != 1:
            add(make_finding(spec, "metadata.pixel_aspect",
                             f"pixel aspect is {v.sample_aspect_ratio}, spec wants square pixels",
                             expected="1:1", actual=str(v.sample_aspect_ratio).replace("/", ":")))
        out.extend(_aspect_ratio_findings(v, spec))
        out.extend(_bitrate_findings(v, spec))
        if pic.frame_rates and Fraction(v.frame_rate) not in {Fraction(r) for r in pic.frame_rates}:
            add(make_finding(spec, "metadata.frame_rate",
                             f"frame rate is {v.frame_rate}, spec wants {_fmt_list(pic.frame_rates)}",
                             expected=_fmt_list(pic.frame_rates), actual=str(v.frame_rate)))
        if pic.scan and v.scan != pic.scan:
            add(make_finding(spec, "metadata.scan",
                             f"scan is {v.scan} (field order {v.field_order}), spec wants {pic.scan}",
                             expected=pic.scan, actual=v.scan))
        if pic.pix_fmts and v.pix_fmt not in pic.pix_fmts:
            add(make_finding(spec, "metadata.pix_fmt",
                             f"pixel format is {v.pix_fmt}, spec wants {_fmt_list(pic.pix_fmts)}",
                             expected=_fmt_list(pic.pix_fmts), actual=v.pix_fmt))
        if pic.bit_depth and v.bit_depth != pic.bit_depth:
            add(make_finding(spec, "metadata.bit_depth",
                             f"picture bit depth is {v.bit_depth}, spec wants {pic.bit_depth}",
                             expected=pic.bit_depth, actual=v.bit_depth))
        if pic.chroma_subsampling and v.chroma_subsampling != pic.chroma_subsampling:
            add(make_finding(spec, "metadata.chroma_subsampling",
                             f"chroma subsampling is {v.chroma_subsampling}, spec wants {pic.chroma_subsampling}",
                             expected=pic.chroma_subsampling, actual=v.chroma_subsampling))
        out.extend(_colour_findings(v, spec, converted_colour(spec, info)))
        out.extend(_hdr_findings(v, spec))
    out.extend(_audio_findings(info, spec))
    out.extend(_timing_findings(info, spec))
    out.extend(_timecode_continuity(info, spec))
    return [f for f in out if f is not None]


#: Relative tolerance when matching a display aspect ratio to the spec's list: 2048x858 (2.387) is
#: "2.39", 3840x1600 (2.40) is "2.39" too, while 1.78 vs 1.85 or 2.35 vs 2.39 stay apart.
ASPECT_RATIO_TOLERANCE = 0.005


def parse_aspect_ratio(text: str) -> Fraction:
    """``"16:9"`` -> 16/9, ``"1.85"`` / ``"1.85:1"`` -> 37/20, ``"2.39"`` -> 239/100.

    Raises:
        ValueError: not a ratio.
    """
    parts = str(text).strip().split(":")
    if len(parts) == 1:
        value = Fraction(parts[0])
    elif len(parts) == 2:
        value = Fraction(parts[0]) / Fraction(parts[1])
    else:
        raise ValueError(f"{text!r} is not an aspect ratio")
    if value <= 0:
        raise ValueError(f"{text!r} is not an aspect ratio")
    return value


def display_aspect_ratio(v: VideoStream) -> Fraction | None:
    """Display aspect ratio width x SAR / height as a rational (None without a size)."""
    if not v.width or not v.height:
        return None
    return Fraction(v.width) * Fraction(v.sample_aspect_ratio) / v.height


def ratio_text(ratio: Fraction) -> str:
    """16/9 -> ``16:9``; a ratio without small terms (2048x858) -> ``2.39:1``."""
    if ratio.denominator <= 32:
        return f"{ratio.numerator}:{ratio.denominator}"
    return f"{float(ratio):.2f}:1"


def _aspect_ratio_findings(v: VideoStream, spec: Spec) -> Iterable[Finding | None]:
    """``metadata.aspect_ratio``: width x SAR / height is one of ``picture.display_aspect_ratios``."""
    wanted = spec.picture.display_aspect_ratios
    dar = display_aspect_ratio(v)
    if not wanted or dar is None or spec.check("metadata.aspect_ratio").severity == "off":
        return
    for text in wanted:
        try:
            want = parse_aspect_ratio(text)
        except (ValueError, ZeroDivisionError):
            continue
        if abs(dar - want) <= want * Fraction(ASPECT_RATIO_TOLERANCE):
            return
    have = ratio_text(dar)
    sar = "" if v.sample_aspect_ratio == 1 else f", pixel aspect {str(v.sample_aspect_ratio).replace('/', ':')}"
    yield make_finding(spec, "metadata.aspect_ratio",
                       f"display aspect ratio is {have} ({float(dar):.3f}; {v.width}x{v.height}{sar}), "
                       f"spec wants {_fmt_list(wanted)}", expected=_fmt_list(wanted), actual=have)


def _bitrate_findings(v: VideoStream, spec: Spec) -> Iterable[Finding | None]:
    """``metadata.bitrate``: the video bit rate lies in ``picture.bitrate_mbps``.

    The rate is ffprobe's stream ``bit_rate`` (or the container's minus the audio, see
    :mod:`tasks.media.probe`). When neither is known the rule is ``not_measured`` at warning, never a pass."""
    window = spec.picture.bitrate_mbps
    if window is None or spec.check("metadata.bitrate").severity == "off":
        return
    lo = "" if window.min is None else f"{window.min:g}"
    hi = "" if window.max is None else f"{window.max:g}"
    expected = (f"{lo}-{hi} Mbit/s" if lo and hi else f"at least {lo} Mbit/s" if lo else f"at most {hi} Mbit/s")
    if v.bit_rate_bps is None:
        f = make_finding(spec, "metadata.bitrate", "video bit rate is not measured (ffprobe reports none for this "
                         "file); check it with the QC house's tool", expected=expected, actual="not measured",
                         status="not_measured")
        if f is not None and f.severity is Severity.ERROR:
            f = f.model_copy(update={"severity": Severity.WARNING})
        yield f
        return
    mbps = v.bit_rate_bps / 1e6
    if not window.contains(round(mbps, 3)):
        yield make_finding(spec, "metadata.bitrate", f"video bit rate is {mbps:.1f} Mbit/s, spec wants {expected}",
                           expected=expected, actual=f"{mbps:.1f} Mbit/s")


def _colour_findings(v: VideoStream, spec: Spec,
                     conversion: tuple[ColourTags, ColourTags] | None) -> Iterable[Finding | None]:
    """``metadata.colour``: a tag the master carries differs from ``picture.colour`` (an SDR master's picture
    deliverables are then converted into the spec's colour space, ``conversion``, and the finding says so; an HDR
    master's are tone-mapped or keep its tags). ``metadata.colour_untagged``:
    tags the master lacks (no QuickTime ``colr`` atom, unspecified in the bitstream): the master is taken to be
    in the spec's colour space and its deliverables are tagged with it; without ``picture.colour`` they go out
    untagged, which distributors reject."""
    want = spec.picture.colour
    have = {name: colour_tag(getattr(v, attr)) for name, attr in COLOUR_TAGS.items()}
    missing = [name for name, value in have.items() if value is None and (want is None or getattr(want, name))]
    if want is not None:
        for name, value in have.items():
            wanted = getattr(want, name)
            if wanted and value is not None and value != wanted:
                converted = "" if conversion is None else (
                    "; the picture deliverables are converted from " + "/".join(t or "-" for t in conversion[0])
                    + " to " + "/".join(t or "-" for t in conversion[1]) + " (primaries/transfer/matrix/range)")
                yield make_finding(spec, "metadata.colour",
                                   f"colour {name} tag is {value}, spec wants {wanted}{converted}",
                                   expected=wanted, actual=value)
        if missing:
            assumed = ", ".join(f"{name} {getattr(want, name)}" for name in missing)
            plural = "s" if len(missing) > 1 else ""
            yield make_finding(spec, "metadata.colour_untagged",
                               f"the master carries no colour {'/'.join(missing)} tag{plural}; "
                               f"taken as the spec's {assumed}, and the deliverables are tagged so",
                               expected=assumed, actual="missing: " + ", ".join(missing))
    elif [m for m in missing if m != "range"]:  # an untagged range means limited (H.273 VideoFullRangeFlag 0)
        names = [m for m in missing if m != "range"]
        yield make_finding(spec, "metadata.colour_untagged",
                           f"the master carries no colour {'/'.join(names)} tag{'s' if len(names) > 1 else ''} and "
                           "the spec states no picture.colour: its deliverables go out untagged; state "
                           "picture.colour in the spec or tag the master", expected="colour tags",
                           actual="missing: " + ", ".join(names))


_HDR_TRANSFER = {"hdr10": "smpte2084", "dolby-vision": "smpte2084", "hlg": "arib-std-b67"}


def _hdr_findings(v: VideoStream, spec: Spec) -> Iterable[Finding | None]:
    """HDR mode from the transfer tag; HDR10 also needs mastering display and MaxCLL/MaxFALL metadata."""
    want = spec.picture.hdr
    if want is None:
        return
    have = next((mode for mode, trc in _HDR_TRANSFER.items() if trc == v.color_transfer), "none")
    if want == "none" and have != "none":
        yield make_finding(spec, "metadata.hdr", f"transfer tag {v.color_transfer} marks an HDR master; spec wants SDR",
                           expected="none", actual=v.color_transfer)
    elif want != "none" and v.color_transfer != _HDR_TRANSFER[want]:
        yield make_finding(spec, "metadata.hdr", f"transfer tag is {v.color_transfer or 'missing'}, spec wants {want} "
                           f"({_HDR_TRANSFER[want]})", expected=_HDR_TRANSFER[want],
                           actual=v.color_transfer or "missing")
    if want == "hdr10":
        missing = [name for name, ok in (("mastering display metadata", v.has_mastering_display),
                                         ("MaxCLL/MaxFALL (content light level)", v.has_content_light_level)) if not ok]
        if missing:
            yield make_finding(spec, "metadata.hdr", f"HDR10 master lacks {' and '.join(missing)}",
                               expected="present", actual="missing: " + ", ".join(missing))


def _audio_findings(info: MediaInfo, spec: Spec) -> Iterable[Finding | None]:
    want = spec.audio
    if len(info.audio) != len(want.tracks):
        yield make_finding(spec, "metadata.audio_tracks",
                           f"{len(info.audio)} audio tracks, spec wants {len(want.tracks)} "
                           f"({', '.join(t.label for t in want.tracks)})",
                           expected=len(want.tracks), actual=len(info.audio))
    for track, stream in zip(want.tracks, info.audio, strict=False):  # a count mismatch is reported above
        if stream.channels != len(track.channels):
            yield make_finding(spec, "metadata.audio_channels",
                               f"track {track.id} has {stream.channels} channels, spec wants {len(track.channels)} "
                               f"({' '.join(track.channels)})",
                               expected=len(track.channels), actual=stream.channels, track=track.id)
        if want.sample_rate_hz and stream.sample_rate_hz != want.sample_rate_hz:
            yield make_finding(spec, "metadata.sample_rate",
                               f"track {track.id} is {stream.sample_rate_hz} Hz, spec wants {want.sample_rate_hz} Hz",
                               expected=want.sample_rate_hz, actual=stream.sample_rate_hz, track=track.id)
        if want.bit_depth and stream.bit_depth != want.bit_depth:
            yield make_finding(spec, "metadata.audio_bit_depth",
                               f"track {track.id} is {stream.bit_depth}-bit, spec wants {want.bit_depth}-bit",
                               expected=want.bit_depth, actual=stream.bit_depth, track=track.id)
        if want.codec and stream.codec != want.codec:
            yield make_finding(spec, "metadata.audio_codec", f"track {track.id} codec is {stream.codec}, spec wants "
                               f"{want.codec}", expected=want.codec, actual=stream.codec, track=track.id)


def _timecode_continuity(info: MediaInfo, spec: Spec) -> Iterable[Finding | None]:
    """``metadata.timecode_continuity``: the timecode track labels frame n as start + n.

    QuickTime/MP4: every ``tmcd`` sample and edit is read (:mod:`tasks.qc.tmcd`); a break is
    reported at the first frame that carries the wrong label (in = that frame on the master's
    continuous clock, out = the next frame), and a track that ends before the picture is reported
    from where its timecode stops. Other containers (MXF): ffprobe exposes only the start timecode,
    so continuity is ``not_measured`` (info), never a silent pass."""
    v = info.primary_video
    if v is None or spec.check("metadata.timecode_continuity").severity == "off" or not info.start_timecode:
        return
    container = container_word(info)
    start = Timecode.parse(info.start_timecode, v.frame_rate)
    n_frames = v.frame_count or round((v.duration_s or info.duration_s or 0) * float(v.frame_rate))
    if container not in ("mov", "mp4"):
        f = make_finding(spec, "metadata.timecode_continuity",
                         f"timecode continuity of a {container} master is not measured (only its start timecode "
                         f"{info.start_timecode} is readable); check it with the QC house's tool",
                         expected="continuous timecode", actual="not measured", status="not_measured")
        yield f.model_copy(update={"severity": Severity.INFO}) if f else None
        return
    from tasks.qc.tmcd import read_timecode_tracks

    try:
        tracks = read_timecode_tracks(info.path)
    except (OSError, struct.error, IndexError, ValueError) as exc:
        f = make_finding(spec, "metadata.timecode_continuity", f"the timecode track could not be read ({exc})",
                         expected="continuous timecode", actual="unreadable", status="not_measured")
        yield f.model_copy(update={"severity": Severity.WARNING}) if f else None
        return
    for track in tracks[:1]:  # the first timecode track is the one ffprobe and NLEs use
        def label(frames: int | None, drop_frame: bool = track.drop_frame) -> str:
            return "none" if frames is None else str(Timecode(frames, v.frame_rate, drop_frame))

        for at, want, have in track.breaks()[:20]:
            if at >= n_frames:
                break
            yield make_finding(spec, "metadata.timecode_continuity",
                               f"timecode breaks at frame {at}: jumps to {label(have)} where {label(want)} follows",
                               expected=label(want), actual=label(have), timecode_in=str(start + at),
                               timecode_out=str(start + at + 1))
        if 0 < track.frames < n_frames:
            yield make_finding(spec, "metadata.timecode_continuity",
                               f"the timecode track ends {n_frames - track.frames} frames before the picture",
                               expected=f"{n_frames} frames of timecode", actual=f"{track.frames} frames",
                               timecode_in=str(start + track.frames), timecode_out=str(start + n_frames))


def _timing_findings(info: MediaInfo, spec: Spec) -> Iterable[Finding | None]:
    v = info.primary_video
    if v is None:
        return
    timing = spec.timing
    if timing.ffoa_timecode and info.start_timecode is None:
        yield make_finding(spec, "metadata.start_timecode", "the master has no timecode track; the spec places first "
                           f"frame of action at {timing.ffoa_timecode}", expected=timing.ffoa_timecode, actual="none")
    if info.start_timecode and v.frame_rate in DROP_FRAME_RATES:
        have_df = Timecode.parse(info.start_timecode, v.frame_rate).drop_frame
        if have_df != timing.drop_frame:
            def kind(df: bool) -> str:
                return "drop-frame (;)" if df else "non-drop-frame (:)"

            yield make_finding(spec, "metadata.start_timecode",
                               f"timecode {info.start_timecode} is {kind(have_df)}; the spec wants "
                               f"{kind(timing.drop_frame)} timecode at {v.frame_rate} fps",
                               expected=kind(timing.drop_frame), actual=kind(have_df))
    if timing.ffoa_timecode and info.start_timecode:
        start = Timecode.parse(info.start_timecode, v.frame_rate)
        ffoa = Timecode.parse(timing.ffoa_timecode, v.frame_rate, drop_frame=start.drop_frame)
        end = start + (v.frame_count or round((v.duration_s or 0) * float(v.frame_rate)))
        if not (start.frames <= ffoa.frames < end.frames):
            yield make_finding(spec, "metadata.start_timecode",
                               f"first frame of action {timing.ffoa_timecode} is outside the master "
                               f"({info.start_timecode} to {end})",
                               expected=f"FFOA {timing.ffoa_timecode} inside the master",
                               actual=f"{info.start_timecode}-{end}")
    start = Timecode.parse(info.start_timecode, v.frame_rate) if info.start_timecode else Timecode(0, v.frame_rate)
    tol_frames = timing.av_tolerance_frames(v.frame_rate)
    tol_text = timing.av_tolerance_text(v.frame_rate)
    vid_s = v.duration_s or info.duration_s or 0.0
    if v.variable_rate:
        return  # frames at a variable rate have no one duration to compare: metadata.frame_rate_mode names the cause
    for track, stream in zip(spec.audio.tracks, info.audio, strict=False):
        if stream.duration_s is None:
            continue
        diff_frames = abs(stream.duration_s - vid_s) * float(v.frame_rate)
        if diff_frames > tol_frames + 1e-6:
            # Where the picture is alone (or the audio runs on): from the earlier end to the later one.
            ends = sorted((round(stream.duration_s * float(v.frame_rate)), round(vid_s * float(v.frame_rate))))
            tc_in, tc_out = ((str(start + ends[0]), str(start + ends[1])) if start is not None else (None, None))
            shorter = "ends" if stream.duration_s < vid_s else "runs on"
            yield make_finding(spec, "timing.av_duration",
                               f"track {track.id} {shorter} {diff_frames:.1f} frames "
                               f"{'before' if stream.duration_s < vid_s else 'after'} the picture "
                               f"({stream.duration_s:.3f} s vs {vid_s:.3f} s)", expected=tol_text,
                               actual=f"{diff_frames:.1f} frames", track=track.id, timecode_in=tc_in,
                               timecode_out=tc_out)
