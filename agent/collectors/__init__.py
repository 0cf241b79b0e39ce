"""The host's collectors, one registration line each (node_exporter's
``registerCollector``).  Each file declares its own name, default, timing and
options at its bottom (``COLLECTOR = CollectorInfo(...)``); a feature's
collectors (the ipmi one) are listed by the feature (``agent/features/``)."""
from __future__ import annotations

from agent.collectors import (arp, bonding, conntrack, cpu, cpufreq, diskstats, edac, entropy,
                              filefd, filesystem, hwmon, infiniband, loadavg, mdadm, meminfo,
                              netclass, netdev, netstat, nvme, os_release, powersupplyclass,
                              pressure, rapl, schedstat, sockstat, softnet, stat, systime,
                              textfile, thermal_zone, timex, uname, vmstat)
from agent.telemetry.collector import CollectorInfo

COLLECTORS: tuple[CollectorInfo, ...] = (
    cpu.COLLECTOR,
    stat.COLLECTOR,
    loadavg.COLLECTOR,
    pressure.COLLECTOR,
    meminfo.COLLECTOR,
    vmstat.COLLECTOR,
    hwmon.COLLECTOR,
    netdev.COLLECTOR,
    netclass.COLLECTOR,
    netstat.COLLECTOR,
    sockstat.COLLECTOR,
    softnet.COLLECTOR,
    conntrack.COLLECTOR,
    arp.COLLECTOR,
    bonding.COLLECTOR,
    infiniband.COLLECTOR,
    filesystem.COLLECTOR,
    diskstats.COLLECTOR,
    mdadm.COLLECTOR,
    nvme.COLLECTOR,
    textfile.COLLECTOR,
    uname.COLLECTOR,
    os_release.COLLECTOR,
    systime.COLLECTOR,
    timex.COLLECTOR,
    entropy.COLLECTOR,
    filefd.COLLECTOR,
    edac.COLLECTOR,
    rapl.COLLECTOR,
    thermal_zone.COLLECTOR,
    cpufreq.COLLECTOR,
    schedstat.COLLECTOR,
    powersupplyclass.COLLECTOR,
)
