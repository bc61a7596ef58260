"""`deliver run` with a spec asking for a 4K flat DCP (3996x2160, 24 fps): made by the flow from a 1080p
master (upscaled: an HD master keeps the synthetic master and the run's QC cheap; the DCP side is the same
as from a UHD one) and verified by our verification, ClairMeta and MediaInfo. One second of programme, the
shortest reel SMPTE ST 429-2 allows, keeps the 4K encode to 24 frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.dcp.codestream import parse_codestream
from tasks.dcp.package import CPL_NS, META_NS
from tasks.dcp.verify import verify_dcp
from tasks.mxf.reader import read_track
from tests.dcp.test_run import _check_tracks, _clairmeta_errors, _inputs
from tests.harness import _prefect_logs_to_real_stderr, prefect_api  # noqa: F401 - fixtures, used by name

register_commands()
pytestmark = pytest.mark.skipif(shutil.which("grk_compress") is None or shutil.which("mediainfo") is None,
                                reason="grokj2k-tools and mediainfo are needed (make setup)")

SPEC_4K = ("schema: 1\nname: cinema-4k\nextends: dci-cinema\ndescription: 4K flat DCP\n"
           "provenance: {document: test, confidence: NC}\n"
           "deliverables:\n  - id: dcp\n    kind: dcp\n    container: dcp\n"
           "    dcp: {resolution: 4k, fit: flat}\n    audio: [{from_track: main-51, codec: pcm_s24le}]\n"
           "    name: \"{title}_{version}_dcp\"\n")
NS = {"c": CPL_NS, "m": META_NS}


def test_deliver_run_makes_a_verified_4k_flat_dcp(tmp_path: Path) -> None:
    master, mix = _inputs(tmp_path / "in", programme_s=1.0)
    spec = tmp_path / "cinema-4k.yaml"
    spec.write_text(SPEC_4K)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--master", str(master), "--mix", str(mix), "--spec", str(spec),
                                      "--title", "Film", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    dcp = out / "Film_v1" / "Film_v1_dcp"
    verification = verify_dcp(dcp)
    assert verification.problems == [] and verification.counts["frames_checked"] == 24  # 1 s, leader dropped
    picture = read_track(next(dcp.glob("j2c_*.mxf")))
    assert picture.stored_size == (3996, 2160) and picture.frame_count == 24
    first = parse_codestream(next(iter(picture.iter_frames())))
    # ISO/IEC 15444-1 Amd 1 4K profile (Rsiz 4), 6 levels; 3 components x 2 tile-parts (RDD 52).
    assert (first.width, first.height, first.rsiz, first.levels, len(first.tile_parts)) == (3996, 2160, 4, 6, 6)
    _check_tracks(dcp, 3996, 2160, 24, 24, 6, resolution="4k")
    errors, ran = _clairmeta_errors(dcp)
    assert errors == []
    for check in ("check_cpl_xml", "check_pkl_xml", "check_am_xml", "check_assets_pkl_hash", "check_dcnc_compliance",
                  "check_document_signature", "check_dcp_signed"):
        assert check in ran, check
    cpl = etree.parse(next(dcp.glob("cpl_*.xml")))
    assert "Film_FTR-1_F_EN-XX_INT_51_4K_DLV_" in cpl.findtext("c:ContentTitleText", namespaces=NS)
    # ST 429-16: the HD master upscaled to 3840x2160, pillarboxed in the 3996x2160 flat container.
    for area, size in (("MainPictureStoredArea", ("3996", "2160")), ("MainPictureActiveArea", ("3840", "2160"))):
        found = cpl.find(f".//m:{area}", namespaces=NS)
        assert found is not None and (found.findtext("m:Width", namespaces=NS),
                                      found.findtext("m:Height", namespaces=NS)) == size, area
