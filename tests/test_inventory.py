"""Inventory: every part against recorded fixture trees, role detection, the
protobuf conversion, part isolation, the cache, and one live read of this host."""
import dataclasses
import logging
import os
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from agent.api.inventory_convert import inventory_to_proto
from agent.backends.hostfs import HostFS
from agent.gen.hostagent.v1 import inventory_pb2 as pb
from agent.inventory import (BlockDevice, CpuInfo, DmiInfo, HostInfo, HostRole, InventoryCache,
                             MemoryInfo, NodeInventory, NumaNode, SystemInfo, collect_inventory)
from agent.inventory import model
from agent.inventory.block import disk_transport, parse_udev_data
from agent.inventory.cpu import parse_cpulist, parse_node_memtotal, summarize_cpuinfo
from agent.inventory.host import VirtEvidence, detect_role, parse_os_release
from agent.inventory.memory import parse_meminfo

FIXTURES = Path(__file__).parent / "fixtures" / "inventory"
SYSTEM = SystemInfo(hostname="node-17", kernel_release="6.8.0-45-generic",
                    kernel_version="#45-Ubuntu SMP PREEMPT_DYNAMIC", architecture="x86_64",
                    boot_time=1_700_000_000.25)
KIB, GIB = 1024, 1024**3


def fixture(name: str) -> HostFS:
    return HostFS(FIXTURES / name)


def collect(fs: HostFS) -> NodeInventory:
    return collect_inventory(fs, lambda: SYSTEM)


class FaultyFS(HostFS):
    """A fixture tree where some paths raise (permission denied, a bug...)."""

    def __init__(self, root, faults):
        super().__init__(root)
        self.faults = faults  # rel path -> exception to raise

    def read_text(self, rel):
        if rel in self.faults:
            raise self.faults[rel]
        return super().read_text(rel)

    def listdir(self, rel):
        if rel in self.faults:
            raise self.faults[rel]
        return super().listdir(rel)


# --- fixture trees -------------------------------------------------------------------

def test_baremetal_two_sockets():
    inv = collect(fixture("baremetal-2s"))
    assert inv.failed_parts == ()
    assert inv.host == HostInfo(
        hostname="node-17", machine_id="5f0c2a8e9b7d4e1f8a3c6b2d1e0f9a8b",
        kernel_release="6.8.0-45-generic", kernel_version="#45-Ubuntu SMP PREEMPT_DYNAMIC",
        architecture="x86_64", os_name="Ubuntu 22.04.4 LTS", os_id="ubuntu", os_version="22.04",
        boot_time=1_700_000_000.25, role=HostRole.HYPERVISOR, virtualization="")
    assert inv.dmi == DmiInfo(
        present=True, sys_vendor="Dell Inc.", product_name="PowerEdge R650",
        product_serial="8XK2M53", product_uuid="4c4c4544-0058-4b10-8032-b8c04f4d3533",
        board_vendor="Dell Inc.", board_name="0Y2K8N", board_serial=".8XK2M53.CNFCP0019A00KX.",
        bios_vendor="Dell Inc.", bios_version="1.10.2", bios_date="07/11/2023",
        chassis_asset_tag="RACK-B07-U21")
    cpu = inv.cpu
    assert (cpu.model, cpu.vendor) == ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "GenuineIntel")
    assert (cpu.sockets, cpu.cores, cpu.threads) == (2, 4, 8)  # cpu8 is offline
    assert (cpu.microcode, cpu.signature) == ("0xd0003a5", "6.106.6")
    assert cpu.virtualization_capable and "vmx" in cpu.flags and "hypervisor" not in cpu.flags
    assert "ept_x_only" not in cpu.flags  # from the "vmx flags" line, not "flags"
    assert cpu.numa_nodes == (NumaNode(0, (0, 1, 4, 5), 65473536 * KIB),
                              NumaNode(1, (2, 3, 6, 7), 66060288 * KIB))
    assert inv.memory == MemoryInfo(total_bytes=131533824 * KIB, swap_total_bytes=8388604 * KIB,
                                    hugepage_size_bytes=2 * 1024 * KIB, hugepages_total=1024)
    assert inv.block_devices == (
        BlockDevice(name="nvme0n1", size_bytes=3750748848 * 512, model="Dell Ent NVMe CM6 RI 1.92TB",
                    vendor="", serial="Y0V0A01XT1L8", rotational=False,
                    wwn="eui.36344730526001230025384500000001", removable=False,
                    logical_block_size=512, physical_block_size=512, transport="nvme"),
        BlockDevice(name="sda", size_bytes=7814037168 * 512, model="ST4000NM0035-1V4",
                    vendor="ATA", serial="ZC1ABCDE", rotational=True, wwn="0x5000c500a1b2c3d4",
                    removable=False, logical_block_size=512, physical_block_size=4096,
                    transport="scsi"),
    )  # loop0, dm-0, ram0 and the partitions are left out


