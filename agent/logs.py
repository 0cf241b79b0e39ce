"""Structured logging: one event per line, logfmt or JSON, journald-aware.

Code logs events, not sentences::

    log = get_logger(__name__)
    log.info("listening", addr="127.0.0.1:9447")
    # ts=2026-11-24T14:00:00.123Z level=info logger=agent.daemon event=listening addr=127.0.0.1:9447

Everything goes through the stdlib root logger, so records from other
libraries (grpc, pyghmi) come out in the same format with ``event`` = their
message.  Every record is exactly one line: newlines in values and exception
tracebacks (``exc=``) are escaped.  Under systemd, when stderr is the journal
(``JOURNAL_STREAM``), each line starts with its syslog priority (``<6>``) and
``ts=`` is left to journald.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from typing import IO, Any, Mapping

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("logfmt", "json")
MASK = "***"
# A safety net only: code must still never pass a secret to a logger.
_SECRET_RE = re.compile(r"passw(?:or)?d|secret|token|key", re.IGNORECASE)
_FIELDS_ATTR = "hostagent_fields"  # the one LogRecord attribute EventLogger sets
_KEY_RE = re.compile(r"[^A-Za-z0-9_.-]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class EventLogger:
    """A thin wrapper over a stdlib logger: ``info("event", key=value, ...)``."""

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """``error`` with the exception being handled, in ``exc=``."""
        fields.setdefault("exc_info", True)
        self._log(logging.ERROR, event, fields)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            exc_info = fields.pop("exc_info", None)
            self.logger.log(level, event, exc_info=exc_info, stacklevel=3,
                            extra={_FIELDS_ATTR: fields})


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))


def is_secret(name: str) -> bool:
    return bool(_SECRET_RE.search(name))


def journal_priority(levelno: int) -> int:
    """sd-daemon.h: 3 error, 4 warning, 6 info, 7 debug (2 critical)."""
    for threshold, prio in ((logging.CRITICAL, 2), (logging.ERROR, 3),
                            (logging.WARNING, 4), (logging.INFO, 6)):
        if levelno >= threshold:
            return prio
    return 7


def is_journal_stream(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal's stdout/stderr connection:
    ``JOURNAL_STREAM`` ("DEV:INODE") names the very file its fd is."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _escape(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    if c.isprintable():
        return c
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def logfmt_value(value: Any) -> str:
    """Bare when safe; otherwise double-quoted with ``\\"``, ``\\\\``, ``\\n``
    and non-printable characters escaped, so the result never spans lines."""
    s = _text(value)
    if s and all(c.isprintable() and c not in ' ="\\' for c in s):
        return s
    return '"' + "".join(map(_escape, s)) + '"'


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


class EventFormatter(logging.Formatter):
    """Formats any LogRecord as one logfmt or JSON line."""

    def __init__(self, fmt: str = "logfmt", journal: bool = False) -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.fmt, self.journal = fmt, journal

    def pairs(self, record: logging.LogRecord) -> list[tuple[str, Any]]:
        """The ordered key/value pairs of a record, secrets masked."""
        out: list[tuple[str, Any]] = []
        if not self.journal:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            out.append(("ts", f"{stamp}.{int(record.msecs):03d}Z"))
        out += [("level", record.levelname.lower()), ("logger", record.name),
                ("event", record.getMessage())]
        taken = {k for k, _ in out} | {"exc", "stack"}
        for key, value in (getattr(record, _FIELDS_ATTR, None) or {}).items():
            key = _KEY_RE.sub("_", str(key)) or "_"
            while key in taken:  # a field never hides a core key
                key += "_"
            taken.add(key)
            out.append((key, MASK if is_secret(key) else value))
        if record.exc_info:
            out.append(("exc", self.formatException(record.exc_info)))
        if record.stack_info:
            out.append(("stack", self.formatStack(record.stack_info)))
        return out

    def format(self, record: logging.LogRecord) -> str:
        pairs = self.pairs(record)
        if self.fmt == "json":
            line = json.dumps({k: _json_value(v) for k, v in pairs},
                              ensure_ascii=True, separators=(",", ":"))
        else:
            line = " ".join(f"{k}={logfmt_value(v)}" for k, v in pairs)
        if self.journal:
            line = f"<{journal_priority(record.levelno)}>{line}"
        return line


class _EventHandler(logging.StreamHandler):
    """Marks the one handler :func:`setup_logging` owns on the root logger."""


def setup_logging(level: str = "info", fmt: str = "logfmt", stream: IO[str] | None = None) -> None:
    """Send every record to ``stream`` (default: stderr) as one line each.

    Idempotent: a second call (SIGHUP reload) changes the level, format and
    stream of the same handler instead of adding another.
    """
    levelno = LEVELS.get(level.lower())
    if levelno is None:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    target = sys.stderr if stream is None else stream
    formatter = EventFormatter(fmt, journal=is_journal_stream(target))
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _EventHandler)), None)
    if handler is None:
        handler = _EventHandler(target)
        root.addHandler(handler)
    elif handler.stream is not target:
        try:
            handler.setStream(target)  # flushes the old stream first
        except ValueError:  # the old stream is already closed: nothing to flush
            handler.stream = target
    handler.setFormatter(formatter)
    root.setLevel(levelno)
