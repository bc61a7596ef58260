"""The DCP's XML: composition playlist, packing list, asset map and volume index (SMPTE ST 429-7/-8/-9).

``write_dcp`` takes track files already written into the DCP folder (one picture + one sound per reel) and
writes, in this order, so a half-made DCP is never mistaken for a whole one (a server finds a DCP by its
ASSETMAP, written last):

- the CPL (ST 429-7) with, in the first reel, the ST 429-16 CompositionMetadataAsset Bv2.1 asks for
  (FullContentTitleText, ReleaseTerritory, VersionNumber, Chain/Distributor/Facility, Luminance,
  MainSoundConfiguration, MainSoundSampleRate, stored/active picture area, the RDD 52 application
  extension, the sound track's MCA sub-descriptors with their spoken language) and FFOC/LFOC markers
  (ST 429-7 §8.3.3 MainMarkers; first reel / last reel) plus FFEC/FFMC when given;
- the PKL (ST 429-8) listing every track file and the CPL with SHA-1 base64 hashes and sizes;
- CPL and PKL signed (``tasks.dcp.sign``) when a signer is given;
- ASSETMAP and VOLINDEX (ST 429-9 §5, §6).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from lxml import etree

from specs.errors import BadInputError
from specs.layouts import spec_layout
from specs.model import release_territory
from tasks.dcp.naming import CONTENT_KINDS, DcpNameFields, content_title_text
from tasks.dcp.sign import Signer, sign_xml
from tasks.media.files import atomic_output
from tasks.mxf.labels import MCA_SOUNDFIELDS
from tasks.mxf.reader import read_track
from tasks.mxf.writer import TrackFileInfo

__all__ = ["write_dcp", "sha1_base64", "CompositionMetadata", "CPL_NS", "META_NS", "PKL_NS", "AM_NS", "MCA_NS",
           "REG335_NS", "BV21_PROFILE"]

CPL_NS = "http://www.smpte-ra.org/schemas/429-7/2006/CPL"
META_NS = "http://www.smpte-ra.org/schemas/429-16/2014/CPL-Metadata"
PKL_NS = "http://www.smpte-ra.org/schemas/429-8/2007/PKL"
AM_NS = "http://www.smpte-ra.org/schemas/429-9/2007/AM"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
#: The ISDCF CPL metadata extension carrying the sound track's ST 377-4 MCA sub-descriptors (RDD 52 §7.2),
#: with the ST 395 (AAF class) and ST 335 (metadata element) registers as element namespaces.
MCA_NS = "http://isdcf.com/ns/cplmd/mca"
_REG395_NS = "http://www.smpte-ra.org/reg/395/2014/13/1/aaf"
REG335_NS = "http://www.smpte-ra.org/reg/335/2012"
#: RDD 52 (SMPTE DCP Bv2.1) application identification in the ST 429-16 extension metadata.
BV21_PROFILE = "SMPTE-RDD-52:2020-Bv2.1"
_APP_SCOPE = "http://isdcf.com/ns/cplmd/app"
#: ST 429-7 Table 2 marker labels.
_MARKER_LABELS = {"FFOB", "FFTC", "FFOI", "FFHS", "FFEC", "FFMC", "FFOC", "LFOC", "LFMC", "LFEC", "LFHS", "LFOI",
                  "LFTC", "LFOB"}


@dataclass(frozen=True)
class CompositionMetadata:
    """ST 429-16 §6 composition metadata the spec and run decide (the rest comes from the track files).

    ``release_territory``: §6.6, a UN M.49 region (ISO 3166 alpha-2, or 001 for the world);
    ``luminance_fl``: §6.13, the screen luminance of peak white the picture was graded for (14 fL, 48 cd/m²,
    is the 2D reference of SMPTE RP 431-2 / ST 428-1); ``version_status``: §6.7 VersionNumber status.
    """

    release_territory: str = "001"
    luminance_fl: float = 14.0
    distributor: str | None = None
    chain: str | None = None
    facility: str | None = None
    version_status: str = "final"
    title_language: str = "en"


def sha1_base64(path: Path, chunk_bytes: int = 8 << 20) -> str:
    """SHA-1 of the file, base64 (ST 429-8 §6.3 Hash)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return base64.b64encode(h.digest()).decode()


