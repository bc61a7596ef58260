"""What a delivery cost: CPU seconds and wall time per step, bytes written per deliverable, bytes stored per
archive target, priced with ``prices`` of configs/storage.yaml (per CPU-hour, per GB-month).

A step is measured with ``getrusage`` of the process and of its waited-for children (ffmpeg) around it
(POSIX getrusage(2)): steps that run at the same time (mapped probes) each count the whole process, so their
CPU figures overlap; the heavy steps of a run (layback, QC, deliverables, archive) run one after another.
Measurements are kept per flow run in this process until the run's record step takes them.
"""

from __future__ import annotations

import contextlib
import resource
import threading
import time
from collections.abc import Iterator

from pydantic import BaseModel, Field

from tasks.archive.targets import StoragePrices

__all__ = ["StepCost", "ArchiveCost", "RunCosts", "measure_step", "take_step_costs", "run_costs", "GB"]

GB = 1_000_000_000  # storage is billed per decimal GB (10^9 bytes)


class StepCost(BaseModel):
    step: str
    calls: int = 1
    cpu_s: float
    wall_s: float


class ArchiveCost(BaseModel):
    target: str
    uri: str
    storage_class: str | None = None
    bytes: int
    price_gb_month: float | None = None
    monthly_cost: float | None = None  # bytes / 10^9 x price_gb_month


class RunCosts(BaseModel):
    """The cost block of report.json and of the schedule's cost records."""

    currency: str = "USD"
    steps: list[StepCost] = Field(default_factory=list)
    cpu_s: float = 0.0  # sum of the steps'
    wall_s: float = 0.0  # sum of the steps'
    deliverable_bytes: dict[str, int] = Field(default_factory=dict)  # file name -> bytes written
    made_bytes: int = 0
    archive: list[ArchiveCost] = Field(default_factory=list)
    archived_bytes: int = 0
    price_cpu_hour: float | None = None
    make_cost: float | None = None  # cpu_s / 3600 x price_cpu_hour
    monthly_storage_cost: float | None = None  # sum of the priced copies'


_RUNS: dict[str, list[StepCost]] = {}
_LOCK = threading.Lock()
_KEEP_RUNS = 256


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def measure_step(run_key: str, step: str) -> Iterator[None]:
    """Record CPU seconds (self + children) and wall time of the block under ``run_key`` (a flow run id)."""
    cpu0, wall0 = _cpu_s(), time.monotonic()
    try:
        yield
    finally:
        cost = StepCost(step=step, cpu_s=max(0.0, _cpu_s() - cpu0), wall_s=time.monotonic() - wall0)
        with _LOCK:
            if run_key not in _RUNS and len(_RUNS) >= _KEEP_RUNS:
                _RUNS.pop(next(iter(_RUNS)))  # runs nobody took (nightly QC items): drop the oldest
            _RUNS.setdefault(run_key, []).append(cost)


def take_step_costs(run_key: str, *, forget: bool = True) -> list[StepCost]:
    """The run's step costs, summed per step name (in first-call order); forgotten unless ``forget`` is off
    (a step that may be retried forgets them once it has stored them)."""
    with _LOCK:
        raw = _RUNS.pop(run_key, []) if forget else list(_RUNS.get(run_key, []))
    out: dict[str, StepCost] = {}
    for c in raw:
        if c.step in out:
            o = out[c.step]
            out[c.step] = StepCost(step=c.step, calls=o.calls + 1, cpu_s=o.cpu_s + c.cpu_s, wall_s=o.wall_s + c.wall_s)
        else:
            out[c.step] = c
    return list(out.values())


def run_costs(steps: list[StepCost], deliverable_bytes: dict[str, int],
              copies: list[tuple[str, str, str | None, int]], prices: StoragePrices) -> RunCosts:
    """Sum and price a run. ``copies``: (target as given, copy URI, storage class, bytes stored)."""
    cpu_s = sum(s.cpu_s for s in steps)
    archive = []
    for target, uri, storage_class, size in copies:
        price = prices.gb_month(target, storage_class)
        archive.append(ArchiveCost(target=target, uri=uri, storage_class=storage_class, bytes=size,
                                   price_gb_month=price, monthly_cost=None if price is None else size / GB * price))
    priced = [a.monthly_cost for a in archive if a.monthly_cost is not None]
    return RunCosts(currency=prices.currency, steps=steps, cpu_s=cpu_s, wall_s=sum(s.wall_s for s in steps),
                    deliverable_bytes=deliverable_bytes, made_bytes=sum(deliverable_bytes.values()),
                    archive=archive, archived_bytes=sum(a.bytes for a in archive), price_cpu_hour=prices.cpu_hour,
                    make_cost=None if prices.cpu_hour is None else cpu_s / 3600 * prices.cpu_hour,
                    monthly_storage_cost=sum(priced) if priced else None)
