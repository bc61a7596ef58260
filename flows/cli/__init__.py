"""The ``deliver`` command line.

Exit codes (the README's contract): 0 ok/delivered/pass, 1 QC failed / mismatch / lint errors,
2 bad input, 3 infrastructure. Every :class:`~specs.errors.DeliverError` becomes one line on stderr,
never a traceback. Each command group lives in its own module of this package (``spec``, ``media``:
run/qc/demo/loudness, ``archive``, ``ops``: serve/automation) and registers itself on :data:`app`.
Commands that start a flow build the flow's request model (:mod:`flows.deployments`), the same one
the Prefect UI's form builds.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
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


def clean_errors(func: F) -> F:
    """Turn our errors (and Ctrl-C) into one line on stderr plus the documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DeliverError as exc:
            fail(f"error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            from tasks.media.ffmpeg import kill_all_children

            kill_all_children()
            fail("interrupted; nothing was written under a final name", 130)
        except OSError as exc:  # disk full, permission denied on an output folder
            fail(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''}). Check the path "
                 "and free space.", EXIT_INFRASTRUCTURE if not isinstance(exc, FileNotFoundError)
                 else EXIT_BAD_INPUT)
        return None

    return cast(F, wrapper)  # same signature (functools.wraps), so typer sees the same options


def register_commands() -> None:
    # Imported for their side effect of adding commands to ``app``; each module owns one capability.
    from flows.cli import archive, media, ops, spec  # noqa: F401


def main() -> None:
    """Entry point of the ``deliver`` console script."""
    # Quiet, offline-friendly Prefect defaults for a terminal user; explicit settings win.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    register_commands()
    try:
        app()
    except SystemExit:
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
