"""agent.logs: one event per line, parseable back into its fields."""
from __future__ import annotations

import io
import json
import logging
import os
import re

import pytest

from agent.logs import get_logger, setup_logging

_PAIR_RE = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s|$)')
_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def parse_logfmt(line: str) -> dict[str, str]:
    """A strict logfmt reader: the whole line must be key=value pairs."""
    fields, pos = {}, 0
    while pos < len(line):
        m = _PAIR_RE.match(line, pos)
        assert m, f"not logfmt at {pos}: {line[pos:]!r}"
        key, raw = m.groups()
        if raw.startswith('"'):
            raw = re.sub(r'\\u([0-9a-f]{4})|\\(.)',
                         lambda e: chr(int(e[1], 16)) if e[1] else _UNESCAPE[e[2]], raw[1:-1])
        fields[key] = raw
        pos = m.end()
    return fields


@pytest.fixture(autouse=True)
def restore_root_logger(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_logfmt_line_parses_back_into_its_fields():
    out = io.StringIO()
    setup_logging("info", "logfmt", stream=out)
    get_logger("agent.daemon").info("listening", addr="127.0.0.1:9447", workers=32,
                                    tls=False, msg="gRPC server up")
    [line] = lines(out)
    fields = parse_logfmt(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields.pop("ts"))
    assert fields == {"level": "info", "logger": "agent.daemon", "event": "listening",
                      "addr": "127.0.0.1:9447", "workers": "32", "tls": "false",
                      "msg": "gRPC server up"}
    assert line.split()[1:4] == ["level=info", "logger=agent.daemon", "event=listening"]


def test_awkward_values_stay_on_one_line_and_round_trip():
    out = io.StringIO()
    setup_logging(stream=out)
    nasty = 'a "quoted" value\nsecond line\r\twith = and \\ and \u2028 and \x1b'
    get_logger("t").warning("odd input", value=nasty, empty="", none=None)
    [line] = lines(out)
    assert len(line.splitlines()) == 1
    fields = parse_logfmt(line)
    assert fields["value"] == nasty
    assert fields["empty"] == ""
    assert fields["none"] == "null"
    assert fields["level"] == "warning"


def test_exception_traceback_is_one_escaped_field():
    out = io.StringIO()
    setup_logging(stream=out)
    try:
        raise RuntimeError("boom\nbang")
    except RuntimeError:
        get_logger("t").exception("collector failed", collector="cpu")
    [line] = lines(out)
    fields = parse_logfmt(line)
    assert fields["level"] == "error"
    assert fields["collector"] == "cpu"
    assert fields["exc"].startswith("Traceback (most recent call last):\n")
    assert fields["exc"].endswith("RuntimeError: boom\nbang")


def test_json_format_is_one_object_per_line():
    out = io.StringIO()
    setup_logging("debug", "json", stream=out)
    log = get_logger("agent.x")
    log.debug("tick", n=3, ratio=0.5, nan=float("nan"), obj=object(), text="two\nlines")
    log.error("failed", level="user field")  # a field never replaces a core key
    first, second = (json.loads(line) for line in lines(out))
    assert list(first)[:4] == ["ts", "level", "logger", "event"]
    assert first["level"] == "debug" and first["event"] == "tick" and first["n"] == 3
    assert first["ratio"] == 0.5 and first["nan"] == "nan" and first["text"] == "two\nlines"
    assert first["obj"].startswith("<object object")
    assert second["level"] == "error" and second["level_"] == "user field"


def test_records_from_other_libraries_are_formatted_too():
    out = io.StringIO()
    setup_logging(stream=out)
    logging.getLogger("grpc._server").warning("port %d busy", 9447)
    fields = parse_logfmt(lines(out)[0])
    assert fields["logger"] == "grpc._server"
    assert fields["event"] == "port 9447 busy"
    assert fields["level"] == "warning"


def test_level_filters_events():
    out = io.StringIO()
    setup_logging("warning", stream=out)
    log = get_logger("t")
    log.info("hidden")
    log.warning("shown")
    assert [parse_logfmt(x)["event"] for x in lines(out)] == ["shown"]


@pytest.mark.parametrize("name", ["bmc_password", "api_key", "passwd", "ClientSecret",
                                  "TOKEN", "sshKeyPath"])
def test_secret_named_fields_are_masked(name):
    out = io.StringIO()
    setup_logging(stream=out)
    get_logger("t").info("login", user="admin", **{name: "hunter2"})
    assert "hunter2" not in out.getvalue()
    fields = parse_logfmt(lines(out)[0])
    assert fields[name] == "***" and fields["user"] == "admin"


def test_journald_prefix_when_stream_is_the_journal(tmp_path, monkeypatch):
    with open(tmp_path / "journal", "w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        setup_logging("debug", stream=stream)
        log = get_logger("agent.daemon")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        stream.seek(0)
        got = stream.read().splitlines()
    assert [line[:3] for line in got] == ["<7>", "<6>", "<4>", "<3>"]
    assert parse_logfmt(got[1][3:]) == {"level": "info", "logger": "agent.daemon", "event": "i"}


@pytest.mark.parametrize("journal_stream", ["other", "1:2", "garbage", ""])
def test_no_journald_prefix_otherwise(tmp_path, monkeypatch, journal_stream):
    with open(tmp_path / "plain", "w+") as stream:
        other = os.stat(tmp_path)
        value = {"other": f"{other.st_dev}:{other.st_ino}"}.get(journal_stream, journal_stream)
        monkeypatch.setenv("JOURNAL_STREAM", value)
        setup_logging(stream=stream)
        get_logger("t").info("i")
        stream.seek(0)
        line = stream.read()
    assert line.startswith("ts=")


def test_reconfiguring_does_not_duplicate_lines():
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "logfmt", stream=first)
    setup_logging("debug", "json", stream=second)
    setup_logging("debug", "json", stream=second)
    get_logger("t").debug("once")
    assert first.getvalue() == ""
    [line] = lines(second)
    assert json.loads(line)["event"] == "once"


def test_bad_level_or_format_is_rejected():
    with pytest.raises(ValueError):
        setup_logging("loud")
    with pytest.raises(ValueError):
        setup_logging("info", "xml")
