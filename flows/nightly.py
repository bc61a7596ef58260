"""The nightly QC flow: re-QC new or changed masters in the watch folders, fixity of a share of the archive.

Configured in ``configs/nightly.yaml`` (or ``$DELIVER_NIGHTLY_CONFIG``):

* ``schedule: {cron, timezone}`` — when the ``nightly-qc`` deployment runs (``deliver serve`` and
  ``configs/prefect.yaml`` both read it through :func:`nightly_schedule`).
* ``watch_folders: [{path, spec, patterns, recursive}]`` — every master matching ``patterns`` in
  ``path`` is checked against ``spec``. A sidecar ``<master>.spec`` (one line: a built-in spec name
  or a YAML path, relative to the master) beside a master overrides the folder's spec.
* ``fixity: {rotation_nights, uris}`` — every archived copy recorded in the archive catalog (plus the
  packages under ``uris``) falls into one of ``rotation_nights`` buckets by a stable hash of its URI;
  night ``d`` verifies bucket ``d mod N``, so the whole archive is verified every N nights whatever
  its growth. Copies whose last verification is older than N nights (missed nights) are added.
* ``fan_out: {mode: tasks|deployments, task_runner: thread|dask, max_workers, dask_address,
  deployment}`` — items run as tasks on a bounded thread pool or a Dask cluster (prefect-dask), or as
  runs of the ``qc-item`` deployment so that they spread over every worker of a work pool.

"New or changed" is decided against a small JSON state file (``$DELIVER_HOME/nightly/state.json``)
keyed by the master's resolved path, holding size, mtime (ns) and xxh128: a master whose size or
mtime moved is re-hashed, and re-checked only if its content changed. State is written only for
items that finished, so a crashed check is retried the next night. One failure never stops the
others: every item runs, then one summary table artifact lists them all.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import xxhash
import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.params import NightlyRequest

__all__ = [
    "NightlyConfig", "load_nightly_config", "nightly_schedule", "scan_watch_folders", "spec_for_master",
    "fixity_share", "night_ordinal", "NightlyState", "nightly_qc_flow", "qc_item_flow", "qc_one", "verify_one",
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
    from specs.errors import BadInputError

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


def _home() -> Path:
    return Path(os.environ.get("DELIVER_HOME") or Path.home() / ".deliver")


def nightly_schedule(cfg: NightlyConfig | None = None) -> Any:
    """The ``prefect.schedules.Cron`` of the nightly deployment, from the config's cron and timezone."""
    from prefect.schedules import Cron

    cfg = cfg or load_nightly_config()
    return Cron(cfg.schedule.cron, timezone=cfg.schedule.timezone)


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


def _hash(path: Path) -> str:
    h = xxhash.xxh3_128()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


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
            if not p.is_file() or p.name.startswith(".") or ".partial" in p.name or not _matches(p, folder.patterns):
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
                    item.xxh128 = _hash(p)
                    if item.xxh128 == prev.get("xxh128") and prev.get("spec") == spec:
                        item.reason = "unchanged"  # touched or copied, same bytes: just refresh the identity
                        state.record(item, verdict=prev.get("verdict", "unknown"))
            if item.reason == "unchanged" and not force_all:
                continue
            if item.reason == "unchanged":
                item.reason = "forced"
            if item.xxh128 is None:
                item.xxh128 = _hash(p)
            items.append(item)
    return items


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


# --------------------------------------------------------------------------- the work items

def _report_path(cfg: NightlyConfig, item: Item, night: dt.date) -> Path:
    base = Path(cfg.reports).expanduser() if cfg.reports else _home() / "nightly" / "reports"
    stem = Path(item.path).name
    return base / night.isoformat() / f"{stem}-{(item.xxh128 or 'x')[:8]}.report.json"


