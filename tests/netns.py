"""Network namespaces that a test creates and always removes, with helpers
to run `ip` inside them.  Nothing here touches the host's own interfaces.

Tests take a namespace from the ``netns`` / ``peer_netns`` fixtures, or mark
themselves ``@pytest.mark.netns`` (both in tests/conftest.py).  Where
namespaces cannot be made (not root, no iproute2, ``ip netns add`` refused)
those tests skip, or fail with HOSTAGENT_REQUIRE_NETNS=1 (CI insists).

No pytest import at module level: tests/fixtures/netlink/record.py uses
these helpers as a plain script.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
from typing import Iterator


def ip(*args: str, ns: str | None = None, stdin: str | None = None) -> str:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin).stdout


def link_stats(ns: str) -> dict[str, dict]:
    """``ip -s -j link show`` of the namespace, by interface name."""
    return {l["ifname"]: l["stats64"] for l in json.loads(ip("-s", "-j", "link", "show", ns=ns))}


@contextlib.contextmanager
def namespace(prefix: str = "hostagent-test") -> Iterator[str]:
    """A fresh namespace with ``lo`` up and IPv6 off (no ND/MLD noise in the
    counters); it is deleted on the way out, whatever happened."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    ip("netns", "add", name)
    try:
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
                       check=True, capture_output=True, text=True)
        ip("link", "set", "lo", "up", ns=name)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@functools.cache
def netns_unavailable() -> str:
    """Why this process cannot make test namespaces, or "" when it can.
    Tries once, for real: root with iproute2 may still be refused (a
    container without CAP_SYS_ADMIN, no /run/netns)."""
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`) to create network namespaces"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    try:
        with namespace("hostagent-probe"):
            pass
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        return f"cannot create a network namespace: {str(detail).strip()}"
    return ""


def require_netns() -> None:
    """Skip the calling test (or fail, with HOSTAGENT_REQUIRE_NETNS=1) when
    namespaces cannot be made."""
    import pytest

    why = netns_unavailable()
    if not why:
        return
    if os.environ.get("HOSTAGENT_REQUIRE_NETNS", "") not in ("", "0"):
        pytest.fail(f"{why} (HOSTAGENT_REQUIRE_NETNS is set)")
    pytest.skip(why)


def veth_pair(ns: str, peer_ns: str, a: str = "veth0", b: str = "veth1",
              addr_a: str = "10.200.0.1/30", addr_b: str = "10.200.0.2/30") -> None:
    """``a`` in ``ns`` wired to ``b`` in ``peer_ns`` (two namespaces, so
    traffic between the addresses really crosses the veth)."""
    ip("link", "add", a, "type", "veth", "peer", "name", b, "netns", peer_ns, ns=ns)
    ip("addr", "add", addr_a, "dev", a, ns=ns)
    ip("addr", "add", addr_b, "dev", b, ns=peer_ns)
    ip("link", "set", a, "up", ns=ns)
    ip("link", "set", b, "up", ns=peer_ns)


def udp_burst(ns: str, target: str, count: int, size: int, port: int = 9999) -> None:
    """Send ``count`` UDP datagrams of ``size`` payload bytes from inside ``ns``."""
    code = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"[s.sendto(b'x' * {size}, ({target!r}, {port})) for _ in range({count})]")
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], check=True)
