"""The work of deliver: plain typed functions, usable and testable without Prefect.

The Prefect ``@task`` wrappers (retries, caching, concurrency tags) live in :mod:`tasks.steps`.
"""

from importlib.metadata import version as _distribution_version

#: deliver's version, as installed (its one home is pyproject.toml); reports and ASC MHL files name it.
__version__ = _distribution_version("deliver")
