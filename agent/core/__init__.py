"""Selects the Cython kernels: each extension unless it is missing or
``HOSTAGENT_NO_EXTENSIONS=1`` forces its pure-Python twin (msgpack's way).

Three pairs: the aggregation kernels (``_kernels`` / ``kernels_py``), the
``RTM_GETSTATS`` dump parser (``_netlink`` / ``netlink_py``) and the packet
header decoder and flow table (``_flows`` / ``flows_py``, said by
``FLOWS_IMPLEMENTATION``).
``IMPLEMENTATION`` says which aggregation kernels run ("cython" or "python");
the daemon logs it at start and exports it as
``hostagent_build_info{kernels=...}``.  ``NETLINK_IMPLEMENTATION`` says the
same of the parser.
"""
from __future__ import annotations

import importlib
import os

from agent.core import flows_py, kernels_py, netlink_py

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
# Kernels built before encode_samples_packed existed: the twin's (same bytes).
encode_samples_packed = getattr(kernels, "encode_samples_packed", kernels_py.encode_samples_packed)

netlink, NETLINK_IMPLEMENTATION, NETLINK_FALLBACK_REASON = _load("_netlink", netlink_py)
parse_stats_dump = netlink.parse_stats_dump
last_message_type = netlink.last_message_type

# The packet header decoder and flow table (docs/flows-kernel.md).
flows, FLOWS_IMPLEMENTATION, FLOWS_FALLBACK_REASON = _load("_flows", flows_py)
FlowTable = flows.FlowTable
parse_frame = flows.parse_frame

# The /metrics text kernels (``_expo`` / ``expo_py``).
from agent.core import expo_py  # noqa: E402

expo, EXPO_IMPLEMENTATION, EXPO_FALLBACK_REASON = _load("_expo", expo_py)

__all__ = ["IMPLEMENTATION", "FALLBACK_REASON", "STATS_WIDTH", "ingest_column",
           "window_stats", "encode_samples", "kernels", "kernels_py",
           "NETLINK_IMPLEMENTATION", "NETLINK_FALLBACK_REASON", "STATS_FIELDS",
           "NetlinkError", "parse_stats_dump", "last_message_type", "netlink", "netlink_py",
           "FLOWS_IMPLEMENTATION", "FLOWS_FALLBACK_REASON", "FlowTable", "parse_frame", "flows",
           "flows_py"]
__all__ += ["encode_samples_packed", "expo", "expo_py", "EXPO_IMPLEMENTATION", "EXPO_FALLBACK_REASON"]