def qc_one(path: str, spec: str, report: str) -> dict[str, Any]:
    """QC one master (plain function: usable from a task, a Dask worker or the qc-item flow)."""
    from specs.loader import load_spec
    from tasks.media.probe import probe
    from tasks.qc.engine import qc_master
    from tasks.report import build_report, write_report
    from tasks.steps import ProgressReporter

    loaded = load_spec(spec)
    info = probe(path, "master")
    slug = "".join(c if c.isalnum() else "-" for c in Path(path).stem.lower())[:40]
    qc = qc_master(info, loaded, progress=ProgressReporter(f"nightly-qc-{slug}", f"Nightly QC of {Path(path).name}"))
    rep = build_report(spec=loaded.name, findings=qc.findings, measurements=qc.measurements, title=Path(path).name)
    out = write_report(rep, report)
    errors = [f for f in rep.findings if f.severity.value == "error"]
    if rep.verdict != "pass":
        _emit_qc_failed(path, loaded.name, str(out), len(errors), errors[0].message if errors else "")
    return {"verdict": rep.verdict, "report": str(out), "errors": len(errors),
            "warnings": rep.counts.get("warning", 0), "first_error": errors[0].message if errors else "",
            "host": _where()}


def _where() -> str:
    """Machine (and worker, when DELIVER_WORKER_NAME is set) an item ran on, for the summary table."""
    import platform

    worker = os.environ.get("DELIVER_WORKER_NAME")
    return f"{platform.node()}/{worker}" if worker else platform.node()


def _emit_qc_failed(path: str, spec: str, report: str, errors: int, first: str) -> None:
    from flows.events import emit_qc_failed

    emit_qc_failed(title=Path(path).name, path=path, spec=spec, report=report, errors=errors, first_error=first)


def verify_one(uri: str) -> dict[str, Any]:
    """Fixity of one archived copy; emits ``deliver.archive.mismatch`` on a mismatch."""
    from tasks.archive import verify_uri

    rep = verify_uri(uri)
    if not rep.ok:
        from flows.events import emit_archive_mismatch

        emit_archive_mismatch(uri=rep.uri, files=[m.path for m in rep.mismatches],
                              detail="; ".join(m.describe() for m in rep.mismatches[:5]))
    return {"ok": rep.ok, "files": rep.files, "mismatches": [m.describe() for m in rep.mismatches],
            "host": _where()}


@task(name="nightly-qc-master", tags=["ffmpeg"], cache_policy=NO_CACHE, timeout_seconds=6 * 3600,
      task_run_name="qc-{path}")
def qc_master_task(path: str, spec: str, report: str) -> dict[str, Any]:
    return qc_one(path, spec, report)


@task(name="nightly-fixity", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[30, 120],
      task_run_name="fixity-{uri}")
def fixity_task(uri: str) -> dict[str, Any]:
    return verify_one(uri)


@flow(name="qc-item", flow_run_name="nightly-qc-{path}", log_prints=True, persist_result=True,
      result_serializer="json")
def qc_item_flow(path: str, spec: str, report: str) -> dict[str, Any]:
    """One nightly QC item as its own flow run, so items spread over every worker of a pool."""
    from tasks.media.ffmpeg import kill_all_children

    try:
        return qc_one(path, spec, report)
    finally:
        kill_all_children()


# --------------------------------------------------------------------------- the flow

def _cpu() -> int:
    return max(1, os.cpu_count() or 1)


def make_task_runner(cfg: NightlyConfig | None = None) -> Any:
    """A bounded task runner: ThreadPool(max_workers=cores) or prefect-dask's DaskTaskRunner."""
    try:
        cfg = cfg or load_nightly_config()
    except Exception:  # noqa: BLE001 - import must not fail on a bad config; the flow reports it
        cfg = NightlyConfig()
    workers = cfg.fan_out.max_workers or _cpu()
    if cfg.fan_out.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.fan_out.dask_address:
            return DaskTaskRunner(address=cfg.fan_out.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=workers)