def test_kvm_guest():
    inv = collect(fixture("kvm-guest"))
    assert inv.failed_parts == ()
    assert (inv.host.role, inv.host.virtualization) == (HostRole.GUEST, "kvm")
    # no etc/os-release: usr/lib/os-release is read
    assert (inv.host.os_name, inv.host.os_id, inv.host.os_version) == (
        "Debian GNU/Linux 12 (bookworm)", "debian", "12")
    assert inv.dmi.present and inv.dmi.sys_vendor == "QEMU"
    assert inv.dmi.product_name == "Standard PC (Q35 + ICH9, 2009)"
    assert inv.dmi.product_serial == "" and inv.dmi.board_vendor == ""
    cpu = inv.cpu
    assert (cpu.model, cpu.vendor, cpu.signature, cpu.microcode) == (
        "AMD EPYC", "AuthenticAMD", "25.1.1", "0x1000065")
    # no sysfs topology: cpuinfo "physical id"/"core id"
    assert (cpu.sockets, cpu.cores, cpu.threads) == (1, 2, 2)
    assert "hypervisor" in cpu.flags and not cpu.virtualization_capable
    # no node directories: one node with every CPU and MemTotal
    assert cpu.numa_nodes == (NumaNode(0, (0, 1), 4012344 * KIB),)
    assert inv.memory == MemoryInfo(4012344 * KIB, 0, 2048 * KIB, 0)
    assert inv.block_devices == (
        BlockDevice(name="vda", size_bytes=20 * GIB, model="", vendor="", serial="vol-0a1b2c3d",
                    rotational=True, wwn="", removable=False, logical_block_size=512,
                    physical_block_size=512, transport="virtio"),
    )  # device/vendor is virtio's PCI id, not a vendor; loop0 and zram0 left out


def test_arm64_without_dmi_or_sysfs_topology():
    inv = collect(fixture("arm64"))
    assert inv.failed_parts == ()
    assert (inv.host.role, inv.host.virtualization) == (HostRole.BARE_METAL, "")
    assert inv.dmi == DmiInfo(present=False)
    cpu = inv.cpu
    assert (cpu.model, cpu.vendor, cpu.signature, cpu.microcode) == (
        "Neoverse-N1", "ARM", "0x41.0xd0c.r3p1", "")
    assert (cpu.sockets, cpu.cores, cpu.threads) == (1, 4, 4)
    assert cpu.flags[:3] == ("fp", "asimd", "evtstrm") and not cpu.virtualization_capable
    assert cpu.numa_nodes == (NumaNode(0, (0, 1, 2, 3), 8024344 * KIB),)
    assert [b.name for b in inv.block_devices] == ["mmcblk0"]  # not boot0 / rpmb
    mmc = inv.block_devices[0]
    assert (mmc.model, mmc.serial, mmc.transport, mmc.size_bytes) == (
        "SC64G", "0x2a1b3c4d", "mmc", 62333952 * 512)


