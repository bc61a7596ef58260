"""`deliver spec ...`: exit codes 0/1/2, one line on stderr, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.cli.spec  # noqa: F401  (registers the `spec` group)
from flows.cli import app

runner = CliRunner()
DELIVER = Path(sys.executable).with_name("deliver")


def test_list() -> None:
    result = runner.invoke(app, ["spec", "list"])
    assert result.exit_code == 0
    assert "netflix" in result.stdout and "ebu-r128" in result.stdout and "demo" in result.stdout


def test_lint_builtins_ok() -> None:
    result = runner.invoke(app, ["spec", "lint"])
    assert result.exit_code == 0 and result.stdout.strip() == "ok"


def test_lint_reports_every_issue_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: 1\nname: bad\nextends: demo\ndescription: x\nprovenance: {document: d, confidence: NC}\n"
                   "picture: {widht: 3, frame_rates: [25p]}\n", encoding="utf-8")
    result = runner.invoke(app, ["spec", "lint", str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("unknown key 'widht' in picture (did you mean 'width'?)")
    assert ":6:" in lines[0] and "'25p' is not a frame rate" in lines[1]
    assert "Traceback" not in result.stdout + result.stderr


def test_show_and_resolved() -> None:
    raw = runner.invoke(app, ["spec", "show", "demo"])
    assert raw.exit_code == 0 and "extends: ebu-r128" in raw.stdout
    resolved = runner.invoke(app, ["spec", "show", "demo", "--resolved"])
    assert resolved.exit_code == 0 and "codec: prores" in resolved.stdout and "\nextends:" not in resolved.stdout


def test_show_unknown_is_exit_2_one_line() -> None:
    result = runner.invoke(app, ["spec", "show", "nope"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "unknown spec 'nope'" in result.stderr


def test_explain_bad_spec_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: 1\nname: bad\nextends: demo\ndescription: x\nprovenance: {document: d, confidence: NC}\n"
                   "timing: {ffoa_timecode: '01:00:00;00', drop_frame: true}\n", encoding="utf-8")
    result = runner.invoke(app, ["spec", "explain", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml:6:" in result.stderr and "drop-frame" in result.stderr and result.stderr.count("\n") == 1


def test_explain_lists_what_each_deliverable_is_made_as() -> None:
    result = runner.invoke(app, ["spec", "explain", "ard-zdf"])
    assert result.exit_code == 0
    assert ("`hdf02a` (mezzanine, mxf): libx264 AVC-Intra 100 yuv422p10le; audio stereo-20->pcm_s24le as mono "
            "tracks, main-51->pcm_s24le as mono tracks; with head") in result.stdout
    atsc = runner.invoke(app, ["spec", "explain", "atsc-a85"]).stdout
    assert "libx264 high yuv420p 8000 kbit/s; audio main-51->aac (2.0 downmix) at -24 LUFS" in atsc


def test_explain_and_schema() -> None:
    result = runner.invoke(app, ["spec", "explain", "netflix"])
    assert result.exit_code == 0 and "Blocker" in result.stdout and "- [ ]" in result.stdout
    schema = runner.invoke(app, ["spec", "schema"])
    assert schema.exit_code == 0 and json.loads(schema.stdout)["properties"]["name"]


@pytest.mark.skipif(not DELIVER.exists(), reason="console script not installed")
def test_console_script_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [\n", encoding="utf-8")
    lint = subprocess.run([str(DELIVER), "spec", "lint", str(bad)], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 1 and "YAML syntax error" in lint.stdout and "Traceback" not in lint.stderr
    show = subprocess.run([str(DELIVER), "spec", "show", str(bad)], capture_output=True, text=True, timeout=120)
    assert show.returncode == 2 and show.stderr.startswith("deliver: error: ") and "Traceback" not in show.stderr


@pytest.mark.skipif(not DELIVER.exists(), reason="console script not installed")
def test_lint_names_where_an_unclosed_bracket_opened_and_where_parsing_failed(tmp_path: Path) -> None:
    bad = tmp_path / "unclosed.yaml"
    comments = "".join("  # a comment the parser skips\n" for _ in range(8))
    bad.write_text("schema: 1\nname: unclosed\npicture:\n  frame_rates: [25, 24\n" + comments + "  codec: prores\n",
                   encoding="utf-8")
    lint = subprocess.run([str(DELIVER), "spec", "lint", str(bad)], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 1 and "Traceback" not in lint.stdout + lint.stderr
    line = next(x for x in lint.stdout.splitlines() if "YAML syntax error" in x)
    # PyYAML notices the unclosed '[' (line 4, column 16) only at the next key, on line 13.
    assert line.startswith(f"{bad}:13:3: ")
    assert "flow sequence opened at line 4, column 16 is not closed" in line
    assert "parsing failed at line 13, column 3" in line
