"""The ``[bmc]`` config section (agent.bmc.config, via agent.features.load_agent_config).

Covers defaults, a fully written target, name defaults, cipher-suite policy,
required keys, password references (file: and credential:) checked at load,
duplicate and local-target rules, unknown keys, and the TOML rendering
(round trip, and the password value never appears in it).  Every error must be
a ConfigError naming the dotted key the operator has to fix.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.bmc.config import SECTION, BmcConfig, BmcTargetConfig
from agent.config import ConfigError, config_to_toml
from agent.features import load_agent_config

PASSWORD = "s3cr3t-Bmc-Pa55"


@pytest.fixture
def pwfile(tmp_path) -> Path:
    """A good password file: regular, owned by us, mode 0600."""
    p = tmp_path / "bmc.pass"
    p.write_text(PASSWORD + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def load(tmp_path):
    """Write ``text`` as the config file (with a private state_dir) and load it."""
    def load(text: str):
        path = tmp_path / "hostagent.toml"
        path.write_text(f'state_dir = "{tmp_path / "state"}"\n' + text)
        return load_agent_config(str(path))
    return load


def target(pw: Path | str, **extra: object) -> str:
    """A minimal valid ``[[bmc.targets]]`` table, plus ``extra`` keys (TOML literals)."""
    ref = pw if isinstance(pw, str) else f"file:{pw}"
    lines = ["[[bmc.targets]]"]
    fields = {"host": '"10.0.0.10"', "username": '"hostagent"', "password": f'"{ref}"'}
    fields.update({k: v for k, v in extra.items() if v is not None})
    lines += [f"{k} = {v}" for k, v in fields.items() if v != "DROP"]
    return "\n".join(lines) + "\n"


def error(load, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value


# ------------------------------------------------------------------ defaults --

def test_no_bmc_section_means_no_targets_and_default_backoff(load):
    cfg = load("")
    assert cfg.section(SECTION) == BmcConfig()
    assert cfg.section(SECTION).targets == ()
    assert cfg.section(SECTION).initial_backoff == 2.0
    assert cfg.section(SECTION).max_backoff == 300.0


def test_empty_bmc_section_is_the_same_as_none(load):
    assert load("[bmc]\n").section(SECTION) == BmcConfig()


def test_backoff_durations_are_parsed(load):
    cfg = load('[bmc]\ninitial_backoff = "500ms"\nmax_backoff = "10m"\n')
    assert (cfg.section(SECTION).initial_backoff, cfg.section(SECTION).max_backoff) == (0.5, 600.0)


def test_bad_backoff_names_its_key(load):
    e = error(load, '[bmc]\ninitial_backoff = "soon"\n')
    assert e.key == "bmc.initial_backoff"
    assert "bmc.initial_backoff" in str(e)


# ------------------------------------------------------------------- targets --

def test_full_target(load, pwfile):
    cfg = load(f'''
[bmc]
initial_backoff = "1s"
max_backoff = "2m"

[[bmc.targets]]
name = "node-7.bmc"
local = false
host = "10.0.0.77"
port = 6230
username = "watcher"
password = "file:{pwfile}"
cipher_suites = [17, 3]
allow_ipmi15 = true
privilege = "Operator"
timeout = "1.5s"
''')
    assert cfg.section(SECTION) == BmcConfig(
        targets=(BmcTargetConfig(name="node-7.bmc", host="10.0.0.77", username="watcher",
                                 password=f"file:{pwfile}", port=6230, local=False,
                                 cipher_suites=(17, 3), allow_ipmi15=True,
                                 privilege="operator", timeout=1.5),),
        initial_backoff=1.0, max_backoff=120.0)
    assert cfg.section(SECTION).targets[0].address == "10.0.0.77:6230"


def test_minimal_target_gets_safe_defaults(load, pwfile):
    [t] = load(target(pwfile)).section(SECTION).targets
    assert t.port == 623
    assert t.cipher_suites == (17,)       # suite 3 only if listed
    assert t.allow_ipmi15 is False
    assert t.local is False
    assert t.privilege == "administrator"
    assert t.timeout == 5.0


def test_ipv6_address_is_bracketed(load, pwfile):
    [t] = load(target(pwfile, host='"fd00::10"', name='"v6"')).section(SECTION).targets
    assert t.address == "[fd00::10]:623"


def test_name_defaults_to_local_for_the_local_bmc(load, pwfile):
    [t] = load(target(pwfile, local="true")).section(SECTION).targets
    assert t.name == "local"


def test_name_defaults_to_the_host_otherwise(load, pwfile):
    [t] = load(target(pwfile, host='"bmc-12.example.net"')).section(SECTION).targets
    assert t.name == "bmc-12.example.net"


def test_host_that_is_no_valid_name_asks_for_a_name(load, pwfile):
    e = error(load, target(pwfile, host='"fd00::10"'))  # ':' is not allowed in a name
    assert e.key == "bmc.targets[0].name"
    assert "set name" in e.message


def test_bad_name_is_refused(load, pwfile):
    e = error(load, target(pwfile, name='"has space"'))
    assert e.key == "bmc.targets[0].name"


# ------------------------------------------------------------- cipher suites --

def test_cipher_suite_0_is_refused_because_it_has_no_authentication(load, pwfile):
    e = error(load, target(pwfile, cipher_suites="[17, 0]"))
    assert e.key == "bmc.targets[0].cipher_suites"
    assert "bmc.targets[0].cipher_suites" in str(e)
    assert "authentication" in e.message


def test_unsupported_cipher_suite(load, pwfile):
    e = error(load, target(pwfile, cipher_suites="[5]"))
    assert e.key == "bmc.targets[0].cipher_suites"
    assert "5" in e.message and "not supported" in e.message


def test_duplicate_cipher_suite(load, pwfile):
    e = error(load, target(pwfile, cipher_suites="[17, 3, 17]"))
    assert e.key == "bmc.targets[0].cipher_suites"
    assert "twice" in e.message


def test_empty_cipher_suite_list(load, pwfile):
    e = error(load, target(pwfile, cipher_suites="[]"))
    assert e.key == "bmc.targets[0].cipher_suites"
    assert "non-empty" in e.message


def test_cipher_suites_keep_the_operators_order(load, pwfile):
    [t] = load(target(pwfile, cipher_suites="[3, 17]")).section(SECTION).targets
    assert t.cipher_suites == (3, 17)


# ------------------------------------------------------------- required keys --

@pytest.mark.parametrize("missing", ["host", "username", "password"])
def test_missing_required_key(load, pwfile, missing):
    e = error(load, target(pwfile, **{missing: "DROP"}))
    assert e.key == f"bmc.targets[0].{missing}"
    assert e.message == "required"


def test_second_target_is_named_by_its_index(load, pwfile):
    text = target(pwfile) + target(pwfile, host='"10.0.0.11"', privilege='"root"')
    e = error(load, text)
    assert e.key == "bmc.targets[1].privilege"


# ------------------------------------------------------------------ password --

def test_password_file_that_does_not_exist(load, tmp_path):
    e = error(load, target(f"file:{tmp_path}/nope.pass"))
    assert e.key == "bmc.targets[0].password"
    assert "no such file" in e.message


def test_world_readable_password_file_is_refused(load, pwfile):
    # agent.secrets checks the mode bits for every uid, root included
    # (only the owner check admits root), so this applies when run as root.
    pwfile.chmod(0o644)
    e = error(load, target(pwfile))
    assert e.key == "bmc.targets[0].password"
    assert "0644" in e.message and "chmod 600" in e.message
    assert PASSWORD not in str(e)


def test_private_password_file_is_accepted_and_only_referenced(load, pwfile):
    [t] = load(target(pwfile)).section(SECTION).targets
    assert t.password == f"file:{pwfile}"   # the reference, not the value


def test_relative_password_path_is_refused(load):
    e = error(load, target("file:bmc.pass"))
    assert e.key == "bmc.targets[0].password"
    assert "absolute" in e.message


def test_plain_password_in_the_config_is_refused_without_echoing_it(load):
    e = error(load, target(PASSWORD))
    assert e.key == "bmc.targets[0].password"
    assert PASSWORD not in str(e)


def test_systemd_credential(load, tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "bmc-password").write_text(PASSWORD)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    [t] = load(target("credential:bmc-password")).section(SECTION).targets
    assert t.password == "credential:bmc-password"


def test_systemd_credential_that_is_missing(load, tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    e = error(load, target("credential:bmc-password"))
    assert e.key == "bmc.targets[0].password"
    assert "no such file" in e.message


def test_systemd_credential_without_credentials_directory(load, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    e = error(load, target("credential:bmc-password"))
    assert e.key == "bmc.targets[0].password"
    assert "CREDENTIALS_DIRECTORY" in e.message


# ------------------------------------------------------- duplicates and local --

def test_two_targets_with_the_same_name(load, pwfile):
    text = (target(pwfile, name='"rack"') +
            target(pwfile, name='"rack"', host='"10.0.0.11"'))
    e = error(load, text)
    assert e.key == "bmc.targets[1].name"
    assert "'rack'" in e.message and "twice" in e.message


def test_default_names_collide_too(load, pwfile):
    e = error(load, target(pwfile) + target(pwfile, username='"other"'))  # both "10.0.0.10"
    assert e.key == "bmc.targets[1].name"


def test_same_bmc_and_user_twice(load, pwfile):
    text = target(pwfile, name='"a"') + target(pwfile, name='"b"')
    e = error(load, text)
    assert e.key == "bmc.targets[1].host"
    assert "10.0.0.10:623" in e.message


def test_same_bmc_with_another_user_or_port_is_fine(load, pwfile):
    text = (target(pwfile, name='"a"') + target(pwfile, name='"b"', username='"ro"') +
            target(pwfile, name='"c"', port="624"))
    assert [t.name for t in load(text).section(SECTION).targets] == ["a", "b", "c"]


def test_two_local_targets(load, pwfile):
    text = (target(pwfile, local="true", name='"one"') +
            target(pwfile, local="true", name='"two"', host='"10.0.0.11"'))
    e = error(load, text)
    assert e.key == "bmc.targets[1].local"
    assert "only one" in e.message


# ------------------------------------------------------------- unknown / bad --

def test_unknown_key_in_a_target(load, pwfile):
    e = error(load, target(pwfile, pasword='"x"'))
    assert e.key == "bmc.targets[0].pasword"
    assert "unknown key" in e.message and "password" in e.message


def test_unknown_key_in_the_bmc_section(load):
    e = error(load, "[bmc]\nbackoff = 3\n")
    assert e.key == "bmc.backoff"
    assert "unknown key" in e.message


def test_bad_privilege(load, pwfile):
    e = error(load, target(pwfile, privilege='"root"'))
    assert e.key == "bmc.targets[0].privilege"
    assert "administrator" in e.message


@pytest.mark.parametrize("port", ["0", "65536", '"623"'])
def test_bad_port(load, pwfile, port):
    assert error(load, target(pwfile, port=port)).key == "bmc.targets[0].port"


def test_targets_must_be_an_array_of_tables(load):
    assert error(load, '[bmc]\ntargets = "10.0.0.10"\n').key == "bmc.targets"


def test_error_names_the_config_file(load, tmp_path, pwfile):
    e = error(load, target(pwfile, cipher_suites="[0]"))
    assert str(e).startswith(str(tmp_path / "hostagent.toml"))


# ----------------------------------------------------------------- rendering --

def test_rendered_config_round_trips_and_never_contains_the_password(load, pwfile, tmp_path):
    cfg = load('''
[bmc]
initial_backoff = "750ms"
max_backoff = "1h"
''' + target(pwfile, name='"local"', local="true", cipher_suites="[3, 17]",
             allow_ipmi15="true", privilege='"user"', timeout='"2.5s"', port="6623")
       + target(pwfile, host='"fd00::10"', name='"v6"'))
    text = config_to_toml(cfg)
    assert "[bmc]" in text
    assert text.count("[[bmc.targets]]") == 2
    assert f'password = "file:{pwfile}"' in text
    assert PASSWORD not in text

    again_path = tmp_path / "rendered.toml"
    again_path.write_text(text)
    again = load_agent_config(str(again_path))
    assert again == cfg
    assert again.section(SECTION).targets[0].cipher_suites == (3, 17)


def test_rendered_config_without_targets_round_trips(load, tmp_path):
    cfg = load("")
    text = config_to_toml(cfg)
    assert "[bmc]" in text and "[[bmc.targets]]" not in text
    p = tmp_path / "rendered.toml"
    p.write_text(text)
    assert load_agent_config(str(p)) == cfg


def test_rendering_a_credential_reference(load, tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "bmc-password").write_text(PASSWORD)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = config_to_toml(load(target("credential:bmc-password")))
    assert 'password = "credential:bmc-password"' in text
    assert PASSWORD not in text

