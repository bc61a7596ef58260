"""The qc flow: QC one master against a spec and write report.json. No outputs besides the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.deliver import fingerprint_step, publish_report, qc_step
from specs.loader import load_spec
from tasks.media.ffmpeg import kill_all_children
from tasks.report import build_report
from tasks.steps import probe_step

__all__ = ["qc_flow"]


@flow(name="qc", flow_run_name="qc-{path}", log_prints=True)
def qc_flow(path: str, spec: str, report: str) -> dict[str, Any]:
    """QC ``path`` against ``spec``; write the report to ``report`` (and the HTML report beside it).

    Returns verdict and report path."""
    try:
        loaded = load_spec(spec)
        info = probe_step(path, "master")
        fingerprint = fingerprint_step(path)
        qc = qc_step(info, loaded)
        rep = build_report(spec=loaded.name, findings=qc.findings, measurements=qc.measurements,
                           inputs=[fingerprint], title=Path(path).name,
                           flow_run_id=str(flow_run.get_id() or "") or None)
        report_path = publish_report(rep, Path(report), loaded, info.path)
        return {"report": str(report_path), "verdict": rep.verdict}
    finally:
        kill_all_children()
