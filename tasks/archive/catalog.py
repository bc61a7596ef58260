"""The catalog: every archived file, its hashes, each copy's location and when it was last verified.

SQLite in the deliver home folder by default (``$DELIVER_HOME/catalog.sqlite``); any SQLAlchemy URL
(``$DELIVER_CATALOG_URL`` or ``catalog.url`` in configs/storage.yaml) makes it PostgreSQL etc. — give
the password through the URL's environment, it is never printed (URLs are shown redacted). A plain
``postgresql://`` URL uses psycopg 3 (installed with deliver). Several processes may write at once
(workers archiving in parallel): the tables are created under a lock, and a write that loses a race on
a unique key is replayed.

``locate(TITLE|HASH)`` answers "where are all copies of this master?". The same database holds the
delivery schedule (``schedule_*`` tables) and the runs' costs (``run_costs``), read and written by
:mod:`tasks.schedule`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from specs.errors import BadInputError, InfrastructureError
from tasks.archive.targets import deliver_home, load_storage_config, redact

__all__ = ["Location", "FileRecord", "catalog_url", "engine_url", "Catalog", "locate", "schedule_items",
           "schedule_events", "schedule_distributors", "schedule_meta", "run_costs"]

metadata = MetaData()

copies = Table(
    "copies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(512), nullable=False, index=True),
    Column("package", String(512), nullable=False),
    Column("target", String(1024), nullable=False),
    Column("uri", String(2048), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("storage_class", String(32)),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("last_verified_at", DateTime(timezone=True)),
    Column("last_verify_ok", Boolean),
)

files = Table(
    "files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("copy_id", Integer, ForeignKey("copies.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("path", String(2048), nullable=False),
    Column("size", BigInteger, nullable=False),  # masters pass 2 GiB: PostgreSQL's integer is 32-bit
    Column("xxh128", String(32), nullable=False, index=True),
    Column("crc64nvme", String(16)),
    Column("version_id", String(1024)),
    Column("last_verified_at", DateTime(timezone=True)),
    Column("verified", Boolean),
)


# -- the delivery schedule (tasks/schedule.py): one state per title, version, distributor and item ----------
schedule_items = Table(
    "schedule_items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(512), nullable=False, index=True),
    Column("version", String(128), nullable=False),
    Column("distributor", String(256), nullable=False),  # the spec's name
    Column("item", String(256), nullable=False),  # deliverable, manual check or document id
    Column("kind", String(32), nullable=False),  # deliverable | manual-check | document
    Column("required", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("qc", String(8)),  # pass | fail, of the master the deliverable was made from
    Column("file", String(1024)),
    Column("bytes", BigInteger),
    Column("xxh128", String(32)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(256)),
    Column("note", Text),
    UniqueConstraint("title", "version", "distributor", "item"),
)

schedule_events = Table(
    "schedule_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("schedule_items.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("note", Text),
    Column("by", String(256)),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
)

schedule_distributors = Table(
    "schedule_distributors", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(512), nullable=False),
    Column("version", String(128), nullable=False),
    Column("distributor", String(256), nullable=False),
    Column("due", Date),
    UniqueConstraint("title", "version", "distributor"),
)

schedule_meta = Table(
    "schedule_meta", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text),
)

run_costs = Table(
    "run_costs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(512), nullable=False, index=True),
    Column("version", String(128), nullable=False),
    Column("distributors", Text, nullable=False),  # comma-separated spec names the run served
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("cpu_s", Float, nullable=False),
    Column("wall_s", Float, nullable=False),
    Column("made_bytes", BigInteger, nullable=False),
    Column("archived_bytes", BigInteger, nullable=False),
    Column("make_cost", Float),
    Column("monthly_storage_cost", Float),
    Column("currency", String(8)),
    Column("detail", Text),  # the run's RunCosts as JSON
)


class FileRecord(BaseModel):
    path: str
    size: int
    xxh128: str
    crc64nvme: str | None = None
    version_id: str | None = None


class Location(BaseModel):
    """One copy of one file."""

    title: str
    package: str
    path: str
    size: int
    xxh128: str
    uri: str  # of the file itself
    copy_uri: str
    target: str
    storage_class: str | None
    archived_at: _dt.datetime
    last_verified_at: _dt.datetime | None
    verified: bool | None


def catalog_url() -> str:
    """``$DELIVER_CATALOG_URL``, else ``catalog.url`` of the storage config, else SQLite in DELIVER_HOME."""
    url = os.environ.get("DELIVER_CATALOG_URL") or load_storage_config().catalog.url
    if url:
        return url
    home = deliver_home()
    return f"sqlite:///{(home / 'catalog.sqlite').as_posix()}"


_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
_T = TypeVar("_T")
#: pg_advisory_xact_lock key serialising the catalog's CREATE TABLEs across processes ("dlvr" in ASCII)
_SCHEMA_LOCK_KEY = 0x646C7672
_WRITE_ATTEMPTS = 5


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL to connect with: a plain ``postgresql://`` (or libpq's ``postgres://``) URL gets the
    psycopg 3 driver deliver installs, instead of SQLAlchemy's default psycopg2, which it does not."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _create_schema(engine: Engine) -> None:
    """Create the missing tables. On PostgreSQL two processes doing it at once would both see no table and
    the second CREATE TABLE fail on the catalog's unique type names: a transaction-level advisory lock
    makes the second wait, then find the tables (PostgreSQL's DDL is transactional)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        metadata.create_all(conn)


class Catalog:
    """Thin access layer; one instance per URL is cheap (engines are shared)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or catalog_url()
        with _LOCK:
            engine = _ENGINES.get(self.url)
            if engine is None:
                if self.url.startswith("sqlite:///"):
                    Path(self.url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
                try:
                    engine = create_engine(engine_url(self.url), future=True, pool_pre_ping=True)
                    _create_schema(engine)
                except SQLAlchemyError as exc:
                    raise InfrastructureError(f"catalog {redact(self.url)} unreachable: {type(exc).__name__}; "
                                              "check DELIVER_CATALOG_URL / catalog.url") from None
                except ModuleNotFoundError as exc:
                    raise BadInputError(f"catalog {redact(self.url)}: database driver missing ({exc.name}); install "
                                        "it (e.g. psycopg for PostgreSQL)") from None
                _ENGINES[self.url] = engine
        self.engine = engine

    def write(self, work: Callable[[Connection], _T], *, lock: str | None = None) -> _T:
        """Run ``work`` in one transaction. Writers check for a row, then insert or replace it; two processes
        doing so at once (PostgreSQL's default READ COMMITTED isolation) would both see none. On PostgreSQL the
        transaction first takes an advisory lock on ``lock`` (what it writes: a copy's URI, a title), so the
        second writer waits and then sees the first's rows; elsewhere (SQLite) a write that still loses the
        race on a unique key is rolled back and replayed."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    if lock is not None and conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": lock})
                    return work(conn)
            except IntegrityError:
                if attempt == _WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def record_copy(self, *, title: str, package: str, target: str, uri: str, kind: str,
                    storage_class: str | None, records: list[FileRecord], verified: bool) -> None:
        """Insert (or replace) one verified copy and its files."""
        now = _now()

        def replace(conn: Connection) -> None:
            old = conn.execute(select(copies.c.id).where(copies.c.uri == uri)).scalar()
            if old is not None:
                conn.execute(delete(files).where(files.c.copy_id == old))
                conn.execute(delete(copies).where(copies.c.id == old))
            key = conn.execute(insert(copies).values(
                title=title, package=package, target=redact(target), uri=uri, kind=kind,
                storage_class=storage_class, archived_at=now, last_verified_at=now if verified else None,
                last_verify_ok=verified)).inserted_primary_key
            assert key is not None  # a single-row INSERT always reports its primary key
            if records:
                conn.execute(insert(files), [dict(copy_id=key[0], path=r.path, size=r.size, xxh128=r.xxh128,
                                                  crc64nvme=r.crc64nvme, version_id=r.version_id,
                                                  last_verified_at=now if verified else None,
                                                  verified=verified) for r in records])

        try:
            self.write(replace, lock=f"copy:{uri}")
        except SQLAlchemyError as exc:
            raise InfrastructureError(f"catalog {redact(self.url)}: write failed ({type(exc).__name__})") from None

    def files_of(self, copy_uri: str) -> dict[str, FileRecord] | None:
        """The recorded files of a copy, or None if the catalog does not know it."""
        with self.engine.connect() as conn:
            cid = conn.execute(select(copies.c.id).where(copies.c.uri == copy_uri)).scalar()
            if cid is None:
                return None
            rows = conn.execute(select(files).where(files.c.copy_id == cid)).mappings().all()
        return {r["path"]: FileRecord(path=r["path"], size=r["size"], xxh128=r["xxh128"], crc64nvme=r["crc64nvme"],
                                      version_id=r["version_id"]) for r in rows}

    def mark_verified(self, copy_uri: str, results: dict[str, bool]) -> None:
        """Store the outcome of a fixity check of a copy (per file and overall)."""
        now = _now()
        with self.engine.begin() as conn:
            cid = conn.execute(select(copies.c.id).where(copies.c.uri == copy_uri)).scalar()
            if cid is None:
                return
            for path, ok in results.items():
                conn.execute(update(files).where(files.c.copy_id == cid, files.c.path == path)
                             .values(last_verified_at=now, verified=ok))
            conn.execute(update(copies).where(copies.c.id == cid)
                         .values(last_verified_at=now, last_verify_ok=all(results.values()) if results else True))

    def locate(self, title_or_hash: str) -> list[Location]:
        q = title_or_hash.strip()
        if not q:
            raise BadInputError("locate needs a title or an xxh128 hash")
        is_hash = re.fullmatch(r"[0-9a-fA-F]{32}", q) is not None
        stmt = select(copies, files.c.path, files.c.size, files.c.xxh128, files.c.last_verified_at.label("f_ver_at"),
                      files.c.verified).join(files, files.c.copy_id == copies.c.id)
        if is_hash:
            stmt = stmt.where(files.c.xxh128 == q.lower())
        else:
            stmt = stmt.where(or_(func.lower(copies.c.title) == q.lower(), func.lower(copies.c.package) == q.lower()))
        stmt = stmt.order_by(copies.c.title, files.c.path, copies.c.uri)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for r in rows:
            out.append(Location(title=r["title"], package=r["package"], path=r["path"], size=r["size"],
                                xxh128=r["xxh128"], uri=f"{r['uri']}/{r['path']}", copy_uri=r["uri"],
                                target=r["target"], storage_class=r["storage_class"],
                                archived_at=r["archived_at"], last_verified_at=r["f_ver_at"], verified=r["verified"]))
        return out


def locate(title_or_hash: str, *, url: str | None = None) -> list[Location]:
    """Every recorded copy of the files of a title (or of the file with this xxh128)."""
    return Catalog(url).locate(title_or_hash)
