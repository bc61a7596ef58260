"""The ffmpeg-python graphs that make deliverables.

:func:`deliverables_graph` is the one-decode graph: the master's picture is decoded once and ``split`` to
every picture output (each with its own trim, scale, burn-ins and encoder), its audio tracks are ``asplit``
to every output that maps them (downmixed where asked), audio-only deliverables (WAV/BWF stems, downmixes)
and the poster frame / thumbnails ride in the same run; loudness-corrected tracks enter as extra inputs.
:func:`deliverable_graph` / :func:`deliverable_args` make one deliverable alone (its own decode, same
encoder arguments): the benchmark's baseline. :func:`correction_source_graph` renders one audio map for the
loudness-correction pre-pass with the same audio chain.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import ffmpeg

from specs.errors import BadInputError
from specs.layouts import ffmpeg_layout
from specs.model import AVC_INTRA_PIX_FMT, Deliverable, Spec
from specs.timecode import Timecode
from tasks.deliverables.naming import RunFields, fill_text
from tasks.deliverables.shape import (
    ColourTags,
    assumed_colour,
    audio_sources,
    converted_colour,
    head_frames,
    is_scaled,
    keeps_fields,
    map_channels,
    master_colour,
    master_frames,
    out_colour,
    programme_first_frame,
    tone_maps,
)
from tasks.media.ffmpeg import compile_args
from tasks.media.probe import MediaInfo, tagged_light_level

__all__ = ["deliverables_graph", "outputs_graph", "GraphOutput", "deliverable_graph", "deliverable_args",
           "correction_source_graph", "DOWNMIX_20", "THUMB_WIDTH_PX"]

# ITU-R BS.775 Lo/Ro downmix from L R C LFE Ls Rs (LFE omitted, centre and surrounds at -3 dB).
DOWNMIX_20 = "pan=stereo|c0=c0+0.7071*c2+0.7071*c4|c1=c1+0.7071*c2+0.7071*c5"
_PRORES_PROFILES = {"proxy": "0", "lt": "1", "standard": "2", "422": "2", "hq": "3", "4444": "4", "4444xq": "5"}
_BURNIN_FONT = "DejaVu Sans Mono"
_SDR_WHITE_NITS = 100  # SDR reference white: BT.1886 / BT.2408 diffuse white mapped to 1.0
_DEFAULT_HDR_PEAK_NITS = 1000  # when the master carries no MaxCLL: the usual HDR10 grading monitor
# Picture sizes x264 writes for each AVC-Intra class (SMPTE RP 2027): class 50 is horizontally subsampled.
_AVC_INTRA_SIZES = {50: ((1440, 1080), (960, 720)), 100: ((1920, 1080), (1280, 720)),
                    200: ((1920, 1080), (1280, 720))}
THUMB_WIDTH_PX = 480

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


def _sdr_filters(master: MediaInfo, pix_fmt: str) -> list[_Filter]:
    """HDR -> SDR BT.709: to linear light (100 cd/m2 = 1.0), BT.2020 -> BT.709 primaries, Hable's curve with
    the master's MaxCLL (else 1000 cd/m2) as peak, then BT.1886 (display-referred, zimg's bt709), limited range."""
    peak_nits = tagged_light_level(master.path)[0] or _DEFAULT_HDR_PEAK_NITS
    return [_f("zscale", t="linear", npl=_SDR_WHITE_NITS), _f("format", "gbrpf32le"), _f("zscale", p="bt709"),
            _f("tonemap", tonemap="hable", desat=0, peak=f"{peak_nits / _SDR_WHITE_NITS:g}"),
            *_zscale_filters((None, "bt709", "bt709", "tv"), pix_fmt)]


_ZSCALE_NAMES = {"gamma22": "bt470m", "gamma28": "bt470bg"}  # zimg's names for ffprobe's gamma transfers


def _zscale_filters(target: ColourTags, pix_fmt: str, source: ColourTags | None = None) -> list[_Filter]:
    """The picture into ``target`` (primaries, transfer, matrix, range; None: unchanged) with zimg, from ``source``
    (None: the frames' own tags), then ``pix_fmt``. zimg goes through linear light when the primaries change."""
    names = dict(zip(("p", "t", "m", "r"), target, strict=True))
    names |= dict(zip(("pin", "tin", "min", "rin"), source, strict=True)) if source else {}
    return [_f("zscale", **{k: _ZSCALE_NAMES.get(v, v) for k, v in names.items() if v}), _f("format", pix_fmt)]


def _colour_filters(spec: Spec, master: MediaInfo) -> list[_Filter]:
    """An untagged (or partly tagged) master's frames labelled with the spec's colour space, first in the chain:
    tone-mapping reads the transfer from the frames, and encoders that write the tags in the bitstream (ProRes
    frame header, Apple ProRes RDD 36 §5.3.3) take them from the frames, not from the output options."""
    if not assumed_colour(spec, master):
        return []  # a tagged master's frames already carry its tags (and its deliverables stay bit-identical)
    tags = dict(zip(("color_primaries", "color_trc", "colorspace", "range"), master_colour(spec, master),
                    strict=True))
    return [_f("setparams", **{k: value for k, value in tags.items() if value})]


def _video_filters(d: Deliverable, spec: Spec, master: MediaInfo, out_start: Timecode,
                   fields: RunFields) -> list[_Filter]:
    """Colour labels of an untagged master, deinterlace, scale, tone-map or colour conversion, burn-in timecode/text
    and watermark for one picture deliverable (in that order: burn-ins are drawn in the output's range)."""
    v = master.primary_video
    assert v is not None and d.video is not None
    enc = d.video
    vf: list[_Filter] = _colour_filters(spec, master)
    if v.scan == "interlaced" and not keeps_fields(d, master):
        # Screeners, proxies and rescaled copies are progressive: scaling or viewing fields combs the picture.
        vf.append(_f("bwdif", mode="send_frame", parity="auto"))
    if is_scaled(d, master):
        vf.append(_f("scale", w=enc.width, h=enc.height, flags="lanczos"))
    if tone_maps(d, spec, master):
        vf += _sdr_filters(master, enc.pix_fmt or "yuv420p")
    elif (conversion := converted_colour(spec, master)) is not None:
        # A tagged SDR master in another colour space than the spec's (BT.601, BT.2020 SDR ...): converted, not
        # relabelled, so the deliverable shows the same colours under the spec's tags.
        convert = _zscale_filters(conversion[1], enc.pix_fmt or v.pix_fmt or "yuv420p", source=conversion[0])
        if keeps_fields(d, master):
            # Field by field: converting the woven frame would resample 4:2:0 chroma across the two fields. The
            # master's field order (not the decoder's frame flag, which ProRes may not set) says which comes first;
            # weave stamps a frame with its second field's time, half a frame late: set back.
            first = "bottom" if (v.field_order or "tt") in ("bb", "tb") else "top"  # the field shown first
            convert = [_f("setfield", "bff" if first == "bottom" else "tff"), _f("separatefields"), *convert,
                       _f("weave", first_field=first), _f("setpts", "PTS-0.5/(FRAME_RATE*TB)")]
        vf += convert
    font = {"font": _BURNIN_FONT}
    if d.burn_in is not None and d.burn_in.timecode:
        rate = f"{v.frame_rate.numerator}/{v.frame_rate.denominator}"
        vf.append(_f("drawtext", **font, timecode=str(out_start), rate=rate, fontsize="h/14", fontcolor="white",
                     box=1, boxcolor="black@0.6", x="(w-tw)/2", y="h-th-h/20"))
    if d.burn_in is not None and d.burn_in.text:
        vf.append(_f("drawtext", **font, text=_escape_drawtext(fill_text(d.burn_in.text, fields, d)), fontsize="h/18",
                     fontcolor="white", box=1, boxcolor="black@0.6", x="(w-tw)/2", y="h/20"))
    if d.watermark is not None:
        if "{recipient}" in d.watermark.text and not fields.recipient:
            raise BadInputError(f"deliverable {d.id}: the watermark names the recipient; pass --recipient")
        alpha = f"{d.watermark.opacity:.2f}"
        vf.append(_f("drawtext", **font, text=_escape_drawtext(fill_text(d.watermark.text, fields, d)), fontsize="h/12",
                     fontcolor=f"white@{alpha}", x="(w-tw)/2", y="(h-th)/2"))
        if fields.recipient:
            # Who received this copy and when: the anti-piracy trace, under the spec's text.
            trace = _escape_drawtext(f"{fields.recipient} · {fields.date}")
            vf.append(_f("drawtext", **font, text=trace, fontsize="h/18", fontcolor=f"white@{alpha}", x="(w-tw)/2",
                         y="(h/2)+h/10"))
    return vf


def _video_codec_args(d: Deliverable, spec: Spec, master: MediaInfo) -> dict[str, Any]:
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
        size = (enc.width, enc.height) if is_scaled(d, master) else (v.width, v.height)
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
    if keeps_fields(d, master):
        # Interlaced DCT (+ motion estimation) and the master's field order in the container.
        args |= {"flags": "+ildct+ilme" if enc.codec == "libx264" else "+ildct", "field_order": v.field_order or "tt"}
    if enc.codec == "libx265" and d.container in ("mov", "mp4"):
        args["tag:v"] = "hvc1"  # ffmpeg's default hev1 does not play in QuickTime, Safari or on Apple devices
    # The colour description of the master (the spec's where the master has none or was converted; BT.709 once
    # tone-mapped) on every picture deliverable: H.264/HEVC VUI (ITU-T H.264 Annex E), the MOV/MP4 'colr' atom
    # (nclc/nclx, written by ffmpeg's mov muxer whenever tags are set) and the MXF picture descriptor (SMPTE ST 377-1
    # Annex G).
    for flag, value in zip(("color_primaries", "color_trc", "colorspace", "color_range"), out_colour(d, spec, master),
                           strict=True):
        if value:
            args[flag] = value
    return args


def _audio_filter_node(d: Deliverable, i: int, spec: Spec, src: int) -> _Filter:
    """Audio map ``i``'s downmix (pan's one option is named ``args``) or its track's channel layout."""
    if d.audio[i].downmix == "2.0":
        return _f("pan", args=DOWNMIX_20.removeprefix("pan="))
    return _f("aformat", channel_layouts=ffmpeg_layout(spec.audio.tracks[src].layout) or "stereo")


def _audio_chain(d: Deliverable, i: int, spec: Spec, master: MediaInfo, src: int, head: int) -> list[_Filter]:
    """Master track ``src`` -> audio map ``i`` of ``d``: the ``head`` frames it drops cut sample-exact, then
    :func:`_audio_filter_node` (the one-decode graph and the loudness-correction pre-pass alike)."""
    v = master.primary_video
    assert v is not None
    sr = master.audio[src].sample_rate_hz
    trim = [_f("atrim", start_sample=round(Fraction(head) / v.frame_rate * sr)), _f("asetpts", "N/SR/TB")]
    return [*(trim if head else []), _audio_filter_node(d, i, spec, src)]


def _map_tracks(d: Deliverable, i: int, spec: Spec, src: int, stream: Any) -> list[Any]:
    """The output tracks of audio map ``i``: ``stream``, or one mono track per channel in the track's order."""
    n = map_channels(d, i, spec)
    if not d.audio[i].mono_tracks or n == 1:
        return [stream]
    layout = "stereo" if d.audio[i].downmix == "2.0" else ffmpeg_layout(spec.audio.tracks[src].layout) or "stereo"
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
    start, head = head_frames(d, spec, master)
    out_start = start + head
    # Input seek + re-encode is frame-accurate in ffmpeg (accurate_seek is the default).
    src = ffmpeg.input(master.path, **({"ss": f"{float(Fraction(head) / v.frame_rate):.6f}"} if head else {}))
    streams: list[Any] = []
    opts: dict[str, Any] = {}
    if d.video is not None:
        streams.append(_chain(src[str(v.index)], _video_filters(d, spec, master, out_start, fields)))
        opts |= _video_codec_args(d, spec, master)
    for i, a in enumerate(audio_sources(d, spec, master)):
        for track in _map_tracks(d, i, spec, a, _chain(src[f"a:{a}"], [_audio_filter_node(d, i, spec, a)])):
            opts |= _audio_codec_args(d, i, spec, a, len(streams) - (d.video is not None))
            streams.append(track)
    return ffmpeg.output(*streams, str(out_path), **opts, **_container_args(d, master, out_start, fields))


def deliverable_args(d: Deliverable, spec: Spec, master: MediaInfo, out_path: Path, *, title: str,
                     fields: RunFields | None = None) -> list[str]:
    """ffmpeg arguments that make deliverable ``d`` alone (its own decode): the baseline."""
    return compile_args(deliverable_graph(d, spec, master, out_path, fields=fields or RunFields(title=title)))


def correction_source_graph(d: Deliverable, i: int, spec: Spec, master: MediaInfo, src: int, head: int,
                            out_path: Path) -> Any:
    """Audio map ``i`` of ``d`` from master track ``src`` (trimmed and downmixed by :func:`_audio_chain`) to a
    32-bit float WAV: the input of the loudness-correction pre-pass."""
    audio = _chain(ffmpeg.input(master.path)[f"a:{src}"], _audio_chain(d, i, spec, master, src, head))
    return ffmpeg.output(audio, str(out_path), **{"c:a": "pcm_f32le"}, rf64="auto", f="wav")


def _extra_frames(spec: Spec, master: MediaInfo, n: int) -> list[int]:
    """Master frame of the poster (first) and of each of the ``n - 1`` thumbnails."""
    frames = master_frames(master)
    first = programme_first_frame(spec, master)
    programme = max(frames - first, 1)
    poster_frame = first + programme // 3  # a third in: past titles, before credits
    return [poster_frame] + [first + (2 * k + 1) * programme // (2 * max(n - 1, 1)) for k in range(n - 1)]


class GraphOutput(NamedTuple):
    """One deliverable of a one-decode graph: what it is, the spec and run fields it is made for (a plan's graph
    makes several distributors' deliverables), where it goes, and its loudness-corrected audio maps (map
    index -> WAV, already trimmed and downmixed)."""

    deliverable: Deliverable
    spec: Spec
    fields: RunFields
    path: Path
    corrected: dict[int, Path]


def deliverables_graph(todo: list[Deliverable], spec: Spec, master: MediaInfo, outputs: dict[str, Path],
                       corrected: dict[tuple[str, int], Path], extras: list[Path], fields: RunFields) -> Any:
    """The one-decode ffmpeg-python graph of one spec: every deliverable of ``todo`` to ``outputs[d.id]``, extras
    to ``extras``; ``corrected`` (deliverable id, map index) -> WAV (see :func:`outputs_graph`)."""
    return outputs_graph([GraphOutput(d, spec, fields, outputs[d.id],
                                      {i: p for (k, i), p in corrected.items() if k == d.id}) for d in todo],
                         master, [(spec, extras)] if extras else [])


def outputs_graph(todo: list[GraphOutput], master: MediaInfo, extras: list[tuple[Spec, list[Path]]]) -> Any:
    """The one-decode ffmpeg-python graph: every output of ``todo``, and each ``(spec, paths)`` set of poster
    frame + thumbnails, from ONE decode of ``master``, whichever spec each output belongs to.

    The master's picture is ``split`` to every picture output and each master audio track ``asplit`` to
    every output that maps it; loudness-corrected maps are extra inputs.
    """
    v = master.primary_video
    assert v is not None
    src = ffmpeg.input(master.path)
    pictures = [o for o in todo if o.deliverable.video is not None]
    n_video = len(pictures) + sum(len(paths) for _s, paths in extras)
    vstreams = iter(_fan_out(src[str(v.index)], n_video, audio=False))
    # Audio uses per master track, so that each track is decoded once and asplit.
    uses: dict[int, int] = {}
    for o in todo:
        for i, a in enumerate(audio_sources(o.deliverable, o.spec, master)):
            if i not in o.corrected:
                uses[a] = uses.get(a, 0) + 1
    astreams = {a: iter(_fan_out(src[f"a:{a}"], n, audio=True)) for a, n in uses.items()}
    outs: list[Any] = []
    for d, spec, fields, path, corrected in todo:
        start, head = head_frames(d, spec, master)
        out_start = start + head
        streams: list[Any] = []
        opts: dict[str, Any] = {}
        if d.video is not None:
            chain = ([_f("trim", start_frame=head), _f("setpts", "PTS-STARTPTS")] if head else [])
            chain += _video_filters(d, spec, master, out_start, fields)
            streams.append(_chain(next(vstreams), chain or [_f("null")]))
            opts |= _video_codec_args(d, spec, master)
        for i, a in enumerate(audio_sources(d, spec, master)):
            if i in corrected:
                audio = ffmpeg.input(str(corrected[i]))["a:0"]  # already trimmed and downmixed
            else:
                audio = _chain(next(astreams[a]), _audio_chain(d, i, spec, master, a, head))
            for track in _map_tracks(d, i, spec, a, audio):
                opts |= _audio_codec_args(d, i, spec, a, len(streams) - (d.video is not None))
                streams.append(track)
        outs.append(ffmpeg.output(*streams, str(path), **opts, **_container_args(d, master, out_start, fields)))
    for spec, paths in extras:
        for k, (p, frame) in enumerate(zip(paths, _extra_frames(spec, master, len(paths)), strict=False)):
            chain = [_f("trim", start_frame=frame, end_frame=frame + 1)]
            if k:
                chain.append(_f("scale", w=f"min({THUMB_WIDTH_PX},iw)", h=-2))  # ffmpeg-python escapes the comma
            chain.append(_f("format", "yuvj420p"))
            outs.append(ffmpeg.output(_chain(next(vstreams), chain), str(p),
                                      **{"frames:v": 1, "update": 1, "q:v": 3, "f": "image2"}))
    return ffmpeg.merge_outputs(*outs)
