"""The ``/metrics`` body: the store's blocks rendered in the text format
(0.0.4) or OpenMetrics 1.0 by the ``agent.core.expo`` kernel
(``ext/_expo.pyx``, its twin ``agent/core/expo_py.py``), shared by every
scraper of a collection, plain or gzip.

Per block and layout, each series' ``name{labels} `` prefix is laid out once
in a flat blob, and each family's HELP/TYPE lines in both formats; a render
copies the block's value column under its lock and formats the series lines
outside it.  A block of at most ``STREAM_ABOVE`` series keeps its render in
a buffer for the next body; a larger one is rendered family by family into
one scratch buffer as a body is written.  One body per generation (the
visible blocks and their versions) and format, made in the encoding asked
(gzip as the families are written), shared by every scraper asking
meanwhile.  docs/architecture.md "/metrics" has the design;
``tests/test_exposition.py`` holds the text to prometheus_client's and
``tests/test_exposition_kernel.py`` the kernel to its twin.  The HTTP side
is ``agent/exposition.py``.
"""
from __future__ import annotations

import threading
import zlib
from array import array
from dataclasses import dataclass

from agent import core
from agent.core.expo_py import GZIP_LEVEL, family_name, header, prefix
from agent.telemetry.model import MetricType
from agent.telemetry.store import SeriesBlock, SeriesStore

__all__ = ["Body", "Renderer", "STREAM_ABOVE", "render"]

_EOF = b"# EOF\n"


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
