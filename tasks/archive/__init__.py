"""Verified archive copies: local/NAS folders and S3 (any endpoint), ASC MHL, catalog, fixity, restore.

Import each name from the module that defines it (dependencies run one way: ``targets`` and ``hashing`` at
the bottom, then ``mhl``, ``local``, ``s3``, ``catalog``, then ``copy``, ``verify``, ``restoring``):

* :func:`tasks.archive.copy.archive_package` → ``list[ArchiveCopy]`` (:class:`tasks.archive.targets.ArchiveCopy`)
* :func:`tasks.archive.verify.verify_uri` → :class:`tasks.archive.verify.VerifyReport`
* :func:`tasks.archive.restoring.restore` → :class:`tasks.archive.restoring.RestoreReport`
* :func:`tasks.archive.catalog.locate` → ``list[Location]``
* :mod:`tasks.archive.mhl`: ASC MHL generations; :mod:`tasks.archive.hashing`: xxh128 / CRC64NVME digests
"""
