"""Writing D-Cinema track files: SMPTE ST 429-3 MXF, OP-Atom (ST 390), one essence track per file.

Layout, as ST 429-3 §6 and ST 390 §5 allow for OP-Atom: a closed complete header partition carrying the
header metadata and the essence (BodySID 1), a closed complete footer partition carrying the index table
(IndexSID 129), then the random index pack (ST 377-1 §12). Frames are written as they come (a generator
is never materialised); the header is written first with placeholder durations and rewritten in place at
the end; every field it holds has a fixed size, so the rewrite cannot move the essence.

Picture: RGBA essence descriptor + JPEG2000PictureSubDescriptor (ST 422 §5.4, ST 429-4), frame-wrapped
J2K (ST 422 §6), VBR index with one entry per frame. Sound: WAVE PCM descriptor (ST 382 §6) with ST 377-4
MCA label sub-descriptors (a soundfield group + one channel label per channel, ST 429-2 channel
assignment by MCA), frame-wrapped in edit units of one picture frame (ST 429-3 §7.3), CBR index.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from specs.errors import BadInputError, MediaError
from tasks.media.files import atomic_output
from tasks.mxf import klv
from tasks.mxf.j2k_header import J2KMainHeader, parse_main_header
from tasks.mxf.labels import (
    ITEMS,
    JP2K_ELEMENT_KEY,
    KEY,
    MCA_CHANNELS,
    MCA_SOUNDFIELDS,
    UL,
    WAVE_ELEMENT_KEY,
    track_number,
)

__all__ = ["TrackFileInfo", "write_picture_track", "write_sound_track", "samples_per_frame", "BODY_SID",
           "INDEX_SID", "DEFAULT_INDEX_ENTRIES_PER_SEGMENT"]

BODY_SID = 1
INDEX_SID = 129
#: A local set's item length is 16 bits (ST 377-1 §9.6): 11-byte VBR entries, at most 5957 per segment.
DEFAULT_INDEX_ENTRIES_PER_SEGMENT = 4096
PRODUCT_UID = uuid.UUID("7a1c3a52-0f1e-4b0e-9d7c-64656c697672")  # deliver's own product id (ST 377-1 §10.2)
AUDIO_SAMPLE_RATE = 48000
AUDIO_BYTES_PER_SAMPLE = 3  # 24-bit PCM (ST 428-2 §6)


@dataclass(frozen=True)
class TrackFileInfo:
    """What a written track file is: enough for the CPL/PKL and for verification."""

    path: Path
    kind: str  # "picture" | "sound"
    asset_id: uuid.UUID
    edit_rate: Fraction
    duration: int  # edit units (frames)
    size_bytes: int
    stored_width: int = 0
    stored_height: int = 0
    channel_count: int = 0
    layout: str = ""
    sample_rate: int = 0
    max_frame_bytes: int = 0


def samples_per_frame(edit_rate: Fraction, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
    """Audio samples per edit unit; D-Cinema rates give a whole number (ST 429-2 §6.2)."""
    spf = Fraction(sample_rate) / edit_rate
    if spf.denominator != 1:
        raise BadInputError(f"a {float(edit_rate):g} fps DCP has {float(spf):g} audio samples a frame, not a whole "
                            "number; use a D-Cinema frame rate (24, 25, 30, 48, 50, 60)")
    return int(spf)


# --- header metadata -----------------------------------------------------------------------------------

class _Metadata:
    """Collects local sets, then codes them with a primer pack holding every tag used (ST 377-1 §9.2)."""

    def __init__(self) -> None:
        self.sets: list[tuple[bytes, list[tuple[str, bytes]]]] = []

    def add(self, key_name: str, items: list[tuple[str, bytes]]) -> bytes:
        uid = uuid.uuid4().bytes
        self.sets.append((KEY[key_name], [("InstanceUID", uid), *items]))
        return uid

    def encode(self) -> bytes:
        dynamic: dict[str, int] = {}
        next_tag = 0xFFFF
        for _key, items in self.sets:
            for name, _value in items:
                if ITEMS[name][0] == 0 and name not in dynamic:
                    dynamic[name] = next_tag
                    next_tag -= 1
        used = {name for _key, items in self.sets for name, _value in items}

        def tag_of(name: str) -> int:
            return ITEMS[name][0] or dynamic[name]

        entries = sorted((tag_of(n), ITEMS[n][1]) for n in used)
        primer = klv.klv(KEY["primer"], klv.batch([klv.u16(t) + ul for t, ul in entries], 18))
        body = b"".join(klv.local_set(key, [(tag_of(n), v) for n, v in items]) for key, items in self.sets)
        return primer + body


def _refs(uids: Iterable[bytes]) -> bytes:
    return klv.batch(list(uids), 16)


@dataclass
class _TrackPlan:
    kind: str
    edit_rate: Fraction
    element_key: bytes
    essence_container: bytes
    asset_id: uuid.UUID
    descriptor: list[tuple[str, bytes]]
    descriptor_key: str
    subdescriptors: list[tuple[str, list[tuple[str, bytes]]]]
    material_id: uuid.UUID = field(default_factory=uuid.uuid4)
    created: bytes = field(default_factory=klv.timestamp)


def _header_metadata(plan: _TrackPlan, duration: int) -> bytes:
    """The header metadata of an OP-Atom track file holding ``duration`` edit units."""
    md = _Metadata()
    rate = klv.rational(plan.edit_rate)
    data_def = UL["picture_def"] if plan.kind == "picture" else UL["sound_def"]
    file_umid, material_umid = klv.umid_for(plan.asset_id), klv.umid_for(plan.material_id)
    tc_base = round(plan.edit_rate)

    def package(key: str, umid: bytes, name: str, essence_track_number: int, clip_source: bytes,
                clip_track: int, extra: list[tuple[str, bytes]]) -> bytes:
        tc = md.add("timecode_component", [("DataDefinition", UL["timecode_def"]), ("Duration", klv.u64(duration)),
                                            ("RoundedTimecodeBase", klv.u16(tc_base)),
                                            ("StartTimecode", klv.u64(0)), ("DropFrame", klv.u8(0))])
        tc_seq = md.add("sequence", [("DataDefinition", UL["timecode_def"]), ("Duration", klv.u64(duration)),
                                     ("StructuralComponents", _refs([tc]))])
        tc_track = md.add("track", [("TrackID", klv.u32(1)), ("TrackNumber", klv.u32(0)),
                                    ("TrackName", klv.utf16("Timecode Track")), ("EditRate", rate),
                                    ("Origin", klv.u64(0)), ("Sequence", tc_seq)])
        clip = md.add("source_clip", [("DataDefinition", data_def), ("Duration", klv.u64(duration)),
                                      ("StartPosition", klv.u64(0)), ("SourcePackageID", clip_source),
                                      ("SourceTrackID", klv.u32(clip_track))])
        seq = md.add("sequence", [("DataDefinition", data_def), ("Duration", klv.u64(duration)),
                                  ("StructuralComponents", _refs([clip]))])
        track = md.add("track", [("TrackID", klv.u32(2)), ("TrackNumber", klv.u32(essence_track_number)),
                                 ("TrackName", klv.utf16(f"{plan.kind.title()} Track")), ("EditRate", rate),
                                 ("Origin", klv.u64(0)), ("Sequence", seq)])
        return md.add(key, [("PackageUID", umid), ("Name", klv.utf16(name)),
                            ("PackageCreationDate", plan.created), ("PackageModifiedDate", plan.created),
                            ("Tracks", _refs([tc_track, track])), *extra])

    subs = [md.add(k, items) for k, items in plan.subdescriptors]
    descriptor = md.add(plan.descriptor_key, [
        *(([("SubDescriptors", _refs(subs))]) if subs else []), ("LinkedTrackID", klv.u32(2)),
        ("SampleRate", rate), ("ContainerDuration", klv.u64(duration)),
        ("EssenceContainer", plan.essence_container), *plan.descriptor])
    source = package("source_package", file_umid, "File Package: SMPTE ST 429-3 frame wrapping",
                     track_number(plan.element_key), klv.ZERO_UMID, 0, [("Descriptor", descriptor)])
    material = package("material_package", material_umid, "Material Package", 0, file_umid, 2, [])
    ecd = md.add("essence_container_data", [("LinkedPackageUID", file_umid), ("IndexSID", klv.u32(INDEX_SID)),
                                            ("BodySID", klv.u32(BODY_SID))])
    storage = md.add("content_storage", [("Packages", _refs([material, source])),
                                         ("EssenceContainerData", _refs([ecd]))])
    ident = md.add("identification", [
        ("ThisGenerationUID", uuid.uuid4().bytes), ("CompanyName", klv.utf16("deliver")),
        ("ProductName", klv.utf16("deliver DCP track file writer")),
        ("ProductVersion", klv.u16(1) + klv.u16(0) * 3 + klv.u16(4)), ("VersionString", klv.utf16("1.0")),
        ("ProductUID", PRODUCT_UID.bytes), ("ModificationDate", plan.created), ("Platform", klv.utf16("deliver"))])
    # The Preface goes first (ST 377-1 §9.5.1); the sets were collected bottom-up, so move it to the front.
    md.add("preface", [("LastModifiedDate", plan.created), ("Version", klv.u16(0x0103)),
                       ("Identifications", _refs([ident])), ("ContentStorage", storage),
                       ("OperationalPattern", UL["op_atom"]),
                       ("EssenceContainers", klv.batch([plan.essence_container], 16)),
                       ("DMSchemes", klv.batch([], 16))])
    md.sets.insert(0, md.sets.pop())
    return md.encode()


def _partition_pack(key: bytes, this: int, previous: int, footer: int, header_bytes: int, index_bytes: int,
                    index_sid: int, body_sid: int, essence_container: bytes) -> bytes:
    """ST 377-1 §7.1 partition pack (version 1.2, KAG 1)."""
    value = (klv.u16(1) + klv.u16(2) + klv.u32(1) + klv.u64(this) + klv.u64(previous) + klv.u64(footer)
             + klv.u64(header_bytes) + klv.u64(index_bytes) + klv.u32(index_sid) + klv.u64(0) + klv.u32(body_sid)
             + UL["op_atom"] + klv.batch([essence_container], 16))
    return klv.klv(key, value)


def _index_segments(edit_rate: Fraction, entries: list[int] | None, duration: int, edit_unit_bytes: int,
                    per_segment: int) -> bytes:
    """Index table segments (ST 377-1 §11): CBR (one segment, EditUnitByteCount) or VBR (StreamOffset per
    edit unit, split so each IndexEntryArray stays under the 64 KiB local-set item limit)."""
    def segment(start: int, count: int, body: list[tuple[str, bytes]]) -> bytes:
        items = [("InstanceUID", uuid.uuid4().bytes), ("IndexEditRate", klv.rational(edit_rate)),
                 ("IndexStartPosition", klv.u64(start)), ("IndexDuration", klv.u64(count)),
                 ("EditUnitByteCount", klv.u32(edit_unit_bytes)), ("IndexSID", klv.u32(INDEX_SID)),
                 ("BodySID", klv.u32(BODY_SID)), ("SliceCount", klv.u8(0)), ("PosTableCount", klv.u8(0)), *body]
        return klv.local_set(KEY["index_segment"], [(ITEMS[n][0], v) for n, v in items])

    if entries is None:
        return segment(0, duration, [])
    delta = klv.batch([bytes([0, 0]) + klv.u32(0)], 6)  # one element, slice 0, delta 0
    out = b""
    for start in range(0, max(len(entries), 1), per_segment):
        chunk = entries[start:start + per_segment]
        # TemporalOffset 0, KeyFrameOffset 0, Flags 0x80 (random access: every J2K frame is intra), StreamOffset.
        array = klv.batch([b"\x00\x00\x80" + klv.u64(off) for off in chunk], 11)
        out += segment(start, len(chunk), [("DeltaEntryArray", delta), ("IndexEntryArray", array)])
    return out


def _write_track(out: Path, plan: _TrackPlan, payloads: Iterator[bytes], *, cbr_bytes: int | None,
                 per_segment: int, overwrite: bool) -> tuple[int, int, int]:
    """Write the whole file; returns (duration, file size, largest payload).

    ST 429-3 §6.1 layout (three partitions): header (metadata only, BodySID 0), closed complete body
    partition holding the essence (BodySID 1), footer with the index table (IndexSID 129), RIP.
    """
    container = plan.essence_container

    def head_and_body(metadata: bytes, footer_at: int) -> bytes:
        header = _partition_pack(KEY["header_closed_complete"], 0, 0, footer_at, len(metadata), 0, 0, 0,
                                 container) + metadata
        body = _partition_pack(KEY["body_closed_complete"], len(header), 0, footer_at, 0, 0, 0, BODY_SID,
                               container)
        return header + body

    with atomic_output(out, overwrite=overwrite) as tmp, open(tmp, "w+b") as f:
        metadata = _header_metadata(plan, 0)
        f.write(head_and_body(metadata, 0))
        essence_start = f.tell()
        body_at = essence_start - len(_partition_pack(KEY["body_closed_complete"], 0, 0, 0, 0, 0, 0, BODY_SID,
                                                      container))
        offsets: list[int] = []
        biggest = 0
        for payload in payloads:
            offsets.append(f.tell() - essence_start)
            biggest = max(biggest, len(payload))
            f.write(klv.klv(plan.element_key, payload))
        duration = len(offsets)
        if duration == 0:
            raise MediaError(f"{out.name}: no {plan.kind} frames to write")
        footer_at = f.tell()
        index = _index_segments(plan.edit_rate, None if cbr_bytes else offsets, duration,
                                (cbr_bytes + 20) if cbr_bytes else 0, per_segment)
        f.write(_partition_pack(KEY["footer_closed_complete"], footer_at, body_at, footer_at, 0, len(index),
                                INDEX_SID, 0, container) + index)
        # RIP (ST 377-1 §12): (BodySID, offset) of every partition, then the pack's own length.
        rip_entries = b"".join(klv.u32(sid) + klv.u64(at) for sid, at in ((0, 0), (BODY_SID, body_at),
                                                                          (0, footer_at)))
        f.write(klv.klv(KEY["rip"], rip_entries + klv.u32(16 + 4 + len(rip_entries) + 4)))
        size = f.tell()
        rewritten = head_and_body(_header_metadata(plan, duration), footer_at)
        if len(rewritten) != essence_start:
            raise RuntimeError("MXF header changed size when rewritten")  # fixed-size fields: cannot happen
        f.seek(0)
        f.write(rewritten)
    return duration, size, biggest


# --- picture -------------------------------------------------------------------------------------------

def _picture_plan(first: J2KMainHeader, edit_rate: Fraction, stored_width: int, stored_height: int,
                  asset_id: uuid.UUID) -> _TrackPlan:
    coding = UL["jp2k_4k"] if stored_width > 2048 else UL["jp2k_2k"]
    sub = [("Rsize", klv.u16(first.rsiz)), ("Xsize", klv.u32(first.xsiz)), ("Ysize", klv.u32(first.ysiz)),
           ("XOsize", klv.u32(first.xosiz)), ("YOsize", klv.u32(first.yosiz)), ("XTsize", klv.u32(first.xtsiz)),
           ("YTsize", klv.u32(first.ytsiz)), ("XTOsize", klv.u32(first.xtosiz)),
           ("YTOsize", klv.u32(first.ytosiz)), ("Csize", klv.u16(len(first.components))),
           ("PictureComponentSizing", klv.batch([bytes(c) for c in first.components], 3)),
           ("CodingStyleDefault", first.cod), ("QuantizationDefault", first.qcd)]
    # RGBALayout (ST 377-1 G.2.39): X, Y, Z components of 12 bits each (ST 429-4 §5.2), 8 pairs.
    layout = bytes([0xD8, 12, 0xD9, 12, 0xDA, 12]) + bytes(10)
    descriptor = [("FrameLayout", klv.u8(0)), ("StoredWidth", klv.u32(stored_width)),
                  ("StoredHeight", klv.u32(stored_height)), ("DisplayWidth", klv.u32(stored_width)),
                  ("DisplayHeight", klv.u32(stored_height)),
                  ("AspectRatio", klv.rational(Fraction(stored_width, stored_height))),
                  ("VideoLineMap", klv.batch([klv.i32(0), klv.i32(0)], 4)),
                  ("PictureEssenceCoding", coding), ("ComponentMaxRef", klv.u32(4095)),
                  ("ComponentMinRef", klv.u32(0)), ("PixelLayout", layout)]
    return _TrackPlan("picture", edit_rate, JP2K_ELEMENT_KEY, UL["jp2k_frame_wrapped"], asset_id, descriptor,
                      "rgba_descriptor", [("jp2k_subdescriptor", sub)])


def write_picture_track(frames: Iterable[bytes], out: Path, edit_rate: Fraction, stored_width: int,
                        stored_height: int, *, asset_id: uuid.UUID | None = None, overwrite: bool = False,
                        index_entries_per_segment: int = DEFAULT_INDEX_ENTRIES_PER_SEGMENT) -> TrackFileInfo:
    """Wrap JPEG 2000 codestreams (one per frame, in order) into a ST 429-4 picture track file.

    ``frames`` is consumed once, lazily. The sub-descriptor copies the first frame's SIZ/COD/QCD; every frame
    must have the stored size. Raises MediaError on an empty stream or a frame that is not the stored size.
    """
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise MediaError(f"{out.name}: no picture frames to write") from None
    try:
        head = parse_main_header(first)
    except ValueError as e:
        raise MediaError(f"{out.name}: frame 0: {e}") from None
    if (head.width, head.height) != (stored_width, stored_height):
        raise MediaError(f"{out.name}: frame 0 is {head.width}x{head.height}, the track is "
                         f"{stored_width}x{stored_height}")
    asset_id = asset_id or uuid.uuid4()
    plan = _picture_plan(head, edit_rate, stored_width, stored_height, asset_id)

    def checked() -> Iterator[bytes]:
        yield first
        for n, frame in enumerate(it, start=1):
            try:
                size = parse_main_header(frame)
            except ValueError:
                raise MediaError(f"{out.name}: frame {n} is not a JPEG 2000 codestream") from None
            if (size.width, size.height) != (stored_width, stored_height):
                raise MediaError(f"{out.name}: frame {n} is {size.width}x{size.height}, the track is "
                                 f"{stored_width}x{stored_height}")
            yield frame

    duration, size, biggest = _write_track(Path(out), plan, checked(), cbr_bytes=None,
                                           per_segment=index_entries_per_segment, overwrite=overwrite)
    return TrackFileInfo(Path(out), "picture", asset_id, edit_rate, duration, size, stored_width=stored_width,
                         stored_height=stored_height, max_frame_bytes=biggest)


# --- sound ---------------------------------------------------------------------------------------------

def _mca_subdescriptors(layout: str, language: str) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """ST 377-4 §6: one soundfield group label and a channel label per channel, linked by MCALinkID."""
    from specs.layouts import spec_layout

    if layout not in MCA_SOUNDFIELDS:
        raise BadInputError(f"sound layout {layout!r} has no D-Cinema MCA soundfield here; use "
                            f"{' or '.join(MCA_SOUNDFIELDS)}")
    symbol, name, label = MCA_SOUNDFIELDS[layout]
    group_link = uuid.uuid4().bytes
    lang = [("RFC5646SpokenLanguage", language.encode("ascii"))] if language else []
    subs = [("soundfield_group_label", [("MCALabelDictionaryID", label), ("MCALinkID", group_link),
                                        ("MCATagSymbol", klv.utf16(symbol)), ("MCATagName", klv.utf16(name)),
                                        *lang])]
    for n, ch in enumerate(spec_layout(layout).labels, start=1):
        ch_name, ch_label = MCA_CHANNELS[ch]
        subs.append(("audio_channel_label", [
            ("MCALabelDictionaryID", ch_label), ("MCALinkID", uuid.uuid4().bytes),
            ("MCATagSymbol", klv.utf16(f"ch{ch}")), ("MCATagName", klv.utf16(ch_name)),
            ("MCAChannelID", klv.u32(n)), *lang, ("SoundfieldGroupLinkID", group_link)]))
    return subs


def _wav_frames(wav: Path, spf: int, channels: int, start: int = 0, count: int | None = None) -> Iterator[bytes]:
    """24-bit little-endian interleaved PCM frames of ``spf`` samples read from a WAV/BWF file, from edit unit
    ``start``, ``count`` of them (default: to the end). A last partial frame is padded with silence to a whole
    edit unit (ST 429-3 §7.3: sound edit units are frames); a file ending earlier than ``count`` is refused."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(wav)) as snd:
            if snd.samplerate != AUDIO_SAMPLE_RATE or snd.channels != channels:
                raise MediaError(f"{wav.name}: {snd.channels} channels at {snd.samplerate} Hz; a DCP sound track "
                                 f"needs {channels} channels at {AUDIO_SAMPLE_RATE} Hz")
            if start:
                snd.seek(min(start * spf, snd.frames))
            made = 0
            while count is None or made < count:
                block = snd.read(spf, dtype="int32", always_2d=True)
                if len(block) == 0:
                    if count is not None:
                        raise MediaError(f"{wav.name}: ends after {start + made} frames; the reel needs "
                                         f"{start + count}")
                    return
                if len(block) < spf:
                    block = np.concatenate([block, np.zeros((spf - len(block), channels), np.int32)])
                yield _pcm24(block)
                made += 1
    except sf.LibsndfileError as e:
        raise MediaError(f"{wav}: not readable as WAV ({e})") from None


