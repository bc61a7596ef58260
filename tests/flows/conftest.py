"""One Prefect test harness for the flow tests' session (tests/harness.py)."""

from tests.harness import _prefect_logs_to_real_stderr, prefect_api  # noqa: F401 - fixtures, used by name
