"""What the config schema is built from: value checkers (durations, addresses,
paths, roles), the TOML renderer of values, and :class:`ConfigSection`, the
declaration of a feature's own table.

Each checker takes a raw TOML value and returns the typed value or raises
:class:`Invalid` with a message; ``agent.config`` adds the key and the file.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Generic, Mapping, TypeVar

from agent.errors import quote

SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes, NUL included
ROLES = ("none", "viewer", "operator", "admin")
T = TypeVar("T")

# --------------------------------------------------------------- durations --

_UNITS = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600),
          "d": Fraction(86400)}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:ms|h|m|s|d))+")
_PART_RE = re.compile(rf"({_NUMBER})(ms|h|m|s|d)")
_DURATION_HINT = 'use e.g. "500ms", "5s", "1m30s", "2h", "7d" or a number of seconds'


def parse_duration(text: str | int | float) -> float:
    """``"1m30s"`` -> 90.0; units ms, s, m, h; a bare number is seconds.
    Raises ValueError unless the result is finite and > 0."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a duration, got {type_name(text)}")
    if isinstance(text, str):
        s = text.strip()
        if re.fullmatch(_NUMBER, s):
            seconds = float(s)
        elif _DURATION_RE.fullmatch(s):
            seconds = float(sum(Fraction(n) * _UNITS[u] for n, u in _PART_RE.findall(s)))
        elif s.startswith("-"):
            raise ValueError(f"{text!r} is negative; a duration must be > 0")
        else:
            raise ValueError(f"invalid duration {text!r} ({_DURATION_HINT})")
    else:
        seconds = float(text)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be finite and > 0")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form: 900 -> "15m", 1.5 -> "1.5s", 0.5 -> "500ms"."""
    ns = round(seconds * 1e9)
    if ns < 0:
        return "-" + format_duration(-seconds)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        return _trim(ns / 1e6) + "ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return out + (_trim(rest / 1e9) + "s" if rest else "")


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")


# -------------------------------------------------------------- validators --

class Invalid(Exception):
    """A value is wrong; the caller adds the key and the file."""


TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string",
               dict: "table", list: "array"}


def type_name(v: Any) -> str:
    return TYPE_NAMES.get(type(v), type(v).__name__)


