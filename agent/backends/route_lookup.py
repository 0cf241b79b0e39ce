"""Which interface and which local address carry a TCP connection from a
given peer: the network service protects both, so an apply cannot cut its
own caller off by mistake.

The interface is the kernel's route to the peer (``ip route get``, through
pyroute2's RTM_GETROUTE); the local address is the one the connection was
made to, read from ``/proc/net/tcp`` / ``tcp6`` (the socket whose remote end
is the peer), which a route lookup cannot tell when the host has several.
"""
from __future__ import annotations

import ipaddress
import struct

TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
ESTABLISHED = "01"


def _hex_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (the kernel's byte order, 32-bit words) -> ('127.0.0.1', 8080)."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    return str(ip), int(port, 16)


def local_address_of(tables: list[str], peer_ip: str, peer_port: int) -> str | None:
    """The local address of the established connection whose remote end is
    ``peer_ip:peer_port``, from the text of /proc/net/tcp and tcp6 (pure)."""
    want = (str(ipaddress.ip_address(peer_ip)), peer_port)
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != ESTABLISHED:
                continue
            try:
                if _hex_address(fields[2]) == want:
                    return _hex_address(fields[1])[0]
            except ValueError:
                continue
    return None


def _read_tables() -> list[str]:
    out = []
    for path in TCP_TABLES:
        try:
            with open(path, encoding="ascii") as f:
                out.append(f.read())
        except OSError:  # no IPv6 in this kernel
            continue
    return out


def interface_towards(address: str) -> str | None:
    """The output interface for ``address`` in the agent's namespace, or None
    (not an address, no route)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    from pyroute2 import IPRoute  # imported on first use: the agent starts without it
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            routes = ipr.route("get", dst=str(ip))
        except NetlinkError:  # unreachable, no route
            return None
        index = routes[0].get_attr("RTA_OIF") if routes else None
        if not index:
            return None
        links = ipr.get_links(index)
        return links[0].get_attr("IFLA_IFNAME") if links else None


def connection_path(peer_ip: str, peer_port: int) -> tuple[str | None, str | None]:
    """(interface, local address) carrying the TCP connection from
    ``peer_ip:peer_port`` to this process's namespace; either may be None."""
    return interface_towards(peer_ip), local_address_of(_read_tables(), peer_ip, peer_port)

