"""Following a BMC's system event log by record id.

Reading the whole SEL every cycle (what ipmitool-based exporters do) costs
one request per entry, and a full log has thousands.  :class:`SelCursor`
remembers the last record it delivered (id, its 16 raw bytes, and the log's
erase time stamp) in the state directory and asks only for the records after
it: one Get SEL Info per cycle, and one Get SEL Entry per new record plus one.

- First contact with a BMC: the history is not replayed as events (it is in
  ``Bmc.GetEventLog``); the cursor starts at the newest record.
- The log was cleared (erase stamp changed, or the remembered record is gone
  or has other bytes): every record in it is new.
- After an agent restart the cursor is read back, so nothing is delivered
  twice.
"""
from __future__ import annotations

import json
import os

from agent.backends.ipmi_model import SelEntry, SelInfo
from agent.logs import get_logger

log = get_logger(__name__)
FIRST, LAST, END = 0x0000, 0xFFFF, 0xFFFF
MAX_PER_CYCLE = 512  # a flood is read over several cycles, oldest first


class SelCursor:
    def __init__(self, path: str) -> None:
        self.path = path
        self.record_id: int | None = None
        self.raw = b""
        self.erase_time = self.add_time = 0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path) as f:
                s = json.load(f)
            self.record_id, self.raw = s["record_id"], bytes.fromhex(s["raw"])
            self.erase_time, self.add_time = s["erase_time"], s["add_time"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("bmc.sel_state_unreadable", path=self.path, error=str(exc))

    def _save(self) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"record_id": self.record_id, "raw": self.raw.hex(),
                       "erase_time": self.erase_time, "add_time": self.add_time}, f)
        os.replace(tmp, self.path)

    def read_new(self, backend, info: SelInfo) -> list[SelEntry]:
        """The records added since the last call (oldest first); the cursor
        moves past them.  ``backend`` is an ``agent.backends.ipmi.BmcBackend``."""
        if self.record_id is None:  # first contact
            last = backend.sel_entry(LAST) if info.entries else None
            self._move(last[1] if last else None, info)
            return []
        if info.add_time == self.add_time and info.erase_time == self.erase_time and info.add_time:
            return []  # nothing added since the last look
        start = FIRST
        if info.erase_time == self.erase_time and self.record_id is not None and self.raw:
            here = backend.sel_entry(self.record_id)
            if here is not None and here[1].raw == self.raw:
                start = here[0]  # the record after the last delivered one
        new: list[SelEntry] = []
        record = start
        while record != END and info.entries and len(new) < MAX_PER_CYCLE:
            got = backend.sel_entry(record)
            if got is None:
                break
            record, entry = got
            new.append(entry)
        # Stopped at the per-cycle limit: forget the add stamp so the next
        # cycle goes on from here.
        self._move(new[-1] if new else None, info, keep=not new, complete=record == END)
        return new

    def _move(self, entry: SelEntry | None, info: SelInfo, keep: bool = False,
              complete: bool = True) -> None:
        if not keep:
            self.record_id = entry.record_id if entry else FIRST
            self.raw = entry.raw if entry else b""
        self.erase_time, self.add_time = info.erase_time, info.add_time if complete else -1
        try:
            self._save()
        except OSError as exc:
            log.error("bmc.sel_state_save_failed", path=self.path, error=str(exc))