def _pcm24(block: np.ndarray) -> bytes:
    """int32 samples (24 significant bits at the top) -> packed 24-bit little-endian, interleaved."""
    as_bytes = block.astype("<i4").reshape(-1).view(np.uint8).reshape(-1, 4)
    return as_bytes[:, 1:].tobytes()


def write_sound_track(source: Iterable[bytes] | Path, out: Path, edit_rate: Fraction, layout: str, *,
                      language: str = "", asset_id: uuid.UUID | None = None, overwrite: bool = False,
                      start_frame: int = 0, frame_count: int | None = None) -> TrackFileInfo:
    """Wrap 24-bit 48 kHz PCM into a ST 429-3 sound track file with MCA labels for ``layout`` (5.1 / 7.1).

    ``source`` is a WAV path, or an iterable of frames of interleaved 24-bit little-endian PCM, each exactly
    one edit unit (48000 / edit rate samples × channels × 3 bytes). From a WAV, ``start_frame`` and
    ``frame_count`` cut one reel's edit units (a reel's sound lasts exactly as long as its picture).
    """
    from specs.layouts import spec_layout

    spf = samples_per_frame(edit_rate)
    subs = _mca_subdescriptors(layout, language)
    channels = len(spec_layout(layout).labels)
    frame_bytes = spf * channels * AUDIO_BYTES_PER_SAMPLE
    payloads: Iterable[bytes] = (_wav_frames(source, spf, channels, start_frame, frame_count)
                                 if isinstance(source, Path) else source)

    def checked() -> Iterator[bytes]:
        for n, p in enumerate(payloads):
            if len(p) != frame_bytes:
                raise MediaError(f"{Path(out).name}: sound frame {n} is {len(p)} bytes, not {frame_bytes} "
                                 f"({spf} samples × {channels} channels × 3 bytes)")
            yield p

    descriptor = [("AudioSamplingRate", klv.rational(Fraction(AUDIO_SAMPLE_RATE))), ("Locked", klv.u8(0)),
                  ("ChannelCount", klv.u32(channels)), ("QuantizationBits", klv.u32(24)),
                  ("BlockAlign", klv.u16(channels * AUDIO_BYTES_PER_SAMPLE)),
                  ("AvgBps", klv.u32(AUDIO_SAMPLE_RATE * channels * AUDIO_BYTES_PER_SAMPLE)),
                  ("ChannelAssignment", UL["dc_audio_cfg_mca"])]
    asset_id = asset_id or uuid.uuid4()
    plan = _TrackPlan("sound", edit_rate, WAVE_ELEMENT_KEY, UL["wave_frame_wrapped"], asset_id, descriptor,
                      "wave_descriptor", subs)
    duration, size, biggest = _write_track(Path(out), plan, checked(), cbr_bytes=frame_bytes,
                                           per_segment=DEFAULT_INDEX_ENTRIES_PER_SEGMENT, overwrite=overwrite)
    return TrackFileInfo(Path(out), "sound", asset_id, edit_rate, duration, size, channel_count=channels,
                         layout=layout, sample_rate=AUDIO_SAMPLE_RATE, max_frame_bytes=biggest)
