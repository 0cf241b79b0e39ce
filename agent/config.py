"""Agent configuration: embedded defaults < TOML file < command-line overrides.

Validated once, at start and on reload.  Every problem is a
:class:`ConfigError` naming the dotted key, e.g.
``/etc/hostagent/config.toml: telemetry.retention: 10s is shorter than ...``,
and nothing starts.  The schema is declared as data (``_TOP``, ``_SECTIONS``,
``_COLLECTOR``); the result is a tree of frozen dataclasses, never loose dicts.
A feature's own table (``[bmc]``) is a ``ConfigSection`` the feature declares
and the caller passes in: this module knows no feature.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NamedTuple, TypeVar

from agent.config_values import (INSECURE, SUN_PATH_MAX, ConfigSection, Invalid,  # noqa: F401
                                 abs_path, bool_, choice, count, duration, format_duration,
                                 identities, is_loopback, listen, optional_path, parse_duration,
                                 socket_path, split_hostport, toml_value, type_name,
                                 unqualified_identities)

DEFAULT_GRPC_LISTEN = "127.0.0.1:9447"  # also where the CLI looks when no socket is there
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")
MAX_RETENTION = 24 * 3600.0
MAX_OPERATION_RETENTION = 90 * 86400.0
T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem.  ``key`` is dotted (``server.grpc_listen``);
    ``""`` for problems with the file as a whole (missing, bad TOML)."""

    def __init__(self, key: str, message: str, path: str | None = None) -> None:
        super().__init__(key, message, path)
        self.key = key
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return ": ".join(p for p in (self.path, self.key, self.message) if p)


@dataclass(frozen=True)
class ServerConfig:
    grpc_listen: str      # HOST:PORT, "" disables TCP
    grpc_socket: str      # absolute unix socket path, "" disables
    metrics_listen: str   # HOST:PORT, "" disables
    max_workers: int
    insecure: bool = False            # allow plaintext gRPC on a non-loopback address
    max_concurrent_rpcs: int = 32     # beyond: RESOURCE_EXHAUSTED at once; <= max_workers
    max_streams_per_identity: int = 8


