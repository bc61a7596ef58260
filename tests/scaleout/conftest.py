"""The post house's set-up (docs/operations.md): a PostgreSQL-backed Prefect server, process workers on a
pool. Every test here carries the ``postgres`` marker (``pytest -m "postgres or workers"``)."""

from __future__ import annotations

import os

import pytest

from tests.postgres import pg_cluster, pg_prefect_server  # noqa: F401 - fixtures used by the tests here


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/scaleout/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.postgres)
