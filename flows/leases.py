"""Leases of the flow runs a ``deliver`` command runs in its own process, so that a killed command's run
does not stay Running for ever.

A terminal command runs its flow in-process without Prefect's heartbeat (:func:`flows.server.without_heartbeat`).
Ctrl-C and SIGTERM are seen and recorded (Cancelled, Crashed), but SIGKILL (the OOM killer, ``kill -9``, a
closed SSH session's process group) ends the process before it can say anything, and the server keeps
the run Running: the Prefect UI then shows a delivery in progress that no process is doing.

Each run the command starts holds ``$DELIVER_HOME/server/runs/<flow-run-id>.json`` under an exclusive
``flock`` for as long as the process lives. The kernel drops the lock when the process dies, however it
dies, so a lease file whose lock can be taken belongs to a dead command. The next ``deliver`` command
that runs a flow (:func:`reap_killed_runs`) marks such a run Crashed, with its unfinished steps, saying
what happened and that running it again resumes from the finished steps, then removes the lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import IO

from flows.server import server_dir

__all__ = ["RunLeases", "reap_killed_runs", "leases_dir"]

log = logging.getLogger("deliver")


def leases_dir() -> Path:
    return server_dir() / "runs"


class RunLeases:
    """The leases this process holds: :meth:`hold` one per flow run id it sees start, :meth:`release_all`
    when the command ends (a killed process releases them by dying)."""

    def __init__(self, api_url: str | None) -> None:
        self.api_url = api_url
        self._held: dict[str, IO[str]] = {}

    def hold(self, flow_run_id: str) -> None:
        if self.api_url is None or flow_run_id in self._held:
            return
        try:
            leases_dir().mkdir(parents=True, exist_ok=True)
            fh = (leases_dir() / f"{flow_run_id}.json").open("a+")
        except OSError as exc:  # the run goes on; only the after-a-kill record is lost
            log.debug("no lease for flow run %s: %s", flow_run_id, exc)
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fh.truncate(0)
            fh.write(json.dumps({"flow_run_id": flow_run_id, "api_url": self.api_url, "pid": os.getpid(),
                                 "host": socket.gethostname(), "started_unix_s": time.time()}))
            fh.flush()
        except OSError as exc:
            fh.close()  # not ours (another process holds it) or unwritable: no handle left open
            log.debug("no lease for flow run %s: %s", flow_run_id, exc)
            return
        self._held[flow_run_id] = fh

    def release_all(self) -> None:
        for run_id, fh in self._held.items():
            with contextlib.suppress(OSError):
                (leases_dir() / f"{run_id}.json").unlink()
            fh.close()
        self._held.clear()


def _dead_leases() -> list[tuple[dict[str, object], IO[str], Path]]:
    """The lease files whose holder is gone, each returned locked (by us) with its document."""
    found: list[tuple[dict[str, object], IO[str], Path]] = []
    for path in sorted(leases_dir().glob("*.json")) if leases_dir().is_dir() else []:
        try:
            fh = path.open("r+")
        except OSError:
            continue
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: that command is still running
            fh.close()
            continue
        try:
            doc = json.loads(fh.read() or "{}")
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        found.append((doc, fh, path))
    return found


def reap_killed_runs(api_url: str | None) -> list[str]:
    """Mark Crashed the runs of ``deliver`` commands that were killed (their lease is free and the run is
    still unfinished on ``api_url``); return their ids. Best effort: a failure is logged, never raised."""
    if api_url is None:
        return []
    reaped: list[str] = []
    for doc, fh, path in _dead_leases():
        try:
            if doc.get("api_url") not in (None, api_url):  # another server's run: that server's commands reap it
                continue
            run_id = str(doc.get("flow_run_id") or path.stem)
            if _crash(run_id, doc):
                reaped.append(run_id)
            path.unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - the new run must not fail for an old run's record
            log.warning("could not record the end of an earlier killed run (%s): %s", path.name, exc)
        finally:
            fh.close()
    return reaped


def _crash(run_id: str, doc: dict[str, object]) -> bool:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    from flows.deployments import end_unfinished_steps

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(run_id))
        except (ObjectNotFound, ValueError):
            return False
        if run.state is None or run.state.is_final():
            return False
        message = (f"the deliver command running it (pid {doc.get('pid', '?')} on {doc.get('host', '?')}) was killed "
                   "before the run finished; run the same command again: it resumes from the finished steps")
        client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    end_unfinished_steps(run_id, log, Crashed, "crashed with its flow run (its deliver command was killed)")
    log.info("an earlier run %s (%s) was left Running by a killed deliver command: marked Crashed", run.name, run_id)
    return True
