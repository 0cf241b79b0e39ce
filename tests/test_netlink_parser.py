"""The RTM_GETSTATS dump parser: recorded kernel dumps and hand-made cases on
both implementations, the Cython module against its pure-Python twin on
random well-formed and corrupted dumps, and a synthetic 4096-interface dump.

The Cython cases skip when the extension is not built, and fail instead when
``HOSTAGENT_REQUIRE_EXTENSIONS=1``.
"""
from __future__ import annotations

import errno
import json
import random
import struct
import threading
import time
from array import array
from pathlib import Path

import pytest
from tests.helpers import load_impl
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core import netlink_py as wire
from agent.core.netlink_py import STATS_FIELDS, NetlinkError

FIXTURES = Path(__file__).parent / "fixtures" / "netlink"
WIDTH = len(STATS_FIELDS)
U64 = 2**64 - 1


def load(name: str):
    return load_impl(wire, None if name == "python" else "_netlink")


@pytest.fixture(params=["python", "cython"])
def nl(request):
    return load(request.param)


@pytest.fixture(scope="module")
def cnl():
    """The Cython module alone: for parity against the twin."""
    return load("cython")


def rows(mod, buf) -> list[tuple[int, list[int]]]:
    ifindex, counters = mod.parse_stats_dump(buf)
    assert (ifindex.typecode, counters.typecode) == ("i", "Q")
    assert len(counters) == WIDTH * len(ifindex)
    return [(ifindex[r], list(counters[r * WIDTH:(r + 1) * WIDTH])) for r in range(len(ifindex))]


def outcome(mod, buf):
    """What parsing gives: the arrays' bytes, or the exception's type (and
    errno).  Anything else escaping (IndexError, struct.error...) fails."""
    try:
        ifindex, counters = mod.parse_stats_dump(buf)
    except NetlinkError as exc:
        return ("NetlinkError", exc.errno)
    except ValueError as exc:
        assert "offset" in str(exc)
        return ("ValueError",)
    return ("rows", ifindex.typecode, ifindex.tobytes(), counters.typecode, counters.tobytes())


def counters(seed: int, n: int = WIDTH) -> list[int]:
    return [(seed * 1_000_003 + k * 7919) % 2**64 for k in range(n)]


# --- recorded kernel dumps ---------------------------------------------------

def fixture(n: int) -> tuple[bytes, dict]:
    return ((FIXTURES / f"getstats_{n}.bin").read_bytes(),
            json.loads((FIXTURES / f"getstats_{n}.json").read_text()))


@pytest.mark.parametrize("n, count", [(1, 1), (2, 7), (3, 241)])
def test_recorded_dump_matches_ip(nl, n, count):
    raw, meta = fixture(n)
    got = rows(nl, raw)
    assert len(got) == count == len(meta["interfaces"])
    assert [i for i, _ in got] == [link["ifindex"] for link in meta["interfaces"]]
    for (ifindex, values), link in zip(got, meta["interfaces"]):
        for name in meta["ip_fields"]:
            assert values[STATS_FIELDS.index(name)] == link["nonzero"].get(name, 0), \
                (link["ifname"], name)


def test_recorded_dumps_hold_what_the_tests_rely_on():
    _, mixed = fixture(2)
    kinds = {link["ifname"]: link["kind"] for link in mixed["interfaces"]}
    assert kinds == {"lo": "", "veth0": "veth", "va": "veth", "vb": "veth",
                     "br0": "bridge", "vx42": "vxlan", "tap0": "tun"}
    veth0 = next(l for l in mixed["interfaces"] if l["ifname"] == "veth0")["nonzero"]
    assert veth0["tx_packets"] >= 53 and veth0["rx_packets"] >= 3  # the traffic
    raw, many = fixture(3)
    assert many["datagrams"] > 1 and len(raw) < 64 << 10


@pytest.mark.parametrize("n", [1, 2, 3])
def test_recorded_dump_cython_equals_twin(cnl, n):
    raw, _ = fixture(n)
    assert outcome(cnl, raw) == outcome(wire, raw)


# --- hand-made cases, both implementations ------------------------------------

