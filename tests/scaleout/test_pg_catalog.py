"""The archive catalog and the delivery schedule on PostgreSQL (``catalog_url: postgresql://…``): a real
``deliver archive`` to a folder and to S3 (SeaweedFS), verify, locate, restore, status and mark, read back
with psql; and two processes writing at once on a fresh catalog."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from tests.archive import s3server
from tests.archive.helpers import S3_SMALL_PARTS, make_package, mhl_rc
from tests.postgres import pg_tool

register_commands()
VENV_BIN = Path(sys.executable).parent


def psql(cluster, database: str, sql: str) -> list[list[str]]:
    """Rows of ``sql`` read with psql (the PostgreSQL client, not our code), fields split on ``|``."""
    out = subprocess.run([str(pg_tool("psql")), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                          "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines() if line]


def plain_url(cluster, database: str) -> str:
    """What a post house writes in configs/storage.yaml: no driver, no password (trust on loopback here)."""
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/{database}"


@pytest.fixture
def catalog_db(pg_cluster, monkeypatch, tmp_path):
    """A fresh catalog database per test, given to deliver as DELIVER_CATALOG_URL (plain postgresql://)."""
    name = pg_cluster.create_database(f"catalog_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("DELIVER_CATALOG_URL", plain_url(pg_cluster, name))
    monkeypatch.setenv("DELIVER_STORAGE_CONFIG", str(tmp_path / "no-storage.yaml"))
    return name


@pytest.fixture(scope="module")
def s3():
    with s3server.running() as server:
        yield server


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_plain_postgresql_url_connects_with_psycopg():
    from tasks.archive.catalog import engine_url

    assert engine_url("postgresql://cat@db:5432/deliver") == "postgresql+psycopg://cat@db:5432/deliver"
    assert engine_url("postgres://cat@db/deliver") == "postgresql+psycopg://cat@db/deliver"
    for kept in ("postgresql+asyncpg://x@db/d", "postgresql+psycopg://x@db/d", "sqlite:////tmp/c.sqlite"):
        assert engine_url(kept) == kept


def test_archive_verify_locate_restore_on_a_postgres_catalog(pg_cluster, catalog_db, s3, tmp_path):
    package = make_package(tmp_path / "FILM_v1")
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    s3_copy, local_copy = f"s3://archive-a/{prefix}/FILM_v1", tmp_path / "lto" / "FILM_v1"
    r = run("archive", package, "--to", f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}", "--to", tmp_path / "lto",
            "--title", "Film")
    assert r.exit_code == 0, r.stderr
    # the rows are in PostgreSQL, as psql reads them: two copies, every file of the package in each
    expected = {p.relative_to(package).as_posix(): p.stat().st_size for p in package.rglob("*")
                if p.is_file() and not p.relative_to(package).as_posix().startswith("ascmhl/")}
    copies = psql(pg_cluster, catalog_db, "SELECT uri, kind, last_verify_ok FROM copies ORDER BY kind")
    assert copies == [[local_copy.as_uri(), "local", "t"], [s3_copy, "s3", "t"]]
    rows = psql(pg_cluster, catalog_db, "SELECT c.kind, f.path, f.size, f.xxh128 FROM files f JOIN copies c "
                                         "ON c.id = f.copy_id ORDER BY c.kind, f.path")
    for kind in ("local", "s3"):
        assert {p: int(s) for k, p, s, _ in rows if k == kind} == expected
    assert psql(pg_cluster, catalog_db, "SELECT data_type FROM information_schema.columns "
                                         "WHERE table_name = 'files' AND column_name = 'size'") == [["bigint"]]

    located = json.loads(run("locate", "Film", "--json").stdout)
    assert {(loc["copy_uri"], loc["path"], loc["size"], loc["xxh128"]) for loc in located} == {
        (uri, p, int(s), h) for k, p, s, h in rows for uri in [local_copy.as_uri() if k == "local" else s3_copy]}
    before = psql(pg_cluster, catalog_db, "SELECT max(last_verified_at) FROM files")[0][0]
    for copy in (s3_copy, local_copy):
        r = run("verify", copy)
        assert r.exit_code == 0, r.stderr
    after = psql(pg_cluster, catalog_db, "SELECT min(last_verified_at), bool_and(verified) FROM files")[0]
    assert after[0] > before and after[1] == "t"  # both checks written back to PostgreSQL

    (local_copy / "IMF" / "CPL.xml").write_text("<CompositionPlaylist>tampered</CompositionPlaylist>\n")
    r = run("verify", local_copy)
    assert r.exit_code == 1 and "IMF/CPL.xml" in r.stderr
    assert psql(pg_cluster, catalog_db, "SELECT f.verified FROM files f JOIN copies c ON c.id = f.copy_id "
                                         "WHERE c.kind = 'local' AND f.path = 'IMF/CPL.xml'") == [["f"]]
    # restore: the catalog names the S3 copy of the title; it comes back whole and matches its history
    s3_uris = {loc["copy_uri"] for loc in json.loads(run("locate", "FILM_v1", "--json").stdout)
               if loc["copy_uri"].startswith("s3://")}
    assert s3_uris == {s3_copy}
    r = run("restore", s3_copy, "--to", tmp_path / "restored")
    assert r.exit_code == 0, r.stderr
    assert mhl_rc(tmp_path / "restored" / "FILM_v1") == 0
    assert (tmp_path / "restored" / "FILM_v1" / "IMF" / "MASTER_PRORES.mov").read_bytes() == \
        (package / "IMF" / "MASTER_PRORES.mov").read_bytes()
    assert s3server.SECRET_KEY not in r.stdout + r.stderr


def test_status_and_mark_of_a_title_on_a_postgres_catalog(pg_cluster, catalog_db):
    from specs.loader import load_spec
    from tasks.archive.catalog import Catalog
    from tasks.report import DeliverableEntry, Report
    from tasks.schedule import distributors_of, nightly_digest, record_run

    demo = load_spec("demo")
    mez = DeliverableEntry(name="PG_v1_mezzanine.mov", path="/x/PG_v1_mezzanine.mov", size=5 * 2**30,
                           xxh128="b" * 32, kind="mezzanine")
    report = Report(verdict="pass", spec="demo", findings=[], title="PG", version="v1", delivered=True,
                    deliverables=[mez])
    catalog = Catalog()
    record_run(catalog, title="PG", version="v1", distributors=distributors_of(report, [demo]))
    r = run("mark", "PG", "demo", "mezzanine", "sent", "--by", "coord")
    assert r.exit_code == 0, r.stderr
    r = run("mark", "PG", "demo", "music-cue-sheet", "rejected", "--note", "missing publisher", "--by", "ana")
    assert r.exit_code == 0, r.stderr
    r = run("status", "pg", "--json")  # titles match case-insensitively on PostgreSQL too
    assert r.exit_code == 0, r.stderr
    items = {i["item"]: i for i in json.loads(r.stdout)["items"]}
    assert (items["mezzanine"]["state"], items["mezzanine"]["bytes"]) == ("sent", 5 * 2**30)  # past 32 bits
    assert (items["music-cue-sheet"]["state"], items["music-cue-sheet"]["note"]) == ("rejected", "missing publisher")
    rows = psql(pg_cluster, catalog_db, "SELECT i.item, e.state, e.by FROM schedule_events e JOIN schedule_items i "
                                         "ON i.id = e.item_id WHERE i.item IN ('mezzanine', 'music-cue-sheet') "
                                         "ORDER BY e.id")
    assert rows == [["mezzanine", "required", "deliver run"], ["mezzanine", "qc-pass", "deliver run"],
                    ["music-cue-sheet", "required", "deliver run"], ["mezzanine", "sent", "coord"],
                    ["music-cue-sheet", "rejected", "ana"]]
    digest = nightly_digest(catalog, today=dt.date.today())
    assert [(d["item"], d["by"]) for d in digest.rejections] == [("music-cue-sheet", "ana")]
    assert nightly_digest(catalog).rejections == []  # the digest moved on (schedule_meta upserted)
    bad = run("mark", "PG", "demo", "no-such-item", "sent")
    assert bad.exit_code == 2 and "no item 'no-such-item'" in bad.stderr


def _record_same_copy(url: str, ready, writer: int, times: int) -> None:
    """One process: open the catalog (creating its tables) and replace the same copy ``times`` times."""
    from tasks.archive.catalog import Catalog, FileRecord

    ready.wait(120)  # every writer imported: they open the catalog at the same moment
    catalog = Catalog(url)
    for i in range(times):
        catalog.record_copy(title="Race", package="RACE_v1", target="/vault", uri="/vault/RACE_v1", kind="local",
                            storage_class=None, verified=True,
                            records=[FileRecord(path=f"f{n}.bin", size=writer * 1000 + i, xxh128=f"{n:032x}")
                                     for n in range(20)])


def test_processes_writing_one_fresh_catalog_at_once(pg_cluster, catalog_db):
    """Four processes create the tables of an empty database and replace the same copy at the same moment:
    none fails, and the catalog ends with exactly one copy and its files."""
    url = os.environ["DELIVER_CATALOG_URL"]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(4)
    procs = [ctx.Process(target=_record_same_copy, args=(url, ready, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert psql(pg_cluster, catalog_db, "SELECT count(*) FROM copies") == [["1"]]
    assert psql(pg_cluster, catalog_db, "SELECT count(*), count(DISTINCT path) FROM files") == [["20", "20"]]


def test_two_deliver_archives_at_once_on_a_fresh_catalog(pg_cluster, catalog_db, tmp_path):
    """Two workers archiving different titles at once (two ``deliver archive`` processes) into one catalog."""
    packages = [make_package(tmp_path / f"TITLE{n}_v1", big_bytes=2_000_000, seed=n) for n in (1, 2)]
    env = dict(os.environ)
    procs = [subprocess.Popen([str(VENV_BIN / "deliver"), "archive", str(p), "--to", str(tmp_path / "vault"),
                               "--title", p.name[:6]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for p in packages]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert psql(pg_cluster, catalog_db, "SELECT title, count(*) FROM copies c JOIN files f ON f.copy_id = c.id "
                                         "GROUP BY title ORDER BY title") == [["TITLE1", "5"], ["TITLE2", "5"]]
    for p in packages:
        assert run("verify", tmp_path / "vault" / p.name).exit_code == 0
