"""A DCP made of our track files, CPL/PKL/ASSETMAP and signatures, checked by our verification and by two
independent checkers: ClairMeta (XML/XSD, hashes, naming, signatures, certificates) and MediaInfo."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from fractions import Fraction
from pathlib import Path

import pytest
from lxml import etree

from specs.errors import BadInputError, VerificationError
from tasks.dcp.naming import DcpNameFields, content_title_text
from tasks.dcp.package import CPL_NS, META_NS, write_dcp
from tasks.dcp.sign import ensure_signer, load_signer
from tasks.dcp.verify import DcpVerification, raise_if_failed, verify_dcp
from tasks.mxf import TrackFileInfo, write_picture_track, write_sound_track
from tests.mxf.conftest import encode_j2k_frames

RATE = Fraction(24)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return encode_j2k_frames(tmp_path_factory.mktemp("j2k"), 3)


@pytest.fixture(scope="module")
def signer_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signer") / "dcp-signer"


def _reel(out: Path, frames: list[bytes], count: int, layout: str = "5.1") -> tuple[TrackFileInfo, TrackFileInfo]:
    pa, sa = uuid.uuid4(), uuid.uuid4()
    channels = {"5.1": 6, "7.1": 8}[layout]
    pic = write_picture_track((frames[i % len(frames)] for i in range(count)), out / f"j2c_{pa}.mxf", RATE, 1998,
                              1080, asset_id=pa)
    snd = write_sound_track((bytes(2000 * channels * 3) for _ in range(count)), out / f"pcm_{sa}.mxf", RATE, layout,
                            asset_id=sa, language="en-GB")
    return pic, snd


def _make_dcp(out: Path, frames: list[bytes], signer_dir: Path, reel_frames: tuple[int, ...] = (48,),
              layout: str = "5.1", markers: dict[str, int] | None = None) -> Path:
    out.mkdir(parents=True)
    reels = [_reel(out, frames, n, layout) for n in reel_frames]
    fields = DcpNameFields("Cinema Test Film", 1998, 1080, layout, RATE, territory="GB", rating="12",
                           studio="DLV", facility="DLV", date=dt.date(2026, 12, 1))
    return write_dcp(out, fields, reels, signer=ensure_signer(signer_dir), markers=markers,
                     active_area=(1998, 1079))


@pytest.fixture(scope="module")
def dcp(tmp_path_factory: pytest.TempPathFactory, frames: list[bytes], signer_home: Path) -> Path:
    return _make_dcp(tmp_path_factory.mktemp("dcp") / "DCP", frames, signer_home, markers={"FFEC": 40, "FFMC": 42})


def _clairmeta(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "clairmeta.cli", "check", "-type", "dcp", str(path), "-format",
                          "json"], capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    return json.loads(out.stdout)


def _errors(report: dict) -> list[str]:
    return [f"{c['name']}: {e['message']}" for c in report["checks"] for e in c["errors"]]


def test_our_verification_passes_and_counts_what_it_checked(dcp: Path) -> None:
    result = verify_dcp(dcp)
    assert result.problems == []
    raise_if_failed(result)
    assert result.counts["xml_validated"] == 4  # ASSETMAP, VOLINDEX, PKL, CPL
    assert result.counts["hashes_checked"] == 3 and result.counts["signatures_checked"] == 2
    assert result.counts["track_files"] == 2 and result.counts["frames_checked"] == 48
    assert result.counts["sound_samples"] == 48 * 2000 and result.counts["reels"] == 1
    assert result.notes == []  # every frame went through the J2K cinema profile check; FFEC/FFMC given
    cpl = etree.parse(str(next(dcp.glob("cpl_*.xml")))).getroot()
    ns = {"c": CPL_NS, "m": META_NS}
    labels = cpl.xpath("//c:MainMarkers/c:MarkerList/c:Marker/c:Label/text()", namespaces=ns)
    offsets = cpl.xpath("//c:MainMarkers/c:MarkerList/c:Marker/c:Offset/text()", namespaces=ns)
    assert list(zip(labels, offsets, strict=True)) == [("FFOC", "1"), ("FFEC", "40"), ("FFMC", "42"), ("LFOC", "47")]
    assert cpl.xpath("//c:MainMarkers/c:EntryPoint | //c:MainMarkers/c:Duration", namespaces=ns) == []
    active = cpl.find(".//m:MainPictureActiveArea", ns)
    assert (active.findtext("m:Width", namespaces=ns), active.findtext("m:Height", namespaces=ns)) == ("1998", "1078")
    assert cpl.findtext("c:AnnotationText", namespaces=ns) == cpl.findtext("c:ContentTitleText", namespaces=ns)


def test_cpl_carries_the_st_429_16_metadata_bv21_asks_for(dcp: Path) -> None:
    """ReleaseTerritory from the ISDCF territory, VersionNumber, Facility, Luminance 14 fL (2D), and the sound
    track's MCA sub-descriptors mirrored with their spoken language (RDD 52 §7.2), in the schema's order."""
    from tasks.dcp.package import MCA_NS, REG335_NS
    from tasks.mxf import read_track

    cpl = etree.parse(str(next(dcp.glob("cpl_*.xml")))).getroot()
    ns = {"c": CPL_NS, "m": META_NS, "mca": MCA_NS, "r1": REG335_NS}
    meta = cpl.find(".//m:CompositionMetadataAsset", ns)
    assert [etree.QName(e).localname for e in meta][3:13] == [
        "FullContentTitleText", "ReleaseTerritory", "VersionNumber", "Facility", "Luminance",
        "MainSoundConfiguration", "MainSoundSampleRate", "MainPictureStoredArea", "MainPictureActiveArea",
        "ExtensionMetadataList"]
    assert meta.findtext("m:ReleaseTerritory", namespaces=ns) == "GB"
    assert meta.find("m:VersionNumber", ns).attrib == {"status": "final"} and meta.findtext("m:VersionNumber",
                                                                                             namespaces=ns) == "1"
    assert meta.findtext("m:Facility", namespaces=ns) == "DLV"
    lum = meta.find("m:Luminance", ns)
    assert (lum.text, lum.get("units")) == ("14", "foot-lambert")
    assert meta.findtext("m:MainSoundConfiguration", namespaces=ns) == "51/L,R,C,LFE,Ls,Rs"
    subs = meta.findall("mca:MCASubDescriptors/*", ns)
    track = read_track(next(dcp.glob("pcm_*.mxf")))
    in_file = [(s.text("MCATagSymbol"), s.get("RFC5646SpokenLanguage")) for s in track.subdescriptors
               if s.get("MCATagSymbol")]
    in_cpl = [(d.findtext("r1:MCATagSymbol", namespaces=ns), d.findtext("r1:RFC5646SpokenLanguage", namespaces=ns))
              for d in subs]
    assert len(in_cpl) == 7 and in_cpl == [(sym, lang.decode()) for sym, lang in in_file]
    assert in_cpl[0] == ("sg51", "en-GB") and [sym for sym, _l in in_cpl[1:]] == [
        "chL", "chR", "chC", "chLFE", "chLs", "chRs"]
    group_ul = "urn:smpte:ul:060e2b34.0401010d.03020201.00000000"  # ST 428-12 5.1 soundfield, as libdcp writes it
    assert subs[0].findtext("r1:MCALabelDictionaryID", namespaces=ns) == group_ul


def test_composition_metadata_faults_are_caught(dcp: Path, tmp_path: Path) -> None:
    """A CPL whose territory is not a UN M.49 region, without VersionNumber or the Bv2.1 profile, whose MCA
    language differs from the track file's, or with a marker past its reel fails our verification."""
    bad = tmp_path / "DCP"
    shutil.copytree(dcp, bad)
    cpl = next(bad.glob("cpl_*.xml"))
    text = cpl.read_text()
    for old, new in (("<meta:ReleaseTerritory>GB<", "<meta:ReleaseTerritory>INT<"),
                     ('<meta:VersionNumber status="final">1</meta:VersionNumber>', ""),
                     ("SMPTE-RDD-52:2020-Bv2.1", "SMPTE-RDD-52:2020-Bv2.0"),
                     ("<r1:RFC5646SpokenLanguage>en-GB<", "<r1:RFC5646SpokenLanguage>fr<"),
                     ("<Offset>42</Offset>", "<Offset>48</Offset>")):
        assert old in text, old
        text = text.replace(old, new, 1)
    cpl.write_text(text)
    problems = verify_dcp(bad).problems
    sound = next(bad.glob("pcm_*.mxf")).name
    for expected in (f"{cpl.name}: ReleaseTerritory 'INT' is not a UN M.49 region (US, GB, 001)",
                     f"{cpl.name}: no VersionNumber in the CompositionMetadataAsset (ST 429-16 §6.7)",
                     f"{cpl.name}: no application extension naming the SMPTE-RDD-52:2020-Bv2.1 profile",
                     f"{cpl.name}: reel 1 marker FFMC at 48 is outside the reel's 48 frames (ST 429-7 §8.3.3)"):
        assert expected in problems, (expected, problems)
    assert any(p.startswith(f"{sound}: the CPL's MCA sub-descriptors (symbol, language)") for p in problems), problems


