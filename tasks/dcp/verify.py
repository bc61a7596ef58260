"""Verification of a written DCP: everything is read back from disk, nothing is taken from the writer.

- ASSETMAP (ST 429-9), PKL (ST 429-8), CPL (ST 429-7 with ST 429-16 metadata) and VOLINDEX validated
  against the SMPTE XSD schemas. The schemas are the ones the ``clairmeta`` wheel installs (BSD-3 package
  shipping SMPTE's published schemas); they are read from the installed package at run time, not copied.
- PKL: every asset present, its size and SHA-1 (base64) equal to what the PKL says.
- One read per track file (:func:`scan_track`): the SHA-1 and every frame's codestream check come from the
  same sequential pass over the file on disk. ``make_dcp`` scans the track files once after writing and
  the PKL takes its SHA-1 from that scan: the writer cannot stream the hash, because it rewrites the
  header partition at offset 0 after the essence (ST 377-1 §7.1: a closed complete header holds the
  durations and the footer's offset), so the hash of the written stream is not the file's.
- CPL and PKL signatures (XML-DSig, ST 430-2 chain) when signed; unsigned is a problem when required.
- Every track file re-read with ``tasks.mxf.read_track``: its asset id is the one the CPL names, its frame
  count equals the descriptor's ContainerDuration, the index duration and the CPL IntrinsicDuration; the
  edit rate is the CPL's; picture: a DCI container (ST 428-1 §5), each frame a conforming J2K codestream
  (``tasks.dcp.codestream.check_codestream``) and within the 250 Mbit/s limit; sound: 24-bit 48 kHz PCM
  (ST 428-2), whole edit units, MCA labels for every channel (ST 377-4) equal to the CPL's
  MainSoundConfiguration and MCA sub-descriptors (symbols, spoken language); picture and sound of a reel
  last equally long (ST 429-7 §7.2); FFOC and LFOC markers present, every marker inside its reel.
- ST 429-16 metadata as RDD 52 (Bv2.1) asks: VersionNumber, the application extension naming the
  Bv2.1 profile, a UN M.49 ReleaseTerritory; a missing Luminance or ReleaseTerritory is a note.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from lxml import etree

from specs.errors import VerificationError
from tasks.dcp.codestream import Profile, check_codestream, max_frame_bytes
from tasks.dcp.package import AM_NS, BV21_PROFILE, CPL_NS, MCA_NS, META_NS, PKL_NS, REG335_NS, sha1_base64
from tasks.dcp.sign import DSIG_NS, verify_signature
from tasks.mxf.reader import TrackFile, read_track
from tasks.mxf.writer import AUDIO_BYTES_PER_SAMPLE, AUDIO_SAMPLE_RATE

__all__ = ["DcpVerification", "TrackScan", "scan_track", "verify_dcp", "raise_if_failed", "schema_dir",
           "DCI_CONTAINERS"]

DCI_CONTAINERS = {(1998, 1080), (2048, 858), (2048, 1080), (3996, 2160), (4096, 1716), (4096, 2160)}
_SCHEMAS = {"cpl": "SMPTE-429-16-2014-CPL-Metadata.xsd", "pkl": "SMPTE-429-8-2006-PKL.xsd",
            "am": "SMPTE-429-9-2007-AM.xsd"}
_REMOTE = {  # schemaLocation URLs the SMPTE schemas import -> the local copies beside them
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": "xmldsig-core-schema.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd", "http://www.w3.org/2001/xml.xsd": "xml.xsd",
}


@dataclass(frozen=True)
class TrackScan:
    """One sequential read of a track file: its SHA-1 (base64, ST 429-8 §6.3), the parsed track (None when
    unreadable, ``error`` says why) and the per-frame codestream problems (picture, when frames were checked)."""

    path: Path
    sha1: str
    track: TrackFile | None
    error: str = ""
    frame_problems: tuple[str, ...] = ()
    frames_checked: int = 0


_CHUNK_BYTES = 8 << 20


def scan_track(path: Path, *, check_frames: bool = True) -> TrackScan:
    """Read ``path`` once, start to end: SHA-1 of every byte, and each picture frame's codestream checked
    (:func:`tasks.dcp.codestream.check_codestream`) as the read passes it. The header and index are parsed
    first by :func:`tasks.mxf.read_track` (metadata and index only, small reads)."""
    path = Path(path)
    h = hashlib.sha1()
    try:
        track: TrackFile | None = read_track(path)
        error = ""
    except (OSError, ValueError) as exc:
        track, error = None, f"{path.name}: not a readable track file ({exc})"
    units = []
    profile: Profile = "2k"
    fps = 24
    if track is not None and check_frames and track.kind == "picture":
        units = sorted(track.edit_units, key=lambda u: u.offset)
        profile = "4k" if track.stored_size[0] > 2048 else "2k"
        fps = max(1, round(track.edit_rate))
    problems: list[str] = []
    checked = 0
    with open(path, "rb") as f:
        pos = 0

        def advance(to: int) -> None:  # hash the bytes between frames (KLV keys, metadata, index)
            nonlocal pos
            while pos < to and (block := f.read(min(_CHUNK_BYTES, to - pos))):
                h.update(block)
                pos += len(block)

        for n, unit in enumerate(units):
            if unit.offset < pos:  # overlapping units: a broken index; the unit-count checks report it
                continue
            advance(unit.offset)
            frame = f.read(unit.length)
            h.update(frame)
            pos += len(frame)
            problems.extend(f"{path.name}: frame {n}: {p}" for p in check_codestream(frame, profile, fps=fps))
            checked += 1
        while block := f.read(_CHUNK_BYTES):
            h.update(block)
    return TrackScan(path, base64.b64encode(h.digest()).decode(), track, error, tuple(problems), checked)


@dataclass(frozen=True)
class _SoundClaims:
    """What the CPL says of its sound: MainSoundConfiguration channel labels and the MCA sub-descriptors'
    (tag symbol, spoken language) in order."""

    labels: list[str]
    mca: list[tuple[str, str]]


@dataclass
class DcpVerification:
    """What was checked and what is wrong. ``ok`` only when every check ran and found nothing."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


