"""Prefect's server runs on the PostgreSQL cluster, not on SQLite."""

from __future__ import annotations

from tests.postgres import use_api
from tests.scaleout.test_pg_catalog import psql


def test_prefect_server_keeps_its_runs_in_postgres(pg_cluster, pg_prefect_server):
    from prefect import flow

    @flow(name="pg-probe")
    def probe() -> int:
        return 7

    with use_api(pg_prefect_server.api_url):
        assert probe() == 7
    rows = psql(pg_cluster, "prefect", "SELECT state_type FROM flow_run JOIN flow ON flow.id = flow_run.flow_id "
                                       "WHERE flow.name = 'pg-probe'")
    assert rows == [["COMPLETED"]]
    assert not list(pg_prefect_server.home.glob("*.db")), "the server must not fall back to SQLite"