def test_clairmeta_reports_no_error_and_its_checks_ran(dcp: Path) -> None:
    report = _clairmeta(dcp)
    assert _errors(report) == []
    ran = {c["name"] for c in report["checks"] if not c["bypass"]}
    # Without asdcplib ClairMeta skips its MXF probes: assert the checks that matter did run.
    for check in ("check_cpl_xml", "check_pkl_xml", "check_am_xml", "check_vol_xml", "check_assets_pkl_hash",
                  "check_assets_pkl_size", "check_dcnc_compliance", "check_dcnc_field_claim_audio",
                  "check_document_signature", "check_sign_chain_coherence", "check_certif_publickey_thumbprint",
                  "check_certif_basic_constraint", "check_certif_key_usage", "check_certif_role",
                  "check_cpl_reel_duration_picture_sound", "check_dcp_signed"):
        assert check in ran, check
    assert report["valid"] is True


def test_clairmeta_and_our_verification_both_catch_a_pkl_hash_mismatch(dcp: Path, tmp_path: Path) -> None:
    bad = tmp_path / "DCP"
    shutil.copytree(dcp, bad)
    sound = next(bad.glob("pcm_*.mxf"))
    data = bytearray(sound.read_bytes())
    data[-2000] ^= 0xFF  # one byte of essence: same size, different SHA-1
    sound.write_bytes(bytes(data))
    ours = verify_dcp(bad)
    assert ours.problems == [f"{sound.name}: SHA-1 does not match the PKL hash"]
    with pytest.raises(VerificationError, match="SHA-1 does not match"):
        raise_if_failed(ours)
    assert any(e.startswith("check_assets_pkl_hash") for e in _errors(_clairmeta(bad)))


