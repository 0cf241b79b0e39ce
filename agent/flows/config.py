"""The ``[sampling]`` section: which interfaces to sample, how often, and
where the sFlow datagrams go.

    [sampling]
    interfaces = ["eth*", "tap*", "br-ex"]   # names or globs; [] (the default) = off
    namespace = ""             # the network namespace they are in ("" = the agent's)
    rate = 0                   # 1 in N packets; 0 = from link speed (see rate_for)
    header_bytes = 128         # bytes of each sampled packet kept (snap length)
    max_flows = 8192           # flow table entries; the smallest flow is evicted
    polling_interval = "20s"   # sFlow counter samples; "0s" = none
    retention = "1m"           # how far back ListFlows/WatchFlows can look
    libvirt_dir = "/run/libvirt/qemu"   # live domain XML, for per-VM labels
    agent_address = ""         # sFlow agent address; "" = the source address towards the first collector
    sub_agent_id = 0

    [[sampling.collectors]]
    address = "192.0.2.10"
    port = 6343

No interfaces (the default) means no sampling: no socket is opened and the
Flows service answers FAILED_PRECONDITION.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any, Callable

from agent.config_values import (ConfigSection, Invalid, count, duration, optional_path, str_,
                                 toml_value, type_name)

UNKNOWN_SPEED_RATE = 400  # hsflowd's default "sampling" for a link without a speed


def rate_for(speed_mbps: int | None) -> int:
    """The default 1-in-N for a link speed: 1 in 100 up to 1 Gb/s, then one
    in (Mb/s / 10): 1000 at 10G, 2500 at 25G, 10000 at 100G, as hsflowd's
    per-speed table; a link without a speed (tap, veth) gets 400."""
    if not speed_mbps or speed_mbps <= 0:
        return UNKNOWN_SPEED_RATE
    return max(100, speed_mbps // 10)


@dataclass(frozen=True)
class CollectorAddress:
    address: str
    port: int = 6343


@dataclass(frozen=True)
class SamplingConfig:
    interfaces: tuple[str, ...] = ()
    namespace: str = ""
    rate: int = 0
    header_bytes: int = 128
    max_flows: int = 8192
    polling_interval: float = 20.0
    retention: float = 60.0
    libvirt_dir: str = "/run/libvirt/qemu"
    agent_address: str = ""
    sub_agent_id: int = 0
    collectors: tuple[CollectorAddress, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.interfaces)


def _patterns(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise Invalid(f"expected an array of interface names or globs, got {type_name(v)}")
    out = []
    for i, p in enumerate(v):
        if not isinstance(p, str) or not 1 <= len(p) <= 64 or any(c.isspace() or c == "/" for c in p):
            raise Invalid(f"[{i}] {p!r} is not an interface name or glob")
        out.append(p)
    return tuple(out)


def _namespace(v: Any) -> str:
    s = str_(v)
    if s and (s in (".", "..") or not all(c.isalnum() or c in "_.-" for c in s) or len(s) > 255):
        raise Invalid(f"{s!r} is not a network namespace name")
    return s


def _ip(v: Any) -> str:
    s = str_(v)
    if s:
        try:
            ipaddress.ip_address(s)
        except ValueError:
            raise Invalid(f"{s!r} is not an IP address") from None
    return s


_KEYS: dict[str, Callable[[Any], Any]] = {
    "interfaces": _patterns, "namespace": _namespace, "rate": count(0, 1 << 24),
    "header_bytes": count(64, 1024), "max_flows": count(16, 1_000_000),
    "polling_interval": lambda v: duration(v, 3600.0), "retention": lambda v: duration(v, 900.0),
    "libvirt_dir": optional_path, "agent_address": _ip, "sub_agent_id": count(0, (1 << 32) - 1),
    "collectors": None}
_COLLECTOR: dict[str, Callable[[Any], Any]] = {"address": _ip, "port": count(1, 65535)}


def parse_sampling(section: Any, fail: Callable[[str, str], Exception]) -> SamplingConfig:
    """The ``[sampling]`` table; ``fail(key, message)`` builds the error."""
    if section is None:
        return SamplingConfig()
    if not isinstance(section, dict):
        raise fail("sampling", f"expected a table, got {type_name(section)}")
    values: dict[str, Any] = {}
    for k, raw in section.items():
        if k not in _KEYS:
            raise fail(f"sampling.{k}", f"unknown key (valid: {', '.join(_KEYS)})")
        if k == "collectors":
            values[k] = _collectors(raw, fail)
            continue
        try:
            values[k] = _KEYS[k](raw)
        except Invalid as exc:
            raise fail(f"sampling.{k}", str(exc)) from None
    cfg = SamplingConfig(**values)
    if cfg.retention < 1.0:
        raise fail("sampling.retention", "must be at least 1s")
    if 0 < cfg.polling_interval < 1.0:
        raise fail("sampling.polling_interval", "must be 0s (off) or at least 1s")
    return cfg


def _collectors(raw: Any, fail: Callable[[str, str], Exception]) -> tuple[CollectorAddress, ...]:
    if not isinstance(raw, list):
        raise fail("sampling.collectors", "expected an array of tables ([[sampling.collectors]])")
    out = []
    for i, t in enumerate(raw):
        key = f"sampling.collectors[{i}]"
        if not isinstance(t, dict):
            raise fail(key, f"expected a table, got {type_name(t)}")
        values = {}
        for k, v in t.items():
            if k not in _COLLECTOR:
                raise fail(f"{key}.{k}", f"unknown key (valid: {', '.join(_COLLECTOR)})")
            try:
                values[k] = _COLLECTOR[k](v)
            except Invalid as exc:
                raise fail(f"{key}.{k}", str(exc)) from None
        if not values.get("address"):
            raise fail(f"{key}.address", "required: the collector's IP address")
        out.append(CollectorAddress(**values))
    return tuple(out)


def sampling_to_toml(cfg: SamplingConfig) -> list[str]:
    lines = ["", "[sampling]"]
    lines += [f"{f.name} = {toml_value(getattr(cfg, f.name))}" for f in fields(cfg) if f.name != "collectors"]
    for c in cfg.collectors:
        lines += ["", "[[sampling.collectors]]", f"address = {toml_value(c.address)}", f"port = {c.port}"]
    return lines


SECTION: ConfigSection[SamplingConfig] = ConfigSection("sampling", parse_sampling, sampling_to_toml)
