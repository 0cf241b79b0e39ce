"""agent.secrets: secrets load from private files or systemd credentials and
never show their value in repr, str, logs, pickles or error messages."""
from __future__ import annotations

import copy
import io
import logging
import os
import pickle

import pytest

from agent.logs import get_logger, setup_logging
from agent.secrets import MAX_SIZE, Secret, SecretError, load_secret, redact

CANARY = "canary-Pa55w0rd-7f3a"


def write(path, data: bytes | str = CANARY + "\n", mode: int = 0o600):
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def refusal(spec: str, **kwargs) -> str:
    with pytest.raises(SecretError) as info:
        load_secret(spec, **kwargs)
    message = str(info.value)
    assert CANARY not in message and CANARY not in repr(info.value)
    return message


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# -- file: -------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_file_is_accepted_and_one_newline_stripped(tmp_path, mode):
    path = write(tmp_path / "bmc.pass", mode=mode)
    secret = load_secret(f"file:{path}")
    assert secret.reveal() == CANARY.encode()
    assert isinstance(secret.reveal(), bytes)
    assert secret.source == f"file:{path}"


@pytest.mark.parametrize("data, value", [
    (CANARY, CANARY),                     # no newline
    (CANARY + "\r\n", CANARY),            # an editor's CRLF
    (CANARY + "\n\n", CANARY + "\n"),     # only one is stripped
    (" " + CANARY + " \n", " " + CANARY + " "),  # spaces are part of a password
])
def test_exactly_one_trailing_newline_is_stripped(tmp_path, data, value):
    path = write(tmp_path / "s", data)
    assert load_secret(f"file:{path}").reveal() == value.encode()


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660, 0o606, 0o620])
def test_file_open_to_group_or_others_is_refused_with_the_fix(tmp_path, mode):
    path = write(tmp_path / "bmc.pass", mode=mode)
    message = refusal(f"file:{path}")
    assert str(path) in message
    assert f"mode {mode:04o} is too open; chmod 600" in message


def test_symlink_to_a_too_open_file_is_refused(tmp_path):
    target = write(tmp_path / "real.pass", mode=0o644)
    link = tmp_path / "bmc.pass"
    link.symlink_to(target)
    message = refusal(f"file:{link}")
    assert "mode 0644 is too open" in message
    assert str(link) in message and str(target) in message


def test_symlink_to_a_private_file_is_accepted(tmp_path):
    target = write(tmp_path / "real.pass", mode=0o600)
    link = tmp_path / "bmc.pass"
    link.symlink_to(target)
    assert load_secret(f"file:{link}").reveal() == CANARY.encode()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_file_owned_by_another_user_is_refused(tmp_path):
    path = write(tmp_path / "bmc.pass")
    os.chown(path, 65534, 65534)
    assert "owned by uid 65534" in refusal(f"file:{path}")


