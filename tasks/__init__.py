"""The work of deliver: plain typed functions, usable and testable without Prefect.

The Prefect ``@task`` wrappers (retries, caching, concurrency tags) live in :mod:`tasks.steps`.
"""
