"""The link table of one network namespace, kept current from RTNLGRP_LINK.

:class:`LinkWatcher` dumps the links once (``RTM_GETLINK`` with
``RTEXT_FILTER_VF``), then applies ``RTM_NEWLINK``/``RTM_DELLINK``
notifications on its own thread; nothing is re-dumped per cycle, except after
an overflow (``ENOBUFS``: notifications were lost), when the table is dumped
again and the difference is published.  The values (:class:`Link`,
:class:`LinkChange`, :class:`FlapDetector`...) live in
:mod:`agent.backends.linkinfo` and are re-exported here.

The messages are decoded by :mod:`agent.backends.linkmsg` (only what
:func:`parse_link` reads; importing pyroute2 cost every agent 9 MB).  The
socket and loop are ours: pyroute2 0.9's ``IPRoute(netns=...)`` forks a
child to make its socket (and creates a missing namespace:
``flags=O_CREAT``), its objects are bound to the thread that made them, and
its socket is unusable after ENOBUFS.  The socket is made by a short-lived
thread that ``setns``-es (:func:`call_in_netns`), so no thread of the agent
changes namespace.

Notifications carry no ``IFLA_VFINFO_LIST``: a link with VFs keeps its last
known VFs and is asked for again with ``RTEXT_FILTER_VF``.  An open watcher
pins its namespace: ``ip netns del`` only unmounts the name.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import select
import socket
import threading
import time
from typing import Callable, Mapping, TypeVar

from agent.backends import linkmsg
from agent.backends.hostfs import HostFS
from agent.backends.linkmsg import RTM_DELLINK, RTM_NEWLINK, RTMGRP_LINK, LinkMsg, Message
from agent.backends.netns import call_in_netns  # noqa: F401  (re-exported)
from agent.backends.linkinfo import (CHANGE_KINDS, VF, FlapDetector, Link, LinkChange, change_kinds,
                                     parse_link, with_sysfs)

__all__ = ["CHANGE_KINDS", "VF", "FlapDetector", "Link", "LinkChange", "LinkWatcher", "call_in_netns",
           "change_kinds", "parse_link", "with_sysfs"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

SO_RCVBUFFORCE = 33  # not in Python's socket module
RTEXT_FILTER_VF = 1
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
NLMSG_ERROR, NLMSG_DONE = 2, 3


def _netlink_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                         socket.NETLINK_ROUTE)
    try:
        try:  # root may go past net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, RTMGRP_LINK))
    except BaseException:
        sock.close()
        raise
    return sock


class LinkWatcher:
    """The links of ``netns`` (None: this process's namespace), kept current.

    :meth:`links` is a snapshot; :attr:`generation` is 1 after the first dump
    and grows at every change of the table.  ``on_change`` runs on the
    watcher's thread once the table holds the change; it must not block.
    """

    def __init__(self, netns: str | None = None, on_change: Callable[[LinkChange], None] | None = None,
                 sysfs_root: str = "/sys", *, flaps: FlapDetector | None = None,
                 rcvbuf: int = 8 << 20, dump_timeout: float = 10.0) -> None:
        self.netns, self._on_change = netns, on_change
        self._sysfs = HostFS(sysfs_root) if netns is None else None
        self._flaps = flaps or FlapDetector()
        self._rcvbuf, self._dump_timeout = rcvbuf, dump_timeout
        self._lock = threading.Lock()  # _links, _generation, closing the fds
        self._links: dict[int, Link] = {}
        self._generation = self._overflows = self._errors = 0
        self._sock: socket.socket | None = None
        self._portid, self._wake, self._seq = 0, -1, 0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._dump_seq: int | None = None  # the dump under way, its table, when it began
        self._dump: dict[int, Link] = {}
        self._dump_began = 0.0
        self._dump_again = False
        self._buf = bytearray(1 << 18)

    def start(self) -> None:
        """Dump the table (raising on failure), then follow notifications."""
        if self._sock is not None or self._stop:
            raise RuntimeError("a LinkWatcher starts once")
        make = functools.partial(_netlink_socket, self._rcvbuf)
        self._sock = make() if self.netns is None else call_in_netns(self.netns, make)
        try:
            self._portid = self._sock.getsockname()[0]
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            deadline = time.monotonic() + self._dump_timeout
            while self._generation == 0:
                if self._dump_seq is None:
                    self._request_dump()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no link dump of netns {self.netns!r} in {self._dump_timeout}s")
                poller.poll(100)
                self._pump()
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name=f"links-{self.netns or 'host'}", daemon=True)
        self._thread.start()

    def links(self) -> dict[int, Link]:
        with self._lock:
            return dict(self._links)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def overflows(self) -> int:
        """Times notifications were lost (ENOBUFS, truncation) and the table re-dumped."""
        return self._overflows

    @property
    def errors(self) -> int:
        """Unexpected failures on the watcher thread (logged; it re-dumps and goes on)."""
        return self._errors

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop = True
            if self._wake >= 0:
                os.eventfd_write(self._wake, 1)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():  # stuck in on_change: it closes the fds when it returns
                logger.warning("link watcher of netns %r did not stop in %.1fs", self.netns, timeout)
                return
        self._release()

    def __enter__(self) -> LinkWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the watcher thread ------------------------------------------------------

    def _run(self) -> None:
        try:
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            poller.register(self._wake, select.POLLIN)
            while not self._stop:
                busy = self._dump_seq is not None or self._dump_again
                poller.poll(1000 if busy else None)
                try:
                    self._pump()
                    if self._dump_seq is not None and time.monotonic() - self._dump_began > self._dump_timeout:
                        raise TimeoutError(f"the link dump took over {self._dump_timeout}s")
                except Exception:
                    self._errors += 1
                    logger.exception("link watcher of netns %r failed; re-reading the table", self.netns)
                    self._dump_seq, self._dump_again = None, True
                if self._dump_again and self._dump_seq is None and not self._stop:
                    self._request_dump()
        finally:
            if self._stop:
                self._release()

    def _release(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            if self._wake >= 0:
                os.close(self._wake)
            self._wake = -1

    def _send(self, msg_flags: int, index: int = 0) -> int:
        self._seq += 1
        request = linkmsg.getlink_request(self._seq, msg_flags, index, ext_mask=RTEXT_FILTER_VF)
        self._sock.send(request)  # type: ignore[union-attr]
        return self._seq

    def _request_dump(self) -> None:
        self._dump, self._dump_again, self._dump_began = {}, False, time.monotonic()
        self._dump_seq = self._send(NLM_F_REQUEST | NLM_F_DUMP)

    def _lost(self, why: str) -> None:
        self._overflows += 1
        self._dump_again = True
        logger.warning("link notifications of netns %r lost (%s); re-reading the table", self.netns, why)

    def _pump(self) -> None:
        """Handle whatever the socket holds now."""
        while not self._stop:
            try:
                n, _, flags, _ = self._sock.recvmsg_into([self._buf])  # type: ignore[union-attr]
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._lost("ENOBUFS")
                continue
            if flags & socket.MSG_TRUNC:
                self._lost("truncated message")
                continue
            for msg in linkmsg.parse(memoryview(self._buf)[:n]):
                self._handle(msg)

    def _handle(self, msg: Message) -> None:
        ours = msg.seq == self._dump_seq and msg.pid == self._portid
        link = msg.link
        if msg.type == NLMSG_DONE and ours:
            self._finish_dump()
        elif msg.type == NLMSG_ERROR:
            code = msg.error  # 0: an ACK
            if ours and code in (errno.ENOBUFS, errno.EBUSY, errno.EINTR):
                self._dump_seq = None
                self._lost(f"dump refused: {os.strerror(code)}")
            elif ours and code:
                raise OSError(code, f"link dump of netns {self.netns!r}: {os.strerror(code)}")
            elif code:
                logger.debug("netlink error in netns %r: %s", self.netns, os.strerror(code))
        elif link is None or link["family"] != socket.AF_UNSPEC:
            return  # AF_BRIDGE port messages share RTNLGRP_LINK
        elif ours:
            self._dump_again |= bool(msg.flags & NLM_F_DUMP_INTR)
            self._dump[link["index"]] = self._parse(link, self._dump)
        elif self._dump_seq is not None or self._generation == 0:  # the dump's diff publishes it
            if msg.type == RTM_DELLINK:
                self._dump.pop(link["index"], None)
            else:
                self._dump[link["index"]] = self._parse(link, self._dump)
        else:
            self._update({link["index"]: None if msg.type == RTM_DELLINK else self._parse(link)})

    def _parse(self, msg: LinkMsg, table: Mapping[int, Link] | None = None) -> Link:
        table = self._links if table is None else table
        link = parse_link(msg, table)
        if self._sysfs is not None:
            link = with_sysfs(link, self._sysfs)
        old = table.get(link.ifindex) or self._links.get(link.ifindex)
        if old is not None and old.vfs and msg.get_attr("IFLA_NUM_VF") is None:
            link = dataclasses.replace(link, vfs=old.vfs)  # a notification: ask for the VFs
            self._send(NLM_F_REQUEST, link.ifindex)
        return link

    def _finish_dump(self) -> None:
        table, self._dump, self._dump_seq = self._dump, {}, None
        for index, link in table.items():
            name = table[link.master].name if link.master in table else ""
            if name != link.master_name:
                table[index] = dataclasses.replace(link, master_name=name)
        if self._generation == 0:  # the first dump publishes no changes
            with self._lock:
                self._links, self._generation = table, 1
        else:
            gone = {index: None for index in self._links.keys() - table.keys()}
            self._update({**gone, **{i: lk for i, lk in table.items() if self._links.get(i) != lk}})
        if self._dump_again:
            self._request_dump()

    def _update(self, updates: Mapping[int, Link | None]) -> None:
        changes: list[LinkChange] = []
        now = time.time()
        with self._lock:
            for index, new in updates.items():
                old = self._links.get(index)
                if old == new:
                    continue
                kinds = change_kinds(old, new)
                if new is None:
                    del self._links[index]
                    self._flaps.forget(index)
                else:
                    self._links[index] = new
                    kinds += ["flapping"] if old is not None and self._flapped(old, new) else []
                    if old is not None and old.name != new.name:
                        self._rename_master(new)
                self._generation += 1
                changes += [LinkChange(k, new or old, self.netns, now) for k in kinds]  # type: ignore[arg-type]
        for change in changes:
            if self._on_change is not None:
                try:
                    self._on_change(change)
                except Exception:
                    logger.exception("link change callback failed")

    def _flapped(self, old: Link, new: Link) -> bool:
        count = max(0, new.carrier_changes - old.carrier_changes) or int(old.carrier != new.carrier)
        return any([self._flaps.observe(new.ifindex) for _ in range(min(count, self._flaps.threshold))])

    def _rename_master(self, master: Link) -> None:
        for index, link in self._links.items():
            if link.master == master.ifindex:
                self._links[index] = dataclasses.replace(link, master_name=master.name)
