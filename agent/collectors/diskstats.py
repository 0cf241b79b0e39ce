"""Block device I/O counters from ``/proc/diskstats``, with what udev and
sysfs know about each device (node_exporter's ``diskstats`` collector).

``/proc/diskstats``, one device per line (Documentation/admin-guide/iostats.rst)::

    254  0 vda 67485 9942 3768258 38554 152299 53753 3529048 18861 0 18768 62608 28215 44 2701072 ...
    major minor name, then 11 fields (4.18+: 15, discards; 5.5+: 17, flushes)

Sectors are 512 bytes whatever the device's block size; times are
milliseconds, printed by the kernel as 32-bit ``%u`` and so wrapping at 2**32
(their counters are declared 32-bit, the store's rates step over the wrap).
``node_disk_discarded_sectors_total`` stays in sectors, as node_exporter has it.

Device properties come from udev's database, ``/run/udev/data/b<major>:<minor>``
(``E:KEY=value`` lines): ``node_disk_info`` (``ID_PATH``, ``ID_WWN``,
``ID_MODEL``, serial, ``ID_REVISION``), ``node_disk_filesystem_info``
(``ID_FS_*``), ``node_disk_device_mapper_info`` (``DM_*``) and the ATA
facts.  Without udev the info series carry empty labels, as node_exporter's.
``node_disk_rotational`` is ``/sys/block/<device>/queue/rotational``.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.config_values import regex
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C, G = MetricType.COUNTER, MetricType.GAUGE
DEVICE_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"  # node_exporter's default
OPTIONS = {"device_exclude": regex}
UDEV_DATA = "run/udev/data"
_DEV = ("device",)
MS = 0.001
SECTOR = 512.0


def _c(name: str, help: str, unit: str = "", scale: float = 1.0, bits: int = 64) -> FamilyDesc:
    return FamilyDesc(name, C, help, unit, _DEV, scale, bits)


# One family per /proc/diskstats field, in field order.
FIELDS: tuple[FamilyDesc, ...] = (
    _c("node_disk_reads_completed_total", "Reads completed successfully"),
    _c("node_disk_reads_merged_total", "Adjacent reads merged into one"),
    _c("node_disk_read_bytes_total", "Bytes read successfully", "bytes", SECTOR),
    _c("node_disk_read_time_seconds_total", "Seconds spent by all reads", "seconds", MS, 32),
    _c("node_disk_writes_completed_total", "Writes completed successfully"),
    _c("node_disk_writes_merged_total", "Adjacent writes merged into one"),
    _c("node_disk_written_bytes_total", "Bytes written successfully", "bytes", SECTOR),
    _c("node_disk_write_time_seconds_total", "Seconds spent by all writes", "seconds", MS, 32),
    FamilyDesc("node_disk_io_now", G, "I/Os currently in progress", "", _DEV),
    _c("node_disk_io_time_seconds_total", "Seconds the device spent doing I/Os", "seconds", MS, 32),
    _c("node_disk_io_time_weighted_seconds_total",
       "Seconds spent doing I/Os, weighted by the I/Os in progress", "seconds", MS, 32),
    _c("node_disk_discards_completed_total", "Discards completed successfully"),
    _c("node_disk_discards_merged_total", "Adjacent discards merged into one"),
    _c("node_disk_discarded_sectors_total", "Sectors discarded successfully"),
    _c("node_disk_discard_time_seconds_total", "Seconds spent by all discards", "seconds", MS, 32),
    _c("node_disk_flush_requests_total", "Flush requests completed successfully"),
    _c("node_disk_flush_requests_time_seconds_total", "Seconds spent by all flush requests",
       "seconds", MS, 32),
)
INFO = FamilyDesc("node_disk_info", G, "Info of /sys/block/<block_device>, value is always 1", "",
                  ("device", "major", "minor", "path", "wwn", "model", "serial", "revision"))
FILESYSTEM_INFO = FamilyDesc("node_disk_filesystem_info", G,
                             "Filesystem on the device (udev ID_FS_*), value is always 1", "",
                             ("device", "type", "usage", "uuid", "version"))
DEVICE_MAPPER_INFO = FamilyDesc("node_disk_device_mapper_info", G,
                                "Device mapper target of the device (udev DM_*), value is always 1", "",
                                ("device", "name", "uuid", "vg_name", "lv_name", "lv_layer"))
ATA = (  # (udev property, family)
    ("ID_ATA_WRITE_CACHE", FamilyDesc("node_disk_ata_write_cache", G, "1 if the ATA disk has a write cache",
                                      "", _DEV)),
    ("ID_ATA_WRITE_CACHE_ENABLED", FamilyDesc("node_disk_ata_write_cache_enabled", G,
                                              "1 if the ATA disk's write cache is enabled", "", _DEV)),
    ("ID_ATA_ROTATION_RATE_RPM", FamilyDesc("node_disk_ata_rotation_rate_rpm", G,
                                            "ATA disk rotation rate in RPM (0 for SSDs)", "", _DEV)),
)
ROTATIONAL = FamilyDesc("node_disk_rotational", G, "1 if the device is a rotational disk, 0 if not",
                        "", _DEV)


class DiskStats(NamedTuple):
    major: int
    minor: int
    device: str
    fields: tuple[int, ...]  # 11, 15 or 17 counters, in FIELDS order


def parse_diskstats(text: str) -> list[DiskStats]:
    """Devices in file order.  Lines with fewer than 11 fields (the 2.6.24
    partition format) are skipped; fields beyond the 17 known are ignored.
    Raises ``ValueError`` on a non-numeric field."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        try:
            values = tuple(int(v) for v in parts[3:3 + len(FIELDS)])
            out.append(DiskStats(int(parts[0]), int(parts[1]), parts[2], values))
        except ValueError:
            raise ValueError(f"/proc/diskstats: malformed line {line[:200]!r}") from None
    return out


