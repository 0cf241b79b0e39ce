"""Running a function inside another network namespace without moving any
long-lived thread there (setns() applies to the calling thread only)."""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from typing import Callable, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def call_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run in a short-lived thread that entered ``netns`` (a name
    under /run/netns or a path such as /proc/PID/ns/net). The namespace is
    never created, and the caller's thread stays where it is."""
    path = netns if "/" in netns else os.path.join("/run/netns", netns)
    out: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc().setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), path)
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc
    thread = threading.Thread(target=target, name="netns-call", daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]  # type: ignore[return-value]