def raise_if_failed(result: DcpVerification) -> None:
    if result.problems:
        shown = "; ".join(result.problems[:8]) + (f" (+{len(result.problems) - 8} more)"
                                                   if len(result.problems) > 8 else "")
        raise VerificationError(f"DCP verification failed: {shown}")


def schema_dir() -> Path | None:
    spec = importlib.util.find_spec("clairmeta")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "xsd"
    return d if d.is_dir() else None


class _LocalResolver(etree.Resolver):
    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        name = _REMOTE.get(system_url) or Path(system_url).name
        local = self.base / name
        return self.resolve_filename(str(local), context) if local.is_file() else None


_schema_cache: dict[str, etree.XMLSchema] = {}


def _schema(kind: str, base: Path) -> etree.XMLSchema:
    if kind not in _schema_cache:
        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(_LocalResolver(base))
        _schema_cache[kind] = etree.XMLSchema(etree.parse(str(base / _SCHEMAS[kind]), parser))
    return _schema_cache[kind]


def _validate(path: Path, kind: str, result: DcpVerification) -> etree._Element | None:
    try:
        doc = etree.parse(str(path))
    except (OSError, etree.XMLSyntaxError) as exc:
        result.problems.append(f"{path.name}: not readable XML ({exc})")
        return None
    base = schema_dir()
    if base is None:
        result.problems.append(f"{path.name}: not validated: the SMPTE schemas (clairmeta package) are not installed")
        return doc.getroot()
    schema = _schema(kind, base) if kind in _SCHEMAS else None
    if schema is not None:
        if not schema.validate(doc):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:3])
            result.problems.append(f"{path.name}: not valid against {_SCHEMAS[kind]}: {errors}")
        result.count("xml_validated")
    return doc.getroot()


def _check_picture(scan: TrackScan, track: TrackFile, result: DcpVerification) -> None:
    size = track.stored_size
    if size not in DCI_CONTAINERS:
        result.problems.append(f"{track.path.name}: stored size {size[0]}x{size[1]} is not a DCI container")
    limit = max_frame_bytes(track.edit_rate)
    for n, unit in enumerate(track.edit_units):
        if unit.length > limit:
            result.problems.append(f"{track.path.name}: frame {n} is {unit.length} bytes, over the "
                                   f"{limit}-byte (250 Mbit/s) limit")
    result.problems.extend(scan.frame_problems)
    if scan.frames_checked:
        result.count("frames_checked", scan.frames_checked)


