"""Agent configuration: embedded defaults < TOML file < command-line overrides.

Validated once, at start and on reload.  Every problem is a
:class:`ConfigError` naming the dotted key, e.g.
``/etc/hostagent/config.toml: telemetry.retention: 10s is shorter than ...``,
and nothing starts.  The schema is declared as data (``_TOP``, ``_SECTIONS``,
``_COLLECTOR``); the result is a tree of frozen dataclasses, never loose dicts.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NamedTuple

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")
MAX_RETENTION = 24 * 3600.0
SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes, NUL included


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
    collectors: Mapping[str, CollectorConfig] = field(
        default_factory=lambda: MappingProxyType({}))

    @property
    def enabled_collectors(self) -> tuple[str, ...]:
        return tuple(sorted(n for n, c in self.collectors.items() if c.enabled))


# --------------------------------------------------------------- durations --

_UNITS = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600)}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:ms|h|m|s))+")
_PART_RE = re.compile(rf"({_NUMBER})(ms|h|m|s)")
_DURATION_HINT = 'use e.g. "500ms", "5s", "1m30s", "2h" or a number of seconds'


def parse_duration(text: str | int | float) -> float:
    """``"1m30s"`` -> 90.0; units ms, s, m, h; a bare number is seconds.
    Raises ValueError unless the result is finite and > 0."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a duration, got {_type_name(text)}")
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

class _Invalid(Exception):
    """A value is wrong; the caller adds the key and the file."""


_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string",
               dict: "table", list: "array"}


def _type_name(v: Any) -> str:
    return _TYPE_NAMES.get(type(v), type(v).__name__)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Invalid(f"expected a string, got {_type_name(v)}")
    if "\0" in v:
        raise _Invalid("contains a NUL character")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Invalid(f"expected true or false, got {_type_name(v)}")
    return v


def _duration(v: Any, maximum: float = math.inf) -> float:
    try:
        seconds = parse_duration(v)
    except ValueError as e:
        raise _Invalid(str(e)) from None
    if seconds > maximum:
        raise _Invalid(f"{format_duration(seconds)} is longer than the maximum "
                       f"{format_duration(maximum)}")
    return seconds


