"""Atomic no-clobber publishing: the one way every output of deliver reaches its final name.

A writer gets a partial name beside the final name, ``name.partial-<pid>@<host>.ext`` (the extension
stays, so ffmpeg and libsndfile still recognise the format; the owner in the name means two processes
never write or rename each other's partials), writes it, and on success the file is fsynced and
renamed into place, then the folder is fsynced so the rename survives a power cut. Nothing ever
appears under a final name half-written. Without ``overwrite`` an existing final file is never
replaced: the rename is a hard link that fails if the name is taken (POSIX ``link(2)``), so a file
that appears while we write is kept too. ``overwrite=True`` is for the files a rerun must
rewrite (manifest, report, state); it still never exposes a half-written file.

**Resume by content.** A step output published with a :class:`Provenance` gets a record,
``OUT/work/.steps/<path in OUT>.json``: the identity of the inputs and options that made it and the
output's xxh128 and size. The record is written *before* the rename, so a kill at any instant leaves
either a record and a partial (final missing: the step is redone) or a record and the final (its hash
is checked: reused). :func:`reusable` is the check a rerun makes; it needs no Prefect database. A final
file with no matching record is redone into a partial: equal bytes keep the existing file, different
bytes move it to ``OUT/work/superseded/`` under a dated name before the new one is published (nothing is
overwritten, nothing is refused).

**One read.** The publish read also computes the digests a later step asks for (``formats``: the package's
MD5), and once the file has its final name the record gets the file's identity (device, inode, size,
mtime and ctime in ns). :func:`recorded_digests` gives those digests back while the identity still matches,
so the package step hashes nothing that was published moments before; any change of the file (a write
moves mtime and ctime, a copy changes the inode) makes it read the bytes again.

``*.partial*`` is the one partial-name pattern: cancel clean-up and folder scans match it.
:func:`output_lock` keeps two runs out of one output folder (``fcntl.flock``, held for the whole run).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specs.errors import OutputExistsError, OutputLockedError

if TYPE_CHECKING:
    from tasks.archive.hashing import FileDigests

__all__ = ["atomic_output", "publish", "partial_name", "is_partial", "fsync_path", "PARTIAL_GLOB", "folders_under",
           "prune_empty_folders", "Provenance", "reusable", "discard_stale_partials", "remove_partials",
           "output_lock", "LOCK_NAME", "RECORDS_DIR", "SUPERSEDED_DIR", "recorded_digests", "has_read_record",
           "record_hard_link"]

LOGGER = logging.getLogger("deliver.files")

#: Matches every partial file (``name.partial-<owner>.ext``, and ``name.partial.ext`` of older runs).
PARTIAL_GLOB = "*.partial*"
#: The lock file of an output folder (:func:`output_lock`).
LOCK_NAME = ".deliver.lock"
#: Step records and superseded files, relative to the run's output folder.
RECORDS_DIR = Path("work") / ".steps"
SUPERSEDED_DIR = Path("work") / "superseded"
#: Bumped when what a record means changes: older records then no longer match and their outputs are redone.
RECORD_VERSION = 1

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_OWNER = re.compile(r"^(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)$")


def _owner() -> str:
    return f"{os.getpid()}@{_HOST}"  # after a fork the child gets its own partial names


def partial_name(final: Path) -> Path:
    """``name.partial-<pid>@<host>.ext``: keeps the extension so tools still recognise the format, and names
    the writing process so two runs never touch each other's partials."""
    final = Path(final)
    return final.with_name(f"{final.stem}.partial-{_owner()}{final.suffix}")


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a partial file (written, not yet published)."""
    return ".partial" in Path(path).name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def discard_stale_partials(final: Path) -> list[Path]:
    """Remove the partials of ``final`` left by dead processes of this host (and old-style ``name.partial.ext``).

    A partial of a live process, or of another host (whose processes we cannot see), is left alone.
    """
    final = Path(final)
    removed: list[Path] = []
    prefix, suffix = f"{final.stem}.partial", final.suffix
    if not final.parent.is_dir():
        return removed
    for p in final.parent.glob(f"{_glob_escape(final.stem)}.partial*{_glob_escape(suffix)}"):
        token = p.name[len(prefix):len(p.name) - len(suffix)] if suffix else p.name[len(prefix):]
        m = _OWNER.match(token[1:]) if token.startswith("-") else None
        if m and (m["host"] != _HOST or (int(m["pid"]) != os.getpid() and _pid_alive(int(m["pid"])))):
            continue
        if m is None and token:  # not a partial of this final (e.g. "name.partials.mov")
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def _glob_escape(text: str) -> str:
    """``text`` matched literally by :meth:`Path.glob`."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def remove_partials(folder: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Remove every partial file under ``folder``: only for a folder this process holds the lock of
    (:func:`output_lock`), where no other run can be writing."""
    top = Path(folder)
    if not top.is_dir():
        return []
    found = top.rglob(PARTIAL_GLOB) if recursive else top.glob(PARTIAL_GLOB)
    removed = []
    for p in found:
        if p.is_file() and not p.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Provenance:
    """What makes a step output: ``identity`` fingerprints its inputs and options (a step computes it the
    same way on every machine); ``out_root`` is the run's output folder, which holds the records."""

    identity: str
    out_root: Path

    def derive(self, *parts: str) -> Provenance:
        """The provenance of one of several outputs of a step (e.g. one deliverable of the one-decode graph)."""
        doc = json.dumps([self.identity, *parts])
        return Provenance(hashlib.sha256(doc.encode()).hexdigest(), self.out_root)

    def _rel(self, final: Path) -> Path:
        return _rel(final, self.out_root)

    def record_path(self, final: Path) -> Path:
        return _record_path(final, self.out_root)

    def superseded_path(self, final: Path) -> Path:
        rel = self._rel(final)
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return Path(self.out_root) / SUPERSEDED_DIR / rel.with_name(f"{rel.stem}.{stamp}{rel.suffix}")


