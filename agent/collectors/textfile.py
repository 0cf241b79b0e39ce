"""Metrics other programs leave in ``<directory>/*.prom`` files, in the
Prometheus text format (node_exporter's ``textfile`` collector; the
directory is its ``--collector.textfile.directory``; when empty only
``node_textfile_scrape_error 0`` is served, as node_exporter does).

Each file is read in full (at most 4 MiB, UTF-8, a regular file: a FIFO
named ``x.prom`` cannot block the collector), parsed strictly
(:mod:`agent.exposition_parser`) and checked; a file with any fault is left
out whole, the others are served.  A file is refused for:

- a histogram or summary family (the agent's model has counters and gauges);
- a sample with a timestamp (node_exporter refuses them too: the agent
  stamps samples itself);
- a family the agent already serves, or one in its own namespaces
  (``hostagent_*``, ``process_*``, ``node_textfile_*``, ``node_memory_*``);
- a series given twice (in the file, or by an earlier file, in name order);
- a family another file serves with another type;
- a gauge named ``*_total`` (the model keeps ``_total`` for counters), a
  counter value that is negative, not finite or 2**64 or more.

Types: ``gauge`` is a gauge; ``counter`` a counter when its name ends in
``_total``, else a gauge (same values); ``untyped`` a gauge, or a counter
when its name ends in ``_total``.  A counter with a fractional value is kept
in micro-units.  Series of one family carry the union of its label names
(missing ones empty, as node_exporter pads them); HELP defaults to
``Metric read from <file>``.

``node_textfile_mtime_seconds{file}`` is the mtime of each file served;
``node_textfile_scrape_error`` is 1 when a file or the directory could not be
used.  Each new fault is logged and published as a ``textfile.invalid``
event naming the file.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Collection

from agent.config_values import optional_path
from agent.exposition_parser import ParsedFamily, ParseError, parse_text
from agent.logs import get_logger
from agent.telemetry.collector import CollectorContext, CollectorInfo
from agent.telemetry.events import Severity
from agent.telemetry.model import Batch, FamilyDesc, MetricType

log = get_logger(__name__)
C, G = MetricType.COUNTER, MetricType.GAUGE
OPTIONS = {"directory": optional_path}
MAX_FILE_BYTES = 4 << 20
RESERVED_PREFIXES = ("hostagent_", "process_", "node_textfile_", "node_memory_")
MICRO = 1e-6
COUNTER_LIMIT = 2.0 ** 64
MTIME = FamilyDesc("node_textfile_mtime_seconds", G, "Unix mtime of the textfiles read successfully",
                   "seconds", ("file",))
SCRAPE_ERROR = FamilyDesc("node_textfile_scrape_error", G,
                          "1 if a textfile or the directory could not be used, 0 otherwise")


class FileError(Exception):
    """This file is left out; the message says why."""


@dataclass
class _Family:
    type: MetricType
    help: str
    series: dict[frozenset, tuple[dict[str, str], float]] = field(default_factory=dict)


def model_type(family: ParsedFamily) -> MetricType:
    total = family.name.endswith("_total")
    if family.type == "gauge" and total:
        raise FileError(f"{family.name}: a gauge may not end in _total here (declare it a counter, "
                        "or rename it)")
    return C if total and family.type in ("counter", "untyped") else G


class TextfileCollector:
    name = "textfile"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs
        self._publish = ctx.publish
        self._dir = ctx.options.get("directory", "")
        self._served = ctx.served_families  # what the rest of the agent serves now
        self._reported: dict[str, str] = {}  # file -> the fault last logged
        self._descs: dict[tuple, FamilyDesc] = {}

    def collect(self, batch: Batch) -> None:
        if not self._dir:  # off, as node_exporter without a directory: nothing to fail
            batch.gauge(SCRAPE_ERROR, 0)
            return
        served = self._served()
        families: dict[str, _Family] = {}
        mtimes: dict[str, int] = {}
        errors: dict[str, str] = {}
        try:
            entries = sorted(os.listdir(self._fs.path(self._dir)))
        except OSError as e:
            errors[self._dir] = f"cannot read the directory: {e.strerror or e}"
            entries = []
        for entry in entries:
            if not entry.endswith(".prom"):
                continue
            path = f"{self._dir.rstrip('/')}/{entry}"
            try:
                parsed, mtime = self._read(path)
                staged = self._check(parsed, path, served, families)
            except FileError as e:
                errors[path] = str(e)
                continue
            for name, fam in staged.items():
                target = families.setdefault(name, _Family(fam.type, fam.help))
                target.series.update(fam.series)
            mtimes[path] = mtime
        self._emit(batch, families)
        for path in sorted(mtimes):
            batch.gauge(MTIME, mtimes[path], path)
        batch.gauge(SCRAPE_ERROR, 1 if errors else 0)
        self._report(errors, mtimes)

    def _read(self, path: str) -> tuple[list[ParsedFamily], int]:
        try:
            fd = os.open(self._fs.path(path), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise FileError(f"cannot open: {e.strerror or e}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileError("not a regular file")
            chunks, size = [], 0
            while size <= MAX_FILE_BYTES:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as e:
            raise FileError(f"cannot read: {e.strerror or e}") from None
        finally:
            os.close(fd)
        if size > MAX_FILE_BYTES:
            raise FileError(f"larger than {MAX_FILE_BYTES >> 20} MiB")
        try:
            return parse_text(b"".join(chunks).decode("utf-8")), st.st_mtime_ns // 10**9
        except UnicodeDecodeError as e:
            raise FileError(f"not UTF-8 (byte {e.start})") from None
        except ParseError as e:
            raise FileError(str(e)) from None

    def _check(self, parsed: list[ParsedFamily], path: str, served: Collection[str],
               families: dict[str, _Family]) -> dict[str, _Family]:
        """This file's families, checked against itself and the files read before."""
        staged: dict[str, _Family] = {}
        for fam in parsed:
            if not fam.samples:
                continue  # HELP or TYPE alone: nothing to serve
            name = fam.name
            if fam.type in ("histogram", "summary"):
                raise FileError(f"{name}: {fam.type} families are not supported "
                                "(counter, gauge and untyped are)")
            if name in served or name.startswith(RESERVED_PREFIXES):
                raise FileError(f"{name}: the agent already serves this family")
            mtype = model_type(fam)
            earlier = families.get(name)
            if earlier is not None and earlier.type is not mtype:
                raise FileError(f"{name}: a {mtype.name.lower()} here, a {earlier.type.name.lower()} "
                                "in an earlier file")
            own = staged[name] = _Family(mtype, fam.help or f"Metric read from {path}")
            for s in fam.samples:
                if s.timestamp_ms is not None:
                    raise FileError(f"line {s.line}: timestamps are not supported")
                if mtype is C and not (0 <= s.value < COUNTER_LIMIT):
                    raise FileError(f"line {s.line}: counter {name} must be >= 0 and < 2**64, "
                                    f"not {s.value!r}")
                labels = {k: v for k, v in s.labels if v != ""}
                key = frozenset(labels.items())
                if key in own.series or (earlier is not None and key in earlier.series):
                    where = "in this file" if key in own.series else "in an earlier file"
                    raise FileError(f"line {s.line}: series {name}{_show(labels)} already given {where}")
                own.series[key] = (labels, s.value)
            if mtype is C:
                values = [v for _, v in own.series.values()]
                values += [v for _, v in earlier.series.values()] if earlier is not None else []
                if any(not v.is_integer() for v in values) and max(values) * 1e6 >= COUNTER_LIMIT:
                    raise FileError(f"{name}: a counter with fractional values must stay "
                                    "below 1.8e13")
        return staged

    def _emit(self, batch: Batch, families: dict[str, _Family]) -> None:
        if len(self._descs) > 10000:
            self._descs.clear()
        for name in sorted(families):
            fam = families[name]
            series = list(fam.series.values())
            label_names = tuple(sorted({k for labels, _ in series for k in labels}))
            scale = 1.0
            if fam.type is C and any(not v.is_integer() for _, v in series):
                scale = MICRO
            key = (name, fam.type, fam.help, label_names, scale)
            desc = self._descs.get(key)
            if desc is None:
                desc = self._descs[key] = FamilyDesc(name, fam.type, fam.help, "", label_names, scale)
            for labels, value in series:
                values = tuple(labels.get(k, "") for k in label_names)
                if fam.type is C:
                    raw = round(value) if scale == 1.0 else round(value * 1_000_000)
                    batch.counter(desc, min(raw, 2**64 - 1), *values)
                else:
                    batch.gauge(desc, value, *values)

    def _report(self, errors: dict[str, str], served: dict[str, int]) -> None:
        for path, error in sorted(errors.items()):
            if self._reported.get(path) != error:
                log.warning("textfile.invalid", file=path, error=error)
                self._publish("textfile.invalid", Severity.WARNING, self.name, f"{path}: {error}",
                              file=path)
        for path in sorted(self._reported.keys() - errors.keys()):
            if path in served:
                log.info("textfile.valid", file=path)
                self._publish("textfile.valid", Severity.INFO, self.name, f"{path}: served again",
                              file=path)
        self._reported = errors


def _show(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""


COLLECTOR = CollectorInfo(name="textfile", factory=TextfileCollector, options=OPTIONS)
