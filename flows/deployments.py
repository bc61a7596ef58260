"""The typed requests every flow takes, the deployments built from the flows, and ``deliver serve``.

One request per flow (:class:`DeliverRequest`, :class:`QCRequest`, :class:`ArchiveRequest`,
:class:`VerifyRequest`, :class:`NightlyRequest`), validated once, built alike by the ``deliver``
command line and by the Prefect UI: Prefect builds each deployment's parameter form from the flow's
signature, so a pydantic model becomes a nested form with titles and descriptions. The spec is one
required field: a drop-down of the built-in specs (``specs/<name>.yaml``) or a YAML path (the form's
two choices of one JSON-schema ``anyOf``); optional fields are plain inputs (their ``null`` branch is
dropped from the schema, so the form shows no "None" toggle).

Each deployment's entry point IS its flow (``flows/deliver.py:deliver_flow`` …): no wrapper
re-spells the parameters. Flows use a bounded task runner and ffmpeg-heavy tasks carry the
``ffmpeg`` tag, whose concurrency limit ``deliver serve`` creates (default: CPU cores) if missing.

Cancelling a run: the flow body's ``finally`` kills every ffmpeg process group it started (threads
of a task runner are not interrupted), outputs are written under ``*.partial`` names and removed on
the way out, and the flows' ``on_cancellation`` hook (:func:`on_cancel`, run by the runner or worker
after the flow process is gone) removes any ``*.partial`` left under the run's output folder and
kills any ffmpeg still writing there.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from specs.errors import EXIT_FAILED, BadInputError, DeliverError
from specs.loader import builtin_names
from tasks.layback import MixInput, parse_mix_arg
from tasks.media.ffmpeg import cleanup_after_cancel

__all__ = ["DeliverRequest", "PlanRequest", "QCRequest", "ArchiveRequest", "VerifyRequest", "NightlyRequest",
           "build_request", "spec_fields", "deployments", "serve_all", "ensure_ffmpeg_limit",
           "on_cancel", "cores", "threads", "OPS_ENV_DEFAULTS", "FFMPEG_TAG", "run_flow", "bind_run_logging",
           "QCFailed"]

FFMPEG_TAG = "ffmpeg"

# --------------------------------------------------------------------------- the requests

def _none_is_empty(value: Any) -> Any:
    """Optional text fields are plain strings, empty when not given: the UI form shows a plain input
    (no "X | None" type toggle reading 'Property is type "None"'), and the server's parameter schema
    check accepts the form's empty value. ``None`` (the CLI's "not given") is read as empty."""
    return "" if value is None else value


def _spec_schema(prop: dict[str, Any]) -> None:
    """The spec field in the form: one required choice between a built-in spec (drop-down) and a path."""
    description = prop.get("description", "")
    prop.clear()
    prop.update({"title": "Spec", "description": description, "anyOf": [
        {"title": "Built-in spec", "type": "string", "enum": builtin_names()},
        {"title": "Spec file (YAML path)", "type": "string", "minLength": 1}]})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WithSpec(_Request):
    spec: str = Field(..., min_length=1, json_schema_extra=_spec_schema,
                      description="Built-in distributor spec (deliver spec list), or the path of a spec YAML file "
                                  "on storage the workers share.")

    @property
    def spec_ref(self) -> str:
        """The value ``load_spec`` takes: a built-in name or a path."""
        return self.spec


def spec_fields(ref: str) -> dict[str, str]:
    """``--spec S`` as request fields (one field: a built-in name or a path; ``load_spec`` says what is
    wrong with it)."""
    return {"spec": ref}


#: Title and version become file and folder names on every filesystem a delivery meets (POSIX portable
#: filename characters, IEEE Std 1003.1 §3.282, plus letters of any script): no spaces, quotes, shell
#: metacharacters or path separators; '.' inside only (``v1.2``), never first.
_NAME_PART = re.compile(r"^[^\W_][\w.-]*$")


def _file_name_part(label: str, value: str) -> str:
    if not _NAME_PART.match(value or "") or ".." in value:
        raise ValueError(f"--{label} {value!r} cannot be used in file names; use letters, digits, '-' and '_' "
                         "('.' inside, as in v1.2), starting with a letter or digit")
    return value


def _mixes_accept_text(schema: dict[str, Any]) -> None:
    """The form (and API clients) may give a mix as an object or as ``deliver run --mix`` text."""
    mixes = schema.get("properties", {}).get("mixes")
    if mixes and "items" in mixes:
        mixes["items"] = {"anyOf": [mixes["items"], {"type": "string", "title": "--mix text",
                                                     "description": "path, or L,R,C,LFE,Ls,Rs=path"}]}


class DeliverRequest(_WithSpec):
    """One title to lay back, QC, transcode, package and archive (``deliver run`` or "Run" in the UI)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_mixes_accept_text)

    master: str = Field(..., description="Conformed picture master (MOV/MXF), a path on shared storage.")
    mixes: list[MixInput] = Field(..., min_length=1, description="Final mix, one entry per file: an interleaved "
                                  "BWF per layout, mono BWFs named *_L.wav *_R.wav …, or an explicit channel map "
                                  "(labels in file order). Text in the deliver run --mix form is accepted too.")
    title: str = Field(..., description="Title used in deliverable names (deliver run --title).")
    version: str = Field("v1", description="Version used in deliverable names (deliver run --version).")
    out: str = Field(..., description="Output folder on shared storage: deliverables, package, report.json, "
                     "report.html (deliver run --out).")
    archive: list[str] = Field(default_factory=list, description="Archive targets, each verified: names from "
                               "configs/storage.yaml or URIs (/path, file://, s3://). Empty: no archive copy "
                               "(deliver run --archive, repeatable).")
    force: bool = Field(False, description="Deliver despite error findings; recorded in the report "
                        "(deliver run --force).")
    recipient: str = Field("", description="Screener recipient: burnt into the watermark for "
                                     "anti-piracy tracing; also the {recipient} name field. Empty: none "
                                     "(deliver run --recipient).")
    date: str = Field("", description="Date (ISO 8601, YYYY-MM-DD) for watermarks and {date} names. "
                             "Empty: today (deliver run --date).")
    lang: str = Field("und", description="Language of this version for {lang} in names, BCP 47 (en, de, fr-CA); "
                      "und: undetermined (deliver run --lang).")

    _optional_text = field_validator("recipient", "date", mode="before")(_none_is_empty)

    @field_validator("mixes", mode="before")
    @classmethod
    def _parse_mix_text(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        try:
            return [parse_mix_arg(v) if isinstance(v, str) else v for v in value]
        except BadInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _file_name_part("title", value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _file_name_part("version", value)

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str) -> str:
        from tasks.deliverables.naming import language_tag

        try:
            return language_tag(value)
        except BadInputError as exc:
            raise ValueError(str(exc)) from None


class PlanRequest(_Request):
    """Every distributor of a title from one run (``deliver run --plan FILE``, or repeated ``--spec``; "Run" of
    the deliver-plan deployment): a plan file, or the short form's fields (specs, master, mixes, title)."""

    plan: str = Field("", description="Delivery plan YAML (title, master, mixes, distributors, archive), a path "
                      "on shared storage. Empty: the fields below make the plan.")
    out: str = Field(..., description="Output folder: OUT/<distributor>/ per package, OUT/work shared, report.json.")
    specs: list[str] = Field(default_factory=list, description="Without a plan file: the distributors' specs "
                             "(built-in names or paths), one package each (deliver run --spec, repeated).")
    master: str = Field("", description="Without a plan file: the conformed picture master.")
    mixes: list[str] = Field(default_factory=list, description="Without a plan file: the mixes, as deliver run "
                             "--mix takes them.")
    title: str = Field("", description="Without a plan file: the title.")
    version: str = Field("v1", description="Without a plan file: the version.")
    archive: list[str] = Field(default_factory=list, description="Archive targets (added to the plan's).")
    force: bool = Field(False, description="Deliver despite error findings; recorded per distributor.")
    recipient: str = Field("", description="Without a plan file: screener recipient for every distributor.")
    date: str = Field("", description="Date (YYYY-MM-DD) for watermarks and {date} names. Empty: today.")
    lang: str = Field("", description="Without a plan file: language (BCP 47) for every distributor.")

    _optional_text = field_validator("recipient", "date", "lang", "plan", "master", "title", mode="before")(
        _none_is_empty)

    @model_validator(mode="after")
    def _plan_or_fields(self) -> PlanRequest:
        if self.plan:
            return self
        missing = [f"--{k}" for k, v in (("spec", self.specs), ("master", self.master), ("mix", self.mixes),
                                         ("title", self.title)) if not v]
        if missing:
            raise ValueError(f"--plan FILE, or {', '.join(missing)} (several --spec make one package each)")
        _file_name_part("title", self.title)
        _file_name_part("version", self.version)
        return self

    def resolved_plan(self) -> Any:
        """The :class:`specs.plan.Plan` this request means (the file's, or the short form's)."""
        from specs.plan import load_plan, plan_from_fields

        if self.plan:
            plan = load_plan(self.plan)
            return plan.model_copy(update={"archive": [*plan.archive, *self.archive]})
        return plan_from_fields(title=self.title, version=self.version, master=self.master, mixes=self.mixes,
                                specs=self.specs, archive=self.archive, recipient=self.recipient or None,
                                lang=self.lang or None)


class QCRequest(_WithSpec):
    """QC of one master; only report.json (and the HTML report beside it) is written."""

    path: str = Field(..., description="Master to check.")
    report: str = Field(..., description="Where to write report.json.")


class ArchiveRequest(_Request):
    """A delivery package to copy to every target, verified."""

    package_dir: str = Field(..., description="Delivery package folder (with ascmhl/).")
    targets: list[str] = Field(..., min_length=1, description="Target names or URIs.")
    title: str = Field(..., description="Title recorded in the archive catalog.")


class VerifyRequest(_Request):
    """Fixity of an archived copy, or of every package under a target."""

    uri: str = Field(..., description="A copy or a target: /path, file:///path or s3://bucket/prefix.")
    raise_on_mismatch: bool = Field(True, description="Fail the run on a mismatch.")


class NightlyRequest(_Request):
    """One night of QC of the watch folders and archive fixity."""

    config: str = Field("", description="Nightly config file (empty: configs/nightly.yaml or "
                                  "$DELIVER_NIGHTLY_CONFIG).")
    night: str = Field("", description="Night to run as (YYYY-MM-DD, in the configured timezone); "
                                 "default: tonight. Picks the fixity share.")
    force_all: bool = Field(False, description="QC every master, changed or not.")

    _optional_text = field_validator("config", "night", mode="before")(_none_is_empty)


def build_request(model: type[_Request], **fields: Any) -> Any:
    """``model(**fields)``, its validation errors as one :class:`BadInputError` line (the CLI's exit 2)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            where = ".".join(str(p) for p in err["loc"])
            problems.append(msg if msg.startswith("--") or not where else f"{where}: {msg}")
        raise BadInputError("; ".join(problems)) from None


# --------------------------------------------------------------------------- cancellation

def cores() -> int:
    """CPU cores of this machine: the bound of every flow's thread pool and the default ffmpeg limit."""
    return max(1, os.cpu_count() or 1)


def threads(max_workers: int) -> TaskRunner[Any]:
    """A bounded ThreadPoolTaskRunner, typed as ``@flow(task_runner=...)`` accepts it (Prefect types that
    parameter ``TaskRunner[PrefectFuture[Any]]``, invariant; the thread pool's future type is a subclass)."""
    return ThreadPoolTaskRunner(max_workers=max_workers)


def on_cancel(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_cancellation`` hook of the deliver and qc flows: clean the run's output folder (ffmpeg still
    writing there killed, partial files removed, folders left empty removed) and say what was cleaned up,
    in the run's logs and a markdown artifact, so that the cancelled run reads as such."""
    from prefect.logging.loggers import flow_run_logger

    from tasks.media.files import prune_empty_folders
    from tasks.report import artifact_key, cancelled_markdown

    req = (flow_run.parameters or {}).get("request") or {}
    if not isinstance(req, dict):
        req = req.model_dump()
    out = req.get("out") or (str(Path(req["report"]).parent) if req.get("report") else None)
    if not out:
        return
    cleaned = cleanup_after_cancel(out)
    cleaned["folders"] = prune_empty_folders(out)
    title = req.get("title") or Path(req.get("path") or "run").name
    version = req.get("version") or (DeliverRequest.model_fields["version"].default if req.get("title") else None)
    markdown = cancelled_markdown(f"{title} {version or ''}".strip(), out, cleaned)
    log = flow_run_logger(flow_run, flow)
    log.info("cancelled: %s", markdown.splitlines()[2])
    end_unfinished_steps(flow_run.id, log)
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactCreate

        with get_client(sync_client=True) as client:
            client.create_artifact(artifact=ArtifactCreate(
                key=artifact_key("cancelled", title, version), type="markdown", data=markdown,
                description=f"Cancelled: what was cleaned up under {out}", flow_run_id=flow_run.id))
    except Exception as exc:  # noqa: BLE001 - the log line says it too
        log.warning("could not publish the clean-up artifact: %s", exc)


def end_unfinished_steps(flow_run_id: Any, log: Any, end: Any = None,
                         message: str = "cancelled with its flow run") -> None:
    """End a stopped run's unfinished steps in the state ``end`` (a Prefect state class; Cancelled by
    default): the step a SIGTERM (the runner's) or a Ctrl-C interrupted was reported Crashed by the stopped
    process (Prefect's task engine treats any termination signal or interrupt as a crash), and a step still
    Running or Pending never ran to its end either (a killed process reports nothing)."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.states import Cancelled

        state = end or Cancelled
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            for tr in runs:
                if tr.state is not None and (tr.state.is_crashed() or not tr.state.is_final()):
                    if tr.state.is_crashed() and state is not Cancelled:
                        continue
                    client.set_task_run_state(tr.id, state(message=message), force=True)
                    log.info("step %s %s", tr.name, "cancelled with the run" if state is Cancelled else message)
    except Exception as exc:  # noqa: BLE001 - the clean-up is done; the step states are cosmetic
        log.warning("could not end the run's unfinished steps: %s", exc)


def request_field(name: str, default: str) -> str:
    """A field of the running flow's ``request`` parameter (a dict or the model), for run names."""
    from prefect.runtime import flow_run

    req = (flow_run.parameters or {}).get("request")
    value = getattr(req, name, None) if not isinstance(req, dict) else req.get(name)
    return str(value) if value else default


# --------------------------------------------------------------------------- serving

#: Seconds between a served/worker flow run's heartbeats, and the silent heartbeats after which it is lost.
HEARTBEAT_S = 30
UNRESPONSIVE_AFTER_HEARTBEATS = 3
UNRESPONSIVE_AUTOMATION = "deliver-crash-unresponsive-runs"

#: Settings every served/worker flow run should have: ffmpeg command lines reach the Prefect logs
#: (``deliver.ffmpeg`` logger), no telemetry, a bounded default thread pool.
OPS_ENV_DEFAULTS = {
    "PREFECT_LOGGING_EXTRA_LOGGERS": "deliver",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS": str(cores()),
    # a run's process says it is alive every 30 s (Prefect's minimum): a lost run is marked Crashed by the
    # automation of ensure_unresponsive_run_automation, not left Running
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),
}