def _workers(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Invalid(f"expected an integer, got {_type_name(v)}")
    if not 1 <= v <= 1024:
        raise _Invalid(f"{v} is out of range 1..1024")
    return v


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        s = _str(v).lower()
        if s not in options:
            raise _Invalid(f"{v!r} is not one of {', '.join(options)}")
        return s
    return check


def _abs_path(v: Any) -> str:
    s = _str(v)
    if not os.path.isabs(s):
        raise _Invalid(f"{s!r} is not an absolute path")
    return s


def _socket_path(v: Any) -> str:  # "" disables the socket
    if v != "" and len(os.fsencode(_abs_path(v))) > SUN_PATH_MAX:
        raise _Invalid(f"unix socket path is longer than {SUN_PATH_MAX} bytes")
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


def _listen(v: Any) -> str:
    s = _str(v)
    if s:
        try:
            split_hostport(s)
        except ValueError as e:
            raise _Invalid(str(e)) from None
    return s


_TOP: Mapping[str, Callable[[Any], Any]] = {"state_dir": _abs_path}
_SECTIONS: Mapping[str, Mapping[str, Callable[[Any], Any]]] = {
    "server": {"grpc_listen": _listen, "grpc_socket": _socket_path,
               "metrics_listen": _listen, "max_workers": _workers},
    "log": {"level": _choice(LOG_LEVELS), "format": _choice(LOG_FORMATS)},
    "telemetry": {"interval": _duration, "timeout": _duration,
                  "retention": lambda v: _duration(v, MAX_RETENTION), "max_backoff": _duration},
}
_COLLECTOR: Mapping[str, Callable[[Any], Any]] = {
    "enabled": _bool, "interval": _duration, "timeout": _duration}
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
        "server": {"grpc_listen": "127.0.0.1:9447",
                   "grpc_socket": default_grpc_socket(env, uid),
                   "metrics_listen": "127.0.0.1:9446", "max_workers": 32},
        "log": asdict(LogConfig()),
        "telemetry": asdict(TelemetryConfig()),
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
        except _Invalid as e:
            raise self.fail(key, str(e)) from None

    def table(self, doc: Mapping[str, Any], name: str, key: str,
              valid: Iterable[str], what: str = "key") -> dict[str, Any]:
        t = doc.get(name, {})
        if not isinstance(t, dict):
            raise self.fail(key, f"expected a table, got {_type_name(t)}")
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
                env: Mapping[str, str] | None = None) -> Config:
    """Load and validate.  ``overrides`` are dotted keys from command-line
    flags, validated like file values; ``env`` defaults to ``os.environ``."""
    env = os.environ if env is None else env
    known = frozenset(known_collectors)
    on_by_default = known if default_enabled is None else frozenset(default_enabled)
    doc = _read(path) if path is not None else {}
    chk = _Checker(path, _apply(doc, overrides))
    defaults = _defaults(env, os.geteuid())

    chk.known_keys(doc, "", _TOP_KEYS)
    top = {k: chk.value(k, check, doc.get(k, defaults[k])) for k, check in _TOP.items()}
    sections: dict[str, dict[str, Any]] = {}
    for name, schema in _SECTIONS.items():
        t = chk.table(doc, name, name, schema)
        sections[name] = {k: chk.value(f"{name}.{k}", check, t.get(k, defaults[name][k]))
                          for k, check in schema.items()}
    telemetry = TelemetryConfig(**sections["telemetry"])

    tables = chk.table(doc, "collectors", "collectors", sorted(known), "collector")
    unknown = sorted(on_by_default - known)  # from the program or its flags, not the file
    if unknown:
        raise ConfigError(f"collectors.{unknown[0]}",
                          f"unknown collector (valid: {', '.join(sorted(known))})")
    collectors = {}
    for name in sorted(known):
        key = f"collectors.{name}"
        t = chk.table(tables, name, key, _COLLECTOR)
        values = {k: chk.value(f"{key}.{k}", check, t[k])
                  for k, check in _COLLECTOR.items() if k in t}
        values.setdefault("enabled", name in on_by_default)
        collectors[name] = CollectorConfig(**values)

    intervals = [("telemetry.interval", telemetry.interval)] + [
        (f"collectors.{n}.interval", c.resolve(telemetry).interval)
        for n, c in collectors.items() if c.enabled]
    for source, interval in intervals:
        if telemetry.retention < interval:
            raise chk.fail("telemetry.retention",
                           f"{format_duration(telemetry.retention)} is shorter than {source} "
                           f"{format_duration(interval)}; no sample would be kept")
    return Config(state_dir=top["state_dir"], server=ServerConfig(**sections["server"]),
                  log=LogConfig(**sections["log"]), telemetry=telemetry,
                  collectors=MappingProxyType(collectors))


# ---------------------------------------------------------------- rendering --

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):  # every float in Config is a duration
        v = format_duration(v)
    return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20
                         or ord(c) == 0x7F else c) for c in str(v)) + '"'


def config_to_toml(cfg: Config) -> str:
    """The effective configuration as TOML that :func:`load_config` reads back."""
    out = ["# Effective hostagent configuration: defaults, file and flags merged.",
           f"state_dir = {_toml_value(cfg.state_dir)}"]
    for name in _SECTIONS:
        section = getattr(cfg, name)
        out += ["", f"[{name}]"]
        out += [f"{f.name} = {_toml_value(getattr(section, f.name))}" for f in fields(section)]
    for name, c in sorted(cfg.collectors.items()):
        key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_value(name)
        out += ["", f"[collectors.{key}]"]
        out += [f"{f.name} = {_toml_value(getattr(c, f.name))}"
                for f in fields(c) if getattr(c, f.name) is not None]
    return "\n".join(out) + "\n"