def test_root_only_dmi_attributes_read_as_empty():
    fs = FaultyFS(FIXTURES / "baremetal-2s", {
        "sys/class/dmi/id/product_serial": PermissionError(13, "Permission denied"),
        "sys/class/dmi/id/product_uuid": PermissionError(13, "Permission denied")})
    dmi = collect(fs).dmi
    assert dmi.present and dmi.sys_vendor == "Dell Inc."
    assert (dmi.product_serial, dmi.product_uuid) == ("", "")


# --- isolation ------------------------------------------------------------------------

def test_unreadable_cpuinfo_fails_only_the_cpu_part(caplog):
    good = collect(fixture("baremetal-2s"))
    fs = FaultyFS(FIXTURES / "baremetal-2s",
                  {"proc/cpuinfo": PermissionError(13, "Permission denied")})
    with caplog.at_level(logging.WARNING, logger="agent.inventory"):
        inv = collect(fs)
    assert inv.failed_parts == ("cpu",)
    assert inv.cpu == CpuInfo()
    assert (inv.host, inv.dmi, inv.memory, inv.block_devices) == (
        good.host, good.dmi, good.memory, good.block_devices)
    assert any("'cpu'" in r.getMessage() for r in caplog.records)


def test_bug_in_one_part_and_failing_system_provider_are_isolated():
    fs = FaultyFS(FIXTURES / "kvm-guest", {"sys/block": RuntimeError("bug")})

    def broken_system():
        raise OSError("no uname")

    inv = collect_inventory(fs, broken_system)
    assert inv.failed_parts == ("host", "block")
    assert (inv.host, inv.block_devices) == (HostInfo(), ())
    assert inv.cpu.threads == 2 and inv.dmi.sys_vendor == "QEMU"


# --- role detection -------------------------------------------------------------------

@pytest.mark.parametrize("evidence, expected", [
    (VirtEvidence(), (HostRole.BARE_METAL, "")),
    (VirtEvidence(kvm_device=True), (HostRole.HYPERVISOR, "")),
    (VirtEvidence(cpu_flags=frozenset({"hypervisor"}), kvm_device=True), (HostRole.GUEST, "")),
    (VirtEvidence(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)"),
     (HostRole.GUEST, "qemu")),
    (VirtEvidence(sys_vendor="QEMU", clocksources=("kvm-clock", "tsc")), (HostRole.GUEST, "kvm")),
    (VirtEvidence(sys_vendor="Red Hat", product_name="KVM"), (HostRole.GUEST, "kvm")),
    (VirtEvidence(sys_vendor="VMware, Inc.", product_name="VMware7,1"), (HostRole.GUEST, "vmware")),
    (VirtEvidence(sys_vendor="Microsoft Corporation", product_name="Virtual Machine"),
     (HostRole.GUEST, "microsoft")),
    (VirtEvidence(sys_vendor="Microsoft Corporation", product_name="Surface Laptop 5"),
     (HostRole.BARE_METAL, "")),
    (VirtEvidence(sys_vendor="Amazon EC2", product_name="m6i.large",
                  clocksources=("kvm-clock",)), (HostRole.GUEST, "amazon")),
    (VirtEvidence(sys_vendor="Amazon EC2", product_name="i3.metal", kvm_device=True),
     (HostRole.HYPERVISOR, "")),
    (VirtEvidence(sys_vendor="Google", product_name="Google Compute Engine"),
     (HostRole.GUEST, "google")),
    (VirtEvidence(sys_vendor="Google", product_name="Eve"), (HostRole.BARE_METAL, "")),
    (VirtEvidence(sys_vendor="Xen", product_name="HVM domU"), (HostRole.GUEST, "xen")),
    (VirtEvidence(hypervisor_type="xen"), (HostRole.GUEST, "xen")),
    (VirtEvidence(hypervisor_type="xen", xen_control_domain=True,
                  cpu_flags=frozenset({"hypervisor"})), (HostRole.HYPERVISOR, "")),
])
def test_detect_role(evidence, expected):
    assert detect_role(evidence) == expected


# --- pure parsers ---------------------------------------------------------------------

def test_parse_cpulist():
    assert parse_cpulist("0-3,8-11\n") == [0, 1, 2, 3, 8, 9, 10, 11]
    assert parse_cpulist("5") == [5]
    assert parse_cpulist("\n") == []