def forward_deliver_logs() -> None:
    """Let ``deliver.*`` INFO records (ffmpeg command lines, warnings) reach the run's Prefect logs.

    ``PREFECT_LOGGING_EXTRA_LOGGERS=deliver`` attaches Prefect's API handler to the ``deliver``
    logger but leaves its level at NOTSET (root: WARNING), which would drop the ffmpeg command lines.
    """
    lg = logging.getLogger("deliver")
    if lg.level == logging.NOTSET or lg.level > logging.INFO:
        lg.setLevel(logging.INFO)


forward_deliver_logs()  # every flow module imports this one: served runs and worker runs alike


#: The flow run this process is running (a served or worker run is one process per flow run): the run
#: that log records from threads started without Prefect's run context belong to.
_PROCESS_RUN_ID: str | None = None


class _ThreadRecordsToRun(logging.Filter):
    """Attribute a record logged outside any run context (a worker thread of the QC analysis or the
    audio reader: :class:`concurrent.futures.ThreadPoolExecutor` does not copy context variables) to
    this process's flow run, so that Prefect's API handler sends it instead of dropping it with
    "attempted to send logs to the API without a flow run id"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _PROCESS_RUN_ID and not getattr(record, "flow_run_id", None):
            from prefect.context import FlowRunContext, TaskRunContext

            if FlowRunContext.get() is None and TaskRunContext.get() is None:
                record.flow_run_id = _PROCESS_RUN_ID
        return True


class QCFailed(DeliverError):
    """The data of a run's Failed "QC failed" state: error findings stopped the delivery (exit 1). Carries
    the run's :class:`~tasks.report.RunResult` (the report was written); Prefect resolves a Failed state's
    data into an exception, hence an exception rather than the bare result."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (QCFailed, (str(self), self.result))


