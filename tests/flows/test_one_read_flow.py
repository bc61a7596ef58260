"""The deliver flow end to end: after the package, archive and documents, every deliverable's output record
still vouches for the digests report.json and the ASC MHL carry, so the package step took them from the
publish read (tests/deliverables/test_one_read.py counts the bytes of that read)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.archive.hashing import digest_file
from tasks.archive.mhl import mhl_records, verify_mhl
from tasks.media.files import recorded_digests
from tasks.media.synth import make_sample_set

register_commands()


def test_a_delivered_package_carries_the_digests_of_the_publish_read(tmp_path):
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True)
    out, vault = tmp_path / "out", tmp_path / "vault"
    result = CliRunner().invoke(app, ["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]),
                                      "--mix", str(media.mixes["2.0"]), "--spec", "demo", "--title", "ONCE",
                                      "--out", str(out), "--archive", str(vault), "--date", "2026-12-07"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    package = out / "ONCE_v1"
    records = mhl_records(package)
    assert report["deliverables"]
    for d in report["deliverables"]:
        fresh = digest_file(d["path"], formats=("md5",))
        assert (d["xxh128"], d["md5"], d["size"]) == (fresh.xxh128, fresh.others["md5"], fresh.size)
        assert recorded_digests(d["path"], out) == {"xxh128": fresh.xxh128, "md5": fresh.others["md5"]}, d["name"]
        assert records[d["name"]].hash == fresh.xxh128
    assert verify_mhl(package) == [] and all(a["verified"] for a in report["archive"])
    assert any(Path(p).suffix == ".html" for p in report["documents"])
