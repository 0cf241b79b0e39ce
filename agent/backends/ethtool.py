"""``ETHTOOL_GDRVINFO`` (what ``ethtool -i`` prints) through one ioctl, no fork.

The ioctl names the interface in the network namespace of the calling
thread (its socket's namespace); run it through
:func:`agent.backends.links.call_in_netns` for another namespace.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from dataclasses import dataclass

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003
IFNAMSIZ = 16
# struct ethtool_drvinfo: cmd; driver[32], version[32], fw_version[32],
# bus_info[32], erom_version[32]; reserved2[12]; n_priv_flags, n_stats,
# testinfo_len, eedump_len, regdump_len.
DRVINFO = struct.Struct("I32s32s32s32s32s12s5I")  # 196 bytes
IFREQ = struct.Struct("16sP16x")  # ifr_name, ifr_data (a 24-byte union): 40 bytes


@dataclass(frozen=True)
class DrvInfo:
    driver: str = ""
    version: str = ""
    fw_version: str = ""
    bus_info: str = ""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_drvinfo(raw: bytes) -> DrvInfo:
    """A ``struct ethtool_drvinfo`` as the kernel filled it."""
    _, driver, version, fw_version, bus_info, *_ = DRVINFO.unpack_from(raw)
    return DrvInfo(_text(driver), _text(version), _text(fw_version), _text(bus_info))


def drvinfo(ifname: str) -> DrvInfo:
    """Driver, version, firmware version and bus address of ``ifname``.

    Raises ``OSError`` (``ENODEV`` when there is no such interface,
    ``EOPNOTSUPP`` when its driver does not answer, ``EINVAL`` for a bad name).
    """
    name = ifname.encode()
    if not name or len(name) >= IFNAMSIZ or b"\0" in name or b"/" in name:
        raise OSError(errno.EINVAL, f"invalid interface name {ifname!r}")
    buf = ctypes.create_string_buffer(DRVINFO.pack(ETHTOOL_GDRVINFO, *[b""] * 6, *[0] * 5),
                                      DRVINFO.size)
    ifreq = IFREQ.pack(name, ctypes.addressof(buf))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)  # the kernel writes into buf
    return parse_drvinfo(buf.raw)