def _rel(final: Path, out_root: Path) -> Path:
    try:
        return Path(final).resolve().relative_to(Path(out_root).resolve())
    except ValueError:
        return Path(Path(final).name)


def _record_path(final: Path, out_root: Path) -> Path:
    rel = _rel(final, out_root)
    return Path(out_root) / RECORDS_DIR / rel.with_name(rel.name + ".json")


def _digests(path: Path, formats: tuple[str, ...] = ()) -> FileDigests:
    from tasks.archive.hashing import MHL_FORMATS, digest_file  # the one hasher; late: ascmhl is slow to load

    return digest_file(path, formats=tuple(f for f in formats if f in MHL_FORMATS))  # a record's names: checked


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


#: File timestamps come from the kernel's coarse clock (one tick is 1-10 ms; exFAT stores 10 ms): a write
#: within one tick of the last one can leave mtime unchanged. A read that starts at least this long after
#: the file's mtime therefore sees every later write move mtime (racy-timestamp rule, as git's index uses).
_TIMESTAMP_SLACK_NS = 20_000_000


def _identity(st: os.stat_result) -> dict[str, int]:
    """What changes when a file's bytes may have: a write moves mtime and ctime (ctime cannot be set back
    by ``touch``/``utime``), a replacement changes the inode."""
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def _trusted(identity: dict[str, int], read_at_ns: int) -> bool:
    """Whether a later write is sure to move ``identity``'s mtime: the read started more than a timestamp
    tick after the last write, and the filesystem keeps sub-second times (FAT, HFS+ and some NFS servers
    round to whole seconds, where a write in the same second looks like no write)."""
    mtime_ns = identity["mtime_ns"]
    return mtime_ns % 1_000_000_000 != 0 and mtime_ns < read_at_ns - _TIMESTAMP_SLACK_NS


def _read_once(path: Path, formats: tuple[str, ...]) -> tuple[FileDigests, dict[str, int] | None]:
    """One read of ``path`` (:func:`tasks.archive.hashing.digest_file`) and the identity the digests belong to
    (with ``read_at_ns``), or ``None`` when the file moved during the read. A file written moments ago is
    read one timestamp tick later (at most 20 ms) so that its identity can be trusted."""
    wait_ns = path.stat().st_mtime_ns + _TIMESTAMP_SLACK_NS + 1 - time.time_ns()
    if 0 < wait_ns <= _TIMESTAMP_SLACK_NS + 1:
        time.sleep(wait_ns / 1e9)
    read_at_ns = time.time_ns()
    before = _identity(path.stat())
    digests = _digests(path, formats)
    same = _identity(path.stat()) == before and digests.size == before["size"]
    return digests, ({**before, "read_at_ns": read_at_ns} if same else None)


def recorded_digests(path: str | Path, out_root: str | Path) -> dict[str, str] | None:
    """The ASC MHL digests (``{"xxh128": hex, "md5": hex, …}``) the publish read of ``path`` recorded, when
    the file is still the one that was read (device, inode, size, mtime and ctime unchanged, and its last
    write a timestamp tick before the read); ``None``: read the file."""
    path = Path(path)
    record = _read_record(_record_path(path, Path(out_root)))
    if record is None or not isinstance(record.get("file"), dict) or not isinstance(record.get("xxh128"), str):
        return None
    try:
        now = _identity(path.stat())
    except OSError:
        return None
    known = record["file"]
    if now != {k: known.get(k) for k in now} or not isinstance(known.get("read_at_ns"), int) \
            or not _trusted(now, known["read_at_ns"]):
        return None
    digests = record.get("digests")
    return {"xxh128": record["xxh128"], **(digests if isinstance(digests, dict) else {})}


