"""Typed values that cross the telemetry pipeline: metric families and batches.

A collector describes each metric family once (:class:`FamilyDesc`) and fills a
:class:`Batch` on every run.  The batch keeps samples in flat arrays, not one
Python object per sample, so the store can hand them to the aggregation
kernels (``agent.core``) as whole columns.
"""
from __future__ import annotations

import enum
import re
from array import array
from dataclasses import dataclass, field

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MetricType(enum.IntEnum):
    """Values match ``hostagent.v1.MetricType``."""

    COUNTER = 1
    GAUGE = 2


class SeriesKind(enum.IntEnum):
    """How the aggregation kernels treat one series (the ``kind`` column)."""

    GAUGE = 0
    COUNTER32 = 1  # unsigned counter that wraps at 2**32
    COUNTER64 = 2  # unsigned counter that wraps at 2**64


@dataclass(frozen=True)
class FamilyDesc:
    """One metric family: what ListMetrics and ``# HELP``/``# TYPE`` show.

    ``name`` is the full exposition name; counters end in ``_total``.
    ``scale`` converts a counter's raw integer to the base unit (e.g. 1/USER_HZ
    for CPU ticks, 1e-6 for PSI microseconds); gauges are stored as given.
    """

    name: str
    type: MetricType
    help: str
    unit: str = ""
    label_names: tuple[str, ...] = ()
    scale: float = 1.0
    counter_bits: int = 64
    collector: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        for label in self.label_names:
            if not _LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"{self.name}: invalid label name {label!r}")
        if self.type is MetricType.COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if self.type is MetricType.GAUGE and self.name.endswith("_total"):
            raise ValueError(f"gauge {self.name!r} must not end in _total")
        if self.counter_bits not in (32, 64):
            raise ValueError(f"{self.name}: counter_bits must be 32 or 64")

    @property
    def kind(self) -> SeriesKind:
        if self.type is MetricType.GAUGE:
            return SeriesKind.GAUGE
        return SeriesKind.COUNTER32 if self.counter_bits == 32 else SeriesKind.COUNTER64


