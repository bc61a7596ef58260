"""The qc flow: QC one master against a spec and write report.json (and the HTML report beside it).

Stages: spec -> probe + fingerprint -> QC (one analysis decode) -> report and artifacts. No other
outputs. Takes one :class:`~flows.deployments.QCRequest` (``deliver qc`` and the UI alike) and
returns its :class:`~tasks.report.RunResult` as the data of its final state (Failed "QC failed" on a
failing master, like the deliver flow).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import State

from flows.deliver import emit_if_failed, final_state, publish_report, refuse
from flows.deployments import QCRequest, bind_run_logging, cores, on_cancel, request_field, threads
from specs.errors import DeliverError
from specs.loader import load_spec
from tasks.media.ffmpeg import kill_all_children
from tasks.preflight import check_picture_master, preflight_qc
from tasks.report import RunResult, build_report
from tasks.steps import fingerprint_step, probe_step, qc_step

__all__ = ["qc_flow"]


def _run_name() -> str:
    return f"qc-{Path(request_field('path', 'master')).name}"


@flow(name="qc", flow_run_name=_run_name, log_prints=True, task_runner=threads(cores()),
      on_cancellation=[on_cancel])
def qc_flow(request: QCRequest) -> State[RunResult]:
    """QC one master against a spec; report.json is the only output. Ends Completed (pass), Failed
    "QC failed: N errors" (fail; the result is the state's data) or Failed "Bad input" (one line)."""
    bind_run_logging(str(flow_run.get_id() or "") or None)
    try:
        spec = load_spec(request.spec_ref)
        preflight_qc(path=request.path, report=request.report)  # a UI run never met the CLI's preflight
        info = check_picture_master(probe_step(request.path, "master"))
        fingerprint = fingerprint_step(request.path)
        qc = qc_step(info, spec)
        report = build_report(spec=spec.name, findings=qc.findings, measurements=qc.measurements,
                              inputs=[fingerprint], title=Path(request.path).name,
                              flow_run_id=str(flow_run.get_id() or "") or None)
        result = publish_report(report, Path(request.report), spec, info.path)
        emit_if_failed(result, request.path, request.spec_ref)
        return final_state(result)
    except DeliverError as exc:
        return refuse(exc, Path(request.path).name, None, request.spec_ref)
    finally:
        kill_all_children()
