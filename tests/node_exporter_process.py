"""Runs the real node_exporter (Debian's ``prometheus-node-exporter``, which
``scripts/bootstrap.sh test`` installs) on a free loopback port, with its
default collectors, beside the agent on the same host."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.prometheus_server import free_port

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def require_node_exporter() -> None:
    """Skip without node_exporter, or fail where the runner must have it
    (``HOSTAGENT_REQUIRE_NODE_EXPORTER=1``, set by scripts/test.sh)."""
    if NODE_EXPORTER is None:
        message = "node_exporter not installed (scripts/bootstrap.sh test installs it)"
        if os.environ.get("HOSTAGENT_REQUIRE_NODE_EXPORTER"):
            pytest.fail(message)
        pytest.skip(message)


def version() -> str:
    out = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True).stdout
    return out.split()[2] if out.startswith("node_exporter, version") else out.strip()


class NodeExporter:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.target}/metrics"
        self.proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address={self.target}", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.scrape()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.1)

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as resp:
            return resp.read().decode()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "NodeExporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
