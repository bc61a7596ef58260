"""What a person sees of ``deliver run``/``qc``/``demo``: one live view of the stages, then a summary.

* **Logs go to a file.** Prefect's run logs, ffmpeg's command lines and every third-party warning
  (``warnings.warn`` is routed through :func:`logging.captureWarnings`) are written to the run's log
  file (``OUT/work/deliver.log``; for ``qc`` next to the report). ``--verbose`` also prints them.
  Prefect's console handler is taken off the root logger for the run, so its INFO lines and the
  tracebacks it logs for an exception raised inside a flow reach the file only.
* **No traceback on the terminal.** Any error leaves one line (``deliver: error: ...``) with the log
  file's path; the traceback is in the log (see :func:`flows.cli.clean_errors`).
* **The live view** (Rich, only when stderr is a terminal and not ``--verbose``) is fed by the steps'
  in-process listeners (:data:`tasks.steps.PROGRESS_LISTENERS` for the bars,
  :data:`tasks.steps.STAGE_LISTENERS` for stages without progress). It draws on stderr.
* **The summary** goes to stdout (to stderr with ``--json``, where stdout carries the result object).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from tasks.report import RunResult

__all__ = ["early_setup", "route_logs", "stage_view", "print_summary", "current_log", "forget_log", "RUN_STAGES",
           "QC_STAGES"]

RUN_STAGES = ("probe", "layback", "QC", "gate", "deliverables", "package", "archive")
QC_STAGES = ("probe", "QC")
#: Progress keys of :mod:`tasks.steps` (prefix) -> stage row.
_KEY_STAGES = (("layback-", "layback"), ("qc-analysis", "QC"), ("deliverables", "deliverables"),
               ("archive-progress-", "archive"))

_LOG_FORMAT = "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(threadName)s | %(name)s - %(message)s"
_held_warnings: list[logging.LogRecord] = []
_state: dict[str, Path | None] = {"log": None}
_console_script = False  # set by early_setup: this process is the ``deliver`` command


class _Hold(logging.Handler):
    """Keeps warnings raised before the run's log file is known (e.g. at import time)."""

    def emit(self, record: logging.LogRecord) -> None:
        _held_warnings.append(record)


def early_setup() -> None:
    """At process start: third-party warnings become log records, held until the log file is known."""
    global _console_script
    _console_script = True
    logging.captureWarnings(True)
    held = logging.getLogger("py.warnings")
    held.addHandler(_Hold())
    held.propagate = False


def forget_log() -> None:
    """A new command starts: no log file yet."""
    _state["log"] = None


def current_log() -> Path | None:
    """The log file of the command running (or just failed), if it has one."""
    return _state["log"]


def _is_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) and (
        stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__) or
        type(handler).__name__ == "PrefectConsoleHandler")


@contextlib.contextmanager
def route_logs(log_path: Path, verbose: bool = False) -> Iterator[Path]:
    """Send every log record of this process (Prefect, ffmpeg, warnings) to ``log_path`` for the block.

    Call after Prefect is imported (its logging set-up installs the console handler this takes away).
    An exception leaving the block is logged with its traceback to the file, then re-raised.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, "%H:%M:%S"))
    root = logging.getLogger()
    loggers = [root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    removed = [] if verbose else [(lg, h) for lg in loggers for h in lg.handlers if _is_console(h)]
    for lg, h in removed:
        lg.removeHandler(h)
    # loggers that do not propagate (Prefect's internal one) write to the file themselves
    private = {lg for lg, _ in removed if lg is not root and not lg.propagate}
    for lg in (root, *private):
        lg.addHandler(handler)
    deliver_logger = logging.getLogger("deliver")
    if deliver_logger.getEffectiveLevel() > logging.INFO:
        deliver_logger.setLevel(logging.INFO)  # the ffmpeg command lines
    warned = logging.getLogger("py.warnings")
    held = [h for h in warned.handlers if isinstance(h, _Hold)]
    for h in held:
        warned.removeHandler(h)
    warned.propagate = True
    for record in _held_warnings:
        handler.handle(record)
        if verbose:
            sys.stderr.write(f"{record.getMessage()}\n")
    _held_warnings.clear()
    _state["log"] = log_path
    try:
        yield log_path
    except BaseException as exc:
        logging.getLogger("deliver").error("deliver stopped: %s: %s", type(exc).__name__, exc, exc_info=True)
        raise
    finally:
        if not _console_script:  # in a test or a library caller: put logging back as it was
            for lg in (root, *private):
                lg.removeHandler(handler)
            handler.close()
            for lg, h in removed:
                lg.addHandler(h)
            for h in held:
                warned.addHandler(h)
            warned.propagate = False
        # The console script keeps the file as the one destination until the process exits: lines logged
        # at shutdown (Prefect's log and event workers flushing) never reach the terminal either.


class _StageView:
    """One Rich progress row per stage; stage events and progress reports move them."""

    def __init__(self, stages: tuple[str, ...], console: Console) -> None:
        self.progress = Progress(TextColumn("{task.fields[mark]}"), TextColumn("{task.description:<13}"), BarColumn(),
                                 TaskProgressColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                 console=console, transient=False, disable=not console.is_terminal)
        self.rows: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}
        for name in stages:
            self.rows[name] = self.progress.add_task(name, total=1.0, start=False, mark="·", note="")

    def _row(self, stage: str) -> tuple[TaskID | None, bool]:
        """The stage's row (None for a stage not shown) and whether this call started its clock."""
        row = self.rows.get(stage)
        if row is None or stage in self.started:
            return row, False
        self.started[stage] = time.monotonic()
        self.progress.start_task(row)
        return row, True

    def _start(self, stage: str, note: str = "") -> None:
        row, first = self._row(stage)
        if row is None:
            return
        if first:
            for earlier in list(self.rows)[:list(self.rows).index(stage)]:
                if earlier not in self.started:  # a stage without events (the gate): passed once later ones start
                    self._finish(earlier)
        fields: dict[str, Any] = {"note": note} if note else {}
        self.progress.update(row, mark="▶", **fields)

    def _finish(self, stage: str, note: str | None = None) -> None:
        row, _ = self._row(stage)
        if row is None:
            return
        fields: dict[str, Any] = {"note": note} if note is not None else {}
        self.progress.update(row, completed=self.progress.tasks[row].total or 1.0, mark="✓", **fields)

    def on_stage(self, stage: str, event: str, detail: str) -> None:
        if event == "start":
            self._start(stage, detail)
        else:
            self._finish(stage)

    def on_progress(self, key: str, description: str, done: float, total: float) -> None:
        stage = next((s for prefix, s in _KEY_STAGES if key.startswith(prefix)), None)
        if stage is None or stage not in self.rows:
            return
        self._start(stage)
        row = self.rows[stage]
        fields: dict[str, Any] = {}
        if stage == "archive" and done > 0 and total > 1:  # bytes; the step's final done() is (1, 1): keep the rate
            elapsed = max(1e-3, time.monotonic() - self.started[stage])
            from tasks.report import human_bytes

            fields["note"] = f"{human_bytes(done / elapsed)}/s"
        self.progress.update(row, completed=done, total=total or 1.0, **fields)
        if total and done >= total:
            self.progress.update(row, mark="✓")

    def close(self, stopped_at_gate: bool) -> None:
        for stage, row in self.rows.items():
            if stage in self.started:
                self._finish(stage)
            elif stage == "gate" and stopped_at_gate:
                self.progress.update(row, mark="✗", note="QC failed: delivery stopped")
            else:
                self.progress.update(row, mark="–", note="skipped")