def test_a_track_file_with_a_frame_missing_is_caught(dcp: Path, tmp_path: Path) -> None:
    bad = tmp_path / "DCP"
    shutil.copytree(dcp, bad)
    picture = next(bad.glob("j2c_*.mxf"))
    from tasks.mxf import read_track

    track = read_track(picture)
    gone = track.essence[10]
    data = picture.read_bytes()
    picture.write_bytes(data[:gone.offset] + data[gone.end:])  # frame 10's KLV cut out
    problems = verify_dcp(bad).problems
    assert (f"{picture.name}: edit unit counts disagree: frames in the file 47, ContainerDuration 48, "
            "index duration 48, CPL IntrinsicDuration 48") in problems
    assert f"{picture.name}: CPL plays 0+48 frames of 47" in problems


def test_a_reel_with_unequal_durations_is_refused_and_caught(tmp_path: Path, frames: list[bytes],
                                                              signer_home: Path) -> None:
    out = tmp_path / "DCP"
    out.mkdir()
    pic, _ = _reel(out, frames, 30)
    _, snd = _reel(out, frames, 29)
    fields = DcpNameFields("Short", 1998, 1080, "5.1", RATE)
    with pytest.raises(BadInputError, match="picture has 30 frames, sound 29"):
        write_dcp(out, fields, [(pic, snd)], signer=ensure_signer(signer_home))
    assert not list(out.glob("*.xml"))


def test_split_reels_and_7_1_verify(tmp_path: Path, frames: list[bytes], signer_home: Path) -> None:
    out = _make_dcp(tmp_path / "DCP", frames, signer_home, reel_frames=(24, 30), layout="7.1")
    result = verify_dcp(out)
    assert result.problems == [] and result.counts["reels"] == 2 and result.counts["track_files"] == 4
    cpl = etree.parse(str(next(out.glob("cpl_*.xml")))).getroot()
    ns = {"c": CPL_NS, "m": META_NS}
    reels = cpl.findall("c:ReelList/c:Reel", ns)
    assert [r.xpath("c:AssetList/c:MainMarkers/c:MarkerList/c:Marker/c:Label/text()", namespaces=ns)
            for r in reels] == [["FFOC"], ["LFOC"]]
    assert reels[0].findtext("c:AssetList/c:MainMarkers/c:MarkerList/c:Marker/c:Offset", namespaces=ns) == "1"
    assert reels[1].findtext("c:AssetList/c:MainMarkers/c:MarkerList/c:Marker/c:Offset", namespaces=ns) == "29"
    meta = reels[0].find("c:AssetList/m:CompositionMetadataAsset", ns)
    assert meta.findtext("m:MainSoundConfiguration", namespaces=ns) == "71/L,R,C,LFE,Lss,Rss,Lrs,Rrs"
    assert meta.findtext("c:IntrinsicDuration", namespaces=ns) == "54"
    assert _errors(_clairmeta(out)) == []