def test_parse_meminfo_and_node_meminfo():
    fields = parse_meminfo("MemTotal:  100 kB\nHugePages_Total:  7\ngarbage\nX: y kB\n")
    assert fields == {"MemTotal": 102400, "HugePages_Total": 7}
    assert parse_node_memtotal("Node 3 MemFree: 1 kB\nNode 3 MemTotal:  2048 kB\n") == 2 * 1024 * KIB
    assert parse_node_memtotal("") == 0


def test_parse_os_release_quoting():
    text = "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\nBAD=\"x\n"
    assert parse_os_release(text) == {"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
                                      "ID": "debian", "VERSION_ID": "12", "BAD": "x"}


def test_cpuinfo_arm_hardware_line_and_unknown_part():
    text = ("processor\t: 0\nCPU implementer\t: 0x51\nCPU variant\t: 0x0\nCPU part\t: 0x801\n"
            "CPU revision\t: 4\n\nHardware\t: Qualcomm Technologies, Inc SM8150\n")
    s = summarize_cpuinfo(text)
    assert (s.model, s.vendor, s.signature, s.processors) == (
        "Qualcomm Technologies, Inc SM8150", "Qualcomm", "0x51.0x801.r0p4", (0,))
    s = summarize_cpuinfo(text.split("\n\n")[0])
    assert s.model == "implementer 0x51 part 0x801"


def test_udev_data_and_disk_names():
    assert parse_udev_data("S:disk/by-id/x\nE:ID_SERIAL=a_b\nE:ID_WWN=0x5\nG:systemd\n") == {
        "ID_SERIAL": "a_b", "ID_WWN": "0x5"}
    assert [disk_transport(n) for n in ("nvme10n2", "sdaa", "vdb", "xvda", "hdc", "mmcblk1")] == [
        "nvme", "scsi", "virtio", "xen", "ata", "mmc"]
    for name in ("loop0", "ram0", "zram0", "dm-0", "md127", "sr0", "nvme0c0n1", "mmcblk0boot0",
                 "mmcblk0rpmb", "nbd0", "sda1"):
        assert disk_transport(name) is None, name


# --- protobuf -------------------------------------------------------------------------

@pytest.mark.parametrize("dc, msg", [
    (model.HostInfo, pb.HostInfo), (model.DmiInfo, pb.DmiInfo), (model.NumaNode, pb.NumaNode),
    (model.CpuInfo, pb.CpuInfo), (model.MemoryInfo, pb.MemoryInfo),
    (model.BlockDevice, pb.BlockDevice), (model.NodeInventory, pb.NodeInventory),
    (__import__("agent.inventory.nics", fromlist=["Nic"]).Nic, pb.Nic),
])
def test_model_mirrors_proto(dc, msg):
    names = {f.name for f in dataclasses.fields(dc)} - {"failed_parts"}
    # NodeInventory.bmcs and .gpus are not read from the host: the service adds
    # the features' parts (the BMC hub's identities, the GPU hub's facts), as
    # Nic.managed (the network feature's managed interfaces).
    assert names == set(msg.DESCRIPTOR.fields_by_name) - {"bmcs", "gpus", "managed"}


def test_role_values_match_proto():
    assert {r.name: int(r) for r in HostRole} == {
        name.removeprefix("HOST_ROLE_"): value for name, value in pb.HostRole.items()}


