"""``deliver plan``: lint a title's delivery plan and print its JSON Schema (``deliver run --plan`` runs it).

Exit codes: 0 ok; ``lint`` 1 when a plan has a problem (each as file:line:column: message), 2 for a path
that does not exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli import app, clean_errors
from specs.errors import EXIT_FAILED, BadInputError
from specs.plan import lint_plan, plan_json_schema

plan_app = typer.Typer(name="plan", help="Delivery plans: every distributor of a title (deliver run --plan).",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")


@plan_app.command("lint")
@clean_errors
def lint_command(paths: list[Path] = typer.Argument(..., help="plan files")) -> None:
    """Report every problem as file:line:column: message (hint); exit 1 if there is any."""
    issues = []
    for p in paths:
        if not p.is_file():
            raise BadInputError(f"plan file not found: {p}")
        issues += lint_plan(p)
    for issue in issues:
        typer.echo(str(issue))
    if issues:
        typer.echo(f"{len(issues)} problem(s) in {len({i.path for i in issues})} file(s)", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo("ok")


@plan_app.command("schema")
@clean_errors
def schema_command() -> None:
    """Print the JSON Schema of plan files (for editors)."""
    typer.echo(json.dumps(plan_json_schema(), indent=2, ensure_ascii=False))
