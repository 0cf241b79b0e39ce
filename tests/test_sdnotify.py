"""agent.sdnotify against a real AF_UNIX datagram socket."""
from __future__ import annotations

import os
import socket
import time
import uuid

import pytest

from agent.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(2)
    yield sock
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_watchdog_stopping_reach_the_socket(listener):
    n = Notifier({"NOTIFY_SOCKET": listener.getsockname()})
    assert n.enabled
    assert n.ready("serving on 127.0.0.1:9447") is True
    assert receive(listener) == "READY=1\nSTATUS=serving on 127.0.0.1:9447"
    assert n.watchdog() is True
    assert receive(listener) == "WATCHDOG=1"
    assert n.stopping() is True
    assert receive(listener) == "STOPPING=1"
    assert n.status("collecting") is True
    assert receive(listener) == "STATUS=collecting"
    assert n.send("EXTEND_TIMEOUT_USEC=5000000") is True
    assert receive(listener) == "EXTEND_TIMEOUT_USEC=5000000"


def test_notify_fields_cannot_forge_other_fields(listener):
    n = Notifier({"NOTIFY_SOCKET": listener.getsockname()})
    assert n.notify(status="line one\nREADY=1", errno=5, ready=True)
    assert receive(listener) == "STATUS=line one READY=1\nERRNO=5\nREADY=1"


def test_reloading_carries_the_monotonic_clock(listener):
    n = Notifier({"NOTIFY_SOCKET": listener.getsockname()})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = receive(listener).split("\n")
    assert first == "RELOADING=1"
    key, usec = second.split("=")
    assert key == "MONOTONIC_USEC" and before <= int(usec) <= after


def test_abstract_socket():
    name = f"hostagent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready() is True
        assert receive(sock) == "READY=1"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1"}])
def test_without_a_socket_everything_is_a_noop(env):
    n = Notifier(env)
    assert not n.enabled
    assert [n.ready(), n.status("x"), n.watchdog(), n.stopping(), n.reloading(),
            n.send("READY=1")] == [False] * 6


def test_send_errors_are_returned_not_raised(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert n.enabled
    assert n.ready() is False


@pytest.mark.parametrize("env,expected", [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<self>"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<other>"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_honours_watchdog_pid(env, expected):
    pids = {"<self>": str(os.getpid()), "<other>": str(os.getpid() + 1)}
    env = {k: pids.get(v, v) for k, v in env.items()}
    assert Notifier(env).watchdog_interval() == expected
