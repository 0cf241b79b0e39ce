"""Read-only check of the gpu collector and inventory against a real NVIDIA
driver (an H100/H200 node), for the record in docs/gpu.md.

    .venv/bin/python scripts/gpu_probe.py [--library PATH] [--cycles 20] [--json FILE]

It changes nothing on the GPUs: it opens NVML, reads each GPU's static facts
(the inventory), runs the collector (every GPU on its guarded worker, as the
agent does) for ``--cycles`` cycles with and without field batching, and
prints, per GPU: which values the driver answered, which it refused (not
supported, no permission, function missing) and which failed; the NVML
calls per cycle; the cycle time (median, p90); the MIG layout and the NICs
near each GPU.  No setter, no MIG change, no reset is ever called.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from agent.backends.hostfs import HostFS  # noqa: E402
from agent.gpu.collector import GpuCollector  # noqa: E402
from agent.gpu.config import GpuConfig  # noqa: E402
from agent.gpu.hub import GpuHub  # noqa: E402
from agent.gpu.topology import nearby_nics  # noqa: E402
from agent.telemetry.collector import CollectorContext  # noqa: E402
from agent.telemetry.model import Batch  # noqa: E402

_META = ("mig", "processes", "calls", "failed")


def probe(library: str, cycles: int, batching: bool) -> dict:
    state = tempfile.mkdtemp(prefix="gpu-probe-")
    hub = GpuHub(GpuConfig(nvml_library=library, field_batching=batching, timeout=5.0), state)
    collector = GpuCollector(CollectorContext(), hub)
    try:
        t0 = time.perf_counter()
        if not hub.open():
            return {"driver": None, "missing": hub.missing}
        opened = time.perf_counter() - t0
        first = Batch()
        t0 = time.perf_counter()
        collector.collect(first)  # static facts, and what the driver refuses
        first_cycle = time.perf_counter() - t0
        times, series = [], 0
        for _ in range(cycles):
            batch = Batch()
            t0 = time.perf_counter()
            collector.collect(batch)
            times.append(time.perf_counter() - t0)
            series = len(batch)
        times.sort()
        gpus = []
        for t in hub.targets.values():
            s = t.last
            values = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)
                      if f.name not in _META} if s else {}
            gpus.append({
                "uuid": t.uuid, "pci_bus_id": t.pci_bus_id, "up": t.guard.up,
                "last_error": t.guard.last_error,
                "static": dataclasses.asdict(t.static) if t.static else None,
                "answered": sorted(k for k, v in values.items() if v is not None),
                "absent": sorted(k for k, v in values.items() if v is None),
                "refused": sorted(t.dev.skip), "refused_fields": sorted(t.dev.skip_fields),
                "failed": list(s.failed) if s else [], "calls_per_cycle": s.calls if s else None,
                "mig": [dataclasses.asdict(m) for m in s.mig] if s else [],
                "processes": len(s.processes or ()) if s else None,
                "nearby_nics": [dataclasses.asdict(n) for n in nearby_nics(HostFS(), t.pci_bus_id)]})
        return {"driver": hub.driver_version, "cuda": hub.cuda_version, "batching": batching,
                "open_seconds": opened, "first_cycle_seconds": first_cycle, "series": series,
                "cycle_median_seconds": statistics.median(times) if times else None,
                "cycle_p90_seconds": times[int(0.9 * (len(times) - 1))] if times else None,
                "gpus": gpus}
    finally:
        collector.close()
        hub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", default="", help="libnvidia-ml.so.1 to use (default: the system's)")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the whole report here")
    args = ap.parse_args()
    # One NVML library per process, opened once: both modes run in this process.
    report = [probe(args.library, args.cycles, batching) for batching in (True, False)]
    for r in report:
        if r.get("driver") is None:
            print(f"no driver: {r['missing']}")
            continue
        print(f"driver {r['driver']} CUDA {r['cuda']}  batching={'on' if r['batching'] else 'off'}"
              f"  {len(r['gpus'])} GPU(s), {r['series']} series  open {r['open_seconds'] * 1e3:.0f} ms"
              f"  first cycle {r['first_cycle_seconds'] * 1e3:.1f} ms  cycle median "
              f"{r['cycle_median_seconds'] * 1e3:.2f} ms p90 {r['cycle_p90_seconds'] * 1e3:.2f} ms")
        for g in r["gpus"]:
            st = g["static"] or {}
            print(f"  GPU {st.get('index')} {g['uuid']} {g['pci_bus_id']} {st.get('name')}: "
                  f"{g['calls_per_cycle']} calls/cycle, up={g['up']} {g['last_error']}")
            print(f"    answered: {', '.join(g['answered'])}")
            print(f"    absent:   {', '.join(g['absent']) or '-'}   refused: "
                  f"{', '.join(g['refused']) or '-'} fields {g['refused_fields'] or '-'}   failed: "
                  f"{', '.join(g['failed']) or '-'}")
            print(f"    MIG: {st.get('mig_current')}  {len(st.get('mig_instances') or ())} instances;"
                  f"  NICs near: {[n['name'] + '/' + n['affinity'] for n in g['nearby_nics']] or '-'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
