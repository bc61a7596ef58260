"""How a deliver or qc run ends, as the Prefect UI shows it: Completed, Failed "QC failed: N errors", or
Failed "Bad input" with the one-line reason (no traceback in the run's logs, no folder left behind); the
artifacts of each title and version under their own keys, the report as a markdown artifact."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from flows.deliver import deliver_flow
from flows.deployments import DeliverRequest, run_flow
from specs.errors import BadInputError
from tasks.media.synth import BlackDefect, make_sample_set


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _logs(run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()
    with _client() as c:
        return [log.message for log in c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]


def _artifacts(run_id: UUID) -> dict[str, object]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client() as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {a.key: a for a in arts if a.key}


@pytest.fixture(scope="module")
def black_set(tmp_path_factory):
    return make_sample_set(tmp_path_factory.mktemp("black") / "media", layout="5.1", stereo=True,
                           defects=[BlackDefect(at_s=1.0, duration_s=1.2)])


def _request(media, out: Path, title: str, **extra) -> DeliverRequest:
    return DeliverRequest(master=str(media.master), mixes=[str(p) for p in media.mixes.values()], spec="demo",
                          title=title, out=str(out), **extra)


def test_missing_master_fails_at_once_with_one_line_and_leaves_nothing(black_set, tmp_path):
    out = tmp_path / "never"
    request = _request(black_set, out, "Typo").model_copy(update={"master": str(tmp_path / "no-such-master.mov")})
    state = deliver_flow(request, return_state=True)
    assert state.is_failed() and state.name == "Bad input", state
    assert state.message == f"picture master not found: {tmp_path / 'no-such-master.mov'}. Check the path."
    assert not out.exists()  # no empty output folder
    run_id = state.state_details.flow_run_id
    logs = _logs(run_id)
    assert any("picture master not found" in m for m in logs), logs
    assert not any("Traceback" in m for m in logs), [m for m in logs if "Traceback" in m][:1]
    assert not any("mix_51.wav is not readable" in m for m in logs)  # the other inputs were checked, not killed
    arts = _artifacts(run_id)
    assert "picture master not found" in str(arts["run-error-typo-v1"].data)
    with pytest.raises(BadInputError, match="picture master not found"):  # what deliver run prints, exit 2
        run_flow(deliver_flow, request)


def test_unknown_spec_fails_with_the_spec_message_and_no_traceback(black_set, tmp_path):
    request = _request(black_set, tmp_path / "out", "Spec").model_copy(update={"spec": "netflx"})
    state = deliver_flow(request, return_state=True)
    assert state.is_failed() and state.name == "Bad input"
    assert state.message.startswith("unknown spec 'netflx'") and "did you mean 'netflix'" in state.message
    logs = _logs(state.state_details.flow_run_id)
    assert not any("Traceback" in m for m in logs)
    assert not (tmp_path / "out").exists()


def test_failing_qc_ends_failed_named_qc_failed_with_the_report_as_data(black_set, tmp_path):
    state = deliver_flow(_request(black_set, tmp_path / "out", "Black_Film"), return_state=True)
    assert state.is_failed() and state.name == "QC failed", state
    assert state.message.startswith("QC failed: 1 error (first: picture.black at "), state.message
    result = run_flow(deliver_flow, _request(black_set, tmp_path / "again", "Black_Film"))  # the CLI's view
    assert result.report.verdict == "fail" and not result.delivered and Path(result.report_path).is_file()
    arts = _artifacts(state.state_details.flow_run_id)
    for key in ("qc-summary-black-film-v1", "qc-findings-black-film-v1", "report-black-film-v1",
                "qc-report-black-film-v1", "qc-report-html-black-film-v1", "deliverable-links-black-film-v1"):
        assert key in arts, sorted(arts)
    report_md = str(arts["report-black-film-v1"].data)
    assert "FAIL" in report_md and "picture.black" in report_md and "## Loudness" in report_md
    assert "**Outcome:** QC failed: 1 error" in report_md and "## Layback" in report_md


def test_two_titles_keep_their_own_artifacts_and_a_delivered_run_completes(black_set, tmp_path):
    forced = deliver_flow(_request(black_set, tmp_path / "a", "ALPHA", force=True), return_state=True)
    assert forced.is_completed() and forced.message.startswith("delivered despite QC errors (--force)")
    other = deliver_flow(_request(black_set, tmp_path / "b", "BETA", version="v2", force=True), return_state=True)
    a, b = _artifacts(forced.state_details.flow_run_id), _artifacts(other.state_details.flow_run_id)
    assert "qc-summary-alpha-v1" in a and "qc-summary-beta-v2" in b and "qc-summary-beta-v2" not in a
    assert "deliverables-alpha-v1" in a  # progress too
    report_md = str(a["report-alpha-v1"].data)
    assert "## Deliverables" in report_md and "ALPHA_v1_mezzanine.mov" in report_md and "xxh128" in report_md
    with _client() as c:  # the latest artifact of each key is still its own title's
        by_key = {x.key: x for x in c.read_latest_artifacts()}
    assert "ALPHA" in str(by_key["qc-summary-alpha-v1"].data) and "BETA" in str(by_key["qc-summary-beta-v2"].data)