def _urn(u: uuid.UUID) -> str:
    return f"urn:uuid:{u}"


def _rational(r: Fraction) -> str:
    return f"{r.numerator} {r.denominator}"


def _sub(parent: etree._Element, tag: str, text: object = None, ns: str = CPL_NS, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", **attrs)
    if text is not None:
        el.text = str(text)
    return el


def _asset(parent: etree._Element, tag: str, asset_id: uuid.UUID, edit_rate: Fraction, duration: int,
           ns: str = CPL_NS, entry_and_duration: bool = True) -> etree._Element:
    el = _sub(parent, tag, ns=ns)
    _sub(el, "Id", _urn(asset_id))
    _sub(el, "EditRate", _rational(edit_rate))
    _sub(el, "IntrinsicDuration", duration)
    if entry_and_duration:
        _sub(el, "EntryPoint", 0)
        _sub(el, "Duration", duration)
    return el


def _sound_configuration(layout: str) -> str:
    """ST 429-16 §6.5 MainSoundConfiguration: soundfield code / channel labels in track order."""
    return f"{MCA_SOUNDFIELDS[layout][0][2:]}/{','.join(spec_layout(layout).labels)}"


def _urn_ul(ul: bytes) -> str:
    """A SMPTE UL as a URN in dotted groups of four bytes, the form asdcplib/libdcp read (SMPTE ST 2029)."""
    h = ul.hex()
    return "urn:smpte:ul:" + ".".join(h[i:i + 8] for i in range(0, 32, 8))


def _mca_subdescriptors(parent: etree._Element, sound: Path) -> None:
    """The sound track file's MCA sub-descriptors, copied from the file as written (RDD 52 §7.2: the CPL
    mirrors the MXF labels, so a server reads the configuration and spoken language without the MXF)."""
    subs = [s for s in read_track(sound).subdescriptors if s.get("MCALabelDictionaryID")]
    tags = {"soundfield_group_label": "SoundfieldGroupLabelSubDescriptor",
            "audio_channel_label": "AudioChannelLabelSubDescriptor"}
    out = etree.SubElement(parent, f"{{{MCA_NS}}}MCASubDescriptors", nsmap={"mca": MCA_NS, "r0": _REG395_NS,
                                                                            "r1": REG335_NS})
    for s in subs:
        if s.kind not in tags:
            continue
        el = _sub(out, tags[s.kind], ns=_REG395_NS)
        fields: list[tuple[str, str | None]] = [
            ("InstanceID", _urn(uuid.UUID(bytes=s.get("InstanceUID") or bytes(16)))),
            ("MCALabelDictionaryID", _urn_ul(s.get("MCALabelDictionaryID") or bytes(16))),
            ("MCALinkID", _urn(uuid.UUID(bytes=s.get("MCALinkID") or bytes(16)))),
            ("MCATagSymbol", s.text("MCATagSymbol")), ("MCATagName", s.text("MCATagName") or None),
            ("MCAChannelID", str(s.uint("MCAChannelID")) if s.get("MCAChannelID") else None),
            ("RFC5646SpokenLanguage", (s.get("RFC5646SpokenLanguage") or b"").decode("ascii") or None),
            ("SoundfieldGroupLinkID", _urn(uuid.UUID(bytes=link)) if (link := s.get("SoundfieldGroupLinkID"))
             else None)]
        for name, value in fields:
            if value is not None:
                _sub(el, name, value, ns=REG335_NS)


def _check_reels(reels: Sequence[tuple[TrackFileInfo, TrackFileInfo]], out_dir: Path) -> None:
    if not reels:
        raise BadInputError("a DCP needs at least one reel")
    rate = reels[0][0].edit_rate
    for n, (pic, snd) in enumerate(reels, start=1):
        if pic.kind != "picture" or snd.kind != "sound":
            raise BadInputError(f"reel {n}: expected a picture and a sound track file")
        if pic.duration != snd.duration:
            raise BadInputError(f"reel {n}: picture has {pic.duration} frames, sound {snd.duration}; "
                                "a reel's track files must be the same length (ST 429-7 §7.2)")
        if pic.edit_rate != rate or snd.edit_rate != rate:
            raise BadInputError(f"reel {n}: edit rate differs from reel 1 ({rate})")
        if pic.duration < rate:  # ST 429-2 §7.1: a reel lasts at least one second
            raise BadInputError(f"reel {n}: {pic.duration} frames is shorter than the 1 s minimum reel length")
        for info in (pic, snd):
            if info.path.parent.resolve() != out_dir.resolve():
                raise BadInputError(f"{info.path} is not in the DCP folder {out_dir}")


def _write_xml(root: etree._Element, path: Path) -> None:
    with atomic_output(path) as tmp:
        etree.ElementTree(root).write(str(tmp), xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _reel_markers(reels: Sequence[tuple[TrackFileInfo, TrackFileInfo]],
                  extra: Mapping[str, int]) -> list[list[tuple[str, int]]]:
    """Markers per reel as (label, offset in the reel).

    FFOC/LFOC (ST 429-7 §8.3.3 MainMarkers, first/last frame of content) as the Bv2.1 profile (RDD 52) is
    read in practice and libdcp's verifier checks: FFOC at offset 1 of the first reel, LFOC at the last
    reel's duration - 1. ``extra`` adds markers (FFEC, FFMC, ... ST 429-7 Table 2) at composition frames.
    """
    out: list[list[tuple[str, int]]] = [[] for _ in reels]
    out[0].append(("FFOC", 1))
    out[-1].append(("LFOC", reels[-1][0].duration - 1))
    total = sum(p.duration for p, _s in reels)
    for label, frame in extra.items():
        if label not in _MARKER_LABELS or not 0 <= frame < total:
            raise BadInputError(f"marker {label} at frame {frame}: labels are {', '.join(sorted(_MARKER_LABELS))}, "
                                f"frames 0-{total - 1}")
        start = 0
        for n, (pic, _snd) in enumerate(reels):
            if frame < start + pic.duration:
                out[n].append((label, frame - start))
                break
            start += pic.duration
    return out


def _cpl(cpl_id: uuid.UUID, title: str, fields: DcpNameFields, reels: Sequence[tuple[TrackFileInfo, TrackFileInfo]],
         hashes: dict[Path, str], issue_date: str, issuer: str, creator: str,
         active_area: tuple[int, int], markers: Mapping[str, int], info: CompositionMetadata) -> etree._Element:
    root = etree.Element(f"{{{CPL_NS}}}CompositionPlaylist", nsmap={None: CPL_NS, "meta": META_NS,
                                                                       "dsig": DSIG_NS})
    _sub(root, "Id", _urn(cpl_id))
    _sub(root, "AnnotationText", title)  # Bv2.1 §8.1: AnnotationText is the ContentTitleText
    _sub(root, "IssueDate", issue_date)
    _sub(root, "Issuer", issuer)
    _sub(root, "Creator", creator)
    _sub(root, "ContentTitleText", title)
    _sub(root, "ContentKind", CONTENT_KINDS[fields.content_kind.upper()])
    version = _sub(root, "ContentVersion")
    _sub(version, "Id", f"urn:uri:{cpl_id}_{issue_date}")
    _sub(version, "LabelText", f"{title}_{issue_date}")
    _sub(root, "RatingList")
    reel_list = _sub(root, "ReelList")
    total = sum(p.duration for p, _s in reels)
    per_reel = _reel_markers(reels, markers)
    for n, (pic, snd) in enumerate(reels):
        reel = _sub(reel_list, "Reel")
        _sub(reel, "Id", _urn(uuid.uuid4()))
        assets = _sub(reel, "AssetList")
        if per_reel[n]:  # MainMarkers carry no EntryPoint/Duration (libdcp: UNEXPECTED_ENTRY_POINT/DURATION)
            mm = _asset(assets, "MainMarkers", uuid.uuid4(), pic.edit_rate, pic.duration, entry_and_duration=False)
            mlist = _sub(mm, "MarkerList")
            for label, offset in sorted(per_reel[n], key=lambda m: m[1]):
                m = _sub(mlist, "Marker")
                _sub(m, "Label", label)
                _sub(m, "Offset", offset)
        mp = _asset(assets, "MainPicture", pic.asset_id, pic.edit_rate, pic.duration)
        _sub(mp, "Hash", hashes[pic.path])
        _sub(mp, "FrameRate", _rational(pic.edit_rate))
        _sub(mp, "ScreenAspectRatio", f"{pic.stored_width} {pic.stored_height}")
        ms = _asset(assets, "MainSound", snd.asset_id, snd.edit_rate, snd.duration)
        _sub(ms, "Hash", hashes[snd.path])
        if n == 0:  # ST 429-16 §5: the CompositionMetadataAsset goes in the first reel
            meta = _sub(assets, "CompositionMetadataAsset", ns=META_NS)
            _sub(meta, "Id", _urn(uuid.uuid4()))
            _sub(meta, "EditRate", _rational(pic.edit_rate))
            _sub(meta, "IntrinsicDuration", total)
            # ST 429-16 §6 elements in the schema's sequence order.
            _sub(meta, "FullContentTitleText", fields.title, ns=META_NS, language=info.title_language)
            _sub(meta, "ReleaseTerritory", info.release_territory, ns=META_NS)
            _sub(meta, "VersionNumber", fields.version, ns=META_NS, status=info.version_status)
            for tag, value in (("Chain", info.chain), ("Distributor", info.distributor),
                               ("Facility", info.facility)):
                if value:
                    _sub(meta, tag, value, ns=META_NS)
            # No AlternateContentVersionList: a CPL made here has one ContentVersion (§6.10 lists the others).
            _sub(meta, "Luminance", f"{info.luminance_fl:g}", ns=META_NS, units="foot-lambert")
            _sub(meta, "MainSoundConfiguration", _sound_configuration(snd.layout), ns=META_NS)
            _sub(meta, "MainSoundSampleRate", f"{snd.sample_rate} 1", ns=META_NS)
            for area, (width, height) in (("MainPictureStoredArea", (pic.stored_width, pic.stored_height)),
                                          ("MainPictureActiveArea", active_area)):
                a = _sub(meta, area, ns=META_NS)
                _sub(a, "Width", width, ns=META_NS)
                _sub(a, "Height", height, ns=META_NS)
            ext = _sub(_sub(meta, "ExtensionMetadataList", ns=META_NS), "ExtensionMetadata", ns=META_NS,
                       scope=_APP_SCOPE)
            _sub(ext, "Name", "Application", ns=META_NS)
            prop = _sub(_sub(ext, "PropertyList", ns=META_NS), "Property", ns=META_NS)
            _sub(prop, "Name", "DCP Constraints Profile", ns=META_NS)
            _sub(prop, "Value", BV21_PROFILE, ns=META_NS)
            _mca_subdescriptors(meta, snd.path)
    return root


def write_dcp(out_dir: Path, fields: DcpNameFields, reels: Sequence[tuple[TrackFileInfo, TrackFileInfo]], *,
              signer: Signer | None = None, issuer: str = "deliver", creator: str = "deliver",
              active_area: tuple[int, int] | None = None, markers: Mapping[str, int] | None = None,
              metadata: CompositionMetadata | None = None, issue_time: dt.datetime | None = None,
              track_hashes: Mapping[Path, str] | None = None) -> Path:
    """Write CPL, PKL, ASSETMAP and VOLINDEX for ``reels`` into ``out_dir`` (where the track files are).

    ``active_area``: the picture inside the container (ST 429-16 MainPictureActiveArea; default the whole
    container), rounded down to even sizes as Bv2.1 asks. ``markers``: extra composition markers by label
    (e.g. FFEC/FFMC, the credits, which Bv2.1 wants in a feature) at composition frame numbers.
    ``metadata``: the ST 429-16 fields (default: the ISDCF territory, 14 fL, the ISDCF facility).
    ``track_hashes``: the track files' SHA-1 (base64) already computed from the files on disk (the verification
    pass of ``tasks.dcp.verify.scan_track``), so the PKL does not read them again; default: read here.
    Returns ``out_dir``. Raises BadInputError on reels that cannot make a DCP (lengths, rates, names).
    """
    out_dir = Path(out_dir)
    _check_reels(reels, out_dir)
    title = content_title_text(fields)
    issued = (issue_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    issue_date = issued.isoformat()
    annotation = title  # Bv2.1 §8.1 (CPL) and the PKL annotation of a one-CPL package: the ContentTitleText
    pic0 = reels[0][0]
    width, height = active_area or (pic0.stored_width, pic0.stored_height)
    if not (0 < width <= pic0.stored_width and 0 < height <= pic0.stored_height):
        raise BadInputError(f"active area {width}x{height} is not inside the {pic0.stored_width}x"
                            f"{pic0.stored_height} container")
    area = (width - width % 2, height - height % 2)
    tracks = [t for reel in reels for t in reel]
    known = track_hashes or {}
    hashes = {t.path: known.get(t.path) or sha1_base64(t.path) for t in tracks}
    info = metadata or CompositionMetadata(release_territory=release_territory(fields.territory) or "001",
                                           facility=fields.facility)

    cpl_id, pkl_id, am_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cpl = _cpl(cpl_id, title, fields, reels, hashes, issue_date, issuer, creator, area, markers or {}, info)
    if signer is not None:
        sign_xml(cpl, signer, CPL_NS)
    cpl_path = out_dir / f"cpl_{cpl_id}.xml"
    _write_xml(cpl, cpl_path)

    pkl = etree.Element(f"{{{PKL_NS}}}PackingList", nsmap={None: PKL_NS, "dsig": DSIG_NS})
    _sub(pkl, "Id", _urn(pkl_id), ns=PKL_NS)
    _sub(pkl, "AnnotationText", annotation, ns=PKL_NS)
    _sub(pkl, "IssueDate", issue_date, ns=PKL_NS)
    _sub(pkl, "Issuer", issuer, ns=PKL_NS)
    _sub(pkl, "Creator", creator, ns=PKL_NS)
    asset_list = _sub(pkl, "AssetList", ns=PKL_NS)
    entries = [(t.asset_id, t.path, "application/mxf", hashes[t.path]) for t in tracks]
    entries.append((cpl_id, cpl_path, "text/xml", sha1_base64(cpl_path)))
    for asset_id, path, mime, digest in entries:
        a = _sub(asset_list, "Asset", ns=PKL_NS)
        _sub(a, "Id", _urn(asset_id), ns=PKL_NS)
        _sub(a, "AnnotationText", path.name, ns=PKL_NS)
        _sub(a, "Hash", digest, ns=PKL_NS)
        _sub(a, "Size", path.stat().st_size, ns=PKL_NS)
        _sub(a, "Type", mime, ns=PKL_NS)
        _sub(a, "OriginalFileName", path.name, ns=PKL_NS)
    if signer is not None:
        sign_xml(pkl, signer, PKL_NS)
    pkl_path = out_dir / f"pkl_{pkl_id}.xml"
    _write_xml(pkl, pkl_path)

    volindex = etree.Element(f"{{{AM_NS}}}VolumeIndex", nsmap={None: AM_NS})
    _sub(volindex, "Index", 1, ns=AM_NS)
    _write_xml(volindex, out_dir / "VOLINDEX.xml")

    am = etree.Element(f"{{{AM_NS}}}AssetMap", nsmap={None: AM_NS})
    _sub(am, "Id", _urn(am_id), ns=AM_NS)
    _sub(am, "AnnotationText", annotation, ns=AM_NS)
    _sub(am, "Creator", creator, ns=AM_NS)
    _sub(am, "VolumeCount", 1, ns=AM_NS)
    _sub(am, "IssueDate", issue_date, ns=AM_NS)
    _sub(am, "Issuer", issuer, ns=AM_NS)
    am_assets = _sub(am, "AssetList", ns=AM_NS)
    for asset_id, path, is_pkl in [(pkl_id, pkl_path, True), *((i, p, False) for i, p, _m, _d in entries)]:
        a = _sub(am_assets, "Asset", ns=AM_NS)
        _sub(a, "Id", _urn(asset_id), ns=AM_NS)
        if is_pkl:
            _sub(a, "PackingList", "true", ns=AM_NS)
        chunk = _sub(_sub(a, "ChunkList", ns=AM_NS), "Chunk", ns=AM_NS)
        _sub(chunk, "Path", path.name, ns=AM_NS)
        _sub(chunk, "VolumeIndex", 1, ns=AM_NS)
        _sub(chunk, "Offset", 0, ns=AM_NS)
        _sub(chunk, "Length", path.stat().st_size, ns=AM_NS)
    _write_xml(am, out_dir / "ASSETMAP.xml")
    return out_dir
