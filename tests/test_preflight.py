"""Preflight through the installed CLI: every path and name-field problem is refused before work starts,
with exit 2, exactly one stderr line naming the input, no traceback, and nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.media.synth import MasterSpec, SampleSet, make_sample_set

DELIVER = str(Path(sys.executable).parent / "deliver")

SPEC_NAMED_BY_RECIPIENT = """\
schema: 1
name: recipient-names
extends: demo
description: demo with a deliverable named by its screener recipient
provenance: {document: test spec, confidence: NC}
deliverables:
  - id: mezzanine
    kind: mezzanine
    container: mov
    video: {codec: prores_ks, profile: hq, pix_fmt: yuv422p10le}
    audio:
      - {from_track: main-51, codec: pcm_s24le}
    name: "{title}_{recipient}_{id}.{ext}"
"""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    return make_sample_set(tmp_path_factory.mktemp("preflight") / "media", layout="5.1", stereo=True,
                           master=MasterSpec(head_s=3, programme_s=1))


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run(media: SampleSet, out: Path | str, *extra: str, cwd: Path, spec: str = "demo",
         user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [DELIVER, "run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
           str(media.mixes["2.0"]), "--spec", spec, "--title", "T", "--out", str(out), *extra]
    return subprocess.run([*(user or []), *cmd], cwd=cwd, capture_output=True, text=True, timeout=120)


def _one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_out_that_is_a_regular_file(media: SampleSet, tmp_path: Path) -> None:
    out = tmp_path / "delivery"
    out.write_text("notes\n")
    line = _one_line(_run(media, out, cwd=tmp_path), f"--out {out}", "is a file, not a folder")
    assert "File exists" not in line
    assert out.read_text() == "notes\n" and _tree(tmp_path) == ["delivery"]


def test_out_under_a_regular_file(media: SampleSet, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    _one_line(_run(media, tmp_path / "notes.txt" / "delivery", cwd=tmp_path), "notes.txt", "is a regular file")
    assert _tree(tmp_path) == ["notes.txt"]


def test_out_inside_the_folder_of_an_input(media: SampleSet, tmp_path: Path) -> None:
    out = media.master.parent / "delivery" / "T"
    before = _tree(media.master.parent)
    _one_line(_run(media, out, cwd=tmp_path), f"--out {out}", f"inside the folder {media.master.parent}",
              str(media.master))
    assert _tree(media.master.parent) == before


def test_out_that_is_a_symlink_loop(media: SampleSet, tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    _one_line(_run(media, tmp_path / "a", cwd=tmp_path), "--out", str(tmp_path / "a"), "symbolic link loop")
    assert _tree(tmp_path) == ["a", "b"]


def test_archive_target_that_is_a_file(media: SampleSet, tmp_path: Path) -> None:
    target = tmp_path / "vault"
    target.write_text("not a folder")
    _one_line(_run(media, tmp_path / "out", "--archive", str(target), cwd=tmp_path), f"--archive {target}",
              "is a file, not a folder")
    assert _tree(tmp_path) == ["vault"]


def test_archive_target_that_is_a_symlink_loop(media: SampleSet, tmp_path: Path) -> None:
    (tmp_path / "v1").symlink_to(tmp_path / "v2")
    (tmp_path / "v2").symlink_to(tmp_path / "v1")
    _one_line(_run(media, tmp_path / "out", "--archive", f"file://{tmp_path / 'v1'}", cwd=tmp_path), "--archive",
              "symbolic link loop")
    assert _tree(tmp_path) == ["v1", "v2"]


@pytest.mark.parametrize(("date", "needle"), [("07/12/2026", "is not an ISO 8601 date; write YYYY-MM-DD"),
                                              ("20261207", "is not an ISO 8601 date"),
                                              ("2026-02-30", "is not a calendar date")])
def test_date_that_is_not_an_iso_8601_date(media: SampleSet, tmp_path: Path, date: str, needle: str) -> None:
    _one_line(_run(media, tmp_path / "out", "--date", date, cwd=tmp_path), f"--date {date!r}", needle)
    assert _tree(tmp_path) == []


@pytest.mark.parametrize(("recipient", "needle"), [("../../etc/x", "would change folders"),
                                                   ("Jane\nDoe", "control characters"),
                                                   ("  ", "--recipient is empty")])
def test_recipient_that_cannot_be_a_name_field(media: SampleSet, tmp_path: Path, recipient: str, needle: str) -> None:
    _one_line(_run(media, tmp_path / "out", "--recipient", recipient, cwd=tmp_path), "--recipient", needle)
    assert _tree(tmp_path) == []


def test_lang_that_would_change_folders(media: SampleSet, tmp_path: Path) -> None:
    _one_line(_run(media, tmp_path / "out", "--lang", "../en", cwd=tmp_path), "--lang '../en' is not a language tag")
    assert _tree(tmp_path) == []


def test_deliverable_name_that_needs_a_field_the_run_lacks(media: SampleSet, tmp_path: Path) -> None:
    spec = tmp_path / "specs" / "recipient-names.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC_NAMED_BY_RECIPIENT)
    _one_line(_run(media, tmp_path / "out", spec=str(spec), cwd=tmp_path), "deliverable mezzanine of spec "
              "recipient-names", "{recipient}")
    assert _tree(tmp_path) == ["specs", "specs/recipient-names.yaml"]


def test_qc_report_under_a_regular_file(media: SampleSet, tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("a file")
    report = tmp_path / "reports" / "qc" / "r.json"
    proc = subprocess.run([DELIVER, "qc", str(media.master), "--spec", "demo", "--json", str(report)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    _one_line(proc, f"--json {report}", f"{tmp_path / 'reports'} is a regular file")
    assert _tree(tmp_path) == ["reports"]


# ------------------------------------------------------------------ not writable (as an unprivileged user)


def _unprivileged() -> list[str]:
    """A command prefix that runs as a user whom a 0o555 folder refuses (root bypasses permission bits).

    A user namespace mapping our uid to an unprivileged one keeps file ownership (so the virtualenv stays
    readable) but drops root's capabilities: the folder's owner bits r-x apply."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--user", "--map-user=65534", "--map-group=65534", "true"],
                                         capture_output=True).returncode != 0:
        pytest.skip("running as root without user namespaces: cannot drop privileges to test permissions")
    return [unshare, "--user", "--map-user=65534", "--map-group=65534"]


def test_out_in_a_folder_that_is_not_writable(media: SampleSet, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    _one_line(_run(media, locked / "out", cwd=tmp_path, user=_unprivileged()), f"--out {locked / 'out'}",
              f"{locked} is not writable")
    assert list(locked.iterdir()) == []


def test_qc_report_in_a_folder_that_is_not_writable(media: SampleSet, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    proc = subprocess.run([*_unprivileged(), DELIVER, "qc", str(media.master), "--spec", "demo", "--json",
                           str(locked / "r.json")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    _one_line(proc, f"--json {locked / 'r.json'}", "not writable")
    assert list(locked.iterdir()) == []
