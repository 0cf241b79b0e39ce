"""agent.config: defaults < file < overrides, and every error names its key."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import (CollectorConfig, ConfigError, TelemetryConfig, config_to_toml,
                          default_grpc_socket, default_state_dir, format_duration,
                          load_config, parse_duration, split_hostport)

KNOWN = {"cpu", "stat", "loadavg", "pressure", "meminfo", "vmstat", "hwmon"}
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "hostagent.example.toml"
ENV = {"HOME": "/home/op"}  # no RUNTIME_DIRECTORY / XDG_*: reproducible defaults


def load(path=None, **kw):
    kw.setdefault("known_collectors", KNOWN)
    kw.setdefault("env", ENV)
    return load_config(None if path is None else str(path), **kw)


@pytest.fixture
def write(tmp_path):
    def write(text: str) -> Path:
        p = tmp_path / "hostagent.toml"
        p.write_text(text)
        return p
    return write


def test_defaults_without_a_file():
    cfg = load()
    assert cfg.state_dir == default_state_dir(ENV, os.geteuid())
    assert cfg.server.grpc_listen == "127.0.0.1:9447"
    assert cfg.server.grpc_socket == default_grpc_socket(ENV, os.geteuid())
    assert cfg.server.metrics_listen == "127.0.0.1:9446"
    assert cfg.server.max_workers == 32
    assert (cfg.log.level, cfg.log.format) == ("info", "logfmt")
    assert cfg.telemetry == TelemetryConfig(interval=5.0, timeout=4.0, retention=900.0,
                                            max_backoff=300.0)
    assert set(cfg.collectors) == KNOWN
    assert cfg.enabled_collectors == tuple(sorted(KNOWN))


def test_default_enabled_limits_unmentioned_collectors(write):
    path = write("[collectors.hwmon]\nenabled = true\n[collectors.cpu]\nenabled = false\n")
    cfg = load(path, default_enabled={"cpu", "stat"})
    assert cfg.enabled_collectors == ("hwmon", "stat")


def test_default_paths_follow_uid_and_environment():
    assert default_state_dir({}, 0) == "/var/lib/hostagent"
    assert default_state_dir({"XDG_STATE_HOME": "/x/state"}, 1000) == "/x/state/hostagent"
    assert default_state_dir({"HOME": "/home/u"}, 1000) == "/home/u/.local/state/hostagent"
    systemd = {"RUNTIME_DIRECTORY": "/run/hostagent:/run/other"}
    assert default_grpc_socket(systemd, 0) == "/run/hostagent/grpc.sock"
    assert default_grpc_socket({"RUNTIME_DIRECTORY": "/run/ha2"}, 1000) == "/run/ha2/grpc.sock"
    assert default_grpc_socket({}, 0) == "/run/hostagent/grpc.sock"
    assert default_grpc_socket({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000) == \
        "/run/user/1000/hostagent/grpc.sock"
    assert default_grpc_socket({}, 1000) == "/tmp/hostagent-1000/grpc.sock"
    cfg = load(env={"RUNTIME_DIRECTORY": "/run/unit"})
    assert cfg.server.grpc_socket == "/run/unit/grpc.sock"


def test_file_overrides_defaults(write):
    path = write("""
