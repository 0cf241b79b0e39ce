"""The floor a bare grpcio server sets under the agent: its idle CPU, and
unary calls under concurrency.

    .venv/bin/python bench/bench_grpc_floor.py [--window 60]
    .venv/bin/python bench/bench_grpc_floor.py --calls [--seconds 5]

Starts, in turn, a sync ``grpc.server`` and a ``grpc.aio`` server with
nothing but grpc's Health servicer on a loopback port, lets each settle for
3 s, then sums every thread's CPU (``/proc/self/task/*/schedstat``, in ns)
over ``--window`` seconds with nobody calling.  Prints each in ms per 30 s
and in % of one core, to set beside node_exporter's whole cost at a 15 s
scrape (bench/bench_node.py).  Each server runs in a child process of its
own so neither sees the other's threads.

``--calls``: the same two servers answer ``Health.Check`` (no work at all)
to one client process (grpc.aio, one channel per client, as
bench/bench_exposition.py calls GetMetrics) with 1 and then 20 clients
calling back to back for ``--seconds``; prints calls/s, the ratio to one
client, p50/p99 latency and the server's CPU per call.  What a server that
does nothing reaches on this machine bounds issue 13's GetMetrics targets
(p99 <= 15 ms and >= 5x one client's throughput with 20 clients).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def cpu_ns() -> int:
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:  # a thread that ended meanwhile
            pass
    return total


def report(kind: str, spent_ns: int, window: float) -> None:
    print(f"{kind:5} server idle: {spent_ns / 1e6 / window * 30:5.1f} ms per 30 s "
          f"({spent_ns / 1e9 / window * 100:.3f}% of a core)", flush=True)


def sync_server(window: float) -> None:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc
    server = grpc.server(futures.ThreadPoolExecutor(8))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port("127.0.0.1:0")
    server.start()
    time.sleep(3)
    c0 = cpu_ns()
    time.sleep(window)
    report("sync", cpu_ns() - c0, window)
    server.stop(None)


def aio_server(window: float) -> None:
    import asyncio

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    async def run() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await asyncio.sleep(3)
        c0 = cpu_ns()
        await asyncio.sleep(window)
        report("aio", cpu_ns() - c0, window)
        await server.stop(None)
    asyncio.run(run())


CLIENT = r"""
import asyncio, json, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
addr, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
async def main():
    chans = [grpc.aio.insecure_channel(addr) for _ in range(clients)]
    stubs = [health_pb2_grpc.HealthStub(c) for c in chans]
    req = health_pb2.HealthCheckRequest()
    for s in stubs:
        for _ in range(5):
            await s.Check(req, timeout=10)
    lat = []
    start = time.perf_counter()
    stop = start + seconds
    async def run(stub):
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await stub.Check(req, timeout=10)
            lat.append(time.perf_counter() - t0)
    await asyncio.gather(*(run(s) for s in stubs))
    print(json.dumps({"lat": sorted(lat), "elapsed": time.perf_counter() - start}))
asyncio.run(main())
"""


def call_rows(kind: str, port: int, seconds: float, cpu) -> None:
    """Run the client at 1 and 20 clients against ``port``; ``cpu()``: the
    server's CPU seconds so far."""
    base = None
    for clients in (1, 20):
        c0 = cpu()
        out = subprocess.run([sys.executable, "-c", CLIENT, f"127.0.0.1:{port}", str(clients), str(seconds)],
                             capture_output=True, text=True, check=True).stdout
        spent = cpu() - c0
        got = json.loads(out)
        lat, rate = got["lat"], len(got["lat"]) / got["elapsed"]
        base = base or rate
        print(f"{kind:4} server, Health.Check, {clients:2} clients: {rate:6.0f} calls/s "
              f"({rate / base:.2f}x one client), p50 {lat[len(lat) // 2] * 1e3:.2f} ms, "
              f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1e3:.2f} ms, "
              f"server CPU {spent / len(lat) * 1e3:.3f} ms per call", flush=True)


def sync_calls(seconds: float) -> None:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc
    server = grpc.server(futures.ThreadPoolExecutor(16))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    call_rows("sync", port, seconds, time.process_time)
    server.stop(None)


def aio_calls(seconds: float) -> None:
    import asyncio

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    async def run() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        # the loop must keep serving while the client runs: the rows run in a thread
        await asyncio.to_thread(call_rows, "aio", port, seconds, time.process_time)
        await server.stop(None)
    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--only", choices=("sync", "aio"))
    ap.add_argument("--calls", action="store_true", help="unary calls under concurrency instead of idle")
    ap.add_argument("--seconds", type=float, default=5.0, help="--calls: seconds per row")
    args = ap.parse_args()
    if args.calls:
        if args.only:
            return (sync_calls if args.only == "sync" else aio_calls)(args.seconds)
        import grpc
        print(f"grpcio {grpc.__version__}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}", flush=True)
        for kind in ("sync", "aio"):
            subprocess.run([sys.executable, __file__, "--calls", "--only", kind, "--seconds", str(args.seconds)],
                           check=True)
        return
    if args.only == "sync":
        return sync_server(args.window)
    if args.only == "aio":
        return aio_server(args.window)
    import grpc
    print(f"grpcio {grpc.__version__}; load {os.getloadavg()[0]:.1f}", flush=True)
    for kind in ("sync", "aio"):
        subprocess.run([sys.executable, __file__, "--only", kind, "--window", str(args.window)],
                       check=True)


if __name__ == "__main__":
    main()
