"""`deliver run` with a spec asking for a DCP: a verified 2K flat DCP, and refusals before any encode.

Checked by our verification, ClairMeta (its XML/hash/naming/signature checks) and MediaInfo.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.dcp.verify import verify_dcp
from tests.dcp.test_run import _check_tracks, _clairmeta_errors, _inputs

register_commands()
pytestmark = pytest.mark.skipif(shutil.which("grk_compress") is None or shutil.which("mediainfo") is None,
                                reason="grokj2k-tools and mediainfo are needed (make setup)")


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_deliver_run_makes_a_verified_2k_flat_dcp(tmp_path: Path) -> None:
    master, mix = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = _run(["run", "--master", str(master), "--mix", str(mix), "--spec", "dci-cinema", "--title", "Film",
                   "--out", str(out)])
    assert result.exit_code == 0, result.output
    dcp = out / "Film_v1" / "Film_v1_dcp"
    verification = verify_dcp(dcp)
    assert verification.problems == [] and verification.counts["frames_checked"] == 36  # 1.5 s, leader dropped
    _check_tracks(dcp, 1998, 1080, 24, 36, 6)
    errors, ran = _clairmeta_errors(dcp)
    assert errors == []
    for check in ("check_cpl_xml", "check_pkl_xml", "check_am_xml", "check_assets_pkl_hash", "check_dcnc_compliance",
                  "check_document_signature", "check_dcp_signed"):
        assert check in ran, check
    report = json.loads((out / "report.json").read_text())
    names = {d["name"] for d in report["deliverables"]}
    assert "Film_v1_dcp/j2c_reel1.mxf" in names and "Film_v1_dcp/ASSETMAP.xml" in names
    cpl = next(dcp.glob("cpl_*.xml")).read_text()
    assert "Film_FTR-1_F_EN-XX_INT_51_2K_DLV_" in cpl


def _refused(result, words: str, out: Path) -> None:
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert not list(out.glob("*/*_dcp*")) and not list(out.glob("**/*.j2c"))  # nothing encoded


def test_run_refuses_a_23976_master_before_any_encode(tmp_path: Path) -> None:
    master, mix = _inputs(tmp_path / "in", rate=Fraction(24000, 1001), width=320, height=180)
    out = tmp_path / "out"
    result = _run(["run", "--master", str(master), "--mix", str(mix), "--spec", "dci-cinema", "--title", "Film",
                   "--out", str(out)])
    _refused(result, "needs a speed change", out)


def test_run_refuses_a_container_that_cannot_hold_the_picture(tmp_path: Path) -> None:
    master, mix = _inputs(tmp_path / "in", width=2048, height=1080)
    spec = tmp_path / "flat-unscaled.yaml"
    spec.write_text("schema: 1\nname: flat-unscaled\nextends: dci-cinema\ndescription: flat, no scaling\n"
                    "provenance: {document: test, confidence: NC}\n"
                    "deliverables:\n  - id: dcp\n    kind: dcp\n    container: dcp\n"
                    "    dcp: {fit: flat, scale: none}\n    audio: [{from_track: main-51, codec: pcm_s24le}]\n"
                    "    name: \"{title}_{version}_dcp\"\n")
    out = tmp_path / "out"
    result = _run(["run", "--master", str(master), "--mix", str(mix), "--spec", str(spec), "--title", "Film",
                   "--out", str(out)])
    _refused(result, "container (1998x1080) cannot hold the 2048x1080 master", out)


def test_run_refuses_a_71_dcp_from_a_51_mix(tmp_path: Path) -> None:
    master, mix = _inputs(tmp_path / "in", width=320, height=180)
    spec = tmp_path / "cinema-71.yaml"
    spec.write_text("schema: 1\nname: cinema-71\nextends: dci-cinema\ndescription: 7.1 DCP\n"
                    "provenance: {document: test, confidence: NC}\n"
                    "audio:\n  tracks:\n    - {id: main-71, label: 7.1 mix, layout: \"7.1\", "
                    "channels: [L, R, C, LFE, Lss, Rss, Lrs, Rrs]}\n"
                    "deliverables:\n  - id: dcp\n    kind: dcp\n    container: dcp\n"
                    "    dcp: {sound: \"7.1\"}\n    audio: [{from_track: main-71, codec: pcm_s24le}]\n"
                    "    name: \"{title}_{version}_dcp\"\n")
    out = tmp_path / "out"
    result = _run(["run", "--master", str(master), "--mix", str(mix), "--spec", str(spec), "--title", "Film",
                   "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "6 channels" in result.output and "Traceback" not in result.output
    assert not list(out.glob("**/*.mxf"))
