"""``deliver demo``, ``deliver run``, ``deliver qc`` and ``deliver loudness``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from flows.cli import app, clean_errors
from specs.errors import EXIT_FAILED, EXIT_OK, BadInputError

if TYPE_CHECKING:
    from specs.model import Spec

console = Console(stderr=True)

__all__ = ["run_cmd", "qc_cmd", "demo_cmd", "loudness_cmd"]


def _preflight(master: str, mixes: list[str], spec_name: str) -> Spec:
    """Everything we can reject before starting Prefect: spec, files, media, channel counts (exit 2)."""
    from specs.loader import load_spec
    from tasks.layback import parse_mix_arg, plan_layback
    from tasks.media.probe import probe

    spec = load_spec(spec_name)
    info = probe(master, "picture master")
    parsed = [parse_mix_arg(m) for m in mixes]
    mix_infos = [(p, probe(p.path, "mix")) for p in parsed]
    if mixes:
        plan_layback(info, mix_infos, spec)
    return spec


def _absolute_mix(arg: str) -> str:
    """``--mix`` with its path made absolute, keeping an explicit channel map (``L,R=...``)."""
    from tasks.layback import parse_mix_arg

    parsed = parse_mix_arg(arg)
    path = str(Path(parsed.path).resolve())
    return f"{','.join(parsed.labels)}={path}" if parsed.labels else path


@contextlib.contextmanager
def _progress_bars() -> Iterator[None]:
    """A Rich bar per long step (layback, QC, deliverables, archive), fed by the steps' progress reports."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from tasks.steps import PROGRESS_LISTENERS

    bars = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True, disable=not Console(stderr=True).is_terminal)
    ids: dict[str, Any] = {}

    def listener(key: str, description: str, done: float, total: float) -> None:
        if key not in ids:
            ids[key] = bars.add_task(description, total=total or 1.0)
        bars.update(ids[key], completed=done, total=total or 1.0)

    PROGRESS_LISTENERS.append(listener)
    try:
        with bars:
            yield
    finally:
        PROGRESS_LISTENERS.remove(listener)


def _print_findings(report_path: str) -> dict[str, Any]:
    data = json.loads(Path(report_path).read_text())
    table = Table(title=f"{data.get('title') or ''} — {data['verdict'].upper()} against {data['spec']}")
    for col in ("severity", "check", "in", "out", "message"):
        table.add_column(col)
    for f in data["findings"]:
        table.add_row(f["severity"], f["check"], f.get("timecode_in") or "", f.get("timecode_out") or "", f["message"])
    console.print(table)
    return data


def _run_deliver(master: str, mixes: list[str], spec: str, title: str, out: Path, version: str,
                 archive: list[str], force: bool, recipient: str | None = None, date: str | None = None,
                 lang: str = "und") -> int:
    from flows.deliver import deliver_flow

    with _progress_bars():
        result = deliver_flow(master=str(Path(master).resolve()), mixes=[_absolute_mix(m) for m in mixes], spec=spec,
                              title=title, out=str(out.resolve()), version=version, archive=archive, force=force,
                              recipient=recipient, date=date, lang=lang)
    _print_findings(result["report"])
    typer.echo(result["report"])
    if result["delivered"]:
        return EXIT_OK
    return EXIT_FAILED


@app.command("run")
@clean_errors
def run_cmd(
    master: str = typer.Option(..., "--master", help="Conformed picture master (MOV/MXF)."),
    mix: list[str] = typer.Option(..., "--mix", help="Final mix (repeat): an interleaved BWF per layout, mono BWFs "
                                  "named *_L.wav *_R.wav ..., or an explicit channel map L,R,C,LFE,Ls,Rs=file.wav."),
    spec: str = typer.Option(..., "--spec", help="Built-in spec name (deliver spec list) or a YAML path."),
    title: str = typer.Option(..., "--title", help="Title used in deliverable names."),
    out: Path = typer.Option(..., "--out", help="Output folder (deliverables, package, report.json)."),
    version: str = typer.Option("v1", "--version", help="Version used in deliverable names."),
    archive: list[str] | None = typer.Option(None, "--archive", help="Archive target URI (repeat): /path, file://, s3://."),
    force: bool = typer.Option(False, "--force", help="Deliver despite error findings (recorded in the report)."),
    recipient: str | None = typer.Option(None, "--recipient", help="Screener recipient: burnt into the watermark "
                                            "for anti-piracy tracing; also the {recipient} name field."),
    date: str | None = typer.Option(None, "--date", help="Date for watermarks and {date} names (default: today)."),
    lang: str = typer.Option("und", "--lang",
                             help="Language of this version for {lang} in names (BCP 47: en, de, fr-CA)."),
) -> None:
    """Lay back, QC, gate, transcode, package and archive one title. Exit 0 delivered, 1 QC failed, 2 bad input,
    3 infrastructure."""
    from tasks.transcode import language_tag

    _check_title(title, version)
    language_tag(lang)
    _preflight(master, mix, spec)
    if not archive:
        from tasks.archive.targets import load_storage_config

        archive = list(load_storage_config().default_targets)  # configs/storage.yaml
    raise typer.Exit(_run_deliver(master, mix, spec, title, out, version, archive, force, recipient, date, lang))


