"""Prometheus ``/metrics`` in the text exposition format (0.0.4), rendered
from the store's columns.

prometheus_client's own exposition builds a Python object per sample: 1.3 s
per scrape at 100k series (a hypervisor with 4096 interfaces has 127k), more
CPU than node_exporter spends.  Here each series' ``name{labels} `` prefix and
each family's HELP/TYPE lines are rendered once per layout and cached, so a
scrape only formats the values.  ``tests/test_exposition.py`` holds the
output to what prometheus_client renders for the same samples, and a real
Prometheus scrapes it in the integration tests.
"""
from __future__ import annotations

import gzip
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from agent.telemetry.model import MetricType
from agent.telemetry.store import SeriesBlock, SeriesStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A scrape is served values read at most this long before it (collectors
# declared on_scrape; docs/architecture.md "Fresh values for every scrape").
MAX_AGE = 0.25
# How long a scrape may wait for those runs: Prometheus' own scrape timeout
# (its X-Prometheus-Scrape-Timeout-Seconds header) less a margin to render
# and send, else DEFAULT_WAIT; each run is also bounded by its own timeout.
DEFAULT_WAIT = 5.0
SEND_MARGIN = 0.25
Refresh = Callable[[float, float], None]  # (max_age, budget): Scheduler.refresh


def wait_budget(header: str | None) -> float:
    """Seconds a scrape may wait for fresh values, from Prometheus' header."""
    try:
        timeout = float(header) if header else DEFAULT_WAIT
    except ValueError:
        timeout = DEFAULT_WAIT
    if not timeout > 0:  # NaN, zero, negative
        timeout = DEFAULT_WAIT
    timeout = min(timeout, DEFAULT_WAIT)
    return max(timeout - SEND_MARGIN, timeout / 2)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(v: float) -> str:
    if v - v == 0.0:  # finite
        return repr(v)
    if v != v:
        return "NaN"
    return "+Inf" if v > 0 else "-Inf"


def _prepare(block: SeriesBlock) -> list[tuple[str, str, list[int], list[str]]]:
    """Per family of the block: (name, HELP/TYPE lines, series, line prefixes)."""
    out = []
    for family, idx in block.groups():
        kind = "counter" if family.type is MetricType.COUNTER else "gauge"
        header = f"# HELP {family.name} {_escape_help(family.help)}\n# TYPE {family.name} {kind}\n"
        prefixes = []
        for i in idx:
            labels = block.keys[i][1]
            if labels:
                pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in zip(family.label_names, labels))
                prefixes.append(f"{family.name}{{{pairs}}} ")
            else:
                prefixes.append(f"{family.name} ")
        out.append((family.name, header, list(idx), prefixes))
    return out


def render(store: SeriesStore) -> bytes:
    """Every visible series; NaN values (no sample yet) are left out."""
    parts: list[str] = []
    seen: set[str] = set()
    for block in store.blocks():
        with block.lock:
            rendered = block.layout_cache.get("rendered")
            if rendered is None or rendered[0] != block.version:
                # Not ingested since the last scrape (collectors that keep their
                # interval): the text is reused.
                rendered = block.layout_cache["rendered"] = (block.version, _render_block(block))
        for name, text in rendered[1]:
            if name not in seen:  # one family per name (two collectors exporting it: first wins)
                seen.add(name)
                parts.append(text)
    return "".join(parts).encode()


def _render_block(block: SeriesBlock) -> list[tuple[str, str]]:
    """(family name, its text) for each family of the block with a value.
    Call with the block's lock held."""
    prepared = block.layout_cache.get("text")
    if prepared is None:
        prepared = block.layout_cache["text"] = _prepare(block)
    values = block.value
    out = []
    for name, header, idx, prefixes in prepared:
        # repr() is format_value() for finite values; NaN (no sample) is left out
        lines = [p + (repr(v) if v - v == 0.0 else format_value(v))
                 for p, v in zip(prefixes, [values[i] for i in idx]) if v == v]
        if lines:
            out.append((name, header + "\n".join(lines) + "\n"))
    return out


class _Handler(BaseHTTPRequestHandler):
    store: SeriesStore  # set on the subclass made per server
    refresh: Refresh | None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/":
            body, ctype = b'<html><body><a href="/metrics">/metrics</a></body></html>\n', "text/html"
        elif path == "/metrics":
            if self.refresh is not None:
                self.refresh(MAX_AGE, wait_budget(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")))
            body, ctype = render(self.store), CONTENT_TYPE
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # scrapes are not log events
        pass


class MetricsServer:
    """The HTTP listener; ``port`` is the bound port (useful with port 0).
    ``refresh`` (the scheduler's) is called before each scrape is rendered."""

    def __init__(self, host: str, port: int, store: SeriesStore,
                 refresh: Refresh | None = None) -> None:
        handler = type("Handler", (_Handler,), {
            "store": store, "refresh": staticmethod(refresh) if refresh is not None else None})
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,),
                            {"address_family": family, "daemon_threads": True})
        try:
            self._httpd = server_class((host, port), handler)
        except OSError as exc:  # http.server's error names no address; the operator needs it
            shown = f"[{host}]" if ":" in host else host
            raise OSError(exc.errno, f"cannot listen on {shown}:{port}: {exc.strerror}") from None
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
