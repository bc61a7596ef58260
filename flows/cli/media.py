"""``deliver demo``, ``deliver run``, ``deliver qc`` and ``deliver loudness``."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from flows.cli import app, clean_errors
from flows.cli.terminal import QC_STAGES, RUN_STAGES
from specs.errors import EXIT_FAILED, EXIT_OK, BadInputError

if TYPE_CHECKING:
    from flows.deployments import DeliverRequest, QCRequest
    from tasks.report import RunResult

console = Console(stderr=True)

VERBOSE_HELP = "Also print Prefect's and ffmpeg's logs (they always go to the log file)."
__all__ = ["run_cmd", "qc_cmd", "demo_cmd", "loudness_cmd"]


def _preflight(request: DeliverRequest | QCRequest) -> None:
    """Everything we can reject before starting Prefect (exit 2, nothing written): the spec, the paths
    (output folder, report, archive targets), the name fields and every deliverable name, the media,
    the channel counts and the placement of every mix (:mod:`tasks.preflight`, :func:`tasks.layback.plan_layback`)."""
    from flows.deployments import QCRequest
    from specs.loader import load_spec
    from tasks.layback import plan_layback
    from tasks.media.probe import probe
    from tasks.preflight import check_picture_master, preflight_qc, preflight_run

    spec = load_spec(request.spec_ref)
    if isinstance(request, QCRequest):
        preflight_qc(path=request.path, report=request.report)
        check_picture_master(probe(request.path, "master"))
        return
    preflight_run(spec=spec, master=request.master, mixes=[m.path for m in request.mixes], out=request.out,
                  archive=request.archive, title=request.title, version=request.version,
                  recipient=request.recipient or None, date=request.date or None, lang=request.lang)
    info = probe(request.master, "picture master")
    mix_infos = [(m, probe(m.path, "mix")) for m in request.mixes]
    plan_layback(info, mix_infos, spec)


def _flow_run(flow: Any, request: Any, *, stages: tuple[str, ...], log_path: Path,
              verbose: bool, json_of: Callable[[RunResult], str] | None, ui_url: str | None) -> RunResult:
    """Run ``flow`` on ``request``: logs to ``log_path``, the live stage view, then the summary (on stderr
    when ``json_of`` gives stdout the result object)."""
    from flows.cli.terminal import print_summary, route_logs, stage_view
    from flows.deployments import run_flow
    from flows.leases import RunLeases, reap_killed_runs
    from flows.server import skip_absent_tag_limits, without_heartbeat
    from tasks.steps import FFMPEG_TAG

    skip_absent_tag_limits([FFMPEG_TAG])
    api_url = _persistent_api_url()
    reap_killed_runs(api_url)  # an earlier command's run that a SIGKILL left Running
    leases = RunLeases(api_url)
    seen = _RunIds(on_new=leases.hold)
    logging.getLogger("prefect.flow_runs").addFilter(seen)
    with route_logs(log_path, verbose=verbose), stage_view(stages, enabled=not verbose) as view, \
            without_heartbeat():
        try:
            result = run_flow(flow, request)
        except KeyboardInterrupt:
            _interrupted(seen.ids, request)
            raise
        finally:
            logging.getLogger("prefect.flow_runs").removeFilter(seen)
            leases.release_all()
        view.close(stopped_at_gate=not result.report.delivered and result.verdict == "fail")
    if json_of is not None:
        typer.echo(json_of(result))
    print_summary(result, to_stderr=json_of is not None, ui_url=ui_url, log_path=log_path)
    return result


class _RunIds(logging.Filter):
    """Notes the flow run ids of the records Prefect's flow engine logs (the run a Ctrl-C interrupts)."""

    def __init__(self, on_new: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.on_new = on_new

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = getattr(record, "flow_run_id", None)
        if run_id and str(run_id) not in self.ids:
            self.ids.append(str(run_id))
            if self.on_new is not None:
                self.on_new(str(run_id))
        return True


def _persistent_api_url() -> str | None:
    """The API this command's runs are recorded on, when it outlives the command (a set PREFECT_API_URL or
    the local server); None for Prefect's temporary in-process server, whose records die with it."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return str(url) if url else None


def _interrupted(run_ids: list[str], request: Any) -> None:
    """After a Ctrl-C: ffmpeg stopped and partial files removed under the run's output folder, then the run
    (Prefect recorded it Crashed) and its unfinished steps marked Cancelled, saying what was cleaned up."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    from flows.deployments import end_unfinished_steps
    from tasks.media.ffmpeg import cleanup_after_cancel, kill_all_children
    from tasks.media.files import PARTIAL_GLOB, prune_empty_folders

    kill_all_children()
    out = getattr(request, "out", None)
    message = "interrupted from the terminal (Ctrl-C); ffmpeg stopped"
    if out:  # the steps remove their own partial files as they stop; this catches what is left
        cleaned = cleanup_after_cancel(out)
        folders = prune_empty_folders(out)
        left = sorted(str(p.relative_to(out)) for p in Path(out).rglob(PARTIAL_GLOB))
        message += (f", no partial file left under {out}" if not left else f"; partial files left: {', '.join(left)}")
        if cleaned["removed"] or folders:
            message += f" ({len(cleaned['removed'])} partial file(s), {len(folders)} empty folder(s) removed now)"
    log = logging.getLogger("deliver")
    log.info("cancelled: %s", message)
    try:
        with get_client(sync_client=True) as client:
            for run_id in run_ids:
                client.set_flow_run_state(run_id, Cancelled(message=message), force=True)
        for run_id in run_ids:
            end_unfinished_steps(run_id, log)
    except Exception as exc:  # noqa: BLE001 - the terminal already says it; the record is best effort
        log.warning("could not record the cancellation: %s", exc)


def _run_deliver(request: DeliverRequest, *, verbose: bool = False, as_json: bool = False) -> int:
    """The deliver flow on ``request`` (logs in OUT/work/deliver.log); the summary; the exit code."""
    from flows.server import ensure_api

    ui_url = ensure_api()
    from flows.deliver import deliver_flow

    result = _flow_run(deliver_flow, request, stages=RUN_STAGES, log_path=Path(request.out) / "work" / "deliver.log",
                       verbose=verbose, json_of=(lambda r: r.model_dump_json(indent=2)) if as_json else None,
                       ui_url=ui_url)
    return EXIT_OK if result.delivered else EXIT_FAILED


@app.command("run")
@clean_errors
def run_cmd(
    master: str | None = typer.Option(None, "--master", help="Conformed picture master (MOV/MXF)."),
    mix: list[str] | None = typer.Option(None, "--mix", help="Final mix (repeat): an interleaved BWF per layout, mono "
                                         "BWFs named *_L.wav *_R.wav ..., or an explicit channel map "
                                         "L,R,C,LFE,Ls,Rs=file.wav."),
    spec: list[str] | None = typer.Option(None, "--spec", help="Built-in spec name (deliver spec list) or a YAML "
                                          "path; repeat for several distributors (one package each)."),
    title: str | None = typer.Option(None, "--title", help="Title used in deliverable names."),
    out: Path = typer.Option(..., "--out", help="Output folder (deliverables, package, report.json)."),
    plan: Path | None = typer.Option(None, "--plan", help="A title's delivery plan (YAML): master, mixes and every "
                                     "distributor; OUT/<distributor>/ per package."),
    version: str = typer.Option("v1", "--version", help="Version used in deliverable names."),
    archive: list[str] | None = typer.Option(None, "--archive", help="Archive target URI (repeat): /path, file://, s3://."),
    force: bool = typer.Option(False, "--force", help="Deliver despite error findings (recorded in the report)."),
    recipient: str | None = typer.Option(None, "--recipient", help="Screener recipient: burnt into the watermark "
                                            "for anti-piracy tracing; also the {recipient} name field."),
    date: str | None = typer.Option(None, "--date", help="Date for watermarks and {date} names (default: today)."),
    lang: str = typer.Option("und", "--lang", help="Language of this version for {lang} in names "
                             "(BCP 47: en, de, fr-CA)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result object (RunResult) as JSON on stdout."),
) -> None:
    """Lay back, QC, gate, transcode, package and archive one title (--plan or repeated --spec: every
    distributor from one run).

    Exit 0 delivered, 1 QC failed, 2 bad input, 3 infrastructure."""
    from flows.deployments import DeliverRequest, build_request, spec_fields

    specs = list(spec or [])
    if plan is not None or len(specs) > 1:
        if plan is not None and (specs or master or mix or title):
            raise BadInputError("--plan FILE holds the master, mixes, title and specs: give it alone (with --out)")
        raise typer.Exit(_run_plan(plan, specs, master=master, mixes=list(mix or []), title=title, version=version,
                                   out=out, archive=list(archive or []), force=force, recipient=recipient, date=date,
                                   lang=lang, verbose=verbose, as_json=as_json))
    missing = [o for o, v in (("--master", master), ("--mix", mix), ("--spec", specs), ("--title", title)) if not v]
    if missing:
        raise BadInputError(f"missing {', '.join(missing)} (or give --plan FILE)")
    request = build_request(DeliverRequest, master=master, mixes=mix, title=title, version=version, out=str(out),
                            archive=list(archive or []), force=force, recipient=recipient, date=date, lang=lang,
                            **spec_fields(specs[0]))
    if not request.archive:
        from tasks.archive.targets import load_storage_config

        # the default targets of configs/storage.yaml
        request = request.model_copy(update={"archive": list(load_storage_config().default_targets)})
    _preflight(request)
    raise typer.Exit(_run_deliver(_absolute(request), verbose=verbose, as_json=as_json))


def _run_plan(plan: Path | None, specs: list[str], *, master: str | None, mixes: list[str], title: str | None,
              version: str, out: Path, archive: list[str], force: bool, recipient: str | None, date: str | None,
              lang: str, verbose: bool, as_json: bool) -> int:
    """The deliver-plan flow: a plan file, or the short form (several --spec with this run's master and mixes)."""
    from flows.deployments import PlanRequest, build_request
    from flows.server import ensure_api
    from specs.plan import load_plan

    if plan is not None:
        load_plan(plan)  # every problem as file:line before Prefect starts (exit 2)
        request = build_request(PlanRequest, plan=str(plan.resolve()), out=str(out.resolve()), archive=archive,
                                force=force, date=date)
    else:
        mixes = [m if "=" in m else str(Path(m).resolve()) for m in mixes]
        request = build_request(PlanRequest, specs=specs, master=str(Path(master).resolve()) if master else "",
                                mixes=mixes, title=title, version=version, out=str(out.resolve()), archive=archive,
                                force=force, recipient=recipient, date=date, lang=lang if lang != "und" else "")
        request.resolved_plan()  # the specs load
    ui_url = ensure_api()
    from flows.plan import plan_flow

    result = _flow_run(plan_flow, request, stages=RUN_STAGES, log_path=Path(request.out) / "work" / "deliver.log",
                       verbose=verbose, json_of=(lambda r: r.model_dump_json(indent=2)) if as_json else None,
                       ui_url=ui_url)
    return EXIT_OK if result.delivered else EXIT_FAILED


def _absolute(request: DeliverRequest) -> DeliverRequest:
    """The request with its paths made absolute (the flow may run in another working directory)."""
    mixes = [m.model_copy(update={"path": str(Path(m.path).resolve())}) for m in request.mixes]
    return request.model_copy(update={"master": str(Path(request.master).resolve()), "mixes": mixes,
                                      "out": str(Path(request.out).resolve())})


@app.command("qc")
@clean_errors
def qc_cmd(
    path: str = typer.Argument(..., help="Master to check."),
    spec: str = typer.Option(..., "--spec", help="Built-in spec name or YAML path."),
    json_out: str | None = typer.Option(None, "--json", help="Write report.json here (default: ./<name>.qc.json); "
                                        "'-' prints the report on stdout for scripts (and writes the default file)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """QC a master against a spec. Exit 0 pass, 1 fail, 2 bad input, 3 infrastructure.

    The log (Prefect, ffmpeg) goes next to the report: NAME.qc.log beside NAME.qc.json."""
    from flows.deployments import QCRequest, build_request, spec_fields
    from tasks.preflight import resolved

    to_stdout = json_out == "-"
    report = Path(json_out) if json_out and not to_stdout else Path(f"{Path(path).name}.qc.json")
    request = build_request(QCRequest, path=str(resolved(path, "master")), report=str(resolved(report, "--json")),
                            **spec_fields(spec))
    _preflight(request)
    from flows.server import ensure_api

    ui_url = ensure_api()
    from flows.qc import qc_flow

    result = _flow_run(qc_flow, request, stages=QC_STAGES, log_path=Path(request.report).with_suffix(".log"),
                       verbose=verbose, json_of=(lambda r: r.report.model_dump_json(indent=2)) if to_stdout else None,
                       ui_url=ui_url)
    raise typer.Exit(EXIT_OK if result.verdict == "pass" else EXIT_FAILED)


@app.command("demo")
@clean_errors
def demo_cmd(
    out: Path | None = typer.Option(None, "--out", help="Folder for the demo (default: ./deliver-demo/run-<time>)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """Make a sample master + mix and run the whole deliver flow on them; print the report path."""
    from tasks.media.synth import make_sample_set

    base = out or Path("deliver-demo") / dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if base.exists() and any(base.iterdir()):
        raise BadInputError(f"{base} is not empty; the demo never overwrites. Choose another --out.")
    console.print(f"[bold]deliver demo[/bold]: generating a sample master and mix in {base / 'media'}")
    sample = make_sample_set(base / "media", layout="5.1", stereo=True)
    from flows.deployments import DeliverRequest
    from tasks.layback import MixInput

    request = DeliverRequest(spec="demo", master=str(sample.master.resolve()),
                             mixes=[MixInput(path=str(p.resolve())) for p in sample.mixes.values()], title="DEMO",
                             out=str((base / "delivery").resolve()), archive=[str((base / "vault").resolve())])
    raise typer.Exit(_run_deliver(request, verbose=verbose))


@app.command("loudness")
@clean_errors
def loudness_cmd(
    path: str = typer.Argument(..., help="Audio file (WAV/BWF/FLAC) or a container with audio tracks."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (the contract in the README)."),
    frame_rate: str | None = typer.Option(
        None, "--frame-rate", help="Rate of the speech segments' timecodes (default: the video's, else 24)."),
) -> None:
    """Integrated loudness, LRA, true peak, sample peak, max momentary/short-term, and dialogue-gated loudness
    (an open VAD-gated estimate, not Dolby Dialogue Intelligence) per track. Exit 0, or 2 on bad input."""
    from specs.timecode import Timecode, parse_frame_rate
    from tasks.audio.loudness import measure_media
    from tasks.audio.reader import check_measurable
    from tasks.media.probe import probe

    info = probe(path, "audio file")
    if not info.audio:
        raise BadInputError(f"{path} has no audio track to measure")
    check_measurable(path, min((a.duration_s for a in info.audio if a.duration_s is not None),
                               default=info.duration_s))
    video = info.primary_video
    rate = parse_frame_rate(frame_rate) if frame_rate else (video.frame_rate if video else parse_frame_rate(24))
    start = (Timecode.parse(info.start_timecode, rate) if info.start_timecode and video and not frame_rate
             else Timecode(0, rate))

    def timecode(seconds: float) -> str:  # the frame holding that instant
        return str(start + int(Fraction(seconds) * rate))

    results = measure_media(path, dialogue=True)
    docs = [r.contract_dict(timecode) for r in results]
    if as_json:
        single = len(docs) == 1 and not info.video
        typer.echo(json.dumps(docs[0] if single else {"tracks": docs}, indent=2))
        return
    table = Table(title=f"Loudness of {Path(path).name}",
                  caption="dialogue: open VAD-gated estimate, not Dolby Dialogue Intelligence")
    for col in ("track", "integrated LUFS", "LRA LU", "true peak dBTP", "sample peak dBFS", "max M LUFS", "max S LUFS",
                "dialogue LKFS", "speech %", "LDR LU"):
        table.add_column(col, justify="right")
    for r, d in zip(results, docs, strict=True):
        table.add_row(str(r.track_index if r.track_index is not None else 0),
                      *[_fmt(d[k]) for k in ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp",
                                             "sample_peak_dbfs", "max_momentary_lufs", "max_short_term_lufs",
                                             "dialogue_lufs", "speech_percent", "loudness_to_dialogue_lu")])
    Console().print(table)


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.1f}"


