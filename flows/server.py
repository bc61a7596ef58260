"""One local Prefect server for the command line: started on first use, reused by every command after.

Why a persistent local server, and not Prefect's temporary one or no API at all. When
``PREFECT_API_URL`` is not set, Prefect starts a temporary server inside each process that runs a
flow and stops it at exit (Prefect docs, "Run a local Prefect server": ephemeral mode,
``PREFECT_SERVER_ALLOW_EPHEMERAL_MODE``). On this 2-core machine that is 8-16 s for every
``deliver qc``, and the run history dies with it. Running the flow functions without any API
would be fastest, but nothing would be recorded, so a run could not be looked at in the UI, and
``deliver serve``/the nightly job would see a different world from the terminal. One long-lived
server keeps everything Prefect offers (recorded runs, artifacts, the UI, cached layback steps a
rerun resumes from) and costs its start-up once; each later command pays only its API round
trips, measured in ``bench/startup.py``.

The server is ``prefect server start`` on a free loopback port, detached in its own session, with
its own ``PREFECT_HOME`` (SQLite database) under ``$DELIVER_HOME/server``. Its address and pid are
kept in ``$DELIVER_HOME/server/server.json``; a lock file keeps two commands from starting two
servers. ``deliver server status|stop`` look after it. An explicit ``PREFECT_API_URL`` (a team's
server, Prefect Cloud) always wins, and ``DELIVER_LOCAL_SERVER=0`` keeps Prefect's own temporary
server instead.

This module never imports Prefect: ``deliver server status`` stays quick.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from specs.errors import InfrastructureError

__all__ = ["LocalServer", "server_dir", "read_server", "ensure_api", "start_server", "stop_server",
           "ui_url", "skip_absent_tag_limits", "without_heartbeat", "STARTUP_TIMEOUT_S"]

#: Seconds to wait for a new server's health endpoint (a cold start takes 8-15 s on 2 busy cores).
STARTUP_TIMEOUT_S = float(os.environ.get("DELIVER_SERVER_STARTUP_TIMEOUT_S", "120"))


@dataclass(frozen=True)
class LocalServer:
    """The server this machine's deliver commands share."""

    pid: int
    port: int
    api_url: str
    prefect_home: str
    log: str
    started_unix_s: float

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def server_dir() -> Path:
    """``$DELIVER_HOME/server`` (``~/.deliver/server``): state file, log, the server's PREFECT_HOME."""
    return Path(os.environ.get("DELIVER_HOME") or Path.home() / ".deliver") / "server"


def _state_file() -> Path:
    return server_dir() / "server.json"


def _healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded_server() -> LocalServer | None:
    try:
        doc = json.loads(_state_file().read_text())
        return LocalServer(**doc)
    except (OSError, ValueError, TypeError):
        return None


#: How long a live server process may take to answer its health endpoint before it counts as hung: on
#: two loaded cores a busy server can miss a 2 s timeout, and replacing it would leave the runs pointed
#: at it without an API.
HEALTH_PATIENCE_S = 15.0