class _QuietOwnFailures(logging.Filter):
    """Drop the flow engine's generic "Engine execution exited with unexpected exception" record when the
    exception is ours: the run's final state (Bad input, QC failed) already says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, DeliverError) and str(record.msg).startswith("Engine execution exited"))


#: How Prefect's engines describe a Ctrl-C (KeyboardInterrupt) in their crash lines.
_INTERRUPT = "aborted by an interrupt signal"


def _cancel_requested() -> bool:
    """Whether the runner has told this process that its run is being cancelled (Prefect's control
    channel, acknowledged before the runner's SIGTERM)."""
    try:
        from prefect._internal.control_listener import get_intent
    except ImportError:  # another Prefect release: the engine's own lines stay
        return False
    return get_intent() == "cancel"


class _CancelReadsAsCancelled(logging.Filter):
    """When the run is cancelled, the engines' lines say so. The runner stops this process with SIGTERM; Prefect
    reports the step it interrupted as a crash ("Crash detected! Execution was cancelled by the runtime
    environment", "Finished in state Crashed(…)") and the flow as "Finished in state Running()" (the runner,
    not this process, then sets Cancelled); a Ctrl-C in the terminal reads as a crash too ("aborted by an
    interrupt signal"). Rewritten as what happened; the clean-up is logged by :func:`on_cancel` or, after
    a Ctrl-C, by the command line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if not (text.startswith(("Finished in state", "Crash detected!"))
                and (_cancel_requested() or _INTERRUPT in text)):
            return True
        step, crash = record.name.endswith("task_runs"), text.startswith("Crash detected!")
        record.args = None
        if step:
            record.msg = "Cancelled: the run was cancelled while this step ran" if crash else \
                "Finished: cancelled with its run"
        else:
            record.msg = "Cancelled: the run was cancelled; stopping its steps" if crash else \
                "Finished: cancelled; ffmpeg and partial files are cleaned up next"
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        return True


class _OneLineErrors(logging.Formatter):
    """The run's logs (Prefect UI) show our own errors (:class:`~specs.errors.DeliverError`: bad input,
    infrastructure, a mismatch; each message says what and how to fix) as their message, without the
    traceback; anything else keeps its traceback. Other handlers (a log file) are not affected."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DeliverError):
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


