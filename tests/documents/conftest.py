"""The documents tests run a deliver through the CLI: the flows tests' Prefect harness (one per session)."""

from tests.flows.conftest import _prefect_logs_to_real_stderr, prefect_api  # noqa: F401 - fixtures used by name
