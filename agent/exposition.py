"""Prometheus ``/metrics`` in the text exposition format (0.0.4), or
OpenMetrics 1.0 when the scraper's ``Accept`` asks for it, rendered from the
store's columns by the ``agent.core.expo`` kernel (``ext/_expo.pyx``, its
twin ``agent/core/expo_py.py``).

Per block and layout, each series' ``name{labels} `` prefix is laid out once
in a flat blob, and each family's HELP/TYPE lines in both formats; a render
copies the block's value column under its lock and formats the series lines
outside it, into a buffer kept for the block, once per collection whatever
the formats asked.  One body per generation (the visible blocks and their
versions) and format is assembled into a reused buffer and shared by every
scraper asking meanwhile; its gzip too.  docs/architecture.md "/metrics" has
the design; ``tests/test_exposition.py`` holds the text to prometheus_client's
and ``tests/test_exposition_kernel.py`` the kernel to its twin.
"""
from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
import zlib
from array import array
from dataclasses import dataclass
from functools import cache
from typing import Callable

from agent import core
from agent.core.expo_py import GZIP_LEVEL, family_name, format_value, header, prefix
from agent.logs import get_logger
from agent.telemetry.model import MetricType
from agent.telemetry.store import SeriesBlock, SeriesStore

__all__ = ["CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "MAX_AGE", "MetricsServer", "Renderer",
           "accepts_gzip", "format_value", "render", "wait_budget", "wants_openmetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_EOF = b"# EOF\n"
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


@dataclass(frozen=True)
class _Headers:
    """One format's HELP/TYPE lines of a layout, per family."""

    names: list[str]  # family names as served (OpenMetrics: counters without _total)
    name_set: frozenset[str]
    text: list[bytes]


@dataclass(frozen=True)
class _Layout:
    """One block layout as render_families takes it: series lines only (no
    headers: each format's are put in while the body is assembled, so one
    render serves both formats)."""

    order: array
    fam_start: array
    prefixes: bytearray  # never changed once made
    prefix_off: array
    no_headers: array  # len(families) + 1 zeros
    bound: int  # bytes a render may write
    headers: tuple[_Headers, _Headers]  # text format, OpenMetrics


def _prepare(keys, groups) -> _Layout:
    # Appended to one bytearray rather than joined from a list: at 8192
    # interfaces a list of 330k small bytes objects was the start's peak RSS.
    order, fam_start, off, prefixes = array("q"), array("q", [0]), array("q", [0]), bytearray()
    for family, idx in groups:
        for i in idx:
            prefixes += prefix(family.name, family.label_names, keys[i][1])
            off.append(len(prefixes))
        order.extend(idx)
        fam_start.append(len(order))
    headers = []
    for openmetrics in (False, True):
        names, texts = [], []
        for family, _ in groups:
            counter = family.type is MetricType.COUNTER
            names.append(family_name(family.name, counter, openmetrics))
            texts.append(header(family.name, counter, family.help, openmetrics))
        headers.append(_Headers(names, frozenset(names), texts))
    return _Layout(order, fam_start, prefixes, off, array("q", bytes(8 * (len(groups) + 1))),
                   core.expo.render_bound(0, len(prefixes), len(order)), (headers[0], headers[1]))


# A block of more series than this is not kept rendered: each family is
# rendered into one small scratch buffer as the body is made, and goes
# straight into the gzip stream (or the plain body).  A kept render holds
# every series' prefix a second time (86 bytes a series at 4096 interfaces,
# where netdev and netclass re-render at every scrape anyway); a small block
# (a 5 s collector scraped every second) keeps its render for reuse.
STREAM_ABOVE = 4096
_NO_HEADER = array("q", [0, 0])


class _BlockText:
    """A block's values, copied under its lock at a collection, and (for a
    block of at most STREAM_ABOVE series) its last render, series lines per
    family, in a buffer reused by the next."""

    def __init__(self, block: SeriesBlock) -> None:
        self.block = block
        self.version = -1
        self.cache: dict | None = None  # the block's layout_cache it was rendered for
        self.layout: _Layout | None = None
        self.values = array("d")  # the value column, copied under the block's lock
        self.buf = bytearray()
        self.spans = array("q")  # family f's lines: buf[spans[f]:spans[f + 1]]
        self.streamed = False  # rendered family by family when a body is made

    def update(self) -> None:
        block = self.block
        with block.lock:  # copy, then format without the lock
            if self.version == block.version and self.cache is block.layout_cache:
                return
            cache, keys, version = block.layout_cache, block.keys, block.version
            layout = cache.get("expo")
            groups = block.groups() if layout is None else None
            if len(self.values) == len(block.value):
                memoryview(self.values)[:] = memoryview(block.value)
            else:
                self.values = array("d", block.value)
        if layout is None:
            layout = cache["expo"] = _prepare(keys, groups)
        self.streamed = len(layout.order) > STREAM_ABOVE
        if self.streamed:
            self.buf, self.spans = bytearray(), array("q")
        else:
            if len(self.buf) < layout.bound:  # grows with the layout, never per scrape
                self.buf = bytearray(layout.bound)
            if len(self.spans) != len(layout.no_headers):
                self.spans = array("q", bytes(8 * len(layout.no_headers)))
            core.expo.render_families(self.values, layout.order, layout.fam_start, layout.prefixes,
                                      layout.prefix_off, b"", layout.no_headers, self.buf, self.spans)
        self.version, self.cache, self.layout = version, cache, layout

    def family(self, f: int, scratch: "_Scratch") -> tuple[bytearray, int, int]:
        """Family ``f``'s lines as (buffer, start, end): the kept render's,
        or rendered now into ``scratch`` (valid until its next use)."""
        if not self.streamed:
            return self.buf, self.spans[f], self.spans[f + 1]
        lay = self.layout
        a, b = lay.fam_start[f], lay.fam_start[f + 1]
        need = core.expo.render_bound(0, lay.prefix_off[b] - lay.prefix_off[a], b - a)
        if len(scratch.buf) < need:
            scratch.buf = bytearray(need)
        scratch.fam_start[1] = b - a
        # The prefix offsets stay absolute: the kernel reads the whole blob.
        core.expo.render_families(self.values, memoryview(lay.order)[a:b], scratch.fam_start,
                                  lay.prefixes, memoryview(lay.prefix_off)[a:b + 1], b"",
                                  _NO_HEADER, scratch.buf, scratch.spans)
        return scratch.buf, scratch.spans[0], scratch.spans[1]


class _Scratch:
    """The one buffer streamed blocks' families are rendered into."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.fam_start = array("q", [0, 0])
        self.spans = array("q", [0, 0])


class Body:
    """One generation's /metrics body in one format; scrapers hold it
    between :meth:`Renderer.acquire` and :meth:`Renderer.release`.  It is
    made in the encoding a scraper asks for: gzip (what Prometheus asks
    for) is compressed as the families are written, and the plain text
    exists only if someone takes it plain."""

    def __init__(self, openmetrics: bool) -> None:
        self.openmetrics = openmetrics
        self.buf = bytearray()
        self.size = -1  # plain text not made yet
        self.gz = bytearray()
        self.gz_size = -1  # gzip not made yet
        # The blocks' texts of this generation: valid while this body is the
        # current one (the next generation rewrites them), so read only
        # under the renderer's lock.
        self.texts: list[_BlockText] = []
        self.key: list[tuple[SeriesBlock, int]] = []
        self.users = 0

    def view(self, gzip: bool = False) -> memoryview:
        size = self.gz_size if gzip else self.size
        if size < 0:
            raise ValueError("acquire the body in the form it is read")
        return memoryview(self.gz if gzip else self.buf)[:size]


class _Out:
    """Bytes appended to a buffer a body keeps (grown by half when full:
    a new buffer, since a finished scraper's memoryview may still hold the
    old one), optionally through a gzip stream."""

    def __init__(self, buf: bytearray, gzip: bool) -> None:
        self.buf, self.pos = buf, 0
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31, 8, zlib.Z_DEFAULT_STRATEGY) if gzip else None

    def write(self, data, a: int, b: int) -> None:
        if self._z is not None:
            self._put(self._z.compress(memoryview(data)[a:b]))
        else:
            self._put(memoryview(data)[a:b])

    def _put(self, chunk) -> None:
        end = self.pos + len(chunk)
        if end > len(self.buf):
            grown = bytearray(max(end, len(self.buf) * 3 // 2, 4096))
            grown[:self.pos] = memoryview(self.buf)[:self.pos]
            self.buf = grown
        self.buf[self.pos:end] = chunk
        self.pos = end

    def close(self) -> int:
        if self._z is not None:
            self._put(self._z.flush(zlib.Z_FINISH))
        return self.pos


class Renderer:
    """Bodies of ``/metrics`` for one store: one render per block and
    collection (a streamed block's: per body made), one body per generation
    and format, shared by all scrapers (``renders`` counts the bodies)."""

    def __init__(self, store: SeriesStore) -> None:
        self._store = store
        self._lock = threading.Lock()  # one render at a time; the others wait and share it
        self._texts: dict[int, _BlockText] = {}  # by id(block), the block checked on use
        self._current: dict[bool, Body] = {}
        self._spare: dict[bool, list[Body]] = {False: [], True: []}
        self._scratch = _Scratch()
        self.renders = 0

    def acquire(self, openmetrics: bool = False, gzip: bool = False) -> Body:
        blocks = self._store.blocks()
        with self._lock:
            body = self._current.get(openmetrics)
            if body is None or not _same(body.key, blocks):
                body = self._new_body(blocks, openmetrics)
            if (body.gz_size if gzip else body.size) < 0:
                self._write(body, gzip)
            body.users += 1
            return body

    def release(self, body: Body) -> None:
        with self._lock:
            body.users -= 1
            self._retire(body)

    def _retire(self, body: Body) -> None:
        """Keep one body no scraper holds for the next render's buffers."""
        openmetrics = body.openmetrics
        if body.users == 0 and self._current.get(openmetrics) is not body:
            spare = self._spare[openmetrics]
            if not spare:
                spare.append(body)

    def _new_body(self, blocks: list[SeriesBlock], openmetrics: bool) -> Body:
        texts = []
        for block in blocks:
            text = self._texts.get(id(block))
            if text is None or text.block is not block:
                text = self._texts[id(block)] = _BlockText(block)
            text.update()  # a no-op when the other format already rendered this version
            texts.append(text)
        live = {id(b) for b in blocks}
        for key in [k for k in self._texts if k not in live]:
            del self._texts[key]
        old = self._current.get(openmetrics)
        spare = self._spare[openmetrics]
        if old is not None and old.users == 0:  # nobody is sending it: overwrite in place
            body = old
        else:
            body = spare.pop() if spare else Body(openmetrics)
        body.texts = texts
        body.size = body.gz_size = -1
        body.key = [(text.block, text.version) for text in texts]
        self._current[openmetrics] = body
        if old is not None and old is not body:
            old.texts = []
            self._retire(old)
        self.renders += 1
        return body

    def _write(self, body: Body, gzip: bool) -> None:
        """The body's families, headers first, into its plain or gzip buffer."""
        out = _Out(body.gz if gzip else body.buf, gzip)
        seen: set[str] = set()
        for text in body.texts:  # one family per name: the first block's (with a value) wins
            heads = text.layout.headers[body.openmetrics]
            fresh = seen.isdisjoint(heads.name_set)
            for f, name in enumerate(heads.names):
                if not fresh and name in seen:
                    continue
                buf, a, b = text.family(f, self._scratch)
                if a == b:  # no value: no family
                    continue
                seen.add(name)
                out.write(heads.text[f], 0, len(heads.text[f]))
                out.write(buf, a, b)
        if body.openmetrics:
            out.write(_EOF, 0, len(_EOF))
        size = out.close()
        if gzip:
            body.gz, body.gz_size = out.buf, size
        else:
            body.buf, body.size = out.buf, size


def _same(key: list[tuple[SeriesBlock, int]], blocks: list[SeriesBlock]) -> bool:
    """Is a body of ``key`` still the render of these blocks?  (A version
    read here without the lock may run ahead of an ingest in progress: it
    then differs, and the render waits on the lock for the ingest.)"""
    return len(key) == len(blocks) and all(
        k is b and v == b.version for (k, v), b in zip(key, blocks))


def render(store: SeriesStore, openmetrics: bool = False) -> bytes:
    """Every visible series, rendered afresh (no cache); NaN values (no
    sample yet) are left out.  The server uses a :class:`Renderer`."""
    renderer = Renderer(store)
    body = renderer.acquire(openmetrics)
    try:
        return bytes(body.view())
    finally:
        renderer.release(body)


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
