"""One Prefect test harness for the schedule tests (a real deliver run records the schedule; tests/harness.py)."""

from tests.harness import _prefect_logs_to_real_stderr, prefect_api  # noqa: F401 - fixtures, used by name
