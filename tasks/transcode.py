"""Deliverables: every deliverable of a spec from ONE decode of the married master, then verified.

:func:`transcode_all` builds one ffmpeg command: the master's picture is decoded once and
``split`` to every picture output (each with its own trim, scale, burn-ins and encoder), its audio
tracks are ``asplit`` to every output that maps them (downmixed where asked), audio-only
deliverables (WAV/BWF stems, downmixes) and the poster frame / thumbnails ride in the same run.
Loudness-corrected tracks are rendered first (:func:`tasks.audio.correct.correct_loudness`, a cheap
audio-only pass) and enter the graph as extra inputs.

Every output is written as ``name.partial.ext``, verified against its own deliverable (codec,
size, frame rate, tracks and channels, duration equal to the master's, loudness where the
deliverable sets a target, full decode), fsynced and renamed; nothing is overwritten. A rerun
skips deliverables whose final file exists and verifies, so an interrupted run resumes.
:func:`deliverable_args` (one ffmpeg per deliverable, same encoder arguments) is the benchmark's
baseline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
from pydantic import BaseModel, Field

from specs.errors import BadInputError, MediaError, VerificationError
from specs.model import AVC_INTRA_PIX_FMT, AVC_INTRA_PROFILE, Deliverable, Spec, render_deliverable_name
from tasks.layback import FFMPEG_LAYOUTS
from tasks.media.ffmpeg import FFmpegProgress, compile_args, run_ffmpeg
from tasks.media.files import fsync_path, partial_name
from tasks.media.probe import MediaInfo, pix_depth, probe, tagged_light_level
from tasks.media.timecode import Timecode

__all__ = ["DeliverableResult", "TranscodeAllResult", "RunFields", "transcode_all",
           "verify_deliverable", "deliverable_args", "deliverable_graph", "deliverables_graph", "deliverable_path",
           "DOWNMIX_20"]

# ITU-R BS.775 Lo/Ro downmix from L R C LFE Ls Rs (LFE omitted, centre and surrounds at -3 dB).
DOWNMIX_20 = "pan=stereo|c0=c0+0.7071*c2+0.7071*c4|c1=c1+0.7071*c2+0.7071*c5"
_PRORES_PROFILES = {"proxy": "0", "lt": "1", "standard": "2", "422": "2", "hq": "3", "4444": "4", "4444xq": "5"}
_BURNIN_FONT = "DejaVu Sans Mono"
_HDR_TRANSFERS = ("smpte2084", "arib-std-b67")  # PQ (ST 2084) and HLG (BT.2100), as ffprobe names them
_SDR_WHITE_NITS = 100  # SDR reference white: BT.1886 / BT.2408 diffuse white mapped to 1.0
_DEFAULT_HDR_PEAK_NITS = 1000  # when the master carries no MaxCLL: the usual HDR10 grading monitor
# Picture sizes x264 writes for each AVC-Intra class (SMPTE RP 2027): class 50 is horizontally subsampled.
_AVC_INTRA_SIZES = {50: ((1440, 1080), (960, 720)), 100: ((1920, 1080), (1280, 720)),
                    200: ((1920, 1080), (1280, 720))}
_CLIP_DBFS = -0.01  # a downmix sample this close to full scale was clipped when summed
_AAC_TOLERANCE_LU = 1.0  # a lossy encode moves integrated loudness by a few tenths of a LU
_PCM_TOLERANCE_LU = 0.5
THUMBNAILS = 6
_METER_LAYOUTS = {"2.0": "stereo", "1.0": "mono"}  # spec layout words -> the loudness meter's
THUMB_WIDTH_PX = 480


_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def language_tag(value: str) -> str:
    """``value`` if it is a BCP 47 language tag (``en``, ``de``, ``fr-CA``, ``und``), for ``{lang}`` in names.

    Raises:
        BadInputError: anything else (a name, a path, upper case primary subtag).
    """
    if not _LANGUAGE_TAG.match(value):
        raise BadInputError(f"--lang {value!r} is not a language tag; use ISO 639 / BCP 47 such as en, de, fr-CA "
                            "(und when undetermined)")
    return value


class RunFields(BaseModel):
    """Run parameters that reach names and burn-ins: title, version, recipient (watermark), date, language."""

    title: str
    version: str = "v1"
    recipient: str | None = None
    date: str = Field(default_factory=lambda: dt.date.today().isoformat())
    lang: str = Field("und", pattern=_LANGUAGE_TAG.pattern, description="BCP 47 tag for {lang} in names")


class DeliverableResult(BaseModel):
    id: str
    kind: str
    path: str
    size: int
    duration_s: float
    wall_s: float
    reused: bool = False  # an earlier run made it and it still verifies
    checks: list[str] = []  # what verification confirmed


class TranscodeAllResult(BaseModel):
    deliverables: list[DeliverableResult]
    extras: list[str]  # poster frame and thumbnails
    wall_s: float
    ffmpeg_runs: int


# A filter as ffmpeg-python takes it: (name, positional args, keyword args). Values are raw:
# ffmpeg-python escapes them for the option and the filtergraph levels.
_Filter = tuple[str, tuple[Any, ...], dict[str, Any]]


def _f(name: str, *args: Any, **kwargs: Any) -> _Filter:
    return name, args, kwargs


def _chain(stream: Any, filters: list[_Filter]) -> Any:
    """``stream`` through ``filters`` in order (a ``null``/``anull`` when there are none is the caller's choice)."""
    for name, args, kwargs in filters:
        stream = stream.filter(name, *args, **kwargs)
    return stream


def _fan_out(stream: Any, n: int, audio: bool) -> list[Any]:
    """``n`` copies of ``stream``: ``split``/``asplit`` (a ``null``/``anull`` for one), so it is decoded once."""
    if n <= 0:
        return []
    if n == 1:
        return [stream.filter("anull" if audio else "null")]
    node = stream.filter_multi_output("asplit" if audio else "split")  # ffmpeg-python writes the count
    return [node.stream(k) for k in range(n)]


def _escape_drawtext(text: str) -> str:
    """drawtext's own escaping of ``text`` (its ``%{...}`` expansion reads backslashes and ``%``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%")


def _fill(template: str, fields: RunFields, d: Deliverable) -> str:
    values = {"title": fields.title, "version": fields.version, "date": fields.date, "id": d.id,
              "deliverable": d.id, "lang": fields.lang, "recipient": fields.recipient or ""}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInputError(f"deliverable {d.id}: text {template!r} has an unknown field {exc}; use "
                            f"{', '.join('{' + k + '}' for k in values)}") from None


def deliverable_path(d: Deliverable, spec: Spec, out_dir: str | Path, fields: RunFields) -> Path:
    """Final path of ``d`` from its name template; never outside ``out_dir``.

    Raises:
        SpecError: the template or a field value would leave the output folder.
    """
    root = Path(out_dir).resolve()
    extra = {"recipient": fields.recipient} if fields.recipient else {}  # {recipient} needs --recipient
    name = render_deliverable_name(d.name, title=fields.title, version=fields.version, id=d.id, spec=spec.name,
                                   ext=d.container, date=fields.date, deliverable=d.id, lang=fields.lang, **extra)
    path = (root / name).resolve()
    if root not in path.parents:
        raise BadInputError(f"deliverable name {name!r} resolves outside {root}; fix the name template")
    return path


def _head_frames(d: Deliverable, spec: Spec, master: MediaInfo) -> tuple[Timecode, int]:
    """(start timecode of the master, frames to drop before the FFOA for this deliverable)."""
    v = master.primary_video
    assert v is not None
    start = Timecode.parse(master.start_timecode, v.frame_rate) if master.start_timecode else Timecode(0, v.frame_rate)
    if d.include_head or not spec.timing.ffoa_timecode:
        return start, 0
    ffoa = Timecode.parse(spec.timing.ffoa_timecode, v.frame_rate, drop_frame=start.drop_frame)
    return start, max(ffoa.frames - start.frames, 0)


def _programme_first_frame(spec: Spec, master: MediaInfo) -> int:
    """Frame index of the FFOA in the master (0 without a spec FFOA)."""
    v = master.primary_video
    assert v is not None
    if not spec.timing.ffoa_timecode or not master.start_timecode:
        return 0
    start = Timecode.parse(master.start_timecode, v.frame_rate)
    ffoa = Timecode.parse(spec.timing.ffoa_timecode, v.frame_rate, drop_frame=start.drop_frame)
    return max(ffoa.frames - start.frames, 0)


def _master_frames(master: MediaInfo) -> int:
    v = master.primary_video
    assert v is not None
    return v.frame_count or round(Fraction(v.duration_s or master.duration_s or 0.0) * v.frame_rate)


def _expected_duration_s(d: Deliverable, spec: Spec, master: MediaInfo) -> float:
    v = master.primary_video
    if v is None:
        return master.duration_s or 0.0
    _, head = _head_frames(d, spec, master)
    return float(Fraction(max(_master_frames(master) - head, 0)) / v.frame_rate)


def _scaled(d: Deliverable, master: MediaInfo) -> bool:
    v = master.primary_video
    assert v is not None and d.video is not None
    return bool(d.video.width and d.video.height and (d.video.width, d.video.height) != (v.width, v.height))


def _keeps_fields(d: Deliverable, master: MediaInfo) -> bool:
    """An interlaced master stays interlaced in a mezzanine at its own size (a broadcaster's 1080i file)."""
    v = master.primary_video
    assert v is not None
    return v.scan == "interlaced" and d.kind == "mezzanine" and not _scaled(d, master)


def _tone_maps(d: Deliverable, master: MediaInfo) -> bool:
    """Whether ``d`` is an SDR picture made from an HDR (PQ or HLG) master."""
    v = master.primary_video
    assert v is not None and d.video is not None
    if v.color_transfer not in _HDR_TRANSFERS or d.video.tone_map == "off":
        return False
    return d.video.tone_map == "sdr" or (pix_depth(d.video.pix_fmt or v.pix_fmt) or 8) <= 8


def _sdr_filters(master: MediaInfo, pix_fmt: str) -> list[_Filter]:
    """HDR -> SDR BT.709: to linear light (100 cd/m2 = 1.0), BT.2020 -> BT.709 primaries, Hable's curve with
    the master's MaxCLL (else 1000 cd/m2) as peak, then BT.1886 (display-referred, zimg's bt709), limited range."""
    peak_nits = tagged_light_level(master.path)[0] or _DEFAULT_HDR_PEAK_NITS
    return [_f("zscale", t="linear", npl=_SDR_WHITE_NITS), _f("format", "gbrpf32le"), _f("zscale", p="bt709"),
            _f("tonemap", tonemap="hable", desat=0, peak=f"{peak_nits / _SDR_WHITE_NITS:g}"),
            _f("zscale", t="bt709", m="bt709", r="tv"), _f("format", pix_fmt)]


def _video_filters(d: Deliverable, master: MediaInfo, out_start: Timecode, fields: RunFields) -> list[_Filter]:
    """Deinterlace, scale, tone-map, burn-in timecode/text and watermark for one picture deliverable (in that
    order: burn-ins are drawn in the output's range)."""
    v = master.primary_video
    assert v is not None and d.video is not None
    enc = d.video
    vf: list[_Filter] = []
    if v.scan == "interlaced" and not _keeps_fields(d, master):
        # Screeners, proxies and rescaled copies are progressive: scaling or viewing fields combs the picture.
        vf.append(_f("bwdif", mode="send_frame", parity="auto"))
    if _scaled(d, master):
        vf.append(_f("scale", w=enc.width, h=enc.height, flags="lanczos"))
    if _tone_maps(d, master):
        vf += _sdr_filters(master, enc.pix_fmt or "yuv420p")
    font = {"font": _BURNIN_FONT}
    if d.burn_in is not None and d.burn_in.timecode:
        rate = f"{v.frame_rate.numerator}/{v.frame_rate.denominator}"
        vf.append(_f("drawtext", **font, timecode=str(out_start), rate=rate, fontsize="h/14", fontcolor="white",
                     box=1, boxcolor="black@0.6", x="(w-tw)/2", y="h-th-h/20"))
    if d.burn_in is not None and d.burn_in.text:
        vf.append(_f("drawtext", **font, text=_escape_drawtext(_fill(d.burn_in.text, fields, d)), fontsize="h/18",
                     fontcolor="white", box=1, boxcolor="black@0.6", x="(w-tw)/2", y="h/20"))
    if d.watermark is not None:
        if "{recipient}" in d.watermark.text and not fields.recipient:
            raise BadInputError(f"deliverable {d.id}: the watermark names the recipient; pass --recipient")
        alpha = f"{d.watermark.opacity:.2f}"
        vf.append(_f("drawtext", **font, text=_escape_drawtext(_fill(d.watermark.text, fields, d)), fontsize="h/12",
                     fontcolor=f"white@{alpha}", x="(w-tw)/2", y="(h-th)/2"))
        if fields.recipient:
            # Who received this copy and when: the anti-piracy trace, under the spec's text.
            trace = _escape_drawtext(f"{fields.recipient} · {fields.date}")
            vf.append(_f("drawtext", **font, text=trace, fontsize="h/18", fontcolor=f"white@{alpha}", x="(w-tw)/2",
                         y="(h/2)+h/10"))
    return vf


def _out_colour(d: Deliverable, master: MediaInfo) -> tuple[str | None, str | None, str | None, str | None]:
    """(primaries, transfer, matrix, range) a picture deliverable carries: the master's, BT.709 once tone-mapped."""
    v = master.primary_video
    assert v is not None
    if _tone_maps(d, master):
        return "bt709", "bt709", "bt709", "tv"
    return v.color_primaries, v.color_transfer, v.color_matrix, v.color_range


def _video_codec_args(d: Deliverable, master: MediaInfo) -> dict[str, Any]:
    """Encoder options of a picture deliverable, as ffmpeg-python output keyword arguments."""
    v = master.primary_video
    assert v is not None and d.video is not None
    enc = d.video
    args: dict[str, Any] = {"c:v": enc.codec}
    if enc.codec == "prores_ks":
        args |= {"profile:v": _PRORES_PROFILES.get((enc.profile or "hq").lower(), "3"), "vendor": "apl0"}
    elif enc.profile:
        args["profile:v"] = enc.profile
    if enc.avc_intra_class is not None:
        size = (enc.width, enc.height) if _scaled(d, master) else (v.width, v.height)
        if size not in _AVC_INTRA_SIZES[enc.avc_intra_class]:
            sizes = " or ".join(f"{w}x{h}" for w, h in _AVC_INTRA_SIZES[enc.avc_intra_class])
            raise BadInputError(f"deliverable {d.id}: AVC-Intra {enc.avc_intra_class} is {sizes}, not "
                                f"{size[0]}x{size[1]}; give the deliverable video width and height to scale, or "
                                "conform the master")
        # x264 makes the class's intra-only stream (rate, slices, SPS/PPS) itself.
        args |= {"avcintra-class": str(enc.avc_intra_class), "pix_fmt": AVC_INTRA_PIX_FMT[enc.avc_intra_class]}
    if enc.pix_fmt:
        args["pix_fmt"] = enc.pix_fmt
    if enc.bitrate_kbps:
        args |= {"b:v": f"{enc.bitrate_kbps}k", "maxrate": f"{enc.bitrate_kbps}k",
                 "bufsize": f"{2 * enc.bitrate_kbps}k"}
    elif enc.crf is not None:
        args["crf"] = str(enc.crf)
    if enc.codec in ("libx264", "libx265"):
        args["preset"] = "medium"
    if _keeps_fields(d, master):
        # Interlaced DCT (+ motion estimation) and the master's field order in the container.
        args |= {"flags": "+ildct+ilme" if enc.codec == "libx264" else "+ildct", "field_order": v.field_order or "tt"}
    if enc.codec == "libx265" and d.container in ("mov", "mp4"):
        args["tag:v"] = "hvc1"  # ffmpeg's default hev1 does not play in QuickTime, Safari or on Apple devices
    # Keep the colour description of the master on every picture deliverable (BT.709 once tone-mapped).
    for flag, value in zip(("color_primaries", "color_trc", "colorspace", "color_range"), _out_colour(d, master),
                           strict=True):
        if value and value != "unknown":
            args[flag] = value
    return args


def _audio_sources(d: Deliverable, spec: Spec, master: MediaInfo) -> list[int]:
    """Master audio stream number (``0:a:N``) of every audio map of ``d``."""
    track_ids = [t.id for t in spec.audio.tracks]
    out = []
    for amap in d.audio:
        if amap.from_track not in track_ids:
            raise BadInputError(f"deliverable {d.id} maps audio from unknown track {amap.from_track!r}; "
                                f"spec tracks are {', '.join(track_ids)}")
        src = track_ids.index(amap.from_track)
        if src >= len(master.audio):
            raise BadInputError(f"deliverable {d.id} needs track {amap.from_track} but the master has "
                                f"{len(master.audio)} audio tracks")
        track = spec.audio.tracks[src]
        if amap.downmix == "2.0" and track.layout != "5.1":
            raise BadInputError(f"deliverable {d.id}: a 2.0 downmix needs a 5.1 source, {track.id} is {track.layout}")
        out.append(src)
    return out


def _audio_filter_node(d: Deliverable, i: int, spec: Spec, src: int) -> _Filter:
    """Audio map ``i``'s downmix (pan's one option is named ``args``) or its track's channel layout."""
    if d.audio[i].downmix == "2.0":
        return _f("pan", args=DOWNMIX_20.removeprefix("pan="))
    return _f("aformat", channel_layouts=FFMPEG_LAYOUTS.get(spec.audio.tracks[src].layout, "stereo"))


def _audio_chain(d: Deliverable, i: int, spec: Spec, master: MediaInfo, src: int, head: int) -> list[_Filter]:
    """Master track ``src`` -> audio map ``i`` of ``d``: the ``head`` frames it drops cut sample-exact, then
    :func:`_audio_filter_node` (the one-decode graph and the loudness-correction pre-pass alike)."""
    v = master.primary_video
    assert v is not None
    sr = master.audio[src].sample_rate_hz
    trim = [_f("atrim", start_sample=round(Fraction(head) / v.frame_rate * sr)), _f("asetpts", "N/SR/TB")]
    return [*(trim if head else []), _audio_filter_node(d, i, spec, src)]


def _map_channels(d: Deliverable, i: int, spec: Spec) -> int:
    """Channels of audio map ``i`` of ``d`` (2 for a downmix, else its spec track's)."""
    amap = d.audio[i]
    track = next((t for t in spec.audio.tracks if t.id == amap.from_track), None)
    return 2 if amap.downmix == "2.0" or track is None else len(track.channels)


def _map_tracks(d: Deliverable, i: int, spec: Spec, src: int, stream: Any) -> list[Any]:
    """The output tracks of audio map ``i``: ``stream``, or one mono track per channel in the track's order."""
    n = _map_channels(d, i, spec)
    if not d.audio[i].mono_tracks or n == 1:
        return [stream]
    layout = "stereo" if d.audio[i].downmix == "2.0" else FFMPEG_LAYOUTS.get(spec.audio.tracks[src].layout, "stereo")
    node = stream.filter_multi_output("channelsplit", channel_layout=layout)  # outputs in the layout's order
    return [node.stream(k) for k in range(n)]


def _audio_codec_args(d: Deliverable, i: int, spec: Spec, src: int, out_index: int) -> dict[str, Any]:
    amap = d.audio[i]
    track = spec.audio.tracks[src]
    args: dict[str, Any] = {f"c:a:{out_index}": amap.codec}
    if amap.codec == "aac":
        args[f"b:a:{out_index}"] = ("192k" if amap.mono_tracks else
                                    "320k" if amap.downmix or track.layout in ("2.0", "stereo") else "640k")
    return args


def _container_args(d: Deliverable, master: MediaInfo, out_start: Timecode, fields: RunFields) -> dict[str, Any]:
    args: dict[str, Any] = {"map_metadata": "-1"}
    if d.video is not None and d.container in ("mov", "mp4", "mxf"):
        args["timecode"] = str(out_start)
    if d.container == "mp4":
        args["movflags"] = "+faststart"
    if d.container == "wav":
        sr = master.audio[0].sample_rate_hz if master.audio else 48000
        # BWF: bext TimeReference = the first sample's position on the timecode clock. ffmpeg-python keeps one
        # value per option: the second global tag goes as -metadata:g (the same as -metadata).
        args |= {"rf64": "auto", "write_bext": "1", "metadata": f"time_reference={round(out_start.seconds * sr)}",
                 "metadata:g": f"description={fields.title} {fields.version} {d.id}"}
    return {**args, "f": {"mov": "mov", "mp4": "mp4", "mxf": "mxf", "wav": "wav"}[d.container]}


def deliverable_graph(d: Deliverable, spec: Spec, master: MediaInfo, out_path: Path, *,
                      fields: RunFields) -> Any:
    """ffmpeg-python graph that makes deliverable ``d`` alone (its own decode): the baseline."""
    v = master.primary_video
    if v is None:
        raise BadInputError(f"{master.path} has no video stream to make {d.id} from")
    start, head = _head_frames(d, spec, master)
    out_start = start + head
    # Input seek + re-encode is frame-accurate in ffmpeg (accurate_seek is the default).
    src = ffmpeg.input(master.path, **({"ss": f"{float(Fraction(head) / v.frame_rate):.6f}"} if head else {}))
    streams: list[Any] = []
    opts: dict[str, Any] = {}
    if d.video is not None:
        streams.append(_chain(src[str(v.index)], _video_filters(d, master, out_start, fields)))
        opts |= _video_codec_args(d, master)
    for i, a in enumerate(_audio_sources(d, spec, master)):
        for track in _map_tracks(d, i, spec, a, _chain(src[f"a:{a}"], [_audio_filter_node(d, i, spec, a)])):
            opts |= _audio_codec_args(d, i, spec, a, len(streams) - (d.video is not None))
            streams.append(track)
    return ffmpeg.output(*streams, str(out_path), **opts, **_container_args(d, master, out_start, fields))


def deliverable_args(d: Deliverable, spec: Spec, master: MediaInfo, out_path: Path, *, title: str,
                     fields: RunFields | None = None) -> list[str]:
    """ffmpeg arguments that make deliverable ``d`` alone (its own decode): the baseline."""
    return compile_args(deliverable_graph(d, spec, master, out_path, fields=fields or RunFields(title=title)))


# --------------------------------------------------------------------------------------------
# One decode for everything
# --------------------------------------------------------------------------------------------


def _corrected_tracks(todo: list[Deliverable], spec: Spec, master: MediaInfo, work: Path
                      ) -> dict[tuple[str, int], Path]:
    """Loudness-corrected WAVs for the audio maps that set a target: (deliverable id, map index) -> WAV."""
    from tasks.audio.correct import correct_loudness

    out: dict[tuple[str, int], Path] = {}
    for d in todo:
        srcs = _audio_sources(d, spec, master)
        start, head = _head_frames(d, spec, master)
        for i, amap in enumerate(d.audio):
            if amap.loudness_target_lufs is None:
                continue
            raw = work / f"{d.id}.a{i}.source.wav"
            fixed = work / f"{d.id}.a{i}.corrected.wav"
            for p in (raw, fixed):
                p.unlink(missing_ok=True)
            audio = _chain(ffmpeg.input(master.path)[f"a:{srcs[i]}"], _audio_chain(d, i, spec, master, srcs[i], head))
            run_ffmpeg(["-v", "error", *compile_args(ffmpeg.output(audio, str(raw), **{"c:a": "pcm_f32le"},
                                                                   rf64="auto", f="wav"))],
                       what=f"audio for loudness correction of {d.id}")
            track = spec.audio.tracks[srcs[i]]
            ceiling = amap.max_true_peak_dbtp if amap.max_true_peak_dbtp is not None else (
                track.loudness.max_true_peak_dbtp if track.loudness and track.loudness.max_true_peak_dbtp is not None
                else -1.0)
            correct_loudness(raw, fixed, target_lufs=amap.loudness_target_lufs, max_true_peak_dbtp=ceiling,
                             layout="stereo" if amap.downmix == "2.0"
                             else _METER_LAYOUTS.get(track.layout, track.layout))
            raw.unlink(missing_ok=True)
            out[(d.id, i)] = fixed
    return out


def transcode_all(deliverables: list[Deliverable], spec: Spec, master: MediaInfo, out_dir: str | Path, *,
                  fields: RunFields, progress: Callable[[float, float], None] | None = None,
                  extras_dir: str | Path | None = None, thumbnails: int = THUMBNAILS,
                  verify: bool = True) -> TranscodeAllResult:
    """Make every deliverable from one decode of ``master`` (see the module docstring).

    Args:
        deliverables: what to make (usually ``spec.deliverables``).
        spec: the spec (tracks, timing).
        master: the probed married master.
        out_dir: the package folder; names come from each deliverable's template.
        fields: title, version, recipient, date for names and burn-ins.
        progress: ``(done_s, total_s)`` while ffmpeg runs.
        extras_dir: where the poster frame and thumbnails go (None: not made).
        thumbnails: how many thumbnails, evenly over the programme.
        verify: verify each output before it gets its final name (off only for benchmarks).

    Raises:
        BadInputError: a deliverable's final file exists but does not verify (never overwritten).
        VerificationError: a new output failed verification (nothing kept under its final name).
    """
    started = time.monotonic()
    v = master.primary_video
    if v is None:
        raise BadInputError(f"{master.path} has no video stream to make deliverables from")
    out_root = Path(out_dir)
    targets = {d.id: deliverable_path(d, spec, out_root, fields) for d in deliverables}
    done: list[DeliverableResult] = []
    todo: list[Deliverable] = []
    for d in deliverables:
        final = targets[d.id]
        if final.exists():
            try:
                info, checks = verify_deliverable(d, spec, final, _expected_duration_s(d, spec, master), master=master)
            except (VerificationError, MediaError) as exc:
                raise BadInputError(f"{final} exists from an earlier run but does not verify ({exc}); it is never "
                                    "overwritten: move it away or choose another --out") from None
            done.append(DeliverableResult(id=d.id, kind=d.kind, path=str(final), size=final.stat().st_size,
                                          duration_s=info.duration_s or 0.0, wall_s=0.0, reused=True, checks=checks))
        else:
            todo.append(d)
    extras: list[Path] = []
    if extras_dir is not None and thumbnails >= 0:
        stem = f"{fields.title}_{fields.version}"
        extras = [Path(extras_dir) / f"{stem}_poster.jpg"] + [Path(extras_dir) / f"{stem}_thumb_{k + 1:02d}.jpg"
                                                               for k in range(thumbnails)]
        if all(p.exists() for p in extras):
            extras_todo: list[Path] = []
        else:
            for p in extras:  # extras are cheap: redo the set, never one of a mixed old/new set
                if p.exists():
                    raise BadInputError(f"{p} exists but the set of thumbnails is incomplete; remove "
                                        f"{Path(extras_dir)} and rerun")
            extras_todo = extras
    else:
        extras_todo = []
    runs = 0
    if todo or extras_todo:
        with tempfile.TemporaryDirectory(prefix="deliver-audio-") as tmp:
            corrected = _corrected_tracks(todo, spec, master, Path(tmp))
            runs += len(corrected)
            made = _one_graph(todo, spec, master, targets, corrected, extras_todo, fields, progress)
            runs += 1
            results, failures = [], []
            for d in todo:
                partial = made[d.id]
                try:
                    if verify:
                        info, checks = verify_deliverable(d, spec, partial, _expected_duration_s(d, spec, master),
                                                          master=master)
                    else:
                        info, checks = probe(partial, f"deliverable {d.id}"), []
                except VerificationError as exc:
                    partial.unlink(missing_ok=True)
                    failures.append(str(exc))
                    continue
                _publish(partial, targets[d.id])
                results.append(DeliverableResult(id=d.id, kind=d.kind, path=str(targets[d.id]),
                                                 size=targets[d.id].stat().st_size, duration_s=info.duration_s or 0.0,
                                                 wall_s=time.monotonic() - started, checks=checks))
            for p in extras_todo:
                _publish(partial_name(p), p)
            if failures:
                raise VerificationError(" | ".join(failures))
            done += results
    if progress is not None:  # ffmpeg's last report stops short of the end (last frame's start time)
        total_s = float(Fraction(_master_frames(master)) / v.frame_rate)
        progress(total_s, total_s)
    order = {d.id: k for k, d in enumerate(deliverables)}
    done.sort(key=lambda r: order[r.id])
    return TranscodeAllResult(deliverables=done, extras=[str(p) for p in extras], wall_s=time.monotonic() - started,
                              ffmpeg_runs=runs)


def _publish(partial: Path, final: Path) -> None:
    """fsync and rename without ever replacing an existing file (link fails if ``final`` exists)."""
    fsync_path(partial)
    try:
        os.link(partial, final)
    except FileExistsError:
        partial.unlink(missing_ok=True)
        raise BadInputError(f"{final} appeared while it was being made; not overwritten") from None
    except OSError:
        if final.exists():
            raise BadInputError(f"{final} appeared while it was being made; not overwritten") from None
        os.replace(partial, final)
    partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fsync_path(final.parent)


def _extra_frames(spec: Spec, master: MediaInfo, n: int) -> list[int]:
    """Master frame of the poster (first) and of each of the ``n - 1`` thumbnails."""
    frames = _master_frames(master)
    first = _programme_first_frame(spec, master)
    programme = max(frames - first, 1)
    poster_frame = first + programme // 3  # a third in: past titles, before credits
    return [poster_frame] + [first + (2 * k + 1) * programme // (2 * max(n - 1, 1)) for k in range(n - 1)]


def deliverables_graph(todo: list[Deliverable], spec: Spec, master: MediaInfo, outputs: dict[str, Path],
                       corrected: dict[tuple[str, int], Path], extras: list[Path], fields: RunFields) -> Any:
    """The one-decode ffmpeg-python graph: every deliverable of ``todo`` to ``outputs[d.id]``, extras to ``extras``.

    The master's picture is ``split`` to every picture output and each master audio track ``asplit`` to
    every output that maps it; ``corrected`` (deliverable id, map index) -> WAV are extra inputs,
    already trimmed and downmixed.
    """
    v = master.primary_video
    assert v is not None
    src = ffmpeg.input(master.path)
    pictures = [d for d in todo if d.video is not None]
    n_video = len(pictures) + (1 + max(len(extras) - 1, 0) if extras else 0)
    vstreams = iter(_fan_out(src[str(v.index)], n_video, audio=False))
    # Audio uses per master track, so that each track is decoded once and asplit.
    uses: dict[int, int] = {}
    for d in todo:
        for i, a in enumerate(_audio_sources(d, spec, master)):
            if (d.id, i) not in corrected:
                uses[a] = uses.get(a, 0) + 1
    astreams = {a: iter(_fan_out(src[f"a:{a}"], n, audio=True)) for a, n in uses.items()}
    outs: list[Any] = []
    for d in todo:
        start, head = _head_frames(d, spec, master)
        out_start = start + head
        streams: list[Any] = []
        opts: dict[str, Any] = {}
        if d.video is not None:
            chain = ([_f("trim", start_frame=head), _f("setpts", "PTS-STARTPTS")] if head else [])
            chain += _video_filters(d, master, out_start, fields)
            streams.append(_chain(next(vstreams), chain or [_f("null")]))
            opts |= _video_codec_args(d, master)
        for i, a in enumerate(_audio_sources(d, spec, master)):
            if (d.id, i) in corrected:
                audio = ffmpeg.input(str(corrected[(d.id, i)]))["a:0"]  # already trimmed and downmixed
            else:
                audio = _chain(next(astreams[a]), _audio_chain(d, i, spec, master, a, head))
            for track in _map_tracks(d, i, spec, a, audio):
                opts |= _audio_codec_args(d, i, spec, a, len(streams) - (d.video is not None))
                streams.append(track)
        outs.append(ffmpeg.output(*streams, str(outputs[d.id]), **opts,
                                  **_container_args(d, master, out_start, fields)))
    for k, (p, frame) in enumerate(zip(extras, _extra_frames(spec, master, len(extras)), strict=False)):
        chain = [_f("trim", start_frame=frame, end_frame=frame + 1)]
        if k:
            chain.append(_f("scale", w=f"min({THUMB_WIDTH_PX},iw)", h=-2))  # ffmpeg-python escapes the comma
        chain.append(_f("format", "yuvj420p"))
        outs.append(ffmpeg.output(_chain(next(vstreams), chain), str(p),
                                  **{"frames:v": 1, "update": 1, "q:v": 3, "f": "image2"}))
    return ffmpeg.merge_outputs(*outs)


def _one_graph(todo: list[Deliverable], spec: Spec, master: MediaInfo, targets: dict[str, Path],
               corrected: dict[tuple[str, int], Path], extras: list[Path], fields: RunFields,
               progress: Callable[[float, float], None] | None) -> dict[str, Path]:
    """Run the single ffmpeg command; returns deliverable id -> partial path (not yet verified)."""
    v = master.primary_video
    assert v is not None
    for partial in [*(partial_name(targets[d.id]) for d in todo), *(partial_name(p) for p in extras)]:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)  # a leftover of an interrupted run is ours to replace
    made = {d.id: partial_name(targets[d.id]) for d in todo}
    graph = deliverables_graph(todo, spec, master, made, corrected, [partial_name(p) for p in extras], fields)
    total_s = float(Fraction(_master_frames(master)) / v.frame_rate)

    def _progress(p: FFmpegProgress) -> None:
        if progress is not None:
            progress(min(p.out_time_s, total_s), total_s)

    try:
        run_ffmpeg(compile_args(graph), progress=_progress, what=f"transcode of {len(todo)} deliverable(s) in one pass")
    except BaseException:
        for partial in made.values():  # nothing half-written survives, even under a partial name
            partial.unlink(missing_ok=True)
        for p in extras:
            partial_name(p).unlink(missing_ok=True)
        raise
    return made


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def _norm_profile(name: str) -> str:
    """``High 4:2:2`` -> ``high422``, ``4444 XQ`` -> ``4444xq``: ffprobe's and the spec's spellings compared."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _picture_format_problems(d: Deliverable, vs: Any, master: MediaInfo | None) -> list[str]:
    """Pixel format, codec profile and colour description of a written picture deliverable."""
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
        for what, want in zip(("color_primaries", "color_transfer", "color_matrix", "color_range"),
                              _out_colour(d, master), strict=True):
            got = getattr(vs, what)
            if what == "color_range" and got in (None, "unknown"):
                got = "tv"  # unsignalled range is limited (H.264/HEVC VUI default; x264 omits it without a matrix)
            if want and want != "unknown" and got != want:
                problems.append(f"{what.replace('_', ' ')} {got} instead of {want}")
    return problems


def verify_deliverable(d: Deliverable, spec: Spec, path: str | Path, expected_s: float, *,
                       master: MediaInfo | None = None) -> tuple[MediaInfo, list[str]]:
    """Probe, measure and fully decode a written deliverable against its own spec.

    Checks: video codec, profile, pixel format, size, frame rate and colour description (the
    master's, BT.709 when tone-mapped to SDR); scan and field order; start timecode (the master's,
    plus the head the deliverable drops); HEVC tagged hvc1 in MOV/MP4; audio track count, channels
    per track (2 for a downmix, 1 for mono tracks), sample rate; duration equal to the master's
    programme within one frame; integrated loudness and true peak where the deliverable sets a
    target; a clean full decode.

    Raises:
        VerificationError: any mismatch (the caller deletes the file; it never gets a final name).
    """
    info = probe(path, what=f"deliverable {d.id}")
    problems: list[str] = []
    checks: list[str] = []
    mv = master.primary_video if master else None
    expected_tc = None
    if master is not None and mv is not None and master.start_timecode:
        start, head = _head_frames(d, spec, master)
        expected_tc = start + head
    if d.video is not None:
        vs = info.primary_video
        if vs is None:
            problems.append("no video stream")
        else:
            if d.video.width and d.video.height and (vs.width, vs.height) != (d.video.width, d.video.height):
                problems.append(f"size {vs.width}x{vs.height} instead of {d.video.width}x{d.video.height}")
            want_codec = {"prores_ks": "prores", "prores_aw": "prores", "libx264": "h264",
                          "libx265": "hevc"}.get(d.video.codec, d.video.codec)
            if vs.codec != want_codec:
                problems.append(f"video codec {vs.codec} instead of {want_codec}")
            if mv is not None and vs.frame_rate != mv.frame_rate:
                problems.append(f"frame rate {vs.frame_rate} instead of the master's {mv.frame_rate}")
            problems += _picture_format_problems(d, vs, master)
            if master is not None and mv is not None and mv.scan == "interlaced":
                want_scan = "interlaced" if _keeps_fields(d, master) else "progressive"
                if vs.scan != want_scan or (want_scan == "interlaced" and vs.field_order != (mv.field_order or "tt")):
                    problems.append(f"{vs.scan} ({vs.field_order}) instead of {want_scan}"
                                    + (f" ({mv.field_order})" if want_scan == "interlaced" else ""))
            if vs.codec == "hevc" and d.container in ("mov", "mp4") and vs.codec_tag != "hvc1":
                problems.append(f"HEVC tagged {vs.codec_tag} instead of hvc1 (Apple players refuse hev1)")
            if d.container != "wav" and expected_tc is not None and info.start_timecode != str(expected_tc):
                problems.append(f"start timecode {info.start_timecode} instead of {expected_tc}")
            checks.append(f"video {vs.codec} {vs.profile or ''} {vs.pix_fmt} {vs.width}x{vs.height} @ {vs.frame_rate}"
                          + (f", timecode {info.start_timecode}" if info.start_timecode else ""))
    # Channels of each output track, per audio map: [n], or [1] * n for a map split into mono tracks.
    map_tracks: list[list[int]] = []
    for i, amap in enumerate(d.audio):
        n = _map_channels(d, i, spec)
        map_tracks.append([1] * n if amap.mono_tracks else [n])
    want_channels = [c for tracks in map_tracks for c in tracks]
    if len(info.audio) != len(want_channels):
        problems.append(f"{len(info.audio)} audio streams instead of {len(want_channels)}")
    else:
        for i, (want, a) in enumerate(zip(want_channels, info.audio, strict=True)):
            if a.channels != want:
                problems.append(f"audio track {i + 1} has {a.channels} channels instead of {want}")
            if a.sample_rate_hz != spec.audio.sample_rate_hz:
                problems.append(f"audio track {i + 1} is {a.sample_rate_hz} Hz instead of {spec.audio.sample_rate_hz}")
        checks.append(f"{len(info.audio)} audio track(s): "
                      + ", ".join(f"{a.codec} {a.channels} ch" for a in info.audio))
    tol_s = 1.0 / float(info.primary_video.frame_rate) if info.primary_video else 1.0 / 25
    got_s = info.duration_s or 0.0
    if abs(got_s - expected_s) > tol_s + 0.03:  # + one AAC frame of priming/padding
        problems.append(f"duration {got_s:.3f} s instead of {expected_s:.3f} s")
    else:
        checks.append(f"duration {got_s:.3f} s (master programme {expected_s:.3f} s)")
    if not problems and any(a.loudness_target_lufs is not None or a.downmix for a in d.audio):
        from tasks.audio.loudness import measure_media

        results = measure_media(path)
        for i, amap in enumerate(d.audio):
            result = results[sum(len(tracks) for tracks in map_tracks[:i])]  # the map's first output track
            if amap.loudness_target_lufs is None:
                # BS.775 Lo/Ro sums up to three channels: a mix legal in 5.1 can clip in 2.0.
                if amap.downmix and result.sample_peak_dbfs is not None and result.sample_peak_dbfs >= _CLIP_DBFS:
                    problems.append(f"audio track {i + 1}: the {amap.downmix} downmix clips (sample peak "
                                    f"{result.sample_peak_dbfs:.2f} dBFS); give the map loudness_target_lufs and "
                                    "max_true_peak_dbtp so deliver corrects it")
                continue
            tol = _PCM_TOLERANCE_LU if amap.codec.startswith("pcm") else _AAC_TOLERANCE_LU
            got = result.integrated_lufs
            if got is None or abs(got - amap.loudness_target_lufs) > tol:
                problems.append(f"audio track {i + 1} integrated {got} LUFS instead of {amap.loudness_target_lufs} "
                                f"±{tol} LU")
            elif amap.max_true_peak_dbtp is not None and result.true_peak_dbtp is not None and \
                    result.true_peak_dbtp > amap.max_true_peak_dbtp + (0.1 if amap.codec.startswith("pcm") else 1.0):
                problems.append(f"audio track {i + 1} true peak {result.true_peak_dbtp:.2f} dBTP above "
                                f"{amap.max_true_peak_dbtp} dBTP")
            else:
                checks.append(f"audio track {i + 1} {got:.2f} LUFS (target {amap.loudness_target_lufs})")
    if not problems:
        # A full decode catches truncated or corrupt essence that probing cannot see.
        decode = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
                            what=f"verification decode of {d.id}")
        if decode.stderr_tail.strip():
            problems.append(f"decode errors: {decode.stderr_tail.splitlines()[-1]}")
        else:
            checks.append("full decode clean")
    if problems:
        raise VerificationError(f"deliverable {d.id} failed verification after writing: {'; '.join(problems)}. "
                                "The file was not kept; check the deliverable's settings in the spec.")
    return info, checks