def str_(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid(f"expected a string, got {type_name(v)}")
    if "\0" in v:
        raise Invalid("contains a NUL character")
    return v


def bool_(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid(f"expected true or false, got {type_name(v)}")
    return v


def duration(v: Any, maximum: float = math.inf) -> float:
    try:
        seconds = parse_duration(v)
    except ValueError as e:
        raise Invalid(str(e)) from None
    if seconds > maximum:
        raise Invalid(f"{format_duration(seconds)} is longer than the maximum "
                       f"{format_duration(maximum)}")
    return seconds


def choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        s = str_(v).lower()
        if s not in options:
            raise Invalid(f"{v!r} is not one of {', '.join(options)}")
        return s
    return check


def abs_path(v: Any) -> str:
    s = str_(v)
    if not os.path.isabs(s):
        raise Invalid(f"{s!r} is not an absolute path")
    return s


def socket_path(v: Any) -> str:  # "" disables the socket
    if v != "" and len(os.fsencode(abs_path(v))) > SUN_PATH_MAX:
        raise Invalid(f"unix socket path is longer than {SUN_PATH_MAX} bytes")
    return v


_HOST_RE = re.compile(r"[A-Za-z0-9._-]+")


def split_hostport(addr: str) -> tuple[str, int]:
    """``"127.0.0.1:9447"`` -> ("127.0.0.1", 9447); ``"[::1]:0"`` -> ("::1", 0).
    Raises ValueError for anything else."""
    if addr.startswith("["):
        host, sep, port = addr[1:].partition("]:")
        if not sep or not re.fullmatch(r"[0-9A-Fa-f:.]+(%[\w.-]+)?", host) or ":" not in host:
            raise ValueError(f"{addr!r}: expected [IPV6]:PORT, e.g. [::1]:9447")
    else:
        host, sep, port = addr.rpartition(":")
        if not sep:
            raise ValueError(f"{addr!r}: expected HOST:PORT, e.g. 127.0.0.1:9447")
        if ":" in host:
            raise ValueError(f"{addr!r}: an IPv6 host needs brackets, e.g. [::1]:9447")
        if not _HOST_RE.fullmatch(host):
            raise ValueError(f"{addr!r}: host is empty or invalid")
    if not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        raise ValueError(f"{addr!r}: port must be a number in 0..65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for a name or address that never leaves this machine:
    ``localhost``, ``127.0.0.0/8``, ``::1`` (bracketed or not)."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def listen(v: Any) -> str:
    s = str_(v)
    if s:
        try:
            split_hostport(s)
        except ValueError as e:
            raise Invalid(str(e)) from None
    return s




def optional_path(v: Any) -> str:
    """An absolute path, or "" for "not set"."""
    return "" if str_(v) == "" else abs_path(v)


def count(low: int, high: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid(f"expected an integer, got {type_name(v)}")
        if not low <= v <= high:
            raise Invalid(f"{v} is out of range {low}..{high}")
        return v
    return check


def regex(v: Any) -> str:
    """A regular expression (Python ``re`` syntax), returned as written;
    matched with ``re.search`` like node_exporter's unanchored Go patterns."""
    s = str_(v)
    try:
        re.compile(s)
    except re.error as e:
        raise Invalid(f"invalid regular expression {quote(s)}: {e}") from None
    return s


_IDENTITY_RE = re.compile(r"[^\s\x00-\x1f]{1,512}")
_UNIX_RE = re.compile(r"unix:uid:[0-9]{1,10}")

# Identities are qualified by where they come from, so that no caller can name
# itself into another source's namespace: a certificate whose CN is "uid:0" is
# "cert:uid:0", never root on the unix socket ("unix:uid:0").
CERT_PREFIX = "cert:"
UNIX_PREFIX = "unix:"
INSECURE = "insecure"  # every plaintext TCP caller


def qualify_identity(key: str) -> str:
    """The qualified form of a roles-table key.  Keys written before
    identities were qualified are read as they were meant: ``uid:N`` was a
    unix peer, ``insecure`` the plaintext caller, anything else a
    certificate name."""
    if key == INSECURE or key.startswith((CERT_PREFIX, UNIX_PREFIX)):
        return key
    if re.fullmatch(r"uid:[0-9]{1,10}", key):
        return UNIX_PREFIX + key
    return CERT_PREFIX + key


def unqualified_identities(v: Any) -> dict[str, str]:
    """The keys of a roles table that are not qualified -> how they are read."""
    if not isinstance(v, dict):
        return {}
    return {k: qualify_identity(k) for k in v if isinstance(k, str) and qualify_identity(k) != k}


def identities(v: Any) -> dict[str, str]:
    """``{"unix:uid:0": "admin", "cert:spiffe://region/cp": "operator"}``;
    returned with every key qualified (``qualify_identity``)."""
    if not isinstance(v, dict):
        raise Invalid(f"expected a table of identity = role, got {type_name(v)}")
    out: dict[str, str] = {}
    written: dict[str, str] = {}
    for ident, role in v.items():
        if not _IDENTITY_RE.fullmatch(ident):
            raise Invalid(f"identity {quote(ident)} is empty, too long or has spaces")
        if role not in ROLES:
            raise Invalid(f"{quote(ident)}: role {quote(str(role))} is not one of {', '.join(ROLES)}")
        key = qualify_identity(ident)
        if key.startswith(UNIX_PREFIX) and not _UNIX_RE.fullmatch(key):
            raise Invalid(f"identity {quote(ident)}: a unix peer is written unix:uid:<number>")
        if key == CERT_PREFIX:
            raise Invalid(f"identity {quote(ident)}: a certificate identity is written cert:<name>")
        if key in out:
            raise Invalid(f"identity {quote(ident)} is given twice (also as {quote(written[key])})")
        out[key], written[key] = role, ident
    return out


_NETNS_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")


def netns_list(v: Any) -> tuple[str, ...]:
    """Network namespace names (as in /run/netns); "" is the agent's own."""
    if not isinstance(v, list):
        raise Invalid(f"expected an array of namespace names, got {type_name(v)}")
    out = []
    for name in v:
        if not isinstance(name, str) or (name and not _NETNS_RE.fullmatch(name)) or name in (".", ".."):
            raise Invalid(f"{name!r} is not a network namespace name")
        if name in out:
            raise Invalid(f"{name!r} is listed twice")
        out.append(name)
    return tuple(out)


# ---------------------------------------------------------------- rendering --

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_value(v: Any) -> str:
    """One value as TOML that its checker reads back (floats are durations)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):  # every float in Config is a duration
        v = format_duration(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{toml_value(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20
                         or ord(c) == 0x7F else c) for c in str(v)) + '"'


# ---------------------------------------------------------- feature tables --

@dataclass(frozen=True, eq=False)
class ConfigSection(Generic[T]):
    """A feature's top-level table, declared beside the feature (``[bmc]``:
    ``agent.bmc.config.SECTION``) and registered with it.  ``parse(table,
    fail)`` gets the raw table, or None when absent (then it returns the
    defaults), and raises ``fail(dotted_key, message)``; ``to_toml(value)``
    gives the lines ``check-config --print`` shows, read back by ``parse``."""

    name: str
    parse: Callable[[Any, Callable[[str, str], Exception]], T]
    to_toml: Callable[[T], list[str]]
