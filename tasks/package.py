"""The delivery package: the folder of deliverables, its manifest and checksums.

The package's ASC MHL history is written and verified by :mod:`tasks.archive.mhl`; file digests come
from :mod:`tasks.archive.hashing`.
"""

from __future__ import annotations
