"""Network namespaces that a test creates and always removes, with helpers
to run `ip` inside them.  Nothing here touches the host's own interfaces."""
from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
from typing import Iterator

import pytest

needs_root_ip = pytest.mark.skipif(shutil.which("ip") is None or __import__("os").geteuid() != 0,
                                   reason="needs root and iproute2 to create network namespaces")


def ip(*args: str, ns: str | None = None, stdin: str | None = None) -> str:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin).stdout


def link_stats(ns: str) -> dict[str, dict]:
    """``ip -s -j link show`` of the namespace, by interface name."""
    return {l["ifname"]: l["stats64"] for l in json.loads(ip("-s", "-j", "link", "show", ns=ns))}


@contextlib.contextmanager
def netns(prefix: str = "hostagent-test") -> Iterator[str]:
    name = f"{prefix}-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip("link", "set", "lo", "up", ns=name)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


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
