"""The nightly QC's domain: configuration, the watch-folder scan, spec sidecars, the state file, the
fixity rotation and the summary of one night. Plain functions, no Prefect (``flows/nightly.py``
orchestrates them).

Configured in ``configs/nightly.yaml`` (or ``$DELIVER_NIGHTLY_CONFIG``):

* ``schedule: {cron, timezone}`` — when the ``nightly-qc`` deployment runs (``deliver serve`` and
  ``configs/prefect.yaml`` both read it).
* ``watch_folders: [{path, spec, patterns, recursive}]`` — every master matching ``patterns`` in
  ``path`` is checked against ``spec``. A sidecar ``<master>.spec`` (one line: a built-in spec name
  or a YAML path, relative to the master) beside a master overrides the folder's spec.
* ``fixity: {rotation_nights, uris}`` — every archived copy recorded in the archive catalog (plus the
  packages under ``uris``) falls into one of ``rotation_nights`` buckets by a stable hash of its URI;
  night ``d`` verifies bucket ``d mod N``, so the whole archive is verified every N nights whatever
  its growth. Copies whose last verification is older than N nights (missed nights) are added.
* ``fan_out: {mode: tasks|deployments, task_runner: thread|dask, max_workers, dask_address,
  deployment, resubmits}`` — items run as tasks on a bounded thread pool or a Dask cluster (prefect-dask),
  or as runs of the ``qc-item`` deployment so that they spread over every worker of a work pool. An item
  whose run crashed, or whose worker stopped heartbeating (:func:`worker_lost`, the run marked Crashed),
  is submitted again, at most ``resubmits`` times.

"New or changed" is decided against a small JSON state file (``$DELIVER_HOME/nightly/state.json``)
keyed by the master's resolved path, holding size, mtime (ns) and xxh128: a master whose size or
mtime moved is re-hashed, and re-checked only if its content changed. State is written only for
items that finished, so a crashed check is retried the next night.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import platform
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import xxhash
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from specs.errors import BadInputError
from tasks.archive.hashing import hash_file_xxh128
from tasks.archive.targets import deliver_home
from tasks.archive.verify import VerifyReport
from tasks.media.files import atomic_output, is_partial
from tasks.report import Report

__all__ = [
    "NightlyConfig", "Schedule", "WatchFolder", "Fixity", "FanOut", "config_path", "load_nightly_config",
    "night_of", "night_ordinal", "spec_for_master", "Item", "NightlyState", "scan_watch_folders", "fixity_share",
    "archived_copies", "report_path", "state_path", "QCItemOutcome", "qc_item_outcome", "SummaryRow",
    "NightlySummary", "qc_row", "fixity_row", "error_row", "skipped_row", "summary_markdown", "SIDECAR_SUFFIX",
    "worker_lost", "WORKER_HEARTBEAT_MISSES",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "nightly.yaml"
SIDECAR_SUFFIX = ".spec"


# --------------------------------------------------------------------------- configuration

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Strict):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:  # noqa: BLE001 - zoneinfo raises several types
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Europe/London") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"cron {value!r} must have 5 fields (minute hour day month weekday)")
        return value


class WatchFolder(_Strict):
    path: str
    spec: str | None = None  # masters without a sidecar and without a folder spec are reported, not checked
    patterns: list[str] = Field(default_factory=lambda: ["*.mov", "*.mxf", "*.mp4"])
    recursive: bool = True


class Fixity(_Strict):
    rotation_nights: int = Field(7, ge=1, le=366)
    uris: list[str] = Field(default_factory=list)  # extra local targets/packages not (only) in the catalog
    catalog: bool = True


class FanOut(_Strict):
    mode: Literal["tasks", "deployments"] = "tasks"
    task_runner: Literal["thread", "dask"] = "thread"
    max_workers: int | None = Field(None, ge=1)  # default: CPU cores
    dask_address: str | None = None  # tcp://scheduler:8786 for a shared cluster; default: a LocalCluster
    deployment: str = "qc-item/qc-item"
    resubmits: int = Field(1, ge=0, le=5)  # deployments mode: new runs of a crashed item or a lost worker's


class NightlyConfig(_Strict):
    schedule: Schedule = Schedule()
    watch_folders: list[WatchFolder] = Field(default_factory=list)
    reports: str | None = None  # default $DELIVER_HOME/nightly/reports
    state: str | None = None  # default $DELIVER_HOME/nightly/state.json
    fixity: Fixity = Fixity()
    fan_out: FanOut = FanOut()


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("DELIVER_NIGHTLY_CONFIG") or DEFAULT_CONFIG)


def load_nightly_config(path: str | os.PathLike[str] | None = None) -> NightlyConfig:
    """Read and validate the nightly config (BadInputError with the file name on any problem)."""
    p = config_path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
        return NightlyConfig.model_validate(data)
    except FileNotFoundError:
        raise BadInputError(f"{p}: nightly config not found (set DELIVER_NIGHTLY_CONFIG)") from None
    except yaml.YAMLError as exc:
        raise BadInputError(f"{p}: not valid YAML: {exc}") from None
    except ValueError as exc:
        raise BadInputError(f"{p}: {exc}") from None


def night_of(now: dt.datetime | None, tz: str) -> dt.date:
    """The calendar night a run belongs to, in the configured timezone (a 02:00 run is that date)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(ZoneInfo(tz)).date()


