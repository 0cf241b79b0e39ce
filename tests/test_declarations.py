"""Collectors and features describe themselves (agent.telemetry.collector,
agent.feature): the declared defaults reach the daemon's timing, the ipmi
collector's timeout follows its slowest BMC, and the BMC hub hands each
backend the secret it keeps for redaction."""
from __future__ import annotations

import pytest

from agent.bmc.collector import COLLECTOR as IPMI
from agent.bmc.config import SECTION
from agent.bmc.hub import BmcHub
from agent.collectors.netdev import COLLECTOR as NETDEV
from agent.config import CollectorConfig
from agent.features import FEATURES, declared_collectors, load_agent_config
from agent.secrets import Secret


@pytest.fixture
def load(tmp_path):
    def load(text: str = ""):
        path = tmp_path / "hostagent.toml"
        path.write_text(f'state_dir = "{tmp_path / "state"}"\n' + text)
        return load_agent_config(str(path))
    return load


def target(tmp_path, name: str, timeout: str) -> str:
    pw = tmp_path / "bmc.pass"
    pw.write_text("pw\n")
    pw.chmod(0o600)
    return (f'[[bmc.targets]]\nname = "{name}"\nhost = "{name}.example"\nusername = "u"\n'
            f'password = "file:{pw}"\ntimeout = "{timeout}"\n')


def test_every_collector_is_declared_once_with_its_own_name():
    infos = declared_collectors()
    assert len({c.name for c in infos}) == len(infos)
    assert {c.name for c in infos} >= {"cpu", "netdev", "ipmi"}
    assert all(c.options is not None and not isinstance(c.options, dict) for c in infos)


def test_declared_defaults_fill_only_what_the_file_leaves_unset(load):
    cfg = load()
    eff = NETDEV.effective(cfg.collectors["netdev"], cfg)
    assert (eff.interval, eff.timeout, eff.retention) == (1.0, None, 120.0)
    assert eff.resolve(cfg.telemetry) == (1.0, 1.0)  # the inherited timeout is clamped
    given = CollectorConfig(interval=2.0, timeout=0.5, retention=60.0)
    assert NETDEV.effective(given, cfg) == given


def test_ipmi_timeout_is_the_slowest_bmc_plus_a_margin(load, tmp_path):
    cfg = load()
    assert IPMI.effective(cfg.collectors["ipmi"], cfg).resolve(cfg.telemetry) == (10.0, 4.0)
    cfg = load(target(tmp_path, "a", "3s") + target(tmp_path, "b", "7s"))
    assert IPMI.effective(cfg.collectors["ipmi"], cfg).timeout == 8.0
    cfg = load('[collectors.ipmi]\ntimeout = "2s"\n' + target(tmp_path, "a", "7s"))
    assert IPMI.effective(cfg.collectors["ipmi"], cfg).timeout == 2.0  # as written


def test_the_bmc_feature_declares_its_table_and_collector():
    [bmc] = [f for f in FEATURES if f.name == "bmc"]
    assert bmc.section is SECTION and IPMI in bmc.collectors


def test_the_hub_hands_each_backend_the_secret_it_keeps(load, tmp_path):
    cfg = load(target(tmp_path, "a", "1s"))
    given = []

    def backend(tcfg, password):
        given.append(password)
        return object()

    hub = BmcHub(cfg.section(SECTION), str(tmp_path), backend_factory=backend)
    try:
        [secret] = given
        assert isinstance(secret, Secret) and secret.reveal() == b"pw"
        assert "pw" not in repr(secret)
    finally:
        hub.close()
