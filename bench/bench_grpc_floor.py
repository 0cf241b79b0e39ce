"""The idle CPU of a bare grpcio server: the floor under the agent's idle cost.

    .venv/bin/python bench/bench_grpc_floor.py [--window 60]

Starts, in turn, a sync ``grpc.server`` and a ``grpc.aio`` server with
nothing but grpc's Health servicer on a loopback port, lets each settle for
3 s, then sums every thread's CPU (``/proc/self/task/*/schedstat``, in ns)
over ``--window`` seconds with nobody calling.  Prints each in ms per 30 s
and in % of one core, to set beside node_exporter's whole cost at a 15 s
scrape (bench/bench_node.py).  Each server runs in a child process of its
own so neither sees the other's threads.
"""
from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--only", choices=("sync", "aio"))
    args = ap.parse_args()
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
