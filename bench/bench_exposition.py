"""The metric hot path: /metrics render CPU per scrape and GetMetrics under
concurrency.

    .venv/bin/python bench/bench_exposition.py            # full: ~4 min
    .venv/bin/python bench/bench_exposition.py --quick    # < 1 min

1. Render: a store shaped like netdev at N interfaces (31 counter families
   per interface: 4096 -> 126 976 series), ingested like a 1 s collection;
   CPU per scrape (process time of the render alone: values copied under the
   lock, formatted, assembled) with the Cython kernel and with its twin, and
   gzip at levels 1 and 6.  Then, in a process of its own, the real HTTP
   server under 8 concurrent scrapers per collection: RSS before any scrape,
   after 5 collections and at the end (it must not grow: buffers are reused).
2. GetMetrics: a real agent (bench/synthetic_agent.py, its default
   collectors running) with 1k synthetic series; one client process (grpc.aio,
   one channel per client) runs 1 and then 20 clients calling GetMetrics for
   those 1k series back to back for a fixed time; latency percentiles,
   throughput, and the agent's whole-process CPU per call from /proc/PID/stat.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def netdev_store(interfaces: int):
    from agent.telemetry.model import Batch, FamilyDesc, MetricType
    from agent.telemetry.store import SeriesStore

    fams = [FamilyDesc(f"node_network_{what}_total", MetricType.COUNTER, f"Network device statistic {what}.",
                       "", ("device",)) for what in
            [f"{d}_{c}" for d in ("receive", "transmit") for c in
             ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast", "carrier",
              "colls", "nohandler", "dropped_link", "missed", "over", "crc", "aborted")][:31]]
    store = SeriesStore(retention=60)
    store.configure("netdev", 1.0)
    devices = [f"tap{i:04d}" for i in range(interfaces)]

    def batch(t: int) -> Batch:
        out = Batch()
        for k, fam in enumerate(fams):
            for i, dev in enumerate(devices):
                out.counter(fam, t * (1500 + i) * (k + 1), dev)
        return out
    # A few collections made once and ingested in turn (new values every
    # time, monotonic counters): what the loop allocates is the scrape's.
    batches = [batch(t) for t in range(1, 5)]

    def ingest(t: int) -> None:
        store.ingest("netdev", batches[t % len(batches)], mono=float(t))
    return store, ingest


def bench_http(interfaces: int, rounds: int, scrapers: int) -> dict:
    """RSS over ``rounds`` collections, each scraped by ``scrapers`` threads
    at once through the real HTTP server (half with gzip, half OpenMetrics)."""
    import socket
    import threading

    from agent.exposition import MetricsServer

    store, ingest = netdev_store(interfaces)
    server = MetricsServer("127.0.0.1", 0, store)

    sink = [bytearray(1 << 20) for _ in range(scrapers)]  # the clients allocate nothing per scrape

    def scrape(k: int) -> None:
        headers = "Accept-Encoding: gzip\r\n" if k % 2 else ""
        if k % 4 >= 2:
            headers += "Accept: application/openmetrics-text; version=1.0.0\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(f"GET /metrics HTTP/1.0\r\n{headers}\r\n".encode())
            while sock.recv_into(sink[k]):  # the server closes after the body
                pass

    def round_(t: int) -> None:
        ingest(t)
        threads = [threading.Thread(target=scrape, args=(k,)) for k in range(scrapers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    try:
        ingest(0)
        start = rss_mb()  # the store, before any scrape
        for t in range(1, 6):
            round_(t)
        warm = rss_mb()
        c = time.process_time()
        for t in range(6, 6 + rounds):
            round_(t)
        cpu = (time.process_time() - c) / rounds
        return {"rounds": rounds, "scrapers": scrapers, "rss_start": start, "rss_warm": warm, "rss_end": rss_mb(),
                "renders": server.renderer.renders, "cpu_ms_per_round": cpu * 1e3}
    finally:
        server.close()


def bench_values(interfaces: int, scrapes: int) -> dict[str, float]:
    """CPU per scrape (Cython) of the same shape of store holding gauges:
    integral values, decimals of 2 digits, full-precision fractions."""
    from agent import core
    from agent.exposition import Renderer
    from agent.telemetry.model import Batch, FamilyDesc, MetricType
    from agent.telemetry.store import SeriesStore

    assert core.expo.__name__ == "agent.core._expo"
    fams = [FamilyDesc(f"gauge_{k}_celsius", MetricType.GAUGE, "g", "", ("device",)) for k in range(31)]
    out = {}
    kinds = {"integral": lambda i, k: float(i * k), "2 decimals": lambda i, k: round(i * k / 7, 2),
             "full precision": lambda i, k: i * k / 7}
    for kind, value in kinds.items():
        store = SeriesStore(retention=60)
        batch = Batch()
        for k, fam in enumerate(fams):
            for i in range(interfaces):
                batch.gauge(fam, value(i + 1, k + 1), f"tap{i:04d}")
        renderer = Renderer(store)
        cpu = []
        for t in range(scrapes + 1):
            store.ingest("g", batch, mono=float(t))
            c = time.process_time()
            body = renderer.acquire()
            cpu.append(time.process_time() - c)
            renderer.release(body)
        out[kind] = statistics.median(cpu[1:]) * 1e3
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_render(interfaces: int, scrapes: int, impls: list[str]) -> list[dict]:
    from agent import core
    from agent.core import expo_py
    from agent.exposition import Renderer

    store, ingest = netdev_store(interfaces)
    rows, selected = [], core.expo
    for name in impls:
        mod = expo_py if name == "python" else __import__("agent.core._expo", fromlist=["_expo"])
        core.expo = mod
        renderer = Renderer(store)
        ingest(1)
        body = renderer.acquire()  # first render: lays the layout out (once per layout)
        renderer.release(body)
        series = len(store.blocks()[0])
        cpu, gz1 = [], []
        n = scrapes if name == "cython" else max(3, scrapes // 10)
        for t in range(2, 2 + n):
            ingest(t)
            c = time.process_time()
            body = renderer.acquire()
            cpu.append(time.process_time() - c)
            c = time.process_time()
            body2 = renderer.acquire(gzip=True)
            gz1.append(time.process_time() - c)
            renderer.release(body2)
            size, gz_size = body.size, body2.gz_size
            renderer.release(body)
        text = bytes(body.view())
        t6 = time.process_time()
        level6 = len(zlib.compress(text, 6))
        t6 = time.process_time() - t6
        rows.append({"impl": name, "series": series, "scrapes": n, "bytes": size,
                     "cpu_ms_median": statistics.median(cpu) * 1e3, "cpu_ms_max": max(cpu) * 1e3,
                     "gzip1_ms": statistics.median(gz1) * 1e3, "gzip1_bytes": gz_size,
                     "gzip6_ms": t6 * 1e3, "gzip6_bytes": level6})
    core.expo = selected
    return rows


CLIENT = r"""
import asyncio, json, sys, time
import grpc
from agent.gen.hostagent.v1 import telemetry_pb2 as pb, telemetry_pb2_grpc
addr, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
req = pb.GetMetricsRequest(selector=pb.MetricSelector(names=["synthetic_*"]))

