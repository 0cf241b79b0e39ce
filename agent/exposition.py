"""Prometheus ``/metrics`` over HTTP: the listener, the format and
encoding negotiation (``Accept``: text 0.0.4 or OpenMetrics 1.0;
``Accept-Encoding``: gzip) and how long a scrape waits for fresh values.
The body itself is ``agent/exposition_render.py``'s (rendered from the
store's columns by the ``agent.core.expo`` kernel); docs/architecture.md
"/metrics" has the design.
"""
from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
from functools import cache
from typing import Callable

from agent.core.expo_py import format_value
from agent.exposition_render import Renderer, render
from agent.logs import get_logger
from agent.telemetry.store import SeriesStore

__all__ = ["CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "MAX_AGE", "MetricsServer", "Renderer",
           "accepts_gzip", "format_value", "render", "wait_budget", "wants_openmetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# A scrape is served values read at most this long before it (collectors
# declared on_scrape; docs/architecture.md "Fresh values for every scrape").
MAX_AGE = 0.25
# How long a scrape may wait for those runs: Prometheus' own scrape timeout
# (its X-Prometheus-Scrape-Timeout-Seconds header) less a margin to render
# and send, else DEFAULT_WAIT; each run is also bounded by its own timeout.
DEFAULT_WAIT = 5.0
SEND_MARGIN = 0.25
Refresh = Callable[[float, float], None]  # (max_age, budget): Scheduler.refresh
log = get_logger(__name__)


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


def wants_openmetrics(accept: str) -> bool:
    """True when ``Accept`` prefers application/openmetrics-text (any
    version) at least as much as text/plain, as Prometheus' default header
    does (OpenMetrics q=1, text q=0.5)."""
    best = {"application/openmetrics-text": 0.0, "text/plain": 0.0}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        if media not in best:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q == q:  # a NaN q counts as absent
            best[media] = max(best[media], q)
    om = best["application/openmetrics-text"]
    return om > 0 and om >= best["text/plain"]


def accepts_gzip(accept_encoding: str) -> bool:
    """``Accept-Encoding`` lists gzip (or ``*``) with a q above 0."""
    for part in accept_encoding.split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding.lower() not in ("gzip", "*"):
            continue
        q = next((p.partition("=")[2] for p in params if p.partition("=")[0].strip().lower() == "q"),
                 "1")
        try:
            if float(q) > 0:
                return True
        except ValueError:
            pass
    return False


@cache
def _handler_base():
    """The request handler's class, made at the first connection: http.server
    (with email, html and http.client under it) is a hundredth of a second
    that a start need not wait for."""
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        renderer: Renderer  # set on the subclass made per server
        refresh: Refresh | None

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(b'<html><body><a href="/metrics">/metrics</a></body></html>\n', "text/html")
            elif path == "/metrics":
                if self.refresh is not None:
                    self.refresh(MAX_AGE, wait_budget(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")))
                openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
                # gzip at level 1: /metrics text is mostly repeated prefixes, which
                # level 1 already shrinks 10-20x; higher levels cost several times
                # the CPU for a few percent (docs/benchmarks.md "/metrics rendering").
                gzip = accepts_gzip(self.headers.get("Accept-Encoding", ""))
                body = self.renderer.acquire(openmetrics, gzip)
                try:  # sent from the shared buffer, never copied per scraper
                    self._send(body.view(gzip), OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE,
                               gzip)
                finally:
                    self.renderer.release(body)
            else:
                self.send_error(404)

        def _send(self, data, ctype: str, gzip: bool = False) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            if gzip:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # scrapes are not log events
            pass

    return Handler


class MetricsServer:
    """The HTTP listener; ``port`` is the bound port (useful with port 0).
    ``refresh`` (the scheduler's) is called before each scrape is rendered.

    One thread sleeps in ``select`` on the listening socket and a wake-up
    pipe, without a timeout: an idle agent's listener never wakes (the
    ``socketserver.serve_forever`` it replaces polled every 0.5 s, a third
    of the idle agent's CPU); ``close()`` writes to the pipe.  Each
    connection is served on a thread of its own, as ThreadingHTTPServer
    did, so a slow scraper never holds up another."""

    def __init__(self, host: str, port: int, store: SeriesStore,
                 refresh: Refresh | None = None) -> None:
        self.renderer = Renderer(store)
        self._refresh = refresh
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
            sock.bind((host, port))
            sock.listen(128)
        except OSError as exc:  # the error names no address; the operator needs it
            sock.close()
            shown = f"[{host}]" if ":" in host else host
            raise OSError(exc.errno, f"cannot listen on {shown}:{port}: {exc.strerror}") from None
        sock.setblocking(False)  # accept after select never blocks on a client gone meanwhile
        self._sock = sock
        self.host = host
        self.port = sock.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._handler = None
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="metrics-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fd for key, _ in sel.select()}  # no timeout: sleeps until needed
                if self._wake_r in ready:
                    return
                try:
                    conn, address = self._sock.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue  # the client left before we took it
                except OSError as exc:
                    log.warning("metrics.accept_failed", error=exc.strerror or str(exc))
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        time.sleep(0.1)  # the listener stays readable: do not spin
                    continue
                threading.Thread(target=self._handle, args=(conn, address), name="metrics-scrape",
                                 daemon=True).start()

    def _handle(self, conn: socket.socket, address) -> None:
        try:
            if self._handler is None:
                self._handler = type("Handler", (_handler_base(),), {
                    "renderer": self.renderer,
                    "refresh": staticmethod(self._refresh) if self._refresh is not None else None})
            self._handler(conn, address, self)
        except OSError:
            pass  # the scraper went away mid-answer: nothing to tell anyone
        except Exception:  # noqa: BLE001 - one bad request never ends the listener
            log.exception("metrics.request_failed")
        finally:
            try:
                conn.shutdown(socket.SHUT_WR)  # the scraper reads to the end, then we close
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=2.0)
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