def parse_udev_data(text: str) -> dict[str, str]:
    """The ``E:KEY=value`` properties of a udev database entry."""
    props = {}
    for line in text.splitlines():
        if line.startswith("E:"):
            key, sep, value = line[2:].partition("=")
            if sep:
                props[key] = value
    return props


class DiskstatsCollector:
    name = "diskstats"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        self._exclude = re.compile(ctx.options.get("device_exclude", DEVICE_EXCLUDE))

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text("proc/diskstats")
        except FileNotFoundError:
            raise NoData("no /proc/diskstats") from None
        for disk in parse_diskstats(text):
            dev = disk.device
            if self._exclude.search(dev):
                continue
            for family, value in zip(FIELDS, disk.fields):
                if family.type is C:
                    batch.counter(family, value, dev)
                else:
                    batch.gauge(family, value, dev)
            self._properties(batch, disk)

    def _properties(self, batch: Batch, disk: DiskStats) -> None:
        dev = disk.device
        text = self._fs.read_value(f"{UDEV_DATA}/b{disk.major}:{disk.minor}")
        udev = parse_udev_data(text) if text else {}
        get = udev.get
        batch.gauge(INFO, 1, dev, str(disk.major), str(disk.minor), get("ID_PATH", ""),
                    get("ID_WWN", ""), get("ID_MODEL", ""),
                    get("SCSI_IDENT_SERIAL") or get("ID_SERIAL_SHORT", ""), get("ID_REVISION", ""))
        if get("ID_FS_TYPE"):
            batch.gauge(FILESYSTEM_INFO, 1, dev, udev["ID_FS_TYPE"], get("ID_FS_USAGE", ""),
                        get("ID_FS_UUID", ""), get("ID_FS_VERSION", ""))
        if get("DM_NAME"):
            batch.gauge(DEVICE_MAPPER_INFO, 1, dev, udev["DM_NAME"], get("DM_UUID", ""),
                        get("DM_VG_NAME", ""), get("DM_LV_NAME", ""), get("DM_LV_LAYER", ""))
        if get("ID_ATA"):
            for prop, family in ATA:
                try:
                    batch.gauge(family, float(udev[prop]), dev)
                except (KeyError, ValueError):
                    pass
        rotational = self._fs.read_int(f"sys/block/{dev}/queue/rotational")
        if rotational is not None:
            batch.gauge(ROTATIONAL, rotational, dev)


COLLECTOR = CollectorInfo(name="diskstats", factory=DiskstatsCollector, on_scrape=True, inline=True, options=OPTIONS)
