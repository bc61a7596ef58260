"""The delivery schedule: per title, version, distributor (spec) and item, one state, kept in the catalog.

Items are a spec's deliverables, its ``manual_checks`` and its ``documents`` (paperwork). A run moves
deliverables through required → made → verified → qc-pass / qc-fail → archived; people record what
happens outside deliver (``deliver mark``): sent → accepted / rejected, with a note, who and when. Every
change is also an event (the history; the nightly summary reads rejections from it). Copies and the last
fixity of an archived item are read from the archive catalog by its xxh128, so a fixity run updates them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from specs.errors import BadInputError
from specs.model import Spec
from tasks.archive.catalog import (
    Catalog,
    copies,
    files,
    run_costs,
    schedule_distributors,
    schedule_events,
    schedule_items,
    schedule_meta,
)
from tasks.costs import RunCosts
from tasks.report import ArchiveEntry, DeliverableEntry, Report

__all__ = ["STATES", "MARKS", "DistributorRun", "ItemStatus", "DistributorStatus", "ScheduleStatus",
           "distributors_of", "record_run", "mark", "status", "status_csv", "status_markdown", "ScheduleDigest",
           "nightly_digest", "digest_markdown", "CostRow", "CostSummary", "cost_summary", "STATUS_SCHEMA_ID"]

STATES = ("required", "made", "verified", "qc-pass", "qc-fail", "archived", "sent", "accepted", "rejected")
State = Literal["required", "made", "verified", "qc-pass", "qc-fail", "archived", "sent", "accepted", "rejected"]
#: What people record with ``deliver mark`` (made/verified for paperwork and manual checks).
MARKS = ("made", "verified", "sent", "accepted", "rejected")
_OUTSIDE = ("sent", "accepted", "rejected")  # a run does not undo these while the file is the same
STATUS_SCHEMA_ID = "deliver-status-1"
RUN_BY = "deliver run"


class DistributorRun(BaseModel):
    """What one run did for one distributor: its spec, verdict, and the files it made and archived."""

    spec: Spec
    name: str | None = None  # a plan's distributor name (its package folder); None: the spec's name
    verdict: Literal["pass", "fail"]
    delivered: bool
    deliverables: list[DeliverableEntry] = Field(default_factory=list)
    archive: list[ArchiveEntry] = Field(default_factory=list)
    due: dt.date | None = None  # the distributor's due date, when a plan gives one

    @property
    def distributor(self) -> str:
        """The schedule's distributor key."""
        return self.name or self.spec.name