def bind_run_logging(flow_run_id: str | None) -> None:
    """Called first in every flow: records from any thread of this process reach the run's logs (ffmpeg
    command lines of the QC analysis included), and our errors read as one line there."""
    global _PROCESS_RUN_ID
    from prefect.logging.handlers import APILogHandler

    forward_deliver_logs()
    _PROCESS_RUN_ID = flow_run_id or _PROCESS_RUN_ID
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _CancelReadsAsCancelled) for f in logger.filters):
            logger.addFilter(_CancelReadsAsCancelled())
    for name in ("deliver", "prefect.flow_runs", "prefect.task_runs", "prefect.extra"):
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler, APILogHandler):
                continue
            if not any(isinstance(f, _ThreadRecordsToRun) for f in handler.filters):
                handler.addFilter(_ThreadRecordsToRun())
                handler.addFilter(_QuietOwnFailures())
            if not isinstance(handler.formatter, _OneLineErrors):
                handler.setFormatter(_OneLineErrors())


def run_flow(flow: Any, request: Any) -> Any:
    """Run ``flow(request)`` in this process and return its typed result whatever the verdict.

    A flow whose QC failed ends in a Failed state carrying its :class:`~tasks.report.RunResult` (the UI
    shows it failed; the CLI exits 1 from the result); a flow refused for bad input ends Failed carrying
    the :class:`~specs.errors.DeliverError`, raised again here (the CLI's one line and exit code)."""
    state = flow(request, return_state=True)
    value = state.result(raise_on_failure=False)
    if isinstance(value, QCFailed):
        return value.result
    if isinstance(value, BaseException):
        raise value
    return value


