"""Prometheus ``/metrics``: the store rendered by prometheus_client's own
exposition code (HELP/TYPE, escaping, gzip, OpenMetrics negotiation), on its
HTTP server.  The agent owns its registry; nothing uses the global one."""
from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agent.telemetry.model import MetricType
from agent.telemetry.query import MetricsQuery, Selector

_ALL = Selector()


class StoreCollector:
    """A prometheus_client custom collector over the series store."""

    def __init__(self, query: MetricsQuery) -> None:
        self._query = query

    def collect(self):
        for snap in self._query.snapshot(_ALL):
            fam = snap.family
            cls = CounterMetricFamily if fam.type is MetricType.COUNTER else GaugeMetricFamily
            metric = cls(fam.name, fam.help, labels=fam.label_names)
            for row in snap.rows:
                if not math.isnan(row.value):
                    metric.add_metric(row.labels, row.value)
            yield metric


def make_registry(query: MetricsQuery) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(query))
    return registry


class MetricsServer:
    """The HTTP listener; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = self._httpd.server_address[1]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
