"""Linux software RAID (md) arrays from ``/proc/mdstat`` (node_exporter's
``mdadm`` collector).  Absent file or no array: ``NoData``.

Format (drivers/md/md.c ``md_seq_show``), one block per array::

    Personalities : [raid1] [raid6] [raid5] [raid4]
    md1 : active raid5 sdd1[3] sdc1[1] sdb1[0] sde1[4](S) sdf1[5](F)
          1953260544 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]
          bitmap: 2/8 pages [8KB], 65536KB chunk
          [==>..................]  recovery = 12.6% (123456/976630272) finish=127.5min speed=33440K/sec

    unused devices: <none>

The device line names the state (``active``/``inactive``) and the member
disks, ``(F)`` failed and ``(S)`` spare; the status line the size in 1 KiB
blocks and ``[total/active]``; an optional bitmap line; then an optional
sync line (``recovery``, ``resync``, ``check``; ``=PENDING``/``=DELAYED``
while waiting).  raid0 and linear arrays have no ``[n/m]``: every listed
disk is active.  State and counts follow node_exporter's procfs reading:
a reshape counts as ``active``.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
STATES = ("active", "inactive", "recovering", "resync", "check")  # node_md_state's state label
STATE = FamilyDesc("node_md_state", G, "1 for the state the md device is in, 0 for the others", "",
                   ("device", "state"))
DISKS = FamilyDesc("node_md_disks", G, "Active, failed and spare disks of the md device", "",
                   ("device", "state"))
DISKS_REQUIRED = FamilyDesc("node_md_disks_required", G, "Disks the md device is made of when complete",
                            "", ("device",))
BLOCKS = FamilyDesc("node_md_blocks", G, "Size of the md device in 1 KiB blocks", "", ("device",))
BLOCKS_SYNCED = FamilyDesc("node_md_blocks_synced", G,
                           "Blocks in sync (the size when no sync, recovery or check runs)", "",
                           ("device",))

_STATUS_RE = re.compile(r"(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]")
_PROGRESS_RE = re.compile(r"\((\d+)/\d+\)")


class MdStat(NamedTuple):
    device: str
    state: str  # one of STATES
    disks_active: int
    disks_total: int
    disks_failed: int
    disks_spare: int
    disks_down: int  # "_" in [UU_]
    blocks: int
    blocks_synced: int


def _array(device_line: str, body: list[str]) -> MdStat:
    fields = device_line.split()
    name, state = fields[0], fields[2]
    if not body:
        raise ValueError(f"/proc/mdstat: {name} has no status line")
    status = body[0]
    size = int(status.split()[0])
    failed, spare = device_line.count("(F)"), device_line.count("(S)")
    if "raid0" in device_line or "linear" in device_line:
        total = active = device_line.count("[")
        down = 0
    elif state == "inactive":
        total = active = down = 0
    else:
        match = _STATUS_RE.search(status)
        if match is None:
            raise ValueError(f"/proc/mdstat: {name}: no [total/active] in {status.strip()!r}")
        total, active, down = int(match.group(2)), int(match.group(3)), match.group(4).count("_")
    synced = size
    rest = [line for line in body[1:] if "bitmap:" not in line]
    sync = rest[0] if rest else ""
    for word, new_state in (("recovery", "recovering"), ("check", "check"), ("resync", "resync")):
        if word in sync:
            state = new_state
            if "PENDING" in sync or "DELAYED" in sync:
                synced = 0
            else:
                progress = _PROGRESS_RE.search(sync)
                if progress is None:
                    raise ValueError(f"/proc/mdstat: {name}: unexpected sync line {sync.strip()!r}")
                synced = int(progress.group(1))
            break
    if state not in STATES:  # e.g. "active(auto-read-only)"
        state = "inactive" if state.startswith("inactive") else "active"
    return MdStat(name, state, active, total, failed, spare, down, size, synced)


def parse_mdstat(text: str) -> list[MdStat]:
    """Arrays in file order; raises ``ValueError`` on a block it cannot read."""
    arrays: list[MdStat] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if (not line.strip() or line[0] in " \t" or line.startswith(("Personalities", "unused"))):
            continue
        if len(line.split()) < 3 or line.split()[1] != ":":
            raise ValueError(f"/proc/mdstat: unexpected line {line[:200]!r}")
        body = []
        while i < len(lines) and lines[i][:1] in (" ", "\t") and lines[i].strip():
            body.append(lines[i])
            i += 1
        arrays.append(_array(line, body))
    return arrays


class MdadmCollector:
    name = "mdadm"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        try:
            text = self._fs.read_text("proc/mdstat")
        except FileNotFoundError:
            raise NoData("no /proc/mdstat (md driver not loaded)") from None
        arrays = parse_mdstat(text)
        if not arrays:
            raise NoData("no md array")
        for md in arrays:
            dev = md.device
            batch.gauge(DISKS_REQUIRED, md.disks_total, dev)
            batch.gauge(DISKS, md.disks_active, dev, "active")
            batch.gauge(DISKS, md.disks_failed, dev, "failed")
            batch.gauge(DISKS, md.disks_spare, dev, "spare")
            for state in STATES:
                batch.gauge(STATE, 1 if md.state == state else 0, dev, state)
            batch.gauge(BLOCKS, md.blocks, dev)
            batch.gauge(BLOCKS_SYNCED, md.blocks_synced, dev)


COLLECTOR = CollectorInfo(name="mdadm", factory=MdadmCollector, on_scrape=True, inline=True)
