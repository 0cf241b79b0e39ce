"""Runs the real agent (``python -m agent serve``) as a child process on
ephemeral loopback ports and a unix socket in a temporary directory, and reads
where it listens from its own log lines, as an operator would."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

_KV_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_logfmt(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _KV_RE.findall(line)}


class AgentProcess:
    def __init__(self, tmp: Path, *args: str, env: dict | None = None, config: str | None = None,
                 module: str = "agent", wrap: tuple[str, ...] = ()):
        self.tmp = tmp
        self.socket = tmp / "grpc.sock"
        self.state = tmp / "state"
        # wrap: a command the agent runs under (e.g. setpriv, to drop a capability).
        cmd = [*wrap, sys.executable, "-m", module, "serve", "--grpc-listen", "127.0.0.1:0",
               "--metrics-listen", "127.0.0.1:0", "--grpc-socket", str(self.socket),
               "--state-dir", str(self.state), *args]
        if config is not None:
            self.config = tmp / "hostagent.toml"
            self.config.write_text(config)
            cmd += ["--config", str(self.config)]
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        self.lines: list[str] = []
        self.eof = False
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=full_env, cwd=Path(__file__).parent.parent)
        threading.Thread(target=self._read, daemon=True).start()
        self.grpc_address = ""
        self.metrics_url = ""

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def wait_event(self, event: str, timeout: float = 20.0, start: int = 0) -> dict[str, str]:
        """The fields of the first log line with ``event=<event>`` (from line ``start``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    fields = parse_logfmt(line)
                    if fields.get("event") == event:
                        return fields
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError(f"no {event} in agent log:\n" + "\n".join(self.lines[-30:]))
                self._cond.wait(min(left, 0.2))

    def events(self, event: str) -> list[dict[str, str]]:
        with self._cond:
            return [f for f in map(parse_logfmt, self.lines) if f.get("event") == event]

    def wait_ready(self) -> "AgentProcess":
        self.wait_event("agent.ready")
        for fields in self.events("grpc.listening"):
            if not fields["address"].startswith("unix:"):
                self.grpc_address = fields["address"]
        self.metrics_url = self.wait_event("metrics.listening")["url"]
        return self

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.grpc_address)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if os.environ.get("HOSTAGENT_DEBUG_HANG"):
                    subprocess.run(["py-spy", "dump", "--pid", str(self.proc.pid)])
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "AgentProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
