"""``deliver server status|stop|start``: the local Prefect server the commands share (:mod:`flows.server`)."""

from __future__ import annotations

import time

import typer

from flows.cli import app, clean_errors

__all__ = ["status_cmd", "stop_cmd", "start_cmd"]

server_app = typer.Typer(help="The local Prefect server that records deliver's runs (started on first use).",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("status")
@clean_errors
def status_cmd() -> None:
    """Say whether the local server runs, its UI address, pid and where its database lives. Exit 0 running,
    1 not running."""
    import os

    from flows.server import read_server, server_dir

    if os.environ.get("PREFECT_API_URL"):
        typer.echo(f"PREFECT_API_URL is set ({os.environ['PREFECT_API_URL']}): commands use that server, "
                   "not a local one")
    server = read_server()
    if server is None:
        typer.echo(f"no local server running (it starts on the next deliver run/qc; state in {server_dir()})")
        raise typer.Exit(1)
    up_s = time.time() - server.started_unix_s
    typer.echo(f"running: UI {server.ui_url}  API {server.api_url}  pid {server.pid}  up {up_s / 60:.0f} min\n"
               f"database and settings: {server.prefect_home}\nlog: {server.log}")


@server_app.command("start")
@clean_errors
def start_cmd() -> None:
    """Start the local server now (otherwise the first run/qc starts it)."""
    from flows.server import start_server

    server, started = start_server()
    typer.echo(f"{'started' if started else 'already running'}: UI {server.ui_url}  pid {server.pid}")


@server_app.command("stop")
@clean_errors
def stop_cmd() -> None:
    """Stop the local server (its run history stays; the next run/qc starts it again)."""
    from flows.server import stop_server

    server = stop_server()
    typer.echo(f"stopped the local server (pid {server.pid})" if server else "no local server was running")
