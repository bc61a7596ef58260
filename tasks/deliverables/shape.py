"""What a deliverable takes from the married master: the frames it keeps (the head before the FFOA is
dropped unless it asks for it), its scan, its colour description and the master audio tracks and channels of
each audio map. The graph builds these and verification expects them, from the same functions.

Timecode: SMPTE ST 12-1; FFOA = first frame of action. Colour tags as ffprobe names them (ITU-T H.273).
"""

from __future__ import annotations

from fractions import Fraction

from specs.errors import BadInputError
from specs.model import Deliverable, Spec
from specs.timecode import Timecode
from tasks.media.probe import COLOUR_TAGS, MediaInfo, colour_tag, pix_depth

__all__ = ["head_frames", "programme_first_frame", "master_frames", "expected_duration_s", "is_scaled",
           "keeps_fields", "tone_maps", "out_colour", "master_colour", "assumed_colour", "converted_colour",
           "ColourTags", "audio_sources", "map_channels", "HDR_TRANSFERS"]

HDR_TRANSFERS = ("smpte2084", "arib-std-b67")  # PQ (ST 2084) and HLG (BT.2100), as ffprobe names them
ColourTags = tuple[str | None, str | None, str | None, str | None]  # (primaries, transfer, matrix, range)
# SDR colour spaces zimg (ffmpeg's zscale) converts between, by ffprobe's names (ITU-T H.273 Tables 2-4); the
# gamma 2.2 / 2.8 transfers are zimg's bt470m / bt470bg.
_CONVERTIBLE = (
    {"bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020", "smpte428", "smpte431", "smpte432",
     "jedec-p22"},
    {"bt709", "smpte170m", "gamma22", "gamma28", "bt2020-10", "bt2020-12", "iec61966-2-1", "iec61966-2-4"},
    {"bt709", "bt470bg", "smpte170m", "fcc", "ycgco", "bt2020nc", "bt2020c", "chroma-derived-nc"},
    {"tv", "pc"})


def _start_and_ffoa(spec: Spec, master: MediaInfo) -> tuple[Timecode, int]:
    """(start timecode of the master, frames from it to the spec's FFOA: 0 without one, or before the start)."""
    v = master.primary_video
    assert v is not None
    start = Timecode.parse(master.start_timecode, v.frame_rate) if master.start_timecode else Timecode(0, v.frame_rate)
    if not spec.timing.ffoa_timecode:
        return start, 0
    ffoa = Timecode.parse(spec.timing.ffoa_timecode, v.frame_rate, drop_frame=start.drop_frame)
    return start, max(ffoa.frames - start.frames, 0)


def head_frames(d: Deliverable, spec: Spec, master: MediaInfo) -> tuple[Timecode, int]:
    """(start timecode of the master, frames to drop before the FFOA for this deliverable)."""
    start, head = _start_and_ffoa(spec, master)
    if d.include_head:
        return start, 0
    if head >= master_frames(master) > 0:  # a forced run past a QC timing error would make an empty file
        raise BadInputError(f"{master.path}: the spec's first frame of action {spec.timing.ffoa_timecode} is past the "
                            f"master's end (it starts at {start}, {master_frames(master)} frames); give a master "
                            f"whose timecode reaches it, or set timing.ffoa_timecode for this master in the spec")
    return start, head


def programme_first_frame(spec: Spec, master: MediaInfo) -> int:
    """Frame index of the FFOA in the master (0 without a spec FFOA or a master start timecode)."""
    return _start_and_ffoa(spec, master)[1] if master.start_timecode else 0


def master_frames(master: MediaInfo) -> int:
    v = master.primary_video
    assert v is not None
    return v.frame_count or round(Fraction(v.duration_s or master.duration_s or 0.0) * v.frame_rate)


def expected_duration_s(d: Deliverable, spec: Spec, master: MediaInfo) -> float:
    v = master.primary_video
    if v is None:
        return master.duration_s or 0.0
    _, head = head_frames(d, spec, master)
    return float(Fraction(max(master_frames(master) - head, 0)) / v.frame_rate)


def is_scaled(d: Deliverable, master: MediaInfo) -> bool:
    v = master.primary_video
    assert v is not None and d.video is not None
    return bool(d.video.width and d.video.height and (d.video.width, d.video.height) != (v.width, v.height))


