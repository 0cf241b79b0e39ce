"""The systemd notify protocol (sd_notify(3)), for Type=notify units.

One datagram of newline-separated ``KEY=VALUE`` lines to the AF_UNIX socket
named by ``NOTIFY_SOCKET`` (a path, or an abstract name when it starts with
``@``).  Without that variable (not under systemd, or in tests) every method
is a no-op that returns False.  Sending never raises: a lost notification
must not take the daemon down.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Mapping


class Notifier:
    """Built once by the daemon from its environment."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self._env = env
        name = env.get("NOTIFY_SOCKET", "")
        if name.startswith("@"):
            self.address: str | None = "\0" + name[1:]
        elif name.startswith("/"):
            self.address = name
        else:  # unset, or a transport we do not speak (vsock:...)
            self.address = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, text: str) -> bool:
        """Send ``text`` as one datagram; True when it was sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(text.encode("utf-8", "replace"), self.address)
        except OSError:
            return False
        return True

    def notify(self, **fields: object) -> bool:
        """``notify(READY=1, STATUS="serving")`` -> "READY=1\\nSTATUS=serving".
        Newlines inside a value are replaced so it cannot forge another field."""
        lines = []
        for key, value in fields.items():
            if isinstance(value, bool):
                value = int(value)
            text = str(value).replace("\r", " ").replace("\n", " ")
            lines.append(f"{key.upper()}={text}")
        return self.send("\n".join(lines))

    def ready(self, status: str | None = None) -> bool:
        return self.notify(READY=1, **_status(status))

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        return self.notify(STOPPING=1, **_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """Type=notify-reload needs MONOTONIC_USEC with RELOADING=1; send
        ``ready()`` when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec, **_status(status))

    def watchdog_interval(self) -> float | None:
        """Seconds between ``watchdog()`` pings (half of WatchdogSec=), or
        None when the watchdog is off or meant for another process."""
        pid = self._env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 2e6 if usec > 0 else None


def _status(text: str | None) -> dict[str, str]:
    return {} if text is None else {"STATUS": text}
