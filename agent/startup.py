"""Why a start fails, said once: each failure becomes one :class:`StartError`
that names the file or address, says what to do, and carries the exit code
systemd acts on.

* ``EXIT_CONFIG`` (2): the config or the files must change; restarting
  cannot help, so the unit says ``RestartPreventExitStatus=2``.
* ``EXIT_RETRY`` (1): the place is taken or not there yet (an address in
  use, another agent on the unix socket, an address not up at boot).  That
  often clears by itself: the previous instance finishing its stop, a
  short-lived process on the port, DHCP.  systemd restarts after
  ``RestartSec=``; each try logs one line, so a lasting conflict is visible.

``daemon.serve`` logs the error as ``agent.start_failed`` and exits with it.
What keeps a start quick besides (servicers built at their first call) is
``agent.features.lazy``, where the features can use it too.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import sqlite3
import threading

from agent.config_values import split_hostport
from agent.logs import get_logger
from agent.operations.journal import Journal, JournalCorrupt, JournalError, move_aside
from agent.operations.manager import OperationKind, OperationManager
from agent.operations.reconcile import reconcile, unfinished
from agent.telemetry.events import Severity
from agent.security.peercred import SocketInUse

log = get_logger(__name__)

EXIT_RETRY = 1
EXIT_CONFIG = 2
_RETRY_ERRNOS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)


class StartError(Exception):
    """The agent cannot start: ``error`` at ``where`` (path=, address=...);
    ``action`` is what the operator does about it."""

    def __init__(self, error: str, action: str, code: int = EXIT_CONFIG, **where: str) -> None:
        super().__init__(error)
        self.error, self.action, self.code, self.where = error, action, code, where


def make_state_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o750, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StartError("not a directory", "set state_dir to a directory (or move what is there "
                         "away)", path=path) from None
    except OSError as exc:
        raise StartError(f"cannot create the state directory: {exc.strerror or exc}",
                         "set state_dir to a directory the agent can write", path=path) from None


def lock_state_dir(path: str) -> int:
    """Hold ``<state_dir>/agent.lock`` (flock) for the agent's life: two
    agents on one state directory would interleave one audit chain and one
    journal.  Returns the descriptor (closing it releases the lock)."""
    lock_path = os.path.join(path, "agent.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise StartError("another agent uses this state directory",
                         "stop it, or give this one its own state_dir",
                         code=EXIT_RETRY, path=path, holder=f"pid {holder}" if holder else "") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def open_journal(path: str) -> tuple[Journal, str | None, str]:
    """The operations journal; a corrupt one is moved aside and a new one
    made: (journal, where the old file went or None, why)."""
    try:
        return Journal(path), None, ""
    except JournalCorrupt as exc:
        reason = exc.reason
    except JournalError as exc:  # a newer schema: this is a downgrade
        raise StartError(str(exc), "run the agent version that wrote it, or move the file away "
                         "(its operations are then forgotten)", path=path) from None
    except sqlite3.Error as exc:  # locked by another process, or the like
        raise StartError(f"cannot open the operations journal: {exc}",
                         "check that no other agent uses this state_dir", code=EXIT_RETRY,
                         path=path) from None
    except OSError as exc:
        raise StartError(f"cannot open the operations journal: {exc.strerror or exc}",
                         "check the file and state_dir: type, owner, mode", path=path) from None
    try:
        moved = move_aside(path)
        return Journal(path), moved, reason
    except (OSError, sqlite3.Error, JournalError) as exc:
        raise StartError(f"corrupt ({reason}) and cannot be replaced: {exc}",
                         "move the file away by hand", path=path) from None


PURGE_EVERY = 3600.0  # seconds between purges of old finished operations


def start_operations(state_dir: str, kinds: dict[str, OperationKind], workers: int,
                     retention: float, audit, stop: threading.Event
                     ) -> tuple[Journal, OperationManager, list[tuple]]:
    """Open the operations journal, recover what a crash left unfinished,
    reconcile it with the audit trail and start the hourly purge (until
    ``stop``).  Returns the journal, the manager and the events to publish
    once the agent has started (kind, severity, message, labels)."""
    events: list[tuple] = []
    path = os.path.join(state_dir, "operations.db")
    journal, moved, reason = open_journal(path)
    if moved:
        # Refusing to start would cost the node its telemetry and BMC
        # control; what is lost is short-lived operations' idempotency.
        log.error("operations.journal_corrupt", path=path, error=reason, moved_to=moved,
                  action="started with an empty journal: earlier operations are forgotten "
                         "(NOT_FOUND) and a retried request_id runs again; the old file is kept")
        events.append((
            "operations.journal_reset", Severity.ERROR,
            f"{path} was unreadable and moved to {os.path.basename(moved)}; operations "
            "started before this start are forgotten", {"path": path, "moved_to": moved}))
    manager = OperationManager(journal, kinds, workers, retention)
    before = unfinished(journal)
    manager.recover()
    reconcile(before, journal, audit)  # the kill -9 gap: docs/security.md

    def purge() -> None:
        while not stop.wait(PURGE_EVERY):
            try:
                manager.purge()
            except Exception:  # noqa: BLE001 - keep purging next hour
                log.exception("operations.purge_failed")

    threading.Thread(target=purge, name="operations-purge", daemon=True).start()
    return journal, manager, events


def _bind_error(host: str, port: int) -> OSError | None:
    """Bind ``host:port`` as a listener would, to learn why gRPC could not:
    its exception carries no errno."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host}: {exc.strerror}")
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return exc
    return None


def listen_failed(key: str, address: str, exc: Exception) -> StartError:
    """A listener on ``address`` (config key ``key``) could not be opened."""
    host, port = split_hostport(address)
    err = exc if isinstance(exc, OSError) and exc.errno else _bind_error(host, port)
    if err is None:  # free again by now: say what gRPC said
        return StartError(str(exc), f"check {key}; systemd retries", code=EXIT_RETRY,
                          address=address)
    if err.errno == errno.EADDRINUSE:
        action = (f"another process listens there (ss -ltnp 'sport = :{port}' shows which); "
                  f"stop it or change {key}")
    elif err.errno == errno.EADDRNOTAVAIL:
        action = f"{host} is not an address of this host (yet); fix {key} if it never will be"
    elif err.errno in (errno.EACCES, errno.EPERM):
        action = f"ports below 1024 need privilege: choose another port in {key}"
    else:
        action = f"check {key}"
    return StartError((err.strerror or str(err)).lower(), action,
                      code=EXIT_RETRY if err.errno in _RETRY_ERRNOS else EXIT_CONFIG,
                      address=address)


def socket_failed(path: str, exc: OSError) -> StartError:
    """The unix socket (``server.grpc_socket``) could not be made."""
    if isinstance(exc, SocketInUse):
        return StartError("another process is serving this socket",
                          "stop it (another hostagent? systemctl status hostagent) or set "
                          "server.grpc_socket to another path", code=EXIT_RETRY, path=path,
                          holder=exc.holder)
    return StartError(exc.strerror or str(exc), "set server.grpc_socket to a path the agent can "
                      "create; it replaces only a socket nobody listens on", path=path)