def night_ordinal(night: dt.date) -> int:
    return night.toordinal()


# --------------------------------------------------------------------------- watch folders

def spec_for_master(master: Path, folder: WatchFolder) -> tuple[str | None, str]:
    """The spec to check ``master`` against and where it came from ("sidecar" or "folder").

    A sidecar ``<master file name>.spec`` beside the master wins: one line, a built-in spec name or
    a YAML path (relative paths are relative to the master's folder).
    """
    sidecar = master.with_name(master.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        ref = sidecar.read_text().strip().splitlines()[0].strip() if sidecar.read_text().strip() else ""
        if ref:
            if ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute():
                ref = str((master.parent / ref).resolve())
            return ref, "sidecar"
    return folder.spec, "folder"


class Item(BaseModel):
    """One master found in a watch folder."""

    path: str
    folder: str
    spec: str | None
    spec_source: str
    size: int
    mtime_ns: int
    xxh128: str | None = None
    reason: str  # new | changed | forced | unchanged


class NightlyState:
    """``{resolved path: {size, mtime_ns, xxh128, spec, verdict, checked_at}}`` in one JSON file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.data: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.data = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def record(self, item: Item, *, verdict: str) -> None:
        self.data[item.path] = {"size": item.size, "mtime_ns": item.mtime_ns, "xxh128": item.xxh128,
                                "spec": item.spec, "verdict": verdict,
                                "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

    def save(self) -> None:
        with atomic_output(self.path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))


def state_path(cfg: NightlyConfig) -> Path:
    """The state file: ``state`` of the config, else ``$DELIVER_HOME/nightly/state.json``."""
    return Path(cfg.state).expanduser() if cfg.state else deliver_home() / "nightly" / "state.json"


def _matches(path: Path, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path.name.lower(), p.lower()) for p in patterns)


def scan_watch_folders(cfg: NightlyConfig, state: NightlyState, *, force_all: bool = False) -> list[Item]:
    """Masters to check tonight: new ones, and ones whose content changed (or all with ``force_all``).

    Partial files (``*.partial``) and hidden files are skipped; a master seen with the same size and
    mtime is unchanged without reading it; one whose size/mtime moved is re-hashed (xxh128) and
    counts as changed only if the hash or the spec differs.
    """
    items: list[Item] = []
    for folder in cfg.watch_folders:
        root = Path(folder.path).expanduser()
        if not root.is_dir():
            continue
        walker = root.rglob("*") if folder.recursive else root.glob("*")
        for p in sorted(walker):
            if not p.is_file() or p.name.startswith(".") or is_partial(p) or not _matches(p, folder.patterns):
                continue
            st = p.stat()
            key = str(p.resolve())
            spec, source = spec_for_master(p, folder)
            prev = state.get(key)
            item = Item(path=key, folder=str(root), spec=spec, spec_source=source, size=st.st_size,
                        mtime_ns=st.st_mtime_ns, reason="new")
            if prev is not None:
                same_stat = prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns
                item.reason = "changed"
                if same_stat and prev.get("spec") == spec:
                    item.reason = "unchanged"
                    item.xxh128 = prev.get("xxh128")
                elif not same_stat:
                    item.xxh128 = hash_file_xxh128(p)
                    if item.xxh128 == prev.get("xxh128") and prev.get("spec") == spec:
                        item.reason = "unchanged"  # touched or copied, same bytes: just refresh the identity
                        state.record(item, verdict=prev.get("verdict", "unknown"))
            if item.reason == "unchanged" and not force_all:
                continue
            if item.reason == "unchanged":
                item.reason = "forced"
            if item.xxh128 is None:
                item.xxh128 = hash_file_xxh128(p)
            items.append(item)
    return items


def report_path(cfg: NightlyConfig, item: Item, night: dt.date) -> Path:
    """Where an item's report.json goes: ``reports/<night>/<master>-<xxh128 prefix>.report.json``."""
    base = Path(cfg.reports).expanduser() if cfg.reports else deliver_home() / "nightly" / "reports"
    stem = Path(item.path).name
    return base / night.isoformat() / f"{stem}-{(item.xxh128 or 'x')[:8]}.report.json"


# --------------------------------------------------------------------------- fixity rotation

def _bucket(uri: str, nights: int) -> int:
    return xxhash.xxh64_intdigest(uri.encode()) % nights


def fixity_share(copies: list[tuple[str, dt.datetime | None]], night: dt.date, nights: int,
                 now: dt.datetime | None = None) -> list[str]:
    """The archived copies to verify on ``night``: its bucket, plus any copy overdue (> N nights).

    ``copies`` are ``(copy URI, last verified at or None)``. Each URI's bucket is a stable hash of the
    URI modulo ``nights``; night ``d`` takes bucket ``d.toordinal() % nights``. Every copy is therefore
    verified at least once in any ``nights`` consecutive nights, and adding copies never reshuffles
    the others.
    """
    now = now or dt.datetime.now(dt.UTC)
    tonight = night_ordinal(night) % nights
    overdue_before = now - dt.timedelta(days=nights, hours=12)
    out = []
    for uri, last in copies:
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        if _bucket(uri, nights) == tonight or last is None or last < overdue_before:
            out.append(uri)
    return sorted(set(out))


def archived_copies(cfg: NightlyConfig) -> list[tuple[str, dt.datetime | None]]:
    """Every copy the archive catalog knows, plus the packages under the configured ``fixity.uris``."""
    found: dict[str, dt.datetime | None] = {}
    if cfg.fixity.catalog:
        from sqlalchemy import select

        from tasks.archive.catalog import Catalog, copies

        cat = Catalog()
        with cat.engine.connect() as conn:
            for uri, last in conn.execute(select(copies.c.uri, copies.c.last_verified_at)):
                found[uri] = last
    for uri in cfg.fixity.uris:
        root = Path(uri[7:] if uri.startswith("file://") else uri).expanduser()
        if uri.startswith("s3://"):
            found.setdefault(uri, None)
        elif (root / "ascmhl").is_dir():
            found.setdefault(root.resolve().as_uri(), None)
        elif root.is_dir():
            for pkg in sorted(root.iterdir()):
                if (pkg / "ascmhl").is_dir():
                    found.setdefault(pkg.resolve().as_uri(), None)
    return sorted(found.items())


# --------------------------------------------------------------------------- outcomes and the summary

#: Heartbeats a worker may miss before the runs it took count as lost: Prefect's own threshold for marking a
#: worker OFFLINE (PREFECT_SERVER_SERVICES_FOREMAN_INACTIVITY_HEARTBEAT_MULTIPLE, default 3).
WORKER_HEARTBEAT_MISSES = 3


def worker_lost(last_heartbeat: dt.datetime | None, interval_s: float | None, now: dt.datetime, *,
                registered: bool = True, misses: int = WORKER_HEARTBEAT_MISSES) -> str | None:
    """Why the worker that took a run will never finish it, or None while it heartbeats.

    A process worker runs its flow runs as its own child processes: once it has missed ``misses`` heartbeats
    (or left the pool) the machine or the worker is gone, and a run it held stays Running or Pending for
    ever on the server.
    """
    if not registered:
        return "it is no longer registered on the pool"
    if last_heartbeat is None:
        return None  # registering: it heartbeats as it starts
    if last_heartbeat.tzinfo is None:
        last_heartbeat = last_heartbeat.replace(tzinfo=dt.UTC)
    interval = interval_s or 30.0  # PREFECT_WORKER_HEARTBEAT_SECONDS default
    silent_s = (now - last_heartbeat).total_seconds()
    if silent_s > misses * interval:
        return f"no heartbeat for {silent_s:.0f} s (expected every {interval:.0f} s)"
    return None


def where() -> str:
    """Machine (and worker: DELIVER_WORKER_NAME, else the name a Prefect worker gives the runs it starts) an
    item ran on, for the summary table."""
    worker = os.environ.get("DELIVER_WORKER_NAME") or os.environ.get("PREFECT__WORKER_NAME")
    return f"{platform.node()}/{worker}" if worker else platform.node()


class QCItemOutcome(BaseModel):
    """What one nightly QC item found (the qc-item flow's result)."""

    verdict: Literal["pass", "fail"]
    report: str
    spec: str
    errors: int
    warnings: int
    first_error: str = ""
    host: str = ""
    flow_run: str | None = None


def qc_item_outcome(report: Report, report_file: Path) -> QCItemOutcome:
    """The outcome of one QC item from its report (written at ``report_file``), on the machine that ran it."""
    errors = [f for f in report.findings if f.severity.value == "error"]
    return QCItemOutcome(verdict=report.verdict, report=str(report_file), spec=report.spec, errors=len(errors),
                         warnings=report.counts.get("warning", 0),
                         first_error=errors[0].message if errors else "", host=where())


class SummaryRow(BaseModel):
    """One line of the nightly summary table."""

    kind: Literal["qc", "fixity"]
    item: str
    spec: str = ""
    result: str  # pass | fail | error | skipped | ok | mismatch
    detail: str = ""
    report: str = ""
    host: str = ""


class NightlySummary(BaseModel):
    """What a night did: every row, and how many are problems (fail, error, mismatch)."""

    night: str
    rows: list[SummaryRow]
    problems: int
    schedule: dict[str, Any] | None = None  # tasks.schedule.ScheduleDigest: overdue items, rejections since last night


def skipped_row(item: Item) -> SummaryRow:
    return SummaryRow(kind="qc", item=item.path, result="skipped",
                      detail="no spec: add one to the watch folder in configs/nightly.yaml or a "
                             f"{Path(item.path).name}{SIDECAR_SUFFIX} sidecar")


def error_row(kind: Literal["qc", "fixity"], item: str, exc: BaseException, spec: str = "") -> SummaryRow:
    return SummaryRow(kind=kind, item=item, spec=spec, result="error", detail=f"{type(exc).__name__}: {exc}"[:300])


def qc_row(item: Item, outcome: QCItemOutcome) -> SummaryRow:
    detail = (f"{item.reason} ({item.spec_source} spec); {outcome.errors} error(s), {outcome.warnings} warning(s)"
              + (f": {outcome.first_error}" if outcome.first_error else ""))
    return SummaryRow(kind="qc", item=item.path, spec=item.spec or "", result=outcome.verdict, detail=detail,
                      report=outcome.report, host=outcome.host)


def fixity_row(uri: str, report: VerifyReport, host: str) -> SummaryRow:
    mismatches = [m.describe() for m in report.mismatches]
    return SummaryRow(kind="fixity", item=uri, result="ok" if report.ok else "mismatch",
                      detail=f"{report.files} file(s)" + ("" if report.ok else ": " + "; ".join(mismatches[:3])),
                      host=host)


def summary_markdown(summary: NightlySummary, rotation_nights: int) -> str:
    """The night's markdown report: counts per kind and result, then every problem."""
    rows = summary.rows
    bad = [r for r in rows if r.result in ("fail", "error", "mismatch")]
    counts: dict[str, int] = {}
    for r in rows:
        counts[f"{r.kind} {r.result}"] = counts.get(f"{r.kind} {r.result}", 0) + 1
    md = [f"# Nightly QC — {summary.night} — {'ALL CLEAR' if not bad else f'{len(bad)} PROBLEM(S)'}", "",
          f"Masters checked: {sum(1 for r in rows if r.kind == 'qc')} · archived copies verified: "
          f"{sum(1 for r in rows if r.kind == 'fixity')} (rotation 1/{rotation_nights})", ""]
    md += [f"- {k}: {v}" for k, v in sorted(counts.items())]
    if bad:
        md += ["", "## Problems", ""] + [f"- **{r.result}** {r.kind} `{r.item}` — {r.detail}" for r in bad]
    return "\n".join(md)