def test_full_and_short_structs(nl):
    dump = (wire.pack_stats(7, counters(1)) + wire.pack_stats(8, counters(2, 24))
            + wire.pack_stats(9, counters(3, 23)) + wire.pack_stats(10, counters(4, 26))
            + wire.pack_stats(11, [U64, 0, 5]) + wire.pack_stats(12, []) + wire.pack_done())
    assert rows(nl, dump) == [(7, counters(1)), (8, counters(2, 24) + [0]),
                              (9, counters(3, 23) + [0, 0]), (10, counters(4)),
                              (11, [U64, 0, 5] + [0] * 22), (12, [0] * WIDTH)]


def test_other_attributes_and_messages_are_skipped(nl):
    nested = wire.pack_attr(0x8000 | 3, wire.pack_attr(1, b"\xff" * 200))  # LINK_XSTATS
    dump = (wire.pack_message(wire.NLMSG_NOOP, b"")
            + wire.pack_stats(1, counters(1), before=wire.pack_attr(5, b"abc"), after=nested)
            + wire.pack_message(wire.RTM_NEWSTATS, wire.IF_STATS_MSG.pack(0, 0, 0, 2, 0) + nested)
            + wire.pack_message(16, b"\x01" * 30)  # RTM_NEWLINK: not ours
            + wire.pack_error(0)  # an acknowledgement
            + wire.pack_stats(3, counters(3), after=wire.pack_attr(1, b"\x00" * 200))
            + wire.pack_done())
    # ifindex 2 has no IFLA_STATS_LINK_64: no row; of two, the first counts.
    assert rows(nl, dump) == [(1, counters(1)), (3, counters(3))]


def test_done_ends_the_dump(nl):
    dump = wire.pack_stats(1, counters(1)) + wire.pack_done() + b"garbage after done"
    assert rows(nl, dump) == [(1, counters(1))]
    assert rows(nl, wire.pack_message(wire.NLMSG_DONE, b"")) == []  # no errno field


@pytest.mark.parametrize("buf", [b"", wire.pack_done(), wire.pack_message(wire.NLMSG_NOOP, b"")])
def test_no_rows(nl, buf):
    ifindex, values = nl.parse_stats_dump(buf)
    assert (list(ifindex), list(values), ifindex.typecode, values.typecode) == ([], [], "i", "Q")


def test_error_message_raises_netlink_error(nl):
    dump = wire.pack_stats(1, counters(1)) + wire.pack_error(-errno.EPERM) + wire.pack_done()
    with pytest.raises(NetlinkError) as info:
        nl.parse_stats_dump(dump)
    assert info.value.errno == errno.EPERM and isinstance(info.value, OSError)
    assert "offset 232" in str(info.value)


def test_done_with_negative_errno_raises(nl):
    with pytest.raises(NetlinkError) as info:
        nl.parse_stats_dump(wire.pack_stats(1, counters(1)) + wire.pack_done(error=-errno.EMSGSIZE))
    assert info.value.errno == errno.EMSGSIZE


def test_error_code_int_min_is_a_netlink_error(nl):
    with pytest.raises(NetlinkError) as info:
        nl.parse_stats_dump(wire.pack_error(-2**31))
    assert info.value.errno == 2**31


def test_any_buffer_at_any_alignment(nl):
    dump = wire.pack_stats(5, counters(5)) + wire.pack_stats(-1, counters(6)) + wire.pack_done()
    want = [(5, counters(5)), (-1, counters(6))]
    for pad in range(8):
        backing = bytearray(b"\xee" * pad + dump)
        assert rows(nl, memoryview(backing)[pad:]) == want
    assert rows(nl, bytearray(dump)) == want
    assert rows(nl, array("B", dump)) == want


GOOD = wire.pack_stats(1, counters(1)) + wire.pack_done()


def patched(buf: bytes, at: int, fmt: str, value: int) -> bytes:
    b = bytearray(buf)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


