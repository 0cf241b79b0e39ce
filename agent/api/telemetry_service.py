"""``hostagent.v1.Telemetry``: validates, delegates to the query layer and
the event bus, converts.  Errors are raised, never aborted here."""
from __future__ import annotations

import fnmatch
import math
import time

from agent.api import convert, encode
from agent.api.streams import StreamGate
from agent.errors import InvalidArgument
from agent.gen.hostagent.v1 import telemetry_pb2 as pb
from agent.gen.hostagent.v1 import telemetry_pb2_grpc as pb_grpc
from agent.telemetry.events import EventBus
from agent.telemetry.query import FamilySnapshot, MetricsQuery, compile_selector
from agent.telemetry.store import Row

MIN_INTERVAL = 0.1
DEFAULT_INTERVAL = 1.0
DEFAULT_HEARTBEAT = 30.0
MAX_INTERVAL = 3600.0
MAX_HEARTBEAT = 86400.0


class TelemetryService(pb_grpc.TelemetryServicer):
    """GetMetrics and SAMPLE streams return wire bytes (``agent.api.encode``);
    the server registers this servicer with a serializer that passes bytes
    through (``agent.api.server.add_service``)."""

    def __init__(self, query: MetricsQuery, events: EventBus, streams: StreamGate) -> None:
        self._query = query
        self._events = events
        self._streams = streams
        self._families = encode.FamiliesCache()

    def ListMetrics(self, request, context):
        selector = compile_selector(list(request.names), [], "names")
        return pb.ListMetricsResponse(families=[
            convert.family_info(f, c) for f, c in self._query.list_families(selector)])

    def GetMetrics(self, request, context):
        selector = convert.selector_from_proto(request.selector)
        self._query.check_names(selector)
        window = convert.optional_duration(request, "window", convert.MAX_DURATION_SECONDS)
        self._query.check_window(window, selector=selector)  # bounded by the retention
        now = time.time()
        return encode.get_metrics_response(self._encode(selector, window), now)

    def StreamMetrics(self, request, context):
        selector = convert.selector_from_proto(request.selector)
        self._query.check_names(selector)
        interval = convert.optional_duration(request, "interval", MAX_INTERVAL) or DEFAULT_INTERVAL
        if interval < MIN_INTERVAL:
            raise InvalidArgument("interval", f"must be at least {MIN_INTERVAL:g}s")
        heartbeat = convert.optional_duration(request, "heartbeat", MAX_HEARTBEAT) or DEFAULT_HEARTBEAT
        if heartbeat < interval:
            raise InvalidArgument("heartbeat", "must not be shorter than interval")
        window = convert.optional_duration(request, "window", convert.MAX_DURATION_SECONDS)
        self._query.check_window(window, selector=selector)
        if request.mode not in pb.StreamMode.values():
            raise InvalidArgument("mode", f"unknown stream mode {request.mode}")
        on_change = request.mode == pb.STREAM_MODE_ON_CHANGE

        with self._streams.open(context) as stream:
            sent: dict[tuple[str, tuple[str, ...]], float] = {}
            sequence = 0
            last_send = 0.0
            next_at = time.monotonic()
            while stream.active:
                now = time.monotonic()
                if not on_change:
                    sequence += 1
                    yield encode.stream_update(self._encode(selector, window), time.time(), sequence)
                    next_at += interval
                    stream.sleep(next_at - time.monotonic())
                    continue
                snaps = self._query.snapshot(selector, window)
                if sequence == 0:
                    update = pb.StreamMetricsResponse(families=convert.families(snaps), full=True)
                    sent = _values(snaps)
                else:
                    update = _changes(snaps, sent)
                if sequence and not update.families and not update.removed:
                    if now - last_send < heartbeat:
                        update = None
                    else:
                        update.heartbeat = True
                if update is not None:
                    sequence += 1
                    update.sequence = sequence
                    update.time.CopyFrom(convert.timestamp(time.time()))
                    last_send = now
                    yield update
                next_at += interval
                stream.sleep(next_at - time.monotonic())

    def _encode(self, selector, window: float | None) -> bytes:
        """Families as wire bytes; without a window, shared by callers asking
        for the same series between two collections (``encode.FamiliesCache``)."""
        if window is None:
            return self._families.families(self._query.store, selector)
        return encode.encode_families(self._query.store, selector, window)

    def WatchEvents(self, request, context):
        if request.min_severity not in pb.Severity.values():
            raise InvalidArgument("min_severity", f"unknown severity {request.min_severity}")
        kinds = list(request.kinds)
        for i, kind in enumerate(kinds):
            if not kind:
                raise InvalidArgument(f"kinds[{i}]", "empty kind")
        sources = set(request.sources)
        with self._streams.open(context) as stream:
            sub = self._events.subscribe(request.since_sequence)
            context.add_callback(sub.close)
            try:
                while stream.active:
                    event = sub.get(timeout=1.0)
                    stream.check()
                    if event is None:
                        continue
                    if event.severity < request.min_severity:
                        continue
                    if kinds and not any(fnmatch.fnmatchcase(event.kind, k) for k in kinds):
                        continue
                    if sources and event.source not in sources:
                        continue
                    yield convert.event(event, self._events.boot_id)
            finally:
                sub.close()


def _values(snaps) -> dict:
    """What was sent: (family name, labels) -> (value, snapshot of the family)."""
    return {(s.family.name, r.labels): (r.value, s) for s in snaps for r in s.rows}


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN stays NaN: no change


def _changes(snaps, sent: dict) -> pb.StreamMetricsResponse:
    """Rows whose value differs from what was last sent, and rows now gone.
    Updates ``sent`` in place."""
    changed, seen = [], set()
    for snap in snaps:
        rows = []
        for row in snap.rows:
            key = (snap.family.name, row.labels)
            seen.add(key)
            old = sent.get(key)
            if old is None or not _same(old[0], row.value):
                rows.append(row)
                sent[key] = (row.value, snap)
        if rows:
            changed.append(FamilySnapshot(snap.family, snap.collector, rows))
    gone: dict[str, FamilySnapshot] = {}
    for key in [k for k in sent if k not in seen]:
        _, snap = sent.pop(key)
        fam = gone.setdefault(key[0], FamilySnapshot(snap.family, snap.collector))
        fam.rows.append(Row(snap.family, key[1], math.nan, math.nan, 0.0))
    return pb.StreamMetricsResponse(families=convert.families(changed),
                                    removed=convert.families(list(gone.values()), labels_only=True))
