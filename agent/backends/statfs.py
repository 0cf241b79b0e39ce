"""``statfs(2)`` of one mounted file system: the one system call the
filesystem collector makes, behind a seam so tests inject a fake (one that
never returns, to stand for a hung NFS server).

``os.statvfs`` releases the GIL while it waits, so a hung call holds only the
thread it runs on (see :mod:`agent.backends.probes`).
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple


class FsUsage(NamedTuple):
    """Space and inodes of one file system, in bytes and counts."""

    size_bytes: int
    free_bytes: int  # free blocks, including those reserved for root
    avail_bytes: int  # free blocks an unprivileged user may use
    files: int
    files_free: int


StatfsFn = Callable[[str], FsUsage]


def statfs(path: str) -> FsUsage:
    """Raises ``OSError`` (EACCES, ENOENT, EIO, ESTALE...).

    Block counts are in units of ``f_frsize``, the fragment size, as POSIX
    defines them; Linux fills it with the block size for every file system
    that does not set it (node_exporter multiplies by ``f_bsize``, the same
    number on Linux except for a file system that reports both).
    """
    st = os.statvfs(path)
    unit = st.f_frsize or st.f_bsize
    return FsUsage(st.f_blocks * unit, st.f_bfree * unit, st.f_bavail * unit,
                   st.f_files, st.f_ffree)