def test_unsigned_dcp_is_a_problem_when_signatures_are_required(tmp_path: Path, frames: list[bytes]) -> None:
    out = tmp_path / "DCP"
    out.mkdir()
    write_dcp(out, DcpNameFields("Unsigned", 1998, 1080, "5.1", RATE), [_reel(out, frames, 24)])
    assert sorted(p.split(":")[0] for p in verify_dcp(out).problems) == sorted(
        p.name for p in (*out.glob("cpl_*.xml"), *out.glob("pkl_*.xml")))
    assert verify_dcp(out, require_signed=False).problems == []


def test_signer_is_made_once_private_and_never_in_the_dcp(dcp: Path, signer_home: Path) -> None:
    keys = sorted(signer_home.glob("*.key"))
    assert [k.name for k in keys] == ["intermediate.key", "leaf.key", "root.key"]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert stat.S_IMODE(signer_home.stat().st_mode) == 0o700
    leaf_before = (signer_home / "leaf.pem").read_bytes()
    ensure_signer(signer_home)  # second use: the same chain, not a new one
    assert (signer_home / "leaf.pem").read_bytes() == leaf_before
    signer = load_signer(signer_home)
    assert "PRIVATE" not in repr(signer)
    import pickle

    with pytest.raises(TypeError, match="never serialised"):
        pickle.dumps(signer)
    key_body = b"".join(keys[1].read_bytes().splitlines()[1:-1])
    for f in dcp.iterdir():
        assert b"PRIVATE KEY" not in f.read_bytes() and key_body[:64] not in f.read_bytes()
    leaf, inter, root = signer.chain
    assert leaf.issuer == inter.subject and inter.issuer == root.subject
    assert leaf.not_valid_after_utc <= inter.not_valid_after_utc <= root.not_valid_after_utc