def _check_sound(track: TrackFile, result: DcpVerification, claims: _SoundClaims | None = None) -> None:
    channels = track.channel_count
    if track.quantization_bits != 24 or track.audio_sample_rate != AUDIO_SAMPLE_RATE:
        result.problems.append(f"{track.path.name}: {track.quantization_bits}-bit {track.audio_sample_rate} Hz; "
                               "a DCP needs 24-bit 48 kHz PCM")
    spf = Fraction(AUDIO_SAMPLE_RATE) / track.edit_rate if track.edit_rate else Fraction(0)
    want = int(spf * channels * AUDIO_BYTES_PER_SAMPLE)
    bad = [n for n, unit in enumerate(track.edit_units) if unit.length != want]
    if bad:
        result.problems.append(f"{track.path.name}: {len(bad)} sound edit units are not {want} bytes "
                               f"(first: {bad[0]})")
    labels = track.mca_labels()
    groups = [s for k, s in labels if k == "soundfield_group_label"]
    chans = [s for k, s in labels if k == "audio_channel_label"]
    if len(groups) != 1 or len(chans) != channels:
        result.problems.append(f"{track.path.name}: MCA labels {groups} + {len(chans)} channel labels for "
                               f"{channels} channels (ST 377-4)")
    if claims is not None:
        if claims.labels and len(claims.labels) == channels and [c.removeprefix("ch") for c in chans] != claims.labels:
            result.problems.append(f"{track.path.name}: MCA channels {', '.join(chans)} are not the CPL's "
                                   f"MainSoundConfiguration {','.join(claims.labels)} (ST 429-16 §6.5)")
        in_file = [(s.text("MCATagSymbol"), (s.get("RFC5646SpokenLanguage") or b"").decode("ascii", "replace"))
                   for s in track.subdescriptors if s.get("MCATagSymbol")]
        if claims.mca and claims.mca != in_file:
            result.problems.append(f"{track.path.name}: the CPL's MCA sub-descriptors (symbol, language) "
                                   f"{claims.mca[:2]}... are not the track file's {in_file[:2]}... (RDD 52 §7.2)")
    result.count("sound_samples", track.frame_count * int(spf))


