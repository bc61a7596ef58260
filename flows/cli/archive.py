"""``deliver archive / verify / restore / locate`` — archive tooling on the command line.

Exit codes: 0 ok, 1 mismatch (each mismatching file named), 2 bad input, 3 unreachable.
By default the commands run the task functions directly (fast, no Prefect API); ``--prefect``
runs ``archive``/``verify`` as Prefect flows (retries with backoff, progress and table artifacts in
the UI; the ephemeral API starts when PREFECT_API_URL is unset).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli import app, clean_errors, fail
from specs.errors import EXIT_FAILED, BadInputError
from tasks.report import human_bytes

__all__ = ["archive_cmd", "verify_cmd", "restore_cmd", "locate_cmd"]


@app.command("archive")
@clean_errors
def archive_cmd(
    package_dir: Path = typer.Argument(..., help="Folder to archive: a package with an ascmhl/ history (from deliver, "
                                       "the ascmhl tool, Hedge, Silverstack…) or any folder (its first "
                                       "generation is written from the copy's read pass)."),
    to: list[str] | None = typer.Option(None, "--to", help="Target: s3://bucket/prefix, a folder, file:///path "
                                           "or a name from configs/storage.yaml. Repeat for more copies."),
    title: str | None = typer.Option(None, "--title", help="Catalog title (default: the folder name)."),
    prefect: bool = typer.Option(False, "--prefect/--no-prefect", help="Run as a Prefect flow (retries, artifacts)."),
    as_json: bool = typer.Option(False, "--json", help="Print the copies as JSON."),
) -> None:
    """Copy a folder to every target reading each byte once; verify every copy; extend (or start) the ASC MHL."""
    from tasks.archive.targets import load_storage_config, refuse_credentials

    for t in to or []:
        refuse_credentials(t)  # before anything (a Prefect run would record the parameters)
    targets = list(to or []) or load_storage_config().default_targets
    if not targets:
        raise BadInputError("no targets: give --to s3://bucket/prefix (or a folder), or set default_targets in "
                            "configs/storage.yaml")
    name = title or package_dir.resolve().name
    if prefect:
        from flows.archive import archive_flow
        from flows.deployments import ArchiveRequest, build_request

        copies = archive_flow(build_request(ArchiveRequest, package_dir=str(package_dir.resolve()), targets=targets,
                                            title=name))
    else:
        from tasks.archive.copy import archive_package

        copies = archive_package(package_dir, targets, title=name)
    if as_json:
        typer.echo(json.dumps([c.model_dump() for c in copies], indent=2))
        return
    for c in copies:
        typer.echo(f"verified  {c.uri}  {c.files} files  {human_bytes(c.bytes)}"
                   f"{'  ' + c.storage_class if c.storage_class else ''}")


@app.command("verify")
@clean_errors
def verify_cmd(
    uri: str = typer.Argument(..., help="A copy (s3://bucket/prefix/PACKAGE, a folder) or a target holding packages."),
    prefect: bool = typer.Option(False, "--prefect/--no-prefect", help="Run as a Prefect flow (artifacts)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Fixity: local copies re-hashed against their ASC MHL; S3 objects by stored CRC64NVME and size."""
    from tasks.archive.targets import refuse_credentials

    refuse_credentials(uri)
    if prefect:
        from flows.deployments import VerifyRequest
        from flows.verify import verify_flow

        report = verify_flow(VerifyRequest(uri=uri, raise_on_mismatch=False))
    else:
        from tasks.archive.verify import verify_uri

        report = verify_uri(uri)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        for c in report.copies:
            typer.echo(f"{'OK      ' if c.ok else 'FAILED  '}{c.uri}  {c.files} files  ({c.method})")
            for m in c.mismatches:
                typer.echo(f"  {m.kind.upper():9} {m.describe()}")
    if not report.ok:
        names = sorted({m.path for m in report.mismatches})
        fail(f"{len(names)} file(s) do not match: {', '.join(names[:20])}"
             f"{' …' if len(names) > 20 else ''}", EXIT_FAILED)


@app.command("restore")
@clean_errors
def restore_cmd(
    uri: str = typer.Argument(..., help="The copy to restore (s3://bucket/prefix/PACKAGE or a folder), or the "
                              "target it was archived to when that holds one package."),
    to: Path = typer.Option(..., "--to", help="Folder to restore into (the package lands in TO/PACKAGE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Download a copy, re-verify every hash against its ASC MHL, add a generation; request Glacier restores."""
    from tasks.archive.restoring import restore

    report = restore(uri, to)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    if report.pending:
        when = report.ready_by.isoformat(timespec="minutes") if report.ready_by else "later"
        typer.echo(f"restore requested for {len(report.pending)} archived object(s) "
                   f"({report.pending[0].storage_class}, tier {report.pending[0].tier}); expected ready by {when}. "
                   "Run the same command again then.")
        return
    typer.echo(f"restored and verified  {report.dest}  {report.files} files  {human_bytes(report.bytes)}  "
               f"(ASC MHL {report.mhl_generation})")


@app.command("locate")
@clean_errors
def locate_cmd(
    query: str = typer.Argument(..., help="A title (or package folder name), or a file's xxh128."),
    as_json: bool = typer.Option(False, "--json", help="Print the locations as JSON."),
) -> None:
    """Where are all copies of this master? (from the catalog)"""
    from tasks.archive.catalog import locate

    found = locate(query)
    if as_json:
        typer.echo(json.dumps([f.model_dump(mode="json") for f in found], indent=2))
    else:
        for f in found:
            checked = f.last_verified_at.isoformat(timespec="seconds") if f.last_verified_at else "never"
            state = {True: "verified", False: "FAILED", None: "unverified"}[f.verified]
            typer.echo(f"{f.xxh128}  {f.uri}  {f.storage_class or '-'}  {state} {checked}")
    if not found:
        fail(f"no archived copies recorded for {query!r}", EXIT_FAILED)
