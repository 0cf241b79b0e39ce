"""The /sys network hardware collectors (bonding, infiniband): parsers, each
collector end to end on the ``vm-net`` tree (files written from the kernel's
documented formats), no data on an empty tree, and a run on this machine."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.backends.hostfs import HostFS
from agent.collectors.bonding import Bond, BondingCollector, bond_status, parse_names
from agent.collectors.infiniband import (COUNTERS, InfinibandCollector, parse_counter, parse_rate, parse_state,
                                         read_devices)
from agent.telemetry.collector import CollectorContext, NoData
from agent.telemetry.model import Batch, MetricType
from tests.helpers import batch_families, batch_raw, batch_values

TREE = Path(__file__).parent / "fixtures" / "hosts" / "vm-net"


def run(cls, root=TREE) -> Batch:
    batch = Batch()
    cls(CollectorContext(hostfs=HostFS(root))).collect(batch)
    return batch


# -- bonding ------------------------------------------------------------------------
def test_bond_status_counts_members_up():
    assert parse_names("bond0 bond1\n") == ["bond0", "bond1"]
    assert parse_names("\n") == []
    assert bond_status("bond0", {"eth2": "up", "eth3": "down", "eth4": None}) == Bond("bond0", 3, 1)
    assert bond_status("bond1", {"eth4": "up", "eth5": "going back"}) == Bond("bond1", 2, 1)


def test_bonding_slaves_and_active_per_master():
    assert batch_values(run(BondingCollector)) == {
        ("node_bonding_slaves", ("bond0",)): 2, ("node_bonding_active", ("bond0",)): 1,
        ("node_bonding_slaves", ("bond1",)): 2, ("node_bonding_active", ("bond1",)): 1}


def test_bonding_module_without_bonds_is_no_data(tmp_path):
    (tmp_path / "sys/class/net").mkdir(parents=True)
    (tmp_path / "sys/class/net/bonding_masters").write_text("\n")
    with pytest.raises(NoData):
        run(BondingCollector, tmp_path)


# -- infiniband -------------------------------------------------------------------------
def test_infiniband_value_parsers():
    assert parse_state("4: ACTIVE\n") == 4
    assert parse_state("5: LinkUp") == 5
    assert parse_rate("200 Gb/sec (4X HDR)") == 25e9
    assert parse_rate("2.5 Gb/sec (1X SDR)") == 312.5e6
    assert parse_counter("3107841992370\n") == 3107841992370
    assert parse_counter("N/A (no PMA)\n") is None
    for bad, parse in (("ACTIVE", parse_state), ("fast", parse_rate), ("100 Mb/sec", parse_rate)):
        with pytest.raises(ValueError):
            parse(bad)


def test_infiniband_reads_devices_ports_and_counter_directories():
    devices = {d.name: d for d in read_devices(HostFS(TREE))}
    assert sorted(devices) == ["mlx4_0", "mlx5_0", "mlx5_1"]
    mlx5 = devices["mlx5_0"]
    assert (mlx5.board_id, mlx5.firmware_version, mlx5.hca_type) == ("MT_0000000223", "20.31.1014", "MT4123")
    port = mlx5.ports[0]
    assert (port.port, port.state_id, port.phys_state_id, port.rate, port.lifespan_ms) == ("1", 4, 5, 25e9, 10)
    assert port.counters[("counters", "port_xmit_data")] == 3107841992370  # words, scaled by the family
    assert port.counters[("hw_counters", "out_of_buffer")] == 17
    assert ("hw_counters", "resp_rnr_nak") not in port.counters  # not one node_exporter serves
    roce = devices["mlx5_1"].ports[0]
    assert ("counters", "symbol_error") not in roce.counters  # N/A (no PMA)
    assert [p.port for p in devices["mlx4_0"].ports] == ["1", "2"]
    assert devices["mlx4_0"].ports[1].counters == {}


def test_infiniband_families_units_and_labels():
    batch = run(InfinibandCollector)
    values, raw, families = batch_values(batch), batch_raw(batch), batch_families(batch)
    p = ("mlx5_0", "1")
    assert values["node_infiniband_info", ("mlx5_0", "MT_0000000223", "20.31.1014", "MT4123")] == 1
    assert values["node_infiniband_state_id", p] == 4
    assert values["node_infiniband_physical_state_id", p] == 5
    assert values["node_infiniband_rate_bytes_per_second", p] == 25e9
    assert values["node_infiniband_lifespan_seconds", p] == 0.01
    # port_{xmit,rcv}_data count 4-octet words: bytes = 4 x the file
    assert raw["node_infiniband_port_data_transmitted_bytes_total", p] == 3107841992370
    assert values["node_infiniband_port_data_transmitted_bytes_total", p] == 4 * 3107841992370
    assert values["node_infiniband_port_data_received_bytes_total", p] == 4 * 2891273468116
    assert families["node_infiniband_port_data_received_bytes_total"].unit == "bytes"
    assert values["node_infiniband_port_packets_transmitted_total", p] == 9132416218
    assert values["node_infiniband_port_transmit_wait_total", p] == 12773
    assert values["node_infiniband_link_downed_total", p] == 1
    assert values["node_infiniband_vl15_dropped_total", p] == 0
    assert values["node_infiniband_out_of_buffer_drops_total", p] == 17
    assert values["node_infiniband_local_ack_timeout_errors_total", p] == 3
    assert values["node_infiniband_rx_read_requests_total", p] == 1024
    roce = ("mlx5_1", "1")
    assert values["node_infiniband_state_id", roce] == 1
    assert values["node_infiniband_rp_cnp_packets_handled_total", roce] == 42
    assert values["node_infiniband_roce_adp_retransmits_total", roce] == 5
    assert values["node_infiniband_np_ecn_marked_roce_packets_received_total", roce] == 7
    assert ("node_infiniband_symbol_error_total", roce) not in values
    old = ("mlx4_0", "1")
    assert values["node_infiniband_legacy_data_transmitted_bytes_total", old] == 4 * 77309411328
    assert values["node_infiniband_legacy_packets_received_total", old] == 1073741824
    assert values["node_infiniband_legacy_multicast_packets_received_total", old] == 824
    assert values["node_infiniband_port_data_received_bytes_total", old] == 4 * 4294967295
    assert values["node_infiniband_symbol_error_total", old] == 65535
    assert values["node_infiniband_state_id", ("mlx4_0", "2")] == 2
    assert values["node_infiniband_rate_bytes_per_second", ("mlx4_0", "2")] == 1.25e9
    assert all(f.type is MetricType.COUNTER for n, f in families.items() if n.endswith("_total"))


def test_infiniband_counter_families_are_node_exporters():
    names = {f.name.removeprefix("node_infiniband_") for f in COUNTERS.values()}
    assert len(names) == len(COUNTERS) == 22 + 8 + 29
    assert {"port_data_transmitted_bytes_total", "legacy_data_received_bytes_total",
            "duplicate_requests_packets_total", "rx_icrc_encapsulated_errors_total"} <= names


# -- both -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", (BondingCollector, InfinibandCollector), ids=lambda c: c.name)
def test_empty_tree_is_no_data(cls, tmp_path):
    with pytest.raises(NoData):
        run(cls, tmp_path)


@pytest.mark.parametrize("cls", (BondingCollector, InfinibandCollector), ids=lambda c: c.name)
def test_live_run_on_this_machine(cls):
    try:
        values = batch_values(run(cls, "/"))
    except NoData:
        pytest.skip(f"{cls.name}: no such hardware on this machine")
    assert values
