"""Model <-> protobuf for telemetry: the only place these types meet."""
from __future__ import annotations

import math

from google.protobuf import duration_pb2, timestamp_pb2

from agent.errors import InvalidArgument
from agent.gen.hostagent.v1 import telemetry_pb2 as pb
from agent.telemetry.events import Event
from agent.telemetry.model import FamilyDesc
from agent.telemetry.query import FamilySnapshot, Selector, compile_selector
from agent.telemetry.store import Row


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


# google.protobuf.Duration's own range: about 10,000 years.
MAX_DURATION_SECONDS = 315_576_000_000


def duration_seconds(d: duration_pb2.Duration, field: str, maximum: float) -> float:
    """Seconds of a Duration field, refusing negative, malformed or out of
    range values, and anything over ``maximum`` (every field has one: an
    unbounded wait overflows a timer).  The one check of every Duration a
    request carries."""
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    if d.nanos >= 1_000_000_000:
        raise InvalidArgument(field, "nanos must be below 1e9")
    if d.seconds > MAX_DURATION_SECONDS:
        raise InvalidArgument(field, "is beyond the range of google.protobuf.Duration")
    value = d.seconds + d.nanos / 1e9
    if value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum:g}s")
    return value


def optional_duration(msg, name: str, maximum: float, field: str | None = None) -> float | None:
    """A Duration field that is unset or zero means "not given"."""
    if not msg.HasField(name):
        return None
    value = duration_seconds(getattr(msg, name), field or name, maximum)
    return value or None


def selector_from_proto(sel: pb.MetricSelector, prefix: str = "selector") -> Selector:
    return compile_selector(list(sel.names),
                            [(m.name, m.op, m.value) for m in sel.matchers], prefix)


def family_info(family: FamilyDesc, collector: str) -> pb.MetricFamilyInfo:
    return pb.MetricFamilyInfo(name=family.name, type=int(family.type), unit=family.unit,
                               help=family.help, label_names=list(family.label_names),
                               collector=collector)


def sample(row: Row, labels_only: bool = False) -> pb.Sample:
    out = pb.Sample(labels=dict(zip(row.family.label_names, row.labels)))
    if labels_only:
        return out
    out.value = row.value
    if not math.isnan(row.rate):
        out.rate = row.rate
    out.time.FromNanoseconds(int(row.time * 1e9))
    if row.stats is not None:
        mn, mx, mean, last, p50, p90, p99, count = row.stats
        out.stats.CopyFrom(pb.WindowStats(min=mn, max=mx, mean=mean, last=last,
                                          p50=p50, p90=p90, p99=p99, count=int(count)))
    return out


def families(snaps: list[FamilySnapshot], labels_only: bool = False) -> list[pb.MetricFamily]:
    return [pb.MetricFamily(info=family_info(s.family, s.collector),
                            samples=[sample(r, labels_only) for r in s.rows])
            for s in snaps if s.rows]


def event(ev: Event, boot_id: str) -> pb.Event:
    return pb.Event(sequence=ev.sequence, kind=ev.kind, severity=int(ev.severity),
                    source=ev.source, message=ev.message, labels=dict(ev.labels),
                    time=timestamp(ev.time), boot_id=boot_id)