def _deployment_item_result(fr: Any) -> tuple[Any, BaseException | None]:
    """Outcome of one qc-item flow run: its (persisted) return value, else its report on shared storage."""
    state = fr.state
    if not state.is_completed():
        return None, RuntimeError(f"qc-item run {fr.name} {state.type.value}: {state.message or ''}".strip())
    try:
        res = state.result(raise_on_failure=True)
        if isinstance(res, dict) and "verdict" in res:
            return {**res, "flow_run": str(fr.id)}, None
    except Exception:  # noqa: BLE001 - result storage not shared with this machine: read the report
        pass
    report = Path(str((fr.parameters or {}).get("report", "")))
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        return None, RuntimeError(f"qc-item run {fr.name} completed but its report is unreadable: {exc}")
    errors = [f for f in data.get("findings", []) if f.get("severity") == "error"]
    return {"verdict": data.get("verdict", "fail"), "report": str(report), "errors": len(errors),
            "warnings": (data.get("counts") or {}).get("warning", 0),
            "first_error": errors[0]["message"] if errors else "", "host": data.get("host", ""),
            "flow_run": str(fr.id)}, None


def _wait_deployment_runs(runs: dict[str, Any], poll_s: float = 3.0) -> dict[str, Any]:
    """Wait for the item flow runs; return ``{key: final flow run}``."""
    from prefect.client.orchestration import get_client

    done: dict[str, Any] = {}
    with get_client(sync_client=True) as client:
        while len(done) < len(runs):
            for key, fr in runs.items():
                if key in done:
                    continue
                cur = client.read_flow_run(fr.id)
                if cur.state is not None and cur.state.is_final():
                    done[key] = cur
            if len(done) < len(runs):
                time.sleep(poll_s)
    return done


def _nightly_run_name() -> str:
    from prefect.runtime import flow_run

    req = (flow_run.parameters or {}).get("request")
    night = req.get("night") if isinstance(req, dict) else getattr(req, "night", None)
    if not night:
        try:
            night = night_of(None, load_nightly_config(getattr(req, "config", None)).schedule.timezone).isoformat()
        except Exception:  # noqa: BLE001 - a run name must never fail the run
            night = dt.date.today().isoformat()
    return f"nightly-qc-{night}"


@flow(name="nightly-qc", flow_run_name=_nightly_run_name, log_prints=True,
      task_runner=make_task_runner())
