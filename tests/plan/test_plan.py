"""A title's delivery plan: lint with file:line, and one run for three distributors on tiny generated media."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from specs.plan import lint_plan, load_plan
from tasks.archive.hashing import hash_file_xxh128
from tasks.media.synth import make_sample_set

register_commands()
SPECS = Path(__file__).parent / "specs"
STATUS_SCHEMA = Path(__file__).resolve().parents[2] / "specs" / "schema" / "status-1.json"


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _plan_file(folder: Path, media, *, third: str | None = "strict") -> Path:
    """demo and partner (the same mezzanine) and a third test spec (strict: its QC fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    dists = [{"spec": "demo"},
             {"spec": str(SPECS / "partner.yaml"), "recipient": "ACME", "territory": "GB", "lang": "en"}]
    if third:
        dists.append({"spec": str(SPECS / f"{third}.yaml")})
    doc = {"title": "COPRO", "version": "v1", "languages": ["en"],
           "master": os.path.relpath(media.master, folder),  # relative: resolved against the plan file
           "mixes": [os.path.relpath(media.mixes["5.1"], folder), os.path.relpath(media.mixes["2.0"], folder)],
           "distributors": dists, "archive": []}
    path = folder / "copro.plan.yaml"
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_sample_set(tmp_path_factory.mktemp("plan") / "media", layout="5.1", stereo=True)


def test_plan_lint_reports_file_line(tmp_path):
    bad = tmp_path / "bad.plan.yaml"
    bad.write_text("title: X\nmaster: m.mov\nmixes: [a.wav]\ndistributors:\n  - spec: demo\n    recipint: ACME\n"
                   "  - spec: nosuchspec\n")
    issues = [str(i) for i in lint_plan(bad)]
    assert issues and issues[0].startswith(f"{bad}:6:5:") and "recipint" in issues[0], issues
    dup = tmp_path / "dup.plan.yaml"
    dup.write_text("title: X\nmaster: m.mov\nmixes: [a.wav]\ndistributors:\n  - spec: demo\n  - spec: demo\n")
    issues = [str(i) for i in lint_plan(dup)]
    assert len(issues) == 1 and "both named 'demo'" in issues[0], issues
    unknown = tmp_path / "unknown.plan.yaml"
    unknown.write_text("title: X\nmaster: m.mov\nmixes: [a.wav]\ndistributors:\n  - spec: nosuchspec\n")
    issues = [str(i) for i in lint_plan(unknown)]
    assert len(issues) == 1 and issues[0].startswith(f"{unknown}:5:11:"), issues
    result = _run(["plan", "lint", str(bad)])
    assert result.exit_code == 1 and ":6:5:" in result.output


def test_plan_paths_resolve_against_the_plan_file(media, tmp_path):
    plan = load_plan(_plan_file(tmp_path / "plans", media))
    assert plan.master == str(media.master.resolve())
    assert plan.mixes[0] == str(media.mixes["5.1"].resolve())
    assert plan.names() == ["demo", "partner", "strict"]


def _ffmpeg_commands(log: Path) -> list[list[str]]:
    return [shlex.split(m.group(1)) for m in re.finditer(r"\$ (\S*ffmpeg .*)$", log.read_text(), re.MULTILINE)]


def _status(title: str) -> dict:
    import jsonschema

    result = _run(["status", title, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    jsonschema.validate(doc, json.loads(STATUS_SCHEMA.read_text()))  # the published schema
    return doc


def test_three_distributors_one_run(media, tmp_path, monkeypatch):
    monkeypatch.setenv("DELIVER_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    out = tmp_path / "out"
    result = _run(["run", "--plan", str(_plan_file(tmp_path / "plans", media)), "--out", str(out),
                   "--date", "2026-12-07"])
    assert result.exit_code == 1, result.output  # strict's QC failed: the run says so
    report = json.loads((out / "report.json").read_text())
    by = {d["name"]: d for d in report["distributors"]}
    assert list(by) == ["demo", "partner", "strict"]
    # per-distributor verdicts and gates: strict fails on loudness and gets nothing; the others are delivered
    assert by["strict"]["verdict"] == "fail" and by["strict"]["delivered"] is False
    assert any(f["check"].startswith("loudness") or "loud" in f["check"] for f in by["strict"]["findings"]
               if f["severity"] == "error")
    assert not (out / "strict" / "COPRO_v1").exists()
    for name in ("demo", "partner"):
        assert by[name]["verdict"] == "pass" and by[name]["delivered"] is True, by[name]["findings"]
        assert Path(by[name]["report"]).is_file()
    assert report["delivered"] is False and report["verdict"] == "fail"

    cmds = _ffmpeg_commands(out / "work" / "deliver.log")
    # one layback: a single married master for three distributors of the same track mapping
    married = [c for c in cmds if any("_layback" in a for a in c) and c[-1].endswith(".mov") and "_layback" in c[-1]]
    assert len(married) == 1, married
    assert {d["layback"] for d in by.values()} == {str(out / "work" / "COPRO_v1_layback.mov")}
    # one analysis of the married master: one picture decode (rawvideo to a pipe) and one decode per audio stream,
    # as a single-spec QC does
    layback_file = by["demo"]["layback"]
    # (seeks with -ss read a frame or two for the reports' thumbnails: not analysis decodes)
    reads = [c for c in cmds if layback_file in c and "pipe:1" in c[-1:] + c[-2:] and "-ss" not in c]
    picture = [c for c in reads if "rawvideo" in c]
    assert len(picture) == 1, picture
    audio = [c for c in reads if "rawvideo" not in c]
    assert len(audio) == 2, audio  # two streams (5.1, 2.0), each decoded once for three specs
    # one deliverables decode: every delivered distributor's deliverables (the shared mezzanine, both screeners)
    # and the extras are outputs of ONE ffmpeg command reading the married master
    made = [c for c in cmds if layback_file in c and c[c.index(layback_file) - 1] == "-i" and "-ss" not in c
            and any(str(out / n) in a for a in c for n in ("demo", "partner"))]
    assert len(made) == 1, made
    outputs = [Path(a).name for a in made[0] if str(out) in a and a != layback_file]
    assert {o.split(".partial")[0] for o in outputs} >= {"COPRO_v1_mezzanine", "COPRO_v1_screener",
                                                        "COPRO_v1_screener_ACME", "COPRO_v1_poster"}, outputs

    # the shared mezzanine: encoded once, present and verified in both packages
    mezz = [c for c in cmds if any(a.endswith(".mov") and "COPRO_v1_mezzanine" in a and c[k - 1] != "-i"
                                   for k, a in enumerate(c))]  # as an output, not read back by verification
    assert len(mezz) == 1, mezz
    a = out / "demo" / "COPRO_v1" / "COPRO_v1_mezzanine.mov"
    b = out / "partner" / "COPRO_v1" / "COPRO_v1_mezzanine.mov"
    assert a.is_file() and b.is_file()
    assert os.path.samefile(a, b) or hash_file_xxh128(a) == hash_file_xxh128(b)
    assert "COPRO_v1_mezzanine.mov" in by["partner"]["shared"]
    entry = {d["name"]: d for d in by["partner"]["deliverables"]}["COPRO_v1_mezzanine.mov"]
    assert entry["xxh128"] == hash_file_xxh128(b)
    # the screeners differ (the partner's carries its recipient) and are each made
    assert (out / "partner" / "COPRO_v1" / "COPRO_v1_screener_ACME.mp4").is_file()
    assert (out / "demo" / "COPRO_v1" / "COPRO_v1_screener.mp4").is_file()
    assert hash_file_xxh128(out / "partner" / "COPRO_v1" / "COPRO_v1_screener_ACME.mp4") != hash_file_xxh128(
        out / "demo" / "COPRO_v1" / "COPRO_v1_screener.mp4")
    assert not list(out.rglob("*.partial*"))

    # the schedule: every distributor's items, in the state this run left them (no archive: qc-pass; the
    # distributor whose QC failed: qc-fail), the published schema; the run's artifacts link to it
    items = {(i["distributor"], i["item"]): i for i in _status("COPRO")["items"]}
    assert {d for d, _ in items} == {"demo", "partner", "strict"}
    for name in ("demo", "partner"):
        entries = {e["name"]: e for e in by[name]["deliverables"]}
        for item in ("mezzanine", "screener"):
            i = items[(name, item)]
            assert (i["kind"], i["state"], i["qc"]) == ("deliverable", "qc-pass", "pass"), i
            assert entries[i["file"]]["xxh128"] == i["xxh128"] and entries[i["file"]]["size"] == i["bytes"]
    assert items[("demo", "mezzanine")]["xxh128"] == items[("partner", "mezzanine")]["xxh128"]
    strict = [i for (d, _), i in items.items() if d == "strict" and i["kind"] == "deliverable"]
    assert strict and {(i["state"], i["qc"], i["file"]) for i in strict} == {("qc-fail", "fail", None)}
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as c:
        arts = {a.key: a.data for a in c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["delivery-schedule-copro-v1", "deliverable-links-copro-v1"])))}
    assert "| v1 | partner | mezzanine | deliverable | qc-pass | pass |" in arts["delivery-schedule-copro-v1"]
    assert "| v1 | strict | mezzanine | deliverable | qc-fail | fail |" in arts["delivery-schedule-copro-v1"]
    assert "delivery-schedule-copro-v1" in arts["deliverable-links-copro-v1"]

    # each delivered distributor's package has its delivery document (HTML, and PDF when Chromium is here)
    # listing its own deliverables; the failed one gets none
    for name in ("demo", "partner"):
        docs = sorted((out / name / "COPRO_v1" / "documents").glob(f"{name}_delivery_*"))
        html = [d for d in docs if d.suffix == ".html"]
        assert len(html) == 1, docs
        text = html[0].read_text()
        assert f"for {name}" in text
        for e in by[name]["deliverables"]:
            assert e["name"] in text and e["xxh128"] in text
        if shutil.which("chromium"):
            assert [d.suffix for d in docs] == [".html", ".pdf"] and docs[1].read_bytes()[:5] == b"%PDF-"
        assert {str(d) for d in docs} <= set(report["documents"])


def _master_reads(cmds: list[list[str]], master: str) -> dict[str, list[list[str]]]:
    """The ffmpeg commands reading (``-i``) ``master``, by what they are: the picture analysis (rawvideo to a
    pipe), audio analyses (to a pipe), deliverables (outputs under OUT), frame grabs (a seek, ``-ss``)."""
    kinds: dict[str, list[list[str]]] = {"picture": [], "audio": [], "deliverables": [], "seek": [], "other": []}
    for c in cmds:
        if not any(a == master and c[k - 1] == "-i" for k, a in enumerate(c) if k):
            continue
        if "-ss" in c:
            kinds["seek"].append(c)
        elif "pipe:1" in c[-2:]:
            kinds["picture" if "rawvideo" in c else "audio"].append(c)
        elif any(".partial" in a for a in c):
            kinds["deliverables"].append(c)
        else:
            kinds["other"].append(c)
    return kinds


def test_three_distributors_delivered_from_one_decode(media, tmp_path, monkeypatch):
    """Done when: three distributors, two of them sharing an identical mezzanine, as one flow: one layback, one
    analysis decode and one deliverables decode of the master (counted in the run's log), a verdict each; the
    shared mezzanine encoded once, present in both packages (one inode, or a verified copy) and verified there."""
    from tasks.media.probe import probe

    monkeypatch.setenv("DELIVER_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    out = tmp_path / "out"
    result = _run(["run", "--plan", str(_plan_file(tmp_path / "plans", media, third="broadcaster")), "--out",
                   str(out), "--date", "2026-12-07"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    by = {d["name"]: d for d in report["distributors"]}
    assert [(n, d["verdict"], d["delivered"]) for n, d in by.items()] == [
        ("demo", "pass", True), ("partner", "pass", True), ("broadcaster", "pass", True)]
    assert report["delivered"] is True and report["verdict"] == "pass"
    for name, d in by.items():  # each distributor's own report, with its own spec's verdict
        own = json.loads(Path(d["report"]).read_text())
        assert (own["spec"], own["verdict"]) == (name, "pass")

    cmds = _ffmpeg_commands(out / "work" / "deliver.log")
    layback = [c for c in cmds if "COPRO_v1_layback" in Path(c[-1]).name and c[-1].endswith(".mov")]  # its output
    assert len(layback) == 1, layback
    married = str(out / "work" / "COPRO_v1_layback.mov")
    assert {d["layback"] for d in by.values()} == {married}
    assert not any(c for c in cmds if any(a.startswith(str(out / "work" / "COPRO_v1_layback-")) for a in c))
    # every ffmpeg read of the married master: ONE picture decode for the analysis of three specs, each of its
    # two audio streams decoded once, ONE decode for every distributor's deliverables; nothing else but seeks
    # (a frame or two for thumbnails)
    reads = _master_reads(cmds, married)
    assert [len(reads[k]) for k in ("picture", "audio", "deliverables", "other")] == [1, 2, 1, 0], reads
    outputs = {Path(a).name.split(".partial")[0]: Path(a).parent for a in reads["deliverables"][0]
               if ".partial" in a}
    assert outputs["COPRO_v1_screener"] == out / "demo" / "COPRO_v1"
    assert outputs["COPRO_v1_screener_ACME"] == out / "partner" / "COPRO_v1"
    # two mezzanines from that decode: the one demo and partner share (made in demo's package), broadcaster's own
    mezz = sorted(str(Path(a).parent) for a in reads["deliverables"][0] if "COPRO_v1_mezzanine.partial" in a)
    assert mezz == sorted([str(out / "demo" / "COPRO_v1"), str(out / "broadcaster" / "COPRO_v1")]), mezz
    # and no other ffmpeg command writes a mezzanine (partner's is placed, not encoded)
    assert not [c for c in cmds if c not in reads["deliverables"] and any("COPRO_v1_mezzanine" in a and
                                                                          c[k - 1] != "-i" for k, a in enumerate(c))]

    a = out / "demo" / "COPRO_v1" / "COPRO_v1_mezzanine.mov"
    b = out / "partner" / "COPRO_v1" / "COPRO_v1_mezzanine.mov"
    c = out / "broadcaster" / "COPRO_v1" / "COPRO_v1_mezzanine.mov"
    assert os.path.samefile(a, b) or hash_file_xxh128(a) == hash_file_xxh128(b)  # one inode (or a copy)
    assert by["partner"]["shared"] == ["COPRO_v1_mezzanine.mov"] and by["demo"]["shared"] == []
    assert hash_file_xxh128(a) != hash_file_xxh128(c)
    pa, pc = probe(a), probe(c)
    assert [s.channels for s in pa.audio] == [6, 2] and [s.channels for s in pc.audio] == [6]
    assert pa.primary_video is not None and pa.primary_video.codec == "prores"
    assert abs((pa.duration_s or 0) - (pc.duration_s or 0)) <= 0.05  # one programme, within two frames
    # verified in both packages: each manifest's entry is the file's hash, and `deliver verify` re-hashes every
    # package against its ASC MHL
    for name, path in (("demo", a), ("partner", b)):
        entry = {e["name"]: e for e in by[name]["deliverables"]}["COPRO_v1_mezzanine.mov"]
        assert (entry["xxh128"], entry["size"]) == (hash_file_xxh128(path), path.stat().st_size)
    for name in by:
        check = _run(["verify", str(out / name / "COPRO_v1"), "--json"])
        assert check.exit_code == 0, check.output
        copy = json.loads(check.output)["copies"][0]
        assert copy["ok"] is True and copy["files"] >= 2, copy
    # the schedule: every distributor's items made and QC-passed, the shared mezzanine's hash in both
    items = {(i["distributor"], i["item"]): i for i in _status("COPRO")["items"] if i["kind"] == "deliverable"}
    assert {k: (i["state"], i["qc"]) for k, i in items.items()} == {
        k: ("qc-pass", "pass") for k in [("demo", "mezzanine"), ("demo", "screener"), ("partner", "mezzanine"),
                                         ("partner", "screener"), ("broadcaster", "mezzanine")]}
    assert items[("demo", "mezzanine")]["xxh128"] == items[("partner", "mezzanine")]["xxh128"] != items[
        ("broadcaster", "mezzanine")]["xxh128"]


def test_plan_schema_is_committed():
    from specs.plan import PLAN_SCHEMA_FILE, plan_json_schema

    assert json.loads(PLAN_SCHEMA_FILE.read_text()) == plan_json_schema()


def test_repeated_spec_is_the_short_form_of_a_plan(media, tmp_path):
    from flows.deployments import PlanRequest, build_request
    from specs.errors import BadInputError

    req = build_request(PlanRequest, specs=["demo", str(SPECS / "partner.yaml")], master=str(media.master),
                        mixes=[str(media.mixes["5.1"]), str(media.mixes["2.0"])], title="SHORT", out=str(tmp_path),
                        recipient="ACME")
    plan = req.resolved_plan()
    assert plan.names() == ["demo", "partner"] and [d.recipient for d in plan.distributors] == ["ACME", "ACME"]
    with pytest.raises(BadInputError, match="--master"):
        build_request(PlanRequest, specs=["demo", "ebu-r128"], mixes=["a.wav"], title="X", out=str(tmp_path))


def test_run_with_a_broken_plan_is_refused_with_its_line(tmp_path):
    bad = tmp_path / "bad.plan.yaml"
    bad.write_text("title: X\nmaster: m.mov\nmixes: [a.wav]\ndistributors:\n  - spec: demo\n    recipint: ACME\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--plan", str(bad), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{bad}:6:5:" in result.output and "recipint" in result.output
    assert not out.exists()  # nothing written


def test_rules_on_a_shared_analysis_equal_each_spec_alone(media, tmp_path):
    """Measurements are spec-independent: three specs' rules on one analysis give each spec's own QC."""
    from specs.loader import load_spec
    from tasks.layback import layback, plan_layback
    from tasks.media.probe import probe
    from tasks.qc.engine import qc_master, qc_masters

    specs = [load_spec("demo"), load_spec(SPECS / "partner.yaml"), load_spec(SPECS / "strict.yaml")]
    plan = plan_layback(probe(media.master), [probe(media.mixes["5.1"]), probe(media.mixes["2.0"])], specs[0])
    married = tmp_path / "married.mov"
    layback(plan, specs[0], married)
    info = probe(married)
    together = qc_masters(info, specs, layback=plan)
    for spec, shared in zip(specs, together, strict=True):
        alone = qc_master(info, spec, layback=plan)
        assert [f.model_dump() for f in shared.findings] == [f.model_dump() for f in alone.findings], spec.name
        assert shared.measurements == alone.measurements, spec.name
    errors = {f.check for f in together[2].findings if f.severity.value == "error"}
    assert errors and all("loud" in c for c in errors), errors  # strict: only its loudness target fails
    assert not [f for f in together[0].findings if f.severity.value == "error"]


def test_specs_differing_in_gating_and_severities_share_one_audio_decode(media, tmp_path, caplog):
    """The plan bench's three specs (Netflix and Amazon gate loudness on dialogue, EBU R 128 does not; their
    signal-check thresholds, severities and clauses differ): one layback and one decode of each audio stream serve
    all three, and each spec's results are those of its own QC."""
    import logging

    from specs.loader import load_spec
    from tasks.layback import layback, layback_identity, plan_layback
    from tasks.media.probe import probe
    from tasks.qc.engine import qc_master, qc_masters

    specs = [load_spec(n) for n in ("netflix", "amazon", "ebu-r128")]
    demo = load_spec("demo")
    inputs = [probe(media.mixes["5.1"]), probe(media.mixes["2.0"])]
    # one layback for all three: the same track mapping, only the tracks' names differ ("5.1 printmaster",
    # "5.1 full mix", "5.1 main mix")
    assert len({layback_identity(plan_layback(probe(media.master), inputs, s), s) for s in specs}) == 1
    assert len({s.audio.tracks[0].label for s in specs}) == 3
    plan = plan_layback(probe(media.master), inputs, demo)
    married = tmp_path / "married.mov"
    layback(plan, demo, married)
    info = probe(married)
    caplog.set_level(logging.INFO, logger="deliver.ffmpeg")
    caplog.clear()
    together = qc_masters(info, specs)
    reads = _master_reads([shlex.split(r.getMessage()[2:]) for r in caplog.records
                           if r.getMessage().startswith("$ ")], str(married))
    assert [len(reads[k]) for k in ("picture", "audio")] == [1, 2], reads  # per stream, not per spec
    for spec, shared in zip(specs, together, strict=True):
        alone = qc_master(info, spec)
        assert [f.model_dump() for f in shared.findings] == [f.model_dump() for f in alone.findings], spec.name
        assert shared.measurements == alone.measurements, spec.name
    gated = [[t.get("dialogue_lufs", "absent") for t in r.measurements["loudness"]] for r in together]
    assert gated[2] == ["absent", "absent"] or all(x is None for x in gated[2]), gated  # EBU: no dialogue figure


def test_repeated_spec_delivers_every_package_and_exits_0(media, tmp_path):
    out = tmp_path / "out"
    result = _run(["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                   str(media.mixes["2.0"]), "--spec", "demo", "--spec", str(SPECS / "partner.yaml"),
                   "--title", "SHORT", "--recipient", "ACME", "--out", str(out), "--date", "2026-12-07"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["delivered"] is True and report["verdict"] == "pass"
    assert [(d["name"], d["delivered"]) for d in report["distributors"]] == [("demo", True), ("partner", True)]
    a, b = out / "demo" / "SHORT_v1" / "SHORT_v1_mezzanine.mov", out / "partner" / "SHORT_v1" / "SHORT_v1_mezzanine.mov"
    assert os.path.samefile(a, b)  # one file, two packages
    assert {e["name"] for e in report["distributors"][1]["deliverables"]} >= {"SHORT_v1_mezzanine.mov",
                                                                             "SHORT_v1_screener_ACME.mp4"}
