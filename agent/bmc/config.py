"""The ``[bmc]`` config section: which BMCs to watch and how to talk to them.

    [bmc]
    initial_backoff = "2s"     # first wait after a failure (doubles each time)
    max_backoff = "5m"

    [[bmc.targets]]
    name = "local"             # the `target` label and the API's target name
    local = true               # this host's own BMC: no `target` label, power-off guard
    host = "10.0.0.10"
    port = 623
    username = "hostagent"
    password = "credential:bmc-password"   # or "file:/etc/hostagent/bmc.pass"
    cipher_suites = [17]       # in order of preference; 3 only if listed
    allow_ipmi15 = false
    privilege = "administrator"  # or "operator", "user" (read-only watching)
    timeout = "5s"             # per request to this BMC

No targets (the default) means no BMC: the ipmi collector reports itself
absent once and the Bmc service answers NOT_FOUND.  Passwords are named, never
written here (see ``agent.secrets``); the reference is checked at load, so a
missing or world-readable password file stops the start with its key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Callable

from agent.config_values import (ConfigSection, Invalid, bool_, choice, count, duration, str_,
                                 toml_value, type_name)
from agent.secrets import SecretError, load_secret

SUITES = (17, 3)
PRIVILEGES = ("administrator", "operator", "user")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class BmcTargetConfig:
    name: str
    host: str
    username: str
    password: str  # a secret reference, never the value
    port: int = 623
    local: bool = False
    cipher_suites: tuple[int, ...] = (17,)
    allow_ipmi15: bool = False
    privilege: str = "administrator"
    timeout: float = 5.0

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BmcConfig:
    targets: tuple[BmcTargetConfig, ...] = ()
    initial_backoff: float = 2.0
    max_backoff: float = 300.0


def cipher_suites(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise Invalid(f"expected a non-empty list of cipher suites, got {type_name(v)}")
    out = []
    for s in v:
        if isinstance(s, bool) or not isinstance(s, int):
            raise Invalid(f"expected integers, got {type_name(s)}")
        if s == 0:
            raise Invalid("cipher suite 0 sends commands without authentication; refused")
        if s not in SUITES:
            raise Invalid(f"cipher suite {s} is not supported (supported: 17, 3)")
        if s in out:
            raise Invalid(f"cipher suite {s} listed twice")
        out.append(s)
    return tuple(out)


def _name(v: Any) -> str:
    v = str_(v)
    if not _NAME_RE.fullmatch(v):
        raise Invalid("must be 1 to 63 characters of [A-Za-z0-9._-], starting with a letter or digit")
    return v


def _host(v: Any) -> str:
    v = str_(v).strip()
    if not v or any(c.isspace() for c in v):
        raise Invalid("must be a host name or IP address")
    return v


def _secret_ref(v: Any) -> str:
    v = str_(v)
    try:
        load_secret(v)  # readable, private, not empty: checked now, not at 3 a.m.
    except SecretError as exc:
        raise Invalid(str(exc)) from None
    return v


_TARGET: dict[str, Callable[[Any], Any]] = {
    "name": _name, "host": _host, "port": count(1, 65535), "username": str_,
    "password": _secret_ref, "local": bool_, "cipher_suites": cipher_suites,
    "allow_ipmi15": bool_, "privilege": choice(PRIVILEGES), "timeout": duration}
_SECTION = ("targets", "initial_backoff", "max_backoff")
_REQUIRED = ("host", "username", "password")


def parse_bmc(section: Any, fail: Callable[[str, str], Exception]) -> BmcConfig:
    """The ``[bmc]`` table as a :class:`BmcConfig`; ``fail(key, message)``
    builds the error (the config loader's, which names the file)."""
    if section is None:
        return BmcConfig()
    if not isinstance(section, dict):
        raise fail("bmc", f"expected a table, got {type_name(section)}")
    for k in section:
        if k not in _SECTION:
            raise fail(f"bmc.{k}", f"unknown key (valid: {', '.join(_SECTION)})")

    def value(key: str, check, raw):
        try:
            return check(raw)
        except Invalid as e:
            raise fail(key, str(e)) from None

    initial = value("bmc.initial_backoff", duration, section.get("initial_backoff", 2.0))
    maximum = value("bmc.max_backoff", duration, section.get("max_backoff", 300.0))
    raw_targets = section.get("targets", [])
    if not isinstance(raw_targets, list):
        raise fail("bmc.targets", "expected an array of tables ([[bmc.targets]])")
    targets: list[BmcTargetConfig] = []
    for i, t in enumerate(raw_targets):
        key = f"bmc.targets[{i}]"
        if not isinstance(t, dict):
            raise fail(key, f"expected a table, got {type_name(t)}")
        for k in t:
            if k not in _TARGET:
                raise fail(f"{key}.{k}", f"unknown key (valid: {', '.join(_TARGET)})")
        for k in _REQUIRED:
            if k not in t:
                raise fail(f"{key}.{k}", "required")
        values = {k: value(f"{key}.{k}", check, t[k]) for k, check in _TARGET.items() if k in t}
        values.setdefault("name", "local" if values.get("local") else values["host"])
        if not _NAME_RE.fullmatch(values["name"]):
            raise fail(f"{key}.name", "the host is not a valid target name; set name")
        target = BmcTargetConfig(**values)
        if any(o.name == target.name for o in targets):
            raise fail(f"{key}.name", f"target name {target.name!r} is used twice")
        if any((o.host, o.port, o.username) == (target.host, target.port, target.username)
               for o in targets):
            # pyghmi shares one session per BMC and user: two targets would share
            # it, and the stricter one's cipher policy would not hold.
            raise fail(f"{key}.host", f"{target.address} with user {target.username!r} is "
                       "already a target")
        if target.local and any(o.local for o in targets):
            raise fail(f"{key}.local", "only one target can be the local BMC")
        targets.append(target)
    return BmcConfig(tuple(targets), initial, maximum)


def bmc_to_toml(cfg: BmcConfig) -> list[str]:
    out = ["", "[bmc]", f"initial_backoff = {toml_value(cfg.initial_backoff)}",
           f"max_backoff = {toml_value(cfg.max_backoff)}"]
    for t in cfg.targets:
        out += ["", "[[bmc.targets]]"]
        out += [f"{f.name} = {toml_value(getattr(t, f.name))}" for f in fields(t)]
    return out


SECTION: ConfigSection[BmcConfig] = ConfigSection("bmc", parse_bmc, bmc_to_toml)