async def main():
    chans = [grpc.aio.insecure_channel(addr) for _ in range(clients)]
    stubs = [telemetry_pb2_grpc.TelemetryStub(c) for c in chans]
    for s in stubs:
        for _ in range(5):
            got = await s.GetMetrics(req, timeout=10)
    samples = sum(len(f.samples) for f in got.families)
    lat = []
    start = time.perf_counter()
    stop = start + seconds
    async def run(stub):
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await stub.GetMetrics(req, timeout=10)
            lat.append(time.perf_counter() - t0)
    print("go", flush=True)
    await asyncio.gather(*(run(s) for s in stubs))
    elapsed = time.perf_counter() - start
    for c in chans:
        await c.close()
    print(json.dumps({"lat": lat, "elapsed": elapsed, "samples": samples}), flush=True)

asyncio.run(main())
"""


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_getmetrics(series: int, seconds: float, client_counts: list[int]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": ROOT}
    agent = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "synthetic_agent.py"),
                              "--series", str(series)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env=env)
    rows = []
    try:
        info = json.loads(agent.stdout.readline())
        for clients in client_counts:
            client = subprocess.Popen([sys.executable, "-c", CLIENT, info["grpc"], str(clients), str(seconds)],
                                      stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
            assert client.stdout.readline().strip() == "go"
            cpu0, wall0 = proc_cpu(agent.pid), time.perf_counter()
            out = json.loads(client.stdout.readline())
            cpu1, wall1 = proc_cpu(agent.pid), time.perf_counter()
            client.wait(30)
            lat = sorted(out["lat"])
            calls = len(lat)
            rows.append({"clients": clients, "samples": out["samples"], "calls": calls,
                         "per_s": calls / out["elapsed"], "p50_ms": lat[calls // 2] * 1e3,
                         "p99_ms": lat[int(0.99 * (calls - 1))] * 1e3,
                         "agent_cpu_ms_per_call": (cpu1 - cpu0) / calls * 1e3,
                         "agent_cores": (cpu1 - cpu0) / (wall1 - wall0)})
    finally:
        agent.stdin.close()
        agent.wait(20)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scrapes and shorter windows (< 1 min)")
    parser.add_argument("--interfaces", type=int, default=4096)
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--skip-grpc", action="store_true")
    parser.add_argument("--impl", choices=["cython", "python", "both"], default="both",
                        help="which render kernels to time")
    args = parser.parse_args()
    import agent.core
    print(f"kernels: expo={agent.core.EXPO_IMPLEMENTATION}; {os.cpu_count()} CPUs; "
          f"{'quick' if args.quick else 'full'} mode")
    if not args.skip_render:
        scrapes = 20 if args.quick else 100
        impls = ["cython", "python"] if agent.core.EXPO_IMPLEMENTATION == "cython" else ["python"]
        impls = [i for i in impls if args.impl in ("both", i)]
        print(f"\n/metrics render at {args.interfaces} interfaces ({scrapes} scrapes, twin: a tenth)")
        print(f"{'impl':>7} {'series':>7} {'MB':>5} {'CPU ms/scrape':>13} {'max':>6} "
              f"{'gzip-1 ms':>9} {'gz-1 MB':>7} {'gzip-6 ms':>9} {'gz-6 MB':>7}")
        for r in bench_render(args.interfaces, scrapes, impls):
            print(f"{r['impl']:>7} {r['series']:>7} {r['bytes'] / 1e6:>5.1f} {r['cpu_ms_median']:>13.2f} "
                  f"{r['cpu_ms_max']:>6.1f} {r['gzip1_ms']:>9.1f} {r['gzip1_bytes'] / 1e6:>7.2f} "
                  f"{r['gzip6_ms']:>9.1f} {r['gzip6_bytes'] / 1e6:>7.2f}")
        if "cython" in impls:
            by_kind = bench_values(args.interfaces, 3 if args.quick else 20)
            print("Cython, the same store of gauges: " + ", ".join(
                f"{kind} {ms:.1f} ms" for kind, ms in by_kind.items()) + " CPU per scrape")
        rounds = 8 if args.quick else 50
        # In a process of its own: RSS must show the scrapes, not what the
        # render runs above left in the allocator.
        out = subprocess.run([sys.executable, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); "
                              "import bench_exposition as b; "
                              "print(json.dumps(b.bench_http(int(sys.argv[2]), int(sys.argv[3]), 8)))",
                              os.path.join(ROOT, "bench"), str(args.interfaces), str(rounds)],
                             capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": ROOT})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\nHTTP: {r['rounds']} collections x {r['scrapers']} concurrent scrapes (gzip/plain, "
              f"text/OpenMetrics): RSS {r['rss_start']:.1f} MB before any scrape, {r['rss_warm']:.1f} MB after 5 "
              f"rounds, {r['rss_end']:.1f} MB at the end; "
              f"{r['renders']} bodies in all; {r['cpu_ms_per_round']:.1f} ms CPU per round "
              f"(1 render, 2 bodies, 2 gzips, 8 sends, the clients)")
    if not args.skip_grpc:
        seconds = 3.0 if args.quick else 20.0
        print(f"\nGetMetrics of 1k series, {seconds:g} s per row")
        print(f"{'clients':>7} {'samples':>7} {'calls':>6} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'agent CPU ms/call':>17} {'agent cores':>11}")
        rows = bench_getmetrics(1000, seconds, [1, 20])
        for r in rows:
            print(f"{r['clients']:>7} {r['samples']:>7} {r['calls']:>6} {r['per_s']:>8.0f} {r['p50_ms']:>7.2f} "
                  f"{r['p99_ms']:>7.2f} {r['agent_cpu_ms_per_call']:>17.3f} {r['agent_cores']:>11.2f}")
        print(f"throughput 20 clients / 1 client: {rows[1]['per_s'] / rows[0]['per_s']:.2f}x")


if __name__ == "__main__":
    main()