def nightly_qc_flow(request: NightlyRequest = NightlyRequest()) -> Any:  # noqa: B008 - the UI form's default
    """QC new/changed masters of the watch folders and verify tonight's share of the archive.

    Writes one ``nightly-summary`` table artifact (every item, pass/fail/error) and a markdown
    summary; the run fails if any item failed, after every item has run.
    """
    from prefect.states import Completed, Failed

    from tasks.media.ffmpeg import kill_all_children

    log = get_run_logger()
    cfg = load_nightly_config(request.config)
    night = dt.date.fromisoformat(request.night) if request.night else night_of(None, cfg.schedule.timezone)
    state = NightlyState(Path(cfg.state).expanduser() if cfg.state else _home() / "nightly" / "state.json")
    items = scan_watch_folders(cfg, state, force_all=request.force_all)
    share = fixity_share(archived_copies(cfg), night, cfg.fixity.rotation_nights)
    log.info("night %s: %d master(s) to QC, %d archived cop(ies) to verify (1/%d of the archive)",
             night, len(items), len(share), cfg.fixity.rotation_nights)
    rows: list[dict[str, Any]] = []
    try:
        qc_futures: dict[str, Any] = {}
        for it in items:
            if not it.spec:
                rows.append({"kind": "qc", "item": it.path, "spec": "", "result": "skipped", "detail":
                             "no spec: add one to the watch folder in configs/nightly.yaml or a "
                             f"{Path(it.path).name}{SIDECAR_SUFFIX} sidecar", "report": "", "host": ""})
                continue
            report = str(_report_path(cfg, it, night))
            if cfg.fan_out.mode == "deployments":
                from prefect.deployments import run_deployment

                qc_futures[it.path] = run_deployment(cfg.fan_out.deployment, timeout=0, as_subflow=False,
                                                     parameters={"path": it.path, "spec": it.spec, "report": report})
            else:
                qc_futures[it.path] = qc_master_task.submit(it.path, it.spec, report)
        fix_futures = {uri: fixity_task.submit(uri) for uri in share}

        if cfg.fan_out.mode == "deployments":
            finals = _wait_deployment_runs(qc_futures)
            results: dict[str, tuple[Any, BaseException | None]] = {}
            for key, fr in finals.items():
                results[key] = _deployment_item_result(fr)
        else:
            results = {}
            for key, fut in qc_futures.items():
                try:
                    results[key] = (fut.result(), None)
                except BaseException as exc:  # noqa: BLE001 - one failure never stops the others
                    results[key] = (None, exc)

        by_path = {it.path: it for it in items}
        for key, (res, error) in results.items():
            it = by_path[key]
            if error is not None:
                rows.append({"kind": "qc", "item": key, "spec": it.spec, "result": "error",
                             "detail": f"{type(error).__name__}: {error}"[:300], "report": "", "host": ""})
                continue
            state.record(it, verdict=res["verdict"])
            rows.append({"kind": "qc", "item": key, "spec": it.spec, "result": res["verdict"],
                         "detail": f"{it.reason} ({it.spec_source} spec); {res['errors']} error(s), "
                                   f"{res['warnings']} warning(s)" + (f": {res['first_error']}" if res["first_error"]
                                                                        else ""),
                         "report": res["report"], "host": res.get("host", "")})
        for uri, fut in fix_futures.items():
            try:
                res = fut.result()
            except BaseException as exc:  # noqa: BLE001 - one failed fixity check never stops the others
                rows.append({"kind": "fixity", "item": uri, "spec": "", "result": "error",
                             "detail": f"{type(exc).__name__}: {exc}"[:300], "report": "", "host": ""})
                continue
            rows.append({"kind": "fixity", "item": uri, "spec": "", "result": "ok" if res["ok"] else "mismatch",
                         "detail": f"{res['files']} file(s)" + ("" if res["ok"] else ": " + "; ".join(
                             res["mismatches"][:3])), "report": "", "host": res.get("host", "")})
    finally:
        state.save()
        kill_all_children()

    bad = [r for r in rows if r["result"] in ("fail", "error", "mismatch")]
    create_table_artifact(key="nightly-summary", table=rows or [{"kind": "", "item": "nothing to do tonight",
                                                                 "spec": "", "result": "", "detail": "",
                                                                 "report": "", "host": ""}],
                          description=f"Nightly QC and fixity, night of {night}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[f"{r['kind']} {r['result']}"] = counts.get(f"{r['kind']} {r['result']}", 0) + 1
    md = [f"# Nightly QC — {night} — {'ALL CLEAR' if not bad else f'{len(bad)} PROBLEM(S)'}", "",
          f"Masters checked: {sum(1 for r in rows if r['kind'] == 'qc')} · archived copies verified: "
          f"{sum(1 for r in rows if r['kind'] == 'fixity')} (rotation 1/{cfg.fixity.rotation_nights})", ""]
    md += [f"- {k}: {v}" for k, v in sorted(counts.items())]
    if bad:
        md += ["", "## Problems", ""] + [f"- **{r['result']}** {r['kind']} `{r['item']}` — {r['detail']}" for r in bad]
    create_markdown_artifact(key="nightly-report", markdown="\n".join(md), description=f"Nightly QC {night}")
    summary = {"night": night.isoformat(), "rows": rows, "problems": len(bad)}
    if bad:
        return Failed(message=f"nightly QC: {len(bad)} problem(s) of {len(rows)} item(s)", data=summary)
    return Completed(message=f"nightly QC: {len(rows)} item(s), all clear", data=summary)
