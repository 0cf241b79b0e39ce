"""What one audit record may hold, and how often denials reach the file.

A caller chooses the size of its arguments and how often it is refused, so
neither may choose how much the audit trail writes (issue 9: 20 MB in 1.8 s
from an unauthenticated caller):

- every string in a record is cut to ``MAX_STRING`` characters, every object
  and list to ``MAX_ITEMS`` entries, nesting to ``MAX_DEPTH``; a whole line
  stays under ``MAX_RECORD`` bytes.  What was cut says so in place, and the
  record names the fields in ``truncated`` and carries ``args_sha256`` so an
  auditor can match it to the request it came from;
- denials are rate-limited per caller by :class:`DenialLimiter`; the
  dropped ones are counted, never silently lost.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

MASK = "***"
_SECRET_RE = re.compile(r"passw(?:or)?d|secret|token|key|credential", re.IGNORECASE)

MAX_STRING = 256
MAX_ITEMS = 32
MAX_DEPTH = 8
MAX_RECORD = 4096
_BIG_INT = 10 ** 18
# Tighter and tighter limits (string length, entries) until a record fits MAX_RECORD.
_LEVELS = ((MAX_STRING, 32), (64, 8), (16, 4))


def redact(value: Any) -> Any:
    """A copy with the value of every key that names a secret (password,
    passwd, secret, token, key, credential; any case, anywhere in the key)
    replaced by ``***``, in nested objects and lists too."""
    if isinstance(value, dict):
        return {str(k): MASK if _SECRET_RE.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII: the same bytes for the same arguments."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str).encode()


def args_digest(redacted_args: Any) -> str:
    """SHA-256 of the canonical JSON of the (already redacted) arguments.
    Redacted, not raw: a hash over a request that holds a short password
    would let whoever reads the trail test guesses of that password."""
    return hashlib.sha256(canonical(redacted_args)).hexdigest()


def bound_text(text: str, limit: int = MAX_STRING) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, marked with its full length."""
    if len(text) <= limit:
        return text, False
    return f"{text[:limit]}...[{len(text)} chars]", True


def bound(value: Any, limit: int = MAX_STRING, items: int = MAX_ITEMS,
          depth: int = 0) -> tuple[Any, bool]:
    """A copy of a JSON-like ``value`` within the limits, and whether
    anything was cut."""
    if isinstance(value, str):
        return bound_text(value, limit)
    if value is None or isinstance(value, (bool, float)):
        return value, False
    if isinstance(value, int):
        return (value, False) if -_BIG_INT < value < _BIG_INT else bound_text(str(value), limit)
    if not isinstance(value, (dict, list, tuple)):
        return bound_text(str(value), limit)
    if depth >= MAX_DEPTH:
        return "...[nested too deep]", True
    cut = len(value) > items
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in list(value.items())[:items]:
            key, key_cut = bound_text(str(key), limit)
            out[key], item_cut = bound(item, limit, items, depth + 1)
            cut = cut or key_cut or item_cut
        if len(value) > items:
            out["..."] = f"[{len(value) - items} more keys]"
        return out, cut
    seq: list[Any] = []
    for item in list(value[:items]):
        item, item_cut = bound(item, limit, items, depth + 1)
        seq.append(item)
        cut = cut or item_cut
    if len(value) > items:
        seq.append(f"...[{len(value) - items} more items]")
    return seq, cut


def encode(rec: dict) -> bytes:
    return (json.dumps(rec, ensure_ascii=True, separators=(",", ":"), default=str) + "\n").encode()


def _size(rec: dict) -> int:
    """The line's length once time, seq and prev are filled in (seq up to 10^12)."""
    return len(encode({**rec, "time": "0000-00-00T00:00:00.000Z", "seq": 10 ** 12, "prev": "0" * 64}))


