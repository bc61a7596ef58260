"""``deliver documents REPORT.json`` — (re)make the delivery documents of a run from its report.

Exit codes: 0 written (a skipped PDF is a warning on stderr, not an error), 2 bad input (no such report, not a
report, no package folder to write into without --out, --spec that does not load).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from flows.cli import app, clean_errors
from specs.errors import BadInputError, DeliverError

if TYPE_CHECKING:
    from tasks.report import Report

__all__ = ["documents_cmd"]


@app.command("documents")
@clean_errors
def documents_cmd(
    report_path: Path = typer.Argument(..., help="report.json of a deliver run."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write into (default: the package's documents/ "
                                    "folder, and the documents are added to its ASC MHL history)."),
    spec_ref: str | None = typer.Option(None, "--spec", help="Spec for the loudness targets (default: the "
                                        "report's spec, when it still loads)."),
    master: str | None = typer.Option(None, "--master", help="Master to grab the findings' frames from "
                                      "(default: the run's layback master, when it is still there)."),
    facility: str | None = typer.Option(None, "--facility", help="Facility named on the cover "
                                        "(default: $DELIVER_FACILITY, else the host of the run)."),
    signatory: list[str] | None = typer.Option(None, "--signatory", help="ROLE or ROLE=NAME of a sign-off line; "
                                               "repeat for more (default: post-production supervisor, producer, "
                                               "received for the distributor)."),
) -> None:
    """The delivery documents the producer signs (HTML and PDF, one per distributor) from a run's report.json."""
    from specs.loader import load_spec
    from tasks.documents import (
        DEFAULT_SIGNATORIES,
        DOCUMENTS_FOLDER,
        Signatory,
        distributors_of,
        record_in_package,
        write_delivery_documents,
    )
    from tasks.report import Report

    try:
        report = Report.model_validate(json.loads(report_path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise BadInputError(f"{report_path}: no such report; give the report.json of a deliver run") from exc
    except (OSError, ValueError, ValidationError) as exc:
        raise BadInputError(f"{report_path}: not a deliver report.json ({str(exc).splitlines()[0]})") from exc
    spec = None
    try:
        spec = load_spec(spec_ref or report.spec)
    except DeliverError:
        if spec_ref:
            raise
        typer.echo(f"deliver: warning: spec {report.spec!r} does not load; the loudness certificate has no "
                   "targets (give --spec)", err=True)
    package = _package_dir(report)
    if out is not None:
        target = out
    elif package is not None:
        target = package / DOCUMENTS_FOLDER
    else:
        raise BadInputError(f"{report_path}: the run delivered no package to write into; give --out DIR")
    if master is None and report.title and report.version:
        guess = report_path.parent / "work" / f"{report.title}_{report.version}_layback.mov"
        master = str(guess) if guess.is_file() else None
    signatories = [Signatory(*(p.strip() for p in s.split("=", 1))) for s in signatory or []] or DEFAULT_SIGNATORIES
    docs = write_delivery_documents(distributors_of(report, spec), target, master=master, facility=facility,
                                    signatories=signatories)
    if out is None and package is not None and (package / "ascmhl").is_dir():
        record_in_package(package, docs, report, same_run=False)
    for d in docs:
        if d.warning:
            typer.echo(f"deliver: warning: {d.distributor}: {d.warning}", err=True)
        typer.echo(str(d.html))
        if d.pdf is not None:
            typer.echo(str(d.pdf))


def _package_dir(report: Report) -> Path | None:
    """The package folder of a run: where its deliverables are, by their package-relative names."""
    for d in report.deliverables:
        path, parts = Path(d.path), Path(d.name).parts
        if path.parts[-len(parts):] == parts and path.parents[len(parts) - 1].is_dir():
            return path.parents[len(parts) - 1]
    return None