def deployments(*, nightly_schedule: bool = True, limit_per_deployment: int | None = None) -> list[Any]:
    """``RunnerDeployment`` objects for ``serve()``: deliver, qc, archive, verify, nightly-qc, qc-item."""
    from flows.archive import archive_flow
    from flows.deliver import deliver_flow
    from flows.nightly import nightly_qc_flow, nightly_schedule as sched, qc_item_flow
    from flows.plan import plan_flow
    from flows.qc import qc_flow
    from flows.verify import verify_flow
    from tasks.nightly import load_nightly_config

    common: dict[str, Any] = {"tags": ["deliver"], "concurrency_limit": limit_per_deployment}
    nightly_kwargs: dict[str, Any] = {}
    if nightly_schedule:
        nightly_kwargs["schedules"] = [sched(load_nightly_config())]
    return [
        deliver_flow.to_deployment(name="deliver", description="Deliver one title", **common),
        plan_flow.to_deployment(name="deliver-plan", description="Deliver every distributor of a title from one "
                                "run (a delivery plan)", **common),
        qc_flow.to_deployment(name="qc", description="QC one master", **common),
        archive_flow.to_deployment(name="archive", description="Archive a package, verified", **common),
        verify_flow.to_deployment(name="verify", description="Fixity of an archived copy", **common),
        nightly_qc_flow.to_deployment(name="nightly-qc", description="Nightly QC and archive fixity",
                                      parameters={"request": NightlyRequest().model_dump()}, tags=["deliver"],
                                      concurrency_limit=1, **nightly_kwargs),
        qc_item_flow.to_deployment(name="qc-item", description="One nightly QC item", **common),
    ]