state_dir = "/srv/agent"
[server]
grpc_listen = "[::1]:9000"
grpc_socket = ""
max_workers = 8
[log]
level = "DEBUG"
format = "json"
[telemetry]
interval = "1m30s"
timeout = 10
retention = "2h"
[collectors.cpu]
interval = "1s"
timeout = "250ms"
[collectors.hwmon]
enabled = false
""")
    cfg = load(path)
    assert cfg.state_dir == "/srv/agent"
    assert (cfg.server.grpc_listen, cfg.server.grpc_socket) == ("[::1]:9000", "")
    assert cfg.server.metrics_listen == "127.0.0.1:9446"
    assert cfg.server.max_workers == 8
    assert (cfg.log.level, cfg.log.format) == ("debug", "json")
    assert cfg.telemetry == TelemetryConfig(interval=90.0, timeout=10.0, retention=7200.0,
                                            max_backoff=300.0)
    assert cfg.collectors["cpu"] == CollectorConfig(True, 1.0, 0.25)
    assert cfg.collectors["cpu"].resolve(cfg.telemetry) == (1.0, 0.25)
    assert cfg.collectors["stat"].resolve(cfg.telemetry) == (90.0, 10.0)
    assert not cfg.collectors["hwmon"].enabled


def test_overrides_override_the_file(write):
    path = write('state_dir = "/srv/a"\n[server]\ngrpc_listen = "0.0.0.0:1"\n'
                 '[collectors.cpu]\nenabled = true\n')
    cfg = load(path, overrides={"server.grpc_listen": "127.0.0.1:0", "state_dir": "/tmp/x",
                                "collectors.cpu.enabled": False, "log.level": None})
    assert cfg.server.grpc_listen == "127.0.0.1:0"
    assert cfg.state_dir == "/tmp/x"
    assert not cfg.collectors["cpu"].enabled
    assert cfg.log.level == "info"  # None means "flag not given"


def test_inherited_timeout_is_clamped_to_the_collector_interval():
    tel = TelemetryConfig(interval=5.0, timeout=4.0)
    assert CollectorConfig(interval=1.0).resolve(tel) == (1.0, 1.0)
    assert CollectorConfig(interval=1.0, timeout=3.0).resolve(tel) == (1.0, 3.0)
    assert CollectorConfig().resolve(tel) == (5.0, 4.0)


ERRORS = [
    ("unknown-top-level", "colour = 'blue'\n", "colour", "valid: state_dir"),
    ("unknown-server-key", "[server]\ngrpc_port = 1\n", "server.grpc_port", "grpc_listen"),
    ("unknown-collector", "[collectors.nope]\nenabled = true\n", "collectors.nope",
     "unknown collector"),
    ("unknown-collector-key", "[collectors.cpu]\nperiod = '1s'\n", "collectors.cpu.period",
     "interval"),
    ("bad-duration", "[telemetry]\ninterval = '5 parsecs'\n", "telemetry.interval",
     "invalid duration"),
    ("negative-interval", "[collectors.cpu]\ninterval = -1\n", "collectors.cpu.interval", "> 0"),
    ("negative-string", "[telemetry]\ntimeout = '-2s'\n", "telemetry.timeout", "negative"),
    ("zero-duration", "[telemetry]\nmax_backoff = '0s'\n", "telemetry.max_backoff", "> 0"),
    ("retention-below-interval", "[telemetry]\nretention = '10s'\ninterval = '30s'\n",
     "telemetry.retention", "shorter than telemetry.interval"),
    ("retention-below-collector", "[collectors.stat]\ninterval = '1h'\n",
     "telemetry.retention", "collectors.stat.interval"),
    ("retention-over-24h", "[telemetry]\nretention = '25h'\n", "telemetry.retention", "24h"),
    ("bad-listen", "[server]\ngrpc_listen = 'localhost'\n", "server.grpc_listen", "HOST:PORT"),
    ("ipv6-no-brackets", "[server]\nmetrics_listen = '::1:80'\n", "server.metrics_listen",
     "brackets"),
    ("bad-port", "[server]\ngrpc_listen = '1.2.3.4:65536'\n", "server.grpc_listen", "65535"),
    ("empty-host", "[server]\ngrpc_listen = ':80'\n", "server.grpc_listen", "host"),
    ("relative-socket", "[server]\ngrpc_socket = 'grpc.sock'\n", "server.grpc_socket",
     "absolute"),
    ("long-socket", f"[server]\ngrpc_socket = '/{'s' * 120}'\n", "server.grpc_socket", "107"),
    ("workers-range", "[server]\nmax_workers = 0\n", "server.max_workers", "1..1024"),
    ("workers-type", "[server]\nmax_workers = '8'\n", "server.max_workers", "integer"),
    ("bad-level", "[log]\nlevel = 'loud'\n", "log.level", "debug, info, warning, error"),
    ("bad-format", "[log]\nformat = 'xml'\n", "log.format", "logfmt"),
    ("enabled-type", "[collectors.cpu]\nenabled = 'yes'\n", "collectors.cpu.enabled",
     "true or false"),
    ("section-not-table", "server = 'x'\n", "server", "table"),
    ("toml-syntax", "[server\ngrpc_listen = 1\n", "", "line 1"),
]


@pytest.mark.parametrize("text,key,fragment", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_file_errors_name_the_key(write, text, key, fragment):
    path = write(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    assert err.key == key
    assert fragment in err.message
    assert str(err) == ": ".join(p for p in (str(path), key, err.message) if p)


def test_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert info.value.key == ""
    assert str(info.value) == f"{missing}: no such file"


@pytest.mark.parametrize("overrides,key", [
    ({"server.grpc_listen": "nowhere"}, "server.grpc_listen"),
    ({"telemetry.interval": "5 parsecs"}, "telemetry.interval"),
    ({"bogus": 1}, "bogus"),
    ({"collectors.gpu.enabled": True}, "collectors.gpu"),
    ({"log.level": "chatty"}, "log.level"),
])
def test_override_errors_name_the_key_and_not_the_file(write, overrides, key):
    path = write("[log]\nlevel = 'info'\n")
    with pytest.raises(ConfigError) as info:
        load(path, overrides=overrides)
    assert info.value.key == key
    assert info.value.path is None
    assert str(info.value).startswith(f"{key}: ")
    assert "command line" in str(info.value)


def test_default_enabled_must_name_known_collectors():
    with pytest.raises(ConfigError) as info:
        load(default_enabled={"cpu", "gpu"})
    assert info.value.key == "collectors.gpu"


@pytest.mark.parametrize("text,seconds", [
    ("5s", 5.0), ("500ms", 0.5), ("15m", 900.0), ("2h", 7200.0), ("1m30s", 90.0),
    ("1h2m3s", 3723.0), ("1.5s", 1.5), (".25s", 0.25), ("1m0.5s", 60.5), ("10", 10.0),
    (" 3s ", 3.0), (7, 7.0), (0.1, 0.1),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 parsecs", "5 s", "s", "1w", "-5s", "0s", "0", -1,
                                  0, float("inf"), float("nan"), "1e3s", True, None, "5S"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds,text", [
    (900.0, "15m"), (1.5, "1.5s"), (0.5, "500ms"), (90.0, "1m30s"), (7200.0, "2h"),
    (3723.0, "1h2m3s"), (5.0, "5s"), (0.0005, "0.5ms"), (86400.0, "24h"),
])
def test_format_duration_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_split_hostport():
    assert split_hostport("127.0.0.1:9447") == ("127.0.0.1", 9447)
    assert split_hostport("[::1]:0") == ("::1", 0)
    assert split_hostport("node-1.example:65535") == ("node-1.example", 65535)
    for bad in ("[::1]", "[]:1", "host:", "host:port", "a b:1", "[::1]:1x"):
        with pytest.raises(ValueError):
            split_hostport(bad)


def test_example_file_loads_and_equals_the_defaults():
    cfg = load(EXAMPLE)
    assert cfg == load()


def test_printed_config_loads_back_to_the_same_config(write):
    path = write("[server]\ngrpc_listen = '[::]:0'\ninsecure = true\n[telemetry]\nretention = '1h30m'\n"
                 "[collectors.cpu]\ninterval = '1.5s'\ntimeout = '100ms'\n"
                 "[collectors.vmstat]\nenabled = false\n")
    cfg = load(path, overrides={"state_dir": '/tmp/we"ird\\dir'})
    again = load(write(config_to_toml(cfg)))
    assert again == cfg


def test_security_defaults_and_rules(write):
    cfg = load()
    assert not cfg.tls.enabled and not cfg.server.insecure
    assert cfg.auth.identities["unix:uid:0"] == "admin" and cfg.auth.identities["insecure"] == "viewer"
    assert cfg.operations.retention == 7 * 86400
    # A file's identities merge over the defaults; "none" removes a default.
    cfg = load(write('[auth.identities]\n"cert:spiffe://r1/cp" = "operator"\ninsecure = "none"\n'))
    assert cfg.auth.identities["cert:spiffe://r1/cp"] == "operator" and "insecure" not in cfg.auth.identities
    assert cfg.auth.identities["unix:uid:0"] == "admin" and not cfg.auth.unqualified
    # Keys from before identities were qualified: read as meant, and listed.
    cfg = load(write('[auth.identities]\n"spiffe://r1/cp" = "operator"\n"uid:0" = "none"\n'))
    assert cfg.auth.identities["cert:spiffe://r1/cp"] == "operator"
    assert "unix:uid:0" not in cfg.auth.identities and "uid:0" not in cfg.auth.identities
    assert dict(cfg.auth.unqualified) == {"spiffe://r1/cp": "cert:spiffe://r1/cp", "uid:0": "unix:uid:0"}


@pytest.mark.parametrize("text, key", [
    ('[server]\ngrpc_listen = "0.0.0.0:9447"\n', "server.grpc_listen"),  # plaintext off-host
    ('[tls]\ncert_file = "/etc/hostagent/tls/server.pem"\n', "tls.key_file"),  # half a TLS config
    ('[auth.identities]\n"uid:0" = "root"\n', "auth.identities"),  # no such role
    ('[auth.identities]\n"two words" = "viewer"\n', "auth.identities"),
    ('[auth.identities]\n"unix:root" = "admin"\n', "auth.identities"),  # unix:uid:<n> only
    ('[auth.identities]\n"cert:" = "admin"\n', "auth.identities"),
    ('[auth.identities]\n"uid:0" = "admin"\n"unix:uid:0" = "viewer"\n', "auth.identities"),  # twice
    ('[operations]\nretention = "365d"\n', "operations.retention"),
])
def test_security_errors_name_the_key(write, text, key):
    with pytest.raises(ConfigError) as err:
        load(write(text))
    assert err.value.key == key


def test_insecure_allows_plaintext_off_host(write):
    cfg = load(write('[server]\ngrpc_listen = "0.0.0.0:9447"\ninsecure = true\n'))
    assert cfg.server.insecure and cfg.server.grpc_listen == "0.0.0.0:9447"
