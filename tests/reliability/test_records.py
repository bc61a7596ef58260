"""Resume by content, the output lock and per-process partial names, on plain files (no Prefect, no ffmpeg).

The records of :mod:`tasks.media.files` let a rerun recognise a finished output by its bytes; these tests
stage each instant a kill can interrupt (before the record, between record and rename, after the rename)
and check what the next run does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from specs.errors import OutputExistsError, OutputLockedError, VerificationError
from tasks.archive.hashing import hash_file_xxh128
from tasks.media.files import (
    PARTIAL_GLOB,
    SUPERSEDED_DIR,
    Provenance,
    atomic_output,
    discard_stale_partials,
    output_lock,
    partial_name,
    reusable,
)
from tasks.package import write_package

ROOT = Path(__file__).resolve().parents[2]


def _make(final: Path, data: bytes, prov: Provenance | None) -> None:
    with atomic_output(final, provenance=prov) as tmp:
        tmp.write_bytes(data)


def test_a_published_output_is_recorded_and_reused_by_its_hash(tmp_path):
    prov = Provenance("inputs-A", tmp_path)
    final = tmp_path / "work" / "T_v1_layback.mov"
    _make(final, b"married master", prov)
    record = json.loads(prov.record_path(final).read_text())
    assert prov.record_path(final) == tmp_path / "work" / ".steps" / "work" / "T_v1_layback.mov.json"
    assert record["xxh128"] == hash_file_xxh128(final) and record["size"] == len(b"married master")
    assert record["identity"] == "inputs-A"
    assert reusable(final, prov) is not None
    assert reusable(final, Provenance("inputs-B", tmp_path)) is None  # other inputs or options: redo
    final.write_bytes(b"married mastex")  # same size, one byte changed after the run
    assert reusable(final, prov) is None


def test_kill_between_record_and_rename_redoes_the_step(tmp_path):
    """The record is written before the rename: record + partial, final missing -> not reusable, redone."""
    prov = Provenance("inputs", tmp_path)
    final = tmp_path / "pkg" / "T_v1_mezz.mov"
    final.parent.mkdir()
    partial = partial_name(final)
    partial.write_bytes(b"complete bytes")
    prov.record_path(final).parent.mkdir(parents=True)
    prov.record_path(final).write_text(json.dumps({"version": 1, "identity": "inputs", "size": 14,
                                                   "xxh128": hash_file_xxh128(partial)}))
    assert reusable(final, prov) is None
    _make(final, b"complete bytes", prov)
    assert final.read_bytes() == b"complete bytes" and reusable(final, prov) is not None
    assert not list(final.parent.glob(PARTIAL_GLOB))


def test_final_without_record_equal_bytes_is_kept_in_place(tmp_path):
    """Killed right after the rename of an earlier version of deliver, or records lost: same bytes -> kept."""
    prov = Provenance("inputs", tmp_path)
    final = tmp_path / "T_v1_screener.mp4"
    final.write_bytes(b"screener")
    before = final.stat()
    assert reusable(final, prov) is None
    _make(final, b"screener", prov)
    after = final.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert reusable(final, prov) is not None
    assert not (tmp_path / SUPERSEDED_DIR).exists()


def test_final_of_other_bytes_is_moved_aside_never_overwritten(tmp_path):
    """A final file of different content (corrupted, or made from other inputs) is kept under
    OUT/work/superseded/ with a UTC time stamp; the new output takes the name; nothing is refused."""
    prov = Provenance("inputs", tmp_path)
    final = tmp_path / "PKG" / "T_v1_screener.mp4"
    final.parent.mkdir()
    final.write_bytes(b"old screener, flipped bit")
    _make(final, b"new screener", prov)
    assert final.read_bytes() == b"new screener"
    (kept,) = (tmp_path / SUPERSEDED_DIR / "PKG").iterdir()
    assert kept.read_bytes() == b"old screener, flipped bit"
    assert kept.name.startswith("T_v1_screener.") and kept.suffix == ".mp4"


def test_without_provenance_an_existing_final_is_still_never_replaced(tmp_path):
    final = tmp_path / "x.wav"
    final.write_bytes(b"keep")
    with pytest.raises(OutputExistsError), atomic_output(final) as tmp:
        tmp.write_bytes(b"other")
    assert final.read_bytes() == b"keep"


def test_partial_names_name_their_process_and_only_dead_ones_are_discarded(tmp_path):
    final = tmp_path / "T_v1_mezz.mov"
    mine = partial_name(final)
    assert mine.suffix == ".mov" and mine.match(PARTIAL_GLOB) and f"{os.getpid()}@" in mine.name
    host = mine.name.split("@", 1)[1][: -len(".mov")]
    live = subprocess.Popen(["sleep", "30"])
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        live_p = tmp_path / f"T_v1_mezz.partial-{live.pid}@{host}.mov"
        dead_p = tmp_path / f"T_v1_mezz.partial-{dead.pid}@{host}.mov"
        old_style = tmp_path / "T_v1_mezz.partial.mov"
        other_host = tmp_path / "T_v1_mezz.partial-1@some-other-host.mov"
        for p in (live_p, dead_p, old_style, other_host):
            p.write_bytes(b"x")
        removed = discard_stale_partials(final)
        assert sorted(removed) == sorted([dead_p, old_style])
        assert live_p.exists() and other_host.exists()  # a live run's partial is never touched
    finally:
        live.kill()
        live.wait()


_HOLDER = """
    import sys, time
    from tasks.media.files import output_lock
    with output_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
