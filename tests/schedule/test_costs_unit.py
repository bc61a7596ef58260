"""Pricing and the published status schema, without a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.archive.targets import StoragePrices
from tasks.costs import StepCost, measure_step, run_costs, take_step_costs
from tasks.schedule import schema_json


def test_published_status_schema_is_the_models():
    path = Path(__file__).resolve().parents[2] / "specs" / "schema" / "status-1.json"
    assert path.read_text() == schema_json(), "regenerate: python -c 'from tasks.schedule import schema_json; " \
                                              "print(schema_json(), end=\"\")' > specs/schema/status-1.json"


def test_price_per_target_then_storage_class_then_default():
    prices = StoragePrices(cpu_hour=0.1, gb_month_default=0.02, gb_month_by_target={"lto": 0.001},
                           gb_month_by_storage_class={"DEEP_ARCHIVE": 0.00099})
    copies = [("lto", "file:///lto/P", None, 3 * 10**9), ("s3://b/p", "s3://b/p/P", "deep_archive", 2 * 10**9),
              ("/nas", "file:///nas/P", None, 10**9), ]
    costs = run_costs([StepCost(step="qc", cpu_s=1800.0, wall_s=900.0)], {"a.mov": 5}, copies, prices)
    assert [a.monthly_cost for a in costs.archive] == pytest.approx([0.003, 0.00198, 0.02])
    assert costs.monthly_storage_cost == pytest.approx(0.003 + 0.00198 + 0.02)
    assert costs.make_cost == pytest.approx(0.05) and costs.archived_bytes == 6 * 10**9 and costs.made_bytes == 5
    unpriced = run_costs([], {}, copies, StoragePrices())
    assert unpriced.monthly_storage_cost is None and unpriced.make_cost is None


def test_measure_step_counts_child_cpu_and_sums_per_step():
    import subprocess
    import sys

    with measure_step("run-x", "busy"):
        subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    with measure_step("run-x", "busy"):
        pass
    [busy] = take_step_costs("run-x")
    assert busy.calls == 2 and busy.cpu_s > 0.05 and busy.cpu_s <= busy.wall_s + 0.05  # one single-threaded child
    assert take_step_costs("run-x") == []  # taken once
