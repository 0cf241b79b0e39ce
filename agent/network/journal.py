"""The transaction journal and the managed set, as small JSON files in the
state directory, each replaced atomically (write, fsync, rename, fsync the
directory), so a kill -9 or a power cut leaves either the old or the new one.

``network.journal.json`` holds the last transaction: its phase
(``applying`` -> ``awaiting`` | ``committed`` | ``rolled_back``), the snapshot
of what it touches, and the managed sets before and after.  It is written
before the first netlink change; at start, ``applying`` or ``awaiting`` means
the agent died mid-apply or before a confirmation, and recover() rolls back.
``network.managed.json`` holds what the agent manages (interfaces, routes).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from agent.logs import get_logger
from agent.network.model import NetworkState, Route, from_dict, to_dict

log = get_logger(__name__)
JOURNAL = "network.journal.json"
MANAGED = "network.managed.json"
VERSION = 1


def write_atomic(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(data, sort_keys=True).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: str) -> Any | None:
    """The file's content; None when absent.  A damaged file is moved aside
    (kept for a person to read) and reads as absent."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        aside = f"{path}.corrupt-{int(time.time())}"
        os.replace(path, aside)
        log.error("network.journal_corrupt", path=path, moved_to=aside, error=str(exc))
        return None


class Managed:
    """What the agent manages: interface names and routes (persisted)."""

    def __init__(self, interfaces: frozenset[str] = frozenset(), routes: tuple[Route, ...] = ()) -> None:
        self.interfaces, self.routes = interfaces, routes

    def to_json(self) -> dict:
        return {"interfaces": sorted(self.interfaces),
                "routes": [to_dict(NetworkState(routes=(r,)))["routes"][0] for r in self.routes]}

    @classmethod
    def from_json(cls, data: dict | None) -> Managed:
        if not data:
            return cls()
        return cls(frozenset(data.get("interfaces", ())), from_dict({"routes": data.get("routes", ())}).routes)


class Journal:
    def __init__(self, state_dir: str) -> None:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self.path = os.path.join(state_dir, JOURNAL)
        self.managed_path = os.path.join(state_dir, MANAGED)

    def managed(self) -> Managed:
        return Managed.from_json(read_json(self.managed_path))

    def save_managed(self, managed: Managed) -> None:
        write_atomic(self.managed_path, managed.to_json())

    def load(self) -> dict | None:
        data = read_json(self.path)
        if data is not None and data.get("version") != VERSION:
            log.error("network.journal_version", path=self.path, version=data.get("version"))
            return None
        return data

    def begin(self, txid: str, snapshot: NetworkState, before: Managed, after: Managed, steps: list[str]) -> dict:
        record = {"version": VERSION, "txid": txid, "phase": "applying", "started": time.time(),
                  "deadline": None, "snapshot": to_dict(snapshot), "managed_before": before.to_json(),
                  "managed_after": after.to_json(), "steps": steps}
        write_atomic(self.path, record)
        return record

    def set_phase(self, record: dict, phase: str, deadline: float | None = None) -> None:
        record["phase"], record["deadline"] = phase, deadline
        record["updated"] = time.time()
        write_atomic(self.path, record)

    @staticmethod
    def snapshot(record: dict) -> NetworkState:
        return from_dict(record["snapshot"])
