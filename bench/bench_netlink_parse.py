"""RTM_GETSTATS dumps: the kernel's share and the parser's, Cython against
the pure-Python twin, on one core.

    .venv/bin/python bench/bench_netlink_parse.py [--interfaces 16 256 1024 4096]
                                                  [--no-real] [--pyroute2]

Synthetic: a dump of N interfaces built in memory (25 counters each).  Real
(as root, with iproute2): a throwaway namespace holding N interfaces (``lo``
and veth pairs, made with ``ip -batch``, deleted after); ``dump()`` is the
time of ``StatsDumper.dump()`` (request, kernel, recv, join), the parse
columns parse that very dump.  ``--pyroute2`` also times pyroute2's decoded
dump of the same namespace (slow: seconds at 4096).  Each figure is the
median of several runs (``time.perf_counter``).
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent.core import netlink_py  # noqa: E402


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic(n: int) -> bytes:
    return (b"".join(netlink_py.pack_stats(i + 1, [i * 1000 + k for k in range(25)], seq=1)
                     for i in range(n)) + netlink_py.pack_done(seq=1))


class Namespace:
    """A namespace holding ``n`` interfaces: ``lo``, veth pairs, a bridge if odd."""

    def __init__(self, n: int) -> None:
        self.name = f"hostagent-bench-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            pairs = (n - 1) // 2
            script = "".join(f"link add b{i}a type veth peer name b{i}b\n" for i in range(pairs))
            if (n - 1) % 2:
                script += "link add b-br type bridge\n"
            subprocess.run(["ip", "-n", self.name, "-batch", "-"], input=script, text=True,
                           check=True)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def pyroute2_dump_s(ns: str) -> float:
    from pyroute2 import IPRoute

    with IPRoute(netns=ns) as ipr:
        return median_s(lambda: list(ipr.stats("dump", filter_mask=1)), 3)


def row(label, n, raw, c, twin, dump_s=None, datagrams=None, pr2=None) -> str:
    return (f"{label:<9} {n:>6} {len(raw) / 1024:>9.1f} {datagrams or '':>5}"
            f" {'' if dump_s is None else f'{dump_s * 1e3:.3f}':>9}"
            f" {c * 1e6:>10.1f} {c / n * 1e9:>9.1f} {twin * 1e3:>9.2f} {twin / c:>8.0f}"
            f" {'' if pr2 is None else f'{pr2 * 1e3:.0f}':>11}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interfaces", type=int, nargs="+", default=[16, 256, 1024, 4096])
    ap.add_argument("--no-real", action="store_true", help="synthetic dumps only")
    ap.add_argument("--pyroute2", action="store_true", help="also time pyroute2's dump")
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to")
    args = ap.parse_args()
    try:
        from agent.core import _netlink
    except ImportError as exc:
        print(f"Cython netlink parser not built ({exc}); run: python setup.py build_ext --inplace")
        return 2
    cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    real = (not args.no_real and os.geteuid() == 0 and shutil.which("ip") is not None)

    def parse_times(raw: bytes, n: int) -> tuple[float, float]:
        want = netlink_py.parse_stats_dump(raw)
        assert _netlink.parse_stats_dump(raw) == want and len(want[0]) == n
        repeat = max(5, 20000 // n)
        return (median_s(lambda: _netlink.parse_stats_dump(raw), repeat),
                median_s(lambda: netlink_py.parse_stats_dump(raw), max(3, repeat // 50)))

    print(f"RTM_GETSTATS (IFLA_STATS_LINK_64) dumps, core {cpu}, kernel {os.uname().release}")
    head = (f"{'dump':<9} {'ifaces':>6} {'KiB':>9} {'dgram':>5} {'dump() ms':>9}"
            f" {'cython µs':>10} {'ns/iface':>9} {'twin ms':>9} {'speedup':>8}"
            f" {'pyroute2 ms':>11}")
    print(head)
    print("-" * len(head))
    for n in args.interfaces:
        raw = synthetic(n)
        print(row("synthetic", n, raw, *parse_times(raw, n)), flush=True)
        if not real:
            continue
        space = Namespace(n)
        try:
            from agent.backends.netlink import StatsDumper

            with StatsDumper(space.name) as dumper:
                dumper.dump()  # the socket learns its recv size: ~32 KiB datagrams
                dump_s = median_s(dumper.dump, max(5, 2000 // n))
                raw = dumper.dump()
                datagrams = dumper.datagrams
            pr2 = pyroute2_dump_s(space.name) if args.pyroute2 else None
            print(row("real", n, raw, *parse_times(raw, n), dump_s=dump_s,
                      datagrams=datagrams, pr2=pr2), flush=True)
        finally:
            space.close()
    if not real and not args.no_real:
        print("(real dumps skipped: need root and iproute2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