def _check_title(title: str, version: str) -> None:
    for label, value in (("title", title), ("version", version)):
        if not value or any(c in value for c in "/\\\0") or value in (".", ".."):
            raise BadInputError(f"--{label} {value!r} cannot be used in file names; use letters, digits, '-', '_'")


@app.command("qc")
@clean_errors
def qc_cmd(
    path: str = typer.Argument(..., help="Master to check."),
    spec: str = typer.Option(..., "--spec", help="Built-in spec name or YAML path."),
    json_out: Path | None = typer.Option(None, "--json", help="Write report.json here (default: ./<name>.qc.json)."),
) -> None:
    """QC a master against a spec. Exit 0 pass, 1 fail, 2 bad input."""
    _preflight(path, [], spec)
    from flows.qc import qc_flow

    report = json_out or Path(f"{Path(path).name}.qc.json")
    result = qc_flow(path=str(Path(path).resolve()), spec=spec, report=str(report.resolve()))
    _print_findings(result["report"])
    typer.echo(result["report"])
    raise typer.Exit(EXIT_OK if result["verdict"] == "pass" else EXIT_FAILED)


@app.command("demo")
@clean_errors
def demo_cmd(
    out: Path | None = typer.Option(None, "--out", help="Folder for the demo (default: ./deliver-demo/run-<time>)."),
) -> None:
    """Make a sample master + mix and run the whole deliver flow on them; print the report path."""
    from tasks.media.synth import make_sample_set

    base = out or Path("deliver-demo") / dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if base.exists() and any(base.iterdir()):
        raise BadInputError(f"{base} is not empty; the demo never overwrites. Choose another --out.")
    console.print(f"[bold]deliver demo[/bold]: generating a sample master and mix in {base / 'media'}")
    sample = make_sample_set(base / "media", layout="5.1", stereo=True)
    mixes = [str(p) for p in sample.mixes.values()]
    code = _run_deliver(str(sample.master), mixes, "demo", "DEMO", base / "delivery", "v1",
                        [str((base / "vault").resolve())], False)
    raise typer.Exit(code)


@app.command("loudness")
@clean_errors
def loudness_cmd(
    path: str = typer.Argument(..., help="Audio file (WAV/BWF/FLAC) or a container with audio tracks."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (fields in the README)."),
) -> None:
    """Integrated loudness, LRA, true peak, sample peak, max momentary/short-term per track. Exit 0, or 2 on bad
    input."""
    from tasks.audio.loudness import measure_media
    from tasks.media.probe import probe

    info = probe(path, "audio file")
    if not info.audio:
        raise BadInputError(f"{path} has no audio track to measure")
    results = measure_media(path)
    docs = [r.contract_dict() for r in results]
    if as_json:
        single = len(docs) == 1 and not info.video
        typer.echo(json.dumps(docs[0] if single else {"tracks": docs}, indent=2))
        return
    table = Table(title=f"Loudness of {Path(path).name}")
    for col in ("track", "integrated LUFS", "LRA LU", "true peak dBTP", "sample peak dBFS", "max M LUFS", "max S LUFS"):
        table.add_column(col, justify="right")
    for r, d in zip(results, docs, strict=True):
        table.add_row(str(r.track_index if r.track_index is not None else 0),
                      *[_fmt(d[k]) for k in ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp",
                                             "sample_peak_dbfs", "max_momentary_lufs", "max_short_term_lufs")])
    Console().print(table)


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.1f}"