def test_signer_dir_defaults_to_deliver_home_and_follows_the_config(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.dcp.sign import signer_dir

    monkeypatch.setenv("DELIVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVER_DCP_CONFIG", str(tmp_path / "none.yaml"))
    assert signer_dir() == tmp_path / "home" / "dcp-signer"
    cfg = tmp_path / "dcp.yaml"
    cfg.write_text(f"signer_dir: {tmp_path / 'site-signer'}\n")
    monkeypatch.setenv("DELIVER_DCP_CONFIG", str(cfg))
    assert signer_dir() == tmp_path / "site-signer"


def test_isdcf_content_title_text() -> None:
    fields = DcpNameFields("The Last Boat Home!", 2048, 858, "7.1", Fraction(25), territory="de", rating="12",
                           audio_language="de", subtitle_language="en", date=dt.date(2026, 12, 7))
    assert content_title_text(fields) == "TheLastBoatHom_FTR-1-25_S_DE-EN_DE-12_71_2K_DLV_20261207_DLV_SMPTE_OV"
    flat = DcpNameFields("Film", 3996, 2160, "5.1", RATE, content_kind="tlr", date=dt.date(2026, 1, 2))
    assert content_title_text(flat) == "Film_TLR-1_F_EN-XX_INT_51_4K_DLV_20260102_DLV_SMPTE_OV"
    with pytest.raises(BadInputError, match="not a DCI container"):
        content_title_text(DcpNameFields("Film", 1920, 1080, "5.1", RATE))
    with pytest.raises(BadInputError, match="studio"):
        content_title_text(DcpNameFields("Film", 1998, 1080, "5.1", RATE, studio="TOO-LONG"))


def test_verification_result_is_not_ok_without_an_assetmap(tmp_path: Path) -> None:
    result = verify_dcp(tmp_path)
    assert isinstance(result, DcpVerification) and not result.ok
    assert result.problems == [f"{tmp_path}: no ASSETMAP.xml"]
    assert os.listdir(tmp_path) == []


def _two_guard_bits(frame: bytes) -> bytes:
    """The same codestream with QCD's Sqcd saying 2 guard bits (ISO/IEC 15444-1 A.6.4): as ffmpeg's
    libopenjpeg and opj_compress write at 2K, which RDD 52 (Bv2.1) refuses."""
    at = frame.index(b"\xff\x5c") + 4
    return frame[:at] + bytes([(2 << 5) | (frame[at] & 0x1F)]) + frame[at + 1:]


def _oversized(frame: bytes) -> bytes:
    """The codestream padded with COM marker segments to over 1,302,083 bytes (250 Mbit/s at 24 fps)."""
    com = b"\xff\x64" + (65535).to_bytes(2, "big") + b"\x00\x01" + bytes(65531)
    at = frame.index(b"\xff\x90")  # before the first SOT: still a main-header marker segment
    return frame[:at] + com * 20 + frame[at:]


def test_codestream_constraint_violations_are_caught(tmp_path: Path, frames: list[bytes],
                                                     signer_home: Path) -> None:
    out = tmp_path / "DCP"
    out.mkdir()
    bad = [frames[0], _two_guard_bits(frames[1]), _oversized(frames[2])] + [frames[0]] * 21
    pa, sa = uuid.uuid4(), uuid.uuid4()
    pic = write_picture_track(iter(bad), out / f"j2c_{pa}.mxf", RATE, 1998, 1080, asset_id=pa)
    snd = write_sound_track((bytes(36000) for _ in range(24)), out / f"pcm_{sa}.mxf", RATE, "5.1", asset_id=sa)
    write_dcp(out, DcpNameFields("Bad Frames", 1998, 1080, "5.1", RATE), [(pic, snd)],
              signer=ensure_signer(signer_home))
    result = verify_dcp(out)
    assert not any("per-frame" in n for n in result.notes)  # the per-frame profile checker ran
    name = pic.path.name
    assert any(p.startswith(f"{name}: frame 1: 2 guard bits") for p in result.problems), result.problems
    assert f"{name}: frame 2 is {len(bad[2])} bytes, over the 1302083-byte (250 Mbit/s) limit" in result.problems
    assert not any(": frame 0" in p or ": frame 3" in p for p in result.problems)


@pytest.mark.skipif(not (shutil.which("asdcp-info") and shutil.which("asdcp-unwrap")),
                    reason="asdcplib tools not on PATH (not packaged in Debian; build cinecert/asdcplib to run this)")
def test_asdcplib_reads_our_track_files_back(dcp: Path, frames: list[bytes], tmp_path: Path) -> None:
    """The reference implementation unwraps what we wrapped, byte for byte; ClairMeta then also runs its
    picture and sound probe checks (they need asdcp-info) and still reports no error."""
    picture, sound = next(dcp.glob("j2c_*.mxf")), next(dcp.glob("pcm_*.mxf"))
    subprocess.run(["asdcp-unwrap", str(picture), str(tmp_path / "f")], check=True, capture_output=True)
    unwrapped = sorted(tmp_path.glob("f*.j2c"))
    assert [p.read_bytes() for p in unwrapped] == [frames[i % len(frames)] for i in range(48)]
    subprocess.run(["asdcp-unwrap", str(sound), str(tmp_path / "snd")], check=True, capture_output=True)
    import soundfile as sf

    info = sf.info(str(tmp_path / "snd"))
    assert (info.channels, info.samplerate, info.frames, info.subtype) == (6, 48000, 48 * 2000, "PCM_24")
    report = _clairmeta(dcp)
    assert _errors(report) == []
    ran = {c["name"] for c in report["checks"] if not c["bypass"]}
    assert {"check_sound_cpl_channels", "check_sound_cpl_quantization", "check_sound_cpl_sampling",
            "check_picture_cpl_resolution", "check_picture_cpl_encoding"} <= ran


DCPVERIFY = os.environ.get("DELIVER_DCPVERIFY", "dcpverify")


def _dcpverify(path: Path) -> tuple[int, list[str]]:
    """libdcp's ``dcpverify -q``: its exit status and its "Error:" / "Bv2.1 error:" lines."""
    out = subprocess.run([DCPVERIFY, "-q", str(path)], capture_output=True, text=True, timeout=600)
    return out.returncode, [line for line in out.stdout.splitlines() if line.startswith(("Error:", "Bv2.1 error:"))]


@pytest.mark.skipif(shutil.which(DCPVERIFY) is None,
                    reason="libdcp's dcpverify not on PATH (not packaged in Debian 12: install DCP-o-matic or build "
                           "libdcp, or set DELIVER_DCPVERIFY)")
def test_libdcp_dcpverify_reports_no_error(dcp: Path, tmp_path: Path) -> None:
    """A third checker no one here wrote: libdcp's verifier (DCP-o-matic's), with its SMPTE Bv2.1 checks
    (RDD 52: guard bits, TLM, ST 429-16 metadata, MCA). It passes our DCP and fails one with a changed
    essence byte (its hash check), so it did read the track files."""
    status, errors = _dcpverify(dcp)
    assert (status, errors) == (0, [])
    bad = tmp_path / "DCP"
    shutil.copytree(dcp, bad)
    sound = next(bad.glob("pcm_*.mxf"))
    data = bytearray(sound.read_bytes())
    data[-2000] ^= 0xFF
    sound.write_bytes(bytes(data))
    status, errors = _dcpverify(bad)
    assert status != 0 and any("hash" in e.lower() for e in errors), errors


def test_composition_rules_are_checked(dcp: Path, tmp_path: Path) -> None:
    """Edited CPLs (wrong LFOC, sound configuration for fewer channels, annotation) fail our verification."""
    bad = tmp_path / "DCP"
    shutil.copytree(dcp, bad)
    cpl = next(bad.glob("cpl_*.xml"))
    text = cpl.read_text()
    text = text.replace("<Offset>47</Offset>", "<Offset>46</Offset>")
    text = text.replace("51/L,R,C,LFE,Ls,Rs", "51/L,R,C,LFE")
    text = text.replace("<AnnotationText>", "<AnnotationText>x", 1)
    cpl.write_text(text)
    problems = verify_dcp(bad).problems
    sound = next(bad.glob("pcm_*.mxf")).name
    for expected in (f"{cpl.name}: LFOC marker is 46, not the last reel's last frame 47",
                     f"{sound}: 6 channels, the CPL's MainSoundConfiguration names 4",
                     f"{cpl.name}: AnnotationText is not the ContentTitleText (Bv2.1 §8.1)",
                     f"{cpl.name}: signature digest does not match the document (edited after signing?)"):
        assert expected in problems


def test_signer_folder_made_beforehand_or_taken(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    ensure_signer(empty)
    assert sorted(p.name for p in empty.iterdir()) == ["intermediate.key", "intermediate.pem", "leaf.key", "leaf.pem",
                                                        "root.key", "root.pem"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("not a chain")
    with pytest.raises(BadInputError, match="exists without a DCP signing chain"):
        ensure_signer(taken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]  # no partial chain left behind


def _bytes_read() -> int:
    """Bytes this process has read through read(2) (Linux /proc/self/io rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_each_track_file_is_read_once_after_writing(frames: list[bytes], signer_home: Path, tmp_path: Path) -> None:
    """make_dcp's order: one scan per track file (SHA-1 and every codestream check from the same read) feeds
    the PKL and the verification; and verify_dcp on its own also reads each track file once. Measured by
    the bytes the process reads, within 15 % of the track files' size (XML, schemas, the header walks)."""
    from tasks.dcp.verify import scan_track

    out = tmp_path / "DCP"
    out.mkdir()
    reels = [_reel(out, frames, 240)]
    tracks = sum(t.path.stat().st_size for reel in reels for t in reel)
    verify_dcp(dcp_dir=Path("/nonexistent"))  # schemas and modules loaded before measuring
    fields = DcpNameFields("Read Once", 1998, 1080, "5.1", RATE, date=dt.date(2026, 12, 1))
    before = _bytes_read()
    scans = {t.path: scan_track(t.path) for reel in reels for t in reel}
    write_dcp(out, fields, reels, signer=ensure_signer(signer_home), markers={"FFEC": 200, "FFMC": 210},
              track_hashes={p: s.sha1 for p, s in scans.items()})
    result = verify_dcp(out, scans=scans)
    made = _bytes_read() - before
    assert result.problems == [] and result.counts["frames_checked"] == 240 and result.counts["hashes_checked"] == 3
    assert tracks > 5_000_000 and tracks <= made <= 1.15 * tracks, (made, tracks)
    before = _bytes_read()
    alone = verify_dcp(out)
    again = _bytes_read() - before
    assert alone.problems == [] and alone.counts["frames_checked"] == 240
    assert tracks <= again <= 1.15 * tracks, (again, tracks)
