"""Support for the network-domain tests (no tests here): an engine on a test namespace,
normalised `ip -j` dumps to compare a namespace with its snapshot, ICMP echo
from inside a namespace, and a netlink event recorder (`ip monitor`)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from agent.backends.netconf import NetconfBackend
from agent.network.engine import NetworkEngine
from tests.netns import ip


def make_engine(ns: str, state_dir, **kw) -> NetworkEngine:
    return NetworkEngine(NetconfBackend(ns), str(state_dir), **kw)


def dumps(ns: str) -> dict:
    """:func:`dump_once` after the kernel's own follow-ups are done: a link's
    operstate turns UP a moment after it is set up (linkwatch runs later),
    and an apply can now finish inside that moment."""
    last = dump_once(ns)
    for _ in range(40):
        time.sleep(0.05)
        now = dump_once(ns)
        if now == last:
            return now
        last = now
    return last


def dump_once(ns: str) -> dict:
    """`ip -j -d link`, `ip -j addr`, `ip -j route show table all` of ``ns``.
    Dropped: ``qdisc`` (the kernel attaches a default qdisc the first time a
    device goes up and never removes it; no link change can undo that) and
    per-device statistics and timers that tick by themselves."""
    links = json.loads(ip("-j", "-d", "link", "show", ns=ns))
    for link in links:
        link.pop("qdisc", None)
        info = link.get("linkinfo", {})
        for key in ("info_data", "info_slave_data"):
            for timer in ("hello_timer", "tcn_timer", "topology_change_timer", "gc_timer",
                          "forward_delay_timer", "hold_timer", "message_age_timer"):
                info.get(key, {}).pop(timer, None)
    addrs = json.loads(ip("-j", "addr", "show", ns=ns))
    for a in addrs:
        a.pop("qdisc", None)
        a["addr_info"] = sorted(a.get("addr_info", []), key=lambda x: (x["family"], x["local"]))
    routes = sorted(json.loads(ip("-j", "route", "show", "table", "all", ns=ns)), key=json.dumps)
    return {"link": sorted(links, key=lambda l: l["ifindex"]), "addr": sorted(addrs, key=lambda a: a["ifindex"]),
            "route": routes}


def brief(ns: str) -> dict:
    """The parts of the kernel state a config decides, with nothing random
    (ifindex, MAC): {name: (kind, master, mtu, up, addresses)} and the routes."""
    links = json.loads(ip("-j", "-d", "addr", "show", ns=ns))
    out = {}
    for l in links:
        info = l.get("linkinfo", {})
        data = {k: v for k, v in info.get("info_data", {}).items()
                if k in ("id", "remote", "local", "port", "learning", "stp_state", "vlan_filtering", "mode",
                         "protocol")}
        out[l["ifname"]] = (info.get("info_kind"), l.get("master"), l["mtu"], "UP" in l["flags"], data,
                            sorted(f"{a['local']}/{a['prefixlen']}" for a in l.get("addr_info", [])))
    routes = sorted((r.get("dst"), r.get("gateway"), r.get("dev"), r.get("metric", 0), r.get("table", "main"),
                     r.get("protocol")) for r in json.loads(ip("-j", "route", "show", "table", "all", ns=ns))
                    if r.get("table") != "local")
    return {"links": out, "routes": routes}


PING = r"""
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(0.5)
ident = os.getpid() & 0xffff
for seq in range(8):
    body = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + b'hostagnt'
    s.sendto(struct.pack('!BBHHH', 8, 0, csum(body), ident, seq) + b'hostagnt', (sys.argv[1], 0))
    end = time.time() + 0.5
    while time.time() < end:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = data[(data[0] & 15) * 4:]
        if peer[0] == sys.argv[1] and icmp[0] == 0 and struct.unpack('!H', icmp[4:6])[0] == ident:
            sys.exit(0)
sys.exit(1)
"""


def ping(ns: str, address: str) -> bool:
    """ICMP echo from inside ``ns`` (no ping binary needed): True on a reply."""
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PING, address],
                          capture_output=True, timeout=30).returncode == 0


class Monitor:
    """Records the namespace's link/address/route netlink events (`ip monitor`)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.proc = subprocess.Popen(["ip", "-n", ns, "monitor", "link", "address", "route"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)  # subscribed before anything happens

    def stop_after_marker(self) -> list[str]:
        """Makes one change of its own and returns the events before it: proof
        the monitor was listening, and what else happened."""
        ip("addr", "add", "127.0.0.99/8", "dev", "lo", ns=self.ns)
        lines: list[str] = []
        deadline = time.time() + 10
        assert self.proc.stdout is not None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if "127.0.0.99" in line:
                break
            lines.append(line.rstrip())
        self.proc.kill()
        self.proc.wait()
        ip("addr", "del", "127.0.0.99/8", "dev", "lo", ns=self.ns)
        return lines
