"""``deliver spec``: list, show, lint, schema and explain distributor specs.

Exit codes: 0 ok; ``lint`` 1 when any file has a problem; 2 for a spec that cannot be loaded
(unknown name, invalid file) in ``show``/``explain`` — one line on stderr, no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli import app, clean_errors
from specs.errors import EXIT_FAILED
from specs.loader import (
    builtin_names,
    explain,
    lint_paths,
    list_specs,
    load_spec,
    render_resolved_yaml,
    spec_json_schema,
    spec_path,
)

spec_app = typer.Typer(
    name="spec",
    help="Distributor specs: list the built-ins, show, lint, print the JSON Schema, explain as a checklist.",
    no_args_is_help=True,
)
app.add_typer(spec_app, name="spec")


@spec_app.command("list")
@clean_errors
def list_command() -> None:
    """List the built-in specs with their descriptions."""
    rows = list_specs()
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        typer.echo(f"{name:<{width}}  {description}")


@spec_app.command("show")
@clean_errors
def show_command(
    name: str = typer.Argument(..., help="built-in spec name (netflix) or path to a .yaml file"),
    resolved: bool = typer.Option(False, "--resolved", help="print the spec after extends, as one standalone file"),
) -> None:
    """Print a spec: its file as written, or with --resolved the spec after every extends."""
    if resolved:
        typer.echo(render_resolved_yaml(load_spec(name)), nl=False)
        return
    path = spec_path(name)
    load_spec(path)  # refuse to show an invalid spec as if it were fine
    typer.echo(path.read_text(encoding="utf-8"), nl=False)


@spec_app.command("lint")
@clean_errors
def lint_command(
    paths: list[Path] = typer.Argument(None, help="spec files or folders; default: every built-in spec"),
) -> None:
    """Report every problem as file:line:column: message (hint); exit 1 if there is any."""
    targets: list[str | Path] = list(paths) if paths else [spec_path(n) for n in builtin_names()]
    if not paths:
        targets += sorted((spec_path(builtin_names()[0]).parent / "base").glob("*.yaml"))
    issues = lint_paths(targets)
    for issue in issues:
        typer.echo(str(issue))
    if issues:
        files = len({i.path for i in issues})
        typer.echo(f"{len(issues)} problem(s) in {files} file(s)", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo("ok")


@spec_app.command("schema")
@clean_errors
def schema_command(
    resolved: bool = typer.Option(False, "--resolved", help="the schema of a complete (resolved) spec"),
) -> None:
    """Print the JSON Schema of spec files (for editors: yaml-language-server, VS Code)."""
    typer.echo(json.dumps(spec_json_schema(resolved=resolved), indent=2, ensure_ascii=False))


@spec_app.command("explain")
@clean_errors
def explain_command(name: str = typer.Argument(..., help="built-in spec name or path")) -> None:
    """Print the checklist a QC operator signs for this spec (Markdown)."""
    typer.echo(explain(load_spec(name)), nl=False)