def _check_track(scan: TrackScan, asset: etree._Element, kind: str, result: DcpVerification,
                 claims: _SoundClaims | None = None) -> int | None:
    """Check one CPL asset against its track file's scan; returns the CPL Duration (None when unreadable)."""
    ns = {"c": CPL_NS}
    path, track = scan.path, scan.track
    if track is None:
        result.problems.append(scan.error)
        return None
    result.count("track_files")
    cpl_id = (asset.findtext("c:Id", namespaces=ns) or "").removeprefix("urn:uuid:")
    intrinsic = int(asset.findtext("c:IntrinsicDuration", namespaces=ns) or -1)
    duration = int(asset.findtext("c:Duration", namespaces=ns) or intrinsic)
    entry = int(asset.findtext("c:EntryPoint", namespaces=ns) or 0)
    num, den = (asset.findtext("c:EditRate", namespaces=ns) or "0 1").split()
    if track.kind != kind:
        result.problems.append(f"{path.name}: a {track.kind or 'unknown'} track file where the CPL has {kind}")
    if str(track.asset_id) != cpl_id:
        result.problems.append(f"{path.name}: asset id {track.asset_id} is not the CPL's {cpl_id}")
    if track.edit_rate != Fraction(int(num), int(den)):
        result.problems.append(f"{path.name}: edit rate {track.edit_rate} is not the CPL's {num}/{den}")
    counts = {"frames in the file": track.frame_count, "ContainerDuration": track.duration,
              "index duration": track.index_duration, "CPL IntrinsicDuration": intrinsic}
    if len(set(counts.values())) != 1:
        result.problems.append(f"{path.name}: edit unit counts disagree: "
                               + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if entry + duration > track.frame_count:
        result.problems.append(f"{path.name}: CPL plays {entry}+{duration} frames of {track.frame_count}")
    if kind == "picture":
        _check_picture(scan, track, result)
    else:
        _check_sound(track, result, claims)
        if claims is not None and claims.labels and len(claims.labels) != track.channel_count:
            result.problems.append(f"{path.name}: {track.channel_count} channels, the CPL's MainSoundConfiguration "
                                   f"names {len(claims.labels)}")
    return duration


def verify_dcp(dcp_dir: Path, *, require_signed: bool = True, check_frames: bool = True,
               scans: Mapping[Path, TrackScan] | None = None) -> DcpVerification:
    """Verify the DCP in ``dcp_dir`` (see the module docstring). Never raises on a defect: lists it.

    ``scans``: track files already scanned (:func:`scan_track`) since they were written, by path; the rest
    are scanned here, each once (its SHA-1 for the PKL check and its frames from the same read).
    """
    dcp_dir = Path(dcp_dir)
    result = DcpVerification()
    done = {Path(p).resolve(): s for p, s in (scans or {}).items()}

    def scanned(path: Path) -> TrackScan:
        key = path.resolve()
        if key not in done:
            done[key] = scan_track(path, check_frames=check_frames)
        return done[key]

    am_path = dcp_dir / "ASSETMAP.xml"
    if not am_path.is_file():
        result.problems.append(f"{dcp_dir}: no ASSETMAP.xml")
        return result
    am = _validate(am_path, "am", result)
    if (dcp_dir / "VOLINDEX.xml").is_file():
        _validate(dcp_dir / "VOLINDEX.xml", "am", result)
    else:
        result.problems.append("VOLINDEX.xml missing (ST 429-9 §6)")
    if am is None:
        return result
    ns_am = {"a": AM_NS}
    paths: dict[str, Path] = {}
    pkls: list[Path] = []
    for a in am.findall("a:AssetList/a:Asset", ns_am):
        aid = (a.findtext("a:Id", namespaces=ns_am) or "").removeprefix("urn:uuid:")
        p = dcp_dir / (a.findtext("a:ChunkList/a:Chunk/a:Path", namespaces=ns_am) or "")
        paths[aid] = p
        if (a.findtext("a:PackingList", namespaces=ns_am) or "").strip() == "true":
            pkls.append(p)
    if not pkls:
        result.problems.append("ASSETMAP names no packing list")
    cpls: list[Path] = []
    ns_pkl = {"p": PKL_NS}
    for pkl_path in pkls:
        pkl = _validate(pkl_path, "pkl", result) if pkl_path.is_file() else None
        if pkl is None:
            result.problems.append(f"{pkl_path.name}: packing list missing or unreadable")
            continue
        _check_signature(pkl_path, pkl, require_signed, result)
        for asset in pkl.findall("p:AssetList/p:Asset", ns_pkl):
            aid = (asset.findtext("p:Id", namespaces=ns_pkl) or "").removeprefix("urn:uuid:")
            path = paths.get(aid)
            if path is None or not path.is_file():
                result.problems.append(f"PKL asset {aid} ({asset.findtext('p:OriginalFileName', namespaces=ns_pkl)})"
                                       " is missing from the DCP")
                continue
            size = int(asset.findtext("p:Size", namespaces=ns_pkl) or -1)
            if path.stat().st_size != size:
                result.problems.append(f"{path.name}: {path.stat().st_size} bytes, the PKL says {size}")
            is_xml = (asset.findtext("p:Type", namespaces=ns_pkl) or "").startswith("text/xml")
            digest = sha1_base64(path) if is_xml else scanned(path).sha1
            if digest != asset.findtext("p:Hash", namespaces=ns_pkl):
                result.problems.append(f"{path.name}: SHA-1 does not match the PKL hash")
            result.count("hashes_checked")
            if is_xml:
                cpls.append(path)
    for cpl_path in cpls:
        _verify_cpl(cpl_path, paths, require_signed, scanned, result)
    if not cpls:
        result.problems.append("no composition playlist in the packing list")
    return result


def _check_signature(path: Path, root: etree._Element, require_signed: bool, result: DcpVerification) -> None:
    if root.find(f"{{{DSIG_NS}}}Signature") is None:
        if require_signed:
            result.problems.append(f"{path.name}: not signed")
        return
    result.problems.extend(verify_signature(path))
    result.count("signatures_checked")


def _verify_cpl(cpl_path: Path, paths: dict[str, Path], require_signed: bool,
                scanned: Callable[[Path], TrackScan], result: DcpVerification) -> None:
    cpl = _validate(cpl_path, "cpl", result)
    if cpl is None:
        return
    _check_signature(cpl_path, cpl, require_signed, result)
    ns = {"c": CPL_NS}
    claims = _check_cpl_metadata(cpl_path, cpl, result)
    reels = cpl.findall("c:ReelList/c:Reel", ns)
    for n, reel in enumerate(reels, start=1):
        durations = {}
        for kind, tag in (("picture", "MainPicture"), ("sound", "MainSound")):
            asset = reel.find(f"c:AssetList/c:{tag}", ns)
            if asset is None:
                result.problems.append(f"{cpl_path.name}: reel {n} has no {tag}")
                continue
            aid = (asset.findtext("c:Id", namespaces=ns) or "").removeprefix("urn:uuid:")
            path = paths.get(aid)
            if path is None or not path.is_file():
                result.problems.append(f"{cpl_path.name}: reel {n} {tag} {aid} is not in the DCP")
                continue
            durations[kind] = _check_track(scanned(path), asset, kind, result, claims)
        if len(durations) == 2 and durations["picture"] != durations["sound"]:
            result.problems.append(f"{cpl_path.name}: reel {n}: picture plays {durations['picture']} frames, "
                                   f"sound {durations['sound']} (ST 429-7 §7.2: equal within a reel)")
        result.count("reels")


def _marker_offsets(reel: etree._Element) -> dict[str, int]:
    ns = {"c": CPL_NS}
    return {m.findtext("c:Label", namespaces=ns) or "": int(m.findtext("c:Offset", namespaces=ns) or -1)
            for m in reel.findall("c:AssetList/c:MainMarkers/c:MarkerList/c:Marker", ns)}


def _check_cpl_metadata(cpl_path: Path, cpl: etree._Element, result: DcpVerification) -> _SoundClaims | None:
    """The composition-level rules of the Bv2.1 profile that libdcp's verifier applies (RDD 52)."""
    ns = {"c": CPL_NS, "m": META_NS, "mca": MCA_NS}
    name = cpl_path.name
    title = cpl.findtext("c:ContentTitleText", namespaces=ns)
    labels: list[str] = []
    if cpl.findtext("c:AnnotationText", namespaces=ns) != title:
        result.problems.append(f"{name}: AnnotationText is not the ContentTitleText (Bv2.1 §8.1)")
    reels = cpl.findall("c:ReelList/c:Reel", ns)
    if not reels:
        result.problems.append(f"{name}: no reels")
        return None
    first, last = _marker_offsets(reels[0]), _marker_offsets(reels[-1])
    last_duration = int(reels[-1].findtext("c:AssetList/c:MainPicture/c:Duration", namespaces=ns) or 0)
    if first.get("FFOC") != 1:
        result.problems.append(f"{name}: FFOC marker is {first.get('FFOC', 'missing')}, not 1 in the first reel")
    if last.get("LFOC") != last_duration - 1:
        result.problems.append(f"{name}: LFOC marker is {last.get('LFOC', 'missing')}, not the last reel's last "
                               f"frame {last_duration - 1}")
    for n, reel in enumerate(reels, start=1):
        length = int(reel.findtext("c:AssetList/c:MainPicture/c:Duration", namespaces=ns) or 0)
        for label, offset in _marker_offsets(reel).items():
            if not 0 <= offset < length:
                result.problems.append(f"{name}: reel {n} marker {label} at {offset} is outside the reel's "
                                       f"{length} frames (ST 429-7 §8.3.3)")
    if cpl.xpath("c:ReelList/c:Reel/c:AssetList/c:MainMarkers[c:EntryPoint or c:Duration]", namespaces=ns):
        result.problems.append(f"{name}: MainMarkers carry EntryPoint/Duration (Bv2.1 leaves them out)")
    if (cpl.findtext("c:ContentKind", namespaces=ns) == "feature"
            and not {"FFEC", "FFMC"} <= {k for r in reels for k in _marker_offsets(r)}):
        result.notes.append(f"{name}: a feature without FFEC/FFMC (credits) markers, which Bv2.1 asks for")
    meta = reels[0].find("c:AssetList/m:CompositionMetadataAsset", ns)
    if meta is None:
        result.problems.append(f"{name}: no ST 429-16 CompositionMetadataAsset in the first reel")
        return None
    stored = [int(meta.findtext(f"m:MainPictureStoredArea/m:{d}", namespaces=ns) or 0) for d in ("Width", "Height")]
    active = [int(meta.findtext(f"m:MainPictureActiveArea/m:{d}", namespaces=ns) or 0) for d in ("Width", "Height")]
    if any(a <= 0 or a % 2 or a > st for a, st in zip(active, stored, strict=True)):
        result.problems.append(f"{name}: MainPictureActiveArea {active[0]}x{active[1]} is not even and inside "
                               f"the stored {stored[0]}x{stored[1]}")
    config = meta.findtext("m:MainSoundConfiguration", namespaces=ns) or ""
    sound = reels[0].find("c:AssetList/c:MainSound", ns)
    if sound is None or "/" not in config:
        result.problems.append(f"{name}: MainSoundConfiguration {config!r} is not 'field/labels'")
    else:
        labels = config.partition("/")[2].split(",")
    _check_composition_fields(name, meta, result)
    mca = [(d.findtext(f"{{{REG335_NS}}}MCATagSymbol") or "", d.findtext(f"{{{REG335_NS}}}RFC5646SpokenLanguage") or "")
           for d in meta.findall("mca:MCASubDescriptors/*", ns)]
    if not mca:
        result.problems.append(f"{name}: no MCA sub-descriptors in the CompositionMetadataAsset (RDD 52 §7.2)")
    rate = cpl.findtext("c:ReelList/c:Reel/c:AssetList/c:MainPicture/c:FrameRate", namespaces=ns) or ""
    width = stored[0]
    allowed = {"24 1"} if width > 2048 else {"24 1", "25 1", "48 1"}
    if rate not in allowed:
        result.notes.append(f"{name}: {rate.replace(' 1', '')} fps at {'4K' if width > 2048 else '2K'} is outside "
                            f"the Bv2.1 picture rates ({', '.join(sorted(r.split()[0] for r in allowed))})")
    return _SoundClaims(labels, mca)



def _check_composition_fields(name: str, meta: etree._Element, result: DcpVerification) -> None:
    """ST 429-16 fields RDD 52 asks for (libdcp: MISSING_CPL_METADATA_VERSION_NUMBER, MISSING/INVALID_EXTENSION_
    METADATA are Bv2.1 errors; a release territory must be a UN M.49 region)."""
    ns = {"m": META_NS}
    if meta.find("m:VersionNumber", ns) is None:
        result.problems.append(f"{name}: no VersionNumber in the CompositionMetadataAsset (ST 429-16 §6.7)")
    profiles = meta.xpath("m:ExtensionMetadataList/m:ExtensionMetadata[@scope='http://isdcf.com/ns/cplmd/app']"
                          "/m:PropertyList/m:Property[m:Name='DCP Constraints Profile']/m:Value/text()", namespaces=ns)
    if BV21_PROFILE not in profiles:
        result.problems.append(f"{name}: no application extension naming the {BV21_PROFILE} profile")
    territory = meta.find("m:ReleaseTerritory", ns)
    if territory is None:
        result.notes.append(f"{name}: no ReleaseTerritory (ST 429-16 §6.6)")
    elif not re.fullmatch(r"[A-Z]{2}|[0-9]{3}", territory.text or ""):
        result.problems.append(f"{name}: ReleaseTerritory {territory.text!r} is not a UN M.49 region (US, GB, 001)")
    if meta.find("m:Luminance", ns) is None:
        result.notes.append(f"{name}: no Luminance (ST 429-16 §6.13)")
