"""pyghmi's RMCP+ session, held to the agent's rules.

pyghmi is the IPMI-over-LAN implementation (no forking of ipmitool or
FreeIPMI), but three of its behaviours do not fit an agent that many BMCs and
auditors depend on; this module is the one place that adjusts them:

1. **Cipher suites.**  pyghmi proposes suite 17 (HMAC-SHA256, AES-128) and,
   when the BMC refuses it, silently retries with suite 3 (HMAC-SHA1); when
   the BMC does not announce IPMI 2.0 it logs in with IPMI 1.5 (an MD5
   challenge an eavesdropper can brute-force).  :class:`PolicySession` only
   proposes the suites the target's config allows, in the configured order,
   and refuses IPMI 1.5 unless ``allow_ipmi15`` — with an error that says so,
   never a silent downgrade.  Suite 0 (no authentication) pyghmi never offers.
2. **Stale sessions.**  Credentials are always passed as ``bytes``: with
   ``str`` pyghmi's session cache keys and its stored password differ, and it
   can keep handing out a dead session after a BMC reset.
3. **Concurrent logins.**  A login runs pyghmi's process-wide event loop,
   which also handles other sessions' packets and timers; two logins at the
   same time (one BMC refusing a password, another starting) were measured to
   stall a healthy BMC's call for ~20 s.  Logins are therefore serialized
   (:data:`LOGIN_LOCK`), and :func:`probe` (one session-less Get Channel
   Authentication Capabilities datagram) first checks that the BMC answers at
   all, so a dead BMC never holds the lock through pyghmi's retransmissions.
   Commands on established sessions are not serialized.
4. **The wake-up race.**  All sessions share one pyghmi I/O thread.  A caller
   registers its wait *after* sending; when the reply is taken off the socket
   before that (a fast BMC, a loaded host) nobody wakes the caller, and it
   sleeps until its retransmit timer (0.5-1 s) fires.  :func:`install_wait_fix`
   replaces pyghmi's ``_io_wait`` with one that looks for an already received
   reply after queueing its waiter (closing the window).  bench/bench_ipmi.py
   measures calls with and without it.

The patch is process-wide and idempotent; it is checked against the pyghmi
versions in pyproject.toml (``pyghmi>=1.6,<1.7``).
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from pyghmi.ipmi.private import session as _pyghmi_session

SUITE_SHA256 = 17
SUITE_SHA1 = 3
ALLOWED_SUITES = (SUITE_SHA256, SUITE_SHA1)
_HASH_OF_SUITE = {SUITE_SHA256: 256, SUITE_SHA1: 1}  # pyghmi's ``attemptedhash``
_SUITE_OF_HASH = {v: k for k, v in _HASH_OF_SUITE.items()}


@dataclass(frozen=True)
class SessionPolicy:
    suites: tuple[int, ...] = (SUITE_SHA256,)  # in order of preference
    allow_ipmi15: bool = False


# pyghmi builds sessions through a fixed constructor signature, so the policy
# of each (host, port, user) is looked up rather than passed.
_POLICIES: dict[tuple[str, int, bytes], SessionPolicy] = {}
_POLICIES_LOCK = threading.Lock()


def set_policy(host: str, port: int, user: bytes, policy: SessionPolicy) -> None:
    with _POLICIES_LOCK:
        _POLICIES[(host, port, user)] = policy


def _policy(sess) -> SessionPolicy:
    with _POLICIES_LOCK:
        return _POLICIES.get((sess.bmc, sess.port, sess.userid), SessionPolicy())


class PolicySession(_pyghmi_session.Session):
    """A pyghmi session that proposes only the allowed cipher suites."""

    def _open_rmcpplus_request(self):
        suites = _policy(self).suites
        if self.attemptedhash not in (_HASH_OF_SUITE[s] for s in suites):
            self.attemptedhash = _HASH_OF_SUITE[suites[0]]
        return super()._open_rmcpplus_request()

    def _got_rmcp_response(self, data):
        # pyghmi's fallback: a refused suite-17 proposal becomes a suite-3 one.
        # Allow it only when the config lists 3 after 17.
        refused = (self.sessioncontext == "OPENSESSION" and len(data) > 1
                   and data[0] == self.rmcptag and data[1] != 0)
        if refused:
            suites = _policy(self).suites
            current = _SUITE_OF_HASH.get(self.attemptedhash)
            later = suites[suites.index(current) + 1:] if current in suites else ()
            if not later:
                self.onlogon({"error": f"the BMC refused cipher suite {current} "
                                       f"(RMCP+ status {data[1]}); allowed suites: "
                                       f"{', '.join(map(str, suites))}"})
                return -9
            self.attemptedhash = _HASH_OF_SUITE[later[0]]
            self._open_rmcpplus_request()
            return None
        return super()._got_rmcp_response(data)

    def _get_session_challenge(self):
        # Reached only when the BMC does not announce IPMI 2.0.
        if not _policy(self).allow_ipmi15:
            self.onlogon({"error": "the BMC offers only IPMI 1.5 (MD5 challenge), which this "
                                   "target does not allow (allow_ipmi15 = false)"})
            return None
        return super()._get_session_challenge()

    @property
    def cipher_suite(self) -> int:
        """The negotiated suite; 0 for an IPMI 1.5 session or none yet."""
        if getattr(self, "ipmiversion", 0) != 2.0 or not getattr(self, "logged", 0):
            return 0
        return _SUITE_OF_HASH.get(getattr(self, "integrityalgo", 0), 0)


# ------------------------------------------------------------------ logins --

LOGIN_LOCK = threading.Lock()


def _auth_cap_request() -> bytes:
    """RMCP + IPMI 1.5 session-less Get Channel Authentication Capabilities
    (channel "this", ADMIN, IPMI 2.0 bit): answered by any BMC before login."""
    hdr = bytes([0x20, 0x06 << 2])  # BMC address, NetFn App (request)
    body = bytes([0x81, 0x00, 0x38, 0x8E, 0x04])  # requester, seq, cmd, data
    msg = hdr + bytes([(-sum(hdr)) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF])
    return bytes([0x06, 0x00, 0xFF, 0x07, 0x00]) + b"\0" * 8 + bytes([len(msg)]) + msg


def probe(host: str, port: int, timeout: float) -> bool:
    """True when the BMC at host:port answers one datagram within timeout."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    except OSError:
        return False
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(_auth_cap_request(), addr)
            data, _ = s.recvfrom(512)
        except OSError:  # timeout, ICMP port unreachable
            return False
    return len(data) > 4 and data[0] == 0x06


