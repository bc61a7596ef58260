"""The ``deliver`` command line.

Exit codes (the README's contract): 0 ok/delivered/pass, 1 QC failed / mismatch / lint errors,
2 bad input, 3 infrastructure. Every error, ours (:class:`~specs.errors.DeliverError`) or not, and
wherever raised (in a flow too), becomes one line on stderr, never a traceback: that goes to the log
file (:mod:`flows.cli.terminal`). Each command group lives in its own module of this package
(``spec``, ``media``: run/qc/demo/loudness, ``archive``, ``ops``: serve/automation, ``schedule``:
status/mark/costs, ``server``: the local Prefect server) and registers itself on :data:`app`.
Commands that start a flow build the flow's request model (:mod:`flows.deployments`), the same one
the Prefect UI's form builds.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import typer

from specs.errors import EXIT_BAD_INPUT, EXIT_INFRASTRUCTURE, DeliverError

app = typer.Typer(
    name="deliver",
    help="Delivery mastering: layback, loudness and spec QC, deliverables, ASC MHL packaging, verified archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> None:
    """Print one line on stderr and exit with ``code``."""
    typer.echo(f"deliver: {message}", err=True)
    raise typer.Exit(code)


def _log_traceback(exc: BaseException) -> Path:
    """Write ``exc``'s traceback to the command's log file (``$DELIVER_HOME/deliver.log`` when the command
    has none yet); return that file."""
    import logging
    import traceback

    from flows.cli.terminal import current_log

    log = current_log()
    if log is not None and log.exists():
        return log  # flows.cli.terminal.route_logs has written the traceback there already
    log = Path(os.environ.get("DELIVER_HOME") or Path.home() / ".deliver") / "deliver.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"deliver {' '.join(sys.argv[1:])}\n{''.join(traceback.format_exception(exc))}\n")
    except OSError:
        logging.getLogger("deliver").debug("no log file for the traceback", exc_info=exc)
    return log


def _where(exc: OSError) -> str:
    names = [n for n in (exc.filename, exc.filename2) if n]
    return f" ({' -> '.join(str(n) for n in names)})" if names else ""


#: OSErrors that mean the user pointed us at the wrong place (exit 2), not a failing disk or store (exit 3).
_BAD_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def clean_errors(func: F) -> F:
    """Every error becomes one line on stderr plus the documented exit code; never a traceback.

    Errors raised inside a flow arrive here too (Prefect re-raises them after logging them, with their
    traceback, to the run's log file: :func:`flows.cli.terminal.route_logs`). An unexpected exception
    (a bug) says so, exit 3, and names the log file holding its traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from flows.cli.terminal import current_log, forget_log

        forget_log()
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except DeliverError as exc:  # says what and how to fix it; a traceback only when a run's log exists
            fail(f"error: {exc}{_log_note(current_log())}", exc.exit_code)
        except KeyboardInterrupt:
            from tasks.media.ffmpeg import kill_all_children

            kill_all_children()
            fail("interrupted; nothing was written under a final name", 130)
        except OSError as exc:  # disk full, permission denied, a file where a folder should be
            log = _log_traceback(exc)
            bad_path = isinstance(exc, _BAD_PATH_ERRORS)
            fail(f"error: {exc.strerror or exc}{_where(exc)}. "
                 f"{'Check the path.' if bad_path else 'Check the path and free space.'}{_log_note(log)}",
                 EXIT_BAD_INPUT if bad_path else EXIT_INFRASTRUCTURE)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, traceback in the log
            log = _log_traceback(exc)
            api = _unreachable_api(exc)
            if api is not None:
                fail(f"error: the Prefect API {api} is not reachable; start that server, correct PREFECT_API_URL, or "
                     "unset it (deliver then starts its local server)" + _log_note(log), EXIT_INFRASTRUCTURE)
            fail(f"error: internal error {type(exc).__name__}: {exc} (traceback in {log}; please report it)",
                 EXIT_INFRASTRUCTURE)
        return None

    return cast(F, wrapper)  # same signature (functools.wraps), so typer sees the same options


def _unreachable_api(exc: BaseException) -> str | None:
    """The Prefect API address when ``exc`` (or an exception it came from) says the API cannot be reached:
    Prefect's client raises ``RuntimeError("Failed to reach API at URL")`` or lets httpx's transport errors
    through."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause)
        if text.startswith("Failed to reach API at "):
            return text.removeprefix("Failed to reach API at ").rstrip("/ ")
        if type(cause).__module__.startswith(("httpx", "httpcore")) and "Connect" in type(cause).__name__:
            return os.environ.get("PREFECT_API_URL") or "(local server)"
        cause = cause.__cause__ or cause.__context__
    return None


def _log_note(log: Path | None) -> str:
    from flows.cli.terminal import current_log

    return f" (log: {log})" if log is not None and log == current_log() else ""


def register_commands() -> None:
    # Imported for their side effect of adding commands to ``app``; each module owns one capability.
    from flows.cli import archive, documents, media, ops, plan, schedule, server, spec  # noqa: F401


def main() -> None:
    """Entry point of the ``deliver`` console script."""
    # Quiet, offline-friendly Prefect defaults for a terminal user; explicit settings win.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.cli.terminal import early_setup

    early_setup()  # third-party warnings go to the log file, never to the terminal
    register_commands()
    try:
        app()
    except SystemExit as exc:
        if "prefect" in sys.modules:  # a command that ran a flow
            _exit_now(exc.code)
        raise
    sys.exit(0)


def _exit_now(code: object) -> None:
    """End the process once a flow has run: the usual exit work, without the interpreter's teardown.

    Tearing down the thousands of modules Prefect and its stack loaded costs about 0.35 s of CPU at the
    end of every ``deliver qc``/``run``. What exit has to do is done first, as the interpreter does it:
    threading's exit hooks (Prefect's event and log workers send what they still hold), then the
    ``atexit`` functions (log files flushed and closed); then the streams are flushed and the process
    ends with the command's exit code.
    """
    import atexit
    import threading

    if isinstance(code, str):
        print(code, file=sys.stderr)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    try:
        getattr(threading, "_shutdown", lambda: None)()
        getattr(atexit, "_run_exitfuncs", lambda: None)()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)


if __name__ == "__main__":
    main()
