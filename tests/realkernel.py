"""Which tests run where, for the real-kernel lane (docs/testing.md).

Tests marked ``@pytest.mark.realkernel`` need what this machine's kernel
lacks (bond, 802.1Q/802.1ad VLAN, dummy, VLAN filtering on a bridge); they
run only inside Debian's stock kernel, which scripts/realkernel.sh boots
under QEMU with HOSTAGENT_IN_GUEST=1 set.  On the host they are deselected,
with a line saying where they run; in the guest they are the only tests
that run.  The hooks in tests/conftest.py call the functions here.

Inside the guest the tests use the usual ``netns`` / ``peer_netns`` fixtures
(tests/netns.py): namespaces in the guest's kernel.  A kernel feature that is
missing even there skips the test, or fails it with
HOSTAGENT_REQUIRE_REALKERNEL=1, which scripts/test.sh sets and the lane
passes into the guest.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

MARK = "realkernel"
IN_GUEST = os.environ.get("HOSTAGENT_IN_GUEST", "") == "1"
LANE = ("scripts/realkernel.sh .venv/bin/python -m pytest -q -p no:cacheprovider "
        "-m realkernel tests/")
_HOST_DESELECTED = pytest.StashKey[int]()


TESTS = Path(os.path.abspath(__file__)).parent


@functools.cache
def _lane_paths() -> frozenset[Path]:
    """The test modules under tests/ that name the marker, and every
    directory on the way to them.  One walk: os.walk reads each directory
    once and follows no symlink."""
    found: set[Path] = set()
    for root, _dirs, files in os.walk(TESTS):
        for name in files:
            if not (name.startswith("test_") and name.endswith(".py")):
                continue
            path = Path(root, name)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if MARK in text:
                found.add(path)
                found.update(p for p in path.parents if p == TESTS or TESTS in p.parents)
    return frozenset(found)


def ignore_collect(collection_path: Path) -> bool | None:
    """In the guest, pytest visits only the test modules that name the
    marker (the mark itself does) and the directories leading to them.
    Importing the whole suite under TCG would cost more than the tests, and
    walking the recorded sysfs trees under tests/fixtures, whose symlinks
    loop (``device -> ../../..``), costs the guest minutes: one 9p round
    trip per step, where the host hits ELOOP in a blink."""
    if not IN_GUEST:
        return None
    path = Path(os.path.abspath(collection_path))
    if path != TESTS and TESTS not in path.parents:
        return None
    if path.is_symlink():
        return True
    if path in _lane_paths():
        return None
    if path.is_dir() or (path.name.startswith("test_") and path.suffix == ".py"):
        return True
    return None


def select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the realkernel tests in the guest and the others on the host."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marked = item.get_closest_marker(MARK) is not None
        (keep if marked == IN_GUEST else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if not IN_GUEST:
        config.stash[_HOST_DESELECTED] = len(drop)


def summary(terminalreporter) -> None:
    count = terminalreporter.config.stash.get(_HOST_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"realkernel: {count} test(s) deselected here; they run inside Debian's kernel "
            f"under QEMU (scripts/test.sh's last step): {LANE}")


def require(what: str, why: str) -> None:
    """Skip the calling test because the kernel lacks ``what``, or fail it
    when the lane is required (HOSTAGENT_REQUIRE_REALKERNEL=1)."""
    message = f"the kernel lacks {what}: {why}"
    if os.environ.get("HOSTAGENT_REQUIRE_REALKERNEL", "") not in ("", "0"):
        pytest.fail(f"{message} (HOSTAGENT_REQUIRE_REALKERNEL is set)")
    pytest.skip(message)
