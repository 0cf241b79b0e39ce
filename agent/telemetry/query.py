"""Selectors and snapshots: what GetMetrics, StreamMetrics and /metrics read.

Validation raises :class:`agent.errors.InvalidArgument` naming the request
field, so the API layer maps it to ``INVALID_ARGUMENT`` without knowing why.
"""
from __future__ import annotations

import enum
import fnmatch
import re
from dataclasses import dataclass, field

from agent.errors import InvalidArgument, quote
from agent.telemetry.model import FamilyDesc
from agent.telemetry.store import Row, SeriesStore

_GLOB_CHARS = frozenset("*?[")
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class MatchOp(enum.IntEnum):
    """Values match ``hostagent.v1.MatchOp`` (0 is equality)."""

    EQUAL = 1
    NOT_EQUAL = 2
    REGEX = 3
    NOT_REGEX = 4


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, actual: str) -> bool:
        if self.op is MatchOp.EQUAL:
            return actual == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return actual != self.value
        hit = self.regex.fullmatch(actual) is not None  # type: ignore[union-attr]
        return hit if self.op is MatchOp.REGEX else not hit


@dataclass(frozen=True)
class Selector:
    names: tuple[str, ...] = ()
    matchers: tuple[Matcher, ...] = ()

    def wants_family(self, name: str) -> bool:
        return not self.names or any(fnmatch.fnmatchcase(name, p) for p in self.names)

    def wants_series(self, family: FamilyDesc, labels: tuple[str, ...]) -> bool:
        if not self.matchers:
            return True
        values = dict(zip(family.label_names, labels))
        return all(m.matches(values.get(m.name, "")) for m in self.matchers)


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def compile_selector(names, matchers, field_prefix: str = "selector") -> Selector:
    """Build a selector from request values: names is a list of str, matchers
    a list of (name, op, value) with op an int (0 = equality)."""
    for i, name in enumerate(names):
        where = f"{field_prefix}.names[{i}]"
        if not name:
            raise InvalidArgument(where, "empty metric name")
        if not is_glob(name) and not _NAME_RE.match(name):
            raise InvalidArgument(where, f"invalid metric name {quote(name)}")
    compiled = []
    for i, (label, op, value) in enumerate(matchers):
        where = f"{field_prefix}.matchers[{i}]"
        if not label:
            raise InvalidArgument(f"{where}.name", "empty label name")
        try:
            mop = MatchOp(op or MatchOp.EQUAL)
        except ValueError:
            raise InvalidArgument(f"{where}.op", f"unknown operator {op}") from None
        regex = None
        if mop in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise InvalidArgument(f"{where}.value", f"invalid regular expression: {exc}") from None
        compiled.append(Matcher(label, mop, value, regex))
    return Selector(tuple(names), tuple(compiled))


@dataclass
class FamilySnapshot:
    family: FamilyDesc
    collector: str
    rows: list[Row] = field(default_factory=list)


class MetricsQuery:
    """Reads the store for the API and the exposition."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store

    def check_names(self, selector: Selector, field_prefix: str = "selector") -> None:
        """A plain (non-glob) name the agent does not know is an error."""
        known = self.store.families()
        for i, name in enumerate(selector.names):
            if not is_glob(name) and name not in known:
                raise InvalidArgument(f"{field_prefix}.names[{i}]", f"unknown metric {quote(name)}")

    def check_window(self, window: float | None, field_name: str = "window",
                     selector: Selector | None = None) -> None:
        """A window must fit the history of every selected family's collector."""
        if window is None:
            return
        if window <= 0:
            raise InvalidArgument(field_name, "must be positive")
        retention = self.store.retention
        if selector is not None:
            for name, (_, collector) in self.store.families().items():
                if selector.wants_family(name):
                    retention = min(retention, self.store.retention_of(collector))
        if window > retention:
            raise InvalidArgument(
                field_name, f"{window:g}s exceeds the retention of {retention:g}s")

    def list_families(self, selector: Selector) -> list[tuple[FamilyDesc, str]]:
        fams = self.store.families()
        return [fams[name] for name in sorted(fams) if selector.wants_family(name)]

    def snapshot(self, selector: Selector, window: float | None = None) -> list[FamilySnapshot]:
        """Selected series grouped by family, families and series sorted."""
        out: dict[str, FamilySnapshot] = {}
        for block in self.store.blocks():
            with block.lock:
                keys = list(block.keys)
            family_ok: dict[str, bool] = {}  # one glob test per family, not per series
            wanted = []
            for i, (family, labels) in enumerate(keys):
                ok = family_ok.get(family.name)
                if ok is None:
                    ok = family_ok[family.name] = selector.wants_family(family.name)
                if ok and selector.wants_series(family, labels):
                    wanted.append(i)
            if not wanted:
                continue
            for row in block.rows(wanted, window):
                snap = out.get(row.family.name)
                if snap is None:
                    snap = out[row.family.name] = FamilySnapshot(row.family, block.collector)
                snap.rows.append(row)
        result = [out[name] for name in sorted(out)]
        for snap in result:
            snap.rows.sort(key=lambda r: r.labels)
        return result


class DemandQuery(MetricsQuery):
    """The API's reads of the store as the daemon wires them: each tells
    the scheduler that someone wants values (``on_read``: GetMetrics and
    StreamMetrics check their names first) and, with a window, the history
    of the collectors whose families it selects (``on_window``, with their
    names: they check the window next)."""

    def __init__(self, store: SeriesStore, on_read, on_window) -> None:
        super().__init__(store)
        self._on_read = on_read
        self._on_window = on_window

    def check_names(self, selector, field_prefix: str = "selector") -> None:
        self._on_read()
        super().check_names(selector, field_prefix)

    def check_window(self, window, field_name: str = "window", selector=None) -> None:
        super().check_window(window, field_name, selector)
        if window is not None:
            self._on_window({collector for name, (_, collector) in self.store.families().items()
                             if selector is None or selector.wants_family(name)})
