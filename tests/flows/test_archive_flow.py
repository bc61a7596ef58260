"""archive_flow / verify_flow on the Prefect test harness against SeaweedFS on loopback:
retries on infrastructure errors only, bytes progress artifact, copies table artifact, no secrets."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

import flows.archive as archive_flows
from specs.errors import InfrastructureError, VerificationError
from tests.archive import s3server
from tests.archive.helpers import S3_SMALL_PARTS, make_package, mhl_rc

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def s3():
    with s3server.running() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DELIVER_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    monkeypatch.setenv("DELIVER_STORAGE_CONFIG", str(tmp_path / "none.yaml"))
    # no waiting between retries in tests
    monkeypatch.setattr(archive_flows, "archive_step",
                        archive_flows.archive_step.with_options(retry_delay_seconds=0, retry_jitter_factor=None))


def _artifacts(key: str):
    """Artifacts with ``key``, newest first (the server's default order is not creation order)."""
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                     sort=ArtifactSort.CREATED_DESC)


def test_archive_flow_retries_infrastructure_then_verifies(s3, tmp_path, monkeypatch):
    pkg = make_package(tmp_path / "FILM_v1")
    real = archive_flows.archive_package
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise InfrastructureError("s3 endpoint unreachable (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(archive_flows, "archive_package", flaky)
    copies = archive_flows.archive_flow(package_dir=str(pkg), targets=[f"s3://archive-a/flow?{S3_SMALL_PARTS}",
                                                                       str(tmp_path / "lto")], title="Film")
    assert calls["n"] == 2
    assert [c.verified for c in copies] == [True, True]
    assert mhl_rc(tmp_path / "lto" / "FILM_v1") == 0

    table = _artifacts("archive-copies")
    assert table and "s3://archive-a/flow/FILM_v1" in str(table[0].data)
    progress = _artifacts("archive-progress-film-v1")
    latest = max(progress, key=lambda a: a.created)  # one per attempt; the successful one reached 100 %
    assert float(latest.data) == 100.0
    for a in table + progress:
        assert s3server.SECRET_KEY not in str(a.data) and s3server.ACCESS_KEY not in str(a.data)


def test_archive_flow_does_not_retry_a_mismatch(s3, tmp_path, monkeypatch):
    pkg = make_package(tmp_path / "FILM_v2", big_bytes=1000)
    calls = {"n": 0}

    def mismatch(*args, **kwargs):
        calls["n"] += 1
        raise VerificationError("copy does not match (simulated)")

    monkeypatch.setattr(archive_flows, "archive_package", mismatch)
    with pytest.raises(VerificationError):
        archive_flows.archive_flow(package_dir=str(pkg), targets=[str(tmp_path / "x")], title="Film")
    assert calls["n"] == 1


def test_verify_flow_table_and_failure_on_corruption(s3, tmp_path):
    pkg = make_package(tmp_path / "FILM_v3", big_bytes=1000)
    copies = archive_flows.archive_flow(package_dir=str(pkg), targets=["s3://archive-b/fix"], title="Film3")
    report = archive_flows.verify_flow(uri=copies[0].uri)
    assert report.ok
    s3.client().put_object(Bucket="archive-b", Key="fix/FILM_v3/report.json", Body=b"{}")
    with pytest.raises(VerificationError, match="report.json"):
        archive_flows.verify_flow(uri=copies[0].uri)
    rows = _artifacts("archive-fixity")[0].data
    assert "report.json" in str(rows)