"""


def test_output_lock_refuses_a_second_run_naming_the_holder_and_is_taken_over_when_it_dies(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_HOLDER), str(out)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(OutputLockedError) as info, output_lock(out):
            pass
        assert time.monotonic() - started < 1.0  # refused at once, not after a wait
        msg = str(info.value)
        assert str(out) in msg and f"pid {holder.pid} on {socket.gethostname()}, started 20" in msg
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs: the lock file stays behind, stale
        holder.wait()
        assert (out / ".deliver.lock").exists()
        with output_lock(out) as lock:  # the kernel dropped the dead holder's lock: taken over
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not (out / ".deliver.lock").exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_package_history_is_checked_before_manifest_json_is_rewritten(tmp_path):
    """A rerun whose screener differs from the package's ASC MHL history is refused with manifest.json
    untouched (before, the manifest was rewritten with the corrupt screener's hash first)."""
    pkg = tmp_path / "T_v1"
    (pkg / "extras").mkdir(parents=True)
    screener, poster = pkg / "T_v1_screener.mp4", pkg / "extras" / "T_v1_poster.jpg"
    screener.write_bytes(b"good screener")
    poster.write_bytes(b"poster")
    files = [(screener, "extra"), (poster, "extra")]
    write_package(pkg, files, title="T", version="v1")
    manifest = (pkg / "manifest.json").read_bytes()
    gens = sorted((pkg / "ascmhl").iterdir())
    screener.write_bytes(b"corrupt screen")
    with pytest.raises(VerificationError) as info:
        write_package(pkg, files, title="T", version="v1")
    assert (pkg / "manifest.json").read_bytes() == manifest
    assert sorted((pkg / "ascmhl").iterdir()) == gens
    assert "T_v1_screener.mp4" in str(info.value) and "nothing rewritten" in str(info.value)
    assert json.loads(manifest)["files"][0]["xxh128"] != hash_file_xxh128(screener)


def test_recorded_digests_hold_only_for_the_file_that_was_read(tmp_path):
    """The publish read's digests come back while the file is the one read; a replacement (same bytes, same
    mtime, another inode) or a file whose times have whole-second resolution is read again."""
    import shutil

    from tasks.archive.hashing import PACKAGE_FORMATS, digest_file
    from tasks.media.files import recorded_digests

    prov = Provenance("inputs", tmp_path)
    final = tmp_path / "T_v1" / "T_v1_screener.mp4"
    with atomic_output(final, provenance=prov, formats=PACKAGE_FORMATS) as tmp:
        tmp.write_bytes(b"screener bytes")  # published at once: the read waits out one timestamp tick
    fresh = digest_file(final, formats=PACKAGE_FORMATS)
    assert recorded_digests(final, tmp_path) == {"xxh128": fresh.xxh128, "md5": fresh.others["md5"]}
    assert fresh.others["md5"] == "48c6bd6063e5da0e17637b1c836c8ba5"  # RFC 1321, as hashlib (md5sum) gives it
    copy = tmp_path / "copy.mp4"
    shutil.copy2(final, copy)
    os.replace(copy, final)  # same bytes and mtime, another inode
    assert recorded_digests(final, tmp_path) is None

    coarse = tmp_path / "T_v1" / "T_v1_poster.jpg"
    with atomic_output(coarse, provenance=prov, formats=PACKAGE_FORMATS) as tmp:
        tmp.write_bytes(b"poster")
        second = (time.time_ns() // 1_000_000_000 - 5) * 1_000_000_000
        os.utime(tmp, ns=(second, second))  # what FAT or HFS+ would store
    assert coarse.stat().st_mtime_ns == second and recorded_digests(coarse, tmp_path) is None
