"""Network interfaces: ``sys/class/net/*``, the link table, ``ETHTOOL_GDRVINFO``.

Per interface (``N`` = ``sys/class/net/<name>``), loopback left out:

* mac, mtu, master, kind: the :class:`~agent.backends.links.Link` when a link
  table is given, else ``N/address``, ``N/mtu``, the ``N/master`` symlink
  and the markers of :func:`sysfs_kind`;
* pci_address: the last PCI address in the resolved path of ``N/device``
  (a virtio NIC's device is ``virtio2``, below its PCI function), else the
  ethtool bus_info when it is one;
* driver: the basename of ``N/device/driver``, else ethtool's (``veth``, ``bridge``);
* firmware_version: ethtool's ``fw_version``; "" when the ioctl fails or says "N/A";
* speed_mbps: ``N/speed`` for physical NICs; ``-1`` (no link) is ``None``;
* numa_node: ``N/device/numa_node``, else the PCI function's; ``-1`` is ``None``;
* vfs: ``N/device/sriov_numvfs`` (else the count of VFs in the link table),
  VF MACs from the link table (sysfs does not have them).

``hostfs`` must show the namespace that ``drvinfo`` runs in (the host's for the
daemon); the ethtool ioctl is the only call that is not a file read.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Callable, Mapping

from agent.backends import ethtool
from agent.backends.hostfs import HostFS
from agent.backends.links import Link

logger = logging.getLogger(__name__)

PCI_ADDRESS = re.compile(r"[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
ARPHRD_LOOPBACK = 772
IFF_TUN, IFF_TAP = 0x1, 0x2
# ethtool driver names of virtual devices that sysfs does not mark otherwise
DRIVER_KINDS = {"veth": "veth", "macvlan": "macvlan", "ipvlan": "ipvlan", "vxlan": "vxlan",
                "bridge": "bridge", "bonding": "bond", "802.1Q VLAN Support": "vlan",
                "dummy": "dummy", "ifb": "ifb", "geneve": "geneve", "vrf": "vrf"}


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str = ""
    kind: str = ""
    pci_address: str = ""
    driver: str = ""
    firmware_version: str = ""
    speed_mbps: int | None = None
    mtu: int = 0
    master: str = ""
    vf_count: int = 0
    vf_macs: tuple[str, ...] = ()
    numa_node: int | None = None


def _symlink_name(hostfs: HostFS, rel: str) -> str:
    try:
        return os.path.basename(os.readlink(hostfs.path(rel)))
    except OSError:
        return ""


def _pci_dir(hostfs: HostFS, base: str) -> str:
    """The resolved path of the PCI function under ``base/device``, or ""."""
    path = os.path.realpath(hostfs.path(f"{base}/device"))
    parts = path.split(os.sep)
    for i in range(len(parts) - 1, -1, -1):
        if PCI_ADDRESS.fullmatch(parts[i]):
            return os.sep.join(parts[: i + 1])
    return ""


def _sysfs_int(hostfs: HostFS, rel: str) -> int | None:
    value = hostfs.read_int(rel)
    return None if value is None or value < 0 else value


def sysfs_kind(hostfs: HostFS, base: str, driver: str = "") -> str:
    """The kind of an interface from sysfs alone (``driver``: ethtool's)."""
    if hostfs.exists(f"{base}/device"):
        return "physical"
    if hostfs.exists(f"{base}/bridge"):
        return "bridge"
    if hostfs.exists(f"{base}/bonding"):
        return "bond"
    tun_flags = hostfs.read_int(f"{base}/tun_flags")
    if tun_flags is not None:
        return "tap" if tun_flags & IFF_TAP else "tun"
    for line in (hostfs.read_value(f"{base}/uevent", "") or "").splitlines():
        if line.startswith("DEVTYPE="):
            return line.partition("=")[2]
    return DRIVER_KINDS.get(driver, "virtual")


def read_nic(hostfs: HostFS, name: str, link: Link | None,
             drvinfo: Callable[[str], ethtool.DrvInfo] = ethtool.drvinfo) -> Nic:
    base = f"sys/class/net/{name}"
    try:
        info = drvinfo(name)
    except OSError as exc:
        logger.debug("no ethtool driver info for %s: %s", name, exc)
        info = ethtool.DrvInfo()
    pci_dir = _pci_dir(hostfs, base) if hostfs.exists(f"{base}/device") else ""
    pci_address = os.path.basename(pci_dir) or (
        info.bus_info if PCI_ADDRESS.fullmatch(info.bus_info) else "")
    driver = _symlink_name(hostfs, f"{base}/device/driver") or info.driver
    kind = link.kind if link is not None else sysfs_kind(hostfs, base, info.driver)
    numa = _sysfs_int(hostfs, f"{base}/device/numa_node")
    if numa is None and pci_dir:
        pci_rel = os.path.relpath(pci_dir, os.path.realpath(hostfs.root))
        numa = _sysfs_int(hostfs, f"{pci_rel}/numa_node")
    vf_macs = tuple(vf.mac for vf in link.vfs) if link is not None else ()
    return Nic(
        name=name,
        mac=link.mac if link is not None else hostfs.read_value(f"{base}/address", "") or "",
        kind=kind,
        pci_address=pci_address,
        driver=driver,
        firmware_version="" if info.fw_version == "N/A" else info.fw_version,
        speed_mbps=(_sysfs_int(hostfs, f"{base}/speed") or None) if kind == "physical" else None,
        mtu=link.mtu if link is not None else hostfs.read_int(f"{base}/mtu", 0) or 0,
        master=link.master_name if link is not None else _symlink_name(hostfs, f"{base}/master"),
        vf_count=hostfs.read_int(f"{base}/device/sriov_numvfs") or len(vf_macs),
        vf_macs=vf_macs,
        numa_node=numa,
    )


def collect_nics(hostfs: HostFS, links: Mapping[int, Link] | None = None, *,
                 drvinfo: Callable[[str], ethtool.DrvInfo] = ethtool.drvinfo) -> list[Nic]:
    """Every interface but loopback, sorted by name.

    With ``links`` (a :class:`~agent.backends.links.LinkWatcher` snapshot of
    the same namespace) the interfaces are those of the link table; without,
    those of ``sys/class/net``.
    """
    if links is not None:
        by_name: dict[str, Link | None] = {lk.name: lk for lk in links.values() if lk.kind != "loopback"}
    else:
        by_name = {name: None for name in hostfs.listdir("sys/class/net")
                   if hostfs.read_int(f"sys/class/net/{name}/type") != ARPHRD_LOOPBACK}
    return [read_nic(hostfs, name, link, drvinfo) for name, link in sorted(by_name.items())]
