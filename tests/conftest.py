"""Fixtures and markers shared by the test modules.

Network namespaces: a test that needs one takes the ``netns`` fixture (and
``peer_netns`` for a second, e.g. the far end of a veth); a test that needs
the ability without a namespace of its own is marked ``@pytest.mark.netns``.
Both skip where namespaces cannot be made, and fail instead with
HOSTAGENT_REQUIRE_NETNS=1, so CI cannot pass by skipping them (see
tests/netns.py).
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests import realkernel
from tests.netns import namespace, require_netns


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "netns: needs root and iproute2 to create network namespaces "
                   "(skips without them; fails with HOSTAGENT_REQUIRE_NETNS=1)")


# -- the real-kernel lane (tests/realkernel.py, docs/testing.md) ---------------
# Tests marked realkernel run only inside the guest kernel that
# scripts/realkernel.sh boots (HOSTAGENT_IN_GUEST=1), and only they run there.
def pytest_ignore_collect(collection_path, config: pytest.Config):
    return realkernel.ignore_collect(collection_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    realkernel.select(config, items)


def pytest_terminal_summary(terminalreporter) -> None:
    realkernel.summary(terminalreporter)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None:
        require_netns()


@pytest.fixture
def netns() -> Iterator[str]:
    """The name of a fresh namespace (``lo`` up, IPv6 off), deleted after
    the test whatever its outcome."""
    require_netns()
    with namespace() as name:
        yield name


@pytest.fixture
def peer_netns() -> Iterator[str]:
    """A second fresh namespace, for tests that need traffic to really
    cross a link: with both ends in one namespace it would go through ``lo``."""
    require_netns()
    with namespace("hostagent-peer") as name:
        yield name


# -- the fake NVML library (tests/fakenvml) ------------------------------------
@pytest.fixture(scope="session")
def fakenvml_library():
    """The fake libnvidia-ml.so.1, built once (cached by source hash)."""
    from tests.fakenvml import build
    return build.build()


@pytest.fixture
def make_fakenvml(tmp_path):
    """``make(gpus=8, omit=())``: a fake NVML with its own control file
    (``omit``: functions left out of the build, an old driver).  Every
    block is released at teardown, so no worker stays asleep in it."""
    from tests.fakenvml import build
    from tests.fakenvml.control import FakeNvml

    made = []

    def make(gpus: int = 8, omit=()):
        fake = FakeNvml(build.build(omit), tmp_path / f"fakenvml-{len(made)}.ctl", gpus)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.release()


@pytest.fixture
def fakenvml(make_fakenvml):
    """A fake NVML with 8 H100s."""
    return make_fakenvml()