def keeps_fields(d: Deliverable, master: MediaInfo) -> bool:
    """An interlaced master stays interlaced in a mezzanine at its own size (a broadcaster's 1080i file)."""
    v = master.primary_video
    assert v is not None
    return v.scan == "interlaced" and d.kind == "mezzanine" and not is_scaled(d, master)


def assumed_colour(spec: Spec | None, master: MediaInfo) -> dict[str, str]:
    """The colour tags the master lacks and the spec states (``picture.colour`` field -> the spec's value).

    An untagged or partly tagged master is taken to be in the spec's colour space: its deliverables carry the
    spec's tags where the master carries none (QC reports it as ``metadata.colour_untagged``)."""
    v = master.primary_video
    want = spec.picture.colour if spec is not None else None
    if v is None or want is None:
        return {}
    return {name: value for name, attr in COLOUR_TAGS.items()
            if (value := getattr(want, name)) and colour_tag(getattr(v, attr)) is None}


def master_colour(spec: Spec | None, master: MediaInfo) -> ColourTags:
    """(primaries, transfer, matrix, range) of the master's picture: its own tags, the spec's where it has none."""
    v = master.primary_video
    assert v is not None
    assumed = assumed_colour(spec, master)
    p, t, m, r = (assumed.get(name) or colour_tag(getattr(v, attr)) for name, attr in COLOUR_TAGS.items())
    return p, t, m, r


def converted_colour(spec: Spec | None, master: MediaInfo) -> tuple[ColourTags, ColourTags] | None:
    """(the master's colour, the spec's) when an SDR master's tags differ from the SDR colour space the spec states:
    its picture deliverables are converted into the spec's (primaries, transfer, matrix and range, each where the
    spec states it). None when they match, when either is HDR (an HDR master is tone-mapped instead), or when the
    master's colour space is not known well enough to convert (then its own tags are kept and QC reports them)."""
    want = spec.picture.colour if spec is not None else None
    if want is None or master.primary_video is None:
        return None
    have = master_colour(spec, master)
    p, t, m, r = (getattr(want, name) or tag for name, tag in zip(COLOUR_TAGS, have, strict=True))
    to: ColourTags = (p, t, m, r)
    if to == have or have[1] in HDR_TRANSFERS or to[1] in HDR_TRANSFERS:
        return None
    # An unsignalled range is limited (H.273 VideoFullRangeFlag 0); everything else must be named to convert.
    source: ColourTags = (*have[:3], have[3] or "tv")
    target: ColourTags = (*to[:3], to[3] or source[3])
    if any(tag not in known for tag, known in zip((*source, *target), _CONVERTIBLE * 2, strict=True)):
        return None
    return source, target


def tone_maps(d: Deliverable, spec: Spec | None, master: MediaInfo) -> bool:
    """Whether ``d`` is an SDR picture made from an HDR (PQ or HLG) master."""
    v = master.primary_video
    assert v is not None and d.video is not None
    if master_colour(spec, master)[1] not in HDR_TRANSFERS or d.video.tone_map == "off":
        return False
    return d.video.tone_map == "sdr" or (pix_depth(d.video.pix_fmt or v.pix_fmt) or 8) <= 8


def out_colour(d: Deliverable, spec: Spec | None, master: MediaInfo) -> ColourTags:
    """(primaries, transfer, matrix, range) a picture deliverable carries: the master's (the spec's where the master
    is untagged, :func:`master_colour`), the spec's once converted (:func:`converted_colour`), BT.709 once
    tone-mapped."""
    if tone_maps(d, spec, master):
        return "bt709", "bt709", "bt709", "tv"
    if (conversion := converted_colour(spec, master)) is not None:
        return conversion[1]
    return master_colour(spec, master)


def audio_sources(d: Deliverable, spec: Spec, master: MediaInfo) -> list[int]:
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


def map_channels(d: Deliverable, i: int, spec: Spec) -> int:
    """Channels of audio map ``i`` of ``d`` (2 for a downmix, else its spec track's)."""
    amap = d.audio[i]
    track = next((t for t in spec.audio.tracks if t.id == amap.from_track), None)
    return 2 if amap.downmix == "2.0" or track is None else len(track.channels)