def build_record(fields: dict[str, Any], args: Any, suppressed: int = 0) -> dict:
    """The record to write, within MAX_RECORD: ``fields`` (identity, peer,
    method, request_id, decision, status, duration_ms, message) and the
    redacted ``args``; time, seq and prev are left to fill in."""
    full = redact(args if args is not None else {})
    for limit, items in _LEVELS:
        truncated: list[str] = []

        def text(name: str) -> str:
            value, cut = bound_text(str(fields[name]), limit)
            if cut:
                truncated.append(name)
            return value

        rec: dict[str, Any] = {"time": "", "seq": 0, "identity": text("identity"),
                               "peer": text("peer"), "method": text("method"),
                               "request_id": text("request_id")}
        rec["args"], cut = bound(full, limit, items)
        if cut:
            rec["args_sha256"] = args_digest(full)
            truncated.append("args")
        duration = fields["duration_ms"]
        rec.update(decision=fields["decision"], status=text("status"),
                   duration_ms=duration if isinstance(duration, (int, float)) else text("duration_ms"),
                   message=text("message"))
        if suppressed:
            rec["suppressed"] = suppressed
        if truncated:
            rec["truncated"] = truncated
        rec["prev"] = ""
        if _size(rec) <= MAX_RECORD:
            return rec
    rec["args"] = {"...": f"[dropped: the record would exceed {MAX_RECORD} bytes]"}
    rec["args_sha256"] = args_digest(full)
    if "args" not in truncated:
        rec["truncated"] = truncated + ["args"]
    return rec


def denial_key(identity: str, peer: str) -> str:
    """Whose bucket a denial spends: the identity; for a caller without one,
    its host (an IPv6 host by its /64, which one machine usually holds whole)."""
    if identity:
        return identity
    scheme, _, rest = peer.partition(":")
    host = rest.rsplit(":", 1)[0] if scheme in ("ipv4", "ipv6") else ""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "peer:" + (scheme if scheme == "unix" else peer[:MAX_STRING])
    if ip.version == 6:
        return f"peer:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"peer:{ip}"


class _Bucket:
    __slots__ = ("tokens", "stamp", "pending")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens, self.stamp, self.pending = tokens, stamp, 0

    def refill(self, now: float, burst: float, rate: float) -> None:
        self.tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now


class DenialLimiter:
    """Token buckets: ``burst`` denial records per key, then ``rate`` a
    second; all keys together ``total_burst`` then ``total_rate`` a second
    (many keys, e.g. many hosts, add up to no more than that).  At most
    ``max_keys`` buckets are kept, least recently used dropped first; the
    counts they held go to the next summary.  Thread-safe."""

    def __init__(self, burst: int = 20, rate: float = 1.0, total_burst: int = 100,
                 total_rate: float = 10.0, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst, self._rate = float(burst), rate
        self._total_burst, self._total_rate = float(total_burst), total_rate
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._all = _Bucket(self._total_burst, clock())
        self._evicted = 0  # counts of dropped buckets, not yet in a summary
        self.suppressed_total = 0  # every denial not written, since start

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            while len(self._buckets) > self._max_keys:
                _, old = self._buckets.popitem(last=False)
                self._evicted += old.pending
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str) -> int | None:
        """None: do not write this denial (it is counted).  Else write it,
        with the returned number of this key's denials suppressed since its
        last record or the last summary."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            bucket.refill(now, self._burst, self._rate)
            self._all.refill(now, self._total_burst, self._total_rate)
            if bucket.tokens >= 1 and self._all.tokens >= 1:
                bucket.tokens -= 1
                self._all.tokens -= 1
                pending, bucket.pending = bucket.pending, 0
                return pending
            bucket.pending += 1
            self.suppressed_total += 1
            return None

    def give_back(self, key: str, pending: int, suppress: bool) -> None:
        """A record that ``take`` allowed was not written: its count of
        suppressed denials goes back, and with ``suppress`` (no room on the
        disk, which is not an error) the denial itself is counted too."""
        with self._lock:
            bucket = self._bucket(key, self._clock())
            bucket.pending += pending + int(suppress)
            self.suppressed_total += int(suppress)

    def pending(self) -> int:
        with self._lock:
            return self._evicted + sum(b.pending for b in self._buckets.values())

    def drain(self, top: int = 8) -> tuple[int, dict[str, int]]:
        """All counts not yet written: (total, the ``top`` largest by key);
        they start again from zero."""
        with self._lock:
            counts = {k: b.pending for k, b in self._buckets.items() if b.pending}
            for key in counts:
                self._buckets[key].pending = 0
            total = self._evicted + sum(counts.values())
            self._evicted = 0
        largest = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return total, {bound_text(k)[0]: n for k, n in largest}

    def restore(self, total: int, by_key: dict[str, int]) -> None:
        """Undo a ``drain`` whose summary could not be written."""
        with self._lock:
            self._evicted += total - sum(by_key.values())
            for key, n in by_key.items():
                self._bucket(key, self._clock()).pending += n