def distributors_of(report: Report, specs: list[Spec]) -> list[DistributorRun]:
    """The distributors of a run: ``report.distributors`` of a plan run (``specs`` in the same order, or matched by
    spec name), each with its own archive copies, else the run's one spec."""
    by_name = {s.name: s for s in specs}
    entries = getattr(report, "distributors", None) or []
    out = []
    for k, e in enumerate(entries):
        d = e if isinstance(e, dict) else e.model_dump()
        in_order = len(specs) == len(entries) and specs[k].name == d.get("spec")
        spec = specs[k] if in_order else by_name.get(d.get("spec", ""))
        if spec is not None:
            out.append(DistributorRun(spec=spec, name=d.get("name"), verdict=d.get("verdict", report.verdict),
                                      delivered=bool(d.get("delivered")), deliverables=d.get("deliverables") or [],
                                      archive=d["archive"] if "archive" in d else report.archive, due=d.get("due")))
    if out:
        return out
    return [DistributorRun(spec=s, verdict=report.verdict, delivered=report.delivered,
                           deliverables=report.deliverables, archive=report.archive) for s in specs[:1]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _entry_for(spec: Spec, deliverable_id: str, entries: list[DeliverableEntry]) -> DeliverableEntry | None:
    """The packaged file of a spec deliverable: same kind, and the only one of its kind or named with its id."""
    kind = next(d.kind for d in spec.deliverables if d.id == deliverable_id)
    same_kind = [e for e in entries if e.kind == kind]
    if len([d for d in spec.deliverables if d.kind == kind]) == 1 and len(same_kind) == 1:
        return same_kind[0]
    return next((e for e in same_kind if deliverable_id in e.name), None)


def _run_state(run: DistributorRun, entry: DeliverableEntry | None) -> State:
    if entry is None:
        return "qc-fail" if run.verdict == "fail" else "required"
    if any(a.verified for a in run.archive):
        return "archived"
    return "qc-pass" if run.verdict == "pass" else "verified"  # forced past QC errors: verified, qc fail


def _set(conn: Connection, item_id: int, state: str, note: str | None, by: str, at: dt.datetime) -> None:
    conn.execute(update(schedule_items).where(schedule_items.c.id == item_id)
                 .values(state=state, note=note, updated_by=by, updated_at=at))
    conn.execute(insert(schedule_events).values(item_id=item_id, state=state, note=note, by=by, at=at))


def record_run(catalog: Catalog, *, title: str, version: str, distributors: list[DistributorRun],
               costs: RunCosts | None = None) -> None:
    """Record what a run did: every distributor's items (required, made/verified/qc/archived) and its costs."""
    now = _now()

    def write(conn: Connection) -> None:
        for run in distributors:
            spec = run.spec
            wanted: list[tuple[str, str, bool]] = [(d.id, "deliverable", True) for d in spec.deliverables]
            wanted += [(m.id, "manual-check", True) for m in spec.manual_checks]
            wanted += [(d.id, "document", d.required) for d in spec.documents]
            name = run.distributor
            key = (schedule_items.c.title == title, schedule_items.c.version == version,
                   schedule_items.c.distributor == name)
            have = {r["item"]: r for r in conn.execute(select(schedule_items).where(*key)).mappings()}
            dist_id = conn.execute(select(schedule_distributors.c.id).where(
                schedule_distributors.c.title == title, schedule_distributors.c.version == version,
                schedule_distributors.c.distributor == name)).scalar()
            if dist_id is None:
                conn.execute(insert(schedule_distributors).values(title=title, version=version,
                                                                  distributor=name, due=run.due))
            elif run.due is not None:
                conn.execute(update(schedule_distributors).where(schedule_distributors.c.id == dist_id)
                             .values(due=run.due))
            for item, kind, required in wanted:
                row = have.get(item)
                if row is None:
                    key_ = conn.execute(insert(schedule_items).values(
                        title=title, version=version, distributor=name, item=item, kind=kind, required=required,
                        state="required", updated_at=now, updated_by=RUN_BY)).inserted_primary_key
                    assert key_ is not None  # a single-row INSERT reports its key
                    item_id, old_state, old_hash = key_[0], None, None
                    conn.execute(insert(schedule_events).values(item_id=item_id, state="required", by=RUN_BY, at=now))
                else:
                    item_id, old_state, old_hash = row["id"], row["state"], row["xxh128"]
                    conn.execute(update(schedule_items).where(schedule_items.c.id == item_id)
                                 .values(required=required, kind=kind))
                if kind != "deliverable":
                    continue  # paperwork and manual checks move only by `deliver mark`
                entry = _entry_for(spec, item, run.deliverables)
                if entry is not None and old_state in _OUTSIDE and entry.xxh128 == old_hash:
                    continue  # the same file was sent: keep what people recorded
                if entry is None and old_state not in (None, "required", "qc-fail"):
                    continue  # a run that made nothing (QC failed) does not undo an earlier delivery
                state = _run_state(run, entry)
                conn.execute(update(schedule_items).where(schedule_items.c.id == item_id).values(
                    qc=run.verdict, file=entry.name if entry else None, bytes=entry.size if entry else None,
                    xxh128=entry.xxh128 if entry else None))
                if state != old_state:
                    _set(conn, item_id, state, None, RUN_BY, now)
        if costs is not None:
            conn.execute(insert(run_costs).values(
                title=title, version=version, distributors=",".join(r.distributor for r in distributors),
                recorded_at=now, cpu_s=costs.cpu_s, wall_s=costs.wall_s, made_bytes=costs.made_bytes,
                archived_bytes=costs.archived_bytes, make_cost=costs.make_cost,
                monthly_storage_cost=costs.monthly_storage_cost, currency=costs.currency,
                detail=costs.model_dump_json()))

    catalog.write(write, lock=f"schedule:{title.lower()}")


def _latest_version(conn: Connection, title: str) -> str | None:
    found: str | None = conn.execute(select(schedule_items.c.version).where(
        func.lower(schedule_items.c.title) == title.lower()).order_by(schedule_items.c.updated_at.desc())).scalar()
    return found


def mark(catalog: Catalog, *, title: str, distributor: str, item: str | None, state: str | None, by: str,
         note: str | None = None, version: str | None = None, due: dt.date | None = None) -> None:
    """Record what happened outside deliver (sent, accepted, rejected…) and/or a distributor's due date."""
    if state is not None and state not in MARKS:
        raise BadInputError(f"state {state!r}: use one of {', '.join(MARKS)}")
    if state is not None and item is None:
        raise BadInputError("give the ITEM to mark (a deliverable, manual check or document id)")
    now = _now()

    def write(conn: Connection) -> None:
        ver = version or _latest_version(conn, title)
        if ver is None:
            raise BadInputError(f"no delivery schedule for title {title!r}; run `deliver run` for it first")
        dist = conn.execute(select(schedule_distributors).where(
            func.lower(schedule_distributors.c.title) == title.lower(), schedule_distributors.c.version == ver,
            schedule_distributors.c.distributor == distributor)).mappings().first()
        if dist is None:
            known = conn.execute(select(schedule_distributors.c.distributor).where(
                func.lower(schedule_distributors.c.title) == title.lower(),
                schedule_distributors.c.version == ver)).scalars().all()
            raise BadInputError(f"{title} {ver} has no distributor {distributor!r}; known: "
                                f"{', '.join(known) or 'none'}")
        if due is not None:
            conn.execute(update(schedule_distributors).where(schedule_distributors.c.id == dist["id"]).values(due=due))
        if state is None:
            return
        row = conn.execute(select(schedule_items.c.id).where(
            schedule_items.c.title == dist["title"], schedule_items.c.version == ver,
            schedule_items.c.distributor == distributor, schedule_items.c.item == item)).scalar()
        if row is None:
            known = conn.execute(select(schedule_items.c.item).where(
                schedule_items.c.title == dist["title"], schedule_items.c.version == ver,
                schedule_items.c.distributor == distributor)).scalars().all()
            raise BadInputError(f"{distributor} of {title} {ver} has no item {item!r}; items: {', '.join(known)}")
        _set(conn, row, state, note, by, now)

    catalog.write(write, lock=f"schedule:{title.lower()}")


# -- reading the schedule ------------------------------------------------------------------------------------

class ItemStatus(BaseModel):
    version: str
    distributor: str
    item: str
    kind: Literal["deliverable", "manual-check", "document"]
    required: bool
    state: State
    qc: Literal["pass", "fail"] | None = None
    file: str | None = None
    bytes: int | None = None
    xxh128: str | None = None
    copies: int = 0  # archived copies holding this file (catalog)
    last_fixity: dt.datetime | None = None  # the oldest of the copies' last fixity checks: all verified since
    fixity_ok: bool | None = None  # every copy's last check matched
    overdue: bool = False
    updated_at: dt.datetime
    updated_by: str | None = None
    note: str | None = None


class DistributorStatus(BaseModel):
    version: str
    distributor: str
    due: dt.date | None = None
    items: int
    accepted: int
    overdue: int
    make_cost: float | None = None  # the latest run's
    monthly_storage_cost: float | None = None
    currency: str | None = None


class ScheduleStatus(BaseModel):
    """``deliver status --json``: published as specs/schema/status-1.json."""

    schema_: Literal["deliver-status-1"] = Field("deliver-status-1", alias="schema")
    title: str
    generated_at: dt.datetime
    distributors: list[DistributorStatus]
    items: list[ItemStatus]


def _done(state: str) -> bool:
    return state == "accepted"


def status(catalog: Catalog, title: str, *, version: str | None = None,
           today: dt.date | None = None) -> ScheduleStatus:
    """The schedule of a title (every version, or one)."""
    today = today or dt.date.today()
    where = [func.lower(schedule_items.c.title) == title.lower()]
    if version:
        where.append(schedule_items.c.version == version)
    with catalog.engine.connect() as conn:
        rows = conn.execute(select(schedule_items).where(*where).order_by(
            schedule_items.c.version, schedule_items.c.distributor, schedule_items.c.kind,
            schedule_items.c.item)).mappings().all()
        if not rows:
            raise BadInputError(f"no delivery schedule for title {title!r}{' ' + version if version else ''}; "
                                "run `deliver run` for it first")
        real_title = rows[0]["title"]
        dists = {(d["version"], d["distributor"]): d for d in conn.execute(select(schedule_distributors).where(
            schedule_distributors.c.title == real_title)).mappings()}
        hashes = sorted({r["xxh128"] for r in rows if r["xxh128"]})
        held: dict[str, list[tuple[dt.datetime | None, bool | None]]] = {}
        if hashes:
            for f in conn.execute(select(files.c.xxh128, files.c.last_verified_at, files.c.verified)
                                  .join(copies, files.c.copy_id == copies.c.id)
                                  .where(copies.c.title == real_title, files.c.xxh128.in_(hashes))).mappings():
                held.setdefault(f["xxh128"], []).append((f["last_verified_at"], f["verified"]))
        cost_rows = conn.execute(select(run_costs).where(run_costs.c.title == real_title)
                                 .order_by(run_costs.c.recorded_at)).mappings().all()
    items = []
    for r in rows:
        d = dists.get((r["version"], r["distributor"]))
        due = d["due"] if d is not None else None
        checks = held.get(r["xxh128"] or "", [])
        dates = [_utc(a) for a, _ in checks if a is not None]
        items.append(ItemStatus(
            version=r["version"], distributor=r["distributor"], item=r["item"], kind=r["kind"],
            required=r["required"], state=r["state"], qc=r["qc"], file=r["file"], bytes=r["bytes"],
            xxh128=r["xxh128"], copies=len(checks), last_fixity=min(dates) if len(dates) == len(checks) and dates
            else None, fixity_ok=all(bool(ok) for _, ok in checks) if checks else None,
            overdue=bool(due and due < today and r["required"] and not _done(r["state"])),
            updated_at=_utc(r["updated_at"]), updated_by=r["updated_by"], note=r["note"]))
    out = []
    for (ver, name), d in sorted(dists.items()):
        mine = [i for i in items if i.version == ver and i.distributor == name]
        if not mine:
            continue
        last = next((c for c in reversed(cost_rows) if c["version"] == ver
                     and name in c["distributors"].split(",")), None)
        out.append(DistributorStatus(
            version=ver, distributor=name, due=d["due"], items=len(mine), accepted=sum(_done(i.state) for i in mine),
            overdue=sum(i.overdue for i in mine), make_cost=last["make_cost"] if last else None,
            monthly_storage_cost=last["monthly_storage_cost"] if last else None,
            currency=last["currency"] if last else None))
    return ScheduleStatus(title=real_title, generated_at=_now(), distributors=out, items=items)


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands timezone-aware columns back naive (they were stored in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


CSV_FIELDS = ["version", "distributor", "item", "kind", "required", "state", "qc", "file", "bytes", "xxh128",
              "copies", "last_fixity", "fixity_ok", "overdue", "updated_at", "updated_by", "note"]


def status_csv(st: ScheduleStatus) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for i in st.items:
        row = i.model_dump(mode="json")
        w.writerow({k: "" if row[k] is None else row[k] for k in CSV_FIELDS})
    return buf.getvalue()


def _cell(v: object) -> str:
    return "" if v is None else str(v).replace("|", "\\|")


def status_markdown(st: ScheduleStatus) -> str:
    """The schedule as a markdown table (the run's Prefect artifact)."""
    md = [f"# Delivery schedule — {st.title}", ""]
    for d in st.distributors:
        cost = (f" · make {d.make_cost:.4f} {d.currency}" if d.make_cost is not None else "") + (
            f" · archive {d.monthly_storage_cost:.4f} {d.currency}/month" if d.monthly_storage_cost is not None else "")
        md.append(f"- **{d.distributor}** {d.version}: {d.accepted}/{d.items} accepted"
                  f"{f' · due {d.due}' if d.due else ''}{f' · {d.overdue} overdue' if d.overdue else ''}{cost}")
    md += ["", "| version | distributor | item | kind | state | qc | copies | last fixity | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    for i in st.items:
        md.append("| " + " | ".join(_cell(v) for v in (
            i.version, i.distributor, i.item, i.kind + ("" if i.required else " (optional)"),
            i.state + (" (overdue)" if i.overdue else ""), i.qc, i.copies or "",
            i.last_fixity.isoformat(timespec="seconds") if i.last_fixity else "", i.note)) + " |")
    return "\n".join(md)


# -- the nightly digest --------------------------------------------------------------------------------------

class ScheduleDigest(BaseModel):
    since: dt.datetime | None  # the previous digest (None: the first)
    overdue: list[ItemStatus]
    rejections: list[dict[str, str]]  # title, version, distributor, item, note, by, at


_LAST_DIGEST = "nightly_digest_at"


def nightly_digest(catalog: Catalog, *, today: dt.date | None = None,
                   now: dt.datetime | None = None) -> ScheduleDigest:
    """Overdue items of every title and the rejections recorded since the previous digest (then moved on)."""
    moment = now or _now()

    def write(conn: Connection) -> tuple[dt.datetime | None, list[dict[str, str]], list[str]]:
        raw = conn.execute(select(schedule_meta.c.value).where(schedule_meta.c.key == _LAST_DIGEST)).scalar()
        since = dt.datetime.fromisoformat(raw) if raw else None
        q = (select(schedule_items.c.title, schedule_items.c.version, schedule_items.c.distributor,
                    schedule_items.c.item, schedule_events.c.note, schedule_events.c.by, schedule_events.c.at)
             .join(schedule_items, schedule_items.c.id == schedule_events.c.item_id)
             .where(schedule_events.c.state == "rejected"))
        if since is not None:
            q = q.where(schedule_events.c.at > since)
        rejections = [{k: (_utc(v).isoformat(timespec="seconds") if isinstance(v, dt.datetime) else str(v or ""))
                       for k, v in r.items()} for r in conn.execute(q.order_by(schedule_events.c.at)).mappings()]
        titles = conn.execute(select(schedule_distributors.c.title).distinct().where(
            schedule_distributors.c.due.is_not(None))).scalars().all()
        stamp = moment.isoformat()
        if raw is None:
            conn.execute(insert(schedule_meta).values(key=_LAST_DIGEST, value=stamp))
        else:
            conn.execute(update(schedule_meta).where(schedule_meta.c.key == _LAST_DIGEST).values(value=stamp))
        return since, rejections, list(titles)

    since, rejections, titles = catalog.write(write, lock=_LAST_DIGEST)
    overdue = [i for t in titles for i in status(catalog, t, today=today).items if i.overdue]
    return ScheduleDigest(since=since, overdue=overdue, rejections=rejections)


def digest_markdown(d: ScheduleDigest) -> str:
    md = ["## Delivery schedule", "",
          f"Overdue items: {len(d.overdue)} · rejections since "
          f"{d.since.isoformat(timespec='seconds') if d.since else 'the first digest'}: {len(d.rejections)}"]
    if d.overdue:
        md += ["", "| distributor | version | item | state |", "|---|---|---|---|"]
        md += [f"| {_cell(i.distributor)} | {_cell(i.version)} | {_cell(i.item)} | {i.state} |" for i in d.overdue]
    for r in d.rejections:
        md.append(f"- **rejected** {r['title']} {r['version']} {r['distributor']} `{r['item']}` by {r['by']} "
                  f"at {r['at']}: {r['note']}")
    return "\n".join(md)


# -- costs ---------------------------------------------------------------------------------------------------

class CostRow(BaseModel):
    title: str
    version: str
    distributors: list[str]
    recorded_at: dt.datetime
    cpu_s: float
    wall_s: float
    made_bytes: int
    archived_bytes: int
    make_cost: float | None
    monthly_storage_cost: float | None
    currency: str | None


class CostSummary(BaseModel):
    runs: list[CostRow]
    cpu_s: float
    wall_s: float
    made_bytes: int
    archived_bytes: int
    make_cost: float | None  # of the priced runs
    monthly_storage_cost: float | None
    currencies: list[str]


def cost_summary(catalog: Catalog, *, title: str | None = None, since: dt.date | None = None) -> CostSummary:
    """Every recorded run (of ``title``, since ``since``) and their sums."""
    q = select(run_costs)
    if title:
        q = q.where(func.lower(run_costs.c.title) == title.lower())
    if since:
        q = q.where(run_costs.c.recorded_at >= dt.datetime.combine(since, dt.time(), dt.UTC))
    with catalog.engine.connect() as conn:
        rows = conn.execute(q.order_by(run_costs.c.recorded_at)).mappings().all()
    runs = [CostRow(title=r["title"], version=r["version"], distributors=r["distributors"].split(","),
                    recorded_at=_utc(r["recorded_at"]), cpu_s=r["cpu_s"], wall_s=r["wall_s"],
                    made_bytes=r["made_bytes"], archived_bytes=r["archived_bytes"], make_cost=r["make_cost"],
                    monthly_storage_cost=r["monthly_storage_cost"], currency=r["currency"]) for r in rows]
    make = [r.make_cost for r in runs if r.make_cost is not None]
    store = [r.monthly_storage_cost for r in runs if r.monthly_storage_cost is not None]
    return CostSummary(runs=runs, cpu_s=sum(r.cpu_s for r in runs), wall_s=sum(r.wall_s for r in runs),
                       made_bytes=sum(r.made_bytes for r in runs), archived_bytes=sum(r.archived_bytes for r in runs),
                       make_cost=sum(make) if make else None, monthly_storage_cost=sum(store) if store else None,
                       currencies=sorted({r.currency for r in runs if r.currency}))


def schema_json() -> str:
    """The published JSON Schema of ``deliver status --json`` (specs/schema/status-1.json)."""
    doc = ScheduleStatus.model_json_schema(by_alias=True)
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "status-1.json", **doc}
    return json.dumps(doc, indent=2) + "\n"