def test_missing_file_directory_and_fifo_are_refused(tmp_path):
    assert "no such file" in refusal(f"file:{tmp_path}/absent")
    assert "not a regular file" in refusal(f"file:{tmp_path}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert "not a regular file" in refusal(f"file:{fifo}")  # and does not hang


def test_relative_path_is_refused(tmp_path):
    assert "absolute" in refusal("file:etc/bmc.pass")


def test_empty_and_oversized_files_are_refused(tmp_path):
    assert "is empty" in refusal(f"file:{write(tmp_path / 'empty', '')}")
    assert "is empty" in refusal(f"file:{write(tmp_path / 'newline', chr(10))}")
    big = write(tmp_path / "big", CANARY.encode() * (MAX_SIZE // len(CANARY) + 1))
    assert "larger than 64 KiB" in refusal(f"file:{big}")
    exact = write(tmp_path / "exact", b"x" * MAX_SIZE)
    assert len(load_secret(f"file:{exact}").reveal()) == MAX_SIZE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a 0000 file anyway")
def test_unreadable_file_is_refused(tmp_path):
    path = write(tmp_path / "s", mode=0o000)
    assert "permission denied" in refusal(f"file:{path}")


def test_value_without_a_known_prefix_is_not_echoed():
    # Someone pasted the password itself where a reference belongs.
    message = refusal(CANARY)
    assert "file:/path" in message and "credential:NAME" in message


# -- credential: -------------------------------------------------------------

def test_credential_is_read_from_the_credentials_directory(tmp_path):
    write(tmp_path / "bmc-password", mode=0o400)
    secret = load_secret("credential:bmc-password", env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert secret.reveal() == CANARY.encode()
    assert secret.source == "credential:bmc-password"


def test_credential_without_credentials_directory_is_refused():
    message = refusal("credential:bmc-password", env={})
    assert "CREDENTIALS_DIRECTORY is not set" in message and "LoadCredential=" in message
    assert "CREDENTIALS_DIRECTORY" in refusal("credential:bmc-password",
                                              env={"CREDENTIALS_DIRECTORY": ""})


@pytest.mark.parametrize("name", ["../etc/shadow", "a/b", "", ".", ".."])
def test_credential_name_must_be_a_plain_file_name(tmp_path, name):
    assert "plain file name" in refusal(f"credential:{name}",
                                        env={"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_missing_credential_is_refused(tmp_path):
    message = refusal("credential:absent", env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert message.startswith("credential:absent: ") and "no such file" in message


# -- the value never shows -----------------------------------------------------

@pytest.fixture
def secret(tmp_path) -> Secret:
    return load_secret(f"file:{write(tmp_path / 'bmc.pass')}")


def test_repr_str_and_format_never_show_the_value(secret):
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret!s}",
             f"{secret:>40}", "%s %r" % (secret, secret), repr([secret]), repr({"pw": secret}),
             "{}".format(secret)]
    for text in shown:
        assert CANARY not in text
    assert repr(secret) == f"Secret({secret.source})"


def test_logging_a_secret_never_shows_the_value(secret, caplog):
    stream = io.StringIO()
    setup_logging("debug", "logfmt", stream)
    get_logger("t").info("bmc.login", credential=secret, note=f"using {secret}")
    logging.getLogger("t").warning("plain %s %r", secret, secret)
    setup_logging("debug", "json", stream)
    get_logger("t").info("bmc.login", credential=secret)
    out = stream.getvalue()
    assert out.count("\n") == 3 and out.count("bmc.pass") == 5, out
    assert CANARY not in out and CANARY not in caplog.text


def test_pickling_is_refused(secret):
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled") as info:
            pickle.dumps(secret, protocol=protocol)
        assert CANARY not in str(info.value)
    with pytest.raises(TypeError):
        pickle.dumps({"config": [secret]})


def test_equality_is_identity(secret):
    twin = load_secret(secret.source)
    assert twin.reveal() == secret.reveal()
    assert twin != secret and not (twin == secret)
    assert secret == secret
    assert secret != CANARY.encode() and secret != CANARY
    assert len({secret, twin}) == 2
    assert copy.copy(secret) is secret and copy.deepcopy({"s": secret})["s"] is secret


def test_value_must_be_bytes():
    with pytest.raises(TypeError):
        Secret(CANARY, "test")  # type: ignore[arg-type]
    assert Secret(CANARY.encode(), "test").reveal() == CANARY.encode()


def test_no_attribute_listing_shows_the_value(secret):
    assert not hasattr(secret, "__dict__")
    with pytest.raises(TypeError):
        vars(secret)


# -- redact ------------------------------------------------------------------

def test_redact_masks_every_form_of_the_value(secret):
    other = Secret(b"tok'en\n\x01", "credential:token")
    text = (f"login failed for admin:{CANARY} (sent b'{CANARY}'), retry {CANARY}; "
            f"token {other.reveal()!r} or {other.reveal().decode()}")
    clean = redact(text, [secret, other])
    assert CANARY not in clean and "tok'en" not in clean
    assert clean.count("***") == 5
    assert clean.startswith("login failed for admin:*** (sent b'***'), retry ***;")


def test_redact_masks_a_containing_secret_whole():
    short, long = Secret(b"Pa55", "a"), Secret(b"Pa55w0rd-long", "b")
    assert redact("x Pa55w0rd-long y Pa55 z", [short, long]) == "x *** y *** z"


def test_redact_without_secrets_or_matches_changes_nothing(secret):
    assert redact("nothing to hide", []) == "nothing to hide"
    assert redact("nothing to hide", [secret]) == "nothing to hide"


def test_redact_handles_values_that_are_not_utf8():
    raw = Secret(b"\xff\xfepw", "file:/k")
    assert redact("seen " + repr(b"\xff\xfepw"), [raw]) == "seen b'***'"
    assert redact("seen \xff\xfepw", [raw]) == "seen ***"
