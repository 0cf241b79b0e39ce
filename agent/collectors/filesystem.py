"""Space and inodes of every mounted file system: ``statfs(2)`` of each mount
listed in ``/proc/1/mountinfo`` (the host's mount table, as node_exporter
reads it; ``/proc/self/mountinfo`` when PID 1 is hidden).

mountinfo, one mount per line (proc(5))::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    id parent maj:min root mountpoint mount-options [optional...] - fstype source super-options

Paths escape space, tab, newline and backslash as ``\\ooo`` octal.  Read-only
is ``ro`` in the mount options or the super options: the host's own flags,
not those of the agent's namespace (``ProtectSystem=strict`` remounts
everything read-only there).

Names, labels and default exclusions are node_exporter's.  Unlike
node_exporter, a mount hidden by a later mount on the same path (and what
sat below it) is not reported: ``statfs`` of the path sees only the top one.

Every ``statfs`` runs on a :class:`~agent.backends.probes.ProbePool` under
``mount_timeout``: a hung mount (dead NFS server, wedged FUSE daemon) is
reported ``node_filesystem_device_error 1`` and never holds up the
collector; while its call stays hung it is not called again (one thread per
stuck mount at most), and it is probed anew once that call returns.  See
docs/node_exporter.md.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.backends import statfs as statfs_backend
from agent.backends.probes import ProbePool, Status
from agent.backends.statfs import StatfsFn
from agent.config_values import duration, regex
from agent.logs import get_logger
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.events import Severity
from agent.telemetry.model import Batch, FamilyDesc, MetricType

log = get_logger(__name__)
G = MetricType.GAUGE

# node_exporter 1.5+ defaults (collector/filesystem_linux.go).
MOUNT_POINTS_EXCLUDE = (r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|"
                        r"var/lib/containers/storage/.+)($|/)")
FS_TYPES_EXCLUDE = (r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|"
                    r"hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|"
                    r"securityfs|selinuxfs|squashfs|sysfs|tracefs)$")
MOUNT_TIMEOUT = 1.0  # seconds; node_exporter's --collector.filesystem.mount-timeout is 5s
OPTIONS = {"mount_points_exclude": regex, "fs_types_exclude": regex, "mount_timeout": duration}

_LABELS = ("device", "mountpoint", "fstype")
SIZE = FamilyDesc("node_filesystem_size_bytes", G, "Filesystem size in bytes", "bytes", _LABELS)
FREE = FamilyDesc("node_filesystem_free_bytes", G,
                  "Filesystem free space in bytes, including space reserved for root", "bytes", _LABELS)
AVAIL = FamilyDesc("node_filesystem_avail_bytes", G,
                   "Filesystem space available to non-root users in bytes", "bytes", _LABELS)
FILES = FamilyDesc("node_filesystem_files", G, "Filesystem total file nodes (inodes)", "", _LABELS)
FILES_FREE = FamilyDesc("node_filesystem_files_free", G, "Filesystem free file nodes (inodes)", "",
                        _LABELS)
READONLY = FamilyDesc("node_filesystem_readonly", G, "1 if the filesystem is mounted read-only", "",
                      _LABELS)
DEVICE_ERROR = FamilyDesc("node_filesystem_device_error", G,
                          "1 if statfs failed or gave no answer within the mount timeout", "", _LABELS)
MOUNT_INFO = FamilyDesc("node_filesystem_mount_info", G, "Filesystem mount information, value is always 1",
                        "", ("device", "major", "minor", "mountpoint"))

_OCTAL = re.compile(r"\\([0-7]{3})")


class Mount(NamedTuple):
    mount_id: int
    parent_id: int
    major: str
    minor: str
    mountpoint: str
    options: frozenset[str]  # per-mount options (rw/ro, nosuid, relatime...)
    fstype: str  # "ext4", "nfs4", "fuse.sshfs"
    device: str  # the mount source: "/dev/vda1", "server:/export", "tmpfs"
    super_options: frozenset[str]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options or "ro" in self.super_options


def unescape(field: str) -> str:
    """``/mnt/my\\040disk`` -> ``/mnt/my disk`` (the kernel's octal escapes)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field) if "\\" in field else field


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts in file order; raises ``ValueError`` on a malformed line."""
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            majmin = fields[2].split(":")
            if len(majmin) != 2 or len(fields) < sep + 3:
                raise ValueError
            mounts.append(Mount(int(fields[0]), int(fields[1]), majmin[0], majmin[1],
                                unescape(fields[4]), frozenset(fields[5].split(",")),
                                unescape(fields[sep + 1]), unescape(fields[sep + 2]),
                                frozenset(",".join(fields[sep + 3:]).split(","))))
        except (ValueError, IndexError):
            raise ValueError(f"mountinfo: malformed line {line[:200]!r}") from None
    return mounts


def visible_mounts(mounts: list[Mount]) -> list[Mount]:
    """Drop mounts covered by a later mount on the same path, and everything
    mounted below a covered one: ``statfs`` of the path cannot reach them."""
    by_id = {m.mount_id: m for m in mounts}
    hidden = {m.parent_id for m in mounts
              if m.parent_id in by_id and by_id[m.parent_id].mountpoint == m.mountpoint}

    def below_hidden(m: Mount) -> bool:
        seen = set()
        while m.mount_id not in seen:
            seen.add(m.mount_id)
            parent = by_id.get(m.parent_id)
            if parent is None:
                return False
            if parent.mount_id in hidden and parent.mountpoint != m.mountpoint:
                return True  # sits on a covered mount, not on top of it
            m = parent
        return False

    return [m for m in mounts if m.mount_id not in hidden and not below_hidden(m)]


class FilesystemCollector:
    name = "filesystem"

    def __init__(self, ctx: CollectorContext, statfs: StatfsFn = statfs_backend.statfs,
                 workers: int = 4, max_threads: int = 32) -> None:
        self._fs = ctx.hostfs
        self._publish = ctx.publish
        opts = ctx.options
        self._mount_exclude = re.compile(opts.get("mount_points_exclude", MOUNT_POINTS_EXCLUDE))
        self._type_exclude = re.compile(opts.get("fs_types_exclude", FS_TYPES_EXCLUDE))
        self._timeout = float(opts.get("mount_timeout", MOUNT_TIMEOUT))
        self._statfs = statfs
        self._pool: ProbePool[str] = ProbePool(self._probe, workers, max_threads,
                                               stall=min(0.25, self._timeout / 4), name="statfs")
        self._stuck: set[str] = set()

    def _probe(self, mountpoint: str):
        return self._statfs(str(self._fs.path(mountpoint)))

    def _mounts(self) -> list[Mount]:
        for rel in ("proc/1/mountinfo", "proc/self/mountinfo"):
            try:
                text = self._fs.read_text(rel)
            except OSError:  # absent, or PID 1 hidden (hidepid, ProtectProc=)
                continue
            return parse_mountinfo(text)
        raise NoData("no mount table (proc/1/mountinfo, proc/self/mountinfo)")

    def collect(self, batch: Batch) -> None:
        chosen: dict[tuple[str, str, str], Mount] = {}
        for m in visible_mounts(self._mounts()):
            if self._mount_exclude.search(m.mountpoint) or self._type_exclude.search(m.fstype):
                continue
            chosen[(m.device, m.mountpoint, m.fstype)] = m  # the same mount twice: the last one
        outcomes = self._pool.run([m.mountpoint for m in chosen.values()], self._timeout)
        for labels, m in chosen.items():
            outcome = outcomes[m.mountpoint]
            batch.gauge(MOUNT_INFO, 1, m.device, m.major, m.minor, m.mountpoint)
            batch.gauge(DEVICE_ERROR, 0 if outcome.status is Status.OK else 1, *labels)
            batch.gauge(READONLY, 1 if m.readonly else 0, *labels)
            if outcome.status is Status.OK:
                usage = outcome.value
                batch.gauge(SIZE, usage.size_bytes, *labels)
                batch.gauge(FREE, usage.free_bytes, *labels)
                batch.gauge(AVAIL, usage.avail_bytes, *labels)
                batch.gauge(FILES, usage.files, *labels)
                batch.gauge(FILES_FREE, usage.files_free, *labels)
            elif outcome.status is Status.ERROR:
                log.debug("filesystem.statfs_failed", mountpoint=m.mountpoint, error=str(outcome.error))
        self._report_stuck(outcomes)

    def _report_stuck(self, outcomes) -> None:
        stuck = {mp for mp, o in outcomes.items() if o.status in (Status.TIMEOUT, Status.STUCK)}
        for mp in sorted(stuck - self._stuck):
            log.warning("filesystem.stuck", mountpoint=mp, timeout=self._timeout)
            self._publish("filesystem.stuck", Severity.WARNING, self.name,
                          f"{mp}: no answer from statfs within {self._timeout:g}s; "
                          "device_error 1 until it answers", mountpoint=mp)
        for mp in sorted((self._stuck - stuck) & outcomes.keys()):
            log.info("filesystem.recovered", mountpoint=mp)
            self._publish("filesystem.recovered", Severity.INFO, self.name,
                          f"{mp}: statfs answers again", mountpoint=mp)
        self._stuck = stuck

    def close(self) -> None:
        self._pool.close()


COLLECTOR = CollectorInfo(name="filesystem", factory=FilesystemCollector, options=OPTIONS)