def read_server() -> LocalServer | None:
    """The recorded local server if its process is alive and answers, else None."""
    server = _recorded_server()
    if server is None:
        return None
    deadline = time.monotonic() + HEALTH_PATIENCE_S
    while _alive(server.pid):
        if _healthy(server.api_url):
            return server
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return None


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    server_dir().mkdir(parents=True, exist_ok=True)
    with (server_dir() / "server.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(home: Path, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_API_URL=api_url, PREFECT_UI_API_URL=api_url, PREFECT_UI_URL=api_url.removesuffix("/api"))
    return env


def start_server(timeout_s: float = STARTUP_TIMEOUT_S) -> tuple[LocalServer, bool]:
    """The running local server, or a new one; ``(server, started_now)``.

    Raises:
        InfrastructureError: the server did not answer within ``timeout_s`` (its log is named).
    """
    with _lock():
        running = read_server()
        if running is not None:
            return running, False
        hung = _recorded_server()
        if hung is not None and _alive(hung.pid):  # alive but not answering: never two servers on one database
            _terminate(hung.pid)
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        home = server_dir() / "prefect-home"
        home.mkdir(parents=True, exist_ok=True)
        log = server_dir() / "server.log"
        prefect_cli = Path(sys.executable).parent / "prefect"
        cmd = ([str(prefect_cli)] if prefect_cli.exists() else [sys.executable, "-m", "prefect"]) + [
            "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=_server_env(home, api_url), start_new_session=True, cwd=str(server_dir()))
        deadline = time.monotonic() + timeout_s
        while not _healthy(api_url, 1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                _terminate(proc.pid)
                raise InfrastructureError(
                    f"the local Prefect server did not start within {timeout_s:.0f} s (log: {log}); set "
                    "PREFECT_API_URL to a running server, or DELIVER_LOCAL_SERVER=0 for Prefect's temporary one")
            time.sleep(0.2)
        server = LocalServer(pid=proc.pid, port=port, api_url=api_url, prefect_home=str(home), log=str(log),
                             started_unix_s=time.time())
        tmp = _state_file().with_suffix(".partial.json")
        tmp.write_text(json.dumps(asdict(server), indent=2))
        tmp.replace(_state_file())
        return server, True


def _terminate(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the server's process group (it runs in its own session), SIGKILL after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid):
                return
            time.sleep(0.1)


def stop_server() -> LocalServer | None:
    """Stop the local server if one runs; returns what was stopped."""
    with _lock():
        server = read_server()
        if server is not None:
            _terminate(server.pid)
        _state_file().unlink(missing_ok=True)
        return server


def _configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment, or from Prefect's settings when Prefect is already loaded
    (a profile, or a test harness's temporary settings)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or None
    return None


def ensure_api(announce: bool = True) -> str | None:
    """Point this process at a Prefect API before a flow runs; return the UI's base URL, if any.

    The configured ``PREFECT_API_URL`` wins; otherwise the local server is reused or started (and its
    UI address printed on stderr the one time it starts). ``DELIVER_LOCAL_SERVER=0``: nothing is done
    and Prefect uses its temporary server.
    """
    configured = _configured_api_url()
    if configured:
        return ui_url(configured)
    if os.environ.get("DELIVER_LOCAL_SERVER", "1") in ("0", "false", "no", "off"):
        return None
    server, started = start_server()
    global _local_api_url
    _local_api_url = server.api_url
    os.environ["PREFECT_API_URL"] = server.api_url
    if "prefect.context" in sys.modules:  # settings already read: read them again from the environment
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
    if started and announce:
        print(f"deliver: started a local Prefect server for run history: {server.ui_url} "
              "(stays up for the next commands; `deliver server stop` stops it)", file=sys.stderr)
    return server.ui_url


#: The local server's API address once :func:`ensure_api` has pointed this process at it.
_local_api_url: str | None = None


def skip_absent_tag_limits(tags: list[str]) -> bool:
    """On the local server, tell Prefect up front that the ``tags`` have no concurrency limit, when they have none.

    Prefect acquires a tag's concurrency slot before every tagged task run, in a read-then-write SQLite
    transaction on the server. While the server is still recording the run's first events, that write
    loses the lock ("database is locked", HTTP 503) and Prefect's client backs off 2 s
    (``prefect.client.base``: ``2 ** attempt``): a quarter of a short ``deliver qc``. Prefect caches
    "no limit on these tags" for a few seconds after one answer; one lock-free read here (GET
    ``/v2/concurrency_limits/tag:NAME``, 404 when absent) fills that cache before the first tagged task.
    A limit that exists (``deliver serve`` creates ``ffmpeg``) is acquired as usual. Only for the local
    server this process started or reused (no credentials to send). Returns whether the cache was filled.
    """
    if _local_api_url is None or os.environ.get("PREFECT_API_URL") != _local_api_url:
        return False
    names = [f"tag:{t}" for t in tags]
    for name in names:
        try:
            with urllib.request.urlopen(f"{_local_api_url}/v2/concurrency_limits/{name}", timeout=2.0):
                return False  # a limit exists: Prefect acquires its slots
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                return False
        except OSError:
            return False
    try:
        from prefect.concurrency import services

        with services._cache_lock:
            services._no_limits_cache[frozenset(names)] = True
    except (ImportError, AttributeError):  # another Prefect release: acquire as usual
        return False
    return True


@contextlib.contextmanager
def without_heartbeat() -> Iterator[None]:
    """Run a terminal command's flow without Prefect's flow-run heartbeat thread (unless configured).

    The heartbeat (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, default 180 s) lets a server-side automation
    notice a worker that died silently. A ``deliver`` command runs its flow in the user's terminal,
    which sees the process end; meanwhile the thread costs up to 1 s at the end of every command: it
    sleeps in 1 s steps and Prefect joins it when the run ends. A frequency set explicitly (environment
    or profile) is kept.
    """
    from prefect.context import SettingsContext, get_settings_context

    ctx = get_settings_context()
    default = type(ctx.settings.flows).model_fields["heartbeat_frequency"].default
    if ctx.settings.flows.heartbeat_frequency != default:
        yield
        return
    flows = ctx.settings.flows.model_copy(update={"heartbeat_frequency": None})
    with SettingsContext(profile=ctx.profile, settings=ctx.settings.model_copy(update={"flows": flows})):
        yield


def ui_url(api_url: str) -> str:
    """The UI's base address for an API address (``PREFECT_UI_URL`` when set)."""
    return os.environ.get("PREFECT_UI_URL") or api_url.rstrip("/").removesuffix("/api")
