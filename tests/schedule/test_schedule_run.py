"""The delivery schedule and the costs of real deliver runs: tiny generated media, a real SQLite catalog,
a real Prefect API; status/mark/costs through the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.media.synth import BlackDefect, make_sample_set

register_commands()
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "specs" / "schema" / "status-1.json").read_text())
CPU_HOUR, DEFAULT_GB_MONTH, VAULT_GB_MONTH = 0.05, 0.023, 0.011


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _status(title: str) -> dict:
    result = _run(["status", title, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    jsonschema.validate(doc, SCHEMA)  # the published schema
    return doc


def _items(doc: dict, distributor: str = "demo") -> dict[str, dict]:
    return {i["item"]: i for i in doc["items"] if i["distributor"] == distributor}


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    """One delivered and archived run of title SCHED against demo, its own catalog and prices."""
    root = tmp_path_factory.mktemp("sched")
    vault = root / "vault"
    storage = root / "storage.yaml"
    storage.write_text(f"prices:\n  currency: EUR\n  cpu_hour: {CPU_HOUR}\n  gb_month_default: {DEFAULT_GB_MONTH}\n"
                       f"  gb_month_by_target: {{'{vault}': {VAULT_GB_MONTH}}}\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("DELIVER_CATALOG_URL", f"sqlite:///{root / 'catalog.sqlite'}")
    mp.setenv("DELIVER_STORAGE_CONFIG", str(storage))
    media = make_sample_set(root / "media", layout="5.1", stereo=True)
    out = root / "out"
    t0 = time.monotonic()
    result = _run(["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                   str(media.mixes["2.0"]), "--spec", "demo", "--title", "SCHED", "--out", str(out),
                   "--archive", str(vault)])
    wall_s = time.monotonic() - t0
    assert result.exit_code == 0, result.output
    yield {"out": out, "vault": vault, "media": media, "wall_s": wall_s, "root": root,
           "report": json.loads((out / "report.json").read_text())}
    mp.undo()


def test_run_records_every_item_with_its_state(delivered):
    report = delivered["report"]
    items = _items(_status("SCHED"))
    by_name = {d["name"]: d for d in report["deliverables"]}
    for item in ("mezzanine", "screener"):
        i = items[item]
        assert (i["kind"], i["state"], i["qc"], i["required"]) == ("deliverable", "archived", "pass", True)
        assert by_name[i["file"]]["xxh128"] == i["xxh128"] and by_name[i["file"]]["size"] == i["bytes"]
        assert i["copies"] == 1 and i["fixity_ok"] is True and i["last_fixity"] is not None
    # demo's paperwork: the cue sheet required, the E&O certificate optional; nothing moved them yet
    assert (items["music-cue-sheet"]["kind"], items["music-cue-sheet"]["required"]) == ("document", True)
    assert (items["eo-certificate"]["required"], items["eo-certificate"]["state"]) == (False, "required")
    assert set(items) == {"mezzanine", "screener", "music-cue-sheet", "eo-certificate"}  # demo has no manual checks
    # the run's artifacts link to the schedule: its table as markdown
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as c:
        key = ArtifactFilterKey(any_=["delivery-schedule-sched-v1"])
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(key=key))
    assert arts and "| v1 | demo | mezzanine | deliverable | archived | pass | 1 |" in arts[0].data


def test_mark_sent_then_accepted_and_rejected_with_who_and_note(delivered):
    assert _run(["mark", "SCHED", "demo", "mezzanine", "sent", "--by", "coord"]).exit_code == 0
    assert _items(_status("SCHED"))["mezzanine"]["state"] == "sent"
    result = _run(["mark", "SCHED", "demo", "mezzanine", "accepted", "--note", "QC ref 4711", "--by", "ana"])
    assert result.exit_code == 0, result.output
    result = _run(["mark", "SCHED", "demo", "music-cue-sheet", "rejected", "--note", "missing publisher"])
    assert result.exit_code == 0, result.output
    items = _items(_status("SCHED"))
    assert (items["mezzanine"]["state"], items["mezzanine"]["updated_by"], items["mezzanine"]["note"]) == (
        "accepted", "ana", "QC ref 4711")
    assert (items["music-cue-sheet"]["state"], items["music-cue-sheet"]["note"]) == ("rejected", "missing publisher")
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(items["mezzanine"]["updated_at"])
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=5)
    # bad input: one line, exit 2
    bad = CliRunner().invoke(app, ["mark", "SCHED", "demo", "no-such-item", "sent"])
    assert bad.exit_code == 2 and "no item 'no-such-item'" in bad.output
    bad = CliRunner().invoke(app, ["mark", "SCHED", "demo", "mezzanine", "lost"])
    assert bad.exit_code == 2 and "use one of" in bad.output


def test_fixity_run_moves_the_archived_items_last_fixity(delivered):
    before = _items(_status("SCHED"))["screener"]["last_fixity"]
    time.sleep(1.1)  # the catalog keeps times to the microsecond; a clear second between the checks
    result = _run(["verify", str(delivered["vault"] / "SCHED_v1")])
    assert result.exit_code == 0, result.output
    after = _items(_status("SCHED"))["screener"]
    assert dt.datetime.fromisoformat(after["last_fixity"]) - dt.datetime.fromisoformat(before) >= dt.timedelta(
        seconds=1)
    assert after["fixity_ok"] is True


def test_csv_parses_and_matches_the_json(delivered):
    doc = _status("SCHED")
    result = _run(["status", "SCHED", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["distributor"], r["item"], r["state"]) for r in rows] == [
        (i["distributor"], i["item"], i["state"]) for i in doc["items"]]
    assert "Delivery schedule" in _run(["status", "SCHED"]).output  # the Rich table


def test_cost_summary_adds_up_to_step_timings_and_archived_bytes(delivered):
    costs = delivered["report"]["costs"]
    steps = {s["step"]: s for s in costs["steps"]}
    assert {"probe", "fingerprint", "layback", "qc", "deliverables", "package", "archive"} <= set(steps)
    assert costs["cpu_s"] == pytest.approx(sum(s["cpu_s"] for s in costs["steps"]), abs=1e-9)
    assert costs["wall_s"] == pytest.approx(sum(s["wall_s"] for s in costs["steps"]), abs=1e-9)
    assert steps["deliverables"]["cpu_s"] > 0.05  # ffmpeg children counted
    serial = sum(steps[s]["wall_s"] for s in ("layback", "qc", "deliverables", "package", "archive"))
    assert serial <= delivered["wall_s"]  # steps that run one after another fit in the run's wall time
    # bytes written per deliverable: the files' sizes
    assert costs["deliverable_bytes"] == {d["name"]: Path(d["path"]).stat().st_size
                                          for d in delivered["report"]["deliverables"]}
    # bytes stored: every file of the archived copy as on disk, but its ASC MHL history (a few KB, not counted)
    copy = delivered["vault"] / "SCHED_v1"
    on_disk = sum(p.stat().st_size for p in copy.rglob("*") if p.is_file() and "ascmhl" not in p.parts)
    assert costs["archived_bytes"] == on_disk == costs["archive"][0]["bytes"]
    # priced: the vault's own price wins over the default; the arithmetic on the measured values
    assert costs["archive"][0]["price_gb_month"] == VAULT_GB_MONTH
    assert costs["monthly_storage_cost"] == pytest.approx(on_disk / 1e9 * VAULT_GB_MONTH, rel=1e-12)
    assert costs["make_cost"] == pytest.approx(costs["cpu_s"] / 3600 * CPU_HOUR, rel=1e-12)
    # deliver costs sums the recorded runs: here the one run
    result = _run(["costs", "--title", "SCHED", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert len(summary["runs"]) == 1 and summary["currencies"] == ["EUR"]
    for key in ("cpu_s", "wall_s", "archived_bytes", "made_bytes", "make_cost", "monthly_storage_cost"):
        assert summary[key] == pytest.approx(costs[key], rel=1e-12), key
    later = _run(["costs", "--since", (dt.date.today() + dt.timedelta(days=1)).isoformat(), "--json"])
    assert json.loads(later.output)["runs"] == []
    # and the schedule shows them per distributor
    dist = _status("SCHED")["distributors"][0]
    assert dist["monthly_storage_cost"] == pytest.approx(costs["monthly_storage_cost"], rel=1e-12)
    assert dist["make_cost"] == pytest.approx(costs["make_cost"], rel=1e-12)


def test_nightly_digest_of_overdue_items_and_rejections(delivered):
    from tasks.archive.catalog import Catalog
    from tasks.schedule import digest_markdown, nightly_digest

    first = nightly_digest(Catalog())  # moves the marker to now
    yesterday = dt.date.today() - dt.timedelta(days=1)
    assert _run(["mark", "SCHED", "demo", "--due", yesterday.isoformat()]).exit_code == 0
    assert _run(["mark", "SCHED", "demo", "screener", "rejected", "--note", "wrong slate", "--by", "qa"]).exit_code == 0
    digest = nightly_digest(Catalog())
    assert digest.since is not None and digest.since >= (first.since or digest.since)
    overdue = {i.item for i in digest.overdue if i.distributor == "demo"}
    items = _items(_status("SCHED"))
    # every required item not accepted is overdue; the optional E&O certificate and accepted ones are not
    assert overdue == {k for k, i in items.items() if i["required"] and i["state"] != "accepted"}
    assert "mezzanine" not in overdue and "eo-certificate" not in overdue
    assert [(r["item"], r["note"], r["by"]) for r in digest.rejections] == [("screener", "wrong slate", "qa")]
    assert "wrong slate" in digest_markdown(digest)
    assert nightly_digest(Catalog()).rejections == []  # only rejections since the previous digest


def test_failed_qc_is_recorded_as_qc_fail_with_its_costs(delivered, tmp_path):
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            defects=[BlackDefect(at_s=1.0, duration_s=1.2)])
    result = _run(["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                   str(media.mixes["2.0"]), "--spec", "demo", "--title", "SCHEDFAIL", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    items = _items(_status("SCHEDFAIL"))
    assert (items["mezzanine"]["state"], items["mezzanine"]["qc"], items["mezzanine"]["copies"]) == (
        "qc-fail", "fail", 0)
    assert items["mezzanine"]["file"] is None
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["costs"]["archived_bytes"] == 0 and report["costs"]["monthly_storage_cost"] is None
    assert {"layback", "qc"} <= {s["step"] for s in report["costs"]["steps"]}


def test_nightly_flow_verifies_the_archive_and_reports_the_schedule(delivered, tmp_path):
    """The night's fixity rotation (catalog copies) moves the last fixity; its report lists overdue items and
    the rejections recorded since the previous digest."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.deployments import NightlyRequest
    from flows.nightly import nightly_qc_flow

    before = _items(_status("SCHED"))["mezzanine"]["last_fixity"]
    assert _run(["mark", "SCHED", "demo", "--due", "2000-01-01"]).exit_code == 0
    assert _run(["mark", "SCHED", "demo", "screener", "rejected", "--note", "audio swap", "--by", "qa2"]).exit_code == 0
    cfg = tmp_path / "nightly.yaml"
    cfg.write_text(json.dumps({"schedule": {"cron": "0 2 * * *", "timezone": "UTC"}, "watch_folders": [],
                               "reports": str(tmp_path / "reports"), "state": str(tmp_path / "state.json"),
                               "fixity": {"rotation_nights": 1, "catalog": True}}))
    time.sleep(1.1)
    state = nightly_qc_flow(NightlyRequest(config=str(cfg)), return_state=True)
    summary = state.result(raise_on_failure=False)
    assert [(r.kind, r.result) for r in summary.rows] == [("fixity", "ok")]  # the one archived copy
    after = _items(_status("SCHED"))["mezzanine"]["last_fixity"]
    assert dt.datetime.fromisoformat(after) - dt.datetime.fromisoformat(before) >= dt.timedelta(seconds=1)
    digest = summary.schedule
    assert [(r["item"], r["note"]) for r in digest["rejections"]] == [("screener", "audio swap")]
    assert "screener" in {i["item"] for i in digest["overdue"]}
    with get_client(sync_client=True) as c:
        art = c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-report"])))[0]
    assert "## Delivery schedule" in art.data and "audio swap" in art.data
