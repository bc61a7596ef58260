"""Several distributors from one run (the shape of a plan run's report): each gets its own items and states."""

from __future__ import annotations

import datetime as dt
from typing import Any

from specs.loader import load_spec
from tasks.archive.catalog import Catalog
from tasks.report import DeliverableEntry, Report
from tasks.schedule import distributors_of, mark, record_run, status


class PlanReport(Report):
    """report.json of a plan run: one entry per distributor."""

    distributors: list[dict[str, Any]] = []


def test_two_distributors_one_failing_each_with_its_own_state(tmp_path):
    demo, netflix = load_spec("demo"), load_spec("netflix")
    mez = DeliverableEntry(name="T_v1_mezzanine.mov", path="/x/T_v1_mezzanine.mov", size=1234, xxh128="a" * 32,
                           kind="mezzanine")
    report = PlanReport(verdict="fail", spec="plan", findings=[], title="T", version="v1", distributors=[
        {"spec": "demo", "verdict": "pass", "delivered": True, "deliverables": [mez.model_dump()],
         "due": "2000-01-02"},
        {"spec": "netflix", "verdict": "fail", "delivered": False, "deliverables": []}])
    runs = distributors_of(report, [demo, netflix])
    assert [(r.spec.name, r.verdict, r.delivered) for r in runs] == [("demo", "pass", True),
                                                                      ("netflix", "fail", False)]
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    record_run(catalog, title="T", version="v1", distributors=runs)
    st = status(catalog, "T", today=dt.date(2000, 1, 3))
    by = {(i.distributor, i.item): i for i in st.items}
    assert (by[("demo", "mezzanine")].state, by[("demo", "mezzanine")].bytes) == ("qc-pass", 1234)  # not archived
    assert by[("demo", "screener")].state == "required"  # not in the package: still to make
    assert {i.state for (d, _), i in by.items() if d == "netflix" and i.kind == "deliverable"} == {"qc-fail"}
    # the spec's manual checks are items too, required until someone marks them
    manual = {i.item: i.state for (d, _), i in by.items() if d == "netflix" and i.kind == "manual-check"}
    assert manual == {m.id: "required" for m in netflix.manual_checks} and len(manual) == 4
    assert len({d for d, _ in by}) == 2 == len(st.distributors)
    dist = {d.distributor: d for d in st.distributors}
    assert dist["demo"].due == dt.date(2000, 1, 2) and dist["demo"].overdue == sum(
        i.required for (d, _), i in by.items() if d == "demo")
    assert dist["netflix"].due is None and dist["netflix"].overdue == 0
    # a rerun making the same file keeps what people recorded; the one-spec report still works
    mark(catalog, title="T", distributor="demo", item="mezzanine", state="accepted", by="ana")
    record_run(catalog, title="T", version="v1", distributors=runs)
    assert {i.item: i.state for i in status(catalog, "T").items if i.distributor == "demo"}["mezzanine"] == "accepted"
    single = Report(verdict="pass", spec="demo", findings=[], title="T", version="v1", delivered=True,
                    deliverables=[mez])
    assert [r.spec.name for r in distributors_of(single, [demo])] == ["demo"]