@contextlib.contextmanager
def stage_view(stages: tuple[str, ...], enabled: bool = True) -> Iterator[_StageView]:
    """The live view of ``stages`` on stderr while the block runs (drawn only on a terminal)."""
    from tasks.steps import PROGRESS_LISTENERS, STAGE_LISTENERS

    console = Console(stderr=True) if enabled else Console(file=io.StringIO())
    view = _StageView(stages, console)
    PROGRESS_LISTENERS.append(view.on_progress)
    STAGE_LISTENERS.append(view.on_stage)
    try:
        with view.progress:
            yield view
    finally:
        PROGRESS_LISTENERS.remove(view.on_progress)
        STAGE_LISTENERS.remove(view.on_stage)


def print_summary(result: RunResult, *, to_stderr: bool = False, ui_url: str | None = None,
                  log_path: Path | None = None) -> None:
    """Verdict, findings (only when there are some), deliverables with sizes, archive copies, reports,
    log and the run's page in the Prefect UI."""
    console = Console(stderr=to_stderr, soft_wrap=True)
    report = result.report
    counts = ", ".join(f"{n} {sev}{'s' if n != 1 else ''}" for sev, n in report.counts.items() if n)
    colour = "green" if report.verdict == "pass" else "red"
    head = f"[bold {colour}]QC {report.verdict.upper()}[/] against {report.spec}"
    if report.title:
        head += f" — {report.title}{' ' + report.version if report.version else ''}"
    console.print(head + (f" ({counts})" if counts else ""))
    if report.findings:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("severity", "check", "in", "out", "message"):
            table.add_column(col, overflow="fold")
        for f in report.findings:
            table.add_row(f.severity.value, f.check, f.timecode_in or "", f.timecode_out or "", f.message)
        console.print(table)
    if report.title and report.version is not None and not report.delivered and not report.deliverables:
        console.print("Delivery stopped at the gate: nothing was delivered (--force delivers anyway).")
    if report.forced:
        console.print("[yellow]Delivered despite QC errors (--force, recorded in the report).[/]")
    if report.deliverables:
        from tasks.report import human_bytes

        console.print(f"Deliverables ({len(report.deliverables)}):")
        for d in report.deliverables:
            console.print(f"  {d.name}  {human_bytes(d.size)}", highlight=False)
    if report.archive:
        ok = sum(1 for a in report.archive if a.verified)
        console.print(f"Archive copies verified: {ok}/{len(report.archive)}")
        for a in report.archive:
            console.print(f"  {'verified' if a.verified else 'NOT VERIFIED'}  {a.uri}", highlight=False)
    if report.archive_error:
        console.print(f"[red]Archive: {report.archive_error}[/]")
    console.print(f"Report: {result.report_path}", highlight=False)
    console.print(f"        {result.html_path}", highlight=False)
    if log_path is not None:
        console.print(f"Log:    {log_path}", highlight=False)
    if ui_url and report.flow_run_id:
        console.print(f"Run:    {ui_url}/runs/flow-run/{report.flow_run_id}", highlight=False)
