"""The Prefect harness for the plan flow tests (the same as tests/flows)."""

from tests.flows.conftest import _prefect_logs_to_real_stderr, prefect_api  # noqa: F401
