"""Packet sampling and per-flow, per-VM traffic accounting (docs/flows.md)."""
