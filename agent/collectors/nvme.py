"""NVMe controllers from ``/sys/class/nvme/<controller>/`` (node_exporter's
``nvme`` collector).  No ``/sys/class/nvme`` or no controller: ``NoData``.

One-line attributes per controller (drivers/nvme/host/sysfs.c): ``model``,
``serial`` and ``firmware_rev`` (identify-controller strings, trailing
blanks removed), ``state`` (``live``, ``connecting``, ``resetting``,
``dead``...) and ``cntlid`` (controller ID).  An attribute that cannot be
read gives an empty label.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

NVME_CLASS = "sys/class/nvme"
INFO = FamilyDesc("node_nvme_info", MetricType.GAUGE,
                  "Non-numeric data from /sys/class/nvme/<device>, value is always 1", "",
                  ("device", "firmware_revision", "model", "serial", "state", "cntlid"))


class NvmeController(NamedTuple):
    device: str  # "nvme0"
    firmware_revision: str
    model: str
    serial: str
    state: str
    cntlid: str


def read_controller(fs: HostFS, device: str) -> NvmeController:
    def attr(name: str) -> str:
        return fs.read_value(f"{NVME_CLASS}/{device}/{name}", "") or ""

    return NvmeController(device, attr("firmware_rev"), attr("model"), attr("serial"),
                          attr("state"), attr("cntlid"))


class NvmeCollector:
    name = "nvme"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        controllers = [read_controller(self._fs, d) for d in self._fs.listdir(NVME_CLASS)]
        if not controllers:
            raise NoData("no NVMe controller in /sys/class/nvme")
        for c in controllers:
            batch.gauge(INFO, 1, *c)


COLLECTOR = CollectorInfo(name="nvme", factory=NvmeCollector, interval=60.0)
