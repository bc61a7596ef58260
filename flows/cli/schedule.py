"""``deliver status / mark / costs`` — the delivery schedule and what deliveries cost, from the catalog.

Exit codes: 0 ok, 2 bad input (unknown title, distributor, item or state; a bad date), 3 catalog unreachable.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os

import typer

from flows.cli import app, clean_errors
from specs.errors import BadInputError

__all__ = ["status_cmd", "mark_cmd", "costs_cmd"]


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadInputError(f"{option} {value!r}: give a date as YYYY-MM-DD") from None


@app.command("status")
@clean_errors
def status_cmd(
    title: str = typer.Argument(..., help="The title (as given to deliver run --title)."),
    version: str | None = typer.Option(None, "--version", help="Only this version (default: every version)."),
    as_json: bool = typer.Option(False, "--json", help="JSON (schema: specs/schema/status-1.json)."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV, one row per item."),
) -> None:
    """The delivery schedule of a title: every distributor's items and their state, copies and last fixity."""
    from tasks.archive.catalog import Catalog
    from tasks.schedule import status, status_csv

    st = status(Catalog(), title, version=version)
    if as_json:
        typer.echo(st.model_dump_json(indent=2, by_alias=True))
        return
    if as_csv:
        typer.echo(status_csv(st), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for d in st.distributors:
        cost = (f" · make {d.make_cost:.4f} {d.currency}" if d.make_cost is not None else "") + (
            f" · archive {d.monthly_storage_cost:.4f} {d.currency}/month" if d.monthly_storage_cost is not None else "")
        console.print(f"[bold]{d.distributor}[/] {d.version}: {d.accepted}/{d.items} accepted"
                      f"{f' · due {d.due}' if d.due else ''}{f' · [red]{d.overdue} overdue[/]' if d.overdue else ''}"
                      f"{cost}", highlight=False)
    table = Table(title=f"Delivery schedule — {st.title}")
    for col in ("version", "distributor", "item", "kind", "state", "qc", "copies", "last fixity", "by", "note"):
        table.add_column(col)
    colours = {"accepted": "green", "rejected": "red", "qc-fail": "red", "archived": "cyan", "sent": "yellow"}
    for i in st.items:
        state = f"[{colours[i.state]}]{i.state}[/]" if i.state in colours else i.state
        table.add_row(i.version, i.distributor, i.item, i.kind + ("" if i.required else " (optional)"),
                      state + (" [red](overdue)[/]" if i.overdue else ""), i.qc or "", str(i.copies or ""),
                      i.last_fixity.isoformat(timespec="seconds") if i.last_fixity else "", i.updated_by or "",
                      i.note or "")
    console.print(table)


@app.command("mark")
@clean_errors
def mark_cmd(
    title: str = typer.Argument(..., help="The title."),
    distributor: str = typer.Argument(..., help="The distributor (its spec's name)."),
    item: str | None = typer.Argument(None, help="A deliverable, manual check or document id."),
    state: str | None = typer.Argument(None, help="sent, accepted or rejected (made, verified for paperwork)."),
    note: str | None = typer.Option(None, "--note", help="What happened (the distributor's QC reference…)."),
    by: str | None = typer.Option(None, "--by", help="Who (default: $USER)."),
    version: str | None = typer.Option(None, "--version", help="Default: the latest version of the title."),
    due: str | None = typer.Option(None, "--due", help="The distributor's due date, YYYY-MM-DD."),
) -> None:
    """Record what happened outside deliver (sent, accepted, rejected), with who and when; or a due date."""
    from tasks.archive.catalog import Catalog
    from tasks.schedule import mark

    if state is None and due is None:
        raise BadInputError("give ITEM and a state (sent, accepted, rejected), or --due DATE")
    who = by or os.environ.get("USER") or getpass.getuser()
    mark(Catalog(), title=title, distributor=distributor, item=item, state=state, by=who, note=note,
         version=version, due=_date(due, "--due"))
    typer.echo(f"{title} {distributor}{' ' + item if item else ''}: "
               f"{state or ''}{f' due {due}' if due else ''} (by {who})".replace(":  ", ": "))


@app.command("costs")
@clean_errors
def costs_cmd(
    title: str | None = typer.Option(None, "--title", help="Only this title."),
    since: str | None = typer.Option(None, "--since", help="Only runs recorded on or after YYYY-MM-DD."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """What deliveries cost: CPU and wall time, bytes made and archived, priced (configs/storage.yaml prices)."""
    from tasks.archive.catalog import Catalog
    from tasks.report import human_bytes
    from tasks.schedule import cost_summary

    summary = cost_summary(Catalog(), title=title, since=_date(since, "--since"))
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
        return
    money = "/".join(summary.currencies)

    def price(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f} {money}"

    for r in summary.runs:
        typer.echo(f"{r.recorded_at.isoformat(timespec='seconds')}  {r.title} {r.version} ({','.join(r.distributors)})"
                   f"  cpu {r.cpu_s:.1f} s  wall {r.wall_s:.1f} s  made {human_bytes(r.made_bytes)}  archived "
                   f"{human_bytes(r.archived_bytes)}  make {price(r.make_cost)}  archive "
                   f"{price(r.monthly_storage_cost)}/month")
    typer.echo(f"total: {len(summary.runs)} run(s), cpu {summary.cpu_s:.1f} s, wall {summary.wall_s:.1f} s, made "
               f"{human_bytes(summary.made_bytes)}, archived {human_bytes(summary.archived_bytes)}, make "
               f"{price(summary.make_cost)}, archive {price(summary.monthly_storage_cost)}/month")
