"""Checking the audit trail's hash chain, reporting every damaged region.

A line links to the one before by ``seq`` (one more) and ``prev`` (the
SHA-256 of the line before, newline included; 64 zeros for the first).  A
broken link is reported where the damage is, then the check picks the chain
up again after it, so one edit cannot hide a later one:

- an edited line breaks the link to its successor (its hash moved): reported
  at the edited line;
- an edited ``prev`` breaks the links on both sides of its line: reported at
  that line; the next line is then taken on its ``seq`` alone;
- deleted lines make ``seq`` jump: reported at the line after the gap, which
  is the chain's new anchor;
- a line moved back (``seq`` not above the anchor's) is reported and skipped;
- a line that is no record (garbled, or cut by a crash and ended by the
  writer) is reported; the next record goes on after it.

A *seal* is the writer's own account of a cut line it found at start:
``{"seq":N+1,"event":"seal","damaged_bytes":D,"prev":<hash of record N>}``,
written after the damaged ``D`` bytes.  It bridges the damage, which stays
reported (``sealed``: a crash, not an edit, unless someone forged the seal).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

GENESIS = "0" * 64
SEAL = "seal"
_TAIL_BLOCK = 65536
_SCAN_LIMIT = 64 << 20  # how far back a start looks for the last whole record


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def parse_record(line: bytes) -> dict | None:
    """The record on a line, or None when it is not one."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if (not isinstance(rec, dict) or not isinstance(rec.get("seq"), int)
            or isinstance(rec.get("seq"), bool) or not isinstance(rec.get("prev"), str)):
        return None
    return rec


@dataclass(frozen=True)
class BadRegion:
    first_line: int  # 1-based, inclusive
    last_line: int
    reason: str
    sealed: bool = False  # damage the writer found at start and sealed

    @property
    def where(self) -> str:
        if self.first_line == self.last_line:
            return f"line {self.first_line}"
        return f"lines {self.first_line}-{self.last_line}"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int  # records that verified before the first bad line (all, when ok)
    first_bad_line: int | None = None  # 1-based; the first region's
    reason: str = ""  # the first region's
    regions: tuple[BadRegion, ...] = ()  # every damaged region, in file order
    verified: int = 0  # records that verified anywhere in the file


class _Regions:
    """Bad lines, adjacent ones merged into one region; lines that are no
    record are kept apart from broken links, as a seal may cover them."""

    def __init__(self) -> None:
        self.items: list[list] = []  # [first, last, reasons, sealed, garbage]

    def add(self, n: int, reason: str, garbage: bool = False) -> None:
        last = self.items[-1] if self.items else None
        if last and last[1] >= n - 1 and not last[3] and last[4] == garbage:
            last[1] = max(last[1], n)
            if reason not in last[2] and len(last[2]) < 3:
                last[2].append(reason)
        else:
            self.items.append([n, n, [reason], False, garbage])

    def seal_after(self, line: int, seal_line: int) -> None:
        for item in self.items:
            if item[0] > line and not item[3]:
                item[3] = True
                item[2].append(f"sealed by the agent at line {seal_line}: a write cut short, "
                               "e.g. by a crash")

    def result(self) -> tuple[BadRegion, ...]:
        return tuple(BadRegion(f, last, "; ".join(reasons), sealed)
                     for f, last, reasons, sealed, _ in self.items)


def verify(path: str, last_hash: str | None = None) -> VerifyResult:
    """Check the chain of the file at ``path``.  ``last_hash`` (the writer's
    ``last_hash``) also covers the last line, which no successor does."""
    regions = _Regions()
    # The anchor: the last line the chain is known to reach.
    a_hash, a_seq, a_line, a_end = GENESIS, 0, 0, 0
    any_prev = False  # the anchor line was edited: the next may link to its original
    garbage = 0  # lines since the anchor that are no record
    verified, offset, n, last_ok = 0, 0, 0, 0
    with open(path, "rb") as f:
        line = f.readline()
        while line:
            n += 1
            start, offset = offset, offset + len(line)
            nxt = f.readline()
            if not line.endswith(b"\n"):
                regions.add(n, "truncated: the last line is incomplete", garbage=True)
                break
            rec = parse_record(line)
            if rec is None:
                regions.add(n, "not an audit record (invalid JSON, seq or prev)", garbage=True)
                garbage += 1
                line = nxt
                continue
            seq, prev = rec["seq"], rec["prev"]
            linked = any_prev or prev == a_hash
            accept = False
            if rec.get("event") == SEAL and seq == a_seq + 1 and linked \
                    and rec.get("damaged_bytes") == start - a_end:
                regions.seal_after(a_line, n)
                accept = True
            elif seq <= a_seq:
                regions.add(n, f"out of order: seq {seq} after {a_seq}")
            elif garbage and seq <= a_seq + garbage + 1:
                # Goes on after records that were damaged (their hash, so
                # this one's prev, cannot be checked), or after a cut line
                # that an older writer ended without a seal.
                accept = True
            elif seq != a_seq + 1:
                regions.add(n, f"seq jumps from {a_seq} to {seq}: records deleted or reordered")
                a_hash, a_seq, a_line, a_end, any_prev, garbage = line_hash(line), seq, n, offset, False, 0
            elif linked:
                accept = True
            else:
                # seq is consecutive, so a line was changed: the one before
                # (its hash moved) or this one's prev (then the next line's
                # prev does not match this line either).
                next_rec = parse_record(nxt) if nxt else None
                if a_line == n - 1 and a_line > 0 and (
                        not nxt or (next_rec and next_rec["prev"] == line_hash(line))):
                    regions.add(n - 1, "modified: its hash does not match the next line's prev")
                    verified -= last_ok == n - 1
                    accept = True
                else:
                    regions.add(n, "modified: prev does not match the hash of the line before")
                    a_hash, a_seq, a_line, a_end, any_prev, garbage = "", seq, n, offset, True, 0
            if accept:
                a_hash, a_seq, a_line, a_end, any_prev, garbage = line_hash(line), seq, n, offset, False, 0
                verified, last_ok = verified + 1, n
            line = nxt
    if last_hash is not None and n and last_ok == n and last_hash != a_hash:
        regions.add(n, "modified: the last line differs from the last record written")
        verified -= 1
    found = regions.result()
    if not found:
        return VerifyResult(True, n, verified=verified)
    first = found[0]
    return VerifyResult(False, first.first_line - 1, first.first_line, first.reason, found, verified)


def last_record(path: str) -> tuple[int, str, int, int, bool]:
    """(seq, line hash, end offset) of the last whole record in the file,
    (0, GENESIS, 0) when there is none; then the file's size and whether it
    ends in a newline."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0, GENESIS, 0, 0, True
        f.seek(size - 1)
        ends_nl = f.read(1) == b"\n"
        pos, buf = size, b""  # buf: the bytes from pos not yet looked at
        while True:
            cut = buf.rfind(b"\n", 0, max(len(buf) - 1, 0))
            if cut < 0 and pos > 0:
                if size - pos >= _SCAN_LIMIT:
                    break
                step = min(_TAIL_BLOCK, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
                continue
            line, buf = buf[cut + 1:], buf[:cut + 1]
            rec = parse_record(line) if line.endswith(b"\n") else None
            if rec is not None:
                return rec["seq"], line_hash(line), pos + len(buf) + len(line), size, ends_nl
            if not buf:
                break
    return 0, GENESIS, 0, size, ends_nl