# ------------------------------------------------------------ wake-up race --

_ORIGINAL_IO_WAIT = _pyghmi_session._io_wait
_installed = False


def _reply_waiting(myaddr) -> bool:
    handlers = _pyghmi_session.Session.bmc_handlers.get(myaddr)
    if not handlers:
        return False
    return any(s.pktqueue for s in list(handlers.values()))


def _io_wait_fixed(timeout, myaddr=None, evq=None):
    """pyghmi's ``_io_wait`` plus one check after the waiter is queued: if
    the I/O thread already took this BMC's reply off the socket, return at
    once instead of sleeping until the retransmit timer."""
    evt = threading.Event()
    if evq is not None:
        evq.append(evt)
    # pyghmi's own clock (os.times()-based), not time.monotonic(): the I/O
    # thread compares deadlines against it, and another clock makes every
    # waiter look expired (a busy ping-pong between the two threads).
    deadline = timeout + _pyghmi_session._monotonic_time()
    _pyghmi_session.ioqueue.append((deadline, evt, myaddr))
    if deadline < _pyghmi_session.selectdeadline:
        intsock = _pyghmi_session.iosockets[0]
        intsock.sendto(b"\x01", (_pyghmi_session.myself, intsock.getsockname()[1]))
    if myaddr is not None and _reply_waiting(myaddr):
        return  # the stale waiter left in ioqueue is set (harmlessly) later
    evt.wait()


def install_wait_fix() -> None:
    global _installed
    if not _installed:
        _pyghmi_session._io_wait = _io_wait_fixed
        _installed = True


def uninstall_wait_fix() -> None:
    """For the benchmark's before/after comparison."""
    global _installed
    _pyghmi_session._io_wait = _ORIGINAL_IO_WAIT
    _installed = False
