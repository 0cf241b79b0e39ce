"""The kernel's identity of this host, as ``uname(2)`` gives it.

``os.uname()`` returns five of the six ``struct utsname`` fields; the sixth,
``domainname`` (the NIS domain, ``(none)`` when unset), is the same UTS
namespace's ``/proc/sys/kernel/domainname``.  Both describe the namespace of
the calling process, as node_exporter's uname collector does.
"""
from __future__ import annotations

import os
from typing import NamedTuple

DOMAINNAME = "/proc/sys/kernel/domainname"


class Uname(NamedTuple):
    sysname: str  # "Linux"
    nodename: str  # the host name
    release: str  # "6.1.0-18-amd64"
    version: str  # "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
    machine: str  # "x86_64"
    domainname: str  # "(none)" when unset


def read_uname() -> Uname:
    u = os.uname()
    try:
        with open(DOMAINNAME, "rb") as f:
            domainname = f.read().decode("utf-8", "replace").strip()
    except OSError:
        domainname = "(none)"
    return Uname(u.sysname, u.nodename, u.release, u.version, u.machine, domainname)
