"""SMPTE registered Universal Labels used by the DCP/IMF track files (one table for writer and reader).

Values are those of the SMPTE registers (RP 210 elements, RP 224 labels, ST 395 groups, ST 400 types)
as applied by ST 377-1 (MXF), ST 390 (OP-Atom), ST 422 (JPEG 2000 mapping), ST 382 (WAVE mapping),
ST 377-4 (multichannel audio labels) and ST 429-2/429-3 (D-Cinema sound configurations).
"""

from __future__ import annotations

__all__ = ["UL", "KEY", "ITEMS", "ITEM_BY_UL", "STATIC_TAGS", "MCA_CHANNELS", "MCA_SOUNDFIELDS",
           "is_partition_key", "is_essence_key", "JP2K_ELEMENT_KEY", "WAVE_ELEMENT_KEY", "track_number"]


def _ul(text: str) -> bytes:
    return bytes.fromhex(text.replace(".", ""))


#: Labels (RP 224).
UL = {
    "op_atom": _ul("06.0e.2b.34.04.01.01.02.0d.01.02.01.10.00.00.00"),  # ST 390
    "picture_def": _ul("06.0e.2b.34.04.01.01.01.01.03.02.02.01.00.00.00"),
    "sound_def": _ul("06.0e.2b.34.04.01.01.01.01.03.02.02.02.00.00.00"),
    "timecode_def": _ul("06.0e.2b.34.04.01.01.01.01.03.02.01.01.00.00.00"),
    # Essence containers: ST 422 JPEG 2000 frame wrapping; ST 382 BWF/WAVE frame wrapping.
    "jp2k_frame_wrapped": _ul("06.0e.2b.34.04.01.01.07.0d.01.03.01.02.0c.01.00"),
    "wave_frame_wrapped": _ul("06.0e.2b.34.04.01.01.01.0d.01.03.01.02.06.01.00"),
    # Picture coding: ISO/IEC 15444-1 Amd 1 digital cinema profiles (2K, 4K).
    "jp2k_2k": _ul("06.0e.2b.34.04.01.01.09.04.01.02.02.03.01.01.03"),
    "jp2k_4k": _ul("06.0e.2b.34.04.01.01.09.04.01.02.02.03.01.01.04"),
    # ST 429-2 channel assignment: "the channels are labelled by ST 377-4 MCA sub-descriptors".
    "dc_audio_cfg_mca": _ul("06.0e.2b.34.04.01.01.0d.04.02.02.10.03.02.00.00"),
    "color_primaries_dcdm": _ul("06.0e.2b.34.04.01.01.0e.04.01.01.01.03.05.00.00"),
}

#: Set and pack keys (ST 377-1 §7, §9, §11, §12; ST 377-4 §5).
KEY = {
    "header_closed_complete": _ul("06.0e.2b.34.02.05.01.01.0d.01.02.01.01.02.04.00"),
    "body_closed_complete": _ul("06.0e.2b.34.02.05.01.01.0d.01.02.01.01.03.04.00"),
    "footer_closed_complete": _ul("06.0e.2b.34.02.05.01.01.0d.01.02.01.01.04.04.00"),
    "primer": _ul("06.0e.2b.34.02.05.01.01.0d.01.02.01.01.05.01.00"),
    "fill": _ul("06.0e.2b.34.01.01.01.02.03.01.02.10.01.00.00.00"),
    "rip": _ul("06.0e.2b.34.02.05.01.01.0d.01.02.01.01.11.01.00"),
    "index_segment": _ul("06.0e.2b.34.02.53.01.01.0d.01.02.01.01.10.01.00"),
    "preface": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.2f.00"),
    "identification": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.30.00"),
    "content_storage": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.18.00"),
    "essence_container_data": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.23.00"),
    "material_package": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.36.00"),
    "source_package": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.37.00"),
    "track": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.3b.00"),
    "sequence": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.0f.00"),
    "source_clip": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.11.00"),
    "timecode_component": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.14.00"),
    "rgba_descriptor": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.29.00"),
    "cdci_descriptor": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.28.00"),
    "wave_descriptor": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.48.00"),
    "jp2k_subdescriptor": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.5a.00"),
    "audio_channel_label": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.6b.00"),
    "soundfield_group_label": _ul("06.0e.2b.34.02.53.01.01.0d.01.01.01.01.01.6c.00"),
}

