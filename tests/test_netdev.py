"""The netdev collector on real kernel interfaces in namespaces the test
makes: counters equal what `ip -s -j link` reports, link events arrive
within a second, and interface churn leaks nothing."""
import os
import subprocess
import time

import pytest

from agent.collectors.netdev import NetdevCollector
from agent.telemetry.collector import CollectorContext
from agent.telemetry.events import EventBus
from agent.telemetry.model import Batch
from agent.telemetry.store import SeriesStore
from tests.netns import ip, link_stats, udp_burst, veth_pair

pytestmark = [pytest.mark.integration, pytest.mark.netns]


@pytest.fixture
def pair(netns, peer_netns):
    veth_pair(netns, peer_netns)
    return netns, peer_netns


class Harness:
    def __init__(self, ns: str, grace: float = 300.0):
        self.events = EventBus()
        self.store = SeriesStore(retention=60)
        self.collector = NetdevCollector(CollectorContext(
            options={"namespaces": (ns,), "grace": grace}, publish=self.events.publish))
        self.sub = self.events.subscribe()

    def collect(self) -> dict:
        b = Batch()
        self.collector.collect(b)
        self.store.ingest("netdev", b)
        return {(r.family.name, r.labels): r for blk in self.store.blocks() for r in blk.rows()}

    def wait_event(self, kind: str, device: str, timeout: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.sub.get(deadline - time.monotonic())
            if ev and ev.kind == kind and ev.labels.get("device") == device:
                return ev
        raise AssertionError(f"no {kind} for {device} within {timeout}s")

    def close(self):
        self.collector.close()


@pytest.fixture
def harness(pair):
    h = Harness(pair[0])
    yield h
    h.close()


def test_counters_equal_ip_link_after_real_traffic(pair, harness):
    a, b = pair
    harness.collect()
    before = link_stats(a)["veth0"]
    udp_burst(a, "10.200.0.2", count=200, size=1000)
    rows = harness.collect()
    after = link_stats(a)["veth0"]
    got = lambda name: rows[(name, ("veth0", a))].value  # noqa: E731
    assert got("node_network_transmit_bytes_total") == after["tx"]["bytes"]
    assert got("node_network_transmit_packets_total") == after["tx"]["packets"]
    assert got("node_network_receive_bytes_total") == after["rx"]["bytes"]
    assert after["tx"]["packets"] - before["tx"]["packets"] >= 200
    rate = rows[("node_network_transmit_bytes_total", ("veth0", a))].rate
    assert rate > 0  # per-second rate through the aggregation core
    info = [k for k in rows if k[0] == "node_network_info" and k[1][0] == "veth0"]
    assert info and info[0][1][6] == "veth"  # kind label
    assert rows[("node_network_mtu_bytes", ("veth0", a))].value == 1500
    assert rows[("node_network_up", ("veth0", a))].value == 1


def test_link_down_and_carrier_loss_are_events_within_a_second(pair, harness):
    a, b = pair
    harness.collect()
    ip("link", "set", "veth0", "down", ns=a)
    harness.wait_event("link.down", "veth0")
    ip("link", "set", "veth0", "up", ns=a)
    harness.wait_event("link.up", "veth0")
    ip("link", "set", "veth1", "down", ns=b)  # the peer: veth0 loses carrier
    # The kernel's linkwatch reports a lost carrier at its next run, up to 1 s
    # later (measured: median 0.42 s, max 0.99 s); our part is milliseconds.
    harness.wait_event("link.carrier_lost", "veth0", timeout=1.5)
    ip("link", "set", "veth1", "up", ns=b)
    harness.wait_event("link.carrier_regained", "veth0")
    for _ in range(4):
        ip("link", "set", "veth1", "down", ns=b)
        ip("link", "set", "veth1", "up", ns=b)
    harness.wait_event("link.flapping", "veth0", timeout=2.0)
    time.sleep(1.5)  # the kernel's linkwatch batches carrier notifications (~1 s)
    rows = harness.collect()
    kernel = subprocess.run(["ip", "netns", "exec", a, "cat", "/sys/class/net/veth0/carrier_changes"],
                            capture_output=True, text=True, check=True).stdout
    assert rows[("node_network_carrier_changes_total", ("veth0", a))].value == int(kernel) >= 10


def test_recreated_interface_does_not_spike(pair, harness):
    a, b = pair
    udp_burst(a, "10.200.0.2", count=100, size=1000)
    harness.collect()
    time.sleep(0.2)
    ip("link", "del", "veth0", ns=a)
    veth_pair(a, b, b="veth2", addr_b="10.200.0.6/30", addr_a="10.200.0.5/30")
    udp_burst(a, "10.200.0.6", count=300, size=1000)  # more bytes than the old veth0 had
    time.sleep(0.2)
    rows = harness.collect()
    rate = rows[("node_network_transmit_bytes_total", ("veth0", a))].rate
    assert rate != rate  # NaN: a new interface has no rate yet, not a spike


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_churn_of_a_thousand_interfaces_leaks_nothing(pair):
    a, _ = pair
    h = Harness(a, grace=0.2)
    try:
        baseline_rows = h.collect()
        baseline_series, baseline_fds = h.store.series_count(), fd_count()
        for round_ in range(4):
            add = "".join(f"link add tap{round_}x{i} type veth peer name tpp{round_}x{i}\n" for i in range(125))
            ip("-batch", "-", ns=a, stdin=add)
            h.collect()
            ip("-batch", "-", ns=a, stdin="".join(f"link del tap{round_}x{i}\n" for i in range(125)))
            h.collect()
        time.sleep(0.3)  # past the grace period
        h.collect()
        rows = h.collect()
        assert h.store.series_count() == baseline_series
        assert set(rows) == set(baseline_rows)
        assert fd_count() <= baseline_fds + 2
    finally:
        h.close()


def test_agent_watches_a_configured_namespace_end_to_end(pair, tmp_path):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from agent.gen.hostagent.v1 import telemetry_pb2 as pb, telemetry_pb2_grpc
    from tests.agent_process import AgentProcess

    a, b = pair
    config = f'[collectors.netdev]\nnamespaces = ["", "{a}"]\n'
    with AgentProcess(tmp_path, config=config) as agent:
        agent.wait_ready()
        with agent.channel() as ch:
            # since_sequence=1 replays what was published before the server
            # subscribed this stream: the client cannot miss the event.
            events = telemetry_pb2_grpc.TelemetryStub(ch).WatchEvents(
                pb.WatchEventsRequest(kinds=["link.*"], since_sequence=1), timeout=30)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # the first collection opens the watchers
                with urllib.request.urlopen(agent.metrics_url, timeout=5) as resp:
                    text = resp.read().decode()
                if f'netns="{a}"' in text:
                    break
                time.sleep(0.2)
            t0 = time.monotonic()
            ip("link", "set", "veth0", "down", ns=a)
            got = next(e for e in events if e.labels["device"] == "veth0" and e.kind == "link.down")
            assert got.labels["netns"] == a and time.monotonic() - t0 < 1.5
            events.cancel()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    devices = {(s.labels["device"], s.labels["netns"]) for s in fams["node_network_receive_bytes"].samples}
    assert ("veth0", a) in devices and ("lo", a) in devices
    assert any(ns == "" for _, ns in devices)  # the agent's own namespace too


def test_a_closed_collector_does_not_reopen(pair):
    h = Harness(pair[0])
    h.collect()
    h.close()
    with pytest.raises(RuntimeError, match="closed"):
        h.collect()
