"""A deliverable's bytes are read once after it is written: the publish read's xxh128 + MD5 go into its output
record with the file's identity, and the package (manifest, ASC MHL) and the documents' MHL generation reuse
them while the identity holds; a file changed since is read again and the history carries its new digest.

Reads are counted two ways: :func:`tasks.archive.hashing.bytes_hashed` (every byte the one file hasher read,
exact) and the kernel's ``rchar`` of this process (/proc/self/io: every byte read(2) returned; it also counts
ffprobe's JSON read through a pipe, so two package steps that differ only by the records are compared), the
latter within a stated tolerance for the small files (records, MHL XML) a package step reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specs.errors import VerificationError
from specs.model import Spec
from tasks.archive.hashing import PACKAGE_FORMATS, bytes_hashed, digest_file, hash_file_xxh128
from tasks.archive.mhl import mhl_records
from tasks.deliverables.make import TranscodeAllResult, transcode_all
from tasks.deliverables.naming import RunFields
from tasks.deliverables.share import link_into
from tasks.documents import record_in_package
from tasks.media.files import Provenance, atomic_output, recorded_digests
from tasks.media.probe import MediaInfo
from tasks.package import write_package
from tasks.report import Report

FIELDS = RunFields(title="T", version="v1", date="2031-01-02")
#: rchar tolerance: what two package steps may read differently besides the media (records, one more MHL
#: generation in the history).
SMALL_READS_BYTES = 256 * 1024


def _rchar() -> int:
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["rchar"])


def _run(spec: Spec, master: MediaInfo, out_root: Path) -> tuple[Path, TranscodeAllResult, list[tuple[Path, str]]]:
    pkg = out_root / "T_v1"
    made = transcode_all(spec.deliverables, spec, master, pkg, fields=FIELDS, extras_dir=pkg / "extras",
                         thumbnails=2, provenance=Provenance("inputs", out_root))
    files = [(Path(r.path), r.kind) for r in made.deliverables] + [(Path(p), "extra") for p in made.extras]
    return pkg, made, files


def _reference_verify(pkg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "ascmhl-debug"), "verify", str(pkg)],
                          capture_output=True, text=True, timeout=120)


def test_package_after_a_run_reads_no_deliverable_again(ebu, tmp_path):
    spec, master = ebu
    before = bytes_hashed()
    pkg, made, files = _run(spec, master, tmp_path)
    media_bytes = sum(p.stat().st_size for p, _kind in files)
    assert media_bytes > 4 * SMALL_READS_BYTES  # the rchar comparison below means something
    assert bytes_hashed() - before == media_bytes  # the publish read: each file once, exactly

    hashed, rchar = bytes_hashed(), _rchar()
    entries = write_package(pkg, files, title="T", version="v1", out_root=tmp_path)
    manifest_bytes = (pkg / "manifest.json").stat().st_size
    assert bytes_hashed() - hashed == manifest_bytes  # only the manifest it has just written
    reuse_rchar = _rchar() - rchar

    # the same files, fresh: what md5sum and the reference xxh128 say, in the manifest and the MHL
    records = mhl_records(pkg)
    for e, (path, _kind) in zip(entries, files, strict=True):
        fresh = digest_file(path, formats=("md5",))
        assert (e.xxh128, e.md5, e.size) == (fresh.xxh128, fresh.others["md5"], fresh.size)
        assert records[e.name].hash == fresh.xxh128
    assert _reference_verify(pkg).returncode == 0

    # without the records (an older run's package): every file is read, which rchar sees
    rchar = _rchar()
    write_package(pkg, files, title="T", version="v1")
    full_rchar = _rchar() - rchar
    # the one difference between the two package steps is one read of each file
    assert abs(full_rchar - reuse_rchar - media_bytes) <= SMALL_READS_BYTES, (full_rchar, reuse_rchar, media_bytes)


def test_a_rerun_reads_each_deliverable_once_for_its_check_and_the_package(ebu, tmp_path):
    """A rerun's reuse check reads each file once (xxh128 against its record) and computes MD5 in the same
    read; the package step then reads none of them."""
    spec, master = ebu
    pkg, _made, files = _run(spec, master, tmp_path)
    media_bytes = sum(p.stat().st_size for p, _kind in files)
    before = bytes_hashed()
    _pkg, again, files = _run(spec, master, tmp_path)
    assert all(r.reused for r in again.deliverables) and again.ffmpeg_runs == 0
    write_package(pkg, files, title="T", version="v1", out_root=tmp_path)
    assert bytes_hashed() - before == media_bytes + (pkg / "manifest.json").stat().st_size


def _flip_middle_byte(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_deliverable_changed_after_publishing_is_read_again_and_the_mhl_has_its_new_digest(ebu, tmp_path):
    spec, master = ebu
    pkg, made, files = _run(spec, master, tmp_path)
    edited, restored = Path(made.deliverables[0].path), Path(made.extras[0])
    published = {p: hash_file_xxh128(p) for p in (edited, restored)}
    assert all(recorded_digests(p, tmp_path) == {"xxh128": published[p], "md5": digest_file(p, formats=("md5",))
                                                 .others["md5"]} for p in (edited, restored))
    size = edited.stat().st_size
    _flip_middle_byte(edited)  # same size, other bytes: mtime moves
    st = restored.stat()
    time.sleep(0.05)  # past one timestamp tick of the publish, so the edit's ctime differs from it
    _flip_middle_byte(restored)
    os.utime(restored, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its mtime put back: ctime still moves
    assert edited.stat().st_size == size and restored.stat().st_mtime_ns == st.st_mtime_ns
    assert recorded_digests(edited, tmp_path) is None and recorded_digests(restored, tmp_path) is None

    hashed = bytes_hashed()
    entries = write_package(pkg, files, title="T", version="v1", out_root=tmp_path)
    changed_bytes = edited.stat().st_size + restored.stat().st_size + (pkg / "manifest.json").stat().st_size
    assert bytes_hashed() - hashed == changed_bytes  # those two (and the manifest), nothing else
    records = mhl_records(pkg)
    for p in (edited, restored):
        now = hash_file_xxh128(p)
        assert now != published[p]
        name = p.relative_to(pkg).as_posix()
        assert records[name].hash == now
        assert next(e for e in entries if e.name == name).xxh128 == now
        assert json.loads((pkg / "manifest.json").read_text())["files"][[e.name for e in entries].index(name)][
            "xxh128"] == now
    assert _reference_verify(pkg).returncode == 0  # the history matches the files on disk


def test_documents_generation_refuses_a_deliverable_changed_after_the_package(ebu, tmp_path):
    """The documents' MHL generation reuses the package's digests only while the file is unchanged: one
    changed between the package and the documents is read again and named, no generation written."""
    spec, master = ebu
    pkg, made, files = _run(spec, master, tmp_path)
    entries = write_package(pkg, files, title="T", version="v1", out_root=tmp_path)
    report = Report(verdict="pass", spec=spec.name, findings=[], title="T", version="v1", deliverables=entries)
    gens = sorted((pkg / "ascmhl").iterdir())
    hashed = bytes_hashed()
    record_in_package(pkg, [], report, out_root=tmp_path)  # unchanged: nothing read but the manifest
    assert bytes_hashed() - hashed == (pkg / "manifest.json").stat().st_size
    assert len(sorted((pkg / "ascmhl").iterdir())) == len(gens) + 1
    gens = sorted((pkg / "ascmhl").iterdir())
    changed = Path(made.deliverables[0].path)
    _flip_middle_byte(changed)
    with pytest.raises(VerificationError) as info:
        record_in_package(pkg, [], report, out_root=tmp_path)
    assert changed.name in str(info.value)
    assert sorted((pkg / "ascmhl").iterdir()) == gens


def test_a_deliverable_hard_linked_into_another_package_is_not_read_by_the_share_or_the_package(tmp_path):
    """A plan's shared deliverable: linked into the second package, verified by inode, and both packages take
    its digests from the publish read (the link moved the inode's ctime; the records follow it)."""
    made = tmp_path / "A" / "T_v1" / "T_v1_screener.mp4"
    with atomic_output(made, provenance=Provenance("inputs", tmp_path), formats=PACKAGE_FORMATS) as tmp:
        tmp.write_bytes(os.urandom(3 * 1024 * 1024))
    shared = tmp_path / "B" / "T_v1" / made.name
    hashed = bytes_hashed()
    assert link_into(made, shared, out_root=tmp_path) == (True, hash_file_xxh128(made))
    assert bytes_hashed() - hashed == made.stat().st_size  # only the hash_file_xxh128 of this assertion
    hashed = bytes_hashed()
    for pkg, path in ((made.parent, made), (shared.parent, shared)):
        (entry,) = write_package(pkg, [(path, "extra")], title="T", version="v1", out_root=tmp_path)
        assert entry.md5 == digest_file(path, formats=("md5",)).others["md5"]
        assert _reference_verify(pkg).returncode == 0
    manifests = sum((p / "manifest.json").stat().st_size for p in (made.parent, shared.parent))
    assert bytes_hashed() - hashed == manifests + 2 * made.stat().st_size  # the md5 checks of this test only
