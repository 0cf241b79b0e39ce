"""The system collectors on this machine's real /proc, /sys and syscalls,
checked against an independent read (that each collector yields samples or
NoData here is tests/test_collectors_live.py's part)."""
from __future__ import annotations

import os
import platform
import socket
import time

import pytest

from agent.backends.hostfs import HostFS
from agent.collectors import filefd, os_release, systime, timex, uname
from agent.telemetry.collector import CollectorContext
from agent.telemetry.model import Batch
from tests.helpers import batch_values

HOST = CollectorContext(hostfs=HostFS("/"))


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


def test_uname_matches_os_uname():
    values = batch_values(collect(uname.UnameCollector(HOST)))
    [(name, labels)] = values
    u = os.uname()
    assert labels[:5] == (u.sysname, u.release, u.version, u.machine, u.nodename)
    assert labels[4] == socket.gethostname()


def test_os_matches_platform():
    if not (os.path.exists("/etc/os-release") or os.path.exists("/usr/lib/os-release")):
        pytest.skip("no os-release here")
    values = batch_values(collect(os_release.OsReleaseCollector(HOST)))
    [info] = [labels for name, labels in values if name == "node_os_info"]
    assert info[1] == platform.freedesktop_os_release().get("ID", "")


def test_time_is_now_and_timex_answers():
    before = time.time()
    values = batch_values(collect(systime.TimeCollector(HOST)))
    assert before <= values["node_time_seconds", ()] <= time.time()
    values = batch_values(collect(timex.TimexCollector(HOST)))
    assert values["node_timex_sync_status", ()] in (0, 1)
    assert values["node_timex_tick_seconds", ()] > 0


def test_filefd_maximum_matches_proc():
    with open("/proc/sys/fs/file-nr") as f:
        maximum = int(f.read().split()[2])
    values = batch_values(collect(filefd.FilefdCollector(HOST)))
    assert values["node_filefd_maximum", ()] == maximum
    assert 0 < values["node_filefd_allocated", ()] <= maximum