def record_hard_link(source: str | Path, target: str | Path, out_root: str | Path, held: dict[str, str]) -> None:
    """After ``target`` was made a hard link of ``source``, whose recorded digests ``held`` (:func:`recorded_digests`)
    just before: ``target`` gets a record of the same read (same inode, same bytes), and both records the
    inode's new ctime (the link moved it; nothing else may have changed)."""
    source, target, out_root = Path(source), Path(target), Path(out_root)
    record = _read_record(_record_path(source, out_root))
    if record is None or not isinstance(record.get("file"), dict) or record.get("xxh128") != held.get("xxh128"):
        return
    with contextlib.suppress(OSError):  # only the package step's shortcut is lost
        now = _identity(target.stat())
        if any(now[k] != record["file"].get(k) for k in now if k != "ctime_ns"):
            return
        record = {**record, "file": {**record["file"], "ctime_ns": now["ctime_ns"]}}
        _write_record_doc(_record_path(source, out_root), record)
        _write_record_doc(_record_path(target, out_root), {**record, "output": str(_rel(target, out_root))})


def has_read_record(path: str | Path, out_root: str | Path) -> bool:
    """Whether a publish read of ``path`` was recorded (valid or not: :func:`recorded_digests` says if it holds)."""
    record = _read_record(_record_path(Path(path), Path(out_root)))
    return record is not None and isinstance(record.get("file"), dict)


def reusable(final: str | Path, provenance: Provenance, formats: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The record of ``final`` when it can be reused as is: it exists, its record says the same inputs and
    options made it, and its size and xxh128 (read now) are the recorded ones. ``None``: redo it.

    The read also computes the record's other digests and ``formats`` and refreshes the file's identity, so
    the package step after it reads nothing again (a restored copy has a new inode and times)."""
    final = Path(final)
    record = _read_record(provenance.record_path(final))
    if (record is None or record.get("version") != RECORD_VERSION or record.get("identity") != provenance.identity
            or not final.is_file()):
        return None
    if final.stat().st_size != record.get("size"):
        LOGGER.warning("%s differs from the output recorded for it; it is made again", final)
        return None
    known: dict[str, str] = record["digests"] if isinstance(record.get("digests"), dict) else {}
    got, identity = _read_once(final, tuple(dict.fromkeys((*known, *formats))))
    if got.xxh128 != record.get("xxh128"):
        LOGGER.warning("%s differs from the output recorded for it; it is made again", final)
        return None
    if identity is not None and recorded_digests(final, provenance.out_root) != got.mhl_hashes():
        record = {**record, "digests": dict(got.others), "file": identity}
        with contextlib.suppress(OSError):  # only the next step's shortcut is lost
            _write_record_doc(provenance.record_path(final), record)
    return record


def _write_record_doc(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


def _record_doc(final: Path, provenance: Provenance, digests: FileDigests, note: dict[str, Any] | None
                ) -> dict[str, Any]:
    return {"version": RECORD_VERSION, "output": str(provenance._rel(final)), "identity": provenance.identity,
            "xxh128": digests.xxh128, "size": digests.size, "digests": dict(digests.others),
            "made_at": _dt.datetime.now(_dt.UTC).isoformat(), "note": note or {}}


def publish(partial: Path, final: Path, *, overwrite: bool = False, provenance: Provenance | None = None,
            note: dict[str, Any] | None = None, formats: tuple[str, ...] = ()) -> None:
    """fsync ``partial`` and rename it to ``final`` (never replacing ``final`` unless ``overwrite``).

    With ``provenance`` the output's record (with ``note``, small step data a reuse needs, and the ASC MHL
    ``formats`` a later step wants, computed in the same read as the xxh128) is written first; an existing
    ``final`` of the same bytes is kept, one of other bytes is moved to ``OUT/work/superseded/`` (logged)
    and the new file takes its name. Then the record gets the final file's identity
    (:func:`recorded_digests`).

    Raises:
        OutputExistsError: ``final`` exists (or appeared meanwhile), ``overwrite`` is False and no
            ``provenance`` was given; ``partial`` is removed.
    """
    fsync_path(partial)
    identity: dict[str, int] | None = None
    record: dict[str, Any] = {}
    if provenance is not None:
        digests, identity = _read_once(partial, formats)
        record = _record_doc(final, provenance, digests, note)
        _write_record_doc(provenance.record_path(final), record)
        if final.exists():
            kept, kept_identity = _read_once(final, formats) if final.is_file() else (None, None)
            if kept is not None and kept.xxh128 == digests.xxh128:
                partial.unlink(missing_ok=True)  # the same bytes: the existing file stays (inode, mtime)
                _record_identity(final, provenance, record, kept_identity)
                return
            backup = provenance.superseded_path(final)
            backup.parent.mkdir(parents=True, exist_ok=True)
            os.rename(final, backup)
            LOGGER.warning("%s existed with other content; kept as %s, the new output takes its name", final, backup)
    if overwrite:
        os.replace(partial, final)
    else:
        try:
            os.link(partial, final)  # fails with FileExistsError if final is taken
        except FileExistsError:
            partial.unlink(missing_ok=True)
            raise OutputExistsError(f"{final} appeared while it was being written; not overwritten") from None
        except OSError:  # a filesystem without hard links: checked rename
            if final.exists():
                partial.unlink(missing_ok=True)
                raise OutputExistsError(f"{final} appeared while it was being written; not overwritten") from None
            os.replace(partial, final)
        partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fsync_path(final.parent)
    if provenance is not None and identity is not None:
        with contextlib.suppress(OSError):
            now = _identity(final.stat())  # the link and the partial's unlink moved ctime; the rest is what was read
            if all(now[k] == identity[k] for k in now if k != "ctime_ns"):
                _record_identity(final, provenance, record, {**identity, "ctime_ns": now["ctime_ns"]})


def _record_identity(final: Path, provenance: Provenance, record: dict[str, Any],
                     identity: dict[str, int] | None) -> None:
    """Add to ``final``'s record the identity its digests were read from (:func:`recorded_digests`)."""
    if identity is not None:
        with contextlib.suppress(OSError):  # only the package step's shortcut is lost
            _write_record_doc(provenance.record_path(final), {**record, "file": identity})


