"""Turn a collector's Batch into plain dicts that tests can compare."""
from __future__ import annotations

from agent.telemetry.model import Batch, FamilyDesc, MetricType

SeriesKey = tuple[str, tuple[str, ...]]


def batch_values(batch: Batch) -> dict[SeriesKey, float]:
    """``{(name, label values): value in base units}``; a counter's value is raw * scale.

    Fails on a duplicate series, which the store would reject.
    """
    out: dict[SeriesKey, float] = {}
    for i, (family, labels) in enumerate(batch.keys):
        key = (family.name, labels)
        assert key not in out, f"duplicate series {key}"
        if family.type is MetricType.COUNTER:
            out[key] = batch.raw[i] * family.scale
        else:
            out[key] = batch.value[i]
    return out


def batch_raw(batch: Batch) -> dict[SeriesKey, int]:
    """``{(name, label values): raw integer}`` for the counters only."""
    return {(f.name, labels): batch.raw[i] for i, (f, labels) in enumerate(batch.keys)
            if f.type is MetricType.COUNTER}


def batch_families(batch: Batch) -> dict[str, FamilyDesc]:
    return {family.name: family for family, _ in batch.keys}
