"""Selects the Cython kernels: each extension unless it is missing or
``HOSTAGENT_NO_EXTENSIONS=1`` forces its pure-Python twin (msgpack's way).

Two pairs: the aggregation kernels (``_kernels`` / ``kernels_py``) and the
``RTM_GETSTATS`` dump parser (``_netlink`` / ``netlink_py``).
``IMPLEMENTATION`` says which aggregation kernels run ("cython" or "python");
the daemon logs it at start and exports it as
``hostagent_build_info{kernels=...}``.  ``NETLINK_IMPLEMENTATION`` says the
same of the parser.
"""
from __future__ import annotations

import importlib
import os

from agent.core import kernels_py, netlink_py

STATS_WIDTH = kernels_py.STATS_WIDTH
STATS_FIELDS = netlink_py.STATS_FIELDS
NetlinkError = netlink_py.NetlinkError


def _load(name: str, twin):
    if os.environ.get("HOSTAGENT_NO_EXTENSIONS", "") not in ("", "0"):
        return twin, "python", "forced by HOSTAGENT_NO_EXTENSIONS"
    try:
        module = importlib.import_module(f"agent.core.{name}")
    except ImportError as exc:
        return twin, "python", f"extension not built: {exc}"
    return module, "cython", ""


kernels, IMPLEMENTATION, FALLBACK_REASON = _load("_kernels", kernels_py)
ingest_column = kernels.ingest_column
window_stats = kernels.window_stats
encode_samples = kernels.encode_samples

netlink, NETLINK_IMPLEMENTATION, NETLINK_FALLBACK_REASON = _load("_netlink", netlink_py)
parse_stats_dump = netlink.parse_stats_dump
last_message_type = netlink.last_message_type

__all__ = ["IMPLEMENTATION", "FALLBACK_REASON", "STATS_WIDTH", "ingest_column",
           "window_stats", "encode_samples", "kernels", "kernels_py",
           "NETLINK_IMPLEMENTATION", "NETLINK_FALLBACK_REASON", "STATS_FIELDS",
           "NetlinkError", "parse_stats_dump", "last_message_type", "netlink", "netlink_py"]