@contextlib.contextmanager
def atomic_output(final: str | Path, *, overwrite: bool = False, provenance: Provenance | None = None,
                  note: dict[str, Any] | None = None, formats: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield the partial path of ``final``; on success publish it (:func:`publish`).

    Partials of ``final`` left by crashed runs are removed; on any error the partial is removed.

    Raises:
        OutputExistsError: ``final`` exists, ``overwrite`` is False and no ``provenance`` was given
            (without a record, masters and deliverables are never replaced; choose another --out or version).
    """
    final = Path(final)
    if final.exists() and not overwrite and provenance is None:
        raise OutputExistsError(f"{final} already exists and is never overwritten; choose another output folder "
                                "or version")
    final.parent.mkdir(parents=True, exist_ok=True)
    discard_stale_partials(final)
    tmp = partial_name(final)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp} was not written")
        publish(tmp, final, overwrite=overwrite, provenance=provenance, note=note, formats=formats)
    finally:
        tmp.unlink(missing_ok=True)


def _holder(fd: int) -> str:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {doc['pid']} on {doc['host']}, started {doc['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that is just starting"


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder/.deliver.lock`` (``fcntl.flock``, exclusive) for the block: one run per output folder.

    The kernel drops the lock when its holder dies, however it dies, so a stale lock is simply taken
    over. The file names its holder (pid, host, start time) for the refusal message and is removed on
    release (a taker checks it locked the file still in place, not one being removed).

    Raises:
        OutputLockedError: another run holds the lock (exit 2; the message names the folder and the holder).
    """
    top = Path(folder)
    top.mkdir(parents=True, exist_ok=True)
    path = top / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputLockedError(f"{top} is in use by another deliver run ({holder}); wait for it to finish "
                                "or choose another --out") from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode(), 0)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def folders_under(root: str | os.PathLike[str]) -> set[str]:
    """``root`` and every folder below it that exists now (what a run must leave in place)."""
    top = Path(root)
    if not top.is_dir():
        return set()
    return {str(top), *(str(p) for p in top.rglob("*") if p.is_dir())}


def prune_empty_folders(root: str | os.PathLike[str], keep: set[str] | None = None) -> list[str]:
    """Remove the empty folders under ``root`` (``root`` included), deepest first, except those in ``keep``
    (the folders that existed before the run). A failed or cancelled run leaves no empty folder behind."""
    top = Path(root)
    if not top.is_dir():
        return []
    removed = []
    for folder in sorted([top, *(p for p in top.rglob("*") if p.is_dir())], key=lambda p: len(p.parts),
                         reverse=True):
        if str(folder) in (keep or set()) or folder.is_symlink():
            continue
        with contextlib.suppress(OSError):  # not empty (or not ours to remove): kept
            folder.rmdir()
            removed.append(str(folder))
    return removed
