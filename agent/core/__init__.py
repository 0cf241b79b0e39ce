"""Selects the aggregation kernels: the Cython extension unless it is missing
or ``HOSTAGENT_NO_EXTENSIONS=1`` forces the pure-Python twin (msgpack's way).

``IMPLEMENTATION`` says which one runs ("cython" or "python"); the daemon logs
it at start and exports it as ``hostagent_build_info{kernels=...}``.
"""
from __future__ import annotations

import os

from agent.core import kernels_py

STATS_WIDTH = kernels_py.STATS_WIDTH


def _load():
    if os.environ.get("HOSTAGENT_NO_EXTENSIONS", "") not in ("", "0"):
        return kernels_py, "python", "forced by HOSTAGENT_NO_EXTENSIONS"
    try:
        from agent.core import _kernels  # type: ignore[attr-defined]
    except ImportError as exc:
        return kernels_py, "python", f"extension not built: {exc}"
    return _kernels, "cython", ""


kernels, IMPLEMENTATION, FALLBACK_REASON = _load()
ingest_column = kernels.ingest_column
window_stats = kernels.window_stats
encode_samples = kernels.encode_samples

__all__ = ["IMPLEMENTATION", "FALLBACK_REASON", "STATS_WIDTH", "ingest_column",
           "window_stats", "encode_samples", "kernels", "kernels_py"]