def test_inventory_to_proto_round_trips():
    inv = collect(fixture("baremetal-2s"))
    msg = pb.NodeInventory.FromString(inventory_to_proto(inv).SerializeToString())
    assert msg.host.hostname == "node-17"
    assert msg.host.role == pb.HOST_ROLE_HYPERVISOR
    assert msg.host.boot_time.ToNanoseconds() == 1_700_000_000_250_000_000
    assert abs(msg.collected_at.ToNanoseconds() / 1e9 - inv.collected_at) < 1e-6
    assert msg.dmi.present and msg.dmi.product_name == "PowerEdge R650"
    assert (msg.cpu.sockets, msg.cpu.cores, msg.cpu.threads) == (2, 4, 8)
    assert msg.cpu.virtualization_capable and list(msg.cpu.flags) == list(inv.cpu.flags)
    assert [(n.id, list(n.cpus), n.memory_bytes) for n in msg.cpu.numa_nodes] == [
        (0, [0, 1, 4, 5], 65473536 * KIB), (1, [2, 3, 6, 7], 66060288 * KIB)]
    assert msg.memory.total_bytes == 131533824 * KIB and msg.memory.hugepages_total == 1024
    assert [(b.name, b.serial, b.wwn, b.rotational, b.physical_block_size, b.transport)
            for b in msg.block_devices] == [
        ("nvme0n1", "Y0V0A01XT1L8", "eui.36344730526001230025384500000001", False, 512, "nvme"),
        ("sda", "ZC1ABCDE", "0x5000c500a1b2c3d4", True, 4096, "scsi")]


def test_empty_inventory_leaves_times_unset():
    msg = inventory_to_proto(NodeInventory())
    assert not msg.HasField("collected_at") and not msg.host.HasField("boot_time")
    assert msg.host.role == pb.HOST_ROLE_UNSPECIFIED


# --- cache ----------------------------------------------------------------------------

class Counting:
    def __init__(self, block: threading.Event | None = None):
        self.calls = 0
        self.block = block

    def __call__(self, hostfs, system):
        self.calls += 1
        if self.block is not None and self.calls == 1:
            self.block.wait(5)
        return NodeInventory(collected_at=float(self.calls))


def test_cache_reuses_until_max_age_or_refresh():
    now = [100.0]
    collect_fn = Counting()
    cache = InventoryCache(HostFS("/nonexistent"), max_age=300, clock=lambda: now[0],
                           collect=collect_fn)
    assert cache.get().collected_at == 1
    now[0] += 299
    assert cache.get().collected_at == 1
    assert cache.get(refresh=True).collected_at == 2
    assert cache.get(refresh=True).collected_at == 3  # same clock tick still re-reads
    now[0] += 301
    assert cache.get().collected_at == 4
    assert collect_fn.calls == 4


def test_cache_refreshes_asked_during_a_collection_share_the_next_one():
    release = threading.Event()
    collect_fn = Counting(block=release)
    cache = InventoryCache(HostFS("/nonexistent"), collect=collect_fn)
    results = []
    first = threading.Thread(target=lambda: results.append(cache.get()))
    first.start()
    while collect_fn.calls == 0:
        time.sleep(0.001)
    waiters = [threading.Thread(target=lambda: results.append(cache.get(refresh=True)))
               for _ in range(4)]
    for t in waiters:
        t.start()
    time.sleep(0.2)  # let them ask (and queue on the lock) while the first read runs
    release.set()
    for t in [first, *waiters]:
        t.join(5)
    assert collect_fn.calls == 2
    assert sorted(r.collected_at for r in results) == [1, 2, 2, 2, 2]


# --- live -----------------------------------------------------------------------------

def test_live_host():
    inv = collect_inventory(HostFS("/"))
    assert inv.failed_parts == ()
    assert inv.host.hostname == socket.gethostname()
    assert inv.host.kernel_release == os.uname().release
    assert inv.host.role != HostRole.UNSPECIFIED
    assert abs(inv.host.boot_time - psutil.boot_time()) <= 2
    assert inv.cpu.threads == os.cpu_count()
    assert inv.cpu.sockets >= 1 and inv.cpu.sockets <= inv.cpu.cores <= inv.cpu.threads
    assert len({c for n in inv.cpu.numa_nodes for c in n.cpus}) == inv.cpu.threads
    assert inv.memory.total_bytes == psutil.virtual_memory().total
    assert inv.dmi.present == os.path.isdir("/sys/class/dmi/id")
    assert all(disk_transport(b.name) for b in inv.block_devices)
    assert inventory_to_proto(inv).host.hostname == socket.gethostname()
