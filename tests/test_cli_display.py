"""What the CLI prints for people (and for jq): values, labels, JSON."""
import json
import math

import pytest
from google.protobuf import struct_pb2

from agent.cli import display
from agent.gen.hostagent.v1 import bmc_pb2, inventory_pb2, operations_pb2, telemetry_pb2 as tpb


@pytest.mark.parametrize("value, raw, shown", [
    (3.0, False, "3"),
    (0.0, False, "0"),
    (-12.0, False, "-12"),
    (999_999.0, False, "999999"),
    (1_234_567.0, False, "1.2M"),
    (1_234_567.0, True, "1234567"),
    (18_446_744_073_709_551_615.0, True, "18446744073709551616"),  # every digit, no exponent
    (0.25, False, "0.25"),
    (1 / 3, False, "0.333333"),
    (1 / 3, True, repr(1 / 3)),
    (2.5e6, False, "2.5M"),
    (999_960_000.0, False, "1.0G"),  # rounds up to the next prefix, not "1000.0M"
    (math.nan, False, "NaN"),
    (math.inf, False, "+Inf"),
    (-math.inf, True, "-Inf"),
])
def test_numbers(value, raw, shown):
    assert display.number(value, raw) == shown


@pytest.mark.parametrize("value, name, unit, shown", [
    (24_100_000_000.0, "node_memory_MemTotal_bytes", "", "24.1 GB"),
    (24_100_000_000.0, "process_resident_memory_bytes", "bytes", "24.1 GB"),
    (512.0, "node_network_receive_bytes_total", "bytes", "512 B"),
    (1500.0, "node_network_receive_bytes_total", "bytes", "1.5 kB"),
    (999_999.0, "node_memory_Foo_bytes", "", "1.0 MB"),
    (1_700_000_000.0, "process_start_time_seconds", "seconds", "2023-11-14T22:13:20Z"),
    (1_700_000_000.0, "hostagent_collector_last_success_timestamp_seconds", "seconds",
     "2023-11-14T22:13:20Z"),
    (12.0, "node_load1", "", "12"),
])
def test_values_by_family(value, name, unit, shown):
    assert display.metric_value(value, name, unit) == shown


def test_raw_values_and_rates():
    name = "node_network_receive_bytes_total"
    assert display.metric_value(24_100_000_000.0, name, "bytes", raw=True) == "24100000000"
    assert display.metric_value(1_250_000.0, name, "bytes", per_second=True) == "1.2 MB/s"
    assert display.metric_value(0.5, "node_cpu_seconds_total", "seconds", per_second=True) == "0.5/s"
    assert display.metric_value(1_700_000_000.0, "process_start_time_seconds", raw=True) == "1700000000"


def test_empty_labels_are_left_out():
    assert display.labels({"mode": "idle", "cpu": "0"}) == '{cpu="0",mode="idle"}'
    assert display.labels({"device": "eth0", "netns": ""}) == '{device="eth0"}'
    assert display.labels({"netns": ""}) == ""
    assert display.labels({}) == ""


def test_json_integers_are_integers():
    resp = tpb.GetMetricsResponse(families=[tpb.MetricFamily(
        info=tpb.MetricFamilyInfo(name="node_load1"),
        samples=[tpb.Sample(value=5.0), tpb.Sample(value=0.0), tpb.Sample(value=0.5),
                 tpb.Sample(value=math.nan, labels={"a": "b"})])])
    doc = display.message_to_dict(resp)
    values = [s["value"] for s in doc["families"][0]["samples"]]
    assert values == [5, 0, 0.5, "NaN"] and type(values[0]) is int and type(values[1]) is int
    assert doc["families"][0]["samples"][3]["labels"] == {"a": "b"}

    inv = inventory_pb2.NodeInventory(memory=inventory_pb2.MemoryInfo(total_bytes=2**40))
    inv.block_devices.add(name="sda", size_bytes=10**12)
    doc = display.message_to_dict(inv)
    assert doc["memory"]["total_bytes"] == 2**40  # int64: a string in protobuf's JSON mapping
    assert doc["block_devices"][0]["size_bytes"] == 10**12

    op = operations_pb2.Operation(name="operations/x")
    op.result.update({"cleared_entries": 3.0, "target": "lab1", "nested": {"n": [1.0, 1.5]}})
    doc = display.message_to_dict(op)
    assert doc["result"] == {"cleared_entries": 3, "target": "lab1", "nested": {"n": [1, 1.5]}}
    assert type(doc["result"]["cleared_entries"]) is int
    assert display.message_to_dict(struct_pb2.Struct(fields={"a": struct_pb2.Value(number_value=2)})) \
        == {"a": 2}

    sensors = bmc_pb2.GetSensorsResponse(target="lab1")
    sensors.sensors.add(number=3, name="CPU Temp", value=47.0)
    assert display.message_to_dict(sensors)["sensors"][0]["value"] == 47
    assert json.loads(json.dumps(display.whole({"up": 1.0, "d": 0.012, "l": [2.0]}))) == \
        {"up": 1, "d": 0.012, "l": [2]}
