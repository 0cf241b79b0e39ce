"""The /proc/net collectors (netstat, sockstat, softnet, conntrack, arp):
their parsers on recorded files, each collector end to end on the recorded
``vm-net`` tree, no data on an empty tree, and a run on this machine."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.collectors.arp import ArpCollector, parse_arp
from agent.collectors.conntrack import ConntrackCollector, parse_conntrack_stat
from agent.collectors.netstat import (DEFAULT_FIELDS, NetStat, NetstatCollector, fields_pattern, parse_netstat,
                                      parse_snmp6)
from agent.collectors.sockstat import SockstatCollector, SockStat, parse_sockstat
from agent.collectors.softnet import SoftnetCollector, parse_softnet
from agent.config_values import Invalid
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch, MetricType
from tests.helpers import batch_families, batch_raw, batch_values

TREE = Path(__file__).parent / "fixtures" / "hosts" / "vm-net"
PROC_NET = TREE / "proc" / "net"


def run(cls, root=TREE, **options) -> Batch:
    batch = Batch()
    cls(CollectorContext(hostfs=HostFS(root), options=options)).collect(batch)
    return batch


# -- netstat ------------------------------------------------------------------
def test_parse_snmp_pairs_header_and_value_lines():
    stats = {s.key: s for s in parse_netstat((PROC_NET / "snmp").read_text())}
    assert stats["Tcp_ActiveOpens"] == NetStat("Tcp", "ActiveOpens", 5891.0)
    assert stats["Tcp_MaxConn"].value == -1.0
    assert stats["Ip_Forwarding"].value == 2.0
    assert stats["IcmpMsg_OutType3"].value == 35.0
    assert stats["UdpLite_InErrors"].value == 0.0
    assert len(stats) == 20 + 29 + 2 + 15 + 9 + 9


def test_parse_netstat_extension_sections():
    stats = {s.key: s.value for s in parse_netstat((PROC_NET / "netstat").read_text())}
    assert stats["IpExt_InOctets"] == 2628046767.0
    assert stats["TcpExt_TCPOFOQueue"] == 7.0
    assert stats["TcpExt_TCPTimeouts"] == 2.0
    assert "MPTcpExt_MPCurrEstab" in stats


def test_parse_snmp6_splits_the_protocol_at_the_first_6():
    stats = {s.key: s for s in parse_snmp6((PROC_NET / "snmp6").read_text())}
    assert stats["Ip6_InOctets"] == NetStat("Ip6", "InOctets", 377918.0)
    assert stats["Icmp6_InErrors"].value == 1.0
    assert stats["Udp6_InDatagrams"].value == 7710.0
    assert "UdpLite6_InErrors" in stats


@pytest.mark.parametrize("text", ["Tcp: A B\n", "Tcp: A B\nUdp: 1 2\n", "Tcp: A B\nTcp: 1\n"])
def test_parse_netstat_refuses_misaligned_pairs(text):
    with pytest.raises(ValueError):
        parse_netstat(text)


def test_netstat_serves_node_exporters_default_fields_as_gauges():
    batch = run(NetstatCollector)
    values = batch_values(batch)
    assert len(values) == 42
    assert all(f.type is MetricType.GAUGE for f in batch_families(batch).values())
    expected = {"Ip_Forwarding": 2, "Tcp_CurrEstab": 0, "Tcp_InSegs": 246290, "Tcp_RetransSegs": 2118,
                "Tcp_OutRsts": 2633, "Udp_NoPorts": 35, "Icmp_InMsgs": 36, "IpExt_InOctets": 2628046767,
                "TcpExt_TCPSynRetrans": 0, "TcpExt_ListenDrops": 0, "TcpExt_TCPOFOQueue": 7,
                "Ip6_OutOctets": 378670, "Icmp6_OutMsgs": 9, "Udp6_InDatagrams": 7710, "UdpLite6_InErrors": 0}
    for key, value in expected.items():
        assert values[f"node_netstat_{key}", ()] == value
    assert ("node_netstat_Tcp_MaxConn", ()) not in values
    assert ("node_netstat_Ip_InHdrErrors", ()) not in values


def test_netstat_fields_option_selects_what_is_served():
    values = batch_values(run(NetstatCollector, fields=fields_pattern(r"^Tcp_(MaxConn|RtoMin)$")))
    assert values == {("node_netstat_Tcp_MaxConn", ()): -1.0, ("node_netstat_Tcp_RtoMin", ()): 200.0}
    everything = batch_values(run(NetstatCollector, fields=fields_pattern(".*")))
    assert len(everything) == (135 + 18 + 76) + (20 + 29 + 2 + 15 + 9 + 9) + 90  # netstat, snmp, snmp6


def test_netstat_fields_checker():
    assert fields_pattern(DEFAULT_FIELDS).search("Tcp_ActiveOpens")
    for bad in ("(unclosed", 3):
        with pytest.raises(Invalid):
            fields_pattern(bad)


def test_netstat_without_snmp6_serves_ipv4(tmp_path):
    (tmp_path / "proc/net").mkdir(parents=True)
    for name in ("netstat", "snmp"):
        (tmp_path / "proc/net" / name).write_text((PROC_NET / name).read_text())
    values = batch_values(run(NetstatCollector, tmp_path))
    assert values["node_netstat_Tcp_ActiveOpens", ()] == 5891
    assert not any(name.startswith("node_netstat_Ip6") for name, _ in values)


# -- sockstat -----------------------------------------------------------------
def test_parse_sockstat():
    stats = parse_sockstat((PROC_NET / "sockstat").read_text())
    assert stats[0] == SockStat("sockets", "used", 18)
    assert SockStat("TCP", "tw", 114) in stats
    assert SockStat("FRAG", "memory", 0) in stats
    with pytest.raises(ValueError):
        parse_sockstat("TCP: inuse\n")


def test_sockstat_families_and_mem_bytes():
    values = batch_values(run(SockstatCollector))
    page = os.sysconf("SC_PAGE_SIZE")
    assert values["node_sockstat_sockets_used", ()] == 18
    assert values["node_sockstat_TCP_inuse", ()] == 1
    assert values["node_sockstat_TCP_tw", ()] == 114
    assert values["node_sockstat_TCP_mem", ()] == 60
    assert values["node_sockstat_TCP_mem_bytes", ()] == 60 * page
    assert values["node_sockstat_UDP_mem_bytes", ()] == 0
    assert values["node_sockstat_FRAG_memory", ()] == 0
    assert values["node_sockstat_UDP6_inuse", ()] == 2
    assert values["node_sockstat_FRAG6_memory", ()] == 0
    assert len(values) == 20


# -- softnet -----------------------------------------------------------------
def test_parse_softnet_recorded_15_columns():
    stats = parse_softnet((PROC_NET / "softnet_stat").read_text())
    assert [s.cpu for s in stats] == [0, 1]
    assert (stats[0].processed, stats[0].dropped, stats[0].time_squeezed) == (0x229da, 0, 2)
    assert stats[1].processed == 0x22be4
    assert (stats[1].received_rps, stats[1].flow_limit_count, stats[1].backlog_len) == (0, 0, 0)


def test_parse_softnet_older_kernels_and_offline_cpus():
    # Linux 4.x: 11 columns, no CPU index (line number); Linux 5.10+: the index
    # skips an offline CPU.
    old = "0000000a 00000001 00000002 0 0 0 0 0 00000003 00000004 00000005\n" * 2
    stats = parse_softnet(old)
    assert [(s.cpu, s.processed, s.cpu_collision, s.received_rps, s.flow_limit_count, s.backlog_len)
            for s in stats] == [(0, 10, 3, 4, 5, None), (1, 10, 3, 4, 5, None)]
    new = ("ffffffff 0 0 0 0 0 0 0 0 0 0 00000007 00000000\n"
           "00000001 0 0 0 0 0 0 0 0 0 0 00000000 00000002\n")
    assert [(s.cpu, s.processed, s.backlog_len) for s in parse_softnet(new)] == [(0, 2**32 - 1, 7), (2, 1, 0)]
    with pytest.raises(ValueError):
        parse_softnet("00000001 00000002\n")


def test_softnet_per_cpu_32_bit_counters():
    batch = run(SoftnetCollector)
    raw, values = batch_raw(batch), batch_values(batch)
    assert raw["node_softnet_processed_total", ("0",)] == 0x229da
    assert raw["node_softnet_times_squeezed_total", ("0",)] == 2
    assert raw["node_softnet_dropped_total", ("1",)] == 0
    assert values["node_softnet_backlog_len", ("1",)] == 0
    assert batch_families(batch)["node_softnet_processed_total"].counter_bits == 32
    assert len(values) == 2 * 7


# -- conntrack ----------------------------------------------------------------
def test_parse_conntrack_stat_sums_cpus_by_column_name():
    text = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop "
            "early_drop icmp_error  expect_new expect_create expect_delete search_restart\n"
            + "0000002a  00000000 00000010 00000000 00000003 00000000 00000000 00000000 00000000 00000001 "
              "00000002 00000000 00000000  00000000 00000000 00000000 0000000f\n" * 2)
    stats = parse_conntrack_stat(text)
    assert (stats["found"], stats["invalid"], stats["insert_failed"], stats["drop"], stats["search_restart"]) \
        == (32, 6, 2, 4, 30)
    recorded = parse_conntrack_stat((PROC_NET / "stat/nf_conntrack").read_text())
    assert len(recorded) == 17 and set(recorded.values()) == {0}
    with pytest.raises(ValueError):
        parse_conntrack_stat("entries found\n00000000\n")


def test_conntrack_table_and_stats():
    values = batch_values(run(ConntrackCollector))
    assert values["node_nf_conntrack_entries", ()] == 0
    assert values["node_nf_conntrack_entries_limit", ()] == 262144
    stats = {n for n, _ in values if n.startswith("node_nf_conntrack_stat_")}
    assert stats == {f"node_nf_conntrack_stat_{s}" for s in (
        "found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop", "search_restart")}


def test_conntrack_without_stat_file_serves_the_table(tmp_path):
    (tmp_path / "proc/sys/net/netfilter").mkdir(parents=True)
    (tmp_path / "proc/sys/net/netfilter/nf_conntrack_count").write_text("17\n")
    (tmp_path / "proc/sys/net/netfilter/nf_conntrack_max").write_text("65536\n")
    assert batch_values(run(ConntrackCollector, tmp_path)) == {
        ("node_nf_conntrack_entries", ()): 17, ("node_nf_conntrack_entries_limit", ()): 65536}


# -- arp ------------------------------------------------------------------------
def test_parse_arp_counts_per_device():
    assert parse_arp((PROC_NET / "arp").read_text()) == {"eth0": 1}
    text = ("IP address       HW type     Flags       HW address            Mask     Device\n"
            "10.0.0.1         0x1         0x2         52:54:00:12:34:56     *        br0\n"
            "10.0.0.2         0x1         0x0         00:00:00:00:00:00     *        br0\n"
            "10.1.0.1         0x1         0x2         52:54:00:12:34:57     *        eth1\n")
    assert parse_arp(text) == {"br0": 2, "eth1": 1}


def test_arp_entries():
    assert batch_values(run(ArpCollector)) == {("node_arp_entries", ("eth0",)): 1}


# -- all of them ------------------------------------------------------------------
ALL = (NetstatCollector, SockstatCollector, SoftnetCollector, ConntrackCollector, ArpCollector)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_empty_tree_is_no_data(cls, tmp_path):
    with pytest.raises(NoData):
        run(cls, tmp_path)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_live_run_on_this_machine(cls):
    try:
        batch = run(cls, "/")
    except NoData:
        pytest.skip(f"{cls.name}: nothing to read on this machine")
    values = batch_values(batch)
    assert values
    assert all(re.match(r"^node_(netstat|sockstat|softnet|nf_conntrack|arp)_", n) for n, _ in values)


def test_live_softnet_has_a_line_per_online_cpu():
    values = batch_values(run(SoftnetCollector, "/"))
    cpus = {labels for name, labels in values if name == "node_softnet_processed_total"}
    assert len(cpus) == os.cpu_count()
