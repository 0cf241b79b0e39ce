"""The series store: latest values, rates and bounded history of every series.

One :class:`SeriesBlock` per collector holds that collector's series as
parallel columns (``array.array``) and a ring of ``cap`` history slots per
series, so a whole collection is folded in by one kernel call
(``agent.core.ingest_column``) and window statistics are one more
(``agent.core.window_stats``).  History keeps gauge values and counter rates.

Memory is ``8 * cap`` bytes per series for history plus about 40 bytes of
columns; ``cap`` is ``retention / interval + 1`` (181 slots for the defaults
15 min at 5 s), so 10k series take about 15 MB.  History is kept only where
it is wanted (:meth:`SeriesStore.set_history`, driven by windowed reads
through ``Scheduler.want_history``): a block without it has one slot, the
latest sample, which is all /metrics and a GetMetrics without a window read
(4096 interfaces: 121 MB of netdev history is not kept while nobody asks
for a window over it).
"""
from __future__ import annotations

import math
import threading
import time
from array import array
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from agent import core
from agent.telemetry.model import Batch, FamilyDesc

Key = tuple[FamilyDesc, tuple[str, ...]]


def history_slots(retention: float, interval: float) -> int:
    return max(2, int(math.ceil(retention / interval)) + 1)


@dataclass(frozen=True)
class Row:
    """One series as read out of the store."""

    family: FamilyDesc
    labels: tuple[str, ...]
    value: float
    rate: float  # NaN for gauges and first counter samples
    time: float  # wall-clock time of the collection
    stats: tuple[float, ...] | None = None  # min max mean last p50 p90 p99 count


