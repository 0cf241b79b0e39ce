"""One GPU collection cycle for 8 H100s, against the fake libnvidia-ml.so.1
(tests/fakenvml) under the real pynvml bindings, with and without field
batching (``[gpu] field_batching``).

    .venv/bin/python bench/bench_gpu.py [--gpus 8] [--cycles 200] [--mig] [--json FILE]

Per mode: NVML calls per GPU per cycle (counted by the fake library, so
what pynvml really called), the backend alone (every GPU's sample in one
thread: NVML and pynvml cost) and the whole collector cycle (each GPU on
its own guarded worker, the batch built, energy saved): median and p90 of
the cycles, wall time, and the process's CPU per cycle.  ``--mig`` splits
every GPU into 7 1g.10gb instances first (one more memory call per
instance).  Targets (issue 11): at most 40 calls per GPU per cycle, at most
2 ms per cycle for 8 GPUs.  The fake answers in about a microsecond; a real
driver takes longer per call, which is what the call count bounds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from agent.gpu.collector import GpuCollector  # noqa: E402
from agent.gpu.config import GpuConfig  # noqa: E402
from agent.gpu.hub import GpuHub  # noqa: E402
from agent.telemetry.collector import CollectorContext  # noqa: E402
from agent.telemetry.model import Batch  # noqa: E402
from tests.fakenvml import build  # noqa: E402
from tests.fakenvml.control import FakeNvml  # noqa: E402


def _stats(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[int(0.9 * (len(s) - 1))]


def run_mode(fake: FakeNvml, gpus: int, cycles: int, batching: bool, mig: bool) -> dict:
    state = tempfile.mkdtemp(prefix="bench-gpu-")
    hub = GpuHub(GpuConfig(nvml_library=str(fake.library), field_batching=batching), state)
    collector = GpuCollector(CollectorContext(), hub)
    try:
        collector.collect(Batch())  # opens NVML, reads static facts, learns what is unsupported
        if mig:
            for t in hub.targets.values():
                t.call(lambda d: d.set_mig_mode(True))
                profile = next(p for p in t.refresh().mig_profiles if p.name == "1g.10gb")
                for _ in range(7):
                    t.call(lambda d: d.create_compute_instance(d.create_gpu_instance(profile.id), 1))
                t.refresh()
            collector.collect(Batch())
        devices = [(t.dev, t.static) for t in hub.targets.values()]
        fake.reset_calls()
        backend, whole, cpu, series = [], [], [], 0
        for _ in range(cycles):
            t0 = time.perf_counter()
            for dev, static in devices:
                dev.sample(static)
            backend.append(time.perf_counter() - t0)
        backend_calls = sum(fake.calls(gpu=i) for i in range(gpus)) / cycles / gpus
        fake.reset_calls()
        for _ in range(cycles):
            batch = Batch()
            c0, t0 = time.process_time(), time.perf_counter()
            collector.collect(batch)
            whole.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            series = len(batch)
        calls = sum(fake.calls(gpu=i) for i in range(gpus)) / cycles / gpus
        assert abs(calls - backend_calls) < 0.01, (calls, backend_calls)
        return {"batching": batching, "mig": mig, "calls_per_gpu": calls, "series": series,
                "backend_ms": [x * 1e3 for x in _stats(backend)],
                "cycle_ms": [x * 1e3 for x in _stats(whole)],
                "cpu_ms": statistics.mean(cpu) * 1e3}
    finally:
        collector.close()
        hub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--mig", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for batching in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            fake = FakeNvml(build.build(), Path(tmp) / "fake.ctl", args.gpus)
            results.append(run_mode(fake, args.gpus, args.cycles, batching, args.mig))
    print(f"{args.gpus} GPUs{' (7 MIG instances each)' if args.mig else ''}, "
          f"{args.cycles} cycles")
    print("| field batching | NVML calls / GPU / cycle | series | backend median / p90 | "
          "collector cycle median / p90 | CPU / cycle |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {'on' if r['batching'] else 'off'} | {r['calls_per_gpu']:.1f} | {r['series']} | "
              f"{r['backend_ms'][0]:.2f} / {r['backend_ms'][1]:.2f} ms | "
              f"{r['cycle_ms'][0]:.2f} / {r['cycle_ms'][1]:.2f} ms | {r['cpu_ms']:.2f} ms |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