@dataclass(frozen=True)
class TlsConfig:
    """mTLS for the TCP listener: all three files, or none."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


@dataclass(frozen=True)
class AuthConfig:
    """Identity -> role.  ``identities`` is the defaults merged with the file's
    table, every key qualified (``cert:``, ``unix:uid:N``, ``insecure``);
    ``roles_file`` (TOML, ``[identities]``) is read at start and reload.
    ``unqualified`` is derived, not a key: the file's keys written before
    identities were qualified, and how each is read (the daemon warns)."""

    roles_file: str = ""
    identities: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    unqualified: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}),
                                           metadata={"derived": True})


@dataclass(frozen=True)
class OperationsConfig:
    retention: float = 7 * 86400.0  # finished operations kept this long
    workers: int = 4


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "logfmt"


@dataclass(frozen=True)
class TelemetryConfig:
    """All durations in seconds."""

    interval: float = 5.0
    timeout: float = 4.0
    retention: float = 900.0
    max_backoff: float = 300.0


class CollectorTiming(NamedTuple):
    interval: float
    timeout: float


@dataclass(frozen=True)
class CollectorConfig:
    enabled: bool = True
    interval: float | None = None
    timeout: float | None = None
    retention: float | None = None  # history kept for this collector's series
    # Collector-specific keys (declared by the collector: CollectorInfo.options), validated.
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def resolve(self, telemetry: TelemetryConfig) -> CollectorTiming:
        """Effective interval and timeout.  An inherited timeout is clamped to
        the interval (a 1s collector does not inherit a 4s timeout); an
        explicit one is used as written."""
        interval = self.interval if self.interval is not None else telemetry.interval
        if self.timeout is not None:
            return CollectorTiming(interval, self.timeout)
        return CollectorTiming(interval, min(telemetry.timeout, interval))


@dataclass(frozen=True)
class Config:
    state_dir: str
    server: ServerConfig
    log: LogConfig = field(default_factory=LogConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    operations: OperationsConfig = field(default_factory=OperationsConfig)
    collectors: Mapping[str, CollectorConfig] = field(
        default_factory=lambda: MappingProxyType({}))
    # The features' tables, by their declaration, in the order given: read with section().
    sections: Mapping[ConfigSection, Any] = field(default_factory=lambda: MappingProxyType({}))

    def section(self, decl: ConfigSection[T]) -> T:
        """The feature table ``decl`` as loaded; its defaults if it was not loaded."""
        if decl in self.sections:
            return self.sections[decl]
        return decl.parse(None, ConfigError)

    @property
    def enabled_collectors(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, c in self.collectors.items() if c.enabled))


_TOP: Mapping[str, Callable[[Any], Any]] = {"state_dir": abs_path}
_SECTIONS: Mapping[str, Mapping[str, Callable[[Any], Any]]] = {
    "server": {"grpc_listen": listen, "grpc_socket": socket_path,
               "metrics_listen": listen, "max_workers": count(1, 1024), "insecure": bool_,
               "max_concurrent_rpcs": count(1, 100_000),
               "max_streams_per_identity": count(1, 10_000)},
    "log": {"level": choice(LOG_LEVELS), "format": choice(LOG_FORMATS)},
    "telemetry": {"interval": duration, "timeout": duration,
                  "retention": lambda v: duration(v, MAX_RETENTION), "max_backoff": duration},
    "tls": {"cert_file": optional_path, "key_file": optional_path, "client_ca_file": optional_path},
    "auth": {"roles_file": optional_path, "identities": identities},
    "operations": {"retention": lambda v: duration(v, MAX_OPERATION_RETENTION),
                   "workers": count(1, 64)},
}
_COLLECTOR: Mapping[str, Callable[[Any], Any]] = {
    "enabled": bool_, "interval": duration, "timeout": duration,
    "retention": lambda v: duration(v, MAX_RETENTION)}
_SECTION_TYPES = {"server": ServerConfig, "log": LogConfig, "telemetry": TelemetryConfig,
                  "tls": TlsConfig, "auth": AuthConfig, "operations": OperationsConfig}
_TOP_KEYS = (*_TOP, *_SECTIONS, "collectors")


# ---------------------------------------------------------------- defaults --

def default_state_dir(env: Mapping[str, str], uid: int) -> str:
    if uid == 0:
        return "/var/lib/hostagent"
    base = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "hostagent")


def default_grpc_socket(env: Mapping[str, str], uid: int) -> str:
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]  # systemd RuntimeDirectory=
    if os.path.isabs(runtime):
        return os.path.join(runtime, "grpc.sock")
    if uid == 0:
        return "/run/hostagent/grpc.sock"
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "hostagent", "grpc.sock")
    return f"/tmp/hostagent-{uid}/grpc.sock"


def _defaults(env: Mapping[str, str], uid: int) -> dict[str, Any]:
    return {
        "state_dir": default_state_dir(env, uid),
        "server": {"grpc_listen": DEFAULT_GRPC_LISTEN,
                   "grpc_socket": default_grpc_socket(env, uid),
                   "metrics_listen": "127.0.0.1:9446", "max_workers": 32, "insecure": False,
                   "max_concurrent_rpcs": 32, "max_streams_per_identity": 8},
        "log": asdict(LogConfig()),
        "telemetry": asdict(TelemetryConfig()),
        "tls": asdict(TlsConfig()),
        # Local root and the agent's own user administer it over the unix
        # socket; plaintext loopback TCP (no TLS configured) may only read.
        "auth": {"roles_file": "", "identities": {"unix:uid:0": "admin", f"unix:uid:{uid}": "admin",
                                                  INSECURE: "viewer"}},
        "operations": asdict(OperationsConfig()),
    }


# ------------------------------------------------------------------ loading --

_NO_OVERRIDES: Mapping[str, object] = MappingProxyType({})


class _Checker:
    """Turns _Invalid into ConfigError, blaming the file or the command line."""

    def __init__(self, path: str | None, cli_keys: set[str]) -> None:
        self.path, self.cli_keys = path, cli_keys

    def fail(self, key: str, message: str) -> ConfigError:
        if any(k == key or k.startswith(key + ".") for k in self.cli_keys):
            return ConfigError(key, message + " (from command line)")
        return ConfigError(key, message, self.path)

    def value(self, key: str, check: Callable[[Any], Any], raw: Any) -> Any:
        try:
            return check(raw)
        except Invalid as e:
            raise self.fail(key, str(e)) from None

    def table(self, doc: Mapping[str, Any], name: str, key: str,
              valid: Iterable[str], what: str = "key") -> dict[str, Any]:
        t = doc.get(name, {})
        if not isinstance(t, dict):
            raise self.fail(key, f"expected a table, got {type_name(t)}")
        self.known_keys(t, key, valid, what)
        return t

    def known_keys(self, t: Mapping[str, Any], prefix: str, valid: Iterable[str],
                   what: str = "key") -> None:
        valid = tuple(valid)
        for k in t:
            if k not in valid:
                dotted = f"{prefix}.{k}" if prefix else k
                raise self.fail(dotted, f"unknown {what} (valid: {', '.join(valid)})")


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", "no such file", path) from None
    except OSError as e:
        raise ConfigError("", f"cannot read: {e.strerror or e}", path) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"invalid TOML: {e}", path) from None
    except UnicodeDecodeError as e:
        raise ConfigError("", f"not valid UTF-8: {e}", path) from None


def _apply(doc: dict[str, Any], overrides: Mapping[str, object]) -> set[str]:
    """Set dotted ``overrides`` into ``doc`` (None means "flag not given")."""
    keys = set()
    for dotted, value in overrides.items():
        if value is None:
            continue
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(dotted, "malformed override key")
        node = doc
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
        keys.add(dotted)
    return keys


def load_config(path: str | None, *, overrides: Mapping[str, object] = _NO_OVERRIDES,
                known_collectors: Iterable[str],
                default_enabled: Iterable[str] | None = None,
                env: Mapping[str, str] | None = None,
                collector_options: Mapping[str, Mapping[str, Callable[[Any], Any]]] | None = None,
                feature_sections: Iterable[ConfigSection] = (),
                ) -> Config:
    """Load and validate.  ``overrides`` are dotted keys from command-line
    flags, validated like file values; ``env`` defaults to ``os.environ``.
    ``feature_sections``: the features' tables, each read by its own parser."""
    env = os.environ if env is None else env
    known = frozenset(known_collectors)
    on_by_default = known if default_enabled is None else frozenset(default_enabled)
    doc = _read(path) if path is not None else {}
    chk = _Checker(path, _apply(doc, overrides))
    defaults = _defaults(env, os.geteuid())

    feature_sections = tuple(feature_sections)
    chk.known_keys(doc, "", (*_TOP_KEYS, *(s.name for s in feature_sections)))
    top = {k: chk.value(k, check, doc.get(k, defaults[k])) for k, check in _TOP.items()}
    sections: dict[str, dict[str, Any]] = {}
    for name, schema in _SECTIONS.items():
        t = chk.table(doc, name, name, schema)
        sections[name] = {k: chk.value(f"{name}.{k}", check, t.get(k, defaults[name][k]))
                          for k, check in schema.items()}
    merged = {**defaults["auth"]["identities"], **sections["auth"]["identities"]}
    sections["auth"]["identities"] = MappingProxyType(
        {k: v for k, v in merged.items() if v != "none"})
    sections["auth"]["unqualified"] = MappingProxyType(
        unqualified_identities(doc.get("auth", {}).get("identities")))
    _check_security(chk, sections)
    _check_server(chk, sections, "max_concurrent_rpcs" in doc.get("server", {}))
    telemetry = TelemetryConfig(**sections["telemetry"])

    tables = chk.table(doc, "collectors", "collectors", sorted(known), "collector")
    unknown = sorted(on_by_default - known)  # from the program or its flags, not the file
    if unknown:
        raise ConfigError(f"collectors.{unknown[0]}",
                          f"unknown collector (valid: {', '.join(sorted(known))})")
    collectors = {}
    for name in sorted(known):
        key = f"collectors.{name}"
        extra = (collector_options or {}).get(name, {})
        t = chk.table(tables, name, key, (*_COLLECTOR, *extra))
        values = {k: chk.value(f"{key}.{k}", check, t[k])
                  for k, check in _COLLECTOR.items() if k in t}
        values.setdefault("enabled", name in on_by_default)
        values["options"] = MappingProxyType({k: chk.value(f"{key}.{k}", check, t[k])
                                              for k, check in extra.items() if k in t})
        collectors[name] = CollectorConfig(**values)

    intervals = [("telemetry.interval", telemetry.interval)] + [
        (f"collectors.{n}.interval", c.resolve(telemetry).interval)
        for n, c in collectors.items() if c.enabled]
    for source, interval in intervals:
        if telemetry.retention < interval:
            raise chk.fail("telemetry.retention",
                           f"{format_duration(telemetry.retention)} is shorter than {source} "
                           f"{format_duration(interval)}; no sample would be kept")
    built = {name: _SECTION_TYPES[name](**values) for name, values in sections.items()}
    features = MappingProxyType({s: s.parse(doc.get(s.name), chk.fail) for s in feature_sections})
    return Config(state_dir=top["state_dir"], collectors=MappingProxyType(collectors),
                  sections=features, **built)