@pytest.mark.parametrize("buf, where", [
    pytest.param(GOOD[:10], "offset 0", id="header-cut"),
    pytest.param(GOOD[:232] + b"\0" * 8, "offset 232", id="trailing-partial-header"),
    pytest.param(patched(GOOD, 0, "=I", 15), "offset 0", id="nlmsg_len-15"),
    pytest.param(patched(GOOD, 0, "=I", 0), "offset 0", id="nlmsg_len-0"),
    pytest.param(patched(GOOD, 0, "=I", 253), "offset 0", id="nlmsg_len-past-end"),
    pytest.param(patched(GOOD, 0, "=I", 2**32 - 1), "offset 0", id="nlmsg_len-huge"),
    pytest.param(GOOD[:200], "offset 0", id="message-cut"),
    pytest.param(wire.pack_message(wire.RTM_NEWSTATS, b"\0" * 11), "offset 16",
                 id="if_stats_msg-cut"),
    pytest.param(patched(GOOD, 28, "=H", 3), "offset 28", id="nla_len-3"),
    pytest.param(patched(GOOD, 28, "=H", 0), "offset 28", id="nla_len-0"),
    pytest.param(patched(GOOD, 28, "=H", 205), "offset 28", id="nla_len-past-message"),
    pytest.param(wire.pack_message(wire.RTM_NEWSTATS, b"\0" * 14), "offset 28",
                 id="attribute-header-cut"),
    pytest.param(wire.pack_message(wire.NLMSG_ERROR, b"\xff\xff"), "offset 0", id="error-cut"),
    pytest.param(wire.pack_stats(1, counters(1)) + GOOD[:7], "offset 232", id="second-cut"),
])
def test_malformed_input_raises_value_error_with_offset(nl, buf, where):
    with pytest.raises(ValueError, match=where):
        nl.parse_stats_dump(buf)


def test_first_problem_in_buffer_order_wins(nl):
    with pytest.raises(NetlinkError):
        nl.parse_stats_dump(wire.pack_error(-1) + b"\0" * 5)
    with pytest.raises(ValueError):
        nl.parse_stats_dump(patched(GOOD, 28, "=H", 2) + wire.pack_error(-1))


def test_synthetic_4096_interfaces(nl):
    n = 4096
    dump = b"".join(wire.pack_stats(i + 1, counters(i)) for i in range(n)) + wire.pack_done()
    ifindex, values = nl.parse_stats_dump(dump)
    assert list(ifindex) == list(range(1, n + 1))
    for r in (0, 1, 2047, 4095):
        assert list(values[r * WIDTH:(r + 1) * WIDTH]) == counters(r)
    if nl is not wire:
        assert outcome(nl, dump) == outcome(wire, dump)


# --- (b) Cython against the twin on random dumps ----------------------------

u64 = st.one_of(st.integers(0, U64), st.sampled_from([0, 1, 2**32, 2**63, U64]))
attr = st.builds(wire.pack_attr, st.integers(0, 0xFFFF).filter(lambda t: t & 0x3FFF != 1),
                 st.binary(max_size=13))
attrs = st.lists(attr, max_size=3).map(b"".join)
stats_msg = st.builds(
    lambda i, c, before, after, seq: wire.pack_stats(i, c, before=before, after=after, seq=seq),
    st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(1, 5000)),
    st.one_of(st.integers(23, 25), st.integers(0, 27)).flatmap(
        lambda k: st.lists(u64, min_size=k, max_size=k)),
    attrs, attrs, st.integers(0, 2**32 - 1))
message = st.one_of(
    stats_msg, stats_msg, stats_msg,
    st.builds(lambda i, a: wire.pack_message(wire.RTM_NEWSTATS,
                                             wire.IF_STATS_MSG.pack(0, 0, 0, i, 0) + a),
              st.integers(0, 99), attrs),  # no IFLA_STATS_LINK_64
    st.builds(lambda p: wire.pack_message(wire.NLMSG_NOOP, p), st.binary(max_size=9)),
    st.builds(wire.pack_message, st.integers(0, 0xFFFF).filter(lambda t: t not in (1, 2, 3, 92)),
              st.binary(max_size=40)),  # another type
    st.just(wire.pack_error(0)))


@st.composite
def dumps(draw):
    body = draw(st.lists(message, max_size=12))
    end = draw(st.sampled_from(["done", "none", "done+junk", "error"]))
    tail = {"done": wire.pack_done(), "none": b"",
            "done+junk": wire.pack_done() + draw(st.binary(max_size=40)),
            "error": wire.pack_error(-draw(st.integers(1, 200)))}[end]
    return body, tail


