"""The deliver flow end to end: every byte the file hasher reads in a whole run is accounted for, and a
deliverable's bytes are among them once (its publish read); after the package, archive and documents its
output record still vouches for the digests report.json and the ASC MHL carry."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.archive.hashing import bytes_hashed, digest_file
from tasks.archive.mhl import mhl_records, verify_mhl
from tasks.media.files import recorded_digests
from tasks.media.synth import make_sample_set

register_commands()
#: Hashed on top of the media: manifest.json and the ASC MHL manifests (a few KB each).
SMALL_FILES_BYTES = 64 * 1024


def test_a_delivered_package_carries_the_digests_of_the_publish_read(tmp_path):
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True)
    out, vault = tmp_path / "out", tmp_path / "vault"
    hashed = bytes_hashed()  # the CLI runs the flow and its tasks in this process
    result = CliRunner().invoke(app, ["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]),
                                      "--mix", str(media.mixes["2.0"]), "--spec", "demo", "--title", "ONCE",
                                      "--out", str(out), "--archive", str(vault), "--date", "2026-12-07"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    hashed = bytes_hashed() - hashed
    report = json.loads((out / "report.json").read_text())
    inputs = sum(Path(p).stat().st_size for p in (media.master, *media.mixes.values()))  # fingerprints
    married = (out / "work" / "ONCE_v1_layback.mov").stat().st_size  # the layback's publish read
    media_bytes = sum(d["size"] for d in report["deliverables"])  # each deliverable's publish read
    copies = sum(p.stat().st_size for p in vault.rglob("*") if p.is_file() and "ascmhl" not in p.parts)
    documents = sum(Path(p).stat().st_size for p in report["documents"])  # hashed into the MHL
    accounted = inputs + married + media_bytes + copies + documents  # copies: the archive's verification read
    assert 0 <= hashed - accounted <= SMALL_FILES_BYTES, (hashed, accounted, media_bytes)
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
