"""500 taps created and deleted while the sampler runs (inside a namespace
the test creates): each gets a ring when it appears, each ring is closed when
it goes, and the process ends with the descriptors and memory it began with."""
from __future__ import annotations

import resource
import subprocess
import time

from agent.backends.packet_ring import fd_count
from tests.test_flows_sampling import make_sampler

TAPS = 500


def _batch(ns: str, lines: list[str]) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n", text=True,
                   check=True, capture_output=True)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def _wait_rings(sampler, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sampler.interfaces()) != n:
        assert time.monotonic() < deadline, f"{len(sampler.interfaces())} rings, not {n}"
        time.sleep(0.05)


def test_tap_churn_closes_every_ring_and_leaks_nothing(netns):
    sampler = make_sampler(netns, rate=400, interfaces=("tap*",))
    try:
        _wait_rings(sampler, 0)
        time.sleep(0.3)
        fds0 = fd_count()
        rss = []
        for round_ in range(2):
            names = [f"tap{round_}x{i:03d}" for i in range(TAPS)]
            _batch(netns, [f"tuntap add mode tap name {n}" for n in names]
                   + [f"link set {n} group 7" for n in names]
                   + [f"link set {n} up" for n in names[::5]])
            _wait_rings(sampler, TAPS)
            assert fd_count() == fds0 + TAPS  # one socket per tap, no other descriptor
            assert {s.ifname for s in sampler.hub.interfaces()} == set(sampler.interfaces().values())
            # 100 one by one (as VMs stop), then the rest at once (the kernel
            # takes ~20 ms per single deletion, not per group)
            _batch(netns, [f"tuntap del mode tap name {n}" for n in names[:100]])
            _wait_rings(sampler, TAPS - 100)
            _batch(netns, ["link del group 7"])
            _wait_rings(sampler, 0)
            time.sleep(0.2)
            assert fd_count() == fds0
            assert sampler.hub.interfaces() == []
            rss.append(_rss_kib())
        assert rss[1] - rss[0] < 8 * 1024, rss  # the second round grew nothing lasting
        assert sampler.errors == 0
    finally:
        sampler.close()