def _check_server(chk: _Checker, sections: dict[str, dict[str, Any]], concurrency_given: bool) -> None:
    """gRPC counts a call waiting for a worker as in flight: unset, the limit is max_workers."""
    server = sections["server"]
    if not concurrency_given:
        server["max_concurrent_rpcs"] = server["max_workers"]
    elif server["max_concurrent_rpcs"] > server["max_workers"]:
        raise chk.fail("server.max_concurrent_rpcs", f"{server['max_concurrent_rpcs']} is more than "
                       f"server.max_workers ({server['max_workers']}): calls beyond the workers "
                       "would queue instead of being refused at once")


def _check_security(chk: _Checker, sections: dict[str, dict[str, Any]]) -> None:
    """TLS files come together; plaintext gRPC stays on loopback unless the
    operator says ``insecure = true`` (then the daemon warns at every start)."""
    tls = sections["tls"]
    given = [k for k in ("cert_file", "key_file", "client_ca_file") if tls[k]]
    if given and len(given) < 3:
        missing = next(k for k in ("cert_file", "key_file", "client_ca_file") if not tls[k])
        raise chk.fail(f"tls.{missing}", "cert_file, key_file and client_ca_file go together "
                       "(mutual TLS needs the client CA)")
    server = sections["server"]
    if server["grpc_listen"] and not given and not server["insecure"]:
        host, _ = split_hostport(server["grpc_listen"])
        if not is_loopback(host):
            raise chk.fail("server.grpc_listen", f"{server['grpc_listen']} is not a loopback "
                           "address: configure [tls] (mutual TLS), or set server.insecure = true "
                           "to accept plaintext from the network")


# ---------------------------------------------------------------- rendering --

def config_to_toml(cfg: Config) -> str:
    """The effective configuration as TOML that :func:`load_config` reads back."""
    out = ["# Effective hostagent configuration: defaults, file and flags merged.",
           f"state_dir = {toml_value(cfg.state_dir)}"]
    for name in _SECTIONS:
        section = getattr(cfg, name)
        out += ["", f"[{name}]"]
        out += [f"{f.name} = {toml_value(getattr(section, f.name))}" for f in fields(section)
                if not f.metadata.get("derived")]
    for name, c in sorted(cfg.collectors.items()):
        key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_value(name)
        out += ["", f"[collectors.{key}]"]
        out += [f"{f.name} = {toml_value(getattr(c, f.name))}"
                for f in fields(c) if getattr(c, f.name) is not None and f.name != "options"]
        out += [f"{k} = {toml_value(v)}" for k, v in c.options.items()]
    for decl, value in cfg.sections.items():
        out += decl.to_toml(value)
    return "\n".join(out) + "\n"
