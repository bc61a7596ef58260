"""SIGKILL of a whole ``deliver run`` process group at each stage, then the same command again.

Each test starts ``deliver run`` on a 5 s 320x180 master (2 s of programme, 5.1 + 2.0) in its own process
group, waits until the stage is running, SIGKILLs the group (no handler, no clean-up: a power cut as far
as the output folder can tell) and reruns the same command. The rerun must exit 0, resume from the
first unfinished step (earlier outputs keep their inode and mtime and the log says "reused"), give
outputs whose xxh128 equal a clean run's, leave no ``*.partial*`` file and overwrite nothing
(``OUT/work/superseded/`` stays absent).

How a stage is held while it runs: ``FFMPEG``/``FFPROBE`` point at a wrapper of the real binaries that,
while the file ``$DELIVER_KILL_ARM`` names a stage, marks the stage's first call reached and sleeps in it
(for the writers, after ffmpeg has written the partial); the archive stage is held by a lock on its own
catalog database (``DELIVER_CATALOG_URL``), which the archive writes after the copy and its ASC MHL
generation. The runs share the test session's local Prefect server (tests/conftest.py stops it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.archive.hashing import hash_file_xxh128
from tasks.media.files import PARTIAL_GLOB, RECORDS_DIR, SUPERSEDED_DIR

DELIVER = Path(sys.executable).parent / "deliver"
TITLE = "KILL"
PKG = f"{TITLE}_v1"
LAYBACK = f"work/{TITLE}_v1_layback.mov"

WRAPPER = """#!/bin/sh
# While $DELIVER_KILL_ARM names a stage, its first matching call says so and waits to be killed.
real="{real}"
stage=$(cat "$DELIVER_KILL_ARM" 2>/dev/null)
case "$stage:$*" in
  layback:*_layback.partial-*) "$real" "$@"; touch "$DELIVER_KILL_ARM.reached"; exec sleep 300 ;;
  qc:*_layback.mov*rawvideo*) touch "$DELIVER_KILL_ARM.reached"; exec sleep 300 ;;
  deliverables:*filter_complex*{pkg}/*.partial-*) "$real" "$@"; touch "$DELIVER_KILL_ARM.reached"; exec sleep 300 ;;
  package:*{pkg}/{pkg}_screener.mp4) touch "$DELIVER_KILL_ARM.reached"; exec sleep 300 ;;
esac
exec "$real" "$@"
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """Media, the ffmpeg/ffprobe wrappers, the arm file, and a clean run's xxh128 per output."""
    from tasks.media.synth import MasterSpec, make_sample_set

    root = tmp_path_factory.mktemp("kill")
    media = make_sample_set(root / "media", layout="5.1", stereo=True, master=MasterSpec(programme_s=2, head_s=3))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    for tool in ("ffmpeg", "ffprobe"):
        wrapper = root / f"{tool}-wrapper"
        real = shutil.which(os.environ.get(tool.upper(), tool))
        wrapper.write_text(WRAPPER.format(real=real, pkg=PKG))
        wrapper.chmod(0o755)
        env[tool.upper()] = str(wrapper)
    env.update(DELIVER_KILL_ARM=str(root / "arm"), DELIVER_ARCHIVE_BACKOFF_S="1",
               DELIVER_CATALOG_URL=f"sqlite:///{root / 'catalog.sqlite'}")
    rig = {"root": root, "media": media, "env": env, "arm": root / "arm"}
    clean = _run(rig, root / "clean")
    assert clean.returncode == 0, clean.stderr
    rig["clean"] = _hashes(root / "clean")
    assert {LAYBACK, f"{PKG}/{PKG}_mezzanine.mov", f"{PKG}/{PKG}_screener.mp4"} <= set(rig["clean"])
    return rig


def _cmd(rig, out: Path) -> list[str]:
    m = rig["media"]
    return [str(DELIVER), "run", "--master", str(m.master), "--mix", str(m.mixes["5.1"]), "--mix", str(m.mixes["2.0"]),
            "--spec", "demo", "--title", TITLE, "--out", str(out / "out"), "--archive", str(out / "vault")]


def _run(rig, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(rig, out), capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**rig["env"], **env})


def _hashes(out: Path) -> dict[str, str]:
    """xxh128 of the layback and of every package file but manifest.json, the ASC MHL history and the delivery
    documents (those name the run's own paths and times)."""
    o = out / "out"
    files = [o / LAYBACK, *(p for p in (o / PKG).rglob("*") if p.is_file())]
    return {p.relative_to(o).as_posix(): hash_file_xxh128(p) for p in files
            if p.name != "manifest.json" and "ascmhl" not in p.parts and "documents" not in p.parts}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _kill_at(rig, stage: str, out: Path, hold=None) -> subprocess.Popen:
    """Start the run, wait until ``stage`` is running (``hold()`` for stages held otherwise), SIGKILL its
    process group. Returns the killed process (for its pid)."""
    arm, reached = rig["arm"], Path(str(rig["arm"]) + ".reached")
    reached.unlink(missing_ok=True)
    if stage != "archive":
        arm.write_text(stage)
    err = out / "killed.stderr"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(_cmd(rig, out), stdout=subprocess.DEVNULL, stderr=err.open("w"), env=rig["env"],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        ready = hold if hold is not None else reached.exists
        deadline = time.monotonic() + 240
        while not ready():
            assert proc.poll() is None, f"the run ended before {stage}: {err.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{stage} never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        arm.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc


def _assert_resumed(rig, out: Path, rerun: subprocess.CompletedProcess[str], kept: dict[str, tuple[int, int]]):
    assert rerun.returncode == 0, rerun.stderr
    o = out / "out"
    assert not list(o.rglob(PARTIAL_GLOB)) and not list((out / "vault").rglob(PARTIAL_GLOB))
    assert _hashes(out) == rig["clean"]
    copy = out / "vault" / PKG
    assert {p.relative_to(copy).as_posix(): hash_file_xxh128(p) for p in copy.rglob("*")
            if p.is_file() and "ascmhl" not in p.parts and p.name != "manifest.json"} == {
        k[len(PKG) + 1:]: v for k, v in rig["clean"].items() if k.startswith(PKG + "/")}
    for rel, stamp in kept.items():  # finished before the kill: not made again
        assert _stamp(o / rel) == stamp, f"{rel} was made again"
    assert not (o / SUPERSEDED_DIR).exists()  # nothing of other content was there to move aside
    report = json.loads((o / "report.json").read_text())
    assert report["delivered"] is True and report["archive"][0]["verified"] is True
    assert not (o / ".deliver.lock").exists()


def _log(out: Path) -> str:
    return (out / "out" / "work" / "deliver.log").read_text()


def test_kill_during_layback_then_rerun_makes_it_from_the_start(rig, tmp_path):
    _kill_at(rig, "layback", tmp_path)
    o = tmp_path / "out"
    assert not (o / LAYBACK).exists()
    assert list((o / "work").glob(f"{TITLE}_v1_layback.partial-*.mov"))  # killed with its partial written
    rerun = _run(rig, tmp_path)
    _assert_resumed(rig, tmp_path, rerun, {})
    assert "left by an interrupted run" in _log(tmp_path)


def test_kill_during_qc_a_second_run_is_refused_then_rerun_without_records_or_prefect_cache(rig, tmp_path):
    """Also: two runs on one --out (the second refused at once, naming the holder), a stale lock taken
    over, and the instant right after the layback's rename with no record and an empty Prefect home."""
    o = tmp_path / "out"
    second: dict[str, subprocess.CompletedProcess[str]] = {}

    def hold() -> bool:
        if not Path(str(rig["arm"]) + ".reached").exists():
            return False
        second["run"] = _run(rig, tmp_path)  # while the first one sits in QC, holding the lock
        return True

    first = _kill_at(rig, "qc", tmp_path, hold)
    refused = second["run"]
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deliver: error:"), refused.stderr
    assert f"{o} is in use by another deliver run (pid {first.pid} on " in lines[0]
    assert "Traceback" not in refused.stderr
    assert (o / LAYBACK).exists() and not (o / "report.json").exists()
    assert (o / ".deliver.lock").exists()  # left by the killed holder: stale, to be taken over
    before = _stamp(o / LAYBACK)
    shutil.rmtree(o / RECORDS_DIR)  # as if killed right after the rename, before any record existed
    rerun = _run(rig, tmp_path, PREFECT_HOME=str(tmp_path / "fresh-prefect-home"))
    _assert_resumed(rig, tmp_path, rerun, {LAYBACK: before})  # redone into a partial, equal bytes: kept


def test_kill_during_deliverables_then_rerun_reuses_the_layback(rig, tmp_path):
    _kill_at(rig, "deliverables", tmp_path)
    o = tmp_path / "out"
    assert list((o / PKG).glob(f"{PKG}_mezzanine.partial-*.mov")) and not (o / PKG / f"{PKG}_mezzanine.mov").exists()
    kept = {LAYBACK: _stamp(o / LAYBACK)}
    rerun = _run(rig, tmp_path)
    _assert_resumed(rig, tmp_path, rerun, kept)
    assert f"reused {o / LAYBACK}" in _log(tmp_path)


def test_kill_during_package_then_rerun_with_an_empty_prefect_home_reuses_the_deliverables(rig, tmp_path):
    _kill_at(rig, "package", tmp_path)
    o = tmp_path / "out"
    finals = [LAYBACK, f"{PKG}/{PKG}_mezzanine.mov", f"{PKG}/{PKG}_screener.mp4"]
    assert all((o / f).exists() for f in finals) and not (o / PKG / "manifest.json").exists()
    kept = {f: _stamp(o / f) for f in finals}
    rerun = _run(rig, tmp_path, PREFECT_HOME=str(tmp_path / "fresh-prefect-home"))
    _assert_resumed(rig, tmp_path, rerun, kept)
    assert f"reused {o / PKG / f'{PKG}_screener.mp4'}" in _log(tmp_path)


def test_kill_during_archive_then_rerun_completes_the_copy(rig, tmp_path):
    catalog = Path(rig["env"]["DELIVER_CATALOG_URL"][len("sqlite:///"):])
    held = sqlite3.connect(catalog, isolation_level=None, timeout=30)
    held.execute("BEGIN EXCLUSIVE")  # the archive copies and verifies, then waits here for the catalog
    copy = tmp_path / "vault" / PKG
    try:
        _kill_at(rig, "archive", tmp_path, hold=lambda: (copy / "manifest.json").exists())
    finally:
        held.execute("ROLLBACK")
        held.close()
    o = tmp_path / "out"
    assert not (o / "report.json").exists()
    kept = {f: _stamp(o / f) for f in (LAYBACK, f"{PKG}/{PKG}_mezzanine.mov", f"{PKG}/{PKG}_screener.mp4")}
    rerun = _run(rig, tmp_path)
    _assert_resumed(rig, tmp_path, rerun, kept)


def test_a_corrupted_deliverable_is_made_again_and_the_damaged_file_kept_aside(rig, tmp_path):
    """A bit flipped in the screener after a finished run: the rerun finds its hash differs from its record,
    makes it again (equal to the clean run's, so the package's ASC MHL history agrees and manifest.json
    records the good hash), keeps the damaged file under work/superseded/, and exits 0."""
    assert _run(rig, tmp_path).returncode == 0
    o = tmp_path / "out"
    screener = o / PKG / f"{PKG}_screener.mp4"
    data = bytearray(screener.read_bytes())
    data[len(data) // 2] ^= 0x01
    screener.write_bytes(bytes(data))
    damaged = hash_file_xxh128(screener)
    mezz = _stamp(o / PKG / f"{PKG}_mezzanine.mov")
    rerun = _run(rig, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert hash_file_xxh128(screener) == rig["clean"][f"{PKG}/{PKG}_screener.mp4"]
    (aside,) = (o / SUPERSEDED_DIR / PKG).iterdir()
    assert aside.name.startswith(f"{PKG}_screener.") and hash_file_xxh128(aside) == damaged
    assert _stamp(o / PKG / f"{PKG}_mezzanine.mov") == mezz
    manifest = json.loads((o / PKG / "manifest.json").read_text())
    assert {f["name"]: f["xxh128"] for f in manifest["files"]}[f"{PKG}_screener.mp4"] == hash_file_xxh128(screener)
    assert "kept as" in _log(tmp_path) and not list(o.rglob(PARTIAL_GLOB))