@settings(max_examples=400, deadline=None)
@given(dump=dumps())
def test_well_formed_dumps_identical(cnl, dump):
    body, tail = dump
    buf = b"".join(body) + tail
    want = outcome(wire, buf)
    assert outcome(cnl, buf) == want
    assert want[0] == ("NetlinkError" if tail[4:6] == b"\x02\x00" else "rows")


@settings(max_examples=200, deadline=None)
@given(dump=dumps(), data=st.data())
def test_split_at_message_boundaries(cnl, dump, data):
    """Parsing datagrams one by one gives the rows of parsing them joined."""
    body, _ = dump
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=4)))
    parts = [b"".join(body[a:b]) for a, b in zip([0] + cuts, cuts + [len(body)])]
    for mod in (wire, cnl):
        joined = rows(mod, b"".join(parts))
        assert joined == [r for p in parts for r in rows(mod, p)]


@st.composite
def corrupted(draw):
    body, tail = draw(dumps())
    buf = bytearray(b"".join(body) + tail)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "u16", "u32", "byte", "insert"]))
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        if how == "truncate":
            del buf[at:]
        elif how == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "byte" and at < len(buf):
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif how in ("u16", "u32"):
            size = 2 if how == "u16" else 4
            at -= at % 4 if draw(st.booleans()) else 0  # often on a length field
            if at + size <= len(buf):
                top = 2**(8 * size) - 1
                value = draw(st.one_of(st.integers(0, top),
                                       st.sampled_from([0, 3, 4, 15, 16, 27, 28, top])))
                buf[at:at + size] = value.to_bytes(size, "little")
    return bytes(buf)


@settings(max_examples=600, deadline=None)
@given(buf=corrupted())
def test_corrupted_dumps_fail_alike(cnl, buf):
    assert outcome(cnl, buf) == outcome(wire, buf)


@settings(max_examples=200, deadline=None)
@given(buf=st.binary(max_size=300))
def test_random_bytes_fail_alike(cnl, buf):
    assert outcome(cnl, buf) == outcome(wire, buf)


def test_bytearray_rewritten_while_parsed(cnl):
    """Another thread rewriting the buffer (the parser runs without the GIL)
    gets an exception or rows, never a read or write out of bounds."""
    good = b"".join(wire.pack_stats(i + 1, counters(i)) for i in range(500)) + wire.pack_done()
    buf = bytearray(good)
    stop = threading.Event()

    def scribble():
        rnd = random.Random(7)
        while not stop.is_set():
            at = rnd.randrange(len(buf) - 4)
            buf[at:at + 4] = rnd.randrange(2**32).to_bytes(4, "little")
            if rnd.random() < 0.02:
                buf[:] = good

    t = threading.Thread(target=scribble)
    t.start()
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                ifindex, values = cnl.parse_stats_dump(buf)
                assert len(values) == WIDTH * len(ifindex)
            except (ValueError, NetlinkError, RuntimeError):
                pass
    finally:
        stop.set()
        t.join()


@given(messages=st.lists(st.tuples(st.sampled_from([1, 2, 3, 92, 16]), st.binary(max_size=64)),
                        max_size=20), data=st.data())
@settings(max_examples=200, deadline=None)
def test_last_message_type_agrees(cnl, messages, data):
    buf = b"".join(wire.pack_message(kind, payload) for kind, payload in messages)
    cut = data.draw(st.integers(0, len(buf)))
    garbled = bytearray(buf)
    if garbled:
        garbled[data.draw(st.integers(0, len(buf) - 1))] ^= 0xFF
    for b in (buf, bytes(garbled)):
        for start, end in ((0, len(b)), (0, cut), (cut, len(b))):
            assert cnl.last_message_type(bytearray(b), start, end) == wire.last_message_type(b, start, end)
    if messages:
        assert wire.last_message_type(buf, 0, len(buf)) == messages[-1][0]
    for mod in (wire, cnl):
        with pytest.raises(ValueError):
            mod.last_message_type(buf, 0, len(buf) + 1)
