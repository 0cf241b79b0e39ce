"""Block devices: ``sys/block/*`` and udev's database ``run/udev/data``.

Only whole disks whose kernel names match :data:`DISK_NAMES` are listed, so
loop, ram, zram, device-mapper, md, partitions, NVMe multipath paths
(``nvme0c0n1``) and eMMC boot/RPMB areas (``mmcblk0boot0``) are left out.

Per device (``B`` = ``sys/block/<name>``):

* size: ``B/size`` (512-byte sectors, whatever the logical block size);
* rotational, logical/physical block size: ``B/queue/...``; removable: ``B/removable``;
* model: ``B/device/model`` (``B/device/name`` for MMC); vendor:
  ``B/device/vendor``, except for virtio, where it is a PCI vendor id;
* serial: ``B/device/serial`` (an NVMe namespace's ``device`` is its
  controller), ``B/serial`` (virtio), then udev ``ID_SERIAL_SHORT``, ``ID_SERIAL``;
* wwn: ``B/device/wwid``, ``B/wwid`` (NVMe namespaces), then udev ``ID_WWN``,
  each as reported (``naa.5000...``, ``eui....``, ``0x5000...``);
* the udev record is ``run/udev/data/b<major>:<minor>`` with ``B/dev``.
"""
from __future__ import annotations

import re

from agent.backends.hostfs import HostFS
from agent.inventory.model import BlockDevice

# (kernel name pattern, transport)
DISK_NAMES = (
    (re.compile(r"nvme\d+n\d+"), "nvme"),
    (re.compile(r"sd[a-z]+"), "scsi"),
    (re.compile(r"vd[a-z]+"), "virtio"),
    (re.compile(r"xvd[a-z]+"), "xen"),
    (re.compile(r"hd[a-z]+"), "ata"),
    (re.compile(r"mmcblk\d+"), "mmc"),
)
SECTOR = 512


def disk_transport(name: str) -> str | None:
    """The transport of a whole-disk kernel name; ``None`` for anything else."""
    for pattern, transport in DISK_NAMES:
        if pattern.fullmatch(name):
            return transport
    return None


def parse_udev_data(text: str) -> dict[str, str]:
    """The ``E:KEY=value`` properties of one udev database record."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value.strip()
    return props


def _udev(hostfs: HostFS, base: str) -> dict[str, str]:
    dev = hostfs.read_value(f"{base}/dev", "") or ""
    if not re.fullmatch(r"\d+:\d+", dev):
        return {}
    try:
        return parse_udev_data(hostfs.read_text(f"run/udev/data/b{dev}"))
    except OSError:
        return {}


def _first(hostfs: HostFS, paths: tuple[str, ...]) -> str:
    for rel in paths:
        value = hostfs.read_value(rel)
        if value:
            return value
    return ""


def read_block_device(hostfs: HostFS, name: str, transport: str) -> BlockDevice:
    base = f"sys/block/{name}"
    udev = _udev(hostfs, base)
    model_paths = (f"{base}/device/model",) + ((f"{base}/device/name",) if transport == "mmc" else ())
    serial = (_first(hostfs, (f"{base}/device/serial", f"{base}/serial"))
              or udev.get("ID_SERIAL_SHORT") or udev.get("ID_SERIAL") or "")
    wwn = _first(hostfs, (f"{base}/device/wwid", f"{base}/wwid")) or udev.get("ID_WWN", "")
    vendor = "" if transport == "virtio" else _first(hostfs, (f"{base}/device/vendor",))
    return BlockDevice(
        name=name,
        size_bytes=(hostfs.read_int(f"{base}/size", 0) or 0) * SECTOR,
        model=_first(hostfs, model_paths),
        vendor=vendor,
        serial=serial,
        rotational=hostfs.read_int(f"{base}/queue/rotational", 0) == 1,
        wwn=wwn,
        removable=hostfs.read_int(f"{base}/removable", 0) == 1,
        logical_block_size=hostfs.read_int(f"{base}/queue/logical_block_size", 0) or 0,
        physical_block_size=hostfs.read_int(f"{base}/queue/physical_block_size", 0) or 0,
        transport=transport,
    )


def collect_block_devices(hostfs: HostFS) -> tuple[BlockDevice, ...]:
    devices = []
    for name in hostfs.listdir("sys/block"):
        transport = disk_transport(name)
        if transport is not None:
            devices.append(read_block_device(hostfs, name, transport))
    return tuple(devices)
