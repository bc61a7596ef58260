"""`deliver qc` exits 1 on a failing master and 0 on a clean one; writes report.json + report HTML."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.media.synth import BlackDefect
from tests.qc.media import married_set

register_commands()


def _qc(path, report):
    return CliRunner().invoke(app, ["qc", str(path), "--spec", "demo", "--json", str(report)], catch_exceptions=False)


@pytest.mark.parametrize("defects, exit_code, verdict", [([], 0, "pass"),
                                                         ([BlackDefect(at_s=1.0, duration_s=1.2)], 1, "fail")])
def test_deliver_qc_exit_code(tmp_path, defects, exit_code, verdict):
    _, married = married_set(tmp_path, defects)
    report = tmp_path / "married.qc.json"
    result = _qc(married, report)
    assert result.exit_code == exit_code, result.output
    doc = json.loads(report.read_text())
    assert doc["verdict"] == verdict
    html = report.with_suffix(".html").read_text()
    assert verdict.upper() in html
    if verdict == "fail":
        assert any(f["check"] == "picture.black" and f["severity"] == "error" for f in doc["findings"])
        assert "data:image/jpeg;base64," in html
