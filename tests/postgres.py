"""A throw-away PostgreSQL cluster and a PostgreSQL-backed ``prefect server start`` for tests (the post
house's set-up, docs/operations.md). Fixtures here are imported by the conftest of the packages that use
them; the tests using them carry the ``postgres`` marker and skip, with the reason, where PostgreSQL's
``initdb`` is absent.

The cluster listens on 127.0.0.1 only, on a free port, with ``trust`` authentication: it lives for one
test session in a temporary folder and holds no credential. ``initdb`` refuses to run as root, so as
root the cluster is created and run as the unprivileged ``nobody`` user (util-linux ``setpriv``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

VENV_BIN = Path(sys.executable).parent
PG_USER = "postgres"  # the cluster's superuser role (initdb -U), not a system account
LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
# what ``deliver serve`` registers (flows/deployments.py ``deployments()``), the last one last
SERVED_DEPLOYMENTS = frozenset({"deliver", "deliver-plan", "qc", "archive", "verify", "nightly-qc", "qc-item"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DEBIAN_PG = Path("/usr/lib/postgresql")


def pg_tool(name: str, debian_root: Path = DEBIAN_PG) -> str | None:
    """PostgreSQL program ``name``: on PATH, else in Debian's /usr/lib/postgresql/<major>/bin (the newest
    major), where Debian's postgresql package installs the server programs, off PATH."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(debian_root.glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return str(candidates[-1]) if candidates else None


def postgres_missing(debian_root: Path = DEBIAN_PG) -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres", "psql", "createdb"):
        if pg_tool(tool, debian_root) is None:
            return (f"PostgreSQL's {tool} is neither on PATH nor in /usr/lib/postgresql/*/bin (Debian: apt-get "
                    "install postgresql; `make test` installs it as root)")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "running as root without util-linux setpriv to start PostgreSQL as an unprivileged user"
    return None


def _as_cluster_owner(argv: list[str]) -> list[str]:
    """initdb/postgres refuse root: run them as ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return argv
    nobody = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *argv]


@dataclass
class PgCluster:
    """One running cluster: ``url(db)`` gives SQLAlchemy URLs for a driver (``asyncpg`` for Prefect's
    server, ``psycopg`` for the archive catalog)."""

    root: Path
    port: int
    log: Path
    databases: set[str] = field(default_factory=set)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (once); returns its name."""
        if name not in self.databases:
            subprocess.run([str(pg_tool("createdb")), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, name],
                           check=True, capture_output=True, timeout=60)
            self.databases.add(name)
        return name

    def ctl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        argv = [str(pg_tool("pg_ctl")), "-D", str(self.data), "-l", str(self.log), *args]
        return subprocess.run(_as_cluster_owner(argv), capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} " \
               "-c max_connections=200 -c fsync=off -c full_page_writes=off"
        done = self.ctl("-w", "-t", "90", "-o", opts, "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.decode()[-2000:]}\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.ctl("-w", "-m", "fast", "stop")


def start_cluster() -> PgCluster:
    """initdb a fresh cluster in a temporary folder and start it on a free loopback port."""
    root = Path(tempfile.mkdtemp(prefix="deliver-pg-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    root.chmod(0o755)  # the cluster's own data folder is 0700 inside it
    cluster = PgCluster(root=root, port=free_port(), log=root / "postgres.log")
    done = subprocess.run(_as_cluster_owner([str(pg_tool("initdb")), "-D", str(cluster.data), "-U", PG_USER,
                                             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
                          capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.decode()[-2000:]}")
    if os.geteuid() == 0:
        os.chown(root, pwd.getpwnam("nobody").pw_uid, -1)
    cluster.start()
    return cluster


def drain_prefect_workers(timeout_s: float = 30) -> None:
    """Send what this process's Prefect log and event workers still hold, and stop them, while the server
    is up: otherwise they try at interpreter exit, after the fixture stopped the server, and print
    "--- Error logging to API --- All connection attempts failed". (A later client starts new workers.)"""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


@contextmanager
def use_api(api_url: str) -> Iterator[str]:
    """This process's Prefect client, flows and task runs talk to ``api_url`` inside the block.

    Prefect keeps ONE events worker per process for any running server, bound to the API URL it first
    saw: a flow run in this process after a switch would send its task runs' states (events) to the
    previous server. Draining it on the way in and out makes the next run start one for ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    drain_prefect_workers()
    with temporary_settings({PREFECT_API_URL: api_url}):
        try:
            yield api_url
        finally:
            drain_prefect_workers()


def wait_served(api_url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Wait until the ``deliver serve`` process ``proc`` has registered every one of SERVED_DEPLOYMENTS
    with ``api_url`` (it registers them one by one); fail early, with the end of ``log``, if it exits."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout_s
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"deliver serve exited:\n{log.read_text()[-3000:]}")
            try:
                if SERVED_DEPLOYMENTS <= {d.name for d in client.read_deployments()}:
                    return
            except Exception:  # noqa: BLE001 - API not up yet: ask again until the deadline
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployments not registered:\n{log.read_text()[-3000:]}")
            time.sleep(1)


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url`` answers 200; fail early, with the end of ``log``, when ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not up after {timeout_s} s:\n{log.read_text()[-3000:]}")


def stop_process_group(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM the process group ``proc`` leads (started with ``start_new_session``), SIGKILL after
    ``timeout_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_flow_run_final(client: Any, run_id: Any, timeout_s: float) -> Any:
    """The flow run once its state is final, polled every second through a sync Prefect ``client``
    (AssertionError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        fr = client.read_flow_run(run_id)
        if fr.state is not None and fr.state.is_final():
            return fr
        assert time.monotonic() < deadline, f"flow run {fr.name} still {fr.state_type} after {timeout_s} s"
        time.sleep(1)


@dataclass
class PrefectServer:
    """``prefect server start`` on a loopback port with its database on the cluster. ``stop()`` and
    ``start()`` keep the port and the database, as a post house restarting its server would."""

    home: Path
    db_url: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def env(self) -> dict[str, str]:
        """The environment of the server, and of any client of it (workers, CLI)."""
        env = dict(os.environ, PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url,
                   PREFECT_UI_API_URL=self.api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        return env

    def start(self, timeout_s: float = 180) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        # Concurrency-slot leases on disk (PREFECT_HOME/concurrency_leases), not in the server's memory: a
        # restart then keeps the leases of running tasks, which renew and release their slots; with the
        # default in-memory storage a task holding an `ffmpeg` slot across a restart leaks it for good.
        env = dict(self.env(), PREFECT_API_DATABASE_CONNECTION_URL=self.db_url,
                   PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=LEASE_STORAGE)
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n== start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_http(f"{self.api_url}/health", timeout_s, self.proc, self.log)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        drain_prefect_workers()
        stop_process_group(proc)


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL 15 cluster for the session; skips where PostgreSQL is absent."""
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_prefect_server(pg_cluster):
    """``prefect server start`` with PREFECT_API_DATABASE_CONNECTION_URL on the cluster (database
    ``prefect``); yields the :class:`PrefectServer`."""
    server = PrefectServer(home=pg_cluster.root.parent / f"{pg_cluster.root.name}-prefect",
                           db_url=pg_cluster.url(pg_cluster.create_database("prefect"), driver="asyncpg"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