def ensure_ffmpeg_limit(limit: int | None = None) -> int:
    """Create the ``ffmpeg`` tag concurrency limit (default: CPU cores) unless it already exists."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_concurrency_limit_by_tag(FFMPEG_TAG).concurrency_limit
        except ObjectNotFound:
            n = limit or cores()
            client.create_concurrency_limit(tag=FFMPEG_TAG, concurrency_limit=n)
            return n


def apply_env_defaults() -> None:
    for k, v in OPS_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)


def ensure_unresponsive_run_automation() -> str:
    """The server-side automation that marks Crashed a flow run whose process stopped heartbeating
    (killed with its worker, its machine or its container): made once per server, by name.

    Prefect's documented zombie-run detection ("Detect and respond to zombie flows"): a proactive trigger
    that expects, after each ``prefect.flow-run.heartbeat``, another heartbeat or a final state within
    UNRESPONSIVE_AFTER_HEARTBEATS heartbeats, and changes the run's state to Crashed when none comes. The
    rerun of a deliver run resumes from its finished steps (their records and hashes)."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    try:
        existing: Any = Automation.read(name=UNRESPONSIVE_AUTOMATION)
        if existing is not None:
            return UNRESPONSIVE_AUTOMATION
    except ValueError:  # "Automation with name ... not found"
        pass
    silent_s = HEARTBEAT_S * UNRESPONSIVE_AFTER_HEARTBEATS
    Automation(
        name=UNRESPONSIVE_AUTOMATION,
        description=f"Mark Crashed a flow run silent for {silent_s} s (its process, worker or machine was lost)",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": ["prefect.flow-run.*"]}, for_each={"prefect.resource.id"},
            posture=Posture.Proactive, threshold=1, within=timedelta(seconds=silent_s)),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"no heartbeat for {silent_s} s: the process running it was lost (its worker, machine or "
                    "container); run it again: a deliver run resumes from its finished steps")],
    ).create()
    return UNRESPONSIVE_AUTOMATION


def serve_all(*, limit: int | None = None, nightly_schedule: bool = True, ffmpeg_limit: int | None = None) -> None:
    """Serve every deployment from this process against ``PREFECT_API_URL`` (blocks until Ctrl-C)."""
    apply_env_defaults()
    from prefect import serve

    ensure_ffmpeg_limit(ffmpeg_limit)
    ensure_unresponsive_run_automation()
    serve(*deployments(nightly_schedule=nightly_schedule), limit=limit)


if __name__ == "__main__":  # python -m flows.deployments (what `deliver serve` runs)
    serve_all()