class Batch:
    """The samples of one collector run, as parallel flat arrays.

    ``keys[i]`` is ``(family, label_values)``; ``raw[i]`` holds a counter's
    unsigned integer value and ``value[i]`` a gauge's float (the other column
    is 0 for that series).  Label values are given in ``family.label_names``
    order.

    Prepared layouts (``add_prepared``) are kept as segments and copied into
    the columns only if someone reads the columns: when the store already
    holds that layout it folds each segment in directly, so a 100k-series
    collection costs no copy at all.
    """

    __slots__ = ("_keys", "_kinds", "_raw", "_value", "_scales", "fresh", "segments",
                 "_tokens", "_plain", "_size")

    def __init__(self) -> None:
        self._keys: list[tuple[FamilyDesc, tuple[str, ...]]] = []
        self._kinds = array("B")
        self._raw = array("Q")
        self._value = array("d")
        self._scales = array("d")
        self.fresh: list[int] = []  # series to treat as new: no rate from the old value
        self.segments: list[tuple[PreparedLayout, array, array]] = []  # not yet in the columns
        self._tokens: list[object] = []
        self._plain = False
        self._size = 0

    @property
    def layout(self) -> tuple[object, ...] | None:
        """Identifies the key list when it was built only from prepared
        layouts; the store then skips comparing keys one by one."""
        return None if self._plain or not self._tokens else tuple(self._tokens)

    @property
    def segments_only(self) -> bool:
        """True when every series is still in an uncopied prepared segment."""
        return not self._plain and len(self.segments) == len(self._tokens)

    def _flush(self) -> None:
        for layout, raw, value in self.segments:
            self._keys.extend(layout.keys)
            self._kinds.extend(layout.kinds)
            self._raw.extend(raw)
            self._value.extend(value)
            self._scales.extend(layout.scales)
        self.segments = []

    keys = property(lambda self: (self._flush(), self._keys)[1])
    kinds = property(lambda self: (self._flush(), self._kinds)[1])
    raw = property(lambda self: (self._flush(), self._raw)[1])
    value = property(lambda self: (self._flush(), self._value)[1])
    scales = property(lambda self: (self._flush(), self._scales)[1])

    def add_prepared(self, layout: "PreparedLayout", raw: array | None = None,
                     value: array | None = None) -> None:
        """Append a whole prepared layout at once (no Python work per series):
        ``raw`` for its counters and/or ``value`` for its gauges, in the
        layout's series order (absent means zeros).  The arrays must not be
        changed until the batch is ingested."""
        n = len(layout.keys)
        if (raw is not None and len(raw) != n) or (value is not None and len(value) != n):
            raise ValueError(f"prepared layout has {n} series; got raw={len(raw or ())} "
                             f"value={len(value or ())}")
        self.segments.append((layout, raw if raw is not None else layout.zeros_q,
                              value if value is not None else layout.zeros_d))
        self._tokens.append(layout)
        self._size += n

    def mark_fresh(self, index: int) -> None:
        """Series ``index`` restarted (an interface recreated under the same
        name): its next rate must not be computed from the old counter."""
        self.fresh.append(index)

    def __len__(self) -> int:
        return self._size

    # gauge() and counter() run once per sample of every plain collector:
    # the checks are inlined and the flush skipped when nothing is pending.
    def gauge(self, family: FamilyDesc, value: float, *labels: str) -> None:
        if family.type is not MetricType.GAUGE or len(labels) != len(family.label_names):
            self._check(family, labels, MetricType.GAUGE)
        if self.segments:
            self._flush()
        self._plain = True
        self._keys.append((family, labels))
        self._kinds.append(SeriesKind.GAUGE)
        self._raw.append(0)
        self._value.append(float(value))
        self._scales.append(1.0)
        self._size += 1

    def counter(self, family: FamilyDesc, raw: int, *labels: str) -> None:
        """Add a counter's raw unsigned value (scaled by ``family.scale``)."""
        if family.type is not MetricType.COUNTER or len(labels) != len(family.label_names):
            self._check(family, labels, MetricType.COUNTER)
        if self.segments:
            self._flush()
        self._plain = True
        self._keys.append((family, labels))
        self._kinds.append(family.kind)
        self._raw.append(int(raw) & 0xFFFFFFFFFFFFFFFF)
        self._value.append(0.0)
        self._scales.append(family.scale)
        self._size += 1

    @staticmethod
    def _check(family: FamilyDesc, labels: tuple[str, ...], expected: MetricType) -> None:
        if family.type is not expected:
            raise TypeError(f"{family.name} is a {family.type.name.lower()}")
        if len(labels) != len(family.label_names):
            raise ValueError(
                f"{family.name}: expected labels {family.label_names}, got {labels}"
            )


class PreparedLayout:
    """A fixed list of series built once and reused while it does not change
    (e.g. every counter of every interface until a link comes or goes)."""

    __slots__ = ("keys", "kinds", "scales", "_zeros_q", "_zeros_d", "fresh", "__weakref__")

    def __init__(self, keys: list[tuple[FamilyDesc, tuple[str, ...]]],
                 fresh: tuple[int, ...] = ()) -> None:
        """``fresh``: series (indices into ``keys``) that restarted, e.g. an
        interface recreated under its name; the store gives them no rate
        from the old counter the first time it sees this layout, so the mark
        cannot be lost with a discarded run."""
        for family, labels in keys:
            if len(labels) != len(family.label_names):
                raise ValueError(f"{family.name}: expected labels {family.label_names}, got {labels}")
        self.keys = list(keys)
        self.kinds = array("B", (f.kind for f, _ in keys))
        self.scales = array("d", (f.scale if f.type is MetricType.COUNTER else 1.0 for f, _ in keys))
        self._zeros_q: array | None = None
        self._zeros_d: array | None = None
        self.fresh = tuple(fresh)

    # Zeros for the column a layout does not fill (a counters-only layout has
    # no gauge values), made when first asked: only one of them ever is.
    @property
    def zeros_q(self) -> array:
        if self._zeros_q is None:
            self._zeros_q = array("Q", bytes(8 * len(self.keys)))
        return self._zeros_q

    @property
    def zeros_d(self) -> array:
        if self._zeros_d is None:
            self._zeros_d = array("d", bytes(8 * len(self.keys)))
        return self._zeros_d