#: Generic container essence element keys (ST 379-1 §7): item type 0x15 picture / 0x16 sound,
#: element count 1, element type 0x08 JPEG 2000 frame-wrapped (ST 422) / 0x01 WAVE frame-wrapped
#: (ST 382), element number 1.
JP2K_ELEMENT_KEY = _ul("06.0e.2b.34.01.02.01.01.0d.01.03.01.15.01.08.01")
WAVE_ELEMENT_KEY = _ul("06.0e.2b.34.01.02.01.01.0d.01.03.01.16.01.01.01")


def track_number(element_key: bytes) -> int:
    """The file package track number that links a track to its essence element (ST 379-1 §7.1)."""
    return int.from_bytes(element_key[12:16], "big")


def is_partition_key(key: bytes) -> bool:
    return key[:13] == KEY["primer"][:13] and key[13] in (2, 3, 4)


def is_essence_key(key: bytes) -> bool:
    return key[:12] == JP2K_ELEMENT_KEY[:12]


#: Local set items: name -> (static local tag, or 0 for a dynamic tag given out by the primer, UL).
ITEMS: dict[str, tuple[int, bytes]] = {name: (tag, _ul(ul)) for name, tag, ul in (
    ("InstanceUID", 0x3C0A, "06.0e.2b.34.01.01.01.01.01.01.15.02.00.00.00.00"),
    ("GenerationUID", 0x0102, "06.0e.2b.34.01.01.01.02.05.20.07.01.08.00.00.00"),
    # Preface
    ("LastModifiedDate", 0x3B02, "06.0e.2b.34.01.01.01.02.07.02.01.10.02.04.00.00"),
    ("Version", 0x3B05, "06.0e.2b.34.01.01.01.02.03.01.02.01.05.00.00.00"),
    ("ObjectModelVersion", 0x3B07, "06.0e.2b.34.01.01.01.02.03.01.02.01.04.00.00.00"),
    ("PrimaryPackage", 0x3B08, "06.0e.2b.34.01.01.01.04.06.01.01.04.01.08.00.00"),
    ("Identifications", 0x3B06, "06.0e.2b.34.01.01.01.02.06.01.01.04.06.04.00.00"),
    ("ContentStorage", 0x3B03, "06.0e.2b.34.01.01.01.02.06.01.01.04.02.01.00.00"),
    ("OperationalPattern", 0x3B09, "06.0e.2b.34.01.01.01.05.01.02.02.03.00.00.00.00"),
    ("EssenceContainers", 0x3B0A, "06.0e.2b.34.01.01.01.05.01.02.02.10.02.01.00.00"),
    ("DMSchemes", 0x3B0B, "06.0e.2b.34.01.01.01.05.01.02.02.10.02.02.00.00"),
    # Identification
    ("ThisGenerationUID", 0x3C09, "06.0e.2b.34.01.01.01.02.05.20.07.01.01.00.00.00"),
    ("CompanyName", 0x3C01, "06.0e.2b.34.01.01.01.02.05.20.07.01.02.01.00.00"),
    ("ProductName", 0x3C02, "06.0e.2b.34.01.01.01.02.05.20.07.01.03.01.00.00"),
    ("ProductVersion", 0x3C03, "06.0e.2b.34.01.01.01.02.05.20.07.01.04.00.00.00"),
    ("VersionString", 0x3C04, "06.0e.2b.34.01.01.01.02.05.20.07.01.05.01.00.00"),
    ("ProductUID", 0x3C05, "06.0e.2b.34.01.01.01.02.05.20.07.01.07.00.00.00"),
    ("ModificationDate", 0x3C06, "06.0e.2b.34.01.01.01.02.07.02.01.10.02.03.00.00"),
    ("ToolkitVersion", 0x3C07, "06.0e.2b.34.01.01.01.02.05.20.07.01.0a.00.00.00"),
    ("Platform", 0x3C08, "06.0e.2b.34.01.01.01.02.05.20.07.01.06.01.00.00"),
    # ContentStorage, EssenceContainerData
    ("Packages", 0x1901, "06.0e.2b.34.01.01.01.02.06.01.01.04.05.01.00.00"),
    ("EssenceContainerData", 0x1902, "06.0e.2b.34.01.01.01.02.06.01.01.04.05.02.00.00"),
    ("LinkedPackageUID", 0x2701, "06.0e.2b.34.01.01.01.02.06.01.01.06.01.00.00.00"),
    ("IndexSID", 0x3F06, "06.0e.2b.34.01.01.01.04.01.03.04.05.00.00.00.00"),
    ("BodySID", 0x3F07, "06.0e.2b.34.01.01.01.04.01.03.04.04.00.00.00.00"),
    # Packages, tracks, components
    ("PackageUID", 0x4401, "06.0e.2b.34.01.01.01.01.01.01.15.10.00.00.00.00"),
    ("Name", 0x4402, "06.0e.2b.34.01.01.01.01.01.03.03.02.01.00.00.00"),
    ("PackageCreationDate", 0x4405, "06.0e.2b.34.01.01.01.02.07.02.01.10.01.03.00.00"),
    ("PackageModifiedDate", 0x4404, "06.0e.2b.34.01.01.01.02.07.02.01.10.02.05.00.00"),
    ("Tracks", 0x4403, "06.0e.2b.34.01.01.01.02.06.01.01.04.06.05.00.00"),
    ("Descriptor", 0x4701, "06.0e.2b.34.01.01.01.02.06.01.01.04.02.03.00.00"),
    ("TrackID", 0x4801, "06.0e.2b.34.01.01.01.02.01.07.01.01.00.00.00.00"),
    ("TrackNumber", 0x4804, "06.0e.2b.34.01.01.01.02.01.04.01.03.00.00.00.00"),
    ("TrackName", 0x4802, "06.0e.2b.34.01.01.01.02.01.07.01.02.01.00.00.00"),
    ("Sequence", 0x4803, "06.0e.2b.34.01.01.01.02.06.01.01.04.02.04.00.00"),
    ("EditRate", 0x4B01, "06.0e.2b.34.01.01.01.02.05.30.04.05.00.00.00.00"),
    ("Origin", 0x4B02, "06.0e.2b.34.01.01.01.02.07.02.01.03.01.03.00.00"),
    ("DataDefinition", 0x0201, "06.0e.2b.34.01.01.01.02.04.07.01.00.00.00.00.00"),
    ("Duration", 0x0202, "06.0e.2b.34.01.01.01.02.07.02.02.01.01.03.00.00"),
    ("StructuralComponents", 0x1001, "06.0e.2b.34.01.01.01.02.06.01.01.04.06.09.00.00"),
    ("RoundedTimecodeBase", 0x1502, "06.0e.2b.34.01.01.01.02.04.04.01.01.02.06.00.00"),
    ("StartTimecode", 0x1501, "06.0e.2b.34.01.01.01.02.07.02.01.03.01.05.00.00"),
    ("DropFrame", 0x1503, "06.0e.2b.34.01.01.01.01.04.04.01.01.05.00.00.00"),
    ("StartPosition", 0x1201, "06.0e.2b.34.01.01.01.02.07.02.01.03.01.04.00.00"),
    ("SourcePackageID", 0x1101, "06.0e.2b.34.01.01.01.02.06.01.01.03.01.00.00.00"),
    ("SourceTrackID", 0x1102, "06.0e.2b.34.01.01.01.02.06.01.01.03.02.00.00.00"),
    # File descriptors
    ("SubDescriptors", 0, "06.0e.2b.34.01.01.01.09.06.01.01.04.06.10.00.00"),
    ("LinkedTrackID", 0x3006, "06.0e.2b.34.01.01.01.05.06.01.01.03.05.00.00.00"),
    ("SampleRate", 0x3001, "06.0e.2b.34.01.01.01.01.04.06.01.01.00.00.00.00"),
    ("ContainerDuration", 0x3002, "06.0e.2b.34.01.01.01.01.04.06.01.02.00.00.00.00"),
    ("EssenceContainer", 0x3004, "06.0e.2b.34.01.01.01.02.06.01.01.04.01.02.00.00"),
    ("FrameLayout", 0x320C, "06.0e.2b.34.01.01.01.01.04.01.03.01.04.00.00.00"),
    ("StoredWidth", 0x3203, "06.0e.2b.34.01.01.01.01.04.01.05.02.02.00.00.00"),
    ("StoredHeight", 0x3202, "06.0e.2b.34.01.01.01.01.04.01.05.02.01.00.00.00"),
    ("DisplayWidth", 0x3209, "06.0e.2b.34.01.01.01.01.04.01.05.01.0c.00.00.00"),
    ("DisplayHeight", 0x3208, "06.0e.2b.34.01.01.01.01.04.01.05.01.0b.00.00.00"),
    ("AspectRatio", 0x320E, "06.0e.2b.34.01.01.01.01.04.01.01.01.01.00.00.00"),
    ("VideoLineMap", 0x320D, "06.0e.2b.34.01.01.01.02.04.01.03.02.05.00.00.00"),
    ("PictureEssenceCoding", 0x3201, "06.0e.2b.34.01.01.01.02.04.01.06.01.00.00.00.00"),
    ("ColorPrimaries", 0x3219, "06.0e.2b.34.01.01.01.09.04.01.02.01.01.06.01.00"),
    ("ComponentMaxRef", 0x3406, "06.0e.2b.34.01.01.01.05.04.01.05.03.0b.00.00.00"),
    ("ComponentMinRef", 0x3407, "06.0e.2b.34.01.01.01.05.04.01.05.03.0c.00.00.00"),
    ("PixelLayout", 0x3401, "06.0e.2b.34.01.01.01.02.04.01.05.03.06.00.00.00"),
    # ST 422 JPEG 2000 picture sub-descriptor (dynamic tags)
    ("Rsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.01.00.00.00"),
    ("Xsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.02.00.00.00"),
    ("Ysize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.03.00.00.00"),
    ("XOsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.04.00.00.00"),
    ("YOsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.05.00.00.00"),
    ("XTsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.06.00.00.00"),
    ("YTsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.07.00.00.00"),
    ("XTOsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.08.00.00.00"),
    ("YTOsize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.09.00.00.00"),
    ("Csize", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.0a.00.00.00"),
    ("PictureComponentSizing", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.0b.00.00.00"),
    ("CodingStyleDefault", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.0c.00.00.00"),
    ("QuantizationDefault", 0, "06.0e.2b.34.01.01.01.0a.04.01.06.03.0d.00.00.00"),
    # Sound descriptors (ST 377-1 Annex G, ST 382)
    ("AudioSamplingRate", 0x3D03, "06.0e.2b.34.01.01.01.05.04.02.03.01.01.01.00.00"),
    ("Locked", 0x3D02, "06.0e.2b.34.01.01.01.04.04.02.03.01.04.00.00.00"),
    ("ChannelCount", 0x3D07, "06.0e.2b.34.01.01.01.05.04.02.01.01.04.00.00.00"),
    ("QuantizationBits", 0x3D01, "06.0e.2b.34.01.01.01.04.04.02.03.03.04.00.00.00"),
    ("BlockAlign", 0x3D0A, "06.0e.2b.34.01.01.01.05.04.02.03.02.01.00.00.00"),
    ("AvgBps", 0x3D09, "06.0e.2b.34.01.01.01.05.04.02.03.03.05.00.00.00"),
    ("ChannelAssignment", 0x3D32, "06.0e.2b.34.01.01.01.07.04.02.01.01.05.00.00.00"),
    # ST 377-4 MCA label sub-descriptors (dynamic tags)
    ("MCALabelDictionaryID", 0, "06.0e.2b.34.01.01.01.0e.01.03.07.01.01.00.00.00"),
    ("MCALinkID", 0, "06.0e.2b.34.01.01.01.0e.01.03.07.01.05.00.00.00"),
    ("MCATagSymbol", 0, "06.0e.2b.34.01.01.01.0e.01.03.07.01.02.00.00.00"),
    ("MCATagName", 0, "06.0e.2b.34.01.01.01.0e.01.03.07.01.03.00.00.00"),
    ("MCAChannelID", 0, "06.0e.2b.34.01.01.01.0e.01.03.04.0a.00.00.00.00"),
    ("RFC5646SpokenLanguage", 0, "06.0e.2b.34.01.01.01.0d.03.01.01.02.03.15.00.00"),
    ("SoundfieldGroupLinkID", 0, "06.0e.2b.34.01.01.01.0e.01.03.07.01.06.00.00.00"),
    # Index table segment (ST 377-1 §11.2)
    ("IndexEditRate", 0x3F0B, "06.0e.2b.34.01.01.01.05.05.30.04.06.00.00.00.00"),
    ("IndexStartPosition", 0x3F0C, "06.0e.2b.34.01.01.01.05.07.02.01.03.01.0a.00.00"),
    ("IndexDuration", 0x3F0D, "06.0e.2b.34.01.01.01.05.07.02.02.01.01.02.00.00"),
    ("EditUnitByteCount", 0x3F05, "06.0e.2b.34.01.01.01.04.04.06.02.01.00.00.00.00"),
    ("SliceCount", 0x3F08, "06.0e.2b.34.01.01.01.04.04.04.04.01.01.00.00.00"),
    ("PosTableCount", 0x3F0E, "06.0e.2b.34.01.01.01.05.04.04.04.01.07.00.00.00"),
    ("DeltaEntryArray", 0x3F09, "06.0e.2b.34.01.01.01.05.04.04.04.01.06.00.00.00"),
    ("IndexEntryArray", 0x3F0A, "06.0e.2b.34.01.01.01.05.04.04.04.02.05.00.00.00"),
)}

ITEM_BY_UL: dict[bytes, str] = {ul: name for name, (_tag, ul) in ITEMS.items()}
#: Static tags every reader knows without the primer (ST 377-1 Annex A).
STATIC_TAGS: dict[int, str] = {tag: name for name, (tag, _ul_) in ITEMS.items() if tag}

#: ST 377-4 / ST 428-12 D-Cinema channel labels: symbol -> (name, label UL).
MCA_CHANNELS: dict[str, tuple[str, bytes]] = {sym: (name, _ul(f"06.0e.2b.34.04.01.01.0d.03.02.01.{n:02x}.00.00.00.00"))
                                              for sym, name, n in (
    ("L", "Left", 1), ("R", "Right", 2), ("C", "Center", 3), ("LFE", "LFE", 4),
    ("Ls", "Left Surround", 5), ("Rs", "Right Surround", 6), ("Lss", "Left Side Surround", 7),
    ("Rss", "Right Side Surround", 8), ("Lrs", "Left Rear Surround", 9), ("Rrs", "Right Rear Surround", 10),
    ("Lc", "Left Center", 11), ("Rc", "Right Center", 12), ("Cs", "Center Surround", 13),
    ("HI", "Hearing Impaired", 14), ("VIN", "Visually Impaired-Narrative", 15),
)}

#: Soundfield groups by deliver layout name: (tag symbol, tag name, label UL).
MCA_SOUNDFIELDS: dict[str, tuple[str, str, bytes]] = {
    "5.1": ("sg51", "5.1", _ul("06.0e.2b.34.04.01.01.0d.03.02.02.01.00.00.00.00")),
    "7.1": ("sg71", "7.1DS", _ul("06.0e.2b.34.04.01.01.0d.03.02.02.02.00.00.00.00")),
}
