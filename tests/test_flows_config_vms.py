"""The [sampling] table (refused values name their key) and per-VM labels
from libvirt's live domain XML (tests/fixtures/libvirt) and Neutron tap names."""
from __future__ import annotations

import pathlib
import shutil

import pytest

from agent.features import load_agent_config
from agent.flows.config import SECTION, CollectorAddress, SamplingConfig, parse_sampling, rate_for
from agent.flows.vms import neutron_port_prefix, parse_domain, read_vm_ports

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "libvirt"


def _fail(key, msg):
    return ValueError(f"{key}: {msg}")


def test_absent_or_empty_means_off():
    assert not parse_sampling(None, _fail).enabled
    assert not parse_sampling({"interfaces": []}, _fail).enabled
    assert not SamplingConfig().collectors


def test_full_table_round_trips():
    cfg = parse_sampling({"interfaces": ["eth*", "tap*", "br-ex"], "rate": 512, "header_bytes": 256,
                          "max_flows": 1000, "polling_interval": "30s", "retention": "2m",
                          "collectors": [{"address": "192.0.2.1"}, {"address": "2001:db8::1", "port": 9999}]},
                         _fail)
    assert cfg.interfaces == ("eth*", "tap*", "br-ex") and cfg.rate == 512 and cfg.retention == 120
    assert cfg.collectors == (CollectorAddress("192.0.2.1", 6343), CollectorAddress("2001:db8::1", 9999))
    import tomllib
    text = "\n".join(SECTION.to_toml(cfg))
    assert parse_sampling(tomllib.loads(text)["sampling"], _fail) == cfg


@pytest.mark.parametrize("table, key", [
    ({"interfaces": "eth0"}, "sampling.interfaces"),
    ({"interfaces": ["has space"]}, "sampling.interfaces"),
    ({"rate": -1}, "sampling.rate"),
    ({"rate": 1.5}, "sampling.rate"),
    ({"header_bytes": 10}, "sampling.header_bytes"),
    ({"max_flows": 0}, "sampling.max_flows"),
    ({"polling_interval": "0.5s"}, "sampling.polling_interval"),
    ({"retention": "1h"}, "sampling.retention"),
    ({"agent_address": "not-an-ip"}, "sampling.agent_address"),
    ({"namespace": "../x"}, "sampling.namespace"),
    ({"bogus": 1}, "sampling.bogus"),
    ({"collectors": {"address": "192.0.2.1"}}, "sampling.collectors"),
    ({"collectors": [{"port": 6343}]}, "sampling.collectors[0].address"),
    ({"collectors": [{"address": "192.0.2.1", "port": 0}]}, "sampling.collectors[0].port"),
    ({"collectors": [{"address": "collector.example"}]}, "sampling.collectors[0].address"),
])
def test_invalid_values_name_the_key(table, key):
    with pytest.raises(ValueError) as exc:
        parse_sampling(table, _fail)
    assert str(exc.value).startswith(key + ":")


def test_the_agent_config_refuses_a_bad_table_naming_the_key(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[sampling]\ninterfaces = ["eth0"]\nheader_bytes = 4\n')
    with pytest.raises(Exception) as exc:
        load_agent_config(str(path))
    assert "sampling.header_bytes" in str(exc.value)


def test_rate_from_link_speed_like_hsflowd():
    assert rate_for(100) == 100 and rate_for(1000) == 100
    assert rate_for(10_000) == 1000 and rate_for(100_000) == 10_000
    assert rate_for(None) == 400 and rate_for(0) == 400


def test_nova_domain_gives_instance_project_and_ports():
    ports = parse_domain((FIXTURES / "instance-0000002a.xml").read_bytes())
    assert [p.ifname for p in ports] == ["tap1a2b3c4d-5e", "tap77aa88bb-99"]
    p = ports[0]
    assert p.instance_uuid == "6f1b4c2e-8a3d-4e7f-9b21-0c5d6e7f8a90"
    assert (p.instance_name, p.domain_name) == ("billing-db-1", "instance-0000002a")
    assert (p.project_id, p.project_name) == ("9a8b7c6d5e4f40312a1b2c3d4e5f6071", "finance")
    assert p.port_prefix == "1a2b3c4d-5e" and p.mac == "fa:16:3e:12:34:56"
    assert ports[1].port_prefix == "77aa88bb-99"


def test_plain_libvirt_domain_has_no_project_and_no_port():
    [p] = parse_domain((FIXTURES / "plain-vm.xml").read_text())  # the interface without target is skipped
    assert (p.ifname, p.instance_name, p.project_id, p.port_prefix) == ("vnet0", "lab-router", "", "")


def test_neutron_tap_names():
    assert neutron_port_prefix("tap1a2b3c4d-5e") == "1a2b3c4d-5e"
    for name in ("tap1a2b3c4d-5", "tap0", "eth0", "vnet0", "tap1a2b3c4d-5ef"):
        assert neutron_port_prefix(name) == ""


def test_directory_reading_skips_broken_files_and_absence_is_no_labels(tmp_path):
    for f in FIXTURES.iterdir():
        shutil.copy(f, tmp_path)
    ports = read_vm_ports(str(tmp_path))  # truncated.xml and notes.txt add nothing
    assert set(ports) == {"tap1a2b3c4d-5e", "tap77aa88bb-99", "vnet0"}
    assert read_vm_ports(str(tmp_path / "missing")) == {}
    assert read_vm_ports("") == {}
    with pytest.raises(ValueError):
        parse_domain((FIXTURES / "truncated.xml").read_text())
