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


def load_impl(twin, extension: str):
    """The module under test: the twin for "python", else the Cython
    extension ``agent.core.<extension>``.  A missing extension skips, or fails
    when HOSTAGENT_REQUIRE_EXTENSIONS=1 (CI insists on it)."""
    import importlib
    import os

    import pytest

    if extension is None:
        return twin
    try:
        return importlib.import_module(f"agent.core.{extension}")
    except ImportError as exc:
        msg = f"Cython module {extension} not built ({exc}); run: python setup.py build_ext --inplace"
        if os.environ.get("HOSTAGENT_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            pytest.fail(msg)
        pytest.skip(msg)


def rpc_error(call):
    """(status code, details) of a call that must fail with a gRPC error."""
    import grpc
    import pytest

    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()