class SeriesBlock:
    """All series of one collector.  Thread-safe; ingest and reads take ``lock``."""

    def __init__(self, collector: str, cap: int, history: bool = True) -> None:
        self.collector = collector
        self.full_cap = cap  # slots while history is kept
        self.history = history
        cap = cap if history else 1
        self.cap = cap
        self.lock = threading.Lock()
        # No key -> position map is kept (at 164k series it held 11 MB): only
        # a change of layout needs one, and builds it then (_relayout).
        self.keys: list[Key] = []
        self.kinds = array("B")
        self.prev_raw = array("Q")
        self.has_prev = array("B")
        self.value = array("d")
        self.rate = array("d")
        self.hist = array("d")
        self.ts = array("d", [-math.inf]) * cap  # monotonic time of each slot
        self.head = 0  # next slot to write
        self.count = 0  # slots written, at most cap
        self.last_wall = 0.0
        self.last_mono = -math.inf
        self.resets_total = 0
        self.visible = True  # false while the collector is failing: series go stale
        self.version = 0  # bumped at every ingest: what /metrics rendered is still valid while equal
        # Derived from the layout (the keys); cleared whenever it changes.
        self.layout_cache: dict[str, object] = {}
        self.layout: tuple[object, ...] | None = None  # Batch.layout of the last ingest

    def __len__(self) -> int:
        return len(self.keys)

    def ingest(self, batch: Batch, wall: float, mono: float, full: bool = True) -> None:
        """Fold one collection in.  ``full=False`` (a run a scrape asked for
        between two scheduled ones) only replaces the values: no history
        slot, no rate, no counter state, so history and rates keep the
        collector's interval.  A light batch whose series changed is
        ingested in full."""
        with self.lock:
            self.version += 1
            layout = batch.layout
            same = layout is not None and layout == self.layout
            if not full and self.count and not batch.fresh and (same or batch.keys == self.keys):
                self._ingest_values(batch, same)
                self.last_wall = wall
                return
            if not same:
                if batch.keys != self.keys:
                    self._relayout(batch)
                self.layout = layout
                off = 0
                for prepared in layout or ():  # restarted series of a layout seen for the first time
                    for i in prepared.fresh:
                        self.has_prev[off + i] = 0
                    off += len(prepared.keys)
            for i in batch.fresh:
                self.has_prev[i] = 0
            dt = mono - self.last_mono if self.count else 0.0
            col = self.head
            if same and batch.segments_only:
                self._ingest_segments(batch, dt, col)
            else:
                self.resets_total += core.ingest_column(
                    batch.kinds, batch.raw, batch.value, batch.scales, self.prev_raw,
                    self.has_prev, dt, self.hist, self.cap, col, self.value, self.rate)
            self.ts[col] = mono
            self.head = (col + 1) % self.cap
            self.count = min(self.count + 1, self.cap)
            self.last_wall, self.last_mono = wall, mono

    def _ingest_segments(self, batch: Batch, dt: float, col: int) -> None:
        """The layout is unchanged: fold each prepared segment straight into
        its slice of the columns, without copying the batch first."""
        cap, off = self.cap, 0
        prev, has, hist = memoryview(self.prev_raw), memoryview(self.has_prev), memoryview(self.hist)
        value, rate = memoryview(self.value), memoryview(self.rate)
        for layout, raw, vals in batch.segments:
            end = off + len(layout.keys)
            self.resets_total += core.ingest_column(
                layout.kinds, raw, vals, layout.scales, prev[off:end], has[off:end], dt,
                hist[off * cap:end * cap], cap, col, value[off:end], rate[off:end])
            off = end

    def _ingest_values(self, batch: Batch, same: bool) -> None:
        """Values only, by the same kernel on scratch state: no previous
        sample (so no rate), a one-slot history that is thrown away."""
        def values(kinds, raw, vals, scales, out) -> None:
            n = len(kinds)
            core.ingest_column(kinds, raw, vals, scales, array("Q", bytes(8 * n)),
                               array("B", bytes(n)), 0.0, array("d", bytes(8 * n)), 1, 0,
                               out, array("d", bytes(8 * n)))
        if same and batch.segments_only:
            value, off = memoryview(self.value), 0
            for layout, raw, vals in batch.segments:
                end = off + len(layout.keys)
                values(layout.kinds, raw, vals, layout.scales, value[off:end])
                off = end
        else:
            values(batch.kinds, batch.raw, batch.value, batch.scales, self.value)

    def _relayout(self, batch: Batch) -> None:
        """The set of series changed: keep the state of series that stayed."""
        n, cap = len(batch.keys), self.cap
        if len(set(batch.keys)) != n:
            seen: set[Key] = set()
            key = next(k for k in batch.keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            raise ValueError(f"{self.collector}: duplicate series {key[0].name}{key[1]}")
        old_index = {key: i for i, key in enumerate(self.keys)}
        prev_raw = array("Q", bytes(8 * n))
        has_prev = array("B", bytes(n))
        hist = array("d", [math.nan]) * (n * cap)
        for i, key in enumerate(batch.keys):
            old = old_index.get(key)
            if old is not None and self.kinds[old] == batch.kinds[i]:
                prev_raw[i] = self.prev_raw[old]
                has_prev[i] = self.has_prev[old]
                hist[i * cap:(i + 1) * cap] = self.hist[old * cap:(old + 1) * cap]
        self.keys = list(batch.keys)
        self.layout_cache = {}
        self.kinds = array("B", batch.kinds)
        self.prev_raw, self.has_prev, self.hist = prev_raw, has_prev, hist
        self.value = array("d", bytes(8 * n))
        self.rate = array("d", bytes(8 * n))

    def resize(self, cap: int) -> None:
        """New retention or interval: keep the newest ``min(count, cap)`` slots."""
        with self.lock:
            self.full_cap = cap
            self._resize(cap if self.history else 1)

    def set_history(self, on: bool) -> None:
        """Keep history (``full_cap`` slots per series) or only the latest
        sample (one slot).  Turning it on starts from that one sample; turning
        it off frees the rest."""
        with self.lock:
            if on != self.history:
                self.history = on
                self._resize(self.full_cap if on else 1)

    def _resize(self, cap: int) -> None:
        if cap == self.cap:
            return
        keep = min(self.count, cap)
        old, old_cap = self.hist, self.cap
        hist = array("d", [math.nan]) * (len(self.keys) * cap)
        ts = array("d", [-math.inf]) * cap
        # One strided copy per kept slot (series i's slot j is at i*cap + j):
        # a few slice copies, not one Python step per series and slot.
        for j in range(keep):
            slot = (self.head - keep + j) % old_cap
            hist[j::cap] = old[slot::old_cap]
            ts[j] = self.ts[slot]
        self.hist, self.ts, self.cap = hist, ts, cap
        self.count, self.head = keep, keep % cap

    def groups(self) -> list[tuple[FamilyDesc, array]]:
        """Series indices per family (families by name, series by labels),
        cached per layout.  Call with ``lock`` held."""
        groups = self.layout_cache.get("groups")
        if groups is None:
            by_family: dict[str, tuple[FamilyDesc, list[int]]] = {}
            for i, (family, _) in enumerate(self.keys):
                by_family.setdefault(family.name, (family, []))[1].append(i)
            keys = self.keys
            groups = self.layout_cache["groups"] = [
                (family, array("q", sorted(idx, key=lambda i: keys[i][1])))
                for _, (family, idx) in sorted(by_family.items())]
        return groups  # type: ignore[return-value]

    def window_stats(self, window: float, now_mono: float | None = None) -> array:
        """``STATS_WIDTH`` values per series over the last ``window`` seconds.
        Call with ``lock`` held."""
        now = time.monotonic() if now_mono is None else now_mono
        stats = array("d", bytes(8 * core.STATS_WIDTH * len(self.keys)))
        if self.keys:
            core.window_stats(self.hist, self.cap, len(self.keys), self.ts,
                              self.head, self.count, now - window, stats)
        return stats

    def rows(self, wanted: Iterable[int] | None = None, window: float | None = None,
             now_mono: float | None = None) -> list[Row]:
        """Rows of the given series (all when ``wanted`` is None), with window
        statistics over the last ``window`` seconds when asked."""
        with self.lock:
            idx = range(len(self.keys)) if wanted is None else list(wanted)
            stats = self.window_stats(window, now_mono) if window is not None else None
            w = core.STATS_WIDTH
            out = []
            for i in idx:
                family, labels = self.keys[i]
                st = tuple(stats[i * w:(i + 1) * w]) if stats is not None else None
                out.append(Row(family, labels, self.value[i], self.rate[i], self.last_wall, st))
            return out


class SeriesStore:
    """Blocks by collector name.  ``retention`` is seconds of history kept."""

    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._lock = threading.Lock()
        self._blocks: dict[str, SeriesBlock] = {}
        self._intervals: dict[str, float] = {}
        self._retentions: dict[str, float] = {}  # per-collector overrides
        self._no_history: set[str] = set()  # collectors whose history nobody wants now
        # families(): the visible blocks' layouts it was built from, and it
        self._families: tuple[list, Mapping[str, tuple[FamilyDesc, str]]] | None = None

    def retention_of(self, collector: str) -> float:
        return self._retentions.get(collector, self.retention)

    def configure(self, collector: str, interval: float, retention: float | None = None,
                  own_retention: float | None | object = ...) -> None:
        """Create or resize a collector's block for its interval.  ``retention``
        changes the default for all; ``own_retention`` overrides it for this
        collector (netdev at 1 s keeps less history per series)."""
        if retention is not None:
            self.retention = retention
        with self._lock:
            self._intervals[collector] = interval
            if own_retention is None:
                self._retentions.pop(collector, None)
            elif own_retention is not ...:  # ... keeps what was configured
                self._retentions[collector] = own_retention  # type: ignore[assignment]
            cap = history_slots(self.retention_of(collector), interval)
            block = self._blocks.get(collector)
            if block is None:
                self._blocks[collector] = SeriesBlock(collector, cap, collector not in self._no_history)
                return
        block.resize(cap)

    def set_history(self, collector: str, on: bool) -> None:
        """Keep a collector's history (the default) or only its latest values
        (history on demand: the scheduler turns it on while someone reads
        the API).  Remembered for a block made later."""
        with self._lock:
            if on:
                self._no_history.discard(collector)
            else:
                self._no_history.add(collector)
            block = self._blocks.get(collector)
        if block is not None:
            block.set_history(on)

    def ingest(self, collector: str, batch: Batch, wall: float | None = None,
               mono: float | None = None, full: bool = True) -> None:
        with self._lock:
            block = self._blocks.get(collector)
            if block is None:
                interval = self._intervals.get(collector, 5.0)
                block = self._blocks[collector] = SeriesBlock(
                    collector, history_slots(self.retention_of(collector), interval),
                    collector not in self._no_history)
        block.ingest(batch, time.time() if wall is None else wall,
                     time.monotonic() if mono is None else mono, full)
        block.visible = True

    def set_visible(self, collector: str, visible: bool) -> None:
        block = self._blocks.get(collector)
        if block is not None:
            block.visible = visible

    def drop(self, collector: str, forget: bool = False) -> None:
        """Remove a collector's series; ``forget`` also its interval and
        retention (it was removed from the config, not just found empty)."""
        with self._lock:
            self._blocks.pop(collector, None)
            if forget:
                self._intervals.pop(collector, None)
                self._retentions.pop(collector, None)
                self._no_history.discard(collector)

    def blocks(self) -> Sequence[SeriesBlock]:
        """Visible blocks, in collector-name order."""
        with self._lock:
            return [b for _, b in sorted(self._blocks.items()) if b.visible]

    def series_count(self) -> int:
        """Series as /metrics serves them (``agent.exposition.render``): of
        visible blocks only, one family per name (the first block's), and
        with a value (not NaN: an unreadable sensor).  ``hostagent_series``
        and ``hostagent status`` show this number."""
        count, seen = 0, set()
        for block in self.blocks():
            with block.lock:
                groups = block.groups()
                values = block.value
                count += len(values) - sum(map(math.isnan, values))
                for family, idx in groups:
                    if family.name in seen:  # another block's family: not served from here
                        count -= sum(1 for i in idx if values[i] == values[i])
                seen.update(family.name for family, _ in groups)
        return count

    def families(self) -> Mapping[str, tuple[FamilyDesc, str]]:
        """Family name -> (description, collector name), over visible blocks.
        Read-only: the same mapping is returned until a block's layout (or
        the set of visible blocks) changes."""
        blocks = self.blocks()
        cached = self._families
        if cached is not None and len(cached[0]) == len(blocks) and all(
                b is block and cache is block.layout_cache for (b, cache), block in zip(cached[0], blocks)):
            return cached[1]
        key = [(block, block.layout_cache) for block in blocks]
        out: dict[str, tuple[FamilyDesc, str]] = {}
        for block in blocks:
            for family in self._block_families(block):
                out.setdefault(family.name, (family, block.collector))
        result = MappingProxyType(out)
        self._families = (key, result)
        return result

    def family_names_except(self, collector: str) -> set[str]:
        """Names of the families every other collector holds, whichever block
        :meth:`families` names as a family's owner: a textfile that published a
        name first must still see that a collector serves it too."""
        return {family.name for block in self.blocks() if block.collector != collector
                for family in self._block_families(block)}

    @staticmethod
    def _block_families(block) -> list[FamilyDesc]:
        with block.lock:
            # Per layout: every GetMetrics checks its names against this,
            # and walking every key (127k on a big host) took milliseconds.
            families = block.layout_cache.get("families")
            if families is None:
                families = block.layout_cache["families"] = [f for f, _ in block.groups()]
        return families  # type: ignore[return-value]
