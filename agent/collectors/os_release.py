"""The operating system release: ``/etc/os-release``, else ``/usr/lib/os-release``.

Format (os-release(5)): newline-separated ``KEY=value`` assignments in a
shell-compatible subset; a value may be in single quotes, or in double
quotes where a backslash escapes a double quote, backslash, dollar or
backtick; ``#`` starts a comment line.  ``/etc/os-release`` is usually a symlink to
``../usr/lib/os-release``; an absolute link target is resolved inside the
host root, so a containerised agent reads the host's file, not its own.

node_exporter's ``os`` collector: ``node_os_info`` (value 1, the release
fields as labels), ``node_os_version`` (the leading ``major.minor`` of
``VERSION_ID`` as a number, only when there is one) and
``node_os_support_end_timestamp_seconds`` (``SUPPORT_END``, a date, at 00:00 UTC).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

G = MetricType.GAUGE
PATHS = ("etc/os-release", "usr/lib/os-release")
INFO_LABELS = ("build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name",
               "variant", "variant_id", "version", "version_codename", "version_id")
INFO = FamilyDesc("node_os_info", G, "Operating system release (os-release); value is always 1",
                  label_names=INFO_LABELS)
VERSION = FamilyDesc("node_os_version", G, "The major.minor part of the OS release's VERSION_ID",
                     label_names=("id", "id_like", "name"))
SUPPORT_END = FamilyDesc("node_os_support_end_timestamp_seconds", G,
                         "End of support of the OS release (SUPPORT_END), Unix time", "seconds")

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")
_ESCAPABLE = '"\\$`'


@dataclass(frozen=True)
class OsRelease:
    build_id: str = ""
    id: str = ""
    id_like: str = ""
    image_id: str = ""
    image_version: str = ""
    name: str = ""
    pretty_name: str = ""
    variant: str = ""
    variant_id: str = ""
    version: str = ""
    version_codename: str = ""
    version_id: str = ""
    support_end: str = ""

    @property
    def version_number(self) -> float | None:
        """``VERSION_ID="22.04"`` -> 22.04, ``"12"`` -> 12.0; None without digits."""
        match = _VERSION.match(self.version_id)
        return float(match.group(0)) if match else None

    @property
    def support_end_timestamp(self) -> float | None:
        """``SUPPORT_END=2026-06-10`` at 00:00 UTC; None when unset or not a date."""
        try:
            day = date.fromisoformat(self.support_end)
        except ValueError:
            return None
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


_KEYS = {f.name.upper(): f.name for f in fields(OsRelease)}


def unquote(raw: str) -> str:
    """One os-release value as the shell would read it."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
        out, i = [], 0
        while i < len(raw):
            if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPABLE:
                i += 1
            out.append(raw[i])
            i += 1
        return "".join(out)
    return raw


def parse_os_release(text: str) -> OsRelease:
    """Known keys only; unknown keys, comments and malformed lines are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGN.match(line.strip())
        if match and match.group(1) in _KEYS:
            values[_KEYS[match.group(1)]] = unquote(match.group(2))
    return OsRelease(**values)


def read_in_root(fs: HostFS, rel: str) -> str:
    """``rel`` under the host root, following a symlink with an absolute
    target inside the root instead of this process's file system."""
    path = fs.path(rel)
    for _ in range(8):
        if not path.is_symlink():
            break
        target = os.readlink(path)
        path = fs.path(target) if target.startswith("/") else path.parent / target
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


class OsReleaseCollector:
    name = "os"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        release = self._read()
        batch.gauge(INFO, 1, *(getattr(release, label) for label in INFO_LABELS))
        version = release.version_number
        if version:
            batch.gauge(VERSION, version, release.id, release.id_like, release.name)
        support_end = release.support_end_timestamp
        if support_end is not None:
            batch.gauge(SUPPORT_END, support_end)

    def _read(self) -> OsRelease:
        for rel in PATHS:
            try:
                return parse_os_release(read_in_root(self._fs, rel))
            except FileNotFoundError:
                continue
        raise NoData("no /etc/os-release or /usr/lib/os-release")


COLLECTOR = CollectorInfo(name="os", factory=OsReleaseCollector, interval=60.0)
