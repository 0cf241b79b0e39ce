"""Storage collectors (filesystem, diskstats, mdadm, nvme) on the vm-storage
host tree (tests/fixtures/hosts/vm-storage/README.md says what is recorded and
what is written), on tmp trees for the cases the VM lacks, and live on "/"."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.backends.statfs import FsUsage
from agent.collectors import diskstats, filesystem, mdadm
from agent.collectors.diskstats import DiskstatsCollector, parse_diskstats, parse_udev_data
from agent.collectors.filesystem import FilesystemCollector, parse_mountinfo, visible_mounts
from agent.collectors.mdadm import MdadmCollector, MdStat, parse_mdstat
from agent.collectors.nvme import NvmeCollector
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch, MetricType
from tests.helpers import batch_families, batch_raw, batch_values

TREE = Path(__file__).parent / "fixtures" / "hosts" / "vm-storage"


def ctx(root, events=None, **options) -> CollectorContext:
    publish = (lambda kind, sev, src, msg, **labels: events.append((kind, labels))) \
        if events is not None else (lambda *a, **k: None)
    return CollectorContext(hostfs=HostFS(root), options=options, publish=publish)


def collect(collector) -> Batch:
    batch = Batch()
    collector.collect(batch)
    return batch


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- filesystem ----------------------------------------------------------------
HOST_MOUNTINFO = """\
22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=16384k
24 22 0:22 / /run rw,nosuid,nodev,noexec shared:5 - tmpfs tmpfs rw,size=3289028k,mode=755
25 22 8:1 / /boot/efi rw,relatime shared:30 - vfat /dev/sda1 rw,fmask=0077
26 22 0:45 / /mnt/nfs\\040share rw,relatime shared:40 - nfs4 filer:/export/home\\040dirs rw,vers=4.2,hard
27 22 7:0 / /snap/core/100 ro,nodev,relatime shared:50 - squashfs /dev/loop0 ro
28 22 8:3 / /data rw,relatime shared:60 - xfs /dev/sda3 ro,attr2
29 28 8:17 / /data rw,relatime shared:61 - xfs /dev/sdb1 rw,attr2
30 28 8:33 / /data/old rw shared:62 - ext4 /dev/sdc1 rw
31 22 0:60 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=/x
32 24 0:61 / /run/credentials/systemd-sysctl.service ro - ramfs ramfs ro
33 22 8:2 /srv /mnt/bind ro,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
34 22 8:49 / /archive rw - ext4 /dev/sdd1 ro
"""
SERVED = ["/", "/run", "/boot/efi", "/mnt/nfs share", "/data", "/mnt/bind", "/archive"]


def test_mountinfo_fields_and_escapes():
    mounts = parse_mountinfo(HOST_MOUNTINFO)
    assert len(mounts) == 13
    nfs = mounts[4]
    assert (nfs.mount_id, nfs.parent_id, nfs.major, nfs.minor) == (26, 22, "0", "45")
    assert (nfs.mountpoint, nfs.fstype, nfs.device) == ("/mnt/nfs share", "nfs4", "filer:/export/home dirs")
    assert nfs.options == {"rw", "relatime"} and nfs.super_options == {"rw", "vers=4.2", "hard"}
    assert not nfs.readonly
    by_mp = {m.mountpoint: m for m in mounts}
    assert by_mp["/mnt/bind"].readonly  # ro bind mount of a rw file system
    assert by_mp["/archive"].readonly  # file system read-only (super options)
    assert not by_mp["/"].readonly


def test_recorded_mountinfo_parses():
    mounts = parse_mountinfo((TREE / "proc/1/mountinfo").read_text())
    assert [(m.mountpoint, m.fstype, m.device) for m in mounts if m.fstype == "ext4"] == [
        ("/", "ext4", "/dev/vda"), ("/run/netns", "ext4", "/dev/vda")]


def test_mountinfo_malformed_line_is_an_error():
    with pytest.raises(ValueError, match="malformed"):
        parse_mountinfo("22 1 8:2 / / rw,relatime shared:1 ext4 /dev/sda2 rw\n")


def test_over_mounted_paths_and_what_is_below_them_are_hidden():
    visible = visible_mounts(parse_mountinfo(HOST_MOUNTINFO))
    ids = [m.mount_id for m in visible]
    assert 28 not in ids and 30 not in ids  # /data over-mounted by 29; /data/old sat on 28
    assert 29 in ids and len(ids) == 11


class FakeStatfs:
    """Distinct usage per mount point; ``hung`` mount points block on ``gate``."""

    def __init__(self, root: Path, hung=(), fail=()) -> None:
        self.root = str(root)
        self.hung, self.fail = set(hung), set(fail)
        self.gate = threading.Event()
        self.returned = threading.Event()
        self.calls: dict[str, int] = {}

    def __call__(self, path: str) -> FsUsage:
        assert path.startswith(self.root)
        mp = path[len(self.root):] or "/"
        self.calls[mp] = self.calls.get(mp, 0) + 1
        if mp in self.hung:
            self.gate.wait()
            self.returned.set()
        if mp in self.fail:
            raise PermissionError(13, "Permission denied", path)
        n = SERVED.index(mp) + 1
        return FsUsage(n * 1000 * 4096, n * 400 * 4096, n * 300 * 4096, n * 100, n * 60)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    write(tmp_path, "proc/1/mountinfo", HOST_MOUNTINFO)
    return tmp_path


def test_filesystem_families_labels_and_default_excludes(host):
    fake = FakeStatfs(host, fail={"/boot/efi"})
    collector = FilesystemCollector(ctx(host), statfs=fake)
    values = batch_values(collect(collector))
    collector.close()
    mps = {labels[1] for (name, labels) in values if name == "node_filesystem_device_error"}
    assert mps == set(SERVED)  # /dev, squashfs, docker overlay, /run/credentials excluded
    nfs = ("filer:/export/home dirs", "/mnt/nfs share", "nfs4")
    assert values["node_filesystem_size_bytes", nfs] == 4 * 1000 * 4096
    assert values["node_filesystem_free_bytes", nfs] == 4 * 400 * 4096
    assert values["node_filesystem_avail_bytes", nfs] == 4 * 300 * 4096
    assert values["node_filesystem_files", nfs] == 400
    assert values["node_filesystem_files_free", nfs] == 240
    assert values["node_filesystem_device_error", nfs] == 0
    assert values["node_filesystem_readonly", nfs] == 0
    assert values["node_filesystem_mount_info", ("filer:/export/home dirs", "0", "45", "/mnt/nfs share")] == 1
    assert values["node_filesystem_readonly", ("/dev/sda2", "/mnt/bind", "ext4")] == 1
    assert values["node_filesystem_readonly", ("/dev/sdd1", "/archive", "ext4")] == 1
    assert ("node_filesystem_size_bytes", ("/dev/sda3", "/data", "xfs")) not in values  # hidden
    assert values["node_filesystem_size_bytes", ("/dev/sdb1", "/data", "xfs")] == 5 * 1000 * 4096
    efi = ("/dev/sda1", "/boot/efi", "vfat")  # statfs failed: error, read-only flag, no sizes
    assert values["node_filesystem_device_error", efi] == 1
    assert values["node_filesystem_readonly", efi] == 0
    assert ("node_filesystem_size_bytes", efi) not in values
    assert all(f.type is MetricType.GAUGE for f in batch_families(collect_once(host)).values())


def collect_once(host):
    collector = FilesystemCollector(ctx(host), statfs=FakeStatfs(host))
    try:
        return collect(collector)
    finally:
        collector.close()


def test_filesystem_exclude_options(host):
    collector = FilesystemCollector(ctx(host, mount_points_exclude="^/(run|mnt)($|/)",
                                        fs_types_exclude="^(vfat|xfs)$"), statfs=FakeStatfs(host))
    values = batch_values(collect(collector))
    collector.close()
    mps = {labels[1] for (name, labels) in values if name == "node_filesystem_device_error"}
    # /dev and the squashfs are back (custom patterns replace the defaults)
    assert mps == {"/", "/dev", "/snap/core/100", "/var/lib/docker/overlay2/abc/merged", "/archive"}


def test_hung_mount_never_stalls_and_is_not_probed_again_until_it_returns(host):
    fake = FakeStatfs(host, hung={"/mnt/nfs share"})
    events: list = []
    collector = FilesystemCollector(ctx(host, events, mount_timeout=1.0), statfs=fake)
    nfs = ("filer:/export/home dirs", "/mnt/nfs share", "nfs4")
    root = ("/dev/sda2", "/", "ext4")
    try:
        t0 = time.monotonic()
        values = batch_values(collect(collector))
        assert 0.9 < time.monotonic() - t0 < 1.0 + 0.8  # the budget, not forever
        assert values["node_filesystem_device_error", nfs] == 1
        assert ("node_filesystem_size_bytes", nfs) not in values
        assert values["node_filesystem_readonly", nfs] == 0
        assert values["node_filesystem_size_bytes", root] == 1000 * 4096
        assert values["node_filesystem_device_error", root] == 0
        threads = threading.active_count()
        for _ in range(2):  # second and third collection: no new probe, no new thread
            t0 = time.monotonic()
            values = batch_values(collect(collector))
            assert time.monotonic() - t0 < 0.5  # the stuck mount is not waited for again
            assert values["node_filesystem_device_error", nfs] == 1
            assert values["node_filesystem_size_bytes", root] == 1000 * 4096
            assert threading.active_count() == threads
        assert fake.calls["/mnt/nfs share"] == 1
        assert fake.calls["/"] == 3
        assert [e for e in events if e[0] == "filesystem.stuck"] == [
            ("filesystem.stuck", {"mountpoint": "/mnt/nfs share"})]
        fake.gate.set()  # the NFS server is back: the hung statfs returns
        assert fake.returned.wait(2.0)
        deadline = time.monotonic() + 2.0
        while fake.calls["/mnt/nfs share"] < 2:  # retried now that its probe returned
            values = batch_values(collect(collector))
            assert time.monotonic() < deadline
        assert values["node_filesystem_device_error", nfs] == 0
        assert values["node_filesystem_size_bytes", nfs] == 4 * 1000 * 4096
        assert events[-1] == ("filesystem.recovered", {"mountpoint": "/mnt/nfs share"})
    finally:
        fake.gate.set()
        collector.close()


def test_filesystem_falls_back_to_self_mountinfo_and_nodata_without_any(tmp_path):
    write(tmp_path, "proc/self/mountinfo", "27 1 254:0 / / rw - ext4 /dev/vda rw\n")
    collector = FilesystemCollector(ctx(tmp_path), statfs=lambda p: FsUsage(1, 1, 1, 1, 1))
    assert batch_values(collect(collector))["node_filesystem_size_bytes", ("/dev/vda", "/", "ext4")] == 1
    collector.close()
    empty = FilesystemCollector(ctx(tmp_path / "empty"))
    with pytest.raises(NoData):
        collect(empty)
    empty.close()


def test_filesystem_on_recorded_tree_statfs_of_the_tree(tmp_path):
    collector = FilesystemCollector(ctx(TREE))  # real statfs of the fixture's own directories
    values = batch_values(collect(collector))
    collector.close()
    assert values["node_filesystem_device_error", ("/dev/vda", "/", "ext4")] == 0
    assert values["node_filesystem_device_error", ("/dev/vda", "/run/netns", "ext4")] == 1  # no such dir
    st = os.statvfs(TREE)
    assert values["node_filesystem_size_bytes", ("/dev/vda", "/", "ext4")] == st.f_blocks * st.f_frsize


# -- diskstats -------------------------------------------------------------------
def test_diskstats_parser_recorded_5_5_format():
    disks = {d.device: d for d in parse_diskstats((TREE / "proc/diskstats").read_text())}
    assert sorted(disks) == [f"loop{i}" for i in range(8)] + ["vda", "zram0"]
    vda = disks["vda"]
    assert (vda.major, vda.minor) == (254, 0)
    assert vda.fields == (115614, 28421, 4660658, 71524, 178535, 73567, 3923056, 24553, 0, 48636,
                          103023, 38884, 44, 3407472, 4208, 51603, 2737)


def test_diskstats_parser_older_kernels_and_partitions():
    text = ("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n"  # before 4.18: 11 fields
            "   8      16 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"  # 4.18: discards
            "   8       1 sda1 12 34 56 78\n")  # 2.6.24 partition format: skipped
    disks = parse_diskstats(text)
    assert [(d.device, len(d.fields)) for d in disks] == [("sda", 11), ("sdb", 15)]
    with pytest.raises(ValueError):
        parse_diskstats("8 0 sda 1 2 3 x 5 6 7 8 9 10 11\n")


def test_diskstats_collector_on_recorded_tree():
    batch = collect(DiskstatsCollector(ctx(TREE)))
    values, raw, families = batch_values(batch), batch_raw(batch), batch_families(batch)
    assert {labels[0] for (_, labels) in values} == {"vda"}  # loop*, zram0 ignored by default
    v = ("vda",)
    assert raw["node_disk_reads_completed_total", v] == 115614
    assert values["node_disk_read_bytes_total", v] == 4660658 * 512
    assert values["node_disk_written_bytes_total", v] == 3923056 * 512
    assert values["node_disk_read_time_seconds_total", v] == pytest.approx(71.524)
    assert values["node_disk_io_now", v] == 0
    assert values["node_disk_io_time_weighted_seconds_total", v] == pytest.approx(103.023)
    assert raw["node_disk_discarded_sectors_total", v] == 3407472  # sectors, as node_exporter
    assert values["node_disk_flush_requests_time_seconds_total", v] == pytest.approx(2.737)
    assert families["node_disk_read_time_seconds_total"].counter_bits == 32  # kernel %u
    assert families["node_disk_reads_completed_total"].counter_bits == 64
    assert values["node_disk_info", ("vda", "254", "0", "pci-0000:00:02.0", "", "", "", "")] == 1
    assert values["node_disk_filesystem_info",
                  ("vda", "ext4", "filesystem", "6f1c2a4e-8d3b-4f0e-9a57-2c1d0b7e9f31", "1.0")] == 1
    assert values["node_disk_rotational", v] == 1
    assert "node_disk_device_mapper_info" not in families


def test_diskstats_device_exclude_option():
    values = batch_values(collect(DiskstatsCollector(ctx(TREE, device_exclude="^loop"))))
    assert {labels[0] for (_, labels) in values} == {"vda", "zram0"}
    assert values["node_disk_rotational", ("zram0",)] == 0


def test_diskstats_udev_ata_device_mapper_and_old_kernel(tmp_path):
    write(tmp_path, "proc/diskstats", "   8  0 sda 10 0 80 5 20 0 160 7 1 12 12\n"
                                      " 253  0 dm-0 3 0 24 1 4 0 32 2 0 3 3\n")
    write(tmp_path, "run/udev/data/b8:0",
          "S:disk/by-id/ata-ST4000NM0035\nE:ID_ATA=1\nE:ID_ATA_WRITE_CACHE=1\n"
          "E:ID_ATA_WRITE_CACHE_ENABLED=0\nE:ID_ATA_ROTATION_RATE_RPM=7200\nE:ID_MODEL=ST4000NM0035\n"
          "E:ID_SERIAL_SHORT=ZC1234AB\nE:SCSI_IDENT_SERIAL=ZC1234AB-SCSI\nE:ID_REVISION=TN04\n"
          "E:ID_WWN=0x5000c500a1b2c3d4\nE:ID_PATH=pci-0000:00:17.0-ata-1\n")
    write(tmp_path, "run/udev/data/b253:0",
          "E:DM_NAME=vg0-root\nE:DM_UUID=LVM-abc\nE:DM_VG_NAME=vg0\nE:DM_LV_NAME=root\n")
    values = batch_values(collect(DiskstatsCollector(ctx(tmp_path))))
    assert values["node_disk_info", ("sda", "8", "0", "pci-0000:00:17.0-ata-1", "0x5000c500a1b2c3d4",
                                     "ST4000NM0035", "ZC1234AB-SCSI", "TN04")] == 1
    assert values["node_disk_ata_write_cache", ("sda",)] == 1
    assert values["node_disk_ata_write_cache_enabled", ("sda",)] == 0
    assert values["node_disk_ata_rotation_rate_rpm", ("sda",)] == 7200
    assert values["node_disk_device_mapper_info", ("dm-0", "vg0-root", "LVM-abc", "vg0", "root", "")] == 1
    assert ("node_disk_discards_completed_total", ("sda",)) not in values  # 11-field kernel
    assert values["node_disk_io_time_seconds_total", ("sda",)] == pytest.approx(0.012)


def test_udev_data_parser():
    assert parse_udev_data("S:disk/x\nE:A=1\nE:B=x=y\nE:broken\nI:5\n") == {"A": "1", "B": "x=y"}


def test_diskstats_nodata_on_empty_tree(tmp_path):
    with pytest.raises(NoData):
        collect(DiskstatsCollector(ctx(tmp_path)))


# -- mdadm -----------------------------------------------------------------------
def test_mdstat_parser_on_written_fixture():
    assert parse_mdstat((TREE / "proc/mdstat").read_text()) == [
        MdStat("md0", "active", 2, 2, 0, 0, 0, 1046528, 1046528),
        MdStat("md1", "recovering", 3, 4, 1, 1, 1, 2929890816, 171903360),
        MdStat("md2", "check", 6, 6, 0, 0, 0, 7813529600, 166066176),
        MdStat("md3", "active", 2, 2, 0, 0, 0, 1000206336, 1000206336),
        MdStat("md4", "resync", 4, 4, 0, 0, 0, 1953260544, 0),
        MdStat("md127", "inactive", 0, 0, 0, 1, 0, 976631512, 976631512),
    ]


def test_mdstat_parser_rejects_what_it_cannot_read():
    with pytest.raises(ValueError):
        parse_mdstat("md0 : active raid1 sda1[0] sdb1[1]\n      1046528 blocks super 1.2\n")
    with pytest.raises(ValueError):
        parse_mdstat("garbage line\n")


def test_mdadm_collector_on_tree():
    values = batch_values(collect(MdadmCollector(ctx(TREE))))
    assert values["node_md_state", ("md1", "recovering")] == 1
    assert values["node_md_state", ("md1", "active")] == 0
    assert {s for (n, (d, s)) in [(n, l) for n, l in values if n == "node_md_state"] if d == "md0"} == \
        set(mdadm.STATES)
    assert values["node_md_disks", ("md1", "failed")] == 1
    assert values["node_md_disks", ("md1", "spare")] == 1
    assert values["node_md_disks", ("md1", "active")] == 3
    assert values["node_md_disks_required", ("md1",)] == 4
    assert values["node_md_blocks", ("md2",)] == 7813529600
    assert values["node_md_blocks_synced", ("md2",)] == 166066176
    assert values["node_md_state", ("md127", "inactive")] == 1


def test_mdadm_nodata_without_file_or_arrays(tmp_path):
    with pytest.raises(NoData):
        collect(MdadmCollector(ctx(tmp_path)))
    write(tmp_path, "proc/mdstat", "Personalities : [raid1]\nunused devices: <none>\n")
    with pytest.raises(NoData, match="no md array"):
        collect(MdadmCollector(ctx(tmp_path)))


# -- nvme --------------------------------------------------------------------------
def test_nvme_info_on_tree():
    values = batch_values(collect(NvmeCollector(ctx(TREE))))
    assert values == {
        ("node_nvme_info", ("nvme0", "5B2QGXA7", "Samsung SSD 980 PRO 2TB", "S69ENF0R846123X",
                            "live", "6")): 1,
        ("node_nvme_info", ("nvme1", "VDV10170", "INTEL SSDPE2KX040T8", "PHLJ912300AB4P0DGN",
                            "resetting", "0")): 1,
    }


def test_nvme_nodata_and_missing_attribute(tmp_path):
    with pytest.raises(NoData):
        collect(NvmeCollector(ctx(tmp_path)))
    write(tmp_path, "sys/class/nvme/nvme0/model", "QEMU NVMe Ctrl\n")
    values = batch_values(collect(NvmeCollector(ctx(tmp_path))))
    assert values == {("node_nvme_info", ("nvme0", "", "QEMU NVMe Ctrl", "", "", "")): 1}


# -- live on this machine ------------------------------------------------------------
def test_live_filesystem_root_matches_statvfs():
    collector = FilesystemCollector(ctx("/"))
    values = batch_values(collect(collector))
    collector.close()
    root = [labels for (name, labels) in values
            if name == "node_filesystem_size_bytes" and labels[1] == "/"]
    assert len(root) == 1
    st = os.statvfs("/")
    assert values["node_filesystem_size_bytes", root[0]] == st.f_blocks * st.f_frsize
    assert values["node_filesystem_device_error", root[0]] == 0


def test_live_diskstats_mdadm_nvme_run_on_this_host():
    if not os.path.exists("/proc/diskstats"):
        pytest.skip("no /proc/diskstats")
    values = batch_values(collect(DiskstatsCollector(ctx("/"))))
    assert any(name == "node_disk_reads_completed_total" for name, _ in values)
    for cls in (MdadmCollector, NvmeCollector):  # NoData where the host has none
        try:
            collect(cls(ctx("/")))
        except NoData:
            pass


def test_options_are_declared_with_checkers():
    from agent.config_values import Invalid

    assert set(filesystem.OPTIONS) == {"mount_points_exclude", "fs_types_exclude", "mount_timeout"}
    assert set(diskstats.OPTIONS) == {"device_exclude"}
    with pytest.raises(Invalid):
        filesystem.OPTIONS["fs_types_exclude"]("(unclosed")
    assert filesystem.OPTIONS["mount_timeout"]("500ms") == 0.5
