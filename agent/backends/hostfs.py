"""Read-only access to the host's pseudo file systems (/proc, /sys, /etc).

Collectors and inventory take a :class:`HostFS` instead of opening paths
themselves, so tests point it at a fixture tree (``tests/fixtures/hosts/...``)
and the daemon at ``/``.
"""
from __future__ import annotations

import os
from pathlib import Path


class HostFS:
    """Paths are given relative to the host's root, e.g. ``"proc/stat"``."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)
        self._prefix = os.path.join(str(self.root), "")  # "/" or "/fixture/"

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def read_text(self, rel: str) -> str:
        """Whole file as text; raises ``OSError`` (``FileNotFoundError`` when absent)."""
        # A string path, not a Path: collectors read ~50 files per scrape and
        # pathlib's joining cost more than the reads.
        with open(self._prefix + rel.lstrip("/"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def read_value(self, rel: str, default: str | None = None) -> str | None:
        """One sysfs attribute, stripped; ``default`` when missing or unreadable."""
        try:
            return self.read_text(rel).strip()
        except OSError:
            return default

    def read_int(self, rel: str, default: int | None = None) -> int | None:
        value = self.read_value(rel)
        if value is None:
            return default
        try:
            return int(value, 0) if value.startswith("0x") else int(value)
        except ValueError:
            return default

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def listdir(self, rel: str) -> list[str]:
        """Sorted entries of a directory; empty when it does not exist."""
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def glob(self, pattern: str) -> list[str]:
        """Relative paths (to the root) matching ``pattern``, sorted."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(pattern))
