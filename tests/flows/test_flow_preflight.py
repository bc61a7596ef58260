"""Runs started from the UI never meet the CLI: the deliver and qc flows run the same preflight first, so a bad
path or name field fails the run at once with the one-line reason and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.deliver import deliver_flow
from flows.deployments import DeliverRequest, QCRequest
from flows.qc import qc_flow
from specs.errors import BadInputError
from tasks.layback import MixInput
from tasks.media.synth import MasterSpec, make_sample_set


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory):
    return make_sample_set(tmp_path_factory.mktemp("flowpre") / "media", layout="5.1", stereo=True,
                           master=MasterSpec(head_s=3, programme_s=1))


def _request(media, out: Path, **extra) -> DeliverRequest:
    return DeliverRequest(spec="demo", master=str(media.master), title="UI", out=str(out),
                          mixes=[MixInput(path=str(p)) for p in media.mixes.values()], **extra)


def test_deliver_flow_refuses_an_out_that_is_a_file(media, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file\n")
    with pytest.raises(BadInputError, match=f"--out {out}: {out} is a file, not a folder"):
        deliver_flow(_request(media, out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and out.read_text() == "a file\n"


def test_deliver_flow_refuses_a_date_that_is_not_iso_8601(media, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--date '12/07/2026' is not an ISO 8601 date"):
        deliver_flow(_request(media, tmp_path / "out", date="12/07/2026"))
    assert list(tmp_path.iterdir()) == []


def test_qc_flow_refuses_a_report_under_a_file(media, tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("a file")
    report = tmp_path / "reports" / "r.json"
    with pytest.raises(BadInputError, match="is a regular file"):
        qc_flow(QCRequest(spec="demo", path=str(media.master), report=str(report)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
